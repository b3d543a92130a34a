//! `switchboard connect 8x8-event-streaming` against the Pulsar stand-in.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use serde_json::Value;
use switchboard::config::Config;
use switchboard::connect::pulsar::{self, CONNECTOR, PulsarConfig};
use switchboard::proto::v1 as pb;

use crate::common::*;
use crate::pulsar_standin::{Drop, KEY, PulsarStandIn};
use crate::{Running, context, eventually, http_get, metric, settings};

const VENDOR: pb::Vendor = pb::Vendor::Vendor8x8EventStreaming;

/// One interaction's lifecycle (created, accepted, deleted), from the
/// fixtures, with `guid` as its interactionGUID.
fn interaction(guid: &str) -> Vec<Value> {
    ["interaction-created.json", "interaction-accepted.json", "interaction-deleted.json"]
        .iter()
        .map(|name| {
            let mut event: Value = serde_json::from_str(&fixture("8x8_event_streaming", name)).unwrap();
            event["Interaction"]["interactionGUID"] = Value::from(guid);
            event
        })
        .collect()
}

/// Publishes the lifecycles of `guids` interleaved (created of each, then
/// accepted of each, …), as a topic carrying several calls would.
fn publish_interleaved(broker: &PulsarStandIn, guids: &[&str]) -> Vec<String> {
    let lifecycles: Vec<Vec<Value>> = guids.iter().map(|g| interaction(g)).collect();
    let mut ids = Vec::new();
    for step in 0..3 {
        for l in &lifecycles {
            ids.push(broker.publish(&l[step]));
        }
    }
    ids
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Every 8x8 event in the server's log.
async fn logged_events(server: &TestServer) -> Vec<pb::CallEvent> {
    let mut calls = server.call_client().await;
    let mut sub = Sub::open(&mut calls, from_beginning()).await;
    let (updates, _) = sub.until(pb::CheckpointReason::CaughtUp).await;
    updates.into_iter().filter_map(|u| u.event).filter(|e| e.vendor() == VENDOR).collect()
}

/// Each Pulsar message produced its events once, and each call's events are
/// in lifecycle order.
fn assert_ingested_once_in_order(events: &[pb::CallEvent], calls: usize) {
    let mut seen = HashSet::new();
    for e in events {
        let id = e.attributes.get("messageId").cloned().unwrap_or_default();
        assert!(seen.insert((id.clone(), e.r#type)), "message {id} produced {:?} twice", e.r#type());
    }
    let mut per_call: HashMap<&str, Vec<pb::EventType>> = HashMap::new();
    for e in events {
        per_call.entry(e.call_id.as_str()).or_default().push(e.r#type());
    }
    assert_eq!(per_call.len(), calls, "{per_call:?}");
    for (call, types) in per_call {
        assert_eq!(
            types,
            vec![pb::EventType::CallStarted, pb::EventType::CallConnected, pb::EventType::CallEnded],
            "call {call}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_server_down_at_start_nothing_is_acknowledged_until_ingest_succeeds() {
    let broker = PulsarStandIn::start().await;
    let ids = publish_interleaved(&broker, &["int-down-a", "int-down-b"]);
    let addr = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(CONNECTOR, VENDOR, addr, settings(dir.path()));
    let config = PulsarConfig::new(&broker.consumer_url(), KEY).unwrap();
    let c = Running::spawn(&ctx, |s| pulsar::run(config, ctx.clone(), s));
    eventually("Ingest retried while the server is down", || {
        c.metric("switchboard_connector_retries_total", &[]) >= 4.0
    })
    .await;
    assert!(broker.acked().is_empty(), "acknowledged before Ingest succeeded: {:?}", broker.acked());
    assert_eq!(c.metric("switchboard_connector_acknowledged_total", &[]), 0.0);
    assert_eq!(c.ops.not_ready_reason(), Some("Ingest unreachable"));

    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(Config { listen: addr, ..sqlite_config(&data) }).await;
    eventually("every message acknowledged", || broker.acked().len() == ids.len()).await;
    assert_eq!(c.metric("switchboard_connector_ingested_total", &[("outcome", "accepted")]), ids.len() as f64);
    assert_eq!(c.ops.not_ready_reason(), None, "connected and Ingest reachable");
    assert_ingested_once_in_order(&logged_events(&server).await, 2);
    c.stop().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_drop_redelivers_and_every_event_is_ingested_once() {
    let server = TestServer::memory().await;
    let broker = PulsarStandIn::start().await;
    // First connection: dropped mid-stream after 4 frames. Second: every ack
    // is lost, then dropped, so everything it carried comes back again.
    broker.drop_connections(&[Drop::AfterFrames(4), Drop::AfterLostAcks]);
    let ids = publish_interleaved(&broker, &["int-drop-a", "int-drop-b", "int-drop-c"]);
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(CONNECTOR, VENDOR, server.addr, settings(dir.path()));
    let config = PulsarConfig::new(&broker.consumer_url(), KEY).unwrap();
    let c = Running::spawn(&ctx, |s| pulsar::run(config, ctx.clone(), s));
    eventually("every message acknowledged", || broker.acked().len() == ids.len()).await;

    assert!(broker.connections() >= 3, "two drops, three connections: {}", broker.connections());
    assert!(broker.lost_acks() > 0, "the second connection lost acks");
    let redelivered = ids.iter().filter(|id| broker.deliveries(id) > 1).count();
    assert!(redelivered > 0, "some messages were redelivered");
    assert!(c.metric("switchboard_connector_reconnects_total", &[]) >= 2.0);
    // Exactly once is the server's log (below). The connector's own count
    // can be lower: an Ingest in flight when its connection dropped may be
    // answered to nobody, and its redelivery comes back DUPLICATE.
    let accepted = c.metric("switchboard_connector_ingested_total", &[("outcome", "accepted")]);
    let duplicates = c.metric("switchboard_connector_ingested_total", &[("outcome", "duplicate")]);
    assert!(accepted <= ids.len() as f64, "accepted {accepted} of {} messages", ids.len());
    assert!(accepted + duplicates >= ids.len() as f64, "every message answered: {accepted} + {duplicates}");
    assert!(
        c.metric("switchboard_connector_ingested_total", &[("outcome", "duplicate")]) >= broker.lost_acks() as f64,
        "redeliveries of ingested messages come back DUPLICATE and are acknowledged"
    );
    assert!(broker.bad_acks().is_empty(), "only data messages are acknowledged: {:?}", broker.bad_acks());
    assert_ingested_once_in_order(&logged_events(&server).await, 3);
    c.stop().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_payload_is_dead_lettered_and_does_not_block_the_topic() {
    let server = TestServer::memory().await;
    let broker = PulsarStandIn::start().await;
    let good = interaction("int-dl");
    let first = broker.publish(&good[0]);
    // The interaction has no interactionGUID: Ingest answers INVALID_ARGUMENT.
    let mut bad_event = good[1].clone();
    bad_event["Interaction"].as_object_mut().unwrap().remove("interactionGUID");
    let bad = broker.publish(&bad_event);
    let rest = [broker.publish(&good[1]), broker.publish(&good[2])];
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(CONNECTOR, VENDOR, server.addr, settings(dir.path()));
    let config = PulsarConfig::new(&broker.consumer_url(), KEY).unwrap();
    let c = Running::spawn(&ctx, |s| pulsar::run(config, ctx.clone(), s));
    eventually("every message acknowledged", || broker.acked().len() == 4).await;

    assert!(broker.acked().contains(&bad), "the rejected message is acknowledged");
    assert_eq!(c.metric("switchboard_connector_dead_lettered_total", &[]), 1.0);
    assert_eq!(c.metric("switchboard_connector_ingested_total", &[("outcome", "invalid")]), 1.0);
    assert_eq!(c.metric("switchboard_connector_ingested_total", &[("outcome", "accepted")]), 3.0);
    let path = dir.path().join("dead-letters/8x8-event-streaming.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["code"], "InvalidArgument");
    let frame: Value = serde_json::from_str(lines[0]["frame"].as_str().unwrap()).unwrap();
    assert_eq!(frame["messageId"], bad.as_str(), "the whole Pulsar frame is kept");
    assert!(frame["payload"].is_string() && frame["publishTime"].is_string());
    assert!(lines[0]["violations"].to_string().contains("interactionGUID"), "{}", lines[0]);
    for id in [&first, &rest[0], &rest[1]] {
        assert!(broker.acked().contains(id));
    }
    assert_ingested_once_in_order(&logged_events(&server).await, 1);
    c.stop().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_frames_and_pings_are_never_acknowledged() {
    let server = TestServer::memory().await;
    let broker = PulsarStandIn::start().await;
    let ids = publish_interleaved(&broker, &["int-ctl"]);
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(CONNECTOR, VENDOR, server.addr, settings(dir.path()));
    let config = PulsarConfig::new(&broker.consumer_url(), KEY).unwrap();
    let c = Running::spawn(&ctx, |s| pulsar::run(config, ctx.clone(), s));
    eventually("every message acknowledged", || broker.acked().len() == ids.len()).await;
    // The stand-in sent a ping and isEndOfTopic frames before and after the data.
    assert!(c.metric("switchboard_connector_control_frames_total", &[]) >= 2.0);
    assert_eq!(c.metric("switchboard_connector_received_total", &[]), ids.len() as f64);
    assert!(broker.bad_acks().is_empty(), "acks that name no message: {:?}", broker.bad_acks());
    assert_eq!(broker.acks().len(), ids.len(), "one ack per data message, none for control frames");
    c.stop().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_ends_the_command_with_a_clear_message() {
    let broker = PulsarStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["connect", "8x8-event-streaming", "--url", &broker.consumer_url(), "--api-key", "wrong-key"])
        .args(["--addr", "http://127.0.0.1:1", "--reconnect-initial", "10ms", "--max-refusals", "3"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("SWITCHBOARD_8X8_API_KEY")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, run).await.expect("the command gives up").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit status {:?}; stderr: {stderr}", out.status);
    assert!(stderr.contains("refused the connection 3 times"), "{stderr}");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(stderr.contains("--api-key"), "names what to check: {stderr}");
    assert_eq!(broker.refused(), 3, "a bounded number of tries");
    assert_eq!(broker.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_resumes_from_its_stored_cursor_after_a_restart() {
    let server = TestServer::memory().await;
    let broker = PulsarStandIn::start().await;
    let first = publish_interleaved(&broker, &["int-rd-a"]);
    let dir = tempfile::tempdir().unwrap();
    let config = PulsarConfig::new(&broker.reader_url(), KEY).unwrap();

    let ctx = context(CONNECTOR, VENDOR, server.addr, settings(dir.path()));
    let (cfg, ctx1) = (config.clone(), ctx.clone());
    let c = Running::spawn(&ctx, |s| pulsar::run(cfg, ctx1, s));
    eventually("the first messages acknowledged", || broker.acked().len() == first.len()).await;
    c.stop().await.unwrap();
    let cursor: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("8x8-event-streaming.cursor.json")).unwrap()).unwrap();
    assert_eq!(cursor["message_id"], first[2].as_str(), "the last acknowledged message id is stored");

    let second = publish_interleaved(&broker, &["int-rd-b"]);
    let ctx = context(CONNECTOR, VENDOR, server.addr, settings(dir.path()));
    let ctx2 = ctx.clone();
    let c = Running::spawn(&ctx, |s| pulsar::run(config, ctx2, s));
    eventually("the new messages acknowledged", || broker.acked().len() == first.len() + second.len()).await;
    // The restarted reader asked for the stored id (the stand-in decodes the
    // query, so `+ / =` survived URL encoding) and got only what followed.
    assert_eq!(broker.reader_starts(), vec![Some("earliest".to_string()), Some(first[2].clone())]);
    assert!(first[2].contains(['/', '+', '=']), "the id exercises URL encoding: {}", first[2]);
    assert_eq!(c.metric("switchboard_connector_received_total", &[]), second.len() as f64);
    assert_eq!(c.metric("switchboard_connector_ingested_total", &[("outcome", "accepted")]), second.len() as f64);
    c.stop().await.unwrap();
    assert_ingested_once_in_order(&logged_events(&server).await, 2);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_the_frames_taken_in_are_finished_and_acknowledged() {
    let server = TestServer::memory().await;
    let broker = PulsarStandIn::start().await;
    let guids: Vec<String> = (0..10).map(|i| format!("int-term-{i}")).collect();
    let ids = publish_interleaved(&broker, &guids.iter().map(String::as_str).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(CONNECTOR, VENDOR, server.addr, settings(dir.path()));
    let config = PulsarConfig::new(&broker.consumer_url(), KEY).unwrap();
    let c = Running::spawn(&ctx, |s| pulsar::run(config, ctx.clone(), s));
    eventually("frames arriving", || c.metric("switchboard_connector_received_total", &[]) >= 1.0).await;
    let ops = c.ops.clone();
    c.stop().await.unwrap();
    let text = ops.metrics.render();
    let received = metric(&text, "switchboard_connector_received_total", &[]);
    let acked = metric(&text, "switchboard_connector_acknowledged_total", &[]);
    // Every frame handed to a lane was ingested and acknowledged before the
    // connector returned; at most the one being handed over is left to redelivery.
    assert!(acked >= received - 1.0 && acked >= 1.0, "received {received}, acknowledged {acked}");
    // The connector has written its last ack when it returns; the stand-in
    // reads it from its socket a moment later. An ack that never arrives
    // still fails here.
    eventually("every ack the connector sent reaches the broker", || broker.acked().len() as f64 >= acked).await;
    assert_eq!(broker.acked().len() as f64, acked);
    assert_eq!(metric(&text, "switchboard_connector_ingested_total", &[("outcome", "accepted")]), acked);
    assert!(acked <= ids.len() as f64);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_serves_health_readiness_and_metrics_and_exits_cleanly_on_sigterm() {
    let server = TestServer::memory().await;
    let broker = PulsarStandIn::start().await;
    let ids = publish_interleaved(&broker, &["int-ops"]);
    let metrics_addr = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["connect", "8x8-event-streaming", "--url", &broker.consumer_url(), "--api-key", KEY])
        .args(["--addr", &format!("http://{}", server.addr), "--metrics-listen", &metrics_addr.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Ok((200, body)) = http_get(metrics_addr, "/readyz").await {
            assert_eq!(body, "ready\n");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "/readyz never became ready");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    eventually("every message acknowledged", || broker.acked().len() == ids.len()).await;
    assert_eq!(http_get(metrics_addr, "/healthz").await.unwrap(), (200, "ok\n".to_string()));
    let (status, text) = http_get(metrics_addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    let labels = [("connector", "8x8-event-streaming")];
    assert_eq!(metric(&text, "switchboard_connector_acknowledged_total", &labels), ids.len() as f64, "{text}");
    assert_eq!(metric(&text, "switchboard_connector_ack_lag_seconds_count", &labels), ids.len() as f64, "{text}");
    assert_eq!(metric(&text, "switchboard_connector_connected", &labels), 1.0, "{text}");

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(WAIT, child.wait()).await.expect("exits after SIGTERM").unwrap();
    assert!(status.success(), "{status:?}");
    server.stop().await.unwrap();
}
