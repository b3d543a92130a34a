//! Durability of the sqlite store: restarts keep events, call state and dedup
//! keys; `kill -9` loses no acknowledged event.

use serde_json::json;
use switchboard::proto::v1 as pb;

use crate::common::*;

#[tokio::test]
async fn events_call_state_and_dedup_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(sqlite_config(&dir)).await;
    let mut ingest = server.ingest_client().await;
    let first = ingest_sf(&mut ingest, "callconnected", "r1", json!({"callType": "inbound"})).await;
    ingest_sf(&mut ingest, "hold", "r1", json!({})).await;
    let mut with_id = request(pb::Vendor::SalesforceVoice, &sf("resume", "r1", json!({})));
    with_id.request_id = "req-1".into();
    ingest.ingest(with_id.clone()).await.unwrap();
    server.stop().await.unwrap();

    let server = TestServer::start(sqlite_config(&dir)).await;
    let mut ingest = server.ingest_client().await;
    let again = ingest_sf(&mut ingest, "callconnected", "r1", json!({"callType": "inbound"})).await;
    assert_eq!(again.outcome(), pb::IngestOutcome::Duplicate, "natural-key dedup survives");
    assert_eq!(again.events, first.events);
    assert_eq!(
        ingest.ingest(with_id).await.unwrap().into_inner().outcome(),
        pb::IngestOutcome::Duplicate,
        "request-id dedup survives"
    );
    let call = server
        .call_client()
        .await
        .get_call(pb::GetCallRequest { call_id: "sf:r1".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    assert_eq!((call.call_sequence, call.hold_count, call.state()), (3, 1, pb::CallState::Connected));
    let next = ingest_sf(&mut ingest, "callended", "r1", json!({})).await;
    assert_eq!((next.events[0].sequence, next.events[0].call_sequence), (4, 4), "sequences continue after a restart");
    let all = replay(&mut server.call_client().await, from_beginning()).await;
    assert_eq!(all.iter().map(seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn kill_9_mid_ingest_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().to_string();
    let mut server = ServerProcess::spawn(&["--store", "sqlite", "--data-dir", &data]).await;
    let channel = server.channel().await;
    let acked: Acked<(String, String, u64)> = Acked::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let mut client = pb::ingest_service_client::IngestServiceClient::new(channel.clone());
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let payload = sf(
                    "callstarted",
                    &format!("k{w}-{i}"),
                    json!({"callType": "inbound", "participant": "+14155550100"}),
                );
                match client.ingest(request(pb::Vendor::SalesforceVoice, &payload)).await {
                    Ok(r) => {
                        let e = &r.get_ref().events[0];
                        acked.push((payload, e.event_id.clone(), e.sequence));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    acked.at_least(300).await;
    server.kill().await;
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.all();

    let restarted = ServerProcess::spawn(&["--store", "sqlite", "--data-dir", &data]).await;
    let channel = restarted.channel().await;
    let mut calls = pb::call_service_client::CallServiceClient::new(channel.clone());
    let events = replay(&mut calls, from_beginning()).await;
    let stored: std::collections::HashSet<String> =
        events.iter().map(|u| u.event.as_ref().unwrap().event_id.clone()).collect();
    let lost: Vec<_> = acked.iter().filter(|(_, id, _)| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged events lost", lost.len(), acked.len());
    let seqs: Vec<u64> = events.iter().map(seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "the log has no hole");
    // Dedup keys were committed with the events.
    let mut ingest = pb::ingest_service_client::IngestServiceClient::new(channel);
    let (payload, id, _) = &acked[acked.len() / 2];
    let again = ingest.ingest(request(pb::Vendor::SalesforceVoice, payload)).await.unwrap().into_inner();
    assert_eq!(again.outcome(), pb::IngestOutcome::Duplicate);
    assert_eq!(&again.events[0].event_id, id);
}
