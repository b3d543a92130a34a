//! Subscribe: every guarantee of DESIGN §5, on the memory and sqlite stores
//! (and the NATS store's replay tail).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use switchboard::clock::{Clock, ManualClock};
use switchboard::config::Config;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::subscribe_response::Response;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::*;

#[tokio::test]
async fn a_live_subscriber_gets_each_event_once_in_order() {
    let server = TestServer::memory().await;
    let mut calls = server.call_client().await;
    let mut sub = Sub::open(&mut calls, live()).await;
    let (replayed, head) = sub.until(pb::CheckpointReason::CaughtUp).await;
    assert!(replayed.is_empty());
    assert_eq!(head, 0);
    let mut ingest = server.ingest_client().await;
    let seqs = start_calls(&mut ingest, "live", 5).await;
    let got: Vec<u64> = sub.updates(5).await.iter().map(seq).collect();
    assert_eq!(got, seqs);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn resuming_after_the_last_sequence_seen_gives_exactly_the_rest() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    let all = start_calls(&mut ingest, "resume", 10).await;
    let mut calls = server.call_client().await;
    let first: Vec<u64> = {
        let mut sub = Sub::open(&mut calls, from_beginning()).await;
        sub.updates(4).await.iter().map(seq).collect()
    };
    assert_eq!(first, all[..4]);
    let mut sub = Sub::open(&mut calls, after(first[3])).await;
    let (rest, caught_up) = sub.until(pb::CheckpointReason::CaughtUp).await;
    assert_eq!(rest.iter().map(seq).collect::<Vec<_>>(), all[4..]);
    assert_eq!(caught_up, all[9]);
    server.stop().await.unwrap();
}

/// Subscribers that join while ingest runs must see the whole log with no
/// gap and no duplicate across the replay → live hand-off.
async fn replay_to_live_has_no_gap_or_duplicate(config: Config) {
    let server = TestServer::start(config).await;
    const N: usize = 400;
    let ingest = server.ingest_client().await;
    let (progress, acked) = tokio::sync::watch::channel(0);
    let progress = std::sync::Arc::new(progress);
    let writer = tokio::spawn(async move {
        // Several concurrent writers so the sqlite store commits in groups.
        let mut handles = Vec::new();
        for w in 0..4 {
            let mut client = ingest.clone();
            let progress = progress.clone();
            handles.push(tokio::spawn(async move {
                let mut seqs = Vec::with_capacity(N / 4);
                for i in 0..N / 4 {
                    seqs.extend(start_calls(&mut client, &format!("w{w}-{i}"), 1).await);
                    progress.send_modify(|n| *n += 1);
                }
                seqs
            }));
        }
        let mut seqs = Vec::new();
        for h in handles {
            seqs.extend(h.await.unwrap());
        }
        seqs
    });
    let mut readers = Vec::new();
    for i in 0..6 {
        let mut calls = server.call_client().await;
        let mut acked = acked.clone();
        readers.push(tokio::spawn(async move {
            // The readers join at different points of the writes.
            acked.wait_for(|n| *n >= i * N / 10).await.unwrap();
            let mut sub = Sub::open(&mut calls, from_beginning()).await;
            let mut got = Vec::with_capacity(N);
            while got.len() < N {
                got.push(seq(&sub.next_update().await));
            }
            got
        }));
    }
    let acked = writer.await.unwrap();
    let expected: Vec<u64> = {
        let mut v = acked.clone();
        v.sort_unstable();
        v
    };
    assert_eq!(expected, (1..=N as u64).collect::<Vec<_>>(), "sequences are gap-free");
    for r in readers {
        let got = r.await.unwrap();
        assert_eq!(got, expected, "each subscriber sees every event once, in log order");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn replay_to_live_has_no_gap_or_duplicate_under_concurrent_ingest_memory() {
    replay_to_live_has_no_gap_or_duplicate(Config::for_tests()).await;
}

#[tokio::test]
async fn replay_to_live_has_no_gap_or_duplicate_under_concurrent_ingest_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    replay_to_live_has_no_gap_or_duplicate(sqlite_config(&dir)).await;
}

#[tokio::test]
async fn a_cursor_older_than_retention_is_out_of_range_with_cursor_expired() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(Config { retention_max_events: Some(5), ..sqlite_config(&dir) }).await;
    let mut ingest = server.ingest_client().await;
    start_calls(&mut ingest, "old", 20).await;
    let stats = server.services.store.prune(chrono::Utc::now()).await.unwrap();
    assert_eq!(stats.events, 15);
    let mut calls = server.call_client().await;
    let err = calls.subscribe(after(3)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "CURSOR_EXPIRED");
    assert_eq!(info.metadata["oldest_sequence"], "16");
    // The boundary cursor is still valid and gives exactly what is left.
    let mut sub = Sub::open(&mut calls, after(15)).await;
    let (rest, _) = sub.until(pb::CheckpointReason::CaughtUp).await;
    assert_eq!(rest.iter().map(seq).collect::<Vec<_>>(), (16..=20).collect::<Vec<_>>());
    // from_beginning starts at the oldest available event.
    let mut sub = Sub::open(&mut calls, from_beginning()).await;
    assert_eq!(seq(&sub.next_update().await), 16);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_cursor_beyond_the_log_is_out_of_range() {
    let server = TestServer::memory().await;
    let err = server.call_client().await.subscribe(after(1000)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(err.get_details_error_info().unwrap().reason, "CURSOR_AHEAD");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_snapshot_lists_active_calls_then_marks_its_end_then_streams_updates() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    ingest_sf(&mut ingest, "callconnected", "active-1", json!({"callType": "inbound"})).await;
    ingest_sf(&mut ingest, "callconnected", "ended-1", json!({"callType": "outbound"})).await;
    ingest_sf(&mut ingest, "callended", "ended-1", json!({})).await;
    let last = ingest_sf(&mut ingest, "hold", "active-2", json!({})).await.events[0].sequence;

    let mut calls = server.call_client().await;
    let mut sub = Sub::open(&mut calls, pb::SubscribeRequest { include_snapshot: true, ..Default::default() }).await;
    let mut snapshot = Vec::new();
    let marker = loop {
        match sub.next().await {
            Response::Snapshot(c) => snapshot.push(c.call_id),
            Response::Checkpoint(c) => break c,
            Response::Update(u) => panic!("update before the snapshot ended: {u:?}"),
        }
    };
    assert_eq!(snapshot, vec!["sf:active-1", "sf:active-2"], "only active calls, oldest first");
    assert_eq!((marker.reason(), marker.sequence), (pb::CheckpointReason::SnapshotComplete, last));
    let next = ingest_sf(&mut ingest, "resume", "active-2", json!({})).await.events[0].sequence;
    assert_eq!(seq(&sub.next_update().await), next);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_snapshot_can_be_filtered_and_combined_with_a_replay_start() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    ingest_sf(&mut ingest, "callconnected", "in", json!({"callType": "inbound"})).await;
    ingest_sf(&mut ingest, "callconnected", "out", json!({"callType": "outbound"})).await;
    let mut calls = server.call_client().await;
    let req = pb::SubscribeRequest {
        include_snapshot: true,
        start: Some(pb::subscribe_request::Start::FromBeginning(true)),
        filter: Some(pb::SubscribeFilter { directions: vec![pb::Direction::Outbound as i32], ..Default::default() }),
        ..Default::default()
    };
    let mut sub = Sub::open(&mut calls, req).await;
    assert!(matches!(sub.next().await, Response::Snapshot(c) if c.call_id == "sf:out"));
    assert!(
        matches!(sub.next().await, Response::Checkpoint(c) if c.reason() == pb::CheckpointReason::SnapshotComplete)
    );
    let (replayed, _) = sub.until(pb::CheckpointReason::CaughtUp).await;
    assert_eq!(replayed.iter().map(|u| u.event.as_ref().unwrap().call_id.clone()).collect::<Vec<_>>(), vec!["sf:out"]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn filters_select_by_call_type_direction_and_vendor() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    ingest_sf(&mut ingest, "callstarted", "a", json!({"callType": "inbound"})).await;
    ingest_sf(&mut ingest, "callstarted", "b", json!({"callType": "outbound"})).await;
    ingest_sf(&mut ingest, "hold", "a", json!({})).await;
    ingest_sf(&mut ingest, "hold", "b", json!({})).await;
    let mut calls = server.call_client().await;
    let run = |filter: pb::SubscribeFilter| {
        let mut calls = calls.clone();
        async move {
            let req = pb::SubscribeRequest {
                filter: Some(filter),
                start: Some(pb::subscribe_request::Start::FromBeginning(true)),
                ..Default::default()
            };
            let mut sub = Sub::open(&mut calls, req).await;
            let (ups, _) = sub.until(pb::CheckpointReason::CaughtUp).await;
            ups.iter().map(seq).collect::<Vec<_>>()
        }
    };
    assert_eq!(run(pb::SubscribeFilter { call_ids: vec!["sf:a".into()], ..Default::default() }).await, vec![1, 3]);
    assert_eq!(
        run(pb::SubscribeFilter { types: vec![pb::EventType::CallHeld as i32], ..Default::default() }).await,
        vec![3, 4]
    );
    assert_eq!(
        run(pb::SubscribeFilter { directions: vec![pb::Direction::Outbound as i32], ..Default::default() }).await,
        vec![2, 4]
    );
    let both = pb::SubscribeFilter {
        call_ids: vec!["sf:a".into()],
        types: vec![pb::EventType::CallHeld as i32],
        ..Default::default()
    };
    assert_eq!(run(both).await, vec![3]);
    assert_eq!(
        run(pb::SubscribeFilter { vendors: vec![pb::Vendor::Xelion as i32], ..Default::default() }).await,
        Vec::<u64>::new()
    );
    // Live updates are filtered the same way.
    let mut sub = Sub::open(
        &mut calls,
        pb::SubscribeRequest {
            filter: Some(pb::SubscribeFilter { call_ids: vec!["sf:b".into()], ..Default::default() }),
            ..Default::default()
        },
    )
    .await;
    sub.until(pb::CheckpointReason::CaughtUp).await;
    ingest_sf(&mut ingest, "resume", "a", json!({})).await;
    let b = ingest_sf(&mut ingest, "resume", "b", json!({})).await.events[0].sequence;
    assert_eq!(seq(&sub.next_update().await), b);
    server.stop().await.unwrap();
}

/// A client with a small HTTP/2 window, so that not reading pushes back onto
/// the server after a few events instead of after megabytes of client buffer.
async fn slow_reader(server: &TestServer) -> pb::call_service_client::CallServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .initial_stream_window_size(Some(16 * 1024))
        .initial_connection_window_size(Some(16 * 1024))
        .connect()
        .await
        .unwrap();
    pb::call_service_client::CallServiceClient::new(channel)
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_moved_to_the_log_and_loses_nothing() {
    let server = TestServer::start(Config { subscriber_buffer: 4, ..Config::for_tests() }).await;
    let mut calls = slow_reader(&server).await;
    let mut slow = Sub::open(&mut calls, live()).await;
    slow.until(pb::CheckpointReason::CaughtUp).await;
    let mut ingest = server.ingest_client().await;
    let seqs = start_calls(&mut ingest, "flood", 300).await;
    assert!(server.services.hub.lag_events() > 0, "the slow subscriber overflowed its live queue");
    let got: Vec<u64> = slow.updates(300).await.iter().map(seq).collect();
    assert_eq!(got, seqs, "it caught up from the log with no gap and no duplicate");
    // And it is live again afterwards.
    let next = start_calls(&mut ingest, "after", 1).await;
    assert_eq!(seq(&slow.next_update().await), next[0]);
    server.stop().await.unwrap();
}

/// The NATS store serves a lagging subscriber from its replay tail (the
/// records its consumer published), and a cursor within the tail resumes
/// there too: nothing lost, nothing twice, in order.
#[tokio::test]
async fn on_nats_a_lagging_subscriber_and_a_recent_cursor_read_the_tail_and_lose_nothing() {
    let (url, _nats) = crate::common::nats::nats_url().await;
    let config =
        Config { subscriber_buffer: 4, ..crate::common::nats::nats_config(crate::common::nats::isolated(&url)) };
    let server = TestServer::start(config).await;
    let mut calls = slow_reader(&server).await;
    let mut slow = Sub::open(&mut calls, live()).await;
    slow.until(pb::CheckpointReason::CaughtUp).await;
    let mut ingest = server.ingest_client().await;
    let seqs = start_calls(&mut ingest, "flood", 300).await;
    let got: Vec<u64> = slow.updates(300).await.iter().map(seq).collect();
    assert!(server.services.hub.lag_events() > 0, "the slow subscriber overflowed its live queue");
    assert_eq!(got, seqs, "it caught up from the log with no gap and no duplicate");
    let mut fresh = server.call_client().await;
    let mut resumed = Sub::open(&mut fresh, after(seqs[149])).await;
    let (replayed, _) = resumed.until(pb::CheckpointReason::CaughtUp).await;
    assert_eq!(replayed.iter().map(seq).collect::<Vec<_>>(), seqs[150..], "a resume within the tail");
    let next = start_calls(&mut ingest, "after", 1).await;
    assert_eq!(seq(&slow.next_update().await), next[0]);
    assert_eq!(seq(&resumed.next_update().await), next[0]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_caught_up_from_beginning_subscriber_whose_cursor_retention_overtook_gets_cursor_expired() {
    let config = Config { subscriber_buffer: 4, retention_max_events: Some(20), ..Config::for_tests() };
    let server = TestServer::start(config).await;
    let mut calls = slow_reader(&server).await;
    let mut slow = Sub::open(&mut calls, from_beginning()).await;
    slow.until(pb::CheckpointReason::CaughtUp).await;
    let mut ingest = server.ingest_client().await;
    start_calls(&mut ingest, "flood", 300).await;
    assert!(server.services.hub.lag_events() > 0, "the slow subscriber overflowed its live queue");
    // Retention overtakes the lagging subscriber's cursor before it reads on.
    server.services.store.prune(chrono::Utc::now()).await.unwrap();
    let mut got = Vec::new();
    let err = loop {
        match tokio::time::timeout(WAIT, slow.stream.message()).await.expect("no stall") {
            Ok(Some(m)) => {
                if let Some(pb::subscribe_response::Response::Update(u)) = m.response {
                    got.push(seq(&u));
                }
            }
            Ok(None) => panic!("the stream ended without an error after {got:?}"),
            Err(status) => break status,
        }
    };
    assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>(), "no gap before the error");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_eq!(err.get_details_error_info().unwrap().reason, "CURSOR_EXPIRED");
    server.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn heartbeats_carry_a_fresh_cursor_even_for_a_filtered_subscriber() {
    let server = TestServer::memory().await;
    let mut calls = server.call_client().await;
    let req = pb::SubscribeRequest {
        filter: Some(pb::SubscribeFilter { call_ids: vec!["sf:nobody".into()], ..Default::default() }),
        heartbeat_interval: Some(prost_types::Duration { seconds: 0, nanos: 100_000_000 }),
        ..Default::default()
    };
    let mut sub = Sub::open(&mut calls, req).await;
    sub.until(pb::CheckpointReason::CaughtUp).await;
    let mut ingest = server.ingest_client().await;
    let seqs = start_calls(&mut ingest, "other", 3).await;
    loop {
        let (updates, cursor) = sub.until(pb::CheckpointReason::Heartbeat).await;
        assert!(updates.is_empty(), "the filter passes nothing");
        if cursor == seqs[2] {
            break;
        }
        assert!(cursor < seqs[2]);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_heartbeat_interval_out_of_bounds_is_rejected() {
    let server = TestServer::memory().await;
    let req = pb::SubscribeRequest {
        heartbeat_interval: Some(prost_types::Duration { seconds: 0, nanos: 1_000 }),
        ..Default::default()
    };
    assert_eq!(server.call_client().await.subscribe(req).await.unwrap_err().code(), Code::InvalidArgument);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_disconnected_subscriber_frees_its_slot_at_once() {
    let server = TestServer::memory().await;
    let mut calls = server.call_client().await;
    let mut sub = Sub::open(&mut calls, live()).await;
    sub.until(pb::CheckpointReason::CaughtUp).await;
    assert_eq!(server.services.hub.subscribers(), 1);
    drop(sub);
    let hub = server.services.hub.clone();
    eventually("the hub forgets the subscriber", || hub.subscribers() == 0).await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn since_starts_at_the_first_event_received_at_that_time() {
    let clock = ManualClock::new();
    let server = TestServer::start_with_clock(Config::for_tests(), clock.clone()).await;
    let mut ingest = server.ingest_client().await;
    start_calls(&mut ingest, "before", 3).await;
    clock.advance(Duration::from_millis(20));
    let cut = clock.now();
    let later = start_calls(&mut ingest, "after", 2).await;
    let req = pb::SubscribeRequest {
        start: Some(pb::subscribe_request::Start::Since(switchboard::codec::convert::timestamp(cut))),
        ..Default::default()
    };
    let mut sub = Sub::open(&mut server.call_client().await, req).await;
    let (got, _) = sub.until(pb::CheckpointReason::CaughtUp).await;
    assert_eq!(got.iter().map(seq).collect::<Vec<_>>(), later);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn tenants_only_see_their_own_events() {
    let server = TestServer::memory().await;
    let mut calls = server.call_client().await;
    let mut sub_a = Sub::open(&mut calls, pb::SubscribeRequest { tenant_id: "a".into(), ..Default::default() }).await;
    sub_a.until(pb::CheckpointReason::CaughtUp).await;
    let mut ingest = server.ingest_client().await;
    let mut req = request(pb::Vendor::SalesforceVoice, &sf("hold", "x", json!({})));
    req.tenant_id = "b".into();
    ingest.ingest(req.clone()).await.unwrap();
    req.tenant_id = "a".into();
    let a = ingest.ingest(req).await.unwrap().into_inner().events[0].sequence;
    let u = sub_a.next_update().await;
    assert_eq!((seq(&u), u.event.unwrap().tenant_id.as_str()), (a, "a"));
    let mut replay = Sub::open(&mut calls, pb::SubscribeRequest { tenant_id: "b".into(), ..from_beginning() }).await;
    let (b_events, _) = replay.until(pb::CheckpointReason::CaughtUp).await;
    let tenants: HashSet<_> = b_events.iter().map(|u| u.event.as_ref().unwrap().tenant_id.clone()).collect();
    assert_eq!(tenants, HashSet::from(["b".to_string()]));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn every_update_carries_the_call_after_the_event() {
    let server = TestServer::memory().await;
    let mut ingest = server.ingest_client().await;
    ingest_sf(&mut ingest, "callconnected", "c", json!({})).await;
    ingest_sf(&mut ingest, "hold", "c", json!({})).await;
    let mut sub = Sub::open(&mut server.call_client().await, from_beginning()).await;
    let ups = sub.updates(2).await;
    let call = ups[1].call.as_ref().unwrap();
    assert_eq!(
        (call.state(), call.on_hold, call.call_sequence, call.last_sequence),
        (pb::CallState::OnHold, true, 2, 2)
    );
    assert_eq!(ups[0].call.as_ref().unwrap().state(), pb::CallState::Connected);
    server.stop().await.unwrap();
}
