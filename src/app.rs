//! Build and run: what `main` and the tests both call. [`App::build`] binds
//! the sockets before it returns, so tests connect without sleeping;
//! [`App::builder`] also takes the [`Clock`] (tests pass a manual one).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::adapters::{Normalizer, PhoneNormalizer};
use crate::auth::{AuthConfigError, Authenticator, read_token_file};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::config::{Config, ConfigError, StoreKind};
use crate::grpc::access::RateLimiter;
use crate::grpc::server;
use crate::http::{self, OpsState};
use crate::hub::Hub;
use crate::service::Services;
use crate::service::SubscriberSlots;
use crate::store::memory::MemoryStore;
use crate::store::nats::NatsStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::telemetry;
use crate::tls::{ReloadingTls, TlsError, tcp_incoming, tls_incoming};

/// How long shutdown waits for in-flight requests before giving up.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened or closed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token configuration is unusable.
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A configured server with its sockets bound.
pub struct App {
    config: Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    health_listener: Option<TcpListener>,
    services: Arc<Services>,
    auth: Authenticator,
    limiter: Arc<RateLimiter>,
    tls: Option<Arc<ReloadingTls>>,
}

/// What [`App::builder`] returns: the configuration and the explicit inputs
/// that are not configuration.
pub struct AppBuilder {
    config: Config,
    clock: SharedClock,
}

impl AppBuilder {
    /// The clock the server reads the time from (default: the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> AppBuilder {
        self.clock = clock;
        self
    }

    /// Opens the store and binds the sockets.
    pub async fn build(self) -> Result<App, AppError> {
        App::open(self.config, self.clock).await
    }
}

impl App {
    /// A server on `config`, with the system clock unless told otherwise.
    pub fn builder(config: Config) -> AppBuilder {
        AppBuilder { config, clock: SystemClock::shared() }
    }

    /// Opens the store and binds the sockets (`App::builder(config).build()`).
    pub async fn build(config: Config) -> Result<App, AppError> {
        App::builder(config).build().await
    }

    async fn open(config: Config, clock: SharedClock) -> Result<App, AppError> {
        config.validate()?;
        // Install the recorder first: metrics emitted before it are lost.
        telemetry::metrics_handle();
        let auth = load_auth(&config)?;
        let tls = config.tls.clone().map(ReloadingTls::load).transpose()?;
        let hub = Hub::new(config.subscriber_buffer);
        let store = open_store(&config, hub.clone()).await?;
        let phone = PhoneNormalizer::new(&config.default_region).map_err(ConfigError::Invalid)?;
        PhoneNormalizer::warm_up();
        let services = Arc::new(Services {
            store,
            hub,
            normalizer: Normalizer::new(phone),
            options: config.service_options(),
            shutdown: CancellationToken::new(),
            subscribers: SubscriberSlots::default(),
            clock: clock.clone(),
        });
        let limiter = Arc::new(RateLimiter::new(config.rate_limit_per_second, config.rate_limit_burst, clock));
        let listener = bind(config.listen).await?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let health_listener = match config.health_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(App { config, listener, metrics_listener, health_listener, services, auth, limiter, tls })
    }

    /// The bound gRPC address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// The bound operations HTTP address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound health-only address, if enabled.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The shared services (tests use the store and hub directly).
    pub fn services(&self) -> Arc<Services> {
        self.services.clone()
    }

    /// Serves until `shutdown` fires, then: health NOT_SERVING, the drain
    /// delay, a final checkpoint to every subscriber, in-flight requests
    /// finished, the store flushed and closed.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let App { config, listener, metrics_listener, health_listener, services, auth, limiter, tls } = self;
        if auth.enabled() {
            tracing::info!(tokens = auth.len(), "authentication on");
        } else {
            tracing::warn!(
                "authentication is OFF: any client can ingest, subscribe and query every tenant; configure tokens (--auth-file) before exposing this server"
            );
        }
        metrics::gauge!("switchboard_build_info", "version" => env!("CARGO_PKG_VERSION"), "store" => services.store.kind()).set(1.0);
        let (reporter, health) = tonic_health::server::health_reporter();
        server::set_health(&reporter, false, services.store.is_healthy()).await;
        let serving = Arc::new(AtomicBool::new(true));
        let stop_server = CancellationToken::new();
        let health_only = health_listener.map(|l| {
            let svc = tonic_health::pb::health_server::HealthServer::new(
                tonic_health::server::HealthService::from_health_reporter(reporter.clone()),
            );
            tokio::spawn(server::serve_health(svc, l, stop_server.clone().cancelled_owned()))
        });
        let health_watch = tokio::spawn(health_loop(reporter.clone(), services.clone(), serving.clone()));

        let ops = metrics_listener.map(|l| {
            let state = OpsState {
                metrics: telemetry::metrics_handle(),
                serving: serving.clone(),
                store: services.store.clone(),
            };
            tokio::spawn(http::serve(l, state, stop_server.clone().cancelled_owned()))
        });
        let retention = tokio::spawn(retention_loop(services.clone(), config.retention_interval, stop_server.clone()));

        let auth_watch =
            config.auth_file.clone().map(|path| tokio::spawn(watch_auth_file(path, auth.clone(), stop_server.clone())));
        type Serving<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send + 'a>>;
        let stop = stop_server.clone().cancelled_owned();
        let mut grpc: Serving = match tls {
            Some(tls) => {
                tracing::info!(mtls = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()), "TLS on");
                tls.clone().watch(FILE_WATCH_INTERVAL, stop_server.clone());
                Box::pin(server::serve(
                    &config,
                    services.clone(),
                    auth,
                    limiter.clone(),
                    health,
                    tls_incoming(listener, tls),
                    stop,
                ))
            }
            None => {
                Box::pin(server::serve(&config, services.clone(), auth, limiter, health, tcp_incoming(listener), stop))
            }
        };
        tokio::select! {
            r = &mut grpc => {
                r?;
                return Ok(());
            }
            _ = shutdown.cancelled() => {}
        }
        tracing::info!("shutting down: health NOT_SERVING");
        serving.store(false, Ordering::Release);
        health_watch.abort();
        server::set_health(&reporter, true, false).await;
        if !config.drain_delay.is_zero() {
            tokio::select! {
                r = &mut grpc => { r?; }
                _ = tokio::time::sleep(config.drain_delay) => {}
            }
        }
        services.shutdown.cancel();
        stop_server.cancel();
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, &mut grpc).await {
            Ok(r) => r?,
            Err(_) => {
                tracing::warn!("in-flight requests did not finish within {SHUTDOWN_TIMEOUT:?}")
            }
        }
        retention.abort();
        if let Some(ops) = ops {
            let _ = ops.await;
        }
        if let Some(h) = health_only {
            let _ = h.await;
        }
        if let Some(w) = auth_watch {
            w.abort();
        }
        services.store.close().await?;
        tracing::info!("stopped");
        #[cfg(feature = "otlp")]
        telemetry::otlp::flush();
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr).await.map_err(|source| AppError::Bind { addr, source })
}

/// Opens the configured store.
pub async fn open_store(config: &Config, hub: Arc<Hub>) -> Result<Arc<dyn Store>, AppError> {
    let opts = config.store_options();
    Ok(match config.store {
        StoreKind::Memory => Arc::new(MemoryStore::new(hub, opts)),
        StoreKind::Sqlite => Arc::new(SqliteStore::open(&config.data_dir, hub, opts).await?),
        StoreKind::Nats => Arc::new(NatsStore::open(config.nats.clone(), hub, opts).await?),
    })
}

/// How often mounted TLS and token files are checked for changes.
pub const FILE_WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The token set from the config file and the auth file.
fn load_auth(config: &Config) -> Result<Authenticator, AppError> {
    if !config.auth_enabled() {
        return Ok(Authenticator::disabled());
    }
    let mut tokens = config.tokens.clone();
    if let Some(path) = &config.auth_file {
        tokens.extend(read_token_file(path)?);
    }
    Ok(Authenticator::new(&tokens)?)
}

/// Re-reads the auth file when its content changes (a rotated Secret). A
/// file that does not load keeps the tokens in force.
async fn watch_auth_file(path: std::path::PathBuf, auth: Authenticator, stop: CancellationToken) {
    let mut last = std::fs::read(&path).ok();
    let mut tick = tokio::time::interval(FILE_WATCH_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = std::fs::read(&path).ok();
        if now.is_none() || now == last {
            continue;
        }
        last = now;
        match read_token_file(&path).and_then(|t| auth.replace(&t).map(|()| t.len())) {
            Ok(n) => tracing::info!(tokens = n, path = %path.display(), "auth file reloaded"),
            Err(e) => tracing::warn!(error = %e, "auth file changed but does not load; keeping the current tokens"),
        }
    }
}

/// Keeps readiness in step with the store's health, and the log and
/// subscriber gauges current.
async fn health_loop(
    reporter: tonic_health::server::HealthReporter,
    services: Arc<Services>,
    serving: Arc<AtomicBool>,
) {
    let store = services.store.clone();
    let mut last = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        services.refresh_gauges().await;
        let healthy = store.is_healthy();
        if serving.load(Ordering::Acquire) && last != Some(healthy) {
            if last.is_some() {
                tracing::warn!(healthy, store = store.kind(), "store health changed");
            }
            server::set_health(&reporter, false, healthy).await;
            last = Some(healthy);
        }
    }
}

/// Applies retention, then idle-call expiry, periodically, as of the
/// services' clock.
async fn retention_loop(services: Arc<Services>, every: Duration, stop: CancellationToken) {
    let store = &services.store;
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Bounded steps, repeated while there is more, so ingest interleaves.
        let mut total = crate::store::PruneStats::default();
        loop {
            match store.prune(services.clock.now()).await {
                Ok(stats) => {
                    total.events += stats.events;
                    total.dedup_keys += stats.dedup_keys;
                    total.calls += stats.calls;
                    if !stats.more || stop.is_cancelled() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention pass failed");
                    break;
                }
            }
        }
        if total.events + total.dedup_keys + total.calls > 0 {
            tracing::info!(events = total.events, dedup_keys = total.dedup_keys, calls = total.calls, "retention pass");
        }
        if let Some(idle) = services.options.call_idle_timeout
            && let Err(e) = services.expire_idle_calls(idle).await
        {
            tracing::warn!(error = %e, "idle call expiry failed");
        }
        if let Ok(counts) = store.entry_counts().await {
            for (kind, n) in counts.labeled() {
                metrics::gauge!("switchboard_store_entries", "kind" => kind).set(n as f64);
            }
        }
    }
}
