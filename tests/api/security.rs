//! Security and tenancy: TLS and mTLS over real loopback connections (test
//! certificates from rcgen), bearer tokens and roles, tenant isolation,
//! limits, deadlines, tracing context and metrics.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use serde_json::json;
use sha2::{Digest, Sha256};
use switchboard::app::FILE_WATCH_INTERVAL;
use switchboard::auth::{Role, TokenConfig};
use switchboard::cli::ClientArgs;
use switchboard::clock::ManualClock;
use switchboard::config::Config;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::call_service_client::CallServiceClient;
use switchboard::proto::v1::ingest_service_client::IngestServiceClient;
use switchboard::tls::TlsFiles;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::pki::{Pki, pki};
use crate::common::*;

fn token(name: &str, secret: &str, tenant: &str, roles: &[Role]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        sha256: hex::encode(Sha256::digest(secret)),
        tenant: tenant.into(),
        roles: roles.to_vec(),
    }
}

fn client(server: &TestServer, token: Option<&str>) -> ClientArgs {
    ClientArgs {
        addr: format!("http://{}", server.addr),
        tenant: String::new(),
        token: token.map(str::to_string),
        ca_cert: None,
        client_cert: None,
        client_key: None,
        tls_server_name: None,
    }
}

fn tls_client(server: &TestServer, pki: &Pki, mtls: bool) -> ClientArgs {
    ClientArgs {
        addr: format!("https://localhost:{}", server.addr.port()),
        ca_cert: Some(pki.ca.clone()),
        client_cert: mtls.then(|| pki.client_cert.clone()),
        client_key: mtls.then(|| pki.client_key.clone()),
        ..client(server, None)
    }
}

async fn tokens_server() -> TestServer {
    let tokens = vec![
        token("acme-bridge", "acme-all", "acme", &[Role::Ingest, Role::Subscribe, Role::Query]),
        token("acme-ingest", "acme-ingest-only", "acme", &[Role::Ingest]),
        token("globex", "globex-all", "globex", &[Role::Ingest, Role::Subscribe, Role::Query]),
        token("ops", "ops-admin", "ops", &[Role::Admin]),
    ];
    TestServer::start(Config { tokens, ..Config::for_tests() }).await
}

#[tokio::test]
async fn tls_serves_grpc_and_refuses_plaintext_clients() {
    let pki = pki("test CA");
    let tls = TlsFiles { cert: pki.server_cert.clone(), key: pki.server_key.clone(), client_ca: None };
    let server = TestServer::start(Config { tls: Some(tls), ..Config::for_tests() }).await;
    let mut ingest = IngestServiceClient::new(tls_client(&server, &pki, false).connect().await.unwrap());
    let r = ingest_sf_conn(&mut ingest, "callended", "tls-1").await;
    assert_eq!(r.outcome(), pb::IngestOutcome::Accepted);
    // A plaintext HTTP/2 client cannot talk to the TLS port.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr)).unwrap().connect().await;
    if let Ok(ch) = plain {
        let err = IngestServiceClient::new(ch)
            .ingest(request(pb::Vendor::SalesforceVoice, &sf("hold", "x", json!({}))))
            .await;
        assert!(err.is_err());
    }
    server.stop().await.unwrap();
}

async fn ingest_sf_conn<T>(client: &mut IngestServiceClient<T>, t: &str, call: &str) -> pb::IngestResponse
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: tonic::transport::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::transport::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    client.ingest(request(pb::Vendor::SalesforceVoice, &sf(t, call, json!({})))).await.unwrap().into_inner()
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_configured_ca() {
    let pki = pki("test CA");
    let other = pki_other();
    let tls = TlsFiles { cert: pki.server_cert.clone(), key: pki.server_key.clone(), client_ca: Some(pki.ca.clone()) };
    let server = TestServer::start(Config { tls: Some(tls), ..Config::for_tests() }).await;
    // Without a client certificate the handshake (or the first request) fails.
    let no_cert = async {
        let conn = tls_client(&server, &pki, false).connect().await?;
        IngestServiceClient::new(conn)
            .ingest(request(pb::Vendor::SalesforceVoice, &sf("hold", "x", json!({}))))
            .await?;
        anyhow::Ok(())
    };
    assert!(no_cert.await.is_err());
    // A certificate from another CA is refused too.
    let mut wrong = tls_client(&server, &pki, true);
    wrong.client_cert = Some(other.client_cert.clone());
    wrong.client_key = Some(other.client_key.clone());
    let wrong_ca = async {
        IngestServiceClient::new(wrong.connect().await?)
            .ingest(request(pb::Vendor::SalesforceVoice, &sf("hold", "x", json!({}))))
            .await?;
        anyhow::Ok(())
    };
    assert!(wrong_ca.await.is_err());
    let mut ingest = IngestServiceClient::new(tls_client(&server, &pki, true).connect().await.unwrap());
    assert_eq!(ingest_sf_conn(&mut ingest, "callended", "mtls-1").await.outcome(), pb::IngestOutcome::Accepted);
    server.stop().await.unwrap();
}

fn pki_other() -> Pki {
    pki("another CA")
}

fn copy_pki(from: &Pki, to: &Path) {
    std::fs::copy(&from.server_cert, to.join("tls.crt")).unwrap();
    std::fs::copy(&from.server_key, to.join("tls.key")).unwrap();
}

#[tokio::test]
async fn a_rotated_certificate_is_picked_up_without_dropping_open_streams() {
    let old = pki("old CA");
    let new = pki("new CA");
    let dir = tempfile::tempdir().unwrap();
    copy_pki(&old, dir.path());
    let tls = TlsFiles { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key"), client_ca: None };
    let server = TestServer::start(Config { tls: Some(tls), ..Config::for_tests() }).await;
    let mut calls = CallServiceClient::new(tls_client(&server, &old, false).connect().await.unwrap());
    let mut stream = calls.subscribe(live()).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.response, Some(pb::subscribe_response::Response::Checkpoint(_))));

    copy_pki(&new, dir.path());
    // New connections get the new certificate once the watcher sees it.
    let mut watches = 0;
    let mut ingest = loop {
        if let Ok(conn) = tls_client(&server, &new, false).connect().await {
            let mut c = IngestServiceClient::new(conn);
            if c.ingest(request(pb::Vendor::SalesforceVoice, &sf("callstarted", "rot", json!({})))).await.is_ok() {
                break c;
            }
        }
        assert!(watches < 3, "the new certificate was not picked up");
        skip_ahead(FILE_WATCH_INTERVAL).await;
        watches += 1;
    };
    // The stream opened with the old certificate is still alive and live.
    let r = ingest_sf_conn(&mut ingest, "hold", "rot").await;
    let update = loop {
        match tokio::time::timeout(WAIT, stream.message()).await.unwrap().unwrap().unwrap().response {
            Some(pb::subscribe_response::Response::Update(u)) if seq(&u) == r.events[0].sequence => break u,
            _ => {}
        }
    };
    assert_eq!(update.event.unwrap().call_id, "sf:rot");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn grpc_web_works_over_the_same_tls_port() {
    let pki = pki("test CA");
    let tls = TlsFiles { cert: pki.server_cert.clone(), key: pki.server_key.clone(), client_ca: None };
    let server = TestServer::start(Config { tls: Some(tls), ..Config::for_tests() }).await;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls_stream = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.unwrap();
    let msg =
        prost::Message::encode_to_vec(&request(pb::Vendor::SalesforceVoice, &sf("callended", "web-tls", json!({}))));
    let mut body = vec![0u8];
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(&msg);
    let head = format!(
        "POST /switchboard.v1.IngestService/Ingest HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls_stream.write_all(head.as_bytes()).await.unwrap();
    tls_stream.write_all(&body).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls_stream.read_to_end(&mut out)).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("grpc-status:0"), "{text}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_missing_or_unknown_token_is_unauthenticated() {
    let server = tokens_server().await;
    let no_token = IngestServiceClient::new(client(&server, None).connect().await.unwrap())
        .ingest(request(pb::Vendor::SalesforceVoice, &sf("hold", "x", json!({}))))
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), Code::Unauthenticated);
    let wrong = IngestServiceClient::new(client(&server, Some("guess")).connect().await.unwrap())
        .ingest(request(pb::Vendor::SalesforceVoice, &sf("hold", "x", json!({}))))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let sub =
        CallServiceClient::new(client(&server, None).connect().await.unwrap()).subscribe(live()).await.unwrap_err();
    assert_eq!(sub.code(), Code::Unauthenticated);
    // Health and reflection stay open (probes, grpcurl).
    let health = tonic_health::pb::health_client::HealthClient::new(server.channel().await)
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await;
    assert!(health.is_ok());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_token_without_the_role_is_permission_denied() {
    let server = tokens_server().await;
    let conn = client(&server, Some("acme-ingest-only")).connect().await.unwrap();
    let mut ingest = IngestServiceClient::new(conn.clone());
    assert_eq!(ingest_sf_conn(&mut ingest, "hold", "c").await.outcome(), pb::IngestOutcome::Accepted);
    let mut calls = CallServiceClient::new(conn);
    let err = calls.subscribe(live()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.get_details_error_info().unwrap().reason, "MISSING_ROLE");
    let err = calls.get_call(pb::GetCallRequest { call_id: "sf:c".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_tenant_comes_from_the_credential_and_a_disagreeing_tenant_id_is_denied() {
    let server = tokens_server().await;
    let mut ingest = IngestServiceClient::new(client(&server, Some("acme-all")).connect().await.unwrap());
    let r = ingest_sf_conn(&mut ingest, "callstarted", "t1").await;
    assert_eq!(r.events[0].tenant_id, "acme", "the credential's tenant, not a default");
    let mut req = request(pb::Vendor::SalesforceVoice, &sf("hold", "t1", json!({})));
    req.tenant_id = "globex".into();
    let err = ingest.ingest(req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(err.get_details_error_info().unwrap().reason, "TENANT_MISMATCH");
    req.tenant_id = "acme".into();
    assert!(ingest.ingest(req).await.is_ok(), "naming one's own tenant is fine");
    // An admin may act for any tenant.
    let mut admin = CallServiceClient::new(client(&server, Some("ops-admin")).connect().await.unwrap());
    let call = admin.get_call(pb::GetCallRequest { call_id: "sf:t1".into(), tenant_id: "acme".into() }).await.unwrap();
    assert_eq!(call.into_inner().call.unwrap().tenant_id, "acme");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_tenant_never_sees_resumes_into_lists_or_gets_another_tenants_calls() {
    let server = tokens_server().await;
    let acme = client(&server, Some("acme-all")).connect().await.unwrap();
    let globex = client(&server, Some("globex-all")).connect().await.unwrap();
    let mut acme_ingest = IngestServiceClient::new(acme.clone());
    let mut globex_ingest = IngestServiceClient::new(globex.clone());
    // The same vendor call id in both tenants: no collision, no dedup across tenants.
    let a = ingest_sf_conn(&mut acme_ingest, "callstarted", "shared-id").await;
    let g = ingest_sf_conn(&mut globex_ingest, "callstarted", "shared-id").await;
    assert_eq!(g.outcome(), pb::IngestOutcome::Accepted);
    ingest_sf_conn(&mut acme_ingest, "hold", "acme-only").await;

    let mut gcalls = CallServiceClient::new(globex);
    let mut sub = Sub::open(&mut gcalls, from_beginning()).await;
    let (seen, _) = sub.until(pb::CheckpointReason::CaughtUp).await;
    assert_eq!(seen.iter().map(seq).collect::<Vec<_>>(), vec![g.events[0].sequence]);
    // Resuming from a cursor inside acme's range still shows only globex's events.
    let mut sub = Sub::open(&mut gcalls, after(a.events[0].sequence - 1)).await;
    let (seen, _) = sub.until(pb::CheckpointReason::CaughtUp).await;
    assert!(seen.iter().all(|u| u.event.as_ref().unwrap().tenant_id == "globex"));
    let err =
        gcalls.get_call(pb::GetCallRequest { call_id: "sf:acme-only".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "another tenant's call is NOT_FOUND, not PERMISSION_DENIED");
    let shared =
        gcalls.get_call(pb::GetCallRequest { call_id: "sf:shared-id".into(), ..Default::default() }).await.unwrap();
    assert_eq!(shared.into_inner().call.unwrap().tenant_id, "globex");
    let listed = gcalls.list_calls(pb::ListCallsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.calls.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(), vec!["sf:shared-id"]);
    assert!(listed.calls.iter().all(|c| c.tenant_id == "globex"));
    let snapshot = Sub::open(&mut gcalls, pb::SubscribeRequest { include_snapshot: true, ..Default::default() })
        .await
        .next()
        .await;
    assert!(matches!(snapshot, pb::subscribe_response::Response::Snapshot(c) if c.tenant_id == "globex"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_expired_cursor_of_another_tenants_range_is_out_of_range_and_reveals_nothing_else() {
    let tokens = vec![
        token("a", "ta", "tenant-a", &[Role::Ingest, Role::Subscribe]),
        token("b", "tb", "tenant-b", &[Role::Ingest, Role::Subscribe]),
    ];
    let server = TestServer::start(Config { tokens, retention_max_events: Some(2), ..Config::for_tests() }).await;
    let mut a = IngestServiceClient::new(client(&server, Some("ta")).connect().await.unwrap());
    for i in 0..5 {
        ingest_sf_conn(&mut a, "callstarted", &format!("a{i}")).await;
    }
    server.services.store.prune(chrono::Utc::now()).await.unwrap();
    let mut b = CallServiceClient::new(client(&server, Some("tb")).connect().await.unwrap());
    let err = b.subscribe(after(1)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    let info = err.get_details_error_info().unwrap();
    assert_eq!(info.reason, "CURSOR_EXPIRED");
    assert_eq!(info.metadata.keys().collect::<Vec<_>>(), vec!["oldest_sequence"]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn grpc_web_requests_carry_the_bearer_token() {
    let server = tokens_server().await;
    let msg = prost::Message::encode_to_vec(&request(pb::Vendor::SalesforceVoice, &sf("callended", "web", json!({}))));
    let mut body = vec![0u8];
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(&msg);
    let post = |auth: &str| {
        format!(
            "POST /switchboard.v1.IngestService/Ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web+proto\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
    };
    let send = |head: String| {
        let body = body.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(&body).await.unwrap();
            let mut out = Vec::new();
            tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await.unwrap().unwrap();
            String::from_utf8_lossy(&out).to_string()
        }
    };
    assert!(send(post("")).await.contains("grpc-status: 16"), "no token: UNAUTHENTICATED");
    let ok = send(post("Authorization: Bearer acme-all\r\n")).await;
    assert!(ok.contains("grpc-status:0"), "{ok}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_rate_limited_token_gets_retry_info_and_recovers() {
    let tokens = vec![token("bridge", "secret", "acme", &[Role::Ingest])];
    let clock = ManualClock::new();
    let config = Config { tokens, rate_limit_per_second: 5.0, rate_limit_burst: 2.0, ..Config::for_tests() };
    let server = TestServer::start_with_clock(config, clock.clone()).await;
    let mut ingest = IngestServiceClient::new(client(&server, Some("secret")).connect().await.unwrap());
    let mut limited = None;
    for i in 0..5 {
        match ingest.ingest(request(pb::Vendor::SalesforceVoice, &sf("callstarted", &format!("r{i}"), json!({})))).await
        {
            Ok(_) => {}
            Err(s) => {
                limited = Some(s);
                break;
            }
        }
    }
    let status = limited.expect("the burst is exceeded");
    assert_eq!(status.code(), Code::ResourceExhausted);
    let wait = status.get_details_retry_info().and_then(|r| r.retry_delay).expect("RetryInfo");
    assert!(wait <= Duration::from_millis(200), "{wait:?}");
    clock.advance(wait + Duration::from_millis(20));
    assert!(ingest.ingest(request(pb::Vendor::SalesforceVoice, &sf("callstarted", "after", json!({})))).await.is_ok());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_changed_auth_file_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    let entry = |t: &TokenConfig| {
        format!(
            "[[tokens]]\nname = {:?}\nsha256 = {:?}\ntenant = {:?}\nroles = [\"ingest\"]\n",
            t.name, t.sha256, t.tenant
        )
    };
    std::fs::write(&file, entry(&token("old", "old-secret", "acme", &[Role::Ingest]))).unwrap();
    let server = TestServer::start(Config { auth_file: Some(file.clone()), ..Config::for_tests() }).await;
    let mut old = IngestServiceClient::new(client(&server, Some("old-secret")).connect().await.unwrap());
    assert!(old.ingest(request(pb::Vendor::SalesforceVoice, &sf("hold", "x", json!({})))).await.is_ok());
    std::fs::write(&file, entry(&token("new", "new-secret", "acme", &[Role::Ingest]))).unwrap();
    let mut new = IngestServiceClient::new(client(&server, Some("new-secret")).connect().await.unwrap());
    let mut watches = 0;
    while new.ingest(request(pb::Vendor::SalesforceVoice, &sf("resume", "x", json!({})))).await.is_err() {
        assert!(watches < 3, "the new token never worked");
        skip_ahead(FILE_WATCH_INTERVAL).await;
        watches += 1;
    }
    let err = old.ingest(request(pb::Vendor::SalesforceVoice, &sf("mute", "x", json!({})))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "the removed token no longer works");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_tenant_cannot_open_more_subscriptions_than_allowed() {
    let server = TestServer::start(Config { max_subscribers_per_tenant: 2, ..Config::for_tests() }).await;
    let mut calls = server.call_client().await;
    let first = Sub::open(&mut calls, live()).await;
    let _second = Sub::open(&mut calls, live()).await;
    let err = calls.subscribe(live()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(err.get_details_error_info().unwrap().reason, "TOO_MANY_SUBSCRIBERS");
    let other_tenant = pb::SubscribeRequest { tenant_id: "other".into(), ..Default::default() };
    assert!(calls.subscribe(other_tenant).await.is_ok(), "the limit is per tenant");
    drop(first);
    let services = server.services.clone();
    eventually("the slot is freed", || services.subscribers.total() <= 2).await;
    assert!(calls.subscribe(live()).await.is_ok());
    server.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_subscription_ends_at_the_clients_deadline() {
    let server = TestServer::memory().await;
    let mut calls = server.call_client().await;
    let mut req = tonic::Request::new(live());
    req.set_timeout(Duration::from_millis(300));
    let mut stream = calls.subscribe(req).await.unwrap().into_inner();
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(s) => return Some(s.code()),
            }
        }
    })
    .await
    .expect("the stream ends");
    assert_eq!(ended, Some(Code::DeadlineExceeded));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_w3c_traceparent_is_carried_onto_the_events() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut req = tonic::Request::new(request(pb::Vendor::SalesforceVoice, &sf("hold", "t", json!({}))));
    req.metadata_mut().insert("traceparent", tp.parse().unwrap());
    let e = ingest.ingest(req).await.unwrap().into_inner().events.remove(0);
    assert_eq!(e.attributes.get("traceparent").map(String::as_str), Some(tp));
    let mut bad = tonic::Request::new(request(pb::Vendor::SalesforceVoice, &sf("resume", "t", json!({}))));
    bad.metadata_mut().insert("traceparent", "garbage".parse().unwrap());
    let e = ingest.ingest(bad).await.unwrap().into_inner().events.remove(0);
    assert!(!e.attributes.contains_key("traceparent"), "an invalid traceparent is ignored");
    server.stop().await.unwrap();
}

/// Parses Prometheus text exposition: `name{labels} value` samples.
fn parse_prometheus(text: &str) -> HashMap<String, Vec<(String, f64)>> {
    let mut out: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad metric name {name:?}");
        out.entry(name.to_string()).or_default().push((labels.to_string(), value));
    }
    out
}

#[tokio::test]
async fn the_metrics_endpoint_is_scraped_and_parsed() {
    let config = Config { metrics_listen: Some("127.0.0.1:0".parse().unwrap()), ..Config::for_tests() };
    let server = TestServer::start(config).await;
    let mut ingest = server.ingest_client().await;
    ingest_sf(&mut ingest, "callstarted", "m1", json!({})).await;
    ingest_sf(&mut ingest, "callstarted", "m1", json!({})).await;
    let _ = ingest.ingest(request(pb::Vendor::SalesforceVoice, "{not json")).await;
    let mut calls = server.call_client().await;
    let mut sub = Sub::open(&mut calls, live()).await;
    sub.until(pb::CheckpointReason::CaughtUp).await;
    server.services.refresh_gauges().await;
    let mut s = tokio::net::TcpStream::connect(server.metrics_addr.unwrap()).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1;
    let metrics = parse_prometheus(body);
    for name in [
        "switchboard_ingest_total",
        "switchboard_ingest_rejected_total",
        "switchboard_dedup_hits_total",
        "switchboard_rpc_errors_total",
        "switchboard_normalize_seconds_bucket",
        "switchboard_store_append_seconds_bucket",
        "switchboard_subscribers",
        "switchboard_log_last_sequence",
        "switchboard_log_oldest_sequence",
        "switchboard_build_info",
    ] {
        assert!(metrics.contains_key(name), "{name} missing from /metrics:\n{body}");
    }
    let accepted = &metrics["switchboard_ingest_total"];
    assert!(accepted.iter().any(|(l, v)| l.contains("outcome=\"accepted\"") && *v >= 1.0));
    // Gauges are process-wide and other servers of this test process set
    // them too: their presence is what can be checked here.
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_new_token_from_the_cli_authenticates() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["token", "new", "--tenant", "acme", "--roles", "ingest,subscribe"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let tok = text.lines().find(|l| l.starts_with("sbt_")).expect("a token line").to_string();
    let entry = &text[text.find("[[tokens]]").unwrap()..];
    #[derive(serde::Deserialize)]
    struct File {
        tokens: Vec<TokenConfig>,
    }
    let file: File = toml::from_str(entry).unwrap();
    let server = TestServer::start(Config { tokens: file.tokens, ..Config::for_tests() }).await;
    let mut ingest = IngestServiceClient::new(client(&server, Some(&tok)).connect().await.unwrap());
    assert_eq!(ingest_sf_conn(&mut ingest, "hold", "cli").await.events[0].tenant_id, "acme");
    server.stop().await.unwrap();
}
