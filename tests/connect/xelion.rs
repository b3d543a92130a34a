//! `switchboard connect xelion` against the Xelion stand-in.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use switchboard::connect::xelion::{self, CONNECTOR, Credential, NOTIFICATIONS, XelionConfig};
use switchboard::proto::v1 as pb;

use crate::common::*;
use crate::xelion_standin::{PASSWORD, USER, XelionStandIn};
use crate::{Running, context, eventually, settings};

const VENDOR: pb::Vendor = pb::Vendor::Xelion;

fn notification(name: &str) -> Value {
    serde_json::from_str(&fixture("xelion", name)).unwrap()
}

fn login() -> Credential {
    Credential::Login { username: USER.into(), password: PASSWORD.into(), user_space: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_ingest_and_a_reconnect_gap_is_counted() {
    let server = TestServer::memory().await;
    let pbx = XelionStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(CONNECTOR, VENDOR, server.addr, settings(dir.path()));
    let config = XelionConfig::new(&pbx.base_url(), login(), Duration::from_millis(100)).unwrap();
    let c = Running::spawn(&ctx, |s| xelion::run(config, ctx.clone(), s));

    let all: HashSet<String> = NOTIFICATIONS.iter().map(|s| s.to_string()).collect();
    eventually("subscribed to the call notifications", || pbx.subscriptions(0).as_ref() == Some(&all)).await;
    assert_eq!(pbx.logins(), 1, "logged in with --username/--password");
    pbx.send(notification("newCallEvent-inbound.json"));
    pbx.send(notification("callConnectedEvent.json"));
    // Not subscribed: Xelion never sends it.
    pbx.send(notification("presenceListEvent.json"));
    eventually("two notifications accepted", || {
        c.metric("switchboard_connector_ingested_total", &[("outcome", "accepted")]) == 2.0
    })
    .await;
    eventually("keepalive test messages echoed", || pbx.echoed_tests() >= 2).await;
    assert_eq!(c.ops.not_ready_reason(), None);
    assert_eq!(c.metric("switchboard_connector_gaps_total", &[]), 0.0);

    pbx.drop_sockets();
    eventually("the connector noticed the drop", || c.metric("switchboard_connector_connected", &[]) == 0.0).await;
    // Sent while nobody is subscribed: Xelion has no replay.
    pbx.send(notification("missedCallEvent.json"));
    eventually("resubscribed on a new socket", || pbx.subscriptions(1).as_ref() == Some(&all)).await;
    eventually("the gap is counted", || c.metric("switchboard_connector_gaps_total", &[]) == 1.0).await;
    assert_eq!(c.metric("switchboard_connector_gap_seconds_count", &[]), 1.0);
    assert!(c.metric("switchboard_connector_gap_seconds_sum", &[]) > 0.0, "the gap has a duration");
    assert_eq!(c.metric("switchboard_connector_reconnects_total", &[]), 1.0);
    assert_eq!(pbx.lost(), 2, "the unsubscribed presence event and the one sent during the gap");

    pbx.send(notification("callHungUpEvent.json"));
    eventually("the hang-up accepted", || {
        c.metric("switchboard_connector_ingested_total", &[("outcome", "accepted")]) == 3.0
    })
    .await;
    c.stop().await.unwrap();

    let mut calls = server.call_client().await;
    let mut sub = Sub::open(&mut calls, from_beginning()).await;
    let (updates, _) = sub.until(pb::CheckpointReason::CaughtUp).await;
    let types: Vec<pb::EventType> =
        updates.iter().filter_map(|u| u.event.as_ref()).filter(|e| e.vendor() == VENDOR).map(|e| e.r#type()).collect();
    assert_eq!(types, vec![pb::EventType::CallStarted, pb::EventType::CallConnected, pb::EventType::CallEnded]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_ends_the_connector_after_bounded_tries() {
    let server = TestServer::memory().await;
    let pbx = XelionStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(CONNECTOR, VENDOR, server.addr, settings(dir.path()));
    // A wrong static token: the websocket URL request is refused every time.
    let config = XelionConfig::new(&pbx.base_url(), Credential::Token("nope".into()), Duration::from_secs(1)).unwrap();
    let c = Running::spawn(&ctx, |s| xelion::run(config, ctx.clone(), s));
    let err = c.finished().await.expect_err("a refused token ends the connector");
    let text = err.to_string();
    assert!(text.contains("Xelion refused the connection 2 times") && text.contains("HTTP 401"), "{text}");
    assert_eq!(pbx.sockets(), 0);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_ends_the_connector_after_bounded_tries() {
    let pbx = XelionStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let addr = "127.0.0.1:1".parse().unwrap();
    let ctx = context(CONNECTOR, VENDOR, addr, settings(dir.path()));
    let wrong = Credential::Login { username: USER.into(), password: "wrong".into(), user_space: None };
    let config = XelionConfig::new(&pbx.base_url(), wrong, Duration::from_secs(1)).unwrap();
    let c = Running::spawn(&ctx, |s| xelion::run(config, ctx.clone(), s));
    let err = c.finished().await.expect_err("a refused login ends the connector");
    assert!(err.to_string().contains("login refused"), "{err}");
    assert!(err.to_string().contains("--username/--password"), "names what to check: {err}");
    assert_eq!(pbx.refused_logins(), 2, "bounded: --max-refusals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_right_after_login_ends_the_connector_instead_of_looping() {
    let pbx = XelionStandIn::start().await;
    pbx.refuse_sockets();
    let dir = tempfile::tempdir().unwrap();
    let addr = "127.0.0.1:1".parse().unwrap();
    let ctx = context(CONNECTOR, VENDOR, addr, settings(dir.path()));
    let config = XelionConfig::new(&pbx.base_url(), login(), Duration::from_secs(1)).unwrap();
    let c = Running::spawn(&ctx, |s| xelion::run(config, ctx.clone(), s));
    let err = c.finished().await.expect_err("a token refused every time ends the connector");
    assert!(err.to_string().contains("refused the session token"), "{err}");
    assert_eq!(pbx.logins(), 2, "one login per try, bounded by --max-refusals");
}
