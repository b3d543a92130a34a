//! Whole Xelion calls through the real server: each test ingests a realistic
//! sequence of WebSocket notifications over gRPC and checks the result with
//! `GetCall` and a Subscribe replay from the beginning of the log.
//!
//! The cast: customer Marieke (+31642060837) and the Delft office's users
//! Wesley (extension 201, user oid 1816134) and Arno (extension 202, user oid
//! 1816210); hunt group extension 200 also rings Sanne (203, user oid
//! 1816300) and a member's mobile twin.

mod common;

use common::{Clients, TestServer, dur_secs, ended, event, from_beginning, merge_json, request, steps};
use serde_json::{Value, json};
use switchboard::proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

const CUSTOMER: &str = "+31642060837";
const WES: &str = "1816134";
const ARNO: &str = "1816210";
const SANNE: &str = "1816300";
/// The date Xelion puts on every event of the first call: its start (UTC).
const DATE: &str = "2025-07-02 08:39:51";
/// `DATE` as epoch seconds.
const DATE_EPOCH: i64 = 1_751_445_591;

/// An inbound call from the customer to Wesley.
fn inbound(call_id: &str, caller_flow: &str) -> Value {
    json!({
        "initiation": "direct",
        "date": DATE,
        "callId": call_id,
        "callerFlowId": caller_flow,
        "calleeFlowId": format!("{caller_flow}-wes"),
        "callerPhoneNumber": CUSTOMER,
        "callerAddressable": "2045869",
        "callerCallLogOid": "3388120",
        "calleePhoneNumber": "201",
        "calleeUser": WES,
        "calleeUserAddressable": "1816135",
        "calleeCallLogOid": "3388121",
        "calleePhoneLineOid": "1816140",
    })
}

/// The WebSocket envelope of one notification.
fn envelope(notification_type: &str, fields: &Value) -> String {
    json!({"notificationType": notification_type, "notification": fields}).to_string()
}

/// Sending enveloped notifications as VENDOR_XELION.
trait SendXelion {
    async fn send(&mut self, notification_type: &str, fields: &Value) -> pb::IngestResponse;
}

impl SendXelion for Clients {
    async fn send(&mut self, notification_type: &str, fields: &Value) -> pb::IngestResponse {
        common::ingest(&mut self.ingest, pb::Vendor::Xelion, &envelope(notification_type, fields)).await
    }
}

use pb::CallState as S;
use pb::EventType as T;

#[tokio::test]
async fn an_inbound_call_answered_and_hung_up_completes_with_the_vendor_duration_and_start_date() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let call = inbound("186ba647df1ef222", "186ba647df1ef220");

    for (t, fields) in [
        ("newCallEvent", call.clone()),
        ("callConnectedEvent", call.clone()),
        ("callHungUpEvent", merge_json(call.clone(), json!({"duration": "95"}))),
    ] {
        let r = c.send(t, &fields).await;
        assert_eq!(r.outcome(), pb::IngestOutcome::Accepted, "{t}");
        assert_eq!(r.vendor(), pb::Vendor::Xelion);
    }

    let got = c.call("xelion:186ba647df1ef222").await;
    assert_eq!(got.state(), S::Ended);
    assert_eq!(got.outcome(), pb::CallOutcome::Completed);
    assert_eq!(got.direction(), pb::Direction::Inbound);
    assert_eq!(dur_secs(&got.duration), Some(95), "the vendor's string duration is kept");
    assert_eq!(got.started_at.as_ref().map(|t| t.seconds), Some(DATE_EPOCH), "started_at is the notification date");
    assert!(got.answered_at.is_some() && got.ended_at.is_some());
    assert_eq!(got.conversation_id, "xelion:flow:186ba647df1ef220");
    assert_eq!(got.parties.len(), 2);
    assert_eq!((got.parties[0].role(), got.parties[0].e164.as_str()), (pb::PartyRole::Customer, CUSTOMER));
    assert_eq!((got.parties[1].role(), got.parties[1].user_id.as_str()), (pb::PartyRole::Agent, WES));
    assert_eq!(got.attributes.get("calleePhoneLineOid").map(String::as_str), Some("1816140"));
    assert_eq!(got.attributes.get("initiation").map(String::as_str), Some("direct"));

    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, "xelion:186ba647df1ef222"),
        vec![(T::CallStarted, S::Initiated), (T::CallConnected, S::Connected), (T::CallEnded, S::Ended)]
    );
    let last = event(updates.last().expect("updates"));
    assert_eq!(last.vendor_event_type, "callHungUpEvent");
    assert_eq!(last.call_sequence, 3);
    assert_eq!(ended(last).outcome(), pb::CallOutcome::Completed);
    assert_eq!(dur_secs(&ended(last).duration), Some(95));
    assert_eq!(last.attributes.get("occurred_at_source").map(String::as_str), Some("server"), "no event time");
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_missed_call_event_ends_an_unanswered_call_as_missed() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let call = inbound("186ba647df1ef300", "186ba647df1ef301");

    c.send("newCallEvent", &call).await;
    let r = c.send("missedCallEvent", &call).await;
    assert_eq!(r.outcome(), pb::IngestOutcome::Accepted);

    let got = c.call("xelion:186ba647df1ef300").await;
    assert_eq!((got.state(), got.outcome()), (S::Ended, pb::CallOutcome::Missed));
    assert!(got.answered_at.is_none());

    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, "xelion:186ba647df1ef300"),
        vec![(T::CallStarted, S::Initiated), (T::CallMissed, S::Ended)]
    );
    assert_eq!(ended(event(&updates[1])).outcome(), pb::CallOutcome::Missed);
    server.stop().await.expect("clean shutdown");
}

/// The order of `missedCallEvent` and `callHungUpEvent` is not documented.
/// When the PBX connected the call somewhere (voicemail picked up after the
/// user did not answer), the hang-up alone looks COMPLETED; the missed-call
/// notification for the same callId then refines the outcome to MISSED. In
/// the other order the late hang-up still adds its duration without
/// reopening or changing the missed call.
#[tokio::test]
async fn a_missed_call_event_after_the_hang_up_refines_the_outcome_and_a_late_hang_up_adds_its_duration() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;

    let voicemail = inbound("186ba647df1ef400", "186ba647df1ef401");
    c.send("newCallEvent", &voicemail).await;
    c.send("callConnectedEvent", &voicemail).await;
    c.send("callHungUpEvent", &merge_json(voicemail.clone(), json!({"duration": "41"}))).await;
    assert_eq!(c.call("xelion:186ba647df1ef400").await.outcome(), pb::CallOutcome::Completed);
    let r = c.send("missedCallEvent", &voicemail).await;
    assert_eq!(r.outcome(), pb::IngestOutcome::Accepted, "the missed call is news, not a duplicate end");
    let got = c.call("xelion:186ba647df1ef400").await;
    assert_eq!((got.state(), got.outcome()), (S::Ended, pb::CallOutcome::Missed));
    assert_eq!(dur_secs(&got.duration), Some(41));

    let missed_first = inbound("186ba647df1ef410", "186ba647df1ef411");
    c.send("newCallEvent", &missed_first).await;
    c.send("missedCallEvent", &missed_first).await;
    let r = c.send("callHungUpEvent", &merge_json(missed_first.clone(), json!({"duration": "18"}))).await;
    assert_eq!(r.outcome(), pb::IngestOutcome::Accepted, "the hang-up brings the duration");
    let got = c.call("xelion:186ba647df1ef410").await;
    assert_eq!((got.state(), got.outcome(), dur_secs(&got.duration)), (S::Ended, pb::CallOutcome::Missed, Some(18)));

    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, "xelion:186ba647df1ef400"),
        vec![
            (T::CallStarted, S::Initiated),
            (T::CallConnected, S::Connected),
            (T::CallEnded, S::Ended),
            (T::CallMissed, S::Ended),
        ]
    );
    let missed = updates.iter().map(event).find(|e| e.r#type() == T::CallMissed).expect("a CALL_MISSED");
    assert_eq!(ended(missed).outcome(), pb::CallOutcome::Missed);
    assert_eq!(
        steps(&updates, "xelion:186ba647df1ef410"),
        vec![(T::CallStarted, S::Initiated), (T::CallMissed, S::Ended), (T::CallEnded, S::Ended)]
    );
    server.stop().await.expect("clean shutdown");
}

/// An unanswered call that was hung up already ended MISSED (derived), so a
/// following `missedCallEvent` tells nothing new: it is reported DUPLICATE
/// and publishes nothing.
#[tokio::test]
async fn a_missed_call_event_that_adds_nothing_to_an_unanswered_hang_up_publishes_nothing() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let call = inbound("186ba647df1ef500", "186ba647df1ef501");

    c.send("newCallEvent", &call).await;
    c.send("callHungUpEvent", &merge_json(call.clone(), json!({"duration": "12"}))).await;
    let r = c.send("missedCallEvent", &call).await;
    assert_eq!(r.outcome(), pb::IngestOutcome::Duplicate);

    let got = c.call("xelion:186ba647df1ef500").await;
    assert_eq!((got.state(), got.outcome(), got.call_sequence), (S::Ended, pb::CallOutcome::Missed, 2));
    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, "xelion:186ba647df1ef500"),
        vec![(T::CallStarted, S::Initiated), (T::CallEnded, S::Ended)]
    );
    server.stop().await.expect("clean shutdown");
}

/// Xelion's documented attended transfer: customer C calls Wesley (A),
/// Wesley consults Arno (B), then transfers C to Arno. The hang-up of the
/// consult call A→B is sent twice with the same callId; the C→B leg is a new
/// callId in C's flow.
#[tokio::test]
async fn an_attended_transfer_drops_the_repeated_consult_hang_up_and_links_the_new_leg_by_flow() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let customer_flow = "186ba647df1ef220";

    let c_to_a = inbound("186ba647df1ef222", customer_flow);
    let a_to_b = json!({
        "initiation": "direct", "date": "2025-07-02 08:41:02", "callId": "SIP/wes-000001d8",
        "callerFlowId": "1a0c33f4e9d2b701", "calleeFlowId": "1a0c33f4e9d2b702",
        "callerPhoneNumber": "201", "callerUser": WES, "calleePhoneNumber": "202", "calleeUser": ARNO,
    });
    let c_to_b = json!({
        "initiation": "direct", "date": "2025-07-02 08:41:37", "callId": "186ba647df1ef2b0",
        "callerFlowId": customer_flow, "calleeFlowId": "1a0c33f4e9d2b702",
        "callerPhoneNumber": CUSTOMER, "calleePhoneNumber": "202", "calleeUser": ARNO,
    });

    c.send("newCallEvent", &c_to_a).await;
    c.send("callConnectedEvent", &c_to_a).await;
    c.send("newCallEvent", &a_to_b).await;
    c.send("callConnectedEvent", &a_to_b).await;
    c.send("callHungUpEvent", &merge_json(c_to_a.clone(), json!({"duration": "64"}))).await;
    let consult_hang_up = merge_json(a_to_b.clone(), json!({"duration": "31"}));
    let first = c.send("callHungUpEvent", &consult_hang_up).await;
    assert_eq!(first.outcome(), pb::IngestOutcome::Accepted);
    let second = c.send("callHungUpEvent", &consult_hang_up).await;
    assert_eq!(second.outcome(), pb::IngestOutcome::Duplicate, "the documented repeat is a duplicate");
    assert_eq!(second.events, first.events, "a duplicate answers with the first delivery's events");
    c.send("callConnectedEvent", &c_to_b).await;
    c.send("callHungUpEvent", &merge_json(c_to_b.clone(), json!({"duration": "120"}))).await;

    let leg1 = c.call("xelion:186ba647df1ef222").await;
    let consult = c.call("xelion:SIP/wes-000001d8").await;
    let leg2 = c.call("xelion:186ba647df1ef2b0").await;
    assert_eq!(leg1.conversation_id, "xelion:flow:186ba647df1ef220");
    assert_eq!(leg2.conversation_id, leg1.conversation_id, "the transferred leg stays in the customer's flow");
    assert_eq!(consult.conversation_id, "xelion:flow:1a0c33f4e9d2b701");
    assert_eq!(consult.direction(), pb::Direction::Internal);
    assert_eq!((consult.state(), consult.call_sequence), (S::Ended, 3));
    assert_eq!(dur_secs(&consult.duration), Some(31));
    assert_eq!(
        (leg2.state(), leg2.outcome(), dur_secs(&leg2.duration)),
        (S::Ended, pb::CallOutcome::Completed, Some(120))
    );
    assert_eq!(leg2.direction(), pb::Direction::Inbound);
    assert_eq!(leg2.started_at.as_ref().map(|t| t.seconds), Some(DATE_EPOCH + 106));
    let leg2_users: Vec<_> = leg2.parties.iter().map(|p| (p.role(), p.user_id.as_str())).collect();
    assert_eq!(leg2_users, vec![(pb::PartyRole::Customer, ""), (pb::PartyRole::Agent, ARNO)]);

    let updates = c.replay(from_beginning()).await;
    assert_eq!(updates.len(), 8, "the repeated hang-up published nothing");
    assert_eq!(
        steps(&updates, "xelion:SIP/wes-000001d8"),
        vec![(T::CallStarted, S::Initiated), (T::CallConnected, S::Connected), (T::CallEnded, S::Ended)]
    );

    let by_conversation = pb::SubscribeRequest {
        filter: Some(pb::SubscribeFilter {
            conversation_ids: vec!["xelion:flow:186ba647df1ef220".into()],
            ..Default::default()
        }),
        ..from_beginning()
    };
    let conversation = c.replay(by_conversation).await;
    let legs: Vec<_> = conversation.iter().map(event).map(|e| (e.call_id.as_str(), e.r#type())).collect();
    assert_eq!(
        legs,
        vec![
            ("xelion:186ba647df1ef222", T::CallStarted),
            ("xelion:186ba647df1ef222", T::CallConnected),
            ("xelion:186ba647df1ef222", T::CallEnded),
            ("xelion:186ba647df1ef2b0", T::CallConnected),
            ("xelion:186ba647df1ef2b0", T::CallEnded),
        ]
    );
    server.stop().await.expect("clean shutdown");
}

/// Line hunting on extension 200: Arno's phone rings first and its channel
/// is hung up when hunting moves on; Wesley answers; then the channels still
/// ringing in the group (Sanne's phone, a member's mobile twin) are hung up.
/// Channel hang-ups never end the call, never overwrite the call's callee.
#[tokio::test]
async fn line_hunting_channel_hang_ups_leave_the_call_active_until_it_is_hung_up() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let flow = "186ba647df1ef600";
    let call_id = "xelion:186ba647df1ef601";
    let to_group = json!({
        "initiation": "direct", "date": DATE, "callId": "186ba647df1ef601",
        "callerFlowId": flow, "calleeFlowId": "186ba647df1ef602",
        "callerPhoneNumber": CUSTOMER, "calleePhoneNumber": "200",
    });
    let arno_channel = json!({
        "date": DATE, "callId": "186ba647df1ef601", "calleeFlowId": "186ba647df1ef603",
        "calleePhoneNumber": "202", "calleeUser": ARNO, "calleePhoneLineOid": "1816215",
    });
    let answered = merge_json(
        to_group.clone(),
        json!({"calleePhoneNumber": "201", "calleeUser": WES, "calleePhoneLineOid": "1816140"}),
    );
    let sanne_channel = json!({
        "date": DATE, "callId": "186ba647df1ef601", "calleeFlowId": "186ba647df1ef605",
        "calleePhoneNumber": "203", "calleeUser": SANNE, "calleePhoneLineOid": "1816305",
    });
    let twin_channel = json!({
        "date": DATE, "callId": "186ba647df1ef601", "calleeFlowId": "186ba647df1ef604",
        "calleePhoneNumber": "+31612345678",
    });

    c.send("newCallEvent", &to_group).await;
    let r = c.send("channelHungUpEvent", &arno_channel).await;
    assert_eq!(r.outcome(), pb::IngestOutcome::Accepted);
    assert_eq!(c.call(call_id).await.state(), S::Initiated, "still ringing elsewhere");
    c.send("callConnectedEvent", &answered).await;
    c.send("channelHungUpEvent", &sanne_channel).await;
    c.send("channelHungUpEvent", &twin_channel).await;

    let got = c.call(call_id).await;
    assert_eq!(got.state(), S::Connected, "a channel hang-up is not the end of the call");
    assert_eq!(got.direction(), pb::Direction::Inbound, "known once a user answered");
    assert_eq!(got.conversation_id, "xelion:flow:186ba647df1ef600");
    assert_eq!(got.attributes.get("calleeUser").map(String::as_str), Some(WES), "channels do not overwrite the callee");
    assert_eq!(got.attributes.get("calleePhoneLineOid").map(String::as_str), Some("1816140"));
    assert_eq!(got.attributes.get("channel.calleeUser").map(String::as_str), Some(SANNE));
    let roles: Vec<_> = got.parties.iter().map(|p| (p.role(), p.phone_number.as_str())).collect();
    assert_eq!(
        roles,
        vec![
            (pb::PartyRole::Customer, CUSTOMER),
            (pb::PartyRole::ThirdParty, "200"),
            (pb::PartyRole::Agent, "202"),
            (pb::PartyRole::Agent, "201"),
            (pb::PartyRole::Agent, "203"),
            (pb::PartyRole::ThirdParty, "+31612345678"),
        ]
    );

    c.send("callHungUpEvent", &merge_json(answered.clone(), json!({"duration": "73"}))).await;
    let got = c.call(call_id).await;
    assert_eq!((got.state(), got.outcome()), (S::Ended, pb::CallOutcome::Completed));

    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, call_id),
        vec![
            (T::CallStarted, S::Initiated),
            (T::ParticipantLeft, S::Initiated),
            (T::CallConnected, S::Connected),
            (T::ParticipantLeft, S::Connected),
            (T::ParticipantLeft, S::Connected),
            (T::CallEnded, S::Ended),
        ]
    );
    let left: Vec<_> = updates
        .iter()
        .map(event)
        .filter_map(|e| match &e.detail {
            Some(pb::call_event::Detail::Participant(p)) => p.party.as_ref().map(|p| (p.role(), p.user_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        left,
        vec![
            (pb::PartyRole::Agent, ARNO.to_string()),
            (pb::PartyRole::Agent, SANNE.to_string()),
            (pb::PartyRole::ThirdParty, String::new()),
        ]
    );
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_bare_call_event_named_by_vendor_event_type_is_the_same_notification_as_its_envelope() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let call = inbound("186ba647df1ef700", "186ba647df1ef701");

    let mut bare = request(pb::Vendor::Xelion, &call.to_string());
    bare.vendor_event_type = "newCallEvent".into();
    let r = c.try_ingest(bare).await.expect("a typed bare CallEvent is accepted");
    assert_eq!(r.outcome(), pb::IngestOutcome::Accepted);
    assert_eq!(r.events[0].r#type(), T::CallStarted);
    let again = c.send("newCallEvent", &call).await;
    assert_eq!(again.outcome(), pb::IngestOutcome::Duplicate, "same natural key in either shape");

    let untyped = merge_json(call.clone(), json!({"duration": "20"}));
    let err = c.try_ingest(request(pb::Vendor::Xelion, &untyped.to_string())).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<_> =
        err.get_details_bad_request().expect("BadRequest").field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, vec!["vendor_event_type".to_string()]);

    let mut typed = request(pb::Vendor::Xelion, &untyped.to_string());
    typed.vendor_event_type = "callHungUpEvent".into();
    c.try_ingest(typed).await.expect("the same bare hang-up with its type is accepted");

    let got = c.call("xelion:186ba647df1ef700").await;
    assert_eq!((got.state(), dur_secs(&got.duration), got.call_sequence), (S::Ended, Some(20), 2));
    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, "xelion:186ba647df1ef700"),
        vec![(T::CallStarted, S::Initiated), (T::CallEnded, S::Ended)]
    );
    assert!(updates.iter().map(event).all(|e| e.vendor() == pb::Vendor::Xelion));
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn vendor_detection_picks_xelion_for_the_envelope_the_bare_call_event_and_test_echoes() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let call = inbound("186ba647df1ef800", "186ba647df1ef801");

    let r = c.try_ingest(request(pb::Vendor::Unspecified, &envelope("newCallEvent", &call))).await.expect("detected");
    assert_eq!((r.vendor(), r.outcome()), (pb::Vendor::Xelion, pb::IngestOutcome::Accepted));

    let mut bare = request(pb::Vendor::Unspecified, &call.to_string());
    bare.vendor_event_type = "callConnectedEvent".into();
    let r = c.try_ingest(bare).await.expect("detected");
    assert_eq!((r.vendor(), r.outcome()), (pb::Vendor::Xelion, pb::IngestOutcome::Accepted));

    let echo = json!({"messageType": "test", "message": "keepalive"}).to_string();
    let r = c.try_ingest(request(pb::Vendor::Unspecified, &echo)).await.expect("detected");
    assert_eq!((r.vendor(), r.outcome()), (pb::Vendor::Xelion, pb::IngestOutcome::Ignored));
    assert!(r.events.is_empty());

    let got = c.call("xelion:186ba647df1ef800").await;
    assert_eq!((got.vendor(), got.state()), (pb::Vendor::Xelion, S::Connected));
    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, "xelion:186ba647df1ef800"),
        vec![(T::CallStarted, S::Initiated), (T::CallConnected, S::Connected)]
    );
    assert_eq!(updates.len(), 2, "the ignored echo published nothing");
    server.stop().await.expect("clean shutdown");
}

/// Hunt group extension 200 rings Wesley and Sanne; Wesley answers. Xelion then tells Sanne she missed the call
/// (`missedCallEvent` with her as callee, same callId). Issue 11: that is Sanne's miss, on her party; the call
/// Wesley is on goes on, and ends COMPLETED when it is hung up.
#[tokio::test]
async fn a_hunt_group_members_miss_after_another_member_answered_is_her_party_not_the_call() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let call_id = "186ba647df1ef600";
    let base = json!({
        "initiation": "direct", "date": DATE, "callId": call_id,
        "callerFlowId": "186ba647df1ef601", "calleeFlowId": "186ba647df1ef602",
        "callerPhoneNumber": CUSTOMER,
    });
    let to = |ext: &str, user: &str| merge_json(base.clone(), json!({"calleePhoneNumber": ext, "calleeUser": user}));

    c.send("newCallEvent", &merge_json(base.clone(), json!({"calleePhoneNumber": "200"}))).await;
    c.send("callConnectedEvent", &to("201", WES)).await;
    let r = c.send("missedCallEvent", &to("203", SANNE)).await;
    assert_eq!(r.outcome(), pb::IngestOutcome::Accepted);
    assert_eq!((r.events[0].r#type(), r.events[0].state()), (T::ParticipantLeft, S::Connected));
    assert_eq!(
        c.send("missedCallEvent", &to("204", ARNO)).await.outcome(),
        pb::IngestOutcome::Accepted,
        "another member's miss is not a duplicate of Sanne's"
    );

    let got = c.call(&format!("xelion:{call_id}")).await;
    assert_eq!((got.state(), got.outcome()), (S::Connected, pb::CallOutcome::Unspecified));
    assert!(got.ended_at.is_none());
    let state_of = |user: &str| got.parties.iter().find(|p| p.user_id == user).map(pb::Party::state);
    assert_eq!(state_of(WES), Some(pb::PartyState::Connected));
    assert_eq!(state_of(SANNE), Some(pb::PartyState::Left));
    assert_eq!(state_of(ARNO), Some(pb::PartyState::Left));

    c.send("callHungUpEvent", &merge_json(to("201", WES), json!({"duration": "75"}))).await;
    let got = c.call(&format!("xelion:{call_id}")).await;
    assert_eq!((got.state(), got.outcome()), (S::Ended, pb::CallOutcome::Completed));
    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, &format!("xelion:{call_id}")),
        vec![
            (T::CallStarted, S::Initiated),
            (T::CallConnected, S::Connected),
            (T::ParticipantLeft, S::Connected),
            (T::ParticipantLeft, S::Connected),
            (T::CallEnded, S::Ended),
        ]
    );
    server.stop().await.expect("clean shutdown");
}

/// The C→B leg of an attended transfer, when the bridge saw only its hang-up (Xelion's summary of the transfer
/// lists hang-ups only): a leg that lasted 120 s is not a missed call.
#[tokio::test]
async fn a_transferred_leg_that_arrives_only_as_a_hang_up_is_not_missed() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let c_to_b = json!({
        "initiation": "direct", "date": "2025-07-02 08:41:37", "callId": "186ba647df1ef7b0",
        "callerFlowId": "186ba647df1ef720", "calleeFlowId": "1a0c33f4e9d2b772",
        "callerPhoneNumber": CUSTOMER, "calleePhoneNumber": "202", "calleeUser": ARNO,
    });
    c.send("callHungUpEvent", &merge_json(c_to_b.clone(), json!({"duration": "120"}))).await;
    let got = c.call("xelion:186ba647df1ef7b0").await;
    assert_eq!(
        (got.state(), got.outcome(), dur_secs(&got.duration)),
        (S::Ended, pb::CallOutcome::Completed, Some(120))
    );

    // A leg first seen at a hang-up that lasted nothing is still read as before (derived: MISSED).
    let zero = merge_json(c_to_b, json!({"callId": "186ba647df1ef7b1", "duration": "0"}));
    c.send("callHungUpEvent", &zero).await;
    assert_eq!(c.call("xelion:186ba647df1ef7b1").await.outcome(), pb::CallOutcome::Missed);
    server.stop().await.expect("clean shutdown");
}

/// Wesley transfers the customer's call (leg C→A) away: Xelion's `callTransferredEvent` for the leg, then its
/// hang-up. The leg was handed on: its outcome is TRANSFERRED, while the conversation goes on on the C→B leg.
#[tokio::test]
async fn a_leg_transferred_away_ends_transferred() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let c_to_a = inbound("186ba647df1ef822", "186ba647df1ef820");
    c.send("newCallEvent", &c_to_a).await;
    c.send("callConnectedEvent", &c_to_a).await;
    let r = c.send("callTransferredEvent", &c_to_a).await;
    assert_eq!((r.events[0].r#type(), r.events[0].state()), (T::CallTransferred, S::Connected));
    c.send("callHungUpEvent", &merge_json(c_to_a.clone(), json!({"duration": "64"}))).await;
    let got = c.call("xelion:186ba647df1ef822").await;
    assert_eq!((got.state(), got.outcome()), (S::Ended, pb::CallOutcome::Transferred));
    server.stop().await.expect("clean shutdown");
}
