//! Configuration: TOML file < `SWITCHBOARD_*` environment < command-line
//! flags. Every flag `--foo-bar` has the environment twin
//! `SWITCHBOARD_FOO_BAR` and the file key `foo_bar`.
//!
//! Each knob is declared once, in the `declare_knobs!` table below, with
//! its default as a `DEFAULT_*` constant; the flags ([`ServeArgs`]), the
//! file schema and the precedence are generated from it. [`Config`] is what
//! the server runs with; the option structs of the store, NATS and the
//! services take their defaults from [`Config::default`].

#[cfg(test)]
mod chart;
mod knobs;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::TokenConfig;
use crate::service::ServiceOptions;
use crate::store::StoreOptions;
use crate::store::nats::NatsOptions;
use crate::tls::TlsFiles;

use knobs::declare_knobs;

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

// The defaults, each written once. Those of the store, NATS and the services
// live beside the option structs that use them (a lower layer never reads
// the configuration); the rest here.
pub use crate::service::{
    DEFAULT_CALL_IDLE_TIMEOUT, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MAX_SUBSCRIBERS_PER_TENANT,
};
pub use crate::store::nats::{
    DEFAULT_NATS_DUPLICATE_WINDOW, DEFAULT_NATS_MAX_BYTES, DEFAULT_NATS_REQUEST_TIMEOUT, DEFAULT_NATS_STREAM,
    DEFAULT_NATS_STREAM_REPLICAS, DEFAULT_NATS_SUBJECT_PREFIX, DEFAULT_NATS_URL,
};
pub use crate::store::{
    DEFAULT_CORRELATION_WINDOW, DEFAULT_DEDUP_WINDOW, DEFAULT_REPLAY_CACHE_BYTES, DEFAULT_RETENTION_MAX_AGE,
    DEFAULT_RETENTION_MAX_EVENTS,
};

/// `--listen`.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 50051);
/// `--metrics-listen`.
pub const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9090);
/// `--store`.
pub const DEFAULT_STORE: StoreKind = StoreKind::Sqlite;
/// `--data-dir`.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// `--log-format`.
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;
/// `--log-level`.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// `--retention-interval`.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// `--subscriber-buffer`.
pub const DEFAULT_SUBSCRIBER_BUFFER: usize = 1024;
/// `--max-message-bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// `--max-concurrent-streams`.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 1000;
/// `--keepalive-interval`.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// `--keepalive-timeout`.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// `--default-region`.
pub const DEFAULT_DEFAULT_REGION: &str = "US";
/// `--drain-delay`.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::ZERO;
/// `--cors-origins` (`*`: any).
pub const DEFAULT_CORS_ORIGINS: &str = "*";
/// `--rate-limit-per-second` (0: off). `--rate-limit-burst` defaults to
/// twice the rate (at least 1).
pub const DEFAULT_RATE_LIMIT_PER_SECOND: f64 = 0.0;

// Every knob, once: `--foo-bar`, `SWITCHBOARD_FOO_BAR` and the file key
// `foo_bar` all come from the name `foo_bar`; the help from the doc comment
// and the default (see `knobs::declare_knobs`). A knob without a default
// documents what its absence means. The Helm chart sets each knob or says why
// not (`config/chart.rs`).
declare_knobs! {
    values {
        /// gRPC listen address.
        listen: SocketAddr = DEFAULT_LISTEN, value_name = "ADDR";
        /// HTTP address for /metrics, /healthz and /readyz.
        metrics_listen: SocketAddr = DEFAULT_METRICS_LISTEN, value_name = "ADDR";
        /// Extra plaintext listener serving only grpc.health.v1, for Kubernetes
        /// gRPC probes (which cannot speak TLS) [default: none].
        health_listen: SocketAddr, value_name = "ADDR";
        /// Event log backend.
        store: StoreKind = DEFAULT_STORE;
        /// Directory of the sqlite store.
        data_dir: PathBuf = DEFAULT_DATA_DIR, value_name = "DIR";
        /// NATS server URL(s), comma-separated, for `--store nats`.
        nats_url: String, value_name = "URL";
        /// NATS user name (with --nats-password).
        nats_user: String, value_name = "USER";
        /// NATS password.
        nats_password: String, value_name = "PASSWORD", hide_env_values = true;
        /// NATS token.
        nats_token: String, value_name = "TOKEN", hide_env_values = true;
        /// File holding the NATS user name, instead of --nats-user (a mounted
        /// Secret key; one trailing newline is ignored).
        nats_user_file: PathBuf, value_name = "FILE";
        /// File holding the NATS password, instead of --nats-password, so the
        /// secret stays out of the process environment.
        nats_password_file: PathBuf, value_name = "FILE";
        /// File holding the NATS token, instead of --nats-token.
        nats_token_file: PathBuf, value_name = "FILE";
        /// NATS credentials file (JWT and NKey seed).
        nats_creds: PathBuf, value_name = "FILE";
        /// CA bundle (PEM) for TLS to NATS.
        nats_ca: PathBuf, value_name = "FILE";
        /// JetStream stream name; the KV buckets are named after it.
        nats_stream: String = DEFAULT_NATS_STREAM, value_name = "NAME";
        /// Subject prefix of the log.
        nats_subject_prefix: String = DEFAULT_NATS_SUBJECT_PREFIX, value_name = "PREFIX";
        /// Replicas of the stream and buckets in a NATS cluster.
        nats_stream_replicas: usize = DEFAULT_NATS_STREAM_REPLICAS, value_name = "N";
        /// JetStream duplicate window for Nats-Msg-Id (broker-side dedup).
        nats_duplicate_window: Duration = DEFAULT_NATS_DUPLICATE_WINDOW, value_name = "DURATION";
        /// Stream size limit in bytes; 0 means none.
        nats_max_bytes: u64 = DEFAULT_NATS_MAX_BYTES, value_name = "BYTES";
        /// Timeout of each NATS request; past it Ingest answers UNAVAILABLE.
        nats_request_timeout: Duration = DEFAULT_NATS_REQUEST_TIMEOUT, value_name = "DURATION";
        /// Log format.
        log_format: LogFormat = DEFAULT_LOG_FORMAT;
        /// Log filter in `tracing` syntax.
        log_level: String = DEFAULT_LOG_LEVEL, value_name = "FILTER";
        /// How long dedup keys (request ids, vendor event ids) are remembered.
        dedup_window: Duration = DEFAULT_DEDUP_WINDOW, value_name = "DURATION";
        /// Remove events older than this; `0` keeps them forever.
        retention_max_age: Duration = DEFAULT_RETENTION_MAX_AGE, value_name = "DURATION";
        /// Keep at most this many events; `0` means no limit.
        retention_max_events: u64 = DEFAULT_RETENTION_MAX_EVENTS, value_name = "N";
        /// Memory (bytes) for the newest committed events, which catching-up
        /// subscribers read instead of the database (sqlite store); 0 turns it off.
        replay_cache_bytes: usize = DEFAULT_REPLAY_CACHE_BYTES, value_name = "BYTES";
        /// How often retention runs.
        retention_interval: Duration = DEFAULT_RETENTION_INTERVAL, value_name = "DURATION";
        /// How long an 8x8 agent-panel call (no vendor call id) stays open for correlation without news.
        correlation_window: Duration = DEFAULT_CORRELATION_WINDOW, value_name = "DURATION";
        /// Close a call with no event for this long (a lost hang-up, a panel offer from a manual
        /// search) with CALL_ENDED, outcome CALL_OUTCOME_EXPIRED; `0` never closes one.
        call_idle_timeout: Duration = DEFAULT_CALL_IDLE_TIMEOUT, value_name = "DURATION";
        /// Heartbeat checkpoint interval of Subscribe streams.
        heartbeat_interval: Duration = DEFAULT_HEARTBEAT_INTERVAL, value_name = "DURATION";
        /// Live events queued per subscriber before it is moved to reading the log.
        subscriber_buffer: usize = DEFAULT_SUBSCRIBER_BUFFER, value_name = "N";
        /// Largest accepted Ingest payload in bytes.
        max_payload_bytes: usize = DEFAULT_MAX_PAYLOAD_BYTES, value_name = "BYTES";
        /// Largest decoded gRPC request message in bytes.
        max_message_bytes: usize = DEFAULT_MAX_MESSAGE_BYTES, value_name = "BYTES";
        /// HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS).
        max_concurrent_streams: u32 = DEFAULT_MAX_CONCURRENT_STREAMS, value_name = "N";
        /// HTTP/2 keepalive ping interval.
        keepalive_interval: Duration = DEFAULT_KEEPALIVE_INTERVAL, value_name = "DURATION";
        /// Close a connection whose keepalive ping is not answered within this.
        keepalive_timeout: Duration = DEFAULT_KEEPALIVE_TIMEOUT, value_name = "DURATION";
        /// Region for national phone numbers (ISO 3166 alpha-2, e.g. US, GB, NL; empty for none).
        default_region: String = DEFAULT_DEFAULT_REGION, value_name = "CC";
        /// After SIGTERM, keep serving this long with health NOT_SERVING so load balancers drain.
        drain_delay: Duration = DEFAULT_DRAIN_DELAY, value_name = "DURATION";
        /// Allowed CORS origins for gRPC-Web, comma-separated; `*` for any.
        cors_origins: String = DEFAULT_CORS_ORIGINS, value_name = "ORIGINS";
        /// TOML file of `[[tokens]]` (name, sha256, tenant, roles); turns
        /// authentication on. Re-read when it changes [default: none].
        auth_file: PathBuf, value_name = "FILE";
        /// TLS certificate chain (PEM); with --tls-key turns TLS on. Reloaded when it changes.
        tls_cert: PathBuf, value_name = "FILE";
        /// TLS private key (PEM).
        tls_key: PathBuf, value_name = "FILE";
        /// CA bundle (PEM) client certificates must chain to: turns on mutual TLS.
        tls_client_ca: PathBuf, value_name = "FILE";
        /// Concurrent Subscribe streams per tenant.
        max_subscribers_per_tenant: usize = DEFAULT_MAX_SUBSCRIBERS_PER_TENANT, value_name = "N";
        /// Requests per second per token (per tenant without auth); 0 disables.
        rate_limit_per_second: f64 = DEFAULT_RATE_LIMIT_PER_SECOND, value_name = "N";
        /// Burst allowance of the rate limit [default: twice the rate].
        rate_limit_burst: f64, value_name = "N";
        /// OTLP/gRPC collector for traces, e.g. http://otel-collector:4317 (needs
        /// the `otlp` cargo feature) [default: none].
        otlp_endpoint: String, value_name = "URL";
    }
    switches {
        /// Do not serve the call board (the page at `GET /` on the gRPC
        /// port); gRPC and gRPC-Web are served either way.
        no_board;
        /// Also serve switchboard.bench.v1.BenchService, the no-op baselines
        /// that `switchboard-load` and `scripts/bench` measure against. For
        /// benchmarks only; leave it off in production. Only in builds with
        /// the `bench` cargo feature.
        #[cfg(feature = "bench")]
        enable_bench_service;
    }
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
    /// NATS URL(s) as configured (`nats.url` falls back to
    /// [`DEFAULT_NATS_URL`]); `--store nats` requires it.
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
    /// Memory for the replay tail (`--replay-cache-bytes`).
    pub replay_cache_bytes: usize,
    /// Retention pass interval.
    pub retention_interval: Duration,
    /// 8x8 agent-panel correlation window.
    pub correlation_window: Duration,
    /// Calls idle this long are closed as expired (`None`: never).
    pub call_idle_timeout: Option<Duration>,
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
    /// Serve the call board at `GET /` of the gRPC port (`--no-board` turns it off).
    pub board: bool,
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
    /// What `switchboard serve` runs with when nothing is configured.
    fn default() -> Self {
        Config::from_knobs(Knobs::default(), Vec::new()).expect("the defaults configure no TLS, so they pair up")
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
        /// The operating system's reason.
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
    /// A file named by a `--*-file` knob (a secret) could not be read.
    #[error("cannot read {flag} {path}: {source}")]
    SecretFile {
        /// The knob naming the file.
        flag: String,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Resolves flags (with their environment twins) over the config file
    /// over the defaults.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let mut file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let tokens = std::mem::take(&mut file.tokens);
        let cfg = Config::from_knobs(Knobs::resolve(args.clone(), file), tokens)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Shapes the resolved knobs into what the server uses: NATS settings
    /// together, TLS files paired, `0` meaning none where the help says so.
    fn from_knobs(k: Knobs, tokens: Vec<TokenConfig>) -> Result<Config, ConfigError> {
        let rate_limit_burst = k.rate_limit_burst.unwrap_or((k.rate_limit_per_second * 2.0).max(1.0));
        Ok(Config {
            listen: k.listen,
            metrics_listen: Some(k.metrics_listen),
            health_listen: k.health_listen,
            store: k.store,
            data_dir: k.data_dir,
            nats: NatsOptions {
                url: k.nats_url.clone().unwrap_or_else(|| DEFAULT_NATS_URL.into()),
                user: value_or_file("nats-user", k.nats_user, k.nats_user_file)?,
                password: value_or_file("nats-password", k.nats_password, k.nats_password_file)?,
                token: value_or_file("nats-token", k.nats_token, k.nats_token_file)?,
                creds_file: k.nats_creds,
                ca_file: k.nats_ca,
                stream: k.nats_stream,
                subject_prefix: k.nats_subject_prefix,
                replicas: k.nats_stream_replicas,
                duplicate_window: k.nats_duplicate_window,
                max_bytes: Some(k.nats_max_bytes).filter(|b| *b > 0),
                request_timeout: k.nats_request_timeout,
            },
            nats_url: k.nats_url,
            log_format: k.log_format,
            log_level: k.log_level,
            dedup_window: k.dedup_window,
            retention_max_age: Some(k.retention_max_age).filter(|d| !d.is_zero()),
            retention_max_events: Some(k.retention_max_events).filter(|n| *n > 0),
            replay_cache_bytes: k.replay_cache_bytes,
            retention_interval: k.retention_interval,
            correlation_window: k.correlation_window,
            call_idle_timeout: Some(k.call_idle_timeout).filter(|d| !d.is_zero()),
            heartbeat_interval: k.heartbeat_interval,
            subscriber_buffer: k.subscriber_buffer,
            max_payload_bytes: k.max_payload_bytes,
            max_message_bytes: k.max_message_bytes,
            max_concurrent_streams: k.max_concurrent_streams,
            keepalive_interval: k.keepalive_interval,
            keepalive_timeout: k.keepalive_timeout,
            default_region: k.default_region,
            drain_delay: k.drain_delay,
            cors_origins: k.cors_origins.split(',').map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect(),
            auth_file: k.auth_file,
            tokens,
            tls: tls_files(k.tls_cert, k.tls_key, k.tls_client_ca)?,
            max_subscribers_per_tenant: k.max_subscribers_per_tenant,
            rate_limit_per_second: k.rate_limit_per_second,
            rate_limit_burst,
            otlp_endpoint: k.otlp_endpoint,
            board: !k.no_board,
            #[cfg(feature = "bench")]
            enable_bench_service: k.enable_bench_service,
        })
    }

    /// What the store takes from the configuration.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            dedup_window: self.dedup_window,
            correlation_window: self.correlation_window,
            retention_max_age: self.retention_max_age,
            retention_max_events: self.retention_max_events,
            replay_cache_bytes: self.replay_cache_bytes,
        }
    }

    /// What the RPC services take from the configuration.
    pub fn service_options(&self) -> ServiceOptions {
        ServiceOptions {
            max_payload_bytes: self.max_payload_bytes,
            heartbeat_interval: self.heartbeat_interval,
            max_subscribers_per_tenant: self.max_subscribers_per_tenant,
            call_idle_timeout: self.call_idle_timeout,
        }
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
            ("--call-idle-timeout", self.call_idle_timeout),
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

/// A secret given either inline (`--{flag}`) or as a file (`--{flag}-file`,
/// e.g. a Kubernetes Secret key mounted read-only), never both. The file's
/// content is the value, without one trailing newline.
fn value_or_file(flag: &str, value: Option<String>, file: Option<PathBuf>) -> Result<Option<String>, ConfigError> {
    let Some(path) = file else { return Ok(value) };
    if value.is_some() {
        return Err(ConfigError::Invalid(format!("--{flag} and --{flag}-file exclude each other")));
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
        flag: format!("--{flag}-file"),
        path: path.clone(),
        source,
    })?;
    let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if value.is_empty() {
        return Err(ConfigError::Invalid(format!("--{flag}-file {} is empty", path.display())));
    }
    Ok(Some(value.to_owned()))
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
    fn nats_secrets_are_read_from_files_without_their_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            Some(path)
        };
        let args = ServeArgs {
            store: Some(StoreKind::Nats),
            nats_url: Some("nats://127.0.0.1:4222".into()),
            nats_user_file: write("user", "switchboard\n"),
            nats_password_file: write("password", "p4ss word\r\n"),
            nats_token_file: write("token", "t0ken"),
            ..ServeArgs::default()
        };
        let nats = Config::load(&args).unwrap().nats;
        assert_eq!(nats.user.as_deref(), Some("switchboard"));
        assert_eq!(nats.password.as_deref(), Some("p4ss word"));
        assert_eq!(nats.token.as_deref(), Some("t0ken"));

        let both = ServeArgs { nats_password: Some("inline".into()), ..args.clone() };
        let err = Config::load(&both).unwrap_err().to_string();
        assert!(err.contains("--nats-password and --nats-password-file"), "{err}");
        let missing = ServeArgs { nats_token_file: Some(dir.path().join("absent")), ..args.clone() };
        let err = Config::load(&missing).unwrap_err().to_string();
        assert!(err.contains("--nats-token-file") && err.contains("absent"), "{err}");
        let empty = ServeArgs { nats_user_file: write("empty", "\n"), ..args };
        assert!(matches!(Config::load(&empty), Err(ConfigError::Invalid(m)) if m.contains("empty")));
    }

    #[test]
    fn zero_retention_means_keep_forever() {
        let args = ServeArgs { retention_max_age: Some(Duration::ZERO), ..ServeArgs::default() };
        assert_eq!(Config::load(&args).unwrap().retention_max_age, None);
    }

    /// `serve`'s flags without their environment twins, so that the
    /// environment of the test run cannot leak in.
    fn serve_command() -> clap::Command {
        use clap::Args;
        ServeArgs::augment_args(clap::Command::new("serve")).mut_args(|a| a.env(None))
    }

    #[test]
    fn every_flag_is_a_declared_knob_with_its_environment_twin_and_file_key() {
        use clap::Args;
        let cmd = ServeArgs::augment_args(clap::Command::new("serve"));
        let mut flags = Vec::new();
        for arg in cmd.get_arguments() {
            let key = arg.get_long().expect("every serve argument is a --flag").replace('-', "_");
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let twin = format!("SWITCHBOARD_{}", key.to_uppercase());
            assert_eq!(env.as_deref(), (key != "check_config").then_some(twin.as_str()), "--{key}");
            if key != "config" && key != "check_config" {
                flags.push(key);
            }
        }
        let declared: Vec<_> = Knobs::declared().into_iter().map(|(key, _)| key.to_owned()).collect();
        assert_eq!(flags, declared);
    }

    #[test]
    fn the_defaults_help_shows_parse_back_to_the_defaults() {
        use clap::FromArgMatches;
        let mut argv = vec!["serve".to_owned()];
        for (key, shown) in Knobs::declared() {
            if let Some(shown) = shown {
                argv.push(format!("--{}={shown}", key.replace('_', "-")));
            }
        }
        assert!(argv.len() > 25, "{argv:?}");
        let matches = serve_command().try_get_matches_from(&argv).unwrap();
        let args = ServeArgs::from_arg_matches(&matches).unwrap();
        assert_eq!(Knobs::resolve(args, FileConfig::default()), Knobs::default());
        let help = serve_command().render_long_help().to_string();
        assert!(help.contains("[default: 0.0.0.0:50051]") && help.contains("[default: 24h]"), "{help}");
    }

    #[test]
    fn the_default_config_is_what_serve_runs_with_when_nothing_is_set() {
        use clap::FromArgMatches;
        let matches = serve_command().try_get_matches_from(["serve"]).unwrap();
        let loaded = Config::load(&ServeArgs::from_arg_matches(&matches).unwrap()).unwrap();
        assert_eq!(format!("{loaded:?}"), format!("{:?}", Config::default()));
        let d = Config::default();
        assert_eq!(d.listen, DEFAULT_LISTEN);
        assert_eq!(d.retention_max_age, Some(DEFAULT_RETENTION_MAX_AGE));
        assert_eq!(d.retention_max_events, None);
        assert_eq!(d.cors_origins, ["*"]);
        assert_eq!(d.nats.url, DEFAULT_NATS_URL);
        assert_eq!(crate::store::StoreOptions::default().dedup_window, DEFAULT_DEDUP_WINDOW);
        assert_eq!(crate::service::ServiceOptions::default().max_payload_bytes, DEFAULT_MAX_PAYLOAD_BYTES);
    }
}
