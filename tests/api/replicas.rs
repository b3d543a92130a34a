//! Scale-out on NATS JetStream: several switchboard replicas, each a
//! separate process, on one real `nats-server -js`.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::call_service_client::CallServiceClient;
use switchboard::proto::v1::ingest_service_client::IngestServiceClient;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use crate::common::nats::{NatsServer, isolated, nats_config, nats_url};
use crate::common::*;

/// A replica process on `url`, sharing the stream named by `n`.
async fn replica(n: &switchboard::store::nats::NatsOptions) -> ServerProcess {
    ServerProcess::spawn(&[
        "--store",
        "nats",
        "--nats-url",
        &n.url,
        "--nats-stream",
        &n.stream,
        "--nats-subject-prefix",
        &n.subject_prefix,
        "--nats-request-timeout",
        "2s",
    ])
    .await
}

/// A live subscription on `p`, caught up; keep the client alive with it
/// (dropping the last handle of a channel closes its connection).
async fn live_sub(p: &ServerProcess) -> (CallServiceClient<tonic::transport::Channel>, Sub) {
    let mut calls = CallServiceClient::new(p.channel().await);
    let mut sub = Sub::open(&mut calls, live()).await;
    sub.until(pb::CheckpointReason::CaughtUp).await;
    (calls, sub)
}

#[tokio::test]
async fn an_event_ingested_on_one_replica_reaches_subscribers_on_the_others_in_the_same_order() {
    let (url, _server) = nats_url().await;
    let n = isolated(&url);
    let (a, b, c) = (replica(&n).await, replica(&n).await, replica(&n).await);
    let ((_cb, mut sub_b), (_cc, mut sub_c)) = (live_sub(&b).await, live_sub(&c).await);
    let mut ingest = IngestServiceClient::new(a.channel().await);
    let mut acked = Vec::new();
    for i in 0..30 {
        let r = ingest_sf(&mut ingest, "transcript", &format!("x{}", i % 4), json!({"id": format!("u{i}")})).await;
        assert_eq!(r.outcome(), pb::IngestOutcome::Accepted);
        acked.extend(r.events.iter().map(|e| e.sequence));
    }
    let on_b: Vec<u64> = sub_b.updates(acked.len()).await.iter().map(seq).collect();
    let on_c: Vec<u64> = sub_c.updates(acked.len()).await.iter().map(seq).collect();
    assert_eq!(on_b, acked);
    assert_eq!(on_c, acked, "every replica streams the same events in the same order");
    let mut calls_b = CallServiceClient::new(b.channel().await);
    let call = get_call(&mut calls_b, "sf:x1").await;
    assert!(call.call_sequence >= 7);
}

#[tokio::test]
async fn concurrent_ingest_of_one_call_on_two_replicas_keeps_call_sequence_gap_free() {
    let (url, _server) = nats_url().await;
    let n = isolated(&url);
    let (a, b) = (replica(&n).await, replica(&n).await);
    let mut first = IngestServiceClient::new(a.channel().await);
    ingest_sf(&mut first, "callconnected", "hot", json!({})).await;
    let mut writers = Vec::new();
    for (w, p) in [&a, &b, &a, &b].into_iter().enumerate() {
        let mut client = IngestServiceClient::new(p.channel().await);
        writers.push(tokio::spawn(async move {
            for i in 0..15 {
                let r = ingest_sf(
                    &mut client,
                    "transcript",
                    "hot",
                    json!({"id": format!("w{w}-{i}"), "content": {"text": "hi"}}),
                )
                .await;
                assert_eq!(r.outcome(), pb::IngestOutcome::Accepted);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut calls = CallServiceClient::new(b.channel().await);
    let mut sub = Sub::open(
        &mut calls,
        pb::SubscribeRequest {
            filter: Some(pb::SubscribeFilter { call_ids: vec!["sf:hot".into()], ..Default::default() }),
            ..from_beginning()
        },
    )
    .await;
    let (ups, _) = sub.until(pb::CheckpointReason::CaughtUp).await;
    let call_seqs: Vec<u64> = ups.iter().map(|u| u.event.as_ref().unwrap().call_sequence).collect();
    assert_eq!(call_seqs, (1..=61).collect::<Vec<_>>(), "no lost update, no gap, log order");
    for p in [&a, &b] {
        let mut calls = CallServiceClient::new(p.channel().await);
        let call = get_call(&mut calls, "sf:hot").await;
        assert_eq!((call.call_sequence, call.transcript_count), (61, 60));
    }
}

#[tokio::test]
async fn a_duplicate_ingested_on_another_replica_is_a_duplicate() {
    let (url, _server) = nats_url().await;
    let n = isolated(&url);
    let (a, b) = (replica(&n).await, replica(&n).await);
    let mut on_a = IngestServiceClient::new(a.channel().await);
    let mut on_b = IngestServiceClient::new(b.channel().await);
    let first = ingest_sf(&mut on_a, "callended", "dup", json!({})).await;
    let again = ingest_sf(&mut on_b, "callended", "dup", json!({})).await;
    assert_eq!(again.outcome(), pb::IngestOutcome::Duplicate);
    assert_eq!(again.events, first.events);
    let mut req = request(pb::Vendor::SalesforceVoice, &sf("hold", "dup2", json!({})));
    req.request_id = "bridge-7".into();
    let first = on_a.ingest(req.clone()).await.unwrap().into_inner();
    let again = on_b.ingest(req).await.unwrap().into_inner();
    assert_eq!((again.outcome(), again.events), (pb::IngestOutcome::Duplicate, first.events));
    // The same payload on both replicas at the same moment: one copy in the log.
    let payload = sf("callstarted", "race", json!({"callType": "inbound"}));
    let (ra, rb) = tokio::join!(
        on_a.ingest(request(pb::Vendor::SalesforceVoice, &payload)),
        on_b.ingest(request(pb::Vendor::SalesforceVoice, &payload))
    );
    let outcomes: HashSet<_> = [ra.unwrap().into_inner().outcome(), rb.unwrap().into_inner().outcome()].into();
    assert!(outcomes.contains(&pb::IngestOutcome::Accepted));
    let mut calls = CallServiceClient::new(a.channel().await);
    let mut sub = Sub::open(
        &mut calls,
        pb::SubscribeRequest {
            filter: Some(pb::SubscribeFilter { call_ids: vec!["sf:race".into()], ..Default::default() }),
            ..from_beginning()
        },
    )
    .await;
    let (ups, _) = sub.until(pb::CheckpointReason::CaughtUp).await;
    assert_eq!(ups.len(), 1, "one event for the raced payload");
}

#[tokio::test]
async fn kill_9_of_a_replica_mid_ingest_loses_no_acknowledged_event() {
    let (url, _server) = nats_url().await;
    let n = isolated(&url);
    let mut a = replica(&n).await;
    let b = replica(&n).await;
    let channel = a.channel().await;
    let acked: Acked<String> = Acked::default();
    let mut writers = Vec::new();
    for w in 0..6 {
        let mut client = IngestServiceClient::new(channel.clone());
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                match client
                    .ingest(request(pb::Vendor::SalesforceVoice, &sf("callstarted", &format!("k{w}-{i}"), json!({}))))
                    .await
                {
                    Ok(r) => acked.push(r.into_inner().events[0].event_id.clone()),
                    Err(_) => return,
                }
            }
        }));
    }
    acked.at_least(150).await;
    a.kill().await;
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.all();
    let mut calls = CallServiceClient::new(b.channel().await);
    let events = replay(&mut calls, from_beginning()).await;
    let stored: HashSet<String> = events.iter().map(|u| u.event.as_ref().unwrap().event_id.clone()).collect();
    let lost = acked.iter().filter(|id| !stored.contains(*id)).count();
    assert_eq!(lost, 0, "{lost} of {} acknowledged events lost", acked.len());
}

#[tokio::test]
async fn a_nats_restart_mid_stream_resumes_subscribers_with_no_gap_and_no_duplicate() {
    let mut nats = NatsServer::start().await;
    let n = isolated(&nats.url());
    let (a, b) = (replica(&n).await, replica(&n).await);
    let (_client, mut sub) = live_sub(&b).await;
    let mut ingest = IngestServiceClient::new(a.channel().await);
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.push(ingest_sf(&mut ingest, "callstarted", &format!("before{i}"), json!({})).await.events[0].sequence);
    }
    nats.restart().await;
    for i in 0..10 {
        // Retry through the reconnect, as a bridge would on UNAVAILABLE.
        let deadline = tokio::time::Instant::now() + WAIT;
        let r = loop {
            match ingest
                .ingest(request(pb::Vendor::SalesforceVoice, &sf("callstarted", &format!("after{i}"), json!({}))))
                .await
            {
                Ok(r) => break r.into_inner(),
                Err(s) => {
                    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                    assert!(tokio::time::Instant::now() < deadline, "NATS never came back");
                    // Waits on the restarting nats-server process.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        acked.push(r.events[0].sequence);
    }
    let mut got = Vec::new();
    while got.len() < acked.len() {
        match tokio::time::timeout(Duration::from_secs(15), sub.stream.message()).await {
            Ok(Ok(Some(m))) => {
                if let Some(pb::subscribe_response::Response::Update(u)) = m.response {
                    got.push(seq(&u));
                }
            }
            other => panic!("the stream stalled after {got:?} (acked {acked:?}): {other:?}"),
        }
    }
    assert_eq!(got, acked, "the subscriber resumed with no gap and no duplicate");
}

#[tokio::test]
async fn while_nats_is_down_ingest_is_unavailable_with_retry_info_and_readiness_follows() {
    let mut nats = NatsServer::start().await;
    let server = TestServer::start(nats_config(isolated(&nats.url()))).await;
    let mut ingest = server.ingest_client().await;
    ingest_sf(&mut ingest, "callstarted", "u1", json!({})).await;
    nats.stop().await;
    let started = std::time::Instant::now();
    let err = loop {
        match ingest.ingest(request(pb::Vendor::SalesforceVoice, &sf("hold", "u1", json!({})))).await {
            Err(s) => break s,
            Ok(_) => assert!(started.elapsed() < WAIT, "ingest kept succeeding without NATS"),
        }
    };
    assert!(started.elapsed() < Duration::from_secs(5), "no hang: {:?}", started.elapsed());
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.get_details_retry_info().is_some());
    let mut health = HealthClient::new(server.channel().await);
    let mut readiness =
        health.watch(HealthCheckRequest { service: "switchboard.v1.IngestService".into() }).await.unwrap().into_inner();
    health_until(&mut readiness, ServingStatus::NotServing, "readiness drops").await;
    let liveness = health.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(liveness.status(), ServingStatus::Serving, "liveness does not depend on NATS");
    nats.restart().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while ingest.ingest(request(pb::Vendor::SalesforceVoice, &sf("hold", "u1", json!({})))).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "ingest never recovered");
        // Waits on the restarted nats-server process to take the reconnect.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    health_until(&mut readiness, ServingStatus::Serving, "readiness comes back").await;
    drop(readiness);
    server.stop().await.unwrap();
}
