//! TLS and mTLS from PEM files (rustls), with reload on change, and the
//! accept loops that hand connections to tonic.
//!
//! cert-manager rotates certificates by rewriting the mounted Secret; the
//! watcher re-reads the files when their content changes and swaps in a new
//! server config. New connections use it; established connections (and their
//! long-lived Subscribe streams) keep going undisturbed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::Stream;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections wait in the kernel's
/// accept queue, so a connection flood cannot pile up tasks.
const MAX_HANDSHAKES: usize = 512;

/// The PEM files of the server's TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// CA bundle that client certificates must chain to (mTLS); `None`
    /// means clients need no certificate.
    pub client_ca: Option<PathBuf>,
}

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the material (key does not match the certificate...).
    #[error("TLS configuration rejected: {0}")]
    Config(String),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_path_buf(), message: e.to_string() }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a server config from the files (ALPN h2 and http/1.1, the latter
/// for gRPC-Web).
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_err(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&files.cert, e))?;
    if certs.is_empty() {
        return Err(file_err(&files.cert, "no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_err(&files.key, e))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| file_err(ca, e))? {
                roots.add(cert.map_err(|e| file_err(ca, e))?).map_err(|e| file_err(ca, e))?;
            }
            if roots.is_empty() {
                return Err(file_err(ca, "no CA certificate found"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn fingerprint(files: &TlsFiles) -> Option<[u8; 32]> {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    for p in [Some(&files.cert), Some(&files.key), files.client_ca.as_ref()].into_iter().flatten() {
        h.update(&std::fs::read(p).ok()?);
        h.update(&[0]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finish().as_ref());
    Some(out)
}

/// The server config in force, reloaded when the files change.
pub struct ReloadingTls {
    files: TlsFiles,
    current: RwLock<(Arc<ServerConfig>, Option<[u8; 32]>)>,
}

impl ReloadingTls {
    /// Loads the files; fails if they are unusable now.
    pub fn load(files: TlsFiles) -> Result<Arc<ReloadingTls>, TlsError> {
        let config = Arc::new(server_config(&files)?);
        let print = fingerprint(&files);
        Ok(Arc::new(ReloadingTls { files, current: RwLock::new((config, print)) }))
    }

    /// The config for the next connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Re-reads the files if their content changed. A change that does not
    /// load (a half-written rotation) keeps the old config and is retried.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let print = fingerprint(&self.files);
        if print.is_none() || print == self.current.read().unwrap_or_else(|p| p.into_inner()).1 {
            return Ok(false);
        }
        let config = Arc::new(server_config(&self.files)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (config, print);
        Ok(true)
    }

    /// Checks the files every `every` until `stop`.
    pub fn watch(self: Arc<Self>, every: Duration, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match self.reload_if_changed() {
                    Ok(true) => {
                        tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                        metrics::counter!("switchboard_tls_reloads_total").increment(1);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS files changed but do not load; keeping the current certificate")
                    }
                }
            }
        })
    }
}

/// Accepted plaintext connections, with TCP_NODELAY set (tonic only sets it
/// on listeners it binds itself).
pub fn tcp_incoming(listener: TcpListener) -> impl Stream<Item = Result<TcpStream, std::io::Error>> {
    async_stream::stream! {
        loop {
            match listener.accept().await {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    yield Ok(tcp);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Accepted TLS connections. Handshakes run concurrently, so one slow client
/// cannot hold up the others.
pub fn tls_incoming(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    async_stream::stream! {
        let mut handshakes = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept(), if handshakes.len() < MAX_HANDSHAKES => match accepted {
                    Ok((tcp, peer)) => {
                        let _ = tcp.set_nodelay(true);
                        let acceptor = TlsAcceptor::from(tls.current());
                        handshakes.spawn(async move { (peer, tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await) });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = handshakes.join_next(), if !handshakes.is_empty() => match done {
                    Ok((_, Ok(Ok(stream)))) => yield Ok(stream),
                    Ok((peer, Ok(Err(e)))) => {
                        metrics::counter!("switchboard_tls_handshake_failures_total").increment(1);
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    }
                    Ok((peer, Err(_))) => {
                        metrics::counter!("switchboard_tls_handshake_failures_total").increment(1);
                        tracing::debug!(%peer, "TLS handshake timed out");
                    }
                    Err(e) => tracing::warn!(error = %e, "TLS handshake task failed"),
                },
            }
        }
    }
}
