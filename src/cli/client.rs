//! Connection flags shared by the client commands.

use anyhow::Context;
use tonic::transport::{Channel, Endpoint};

/// Where the server is and how to reach it.
#[derive(clap::Args, Clone, Debug)]
pub struct ClientArgs {
    /// Server address.
    #[arg(long, env = "SWITCHBOARD_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// Tenant to act for (empty: the credential's tenant, or `default`).
    #[arg(long, env = "SWITCHBOARD_TENANT", default_value = "")]
    pub tenant: String,
}

impl ClientArgs {
    /// Opens a channel to the server.
    pub async fn connect(&self) -> anyhow::Result<Channel> {
        let addr = if self.addr.contains("://") { self.addr.clone() } else { format!("http://{}", self.addr) };
        let endpoint = Endpoint::from_shared(addr.clone()).with_context(|| format!("invalid address {addr}"))?;
        endpoint.connect().await.with_context(|| format!("cannot connect to {addr}"))
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
