//! TLS for the vendor connections (`wss://`, `https://`): rustls on ring (the
//! provider the rest of switchboard uses) with the system's trust roots.

use std::sync::Arc;

use rustls::ClientConfig;

/// The client TLS configuration; build it once per connector.
pub fn client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "cannot read some system trust roots");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system trust roots loaded");
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
