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

/// A collector that remembers (span name, trace id hex) pairs.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<(String, String)>>>);

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

    let seen = collector.0.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        switchboard::telemetry::otlp::flush();
        if seen.lock().unwrap().iter().any(|(name, id)| name == "Ingest" && id == trace_id) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Ingest span in the caller's trace: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.stop().await.unwrap();
}
