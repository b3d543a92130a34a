//! A connector's operations: its Prometheus metrics and readiness, served on
//! `--metrics-listen` as `/metrics`, `/healthz` (the process is up) and
//! `/readyz` (connected to the vendor and Ingest reachable).
//!
//! Each connector has its own registry rather than the process-wide one of
//! the server, so a connector embedded next to a server (the tests) reports
//! only its own numbers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::proto::v1 as pb;

/// Lag buckets, seconds: from a local broker (milliseconds) to a connector
/// that was down for minutes.
const LAG_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Gap buckets, seconds: a quick reconnect to a long outage.
const GAP_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// The metrics of one connector (every series carries `connector="…"`).
pub struct ConnectorMetrics {
    handle: PrometheusHandle,
    /// Frames that are messages (data frames; Xelion notifications).
    pub received: Counter,
    /// Frames that are not events (Pulsar `isEndOfTopic`, frames without a
    /// `messageId`, Xelion `test` echoes and replies); never acknowledged.
    pub control_frames: Counter,
    accepted: Counter,
    duplicate: Counter,
    ignored: Counter,
    invalid: Counter,
    /// Acknowledgements sent to the broker.
    pub acknowledged: Counter,
    /// Frames appended to the dead-letter file.
    pub dead_lettered: Counter,
    /// Ingest attempts that are retried (UNAVAILABLE, RESOURCE_EXHAUSTED, no server).
    pub retries: Counter,
    /// Vendor connections reopened after a drop or a failed attempt.
    pub reconnects: Counter,
    /// Seconds from the broker's `publishTime` to our acknowledgement.
    pub ack_lag: Histogram,
    /// Reconnect gaps of a source without replay (Xelion).
    pub gaps: Counter,
    /// How long each such gap lasted, seconds.
    pub gap_seconds: Histogram,
    /// 1 while the vendor connection is open.
    pub connected: Gauge,
}

impl ConnectorMetrics {
    fn new(connector: &'static str) -> ConnectorMetrics {
        let recorder: PrometheusRecorder = PrometheusBuilder::new()
            .add_global_label("connector", connector)
            .set_buckets_for_metric(Matcher::Full("switchboard_connector_ack_lag_seconds".into()), LAG_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("switchboard_connector_gap_seconds".into()), GAP_BUCKETS)
            })
            .expect("static buckets are valid")
            .build_recorder();
        let meta = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
        let counter =
            |name: &'static str, labels: Vec<Label>| recorder.register_counter(&Key::from_parts(name, labels), &meta);
        let ingested = |outcome: &'static str| {
            counter("switchboard_connector_ingested_total", vec![Label::new("outcome", outcome)])
        };
        let describe =
            |name: &'static str, help: &'static str| recorder.describe_counter(name.into(), None, help.into());
        describe("switchboard_connector_received_total", "Vendor messages received");
        describe("switchboard_connector_ingested_total", "Ingest answers by outcome (invalid: INVALID_ARGUMENT)");
        describe("switchboard_connector_acknowledged_total", "Messages acknowledged to the broker");
        describe("switchboard_connector_dead_lettered_total", "Messages appended to the dead-letter file");
        describe("switchboard_connector_retries_total", "Ingest attempts retried with backoff");
        describe("switchboard_connector_reconnects_total", "Vendor connections reopened");
        describe(
            "switchboard_connector_gaps_total",
            "Reconnect gaps of a source without replay (events in them are lost)",
        );
        ConnectorMetrics {
            handle: recorder.handle(),
            received: counter("switchboard_connector_received_total", vec![]),
            control_frames: counter("switchboard_connector_control_frames_total", vec![]),
            accepted: ingested("accepted"),
            duplicate: ingested("duplicate"),
            ignored: ingested("ignored"),
            invalid: ingested("invalid"),
            acknowledged: counter("switchboard_connector_acknowledged_total", vec![]),
            dead_lettered: counter("switchboard_connector_dead_lettered_total", vec![]),
            retries: counter("switchboard_connector_retries_total", vec![]),
            reconnects: counter("switchboard_connector_reconnects_total", vec![]),
            ack_lag: recorder.register_histogram(&Key::from_name("switchboard_connector_ack_lag_seconds"), &meta),
            gaps: counter("switchboard_connector_gaps_total", vec![]),
            gap_seconds: recorder.register_histogram(&Key::from_name("switchboard_connector_gap_seconds"), &meta),
            connected: recorder.register_gauge(&Key::from_name("switchboard_connector_connected"), &meta),
        }
    }

    /// Counts an Ingest answer.
    pub fn ingested(&self, outcome: pb::IngestOutcome) {
        match outcome {
            pb::IngestOutcome::Accepted => self.accepted.increment(1),
            pb::IngestOutcome::Duplicate => self.duplicate.increment(1),
            pb::IngestOutcome::Ignored | pb::IngestOutcome::Unspecified => self.ignored.increment(1),
        }
    }

    /// Counts an INVALID_ARGUMENT answer.
    pub fn rejected(&self) {
        self.invalid.increment(1);
    }

    /// The Prometheus text of every series.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// A connector's metrics and readiness, shared by its tasks and its HTTP port.
pub struct Ops {
    /// Which connector (`8x8-event-streaming`, `xelion`).
    pub connector: &'static str,
    /// Its metrics.
    pub metrics: ConnectorMetrics,
    connected: AtomicBool,
    ingest_reachable: AtomicBool,
    draining: AtomicBool,
}

impl Ops {
    /// Fresh operations state: not connected, Ingest not yet known reachable.
    pub fn new(connector: &'static str) -> Arc<Ops> {
        Arc::new(Ops {
            connector,
            metrics: ConnectorMetrics::new(connector),
            connected: AtomicBool::new(false),
            ingest_reachable: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        })
    }

    /// The vendor connection opened or closed.
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Release);
        self.metrics.connected.set(if up { 1.0 } else { 0.0 });
    }

    /// Whether the last word from Ingest (an answer or a health check) says
    /// it is reachable.
    pub fn set_ingest_reachable(&self, up: bool) {
        self.ingest_reachable.store(up, Ordering::Release);
    }

    /// Shutdown began: not ready any more.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Why the connector is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::Acquire) {
            Some("draining")
        } else if !self.connected.load(Ordering::Acquire) {
            Some("not connected to the vendor")
        } else if !self.ingest_reachable.load(Ordering::Acquire) {
            Some("Ingest unreachable")
        } else {
            None
        }
    }
}

async fn metrics(State(ops): State<Arc<Ops>>) -> String {
    ops.metrics.render()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(ops): State<Arc<Ops>>) -> (StatusCode, String) {
    match ops.not_ready_reason() {
        None => (StatusCode::OK, "ready\n".into()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown`.
pub async fn serve(listener: TcpListener, ops: Arc<Ops>, shutdown: CancellationToken) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ops);
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

/// Folds buffered histogram samples into their buckets every few seconds, so
/// a connector nobody scrapes does not grow (see `telemetry::UPKEEP_INTERVAL`).
pub async fn upkeep(ops: Arc<Ops>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => ops.metrics.handle.run_upkeep(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_the_connector_label() {
        let ops = Ops::new("xelion");
        ops.metrics.received.increment(2);
        ops.metrics.ingested(pb::IngestOutcome::Duplicate);
        ops.metrics.gap_seconds.record(3.0);
        let text = ops.metrics.render();
        assert!(text.contains(r#"switchboard_connector_received_total{connector="xelion"} 2"#), "{text}");
        assert!(
            text.contains(r#"switchboard_connector_ingested_total{connector="xelion",outcome="duplicate"} 1"#)
                || text.contains(r#"switchboard_connector_ingested_total{outcome="duplicate",connector="xelion"} 1"#),
            "{text}"
        );
        assert!(text.contains("switchboard_connector_gap_seconds_sum"), "{text}");
    }

    #[test]
    fn ready_only_while_connected_and_ingest_reachable() {
        let ops = Ops::new("xelion");
        assert_eq!(ops.not_ready_reason(), Some("not connected to the vendor"));
        ops.set_connected(true);
        assert_eq!(ops.not_ready_reason(), Some("Ingest unreachable"));
        ops.set_ingest_reachable(true);
        assert_eq!(ops.not_ready_reason(), None);
        ops.set_draining();
        assert_eq!(ops.not_ready_reason(), Some("draining"));
    }
}
