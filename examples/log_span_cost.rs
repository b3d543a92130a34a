//! What an RPC's log span costs when nothing is logged in it: the span the
//! server opens per RPC (`grpc::rpc::span`), the four fields an Ingest
//! records on it, under the JSON log layer the server installs, with
//! tracing-subscriber's own `JsonFields` and with ours (`AppendJsonFields`),
//! alternating in one process (BENCHMARKS.md, "Round two, twelfth sitting").
//!
//! `cargo run --release --example log_span_cost`

use std::time::Instant;

use switchboard::grpc::rpc;
use switchboard::telemetry::AppendJsonFields;
use tracing_subscriber::layer::SubscriberExt;

const SPANS: usize = 200_000;

/// Nanoseconds per span: open the server's own RPC span, record what an
/// Ingest records, close it.
fn spans() -> f64 {
    let request =
        http::Request::builder().uri("/switchboard.v1.IngestService/Ingest").body(()).expect("a valid request");
    let started = Instant::now();
    for i in 0..SPANS {
        let span = rpc::span(&request);
        span.record("tenant", "acme");
        span.record("vendor", "8x8_event_streaming");
        span.record("outcome", "accepted");
        span.record("call_id", if i % 2 == 0 { "ohWfVIbHJz2Hr2JFhAfdlb4Fa-1a2b" } else { "186ba647df1ef222-00000001" });
    }
    started.elapsed().as_secs_f64() * 1e9 / SPANS as f64
}

fn main() {
    let layer = || {
        tracing_subscriber::fmt::layer().with_writer(std::io::sink).json().flatten_event(true).with_current_span(true)
    };
    for round in 1..=3 {
        let theirs = tracing::subscriber::with_default(tracing_subscriber::registry().with(layer()), spans);
        let ours = tracing::subscriber::with_default(
            tracing_subscriber::registry().with(layer().fmt_fields(AppendJsonFields)),
            spans,
        );
        println!(
            "round {round}: ns per RPC span (open, 4 records, close): JsonFields {theirs:.0}, AppendJsonFields {ours:.0}, ratio {:.2}",
            ours / theirs
        );
    }
}
