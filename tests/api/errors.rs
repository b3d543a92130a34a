//! Bad input: a clear status with details, nothing stored, the server goes on.

use switchboard::config::Config;
use switchboard::proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::*;

async fn last_sequence(server: &TestServer) -> u64 {
    server.services.store.bounds().await.unwrap().last
}

#[tokio::test]
async fn invalid_json_is_rejected_with_the_parser_position() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    // The documented Salesforce transcript sample: a comma is missing.
    let doc_sample = "{\n  \"type\": \"transcript\",\n  \"detail\": {\n    \"id\": \"3115b389\"\n    \"clientSentTimestamp\": 1594944652299\n  }\n}";
    let err = ingest.ingest(request(pb::Vendor::SalesforceVoice, doc_sample)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let br = err.get_details_bad_request().expect("BadRequest details");
    assert_eq!(br.field_violations[0].field, "payload");
    assert!(br.field_violations[0].description.contains("line 5"), "{}", br.field_violations[0].description);
    assert_eq!(last_sequence(&server).await, 0, "nothing is stored");
    // The server goes on serving.
    ingest_sf(&mut ingest, "callended", "c1", serde_json::json!({})).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_missing_required_field_is_named_by_its_json_path() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let err = ingest.ingest(request(pb::Vendor::SalesforceVoice, r#"{"type":"hold","detail":{}}"#)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.get_details_bad_request().unwrap().field_violations[0].field, "detail.callId");
    assert_eq!(err.get_details_error_info().unwrap().domain, "switchboard");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversize_payload_is_resource_exhausted() {
    let server = TestServer::start(Config { max_payload_bytes: 1024, ..Config::for_tests() }).await;
    let mut ingest = server.ingest_client().await;
    let big = format!(r#"{{"type":"note","detail":{{"callId":"c1","content":{{"text":"{}"}}}}}}"#, "x".repeat(2000));
    let err = ingest.ingest(request(pb::Vendor::SalesforceVoice, &big)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(err.get_details_error_info().unwrap().reason, "PAYLOAD_TOO_LARGE");
    assert_eq!(last_sequence(&server).await, 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_message_over_the_grpc_limit_is_resource_exhausted_naming_the_limit() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let big = format!(
        r#"{{"type":"note","detail":{{"callId":"c1","content":{{"text":"{}"}}}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let err = ingest.ingest(request(pb::Vendor::SalesforceVoice, &big)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("limit of 1048576 bytes"), "{}", err.message());
    assert_eq!(last_sequence(&server).await, 0);
    // A cursor error keeps its own code.
    let mut calls = server.call_client().await;
    let req =
        pb::SubscribeRequest { start: Some(pb::subscribe_request::Start::AfterSequence(99)), ..Default::default() };
    assert_ne!(calls.subscribe(req).await.map(|_| ()).unwrap_err().code(), Code::ResourceExhausted);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_default_payload_limit_is_256_kib() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let big =
        format!(r#"{{"type":"note","detail":{{"callId":"c1","content":{{"text":"{}"}}}}}}"#, "x".repeat(256 * 1024));
    assert_eq!(
        ingest.ingest(request(pb::Vendor::SalesforceVoice, &big)).await.unwrap_err().code(),
        Code::ResourceExhausted
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_vendor_enum_value_is_invalid_argument() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let mut req = request(pb::Vendor::SalesforceVoice, &sf("hold", "c1", serde_json::json!({})));
    req.vendor = 99;
    let err = ingest.ingest(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.get_details_bad_request().unwrap().field_violations[0].field, "vendor");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_undetectable_payload_names_the_shapes_tried() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let err = ingest.ingest(request(pb::Vendor::Unspecified, r#"{"hello":"world"}"#)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("Salesforce Voice {type, detail}"), "{}", err.message());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_request_fields_are_rejected() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let mut req = request(pb::Vendor::SalesforceVoice, &sf("hold", "c1", serde_json::json!({})));
    req.tenant_id = "bad tenant!".into();
    assert_eq!(ingest.ingest(req.clone()).await.unwrap_err().code(), Code::InvalidArgument);
    req.tenant_id = String::new();
    req.request_id = "r".repeat(500);
    let err = ingest.ingest(req.clone()).await.unwrap_err();
    assert_eq!(err.get_details_bad_request().unwrap().field_violations[0].field, "request_id");
    req.request_id = String::new();
    req.payload = Vec::new().into();
    assert_eq!(ingest.ingest(req).await.unwrap_err().code(), Code::InvalidArgument);

    let mut calls = server.call_client().await;
    let bad_filter = pb::SubscribeRequest {
        filter: Some(pb::SubscribeFilter { types: vec![0, 500], ..Default::default() }),
        ..Default::default()
    };
    let err = calls.subscribe(bad_filter).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<_> =
        err.get_details_bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, vec!["filter.types[0]", "filter.types[1]"]);
    server.stop().await.unwrap();
}
