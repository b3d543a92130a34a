//! The operations HTTP port: `/metrics` (Prometheus text), `/healthz`
//! (the process is up) and `/readyz` (serving and the store is healthy).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::store::Store;

/// What the handlers read.
#[derive(Clone)]
pub struct OpsState {
    /// Renders the metrics.
    pub metrics: PrometheusHandle,
    /// False once shutdown began.
    pub serving: Arc<AtomicBool>,
    /// The store, for readiness.
    pub store: Arc<dyn Store>,
}

async fn metrics(State(s): State<OpsState>) -> String {
    s.metrics.render()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<OpsState>) -> (StatusCode, &'static str) {
    if !s.serving.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if !s.store.is_healthy() {
        (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

/// Serves the operations endpoints until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: OpsState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
