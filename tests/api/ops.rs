//! Operations: health, reflection, gRPC-Web and CORS, metrics, graceful
//! shutdown.

use std::time::Duration;

use prost::Message;
use switchboard::clock::ManualClock;
use switchboard::config::Config;
use switchboard::proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::*;

async fn health(channel: tonic::transport::Channel, service: &str) -> ServingStatus {
    HealthClient::new(channel)
        .check(HealthCheckRequest { service: service.into() })
        .await
        .unwrap()
        .into_inner()
        .status()
}

#[tokio::test]
async fn health_reports_the_server_and_each_service() {
    let server = TestServer::memory().await;
    for name in ["", "switchboard.v1.IngestService", "switchboard.v1.CallService"] {
        assert_eq!(health(server.channel().await, name).await, ServingStatus::Serving, "{name:?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_drains_health_then_sends_a_final_checkpoint_and_ends_streams() {
    let server = TestServer::start(Config { drain_delay: Duration::from_millis(500), ..Config::for_tests() }).await;
    let channel = server.channel().await;
    let mut ingest = server.ingest_client().await;
    let seqs = start_calls(&mut ingest, "s", 2).await;
    let mut calls = server.call_client().await;
    let mut sub = Sub::open(&mut calls, live()).await;
    sub.until(pb::CheckpointReason::CaughtUp).await;
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest { service: "switchboard.v1.CallService".into() })
        .await
        .unwrap()
        .into_inner();
    let stopping = tokio::spawn(server.stop());
    // While draining, the server still answers but says NOT_SERVING.
    health_until(&mut watch, ServingStatus::NotServing, "NOT_SERVING while draining").await;
    drop(watch);
    assert_eq!(health(channel.clone(), "switchboard.v1.CallService").await, ServingStatus::NotServing);
    let (_, last) = sub.until(pb::CheckpointReason::Shutdown).await;
    assert_eq!(last, seqs[1], "the final checkpoint is a resume cursor");
    let end = tokio::time::timeout(WAIT, sub.stream.message()).await.unwrap();
    assert!(matches!(end, Ok(None)), "the stream ends cleanly: {end:?}");
    stopping.await.unwrap().unwrap();
}

async fn reflection_v1(
    channel: tonic::transport::Channel,
    req: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> tonic_reflection::pb::v1::server_reflection_response::MessageResponse {
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_client::ServerReflectionClient};
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(req) };
    let mut stream = client.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap().message_response.unwrap()
}

#[tokio::test]
async fn reflection_v1_lists_the_services_and_serves_every_file_grpcurl_needs() {
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest as Req;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse as Resp;
    let server = TestServer::memory().await;
    let Resp::ListServicesResponse(list) =
        reflection_v1(server.channel().await, Req::ListServices(String::new())).await
    else {
        panic!("not a list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["switchboard.v1.IngestService", "switchboard.v1.CallService", "grpc.health.v1.Health"] {
        assert!(names.contains(&want.to_string()), "{want} in {names:?}");
    }
    // Like `grpcurl describe`: the file of the symbol, then every dependency by name.
    let Resp::FileDescriptorResponse(files) =
        reflection_v1(server.channel().await, Req::FileContainingSymbol("switchboard.v1.CallService".into())).await
    else {
        panic!("not a file response")
    };
    let mut pending: Vec<String> = Vec::new();
    for f in &files.file_descriptor_proto {
        let fd = prost_types::FileDescriptorProto::decode(f.as_slice()).unwrap();
        pending.extend(fd.dependency);
    }
    assert!(pending.iter().any(|d| d == "google/protobuf/timestamp.proto"), "{pending:?}");
    for dep in pending {
        let resp = reflection_v1(server.channel().await, Req::FileByFilename(dep.clone())).await;
        assert!(matches!(resp, Resp::FileDescriptorResponse(_)), "{dep} resolves: {resp:?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_serves_the_error_details_our_statuses_carry() {
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest as Req;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse as Resp;
    let server = TestServer::memory().await;
    // What grpcurl asks to decode `grpc-status-details-bin`: the detail types.
    for symbol in ["google.rpc.BadRequest", "google.rpc.ErrorInfo", "google.rpc.RetryInfo", "google.rpc.Status"] {
        let resp = reflection_v1(server.channel().await, Req::FileContainingSymbol(symbol.into())).await;
        let Resp::FileDescriptorResponse(files) = resp else { panic!("{symbol} is not served: {resp:?}") };
        let names: Vec<String> = files
            .file_descriptor_proto
            .iter()
            .map(|f| prost_types::FileDescriptorProto::decode(f.as_slice()).unwrap().name().to_string())
            .collect();
        assert!(names.iter().any(|n| n.starts_with("google/rpc/")), "{symbol}: {names:?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_v1alpha_is_served_too() {
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as Req;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as Resp;
    use tonic_reflection::pb::v1alpha::{ServerReflectionRequest, server_reflection_client::ServerReflectionClient};
    let server = TestServer::memory().await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(Req::ListServices(String::new())) };
    let mut stream = client.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let Resp::ListServicesResponse(list) = stream.message().await.unwrap().unwrap().message_response.unwrap() else {
        panic!()
    };
    assert!(list.service.iter().any(|s| s.name == "switchboard.v1.IngestService"));
    server.stop().await.unwrap();
}

/// Sends a raw HTTP/1.1 request and returns the whole response.
async fn http1(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await.unwrap().unwrap();
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[tokio::test]
async fn grpc_web_over_http1_ingests_with_cors_for_browser_relays() {
    let server = TestServer::memory().await;
    let req = request(pb::Vendor::SalesforceVoice, &sf("callended", "web-1", serde_json::json!({})));
    let msg = req.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(&msg);
    let head = format!(
        "POST /switchboard.v1.IngestService/Ingest HTTP/1.1\r\nHost: {}\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nOrigin: https://mycompany.lightning.force.com\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        body.len()
    );
    let resp = http1(server.addr, &head, &body).await;
    assert!(resp.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&resp));
    assert!(contains(&resp, "access-control-allow-origin: https://mycompany.lightning.force.com"));
    assert!(contains(&resp, "grpc-status:0"), "{}", String::from_utf8_lossy(&resp));
    let call = server
        .call_client()
        .await
        .get_call(pb::GetCallRequest { call_id: "sf:web-1".into(), ..Default::default() })
        .await;
    assert!(call.is_ok(), "the gRPC-Web ingest was stored");

    let preflight = format!(
        "OPTIONS /switchboard.v1.IngestService/Ingest HTTP/1.1\r\nHost: {}\r\nOrigin: https://mycompany.lightning.force.com\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,x-grpc-web,authorization\r\nConnection: close\r\n\r\n",
        server.addr
    );
    let resp = http1(server.addr, &preflight, b"").await;
    assert!(resp.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&resp));
    assert!(contains(&resp, "access-control-allow-headers"), "{}", String::from_utf8_lossy(&resp));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_ops_port_serves_metrics_liveness_and_readiness() {
    let config = Config { metrics_listen: Some("127.0.0.1:0".parse().unwrap()), ..Config::for_tests() };
    let server = TestServer::start(config).await;
    let mut ingest = server.ingest_client().await;
    start_calls(&mut ingest, "m", 2).await;
    let ops = server.metrics_addr.unwrap();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let metrics = http1(ops, &get("/metrics"), b"").await;
    let text = String::from_utf8_lossy(&metrics);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("switchboard_ingest_total{"), "{text}");
    assert!(http1(ops, &get("/healthz"), b"").await.starts_with(b"HTTP/1.1 200"));
    assert!(http1(ops, &get("/readyz"), b"").await.starts_with(b"HTTP/1.1 200"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_health_only_listener_answers_probes_in_plaintext() {
    let config = Config { health_listen: Some("127.0.0.1:0".parse().unwrap()), ..Config::for_tests() };
    let app = switchboard::app::App::build(config).await.unwrap();
    let addr = app.health_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(app.run(stop.clone()));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    assert_eq!(health(channel.clone(), "switchboard.v1.CallService").await, ServingStatus::Serving);
    let not_there =
        pb::call_service_client::CallServiceClient::new(channel).get_call(pb::GetCallRequest::default()).await;
    assert_eq!(not_there.unwrap_err().code(), tonic::Code::Unimplemented, "only health is served there");
    stop.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_retention_loop_prunes_by_the_servers_clock() {
    let clock = ManualClock::new();
    let config = Config { retention_max_age: Some(Duration::from_secs(3600)), ..Config::for_tests() };
    let server = TestServer::start_with_clock(config.clone(), clock.clone()).await;
    let mut ingest = server.ingest_client().await;
    let old = start_calls(&mut ingest, "old", 3).await;
    clock.advance(Duration::from_secs(2 * 3600));
    let new = start_calls(&mut ingest, "new", 1).await;
    skip_ahead(config.retention_interval).await;
    let store = server.services.store.clone();
    let pass = async {
        while store.bounds().await.unwrap().pruned_through < old[2] {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, pass).await.expect("a retention pass");
    let kept = replay(&mut server.call_client().await, from_beginning()).await;
    assert_eq!(kept.iter().map(seq).collect::<Vec<_>>(), new, "only the events younger than the max age");
    server.stop().await.unwrap();
}
