//! Build and run: what `main` and the tests both call. [`App::build`] binds
//! the sockets before it returns, so tests connect without sleeping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use crate::adapters::{Normalizer, PhoneNormalizer};
use crate::config::{Config, ConfigError, StoreKind};
use crate::grpc::server;
use crate::http::{self, OpsState};
use crate::hub::Hub;
use crate::service::{ServiceOptions, Services};
use crate::store::memory::MemoryStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError, StoreOptions};
use crate::telemetry;

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
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
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
}

impl App {
    /// Opens the store and binds the sockets.
    pub async fn build(config: Config) -> Result<App, AppError> {
        config.validate()?;
        let hub = Hub::new(config.subscriber_buffer);
        let store = open_store(&config, hub.clone()).await?;
        let phone = PhoneNormalizer::new(&config.default_region).map_err(ConfigError::Invalid)?;
        let services = Arc::new(Services {
            store,
            hub,
            normalizer: Normalizer::new(phone),
            options: ServiceOptions {
                max_payload_bytes: config.max_payload_bytes,
                heartbeat_interval: config.heartbeat_interval,
                ..ServiceOptions::default()
            },
            shutdown: CancellationToken::new(),
        });
        let listener = bind(config.listen).await?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let health_listener = match config.health_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(App { config, listener, metrics_listener, health_listener, services })
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
        let App { config, listener, metrics_listener, health_listener, services } = self;
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
        let health_watch = tokio::spawn(health_loop(reporter.clone(), services.store.clone(), serving.clone()));

        let ops = metrics_listener.map(|l| {
            let state = OpsState {
                metrics: telemetry::metrics_handle(),
                serving: serving.clone(),
                store: services.store.clone(),
            };
            tokio::spawn(http::serve(l, state, stop_server.clone().cancelled_owned()))
        });
        let retention =
            tokio::spawn(retention_loop(services.store.clone(), config.retention_interval, stop_server.clone()));

        let grpc = server::serve(
            &config,
            services.clone(),
            health,
            TcpListenerStream::new(listener),
            stop_server.clone().cancelled_owned(),
        );
        tokio::pin!(grpc);
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
        services.store.close().await?;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr).await.map_err(|source| AppError::Bind { addr, source })
}

/// Opens the configured store.
pub async fn open_store(config: &Config, hub: Arc<Hub>) -> Result<Arc<dyn Store>, AppError> {
    let opts = StoreOptions {
        dedup_window: config.dedup_window,
        correlation_window: config.correlation_window,
        retention_max_age: config.retention_max_age,
        retention_max_events: config.retention_max_events,
    };
    Ok(match config.store {
        StoreKind::Memory => Arc::new(MemoryStore::new(hub, opts)),
        StoreKind::Sqlite => Arc::new(SqliteStore::open(&config.data_dir, hub, opts).await?),
        StoreKind::Nats => {
            return Err(ConfigError::Invalid("the nats store is not available in this build".into()).into());
        }
    })
}

/// Keeps readiness in step with the store's health.
async fn health_loop(reporter: tonic_health::server::HealthReporter, store: Arc<dyn Store>, serving: Arc<AtomicBool>) {
    let mut last = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
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

/// Applies retention periodically.
async fn retention_loop(store: Arc<dyn Store>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.prune(chrono::Utc::now()).await {
            Ok(stats) if stats.events + stats.dedup_keys + stats.calls > 0 => {
                tracing::info!(
                    events = stats.events,
                    dedup_keys = stats.dedup_keys,
                    calls = stats.calls,
                    "retention pass"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention pass failed"),
        }
    }
}
