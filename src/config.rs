//! Configuration: TOML file < `SWITCHBOARD_*` environment < command-line
//! flags. Every flag `--foo-bar` has the environment twin
//! `SWITCHBOARD_FOO_BAR` and the file key `foo_bar`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::TokenConfig;
use crate::store::nats::NatsOptions;
use crate::tls::TlsFiles;

/// Which store backs the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In memory; nothing survives a restart.
    Memory,
    /// One SQLite file under `--data-dir` (default).
    Sqlite,
    /// NATS JetStream, shared by many replicas.
    Nats,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// `switchboard serve` flags. All optional: unset flags fall back to the
/// config file, then to the defaults in [`Config::default`].
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServeArgs {
    /// TOML config file (flags and environment override it).
    #[arg(long, env = "SWITCHBOARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// gRPC listen address [default: 0.0.0.0:50051].
    #[arg(long, env = "SWITCHBOARD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// HTTP address for /metrics, /healthz and /readyz [default: 0.0.0.0:9090].
    #[arg(long, env = "SWITCHBOARD_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Extra plaintext listener serving only grpc.health.v1, for Kubernetes
    /// gRPC probes (which cannot speak TLS) [default: none].
    #[arg(long, env = "SWITCHBOARD_HEALTH_LISTEN", value_name = "ADDR")]
    pub health_listen: Option<SocketAddr>,
    /// Event log backend [default: sqlite].
    #[arg(long, env = "SWITCHBOARD_STORE", value_enum)]
    pub store: Option<StoreKind>,
    /// Directory of the sqlite store [default: ./data].
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// NATS server URL(s), comma-separated, for `--store nats`.
    #[arg(long, env = "SWITCHBOARD_NATS_URL", value_name = "URL")]
    pub nats_url: Option<String>,
    /// NATS user name (with --nats-password).
    #[arg(long, env = "SWITCHBOARD_NATS_USER", value_name = "USER")]
    pub nats_user: Option<String>,
    /// NATS password.
    #[arg(long, env = "SWITCHBOARD_NATS_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS token.
    #[arg(long, env = "SWITCHBOARD_NATS_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// NATS credentials file (JWT and NKey seed).
    #[arg(long, env = "SWITCHBOARD_NATS_CREDS", value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// CA bundle (PEM) for TLS to NATS.
    #[arg(long, env = "SWITCHBOARD_NATS_CA", value_name = "FILE")]
    pub nats_ca: Option<PathBuf>,
    /// JetStream stream name; the KV buckets are named after it [default: SWITCHBOARD].
    #[arg(long, env = "SWITCHBOARD_NATS_STREAM", value_name = "NAME")]
    pub nats_stream: Option<String>,
    /// Subject prefix of the log [default: switchboard].
    #[arg(long, env = "SWITCHBOARD_NATS_SUBJECT_PREFIX", value_name = "PREFIX")]
    pub nats_subject_prefix: Option<String>,
    /// Replicas of the stream and buckets in a NATS cluster [default: 1].
    #[arg(long, env = "SWITCHBOARD_NATS_STREAM_REPLICAS", value_name = "N")]
    pub nats_stream_replicas: Option<usize>,
    /// JetStream duplicate window for Nats-Msg-Id (broker-side dedup) [default: 2m].
    #[arg(long, env = "SWITCHBOARD_NATS_DUPLICATE_WINDOW", value_parser = duration, value_name = "DURATION")]
    pub nats_duplicate_window: Option<Duration>,
    /// Stream size limit in bytes; 0 means none [default: 0].
    #[arg(long, env = "SWITCHBOARD_NATS_MAX_BYTES", value_name = "BYTES")]
    pub nats_max_bytes: Option<u64>,
    /// Timeout of each NATS request; past it Ingest answers UNAVAILABLE [default: 5s].
    #[arg(long, env = "SWITCHBOARD_NATS_REQUEST_TIMEOUT", value_parser = duration, value_name = "DURATION")]
    pub nats_request_timeout: Option<Duration>,
    /// Log format [default: text].
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter in `tracing` syntax [default: info].
    #[arg(long, env = "SWITCHBOARD_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// How long dedup keys (request ids, vendor event ids) are remembered [default: 24h].
    #[arg(long, env = "SWITCHBOARD_DEDUP_WINDOW", value_parser = duration, value_name = "DURATION")]
    pub dedup_window: Option<Duration>,
    /// Remove events older than this; `0` keeps them forever [default: 7d].
    #[arg(long, env = "SWITCHBOARD_RETENTION_MAX_AGE", value_parser = duration, value_name = "DURATION")]
    pub retention_max_age: Option<Duration>,
    /// Keep at most this many events; `0` means no limit [default: 0].
    #[arg(long, env = "SWITCHBOARD_RETENTION_MAX_EVENTS", value_name = "N")]
    pub retention_max_events: Option<u64>,
    /// How often retention runs [default: 1m].
    #[arg(long, env = "SWITCHBOARD_RETENTION_INTERVAL", value_parser = duration, value_name = "DURATION")]
    pub retention_interval: Option<Duration>,
    /// How long an 8x8 agent-panel call (no vendor call id) stays open for correlation without news [default: 4h].
    #[arg(long, env = "SWITCHBOARD_CORRELATION_WINDOW", value_parser = duration, value_name = "DURATION")]
    pub correlation_window: Option<Duration>,
    /// Heartbeat checkpoint interval of Subscribe streams [default: 15s].
    #[arg(long, env = "SWITCHBOARD_HEARTBEAT_INTERVAL", value_parser = duration, value_name = "DURATION")]
    pub heartbeat_interval: Option<Duration>,
    /// Live events queued per subscriber before it is moved to reading the log [default: 1024].
    #[arg(long, env = "SWITCHBOARD_SUBSCRIBER_BUFFER", value_name = "N")]
    pub subscriber_buffer: Option<usize>,
    /// Largest accepted Ingest payload in bytes [default: 262144].
    #[arg(long, env = "SWITCHBOARD_MAX_PAYLOAD_BYTES", value_name = "BYTES")]
    pub max_payload_bytes: Option<usize>,
    /// Largest decoded gRPC request message in bytes [default: 1048576].
    #[arg(long, env = "SWITCHBOARD_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,
    /// HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS) [default: 1000].
    #[arg(long, env = "SWITCHBOARD_MAX_CONCURRENT_STREAMS", value_name = "N")]
    pub max_concurrent_streams: Option<u32>,
    /// HTTP/2 keepalive ping interval [default: 30s].
    #[arg(long, env = "SWITCHBOARD_KEEPALIVE_INTERVAL", value_parser = duration, value_name = "DURATION")]
    pub keepalive_interval: Option<Duration>,
    /// Close a connection whose keepalive ping is not answered within this [default: 20s].
    #[arg(long, env = "SWITCHBOARD_KEEPALIVE_TIMEOUT", value_parser = duration, value_name = "DURATION")]
    pub keepalive_timeout: Option<Duration>,
    /// Region for national phone numbers (ISO 3166 alpha-2, e.g. US, GB, NL; empty for none) [default: US].
    #[arg(long, env = "SWITCHBOARD_DEFAULT_REGION", value_name = "CC")]
    pub default_region: Option<String>,
    /// After SIGTERM, keep serving this long with health NOT_SERVING so load balancers drain [default: 0s].
    #[arg(long, env = "SWITCHBOARD_DRAIN_DELAY", value_parser = duration, value_name = "DURATION")]
    pub drain_delay: Option<Duration>,
    /// Allowed CORS origins for gRPC-Web, comma-separated; `*` for any [default: *].
    #[arg(long, env = "SWITCHBOARD_CORS_ORIGINS", value_name = "ORIGINS")]
    pub cors_origins: Option<String>,
    /// TOML file of `[[tokens]]` (name, sha256, tenant, roles); turns
    /// authentication on. Re-read when it changes [default: none].
    #[arg(long, env = "SWITCHBOARD_AUTH_FILE", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); with --tls-key turns TLS on. Reloaded when it changes.
    #[arg(long, env = "SWITCHBOARD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "SWITCHBOARD_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) client certificates must chain to: turns on mutual TLS.
    #[arg(long, env = "SWITCHBOARD_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Concurrent Subscribe streams per tenant [default: 10000].
    #[arg(long, env = "SWITCHBOARD_MAX_SUBSCRIBERS_PER_TENANT", value_name = "N")]
    pub max_subscribers_per_tenant: Option<usize>,
    /// Requests per second per token (per tenant without auth); 0 disables [default: 0].
    #[arg(long, env = "SWITCHBOARD_RATE_LIMIT_PER_SECOND", value_name = "N")]
    pub rate_limit_per_second: Option<f64>,
    /// Burst allowance of the rate limit [default: twice the rate].
    #[arg(long, env = "SWITCHBOARD_RATE_LIMIT_BURST", value_name = "N")]
    pub rate_limit_burst: Option<f64>,
    /// OTLP/gRPC collector for traces, e.g. http://otel-collector:4317 (needs
    /// the `otlp` cargo feature) [default: none].
    #[arg(long, env = "SWITCHBOARD_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Also serve switchboard.bench.v1.BenchService, the no-op baselines
    /// that `switchboard-load` and `scripts/bench` measure against. For
    /// benchmarks only; leave it off in production [default: off]. Only in
    /// builds with the `bench` cargo feature.
    #[cfg(feature = "bench")]
    #[arg(long, env = "SWITCHBOARD_ENABLE_BENCH_SERVICE")]
    pub enable_bench_service: bool,
    /// Validate the configuration, print it, and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// The config file: the same keys as the flags.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    health_listen: Option<SocketAddr>,
    store: Option<StoreKind>,
    data_dir: Option<PathBuf>,
    nats_url: Option<String>,
    nats_user: Option<String>,
    nats_password: Option<String>,
    nats_token: Option<String>,
    nats_creds: Option<PathBuf>,
    nats_ca: Option<PathBuf>,
    nats_stream: Option<String>,
    nats_subject_prefix: Option<String>,
    nats_stream_replicas: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    nats_duplicate_window: Option<Duration>,
    nats_max_bytes: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    nats_request_timeout: Option<Duration>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    #[serde(default, with = "humantime_serde")]
    dedup_window: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    retention_max_age: Option<Duration>,
    retention_max_events: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    retention_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    correlation_window: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    heartbeat_interval: Option<Duration>,
    subscriber_buffer: Option<usize>,
    max_payload_bytes: Option<usize>,
    max_message_bytes: Option<usize>,
    max_concurrent_streams: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    keepalive_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    keepalive_timeout: Option<Duration>,
    default_region: Option<String>,
    #[serde(default, with = "humantime_serde")]
    drain_delay: Option<Duration>,
    cors_origins: Option<String>,
    auth_file: Option<PathBuf>,
    #[serde(default)]
    tokens: Vec<TokenConfig>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    max_subscribers_per_tenant: Option<usize>,
    rate_limit_per_second: Option<f64>,
    rate_limit_burst: Option<f64>,
    otlp_endpoint: Option<String>,
    #[cfg(feature = "bench")]
    enable_bench_service: Option<bool>,
}

/// The resolved configuration of a server.
#[derive(Clone, Debug)]
pub struct Config {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Metrics/health HTTP address; `None` disables it (tests).
    pub metrics_listen: Option<SocketAddr>,
    /// Plaintext health-only gRPC address.
    pub health_listen: Option<SocketAddr>,
    /// Store backend.
    pub store: StoreKind,
    /// sqlite directory.
    pub data_dir: PathBuf,
    /// NATS URL(s).
    pub nats_url: Option<String>,
    /// NATS connection and JetStream settings (used with `store = nats`).
    pub nats: NatsOptions,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// Dedup window.
    pub dedup_window: Duration,
    /// Retention by age.
    pub retention_max_age: Option<Duration>,
    /// Retention by count.
    pub retention_max_events: Option<u64>,
    /// Retention pass interval.
    pub retention_interval: Duration,
    /// 8x8 agent-panel correlation window.
    pub correlation_window: Duration,
    /// Subscribe heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Live queue per subscriber.
    pub subscriber_buffer: usize,
    /// Ingest payload limit.
    pub max_payload_bytes: usize,
    /// Decoded request limit.
    pub max_message_bytes: usize,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Keepalive interval.
    pub keepalive_interval: Duration,
    /// Keepalive timeout.
    pub keepalive_timeout: Duration,
    /// Phone default region.
    pub default_region: String,
    /// Drain delay on shutdown.
    pub drain_delay: Duration,
    /// gRPC-Web CORS origins (`*` = any).
    pub cors_origins: Vec<String>,
    /// Token file (re-read on change).
    pub auth_file: Option<PathBuf>,
    /// Tokens written in the config file itself.
    pub tokens: Vec<TokenConfig>,
    /// TLS material; `None` serves plaintext.
    pub tls: Option<TlsFiles>,
    /// Subscribe streams per tenant.
    pub max_subscribers_per_tenant: usize,
    /// Requests per second per token; 0 disables.
    pub rate_limit_per_second: f64,
    /// Rate-limit burst.
    pub rate_limit_burst: f64,
    /// OTLP trace collector.
    pub otlp_endpoint: Option<String>,
    /// Serve the benchmark baselines (`switchboard.bench.v1.BenchService`;
    /// cargo feature `bench`).
    #[cfg(feature = "bench")]
    pub enable_bench_service: bool,
}

impl Config {
    /// Whether tokens are required.
    pub fn auth_enabled(&self) -> bool {
        self.auth_file.is_some() || !self.tokens.is_empty()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            metrics_listen: Some(SocketAddr::from(([0, 0, 0, 0], 9090))),
            health_listen: None,
            store: StoreKind::Sqlite,
            data_dir: PathBuf::from("./data"),
            nats_url: None,
            nats: NatsOptions::default(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            dedup_window: Duration::from_secs(24 * 3600),
            retention_max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_max_events: None,
            retention_interval: Duration::from_secs(60),
            correlation_window: Duration::from_secs(4 * 3600),
            heartbeat_interval: Duration::from_secs(15),
            subscriber_buffer: 1024,
            max_payload_bytes: 256 * 1024,
            max_message_bytes: 1024 * 1024,
            max_concurrent_streams: 1000,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            default_region: "US".into(),
            drain_delay: Duration::ZERO,
            cors_origins: vec!["*".into()],
            auth_file: None,
            tokens: Vec::new(),
            tls: None,
            max_subscribers_per_tenant: 10_000,
            rate_limit_per_second: 0.0,
            rate_limit_burst: 0.0,
            otlp_endpoint: None,
            #[cfg(feature = "bench")]
            enable_bench_service: false,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Resolves flags (with their environment twins) over the config file
    /// over the defaults.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let d = Config::default();
        let zero_is_none = |v: Option<Duration>| v.filter(|d| !d.is_zero());
        let cfg = Config {
            listen: args.listen.or(file.listen).unwrap_or(d.listen),
            metrics_listen: args.metrics_listen.or(file.metrics_listen).or(d.metrics_listen),
            health_listen: args.health_listen.or(file.health_listen),
            store: args.store.or(file.store).unwrap_or(d.store),
            data_dir: args.data_dir.clone().or(file.data_dir).unwrap_or(d.data_dir),
            nats_url: args.nats_url.clone().or(file.nats_url.clone()),
            nats: {
                let n = NatsOptions::default();
                NatsOptions {
                    url: args.nats_url.clone().or(file.nats_url).unwrap_or(n.url),
                    user: args.nats_user.clone().or(file.nats_user),
                    password: args.nats_password.clone().or(file.nats_password),
                    token: args.nats_token.clone().or(file.nats_token),
                    creds_file: args.nats_creds.clone().or(file.nats_creds),
                    ca_file: args.nats_ca.clone().or(file.nats_ca),
                    stream: args.nats_stream.clone().or(file.nats_stream).unwrap_or(n.stream),
                    subject_prefix: args
                        .nats_subject_prefix
                        .clone()
                        .or(file.nats_subject_prefix)
                        .unwrap_or(n.subject_prefix),
                    replicas: args.nats_stream_replicas.or(file.nats_stream_replicas).unwrap_or(n.replicas),
                    duplicate_window: args
                        .nats_duplicate_window
                        .or(file.nats_duplicate_window)
                        .unwrap_or(n.duplicate_window),
                    max_bytes: args.nats_max_bytes.or(file.nats_max_bytes).filter(|b| *b > 0),
                    request_timeout: args
                        .nats_request_timeout
                        .or(file.nats_request_timeout)
                        .unwrap_or(n.request_timeout),
                }
            },
            log_format: args.log_format.or(file.log_format).unwrap_or(d.log_format),
            log_level: args.log_level.clone().or(file.log_level).unwrap_or(d.log_level),
            dedup_window: args.dedup_window.or(file.dedup_window).unwrap_or(d.dedup_window),
            retention_max_age: match args.retention_max_age.or(file.retention_max_age) {
                Some(v) => zero_is_none(Some(v)),
                None => d.retention_max_age,
            },
            retention_max_events: args.retention_max_events.or(file.retention_max_events).filter(|n| *n > 0),
            retention_interval: args.retention_interval.or(file.retention_interval).unwrap_or(d.retention_interval),
            correlation_window: args.correlation_window.or(file.correlation_window).unwrap_or(d.correlation_window),
            heartbeat_interval: args.heartbeat_interval.or(file.heartbeat_interval).unwrap_or(d.heartbeat_interval),
            subscriber_buffer: args.subscriber_buffer.or(file.subscriber_buffer).unwrap_or(d.subscriber_buffer),
            max_payload_bytes: args.max_payload_bytes.or(file.max_payload_bytes).unwrap_or(d.max_payload_bytes),
            max_message_bytes: args.max_message_bytes.or(file.max_message_bytes).unwrap_or(d.max_message_bytes),
            max_concurrent_streams: args
                .max_concurrent_streams
                .or(file.max_concurrent_streams)
                .unwrap_or(d.max_concurrent_streams),
            keepalive_interval: args.keepalive_interval.or(file.keepalive_interval).unwrap_or(d.keepalive_interval),
            keepalive_timeout: args.keepalive_timeout.or(file.keepalive_timeout).unwrap_or(d.keepalive_timeout),
            default_region: args.default_region.clone().or(file.default_region).unwrap_or(d.default_region),
            drain_delay: args.drain_delay.or(file.drain_delay).unwrap_or(d.drain_delay),
            cors_origins: args
                .cors_origins
                .clone()
                .or(file.cors_origins)
                .map(|s| s.split(',').map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect())
                .unwrap_or(d.cors_origins),
            auth_file: args.auth_file.clone().or(file.auth_file),
            tokens: file.tokens,
            tls: tls_files(
                args.tls_cert.clone().or(file.tls_cert),
                args.tls_key.clone().or(file.tls_key),
                args.tls_client_ca.clone().or(file.tls_client_ca),
            )?,
            max_subscribers_per_tenant: args
                .max_subscribers_per_tenant
                .or(file.max_subscribers_per_tenant)
                .unwrap_or(d.max_subscribers_per_tenant),
            rate_limit_per_second: args.rate_limit_per_second.or(file.rate_limit_per_second).unwrap_or(0.0),
            rate_limit_burst: 0.0,
            otlp_endpoint: args.otlp_endpoint.clone().or(file.otlp_endpoint),
            #[cfg(feature = "bench")]
            enable_bench_service: args.enable_bench_service || file.enable_bench_service.unwrap_or(false),
        };
        let mut cfg = cfg;
        cfg.rate_limit_burst =
            args.rate_limit_burst.or(file.rate_limit_burst).unwrap_or((cfg.rate_limit_per_second * 2.0).max(1.0));
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.store == StoreKind::Nats && self.nats_url.as_deref().is_none_or(str::is_empty) {
            return bad("--store nats needs --nats-url");
        }
        if self.store == StoreKind::Nats {
            let n = &self.nats;
            if n.user.is_some() != n.password.is_some() {
                return bad("--nats-user and --nats-password go together");
            }
            if !(1..=5).contains(&n.replicas) {
                return bad("--nats-stream-replicas must be between 1 and 5");
            }
            if n.stream.is_empty() || !n.stream.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return bad("--nats-stream may only contain letters, digits, '_' and '-'");
            }
            if n.subject_prefix.is_empty() || n.subject_prefix.contains(['*', '>', ' ']) {
                return bad("--nats-subject-prefix must be a literal subject");
            }
            if n.request_timeout.is_zero() {
                return bad("--nats-request-timeout must be positive");
            }
        }
        let century = Duration::from_secs(100 * 365 * 24 * 3600);
        for (name, d) in [
            ("--dedup-window", Some(self.dedup_window)),
            ("--retention-max-age", self.retention_max_age),
            ("--correlation-window", Some(self.correlation_window)),
        ] {
            if d.is_some_and(|d| d > century) {
                return bad(&format!("{name} must be at most 100 years"));
            }
        }
        if self.retention_interval < Duration::from_secs(1) {
            return bad("--retention-interval must be at least 1s");
        }
        if self.subscriber_buffer == 0 {
            return bad("--subscriber-buffer must be at least 1");
        }
        if self.max_payload_bytes == 0 || self.max_payload_bytes > self.max_message_bytes {
            return bad("--max-payload-bytes must be between 1 and --max-message-bytes");
        }
        if self.heartbeat_interval < Duration::from_millis(100) {
            return bad("--heartbeat-interval must be at least 100ms");
        }
        if self.max_concurrent_streams == 0 {
            return bad("--max-concurrent-streams must be at least 1");
        }
        crate::adapters::PhoneNormalizer::new(&self.default_region).map_err(ConfigError::Invalid)?;
        if !(self.rate_limit_per_second >= 0.0 && self.rate_limit_per_second.is_finite()) {
            return bad("--rate-limit-per-second must be a non-negative number");
        }
        if self.max_subscribers_per_tenant == 0 {
            return bad("--max-subscribers-per-tenant must be at least 1");
        }
        Ok(())
    }

    /// A configuration for tests: memory store, loopback on a free port, no
    /// metrics listener.
    pub fn for_tests() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: None,
            store: StoreKind::Memory,
            ..Config::default()
        }
    }
}

fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> Result<Option<TlsFiles>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key, client_ca })),
        (None, None) if client_ca.is_none() => Ok(None),
        (None, None) => Err(ConfigError::Invalid("--tls-client-ca needs --tls-cert and --tls-key".into())),
        _ => Err(ConfigError::Invalid("--tls-cert and --tls-key go together".into())),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:7000\"\nstore = \"memory\"\ndedup_window = \"1h\"\n").unwrap();
        let args = ServeArgs { config: Some(path), store: Some(StoreKind::Sqlite), ..ServeArgs::default() };
        let c = Config::load(&args).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.store, StoreKind::Sqlite);
        assert_eq!(c.dedup_window, Duration::from_secs(3600));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(15));
    }

    #[test]
    fn unknown_file_keys_and_bad_combinations_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        assert!(matches!(
            Config::load(&ServeArgs { config: Some(path), ..ServeArgs::default() }),
            Err(ConfigError::Parse { .. })
        ));
        let nats = ServeArgs { store: Some(StoreKind::Nats), ..ServeArgs::default() };
        assert!(matches!(Config::load(&nats), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn zero_retention_means_keep_forever() {
        let args = ServeArgs { retention_max_age: Some(Duration::ZERO), ..ServeArgs::default() };
        assert_eq!(Config::load(&args).unwrap().retention_max_age, None);
    }
}
