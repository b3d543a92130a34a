//! `switchboard connect` end to end: each connector runs in-process against
//! the real server (started as in tests/api) and a stand-in that follows the
//! vendor's documented protocol (pulsar_standin, xelion_standin).

#[path = "../common/mod.rs"]
mod common;

mod event_streaming;
mod pulsar_standin;
mod xelion;
mod xelion_standin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::cli::ClientArgs;
use switchboard::connect::backoff::BackoffPolicy;
use switchboard::connect::ops::Ops;
use switchboard::connect::{ConnectError, Context, Settings};
use switchboard::proto::v1 as pb;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::common::WAIT;

/// Settings with short delays, so tests do not wait on backoff.
pub fn settings(data_dir: &std::path::Path) -> Settings {
    Settings {
        data_dir: data_dir.to_path_buf(),
        concurrency: 4,
        retry: BackoffPolicy { initial: Duration::from_millis(20), max: Duration::from_millis(200) },
        reconnect: BackoffPolicy { initial: Duration::from_millis(20), max: Duration::from_millis(200) },
        max_refusals: 2,
        shutdown_grace: Duration::from_secs(5),
    }
}

/// A connector context that ingests into the server at `addr`.
pub fn context(connector: &'static str, vendor: pb::Vendor, addr: SocketAddr, settings: Settings) -> Context {
    let client = ClientArgs {
        addr: format!("http://{addr}"),
        tenant: String::new(),
        token: None,
        ca_cert: None,
        client_cert: None,
        client_key: None,
        tls_server_name: None,
    };
    Context::new(connector, vendor, client.connect_lazy().expect("valid address"), String::new(), settings)
}

/// A connector running in the background.
pub struct Running {
    /// Its metrics and readiness.
    pub ops: Arc<Ops>,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), ConnectError>>,
}

impl Running {
    /// Starts `run` with a shutdown token.
    pub fn spawn<F, Fut>(ctx: &Context, run: F) -> Running
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        switchboard::telemetry::init_logging(
            switchboard::config::LogFormat::Text,
            &std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into()),
            None,
        );
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(run(shutdown.clone()));
        Running { ops: ctx.ops.clone(), shutdown, handle }
    }

    /// The value of a metric series (labels other than `connector`), 0 when absent.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.ops.metrics.render(), name, labels)
    }

    /// Graceful shutdown (what SIGTERM does); returns what the connector returned.
    pub async fn stop(self) -> Result<(), ConnectError> {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.handle).await.expect("the connector stops").expect("no panic")
    }

    /// Waits for the connector to end by itself.
    pub async fn finished(self) -> Result<(), ConnectError> {
        tokio::time::timeout(WAIT, self.handle).await.expect("the connector ends").expect("no panic")
    }
}

/// Reads one series from Prometheus text.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `check` until it holds, failing the test after [`WAIT`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A plain HTTP/1.1 GET; returns the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}
