//! Ingest: the pipeline end to end, idempotency, vendor detection.

use std::time::Duration;

use serde_json::json;
use switchboard::clock::ManualClock;
use switchboard::config::Config;
use switchboard::proto::v1 as pb;

use crate::common::*;

#[tokio::test]
async fn a_salesforce_call_flows_through_to_call_state() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let started =
        ingest_sf(&mut ingest, "callstarted", "c1", json!({"callType": "inbound", "participant": "+1 (415) 555-0132"}))
            .await;
    assert_eq!(started.outcome(), pb::IngestOutcome::Accepted);
    assert_eq!(started.vendor(), pb::Vendor::SalesforceVoice);
    let e = &started.events[0];
    assert_eq!((e.r#type(), e.state(), e.call_sequence), (pb::EventType::CallStarted, pb::CallState::Initiated, 1));
    assert_eq!(e.call_id, "sf:c1");
    assert_eq!(e.parties[0].e164, "+14155550132");
    for t in ["callconnected", "hold", "resume", "callended"] {
        ingest_sf(&mut ingest, t, "c1", json!({})).await;
    }
    let call = get_call(&mut server.call_client().await, "sf:c1").await;
    assert_eq!(call.state(), pb::CallState::Ended);
    assert_eq!(call.outcome(), pb::CallOutcome::Completed);
    assert_eq!((call.call_sequence, call.hold_count, call.direction()), (5, 1, pb::Direction::Inbound));
    assert!(call.answered_at.is_some() && call.ended_at.is_some());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_same_request_id_returns_the_first_response_and_publishes_nothing() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let mut calls = server.call_client().await;
    let mut sub = Sub::open(&mut calls, live()).await;
    sub.until(pb::CheckpointReason::CaughtUp).await;

    let mut req = request(pb::Vendor::SalesforceVoice, &sf("hold", "c1", json!({})));
    req.request_id = "bridge-42".into();
    let first = ingest.ingest(req.clone()).await.unwrap().into_inner();
    let again = ingest.ingest(req).await.unwrap().into_inner();
    assert_eq!(first.outcome(), pb::IngestOutcome::Accepted);
    assert_eq!(again.outcome(), pb::IngestOutcome::Duplicate);
    assert_eq!(again.events, first.events, "a duplicate returns the events of the first delivery");

    // Exactly one update reaches the subscriber: the next one is a later event.
    ingest_sf(&mut ingest, "resume", "c1", json!({})).await;
    let updates = sub.updates(2).await;
    assert_eq!(updates[0].event.as_ref().unwrap().r#type(), pb::EventType::CallHeld);
    assert_eq!(updates[1].event.as_ref().unwrap().r#type(), pb::EventType::CallResumed);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_id_is_a_duplicate_within_the_dedup_window_only() {
    let clock = ManualClock::new();
    let config = Config { dedup_window: Duration::from_secs(3600), ..Config::for_tests() };
    let server = TestServer::start_with_clock(config, clock.clone()).await;
    let mut ingest = server.ingest_client().await;
    let mut req = request(pb::Vendor::SalesforceVoice, &sf("transcript", "w1", json!({"id": "u1"})));
    req.request_id = "bridge-7".into();
    let first = ingest.ingest(req.clone()).await.unwrap().into_inner();
    assert_eq!(first.outcome(), pb::IngestOutcome::Accepted);
    clock.advance(Duration::from_secs(3599));
    let retry = ingest.ingest(req.clone()).await.unwrap().into_inner();
    assert_eq!((retry.outcome(), &retry.events), (pb::IngestOutcome::Duplicate, &first.events), "within the window");
    clock.advance(Duration::from_secs(2));
    let late = ingest.ingest(req).await.unwrap().into_inner();
    assert_eq!(late.outcome(), pb::IngestOutcome::Accepted, "the window has passed");
    assert_ne!(late.events[0].sequence, first.events[0].sequence);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_repeated_state_is_a_duplicate_but_the_same_content_after_other_events_is_new() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    ingest_sf(&mut ingest, "callconnected", "c1", json!({})).await;
    let hold = ingest_sf(&mut ingest, "hold", "c1", json!({})).await;
    let retry = ingest_sf(&mut ingest, "hold", "c1", json!({})).await;
    assert_eq!(retry.outcome(), pb::IngestOutcome::Duplicate);
    assert_eq!(retry.events, hold.events);
    ingest_sf(&mut ingest, "resume", "c1", json!({})).await;
    let second_hold = ingest_sf(&mut ingest, "hold", "c1", json!({})).await;
    assert_eq!(second_hold.outcome(), pb::IngestOutcome::Accepted, "hold, resume, hold: the second hold is real");
    assert_eq!(second_hold.events[0].call_sequence, 4);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn vendor_unspecified_detects_the_vendor_from_the_payload() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let r =
        ingest.ingest(request(pb::Vendor::Unspecified, &sf("callended", "c9", json!({})))).await.unwrap().into_inner();
    assert_eq!(r.vendor(), pb::Vendor::SalesforceVoice);
    assert_eq!(r.outcome(), pb::IngestOutcome::Accepted);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_vendor_event_type_is_ignored_and_stores_nothing() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let r = ingest
        .ingest(request(pb::Vendor::SalesforceVoice, &sf("callerverified", "c1", json!({}))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.outcome(), pb::IngestOutcome::Ignored);
    assert!(r.events.is_empty());
    assert_eq!(server.services.store.bounds().await.unwrap().last, 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn tenants_do_not_share_calls_or_dedup_keys() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let mut a = request(pb::Vendor::SalesforceVoice, &sf("callended", "same", json!({})));
    a.tenant_id = "tenant-a".into();
    let mut b = a.clone();
    b.tenant_id = "tenant-b".into();
    assert_eq!(ingest.ingest(a).await.unwrap().into_inner().outcome(), pb::IngestOutcome::Accepted);
    assert_eq!(
        ingest.ingest(b).await.unwrap().into_inner().outcome(),
        pb::IngestOutcome::Accepted,
        "same vendor ids, other tenant: not a duplicate"
    );
    let mut calls = server.call_client().await;
    let get = |tenant: &str| pb::GetCallRequest { call_id: "sf:same".into(), tenant_id: tenant.into() };
    assert!(calls.get_call(get("tenant-a")).await.is_ok());
    assert_eq!(calls.get_call(get("tenant-c")).await.unwrap_err().code(), tonic::Code::NotFound);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_bridge_receive_time_is_the_event_time_when_the_vendor_gives_none() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let mut req = request(pb::Vendor::SalesforceVoice, &sf("hold", "c1", json!({})));
    req.received_at = Some(prost_types::Timestamp { seconds: 1_751_445_666, nanos: 0 });
    let e = ingest.ingest(req).await.unwrap().into_inner().events.remove(0);
    assert_eq!(e.occurred_at.unwrap().seconds, 1_751_445_666);
    assert_eq!(e.attributes["occurred_at_source"], "bridge");
    assert!(e.received_at.unwrap().seconds > 1_751_445_666);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn identical_content_recurring_later_in_a_call_gets_its_own_event_id() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    ingest_sf(&mut ingest, "callconnected", "c1", json!({})).await;
    let first = ingest_sf(&mut ingest, "hold", "c1", json!({})).await;
    ingest_sf(&mut ingest, "resume", "c1", json!({})).await;
    let second = ingest_sf(&mut ingest, "hold", "c1", json!({})).await;
    assert_ne!(first.events[0].event_id, second.events[0].event_id);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_8x8_event_read_from_two_overlapping_topics_is_ingested_once() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let frame: serde_json::Value =
        serde_json::from_str(&fixture("8x8_event_streaming", "frame-interaction-created.json")).unwrap();
    let first =
        ingest.ingest(request(pb::Vendor::Vendor8x8EventStreaming, &frame.to_string())).await.unwrap().into_inner();
    assert_eq!(first.outcome(), pb::IngestOutcome::Accepted);
    // The same event on another topic: another Pulsar messageId, same inner event.
    let mut other_topic = frame.clone();
    other_topic["messageId"] = json!("CAQQBw==");
    let again = ingest
        .ingest(request(pb::Vendor::Vendor8x8EventStreaming, &other_topic.to_string()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.outcome(), pb::IngestOutcome::Duplicate);
    assert_eq!(again.events, first.events);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_call_that_never_ends_is_closed_once_as_expired_and_stays_closed() {
    let clock = ManualClock::new();
    let idle = Duration::from_secs(3600);
    let config = Config { call_idle_timeout: Some(idle), ..Config::for_tests() };
    let server = TestServer::start_with_clock(config, clock.clone()).await;
    let mut ingest = server.ingest_client().await;
    let mut calls = server.call_client().await;
    let mut sub = Sub::open(&mut calls, live()).await;
    ingest_sf(&mut ingest, "callconnected", "lost-hangup", json!({"callType": "inbound"})).await;
    ingest_sf(&mut ingest, "callconnected", "finished", json!({"callType": "inbound"})).await;
    ingest_sf(&mut ingest, "callended", "finished", json!({})).await;
    assert_eq!(sub.updates(3).await.len(), 3);

    clock.advance(idle / 2);
    assert_eq!(server.services.expire_idle_calls(idle).await.unwrap(), 0, "not idle long enough");
    clock.advance(idle);
    assert_eq!(server.services.expire_idle_calls(idle).await.unwrap(), 1);
    assert_eq!(server.services.expire_idle_calls(idle).await.unwrap(), 0, "closed once");

    let update = sub.next_update().await;
    let event = update.event.unwrap();
    assert_eq!((event.call_id.as_str(), event.r#type()), ("sf:lost-hangup", pb::EventType::CallEnded));
    assert_eq!(event.vendor_event_type, "switchboard.CallExpired");
    let Some(pb::call_event::Detail::Ended(ended)) = event.detail else { panic!("an ended detail") };
    assert_eq!(ended.outcome(), pb::CallOutcome::Expired);
    let call = update.call.unwrap();
    assert_eq!((call.state(), call.outcome()), (pb::CallState::Ended, pb::CallOutcome::Expired));

    // The lost hang-up arrives after all: recorded, the call stays closed.
    let late = ingest_sf(&mut ingest, "hold", "lost-hangup", json!({})).await;
    assert_eq!(late.outcome(), pb::IngestOutcome::Accepted);
    assert_eq!(late.events[0].state(), pb::CallState::Ended);
    server.stop().await.unwrap();
}
