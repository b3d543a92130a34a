//! OTLP trace export (cargo feature `otlp`): spans reach a collector and
//! continue the caller's W3C trace. Run with `cargo test --features otlp --test otlp`.
#![cfg(feature = "otlp")]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use switchboard::config::LogFormat;
use switchboard::proto::v1 as pb;

/// A collector that remembers (span name, trace id hex) pairs, and says
/// when an export arrived.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<(String, String)>>>, Arc<tokio::sync::Notify>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut seen = self.0.lock().unwrap();
        for rs in &request.get_ref().resource_spans {
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    seen.push((span.name.clone(), hex::encode(&span.trace_id)));
                }
            }
        }
        self.1.notify_one();
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test]
async fn rpc_spans_are_exported_and_continue_the_callers_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let svc = collector.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(svc))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    switchboard::telemetry::init_logging(LogFormat::Text, "info", Some(&endpoint));

    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = tonic::Request::new(request(pb::Vendor::SalesforceVoice, &sf("hold", "otel", serde_json::json!({}))));
    req.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    ingest.ingest(req).await.unwrap();

    // The flush waits for the export, which the collector on this runtime
    // answers: it runs on a blocking thread.
    tokio::task::spawn_blocking(switchboard::telemetry::otlp::flush).await.unwrap();
    let seen = collector.0.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.lock().unwrap().iter().any(|(name, id)| name == "Ingest" && id == trace_id) {
        // A span that ended after the flush comes with the next export.
        let exported = tokio::time::timeout_at(deadline, collector.1.notified()).await;
        assert!(exported.is_ok(), "no Ingest span in the caller's trace: {:?}", seen.lock().unwrap());
    }
    server.stop().await.unwrap();
}
