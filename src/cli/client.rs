//! Connection flags shared by the client commands.

use std::path::PathBuf;

use anyhow::Context;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Where the server is and how to reach it.
#[derive(clap::Args, Clone, Debug)]
pub struct ClientArgs {
    /// Server address; `https://` uses TLS.
    #[arg(long, env = "SWITCHBOARD_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// Tenant to act for (empty: the credential's tenant, or `default`).
    #[arg(long, env = "SWITCHBOARD_TENANT", default_value = "")]
    pub tenant: String,
    /// Bearer token.
    #[arg(long, env = "SWITCHBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to verify the server with; implies TLS.
    #[arg(long, env = "SWITCHBOARD_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, env = "SWITCHBOARD_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, env = "SWITCHBOARD_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Server name to verify when it differs from the address's host.
    #[arg(long)]
    pub tls_server_name: Option<String>,
}

/// Adds the bearer token to every request.
#[derive(Clone)]
pub struct Token(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Token {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel that authenticates its requests.
pub type Conn = InterceptedService<Channel, Token>;

impl ClientArgs {
    /// Opens a channel to the server.
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let (endpoint, addr) = self.endpoint()?;
        let channel = endpoint.connect().await.with_context(|| format!("cannot connect to {addr}"))?;
        self.authenticated(channel)
    }

    /// A channel that connects on first use and reconnects by itself: for
    /// long-running clients (`switchboard connect`) that must start, and keep
    /// going, while the server is down.
    pub fn connect_lazy(&self) -> anyhow::Result<Conn> {
        let (endpoint, _) = self.endpoint()?;
        self.authenticated(endpoint.connect_lazy())
    }

    fn endpoint(&self) -> anyhow::Result<(Endpoint, String)> {
        let tls = self.ca_cert.is_some() || self.client_cert.is_some() || self.addr.starts_with("https://");
        let addr = match (self.addr.contains("://"), tls) {
            (true, _) => self.addr.clone(),
            (false, true) => format!("https://{}", self.addr),
            (false, false) => format!("http://{}", self.addr),
        };
        let mut endpoint = Endpoint::from_shared(addr.clone()).with_context(|| format!("invalid address {addr}"))?;
        if tls {
            let mut cfg = ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = &self.ca_cert {
                let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
                cfg = cfg.ca_certificate(Certificate::from_pem(pem));
            }
            if let (Some(c), Some(k)) = (&self.client_cert, &self.client_key) {
                let cert = std::fs::read(c).with_context(|| format!("cannot read {}", c.display()))?;
                let key = std::fs::read(k).with_context(|| format!("cannot read {}", k.display()))?;
                cfg = cfg.identity(Identity::from_pem(cert, key));
            }
            if let Some(name) = &self.tls_server_name {
                cfg = cfg.domain_name(name.clone());
            }
            endpoint = endpoint.tls_config(cfg).context("invalid TLS configuration")?;
        }
        Ok((endpoint, addr))
    }

    fn authenticated(&self, channel: Channel) -> anyhow::Result<Conn> {
        let token = match &self.token {
            Some(t) => Some(format!("Bearer {t}").parse().context("the token is not valid header text")?),
            None => None,
        };
        Ok(InterceptedService::new(channel, Token(token)))
    }
}

/// Parses a vendor name as accepted on the command line (`xelion`,
/// `salesforce_voice`, `VENDOR_XELION`, `auto`).
pub fn parse_vendor(s: &str) -> Result<i32, String> {
    let norm = s.trim().to_ascii_uppercase().replace('-', "_");
    let norm = norm.strip_prefix("VENDOR_").unwrap_or(&norm);
    if norm == "AUTO" || norm == "UNSPECIFIED" {
        return Ok(0);
    }
    crate::domain::Vendor::from_name(norm).map(|v| v.number()).ok_or_else(|| {
        format!("unknown vendor {s:?}; one of: auto, 8x8_agent_panel, 8x8_event_streaming, xelion, salesforce_voice")
    })
}

/// The field violations of a rejected request (`google.rpc.BadRequest` in
/// the status details) as JSON objects `{field, description}`: what
/// `switchboard ingest` prints and what a connector writes beside a
/// dead-lettered frame. Empty when the status carries none.
pub fn field_violations_json(status: &tonic::Status) -> Vec<serde_json::Value> {
    tonic_types::StatusExt::get_details_bad_request(status)
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| serde_json::json!({"field": v.field, "description": v.description}))
                .collect()
        })
        .unwrap_or_default()
}
