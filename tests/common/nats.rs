//! A real `nats-server -js` for the tests: the one the test command started
//! (`SWITCHBOARD_TEST_NATS_URL`), or a private one on a free port with a temp
//! store directory. Tests that stop or restart NATS always use a private one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchboard::config::{Config, StoreKind};
use switchboard::store::nats::NatsOptions;
use tokio::process::{Child, Command};

use super::WAIT;

/// A nats-server child process.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| {
        if std::path::Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server".into()
        } else {
            "nats-server".into()
        }
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl NatsServer {
    /// Starts a private JetStream server.
    pub async fn start() -> NatsServer {
        let mut s = NatsServer { child: None, port: free_port(), dir: tempfile::tempdir().unwrap() };
        s.run().await;
        s
    }

    async fn run(&mut self) {
        let child = Command::new(binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server runs (Debian package nats-server)");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "nats-server did not start");
            // Waits on the nats-server child process to listen.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its store directory stays).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    /// Starts it again on the same port and store directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.run().await;
    }
}

/// A NATS URL for a test, and the private server behind it if one had to be
/// started (keep it alive for the test).
pub async fn nats_url() -> (String, Option<NatsServer>) {
    match std::env::var("SWITCHBOARD_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let s = NatsServer::start().await;
            (s.url(), Some(s))
        }
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// NATS options with a stream and subject prefix of their own, so tests
/// sharing one server never see each other's events.
pub fn isolated(url: &str) -> NatsOptions {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = format!("T{}X{n}", std::process::id());
    NatsOptions {
        url: url.to_string(),
        stream: format!("SB_{id}"),
        subject_prefix: format!("sb{id}"),
        request_timeout: Duration::from_secs(2),
        ..NatsOptions::default()
    }
}

/// A server config on `nats`.
pub fn nats_config(nats: NatsOptions) -> Config {
    Config { store: StoreKind::Nats, nats_url: Some(nats.url.clone()), nats, ..Config::for_tests() }
}
