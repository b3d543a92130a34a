//! `switchboard connect`: the bridges from vendors that push over a
//! WebSocket to Ingest (DESIGN §12), so nobody writes one.
//!
//! * [`pulsar`]: 8x8 Event Streaming, a Pulsar WebSocket consumer or reader;
//!   acknowledges each message only after Ingest answered.
//! * [`xelion`]: the Xelion WebSocket and its call notifications.
//!
//! Both use the Ingest client flags of the other commands
//! ([`crate::cli::ClientArgs`]), deliver through [`sink`] (outcome
//! classification, retries with backoff and jitter, [`dead_letter`]s),
//! order frames per call through [`lanes`], and serve [`ops`] (`/healthz`,
//! `/readyz`, `/metrics`) on `--metrics-listen`.

pub mod backoff;
pub mod cursor;
pub mod dead_letter;
pub mod lanes;
pub mod ops;
pub mod pulsar;
pub mod sink;
pub mod tls;
pub mod xelion;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use tokio_util::sync::CancellationToken;

use self::backoff::BackoffPolicy;
use self::dead_letter::DeadLetters;
use self::ops::Ops;
use self::sink::{Sink, SinkError};
use crate::cli::{ClientArgs, Conn};
use crate::config::LogFormat;
use crate::proto::v1 as pb;

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// The connectors.
#[derive(Subcommand, Debug)]
pub enum ConnectCommand {
    /// 8x8 Event Streaming: a Pulsar WebSocket consumer or reader.
    #[command(name = "8x8-event-streaming")]
    EventStreaming(EventStreamingArgs),
    /// Xelion: the WebSocket call notifications.
    Xelion(XelionArgs),
}

/// Flags every connector has.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectorArgs {
    /// How to reach Ingest.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Where the reader cursor and the dead-letter file are kept.
    #[arg(long, env = "SWITCHBOARD_CONNECT_DATA_DIR", default_value = "./switchboard-connect")]
    pub data_dir: PathBuf,
    /// Serve /healthz, /readyz and /metrics here (e.g. `0.0.0.0:9090`).
    #[arg(long, env = "SWITCHBOARD_CONNECT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Ingest requests in flight (lanes; frames of one call share a lane).
    #[arg(long, env = "SWITCHBOARD_CONNECT_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// First Ingest retry delay (doubles, with jitter, up to --retry-max).
    #[arg(long, default_value = "200ms", value_parser = duration)]
    pub retry_initial: Duration,
    /// Longest Ingest retry delay.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub retry_max: Duration,
    /// First reconnect delay (doubles, with jitter, up to --reconnect-max).
    #[arg(long, default_value = "500ms", value_parser = duration)]
    pub reconnect_initial: Duration,
    /// Longest reconnect delay.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub reconnect_max: Duration,
    /// Give up after the vendor refused the key or URL this many times in a row.
    #[arg(long, default_value_t = 3)]
    pub max_refusals: u32,
    /// On SIGTERM, how long to finish the frames in flight.
    #[arg(long, default_value = "20s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// Log format.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "SWITCHBOARD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// `connect 8x8-event-streaming` flags.
#[derive(clap::Args, Debug)]
pub struct EventStreamingArgs {
    /// Pulsar WebSocket URL: wss://HOST/ws/v2/consumer/persistent/{tenant}/{namespace}/{topic}/{subscription}
    /// or wss://HOST/ws/v2/reader/persistent/{tenant}/{namespace}/{topic}.
    #[arg(long, env = "SWITCHBOARD_8X8_URL")]
    pub url: String,
    /// 8x8 API key, sent as the X-API-Key header.
    #[arg(long, env = "SWITCHBOARD_8X8_API_KEY", hide_env_values = true)]
    pub api_key: String,
    #[command(flatten)]
    pub common: ConnectorArgs,
}

/// `connect xelion` flags. `--token` is the switchboard bearer token (as in
/// every client command); the Xelion credential is `--xelion-token` or
/// `--username`/`--password`.
#[derive(clap::Args, Debug)]
pub struct XelionArgs {
    /// Xelion API base URL: https://HOST/api/v1/<tenant>.
    #[arg(long, env = "SWITCHBOARD_XELION_BASE_URL")]
    pub base_url: String,
    /// Xelion API token (`Authorization: xelion <token>`).
    #[arg(long, env = "SWITCHBOARD_XELION_TOKEN", hide_env_values = true, required_unless_present = "username")]
    pub xelion_token: Option<String>,
    /// Xelion user to log in as (instead of --xelion-token).
    #[arg(long, env = "SWITCHBOARD_XELION_USERNAME", conflicts_with = "xelion_token", requires = "password")]
    pub username: Option<String>,
    /// Xelion password.
    #[arg(long, env = "SWITCHBOARD_XELION_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Xelion user space, for tenants that use one.
    #[arg(long, env = "SWITCHBOARD_XELION_USER_SPACE")]
    pub user_space: Option<String>,
    /// How often a `test` keepalive is sent; three missed echoes reopen the socket.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub keepalive: Duration,
    #[command(flatten)]
    pub common: ConnectorArgs,
}

/// Why a connector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The vendor refused the credential or URL every time.
    #[error("{vendor} refused the connection {tries} times in a row ({reason}); {hint}")]
    Refused {
        /// Which vendor.
        vendor: &'static str,
        /// How many attempts were refused.
        tries: u32,
        /// The last refusal.
        reason: String,
        /// What to check.
        hint: &'static str,
    },
    /// The URL is unusable.
    #[error("invalid URL {url}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A credential flag is unusable.
    #[error("invalid {what}: {reason}")]
    BadCredential {
        /// The flag.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Ingest refused the connector, or a dead letter could not be written.
    #[error(transparent)]
    Ingest(#[from] SinkError),
    /// TLS setup failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// Local files (cursor, data dir).
    #[error("{0}")]
    Io(String),
}

/// What a connector is tuned with (from [`ConnectorArgs`], or set by tests).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Cursor and dead letters.
    pub data_dir: PathBuf,
    /// Lanes (Ingest requests in flight).
    pub concurrency: usize,
    /// Ingest retry delays.
    pub retry: BackoffPolicy,
    /// Reconnect delays.
    pub reconnect: BackoffPolicy,
    /// Refusals in a row before giving up.
    pub max_refusals: u32,
    /// Time to finish in-flight frames on shutdown.
    pub shutdown_grace: Duration,
}

impl Settings {
    fn from_args(args: &ConnectorArgs) -> Settings {
        Settings {
            data_dir: args.data_dir.clone(),
            concurrency: args.concurrency.max(1),
            retry: BackoffPolicy { initial: args.retry_initial, max: args.retry_max },
            reconnect: BackoffPolicy { initial: args.reconnect_initial, max: args.reconnect_max },
            max_refusals: args.max_refusals.max(1),
            shutdown_grace: args.shutdown_grace,
        }
    }
}

/// Everything a running connector shares: its Ingest sink, its operations
/// state and its settings.
#[derive(Clone)]
pub struct Context {
    /// Sends frames to Ingest.
    pub sink: Sink,
    /// Metrics and readiness.
    pub ops: Arc<Ops>,
    /// Tuning.
    pub settings: Settings,
}

impl Context {
    /// A context for `connector` that ingests as `vendor` over `channel`.
    pub fn new(
        connector: &'static str,
        vendor: pb::Vendor,
        channel: Conn,
        tenant: String,
        settings: Settings,
    ) -> Context {
        let ops = Ops::new(connector);
        let dead_letters = Arc::new(DeadLetters::new(&settings.data_dir, connector));
        let sink = Sink::new(channel, vendor, tenant, settings.retry, dead_letters, ops.clone());
        Context { sink, ops, settings }
    }
}

/// Keeps the readiness's "Ingest reachable" current while no frames flow:
/// a gRPC health check every few seconds.
pub async fn probe_ingest(channel: Conn, ops: Arc<Ops>, shutdown: CancellationToken) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let mut client = HealthClient::new(channel);
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let check = client.check(HealthCheckRequest { service: String::new() });
        let up = matches!(
            tokio::time::timeout(Duration::from_secs(4), check).await,
            Ok(Ok(resp)) if resp.get_ref().status() == ServingStatus::Serving
        );
        ops.set_ingest_reachable(up);
    }
}

/// Runs a connector from the command line until SIGTERM or SIGINT.
pub async fn run(cmd: ConnectCommand) -> anyhow::Result<ExitCode> {
    let (connector, vendor, common) = match &cmd {
        ConnectCommand::EventStreaming(a) => (pulsar::CONNECTOR, pb::Vendor::Vendor8x8EventStreaming, &a.common),
        ConnectCommand::Xelion(a) => (xelion::CONNECTOR, pb::Vendor::Xelion, &a.common),
    };
    crate::telemetry::init_logging(common.log_format, &common.log_level, None);
    let settings = Settings::from_args(common);
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create --data-dir {}: {e}", settings.data_dir.display()))?;
    let channel = common.client.connect_lazy()?;
    let ctx = Context::new(connector, vendor, channel.clone(), common.client.tenant.clone(), settings);
    let shutdown = CancellationToken::new();
    let background = CancellationToken::new();
    if let Some(addr) = common.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on --metrics-listen {addr}: {e}"))?;
        tracing::info!(connector, metrics = %listener.local_addr()?, "serving /healthz, /readyz, /metrics");
        tokio::spawn(ops::serve(listener, ctx.ops.clone(), background.clone()));
    }
    tokio::spawn(ops::upkeep(ctx.ops.clone(), background.clone()));
    tokio::spawn(probe_ingest(channel, ctx.ops.clone(), background.clone()));
    tokio::spawn(crate::cli::signal_watch(shutdown.clone()));
    let result = match cmd {
        ConnectCommand::EventStreaming(a) => {
            let config = pulsar::PulsarConfig::new(&a.url, &a.api_key)?;
            tracing::info!(connector, kind = ?config.kind(), dead_letters = %ctx.sink.dead_letters_path().display(), "starting");
            pulsar::run(config, ctx, shutdown).await
        }
        ConnectCommand::Xelion(a) => {
            let credential = match (a.xelion_token, a.username) {
                (Some(token), _) => xelion::Credential::Token(token),
                (None, Some(username)) => xelion::Credential::Login {
                    username,
                    password: a.password.unwrap_or_default(),
                    user_space: a.user_space,
                },
                (None, None) => anyhow::bail!("give --xelion-token, or --username and --password"),
            };
            let config = xelion::XelionConfig::new(&a.base_url, credential, a.keepalive)?;
            tracing::info!(connector, dead_letters = %ctx.sink.dead_letters_path().display(), "starting");
            xelion::run(config, ctx, shutdown).await
        }
    };
    background.cancel();
    result?;
    tracing::info!(connector, "stopped");
    Ok(ExitCode::SUCCESS)
}
