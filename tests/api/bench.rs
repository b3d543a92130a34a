//! `switchboard.bench.v1.BenchService` (cargo feature `bench`: `cargo test
//! --features bench --test api bench`): served only with
//! `--enable-bench-service`; the no-op stream carries what NoopPublish
//! publishes, wire-compatible with a Subscribe update.

use prost::Message as _;
use switchboard::config::Config;
use switchboard::proto::bench::v1 as bench;
use switchboard::proto::bench::v1::bench_service_client::BenchServiceClient;
use switchboard::proto::v1 as pb;

use crate::common::{TestServer, WAIT};

fn update(sequence: u64) -> pb::CallUpdate {
    pb::CallUpdate {
        event: Some(pb::CallEvent { sequence, call_id: "sf:bench".into(), ..Default::default() }),
        call: None,
    }
}

#[tokio::test]
async fn the_bench_service_is_off_by_default() {
    let server = TestServer::memory().await;
    let err = BenchServiceClient::new(server.channel().await)
        .noop(bench::NoopRequest::default())
        .await
        .expect_err("not served");
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn noop_counts_and_noop_subscribe_streams_what_noop_publish_publishes() {
    let server = TestServer::start(Config { enable_bench_service: true, ..Config::for_tests() }).await;
    let mut client = BenchServiceClient::new(server.channel().await);
    // The same bytes as an IngestRequest.
    let ingest = pb::IngestRequest {
        vendor: pb::Vendor::SalesforceVoice as i32,
        payload: b"{}".to_vec().into(),
        request_id: "r".into(),
        ..Default::default()
    };
    let noop = bench::NoopRequest::decode(ingest.encode_to_vec().as_slice()).unwrap();
    assert_eq!(noop.encode_to_vec(), ingest.encode_to_vec());
    assert_eq!(client.noop(noop.clone()).await.unwrap().into_inner().count, 1);
    assert_eq!(client.noop(noop).await.unwrap().into_inner().count, 2);

    let replayed = update(7);
    let mut stream = client
        .noop_subscribe(bench::NoopSubscribeRequest { replay_update: replayed.encode_to_vec().into(), replay_count: 2 })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..2 {
        let msg = tokio::time::timeout(WAIT, stream.message()).await.unwrap().unwrap().unwrap();
        assert_eq!(msg.update, Some(replayed.clone()));
    }
    let published = update(42);
    let r = client
        .noop_publish(bench::NoopPublishRequest { update: published.encode_to_vec().into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.sequence, r.subscribers), (1, 1));
    let msg = tokio::time::timeout(WAIT, stream.message()).await.unwrap().unwrap().unwrap();
    // Wire-compatible with SubscribeResponse { update }.
    let as_subscribe = pb::SubscribeResponse::decode(msg.encode_to_vec().as_slice()).unwrap();
    assert_eq!(as_subscribe.response, Some(pb::subscribe_response::Response::Update(published)));
    server.stop().await.unwrap();
}
