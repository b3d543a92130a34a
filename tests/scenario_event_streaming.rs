//! Whole 8x8 Event Streaming interactions through the real server. Each test
//! ingests a realistic sequence of events over gRPC, either decoded
//! `{"Interaction": {...}}` events or Pulsar WebSocket frames, and checks the
//! result with `GetCall` and with a Subscribe replay from the beginning of the log.
//!
//! The people involved: the customer Andrew Cunningham calls from +1 551 555 7212. 8x8 sends that number
//! as the JSON number `phoneNum: 5515557212`, and as `remotePhoneNum` in E.164. Three agents of tenant
//! acmecorp01 answer: Grace (`agGiRMDKqSRGuaNOelIJosUw`, extension 40375), Ian (`ag9I1yUNAvRqG7ovVMi3NTyw`,
//! extension 40412) and Alan (`agAglVJkg0TU28dok9y9UQKg`, extension 40388). Events come from the
//! SAPI-compatible instance `us1tomcat04`, whose `msgInfo.sequenceId` numbers them. The newer-style tests
//! send `msgInfo: {}`, as 8x8's newer samples do.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{
    Clients, TestServer, dur_secs, ended, event, from_beginning, merge_json, request, steps, ts_millis, ts_secs,
};
use serde_json::{Value, json};
use switchboard::proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

const INSTANCE: &str = "us1tomcat04.us1.whitepj.net-sapi-v1";
const GRACE: &str = "agGiRMDKqSRGuaNOelIJosUw";
const IAN: &str = "ag9I1yUNAvRqG7ovVMi3NTyw";
const ALAN: &str = "agAglVJkg0TU28dok9y9UQKg";
const CUSTOMER_E164: &str = "+15515557212";
/// When the first call was created (`interactionEventTS`, epoch seconds).
const T0: i64 = 1_669_235_827;

/// The 8x8 call id of an interaction GUID.
fn call_id(guid: &str) -> String {
    format!("8x8es:{guid}")
}

/// A decoded Interaction event. `seq` fills `msgInfo` the legacy way: instance, sequence and ms timestamp.
/// `None` gives the newer `msgInfo: {}`. `extra` adds or overrides fields.
fn interaction(event: &str, guid: &str, ts: i64, seq: Option<u64>, extra: Value) -> Value {
    let msg_info = match seq {
        Some(s) => json!({"instanceId": INSTANCE, "sequenceId": s, "timestamp": ts * 1000 + 250}),
        None => json!({}),
    };
    let mut body = json!({
        "event": event,
        "interactionGUID": guid,
        "interactionEventTS": ts,
        "mediaType": "phone",
        "resourceType": 0,
        "msgInfo": msg_info,
        "transactionNum": 848190,
    });
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    json!({ "Interaction": body })
}

/// `attachedData` naming the customer, plus `more` items.
fn caller(more: &[(&str, Value)]) -> Value {
    let mut items = vec![
        json!({"attachedDataKey": "@pri", "attachedDataValue": 100}),
        json!({"attachedDataKey": "callingName", "attachedDataValue": "Andrew Cunningham"}),
        json!({"attachedDataKey": "phoneNum", "attachedDataValue": 5_515_557_212u64}),
        json!({"attachedDataKey": "remotePhoneNum", "attachedDataValue": CUSTOMER_E164}),
    ];
    items.extend(more.iter().map(|(k, v)| json!({"attachedDataKey": k, "attachedDataValue": v})));
    json!({"attachedDatum": items})
}

/// The agent fields 8x8 puts on agent-related events.
fn agent(id: &str, extension: u64) -> Value {
    json!({
        "agentId": id,
        "agentGUID": format!("acmecorp01-{id}-494708fb-81d3-415a-82da-c5d800d36f18"),
        "agentPhone": extension,
        "agentTreatedPhone": format!("{extension}-acmecorp01"),
        "participatingAgents": id,
    })
}

/// The Pulsar WebSocket frame around an event.
fn frame(message_id: &str, event: &Value, redelivery_count: u64) -> Value {
    json!({
        "messageId": message_id,
        "payload": STANDARD.encode(event.to_string()),
        "properties": {"tenant": "acmecorp01"},
        "publishTime": "2022-11-23T20:37:08.013Z",
        "redeliveryCount": redelivery_count,
    })
}

/// Sending as VENDOR_8X8_EVENT_STREAMING.
trait Send8x8 {
    async fn send(&mut self, payload: &Value) -> pb::IngestResponse;
    async fn send_all(&mut self, payloads: &[Value]);
}

impl Send8x8 for Clients {
    async fn send(&mut self, payload: &Value) -> pb::IngestResponse {
        common::ingest(&mut self.ingest, pb::Vendor::Vendor8x8EventStreaming, &payload.to_string()).await
    }

    /// Ingests each payload and expects every one to be accepted.
    async fn send_all(&mut self, payloads: &[Value]) {
        for p in payloads {
            let r = self.send(p).await;
            assert_eq!(r.outcome(), pb::IngestOutcome::Accepted, "{p}");
            assert_eq!(r.vendor(), pb::Vendor::Vendor8x8EventStreaming);
        }
    }
}

fn recording_state(e: &pb::CallEvent) -> pb::RecordingState {
    match &e.detail {
        Some(pb::call_event::Detail::Recording(r)) => r.state(),
        other => panic!("expected a recording detail, got {other:?}"),
    }
}

use pb::CallState as S;
use pb::EventType as T;

#[tokio::test]
async fn an_inbound_call_walks_from_created_to_deleted_and_completes_with_initiator_and_disposition() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let guid = "int-184a63564dc-ohWfVIbHJz2Hr2JFhAfdlb4Fa-phone-00-acmecorp01";
    let grace = agent(GRACE, 40375);
    let queue = json!({"direction": "in", "queueId": 1162, "eventTS": T0 + 1});
    let answered_ms = (T0 + 14) * 1000 + 377;
    let hung_up_ms = (T0 + 473) * 1000 + 120;

    c.send_all(&[
        interaction(
            "InteractionCreated",
            guid,
            T0,
            Some(224),
            json!({"callState": "CS_IDLE", "attachedData": caller(&[])}),
        ),
        interaction(
            "InteractionQueued",
            guid,
            T0 + 1,
            Some(225),
            merge_json(queue.clone(), json!({"callState": "CS_QUEUED"})),
        ),
        interaction("InteractionAssigned", guid, T0 + 6, Some(226), merge_json(grace.clone(), queue.clone())),
        interaction(
            "InteractionAccepted",
            guid,
            T0 + 14,
            Some(227),
            merge_json(grace.clone(), json!({"attachedData": caller(&[("callAnsweredTime", json!(answered_ms))])})),
        ),
        interaction("LineHoldStatus", guid, T0 + 120, Some(228), merge_json(grace.clone(), json!({"status": true}))),
        interaction("LineHoldStatus", guid, T0 + 165, Some(229), merge_json(grace.clone(), json!({"status": false}))),
        interaction(
            "InteractionPostProcess",
            guid,
            T0 + 473,
            Some(230),
            merge_json(grace.clone(), json!({"attachedData": caller(&[("callHangupTime", json!(hung_up_ms))])})),
        ),
        interaction("InteractionEndPostProcess", guid, T0 + 520, Some(231), grace.clone()),
        interaction("InteractionDeassigned", guid, T0 + 521, Some(232), grace.clone()),
        interaction(
            "InteractionDeleted",
            guid,
            T0 + 521,
            Some(233),
            json!({
                "callHangupReason": "CEC_DISCONNECT_NORMAL",
                "hangupInitiator": "CUSTOMER",
                "dispositionCode": 1000,
                "agentNotes": "Replacement router shipped",
                "callState": "CS_DISCONNECTED",
                "attachedData": caller(&[("callDurationSec", json!(459)), ("callDuration", json!("00:07:39"))]),
            }),
        ),
    ])
    .await;

    let got = c.call(&call_id(guid)).await;
    assert_eq!((got.state(), got.outcome()), (S::Ended, pb::CallOutcome::Completed));
    assert_eq!(got.direction(), pb::Direction::Inbound);
    assert_eq!(got.hangup_initiator(), pb::PartyRole::Customer);
    assert_eq!((got.disposition.as_str(), got.end_reason.as_str()), ("1000", "CEC_DISCONNECT_NORMAL"));
    assert_eq!(got.notes, vec!["Replacement router shipped".to_string()]);
    assert_eq!(got.agent_ids, vec![GRACE.to_string()]);
    assert_eq!(got.queue_id, "1162");
    assert_eq!(got.conversation_id, call_id(guid), "no transfer: the conversation is the call");
    assert_eq!(ts_secs(&got.started_at), Some(T0));
    assert_eq!(ts_secs(&got.queued_at), Some(T0 + 1));
    assert_eq!(ts_millis(&got.answered_at), Some(answered_ms), "callAnsweredTime is milliseconds");
    assert_eq!(ts_millis(&got.ended_at), Some(hung_up_ms), "callHangupTime is milliseconds");
    assert_eq!(ts_secs(&got.wrap_up_ended_at), Some(T0 + 520));
    assert_eq!((got.hold_count, dur_secs(&got.total_hold)), (1, Some(45)));
    assert!(!got.on_hold);
    assert_eq!(dur_secs(&got.duration), Some(459));
    assert_eq!(got.media(), pb::Media::Voice);
    assert_eq!(got.parties.len(), 2, "{:?}", got.parties);
    let customer = &got.parties[0];
    assert_eq!((customer.role(), customer.e164.as_str()), (pb::PartyRole::Customer, CUSTOMER_E164));
    assert_eq!(customer.display_name, "Andrew Cunningham");
    let grace_party = &got.parties[1];
    assert_eq!((grace_party.role(), grace_party.agent_id.as_str()), (pb::PartyRole::Agent, GRACE));
    assert_eq!((grace_party.phone_number.as_str(), grace_party.e164.as_str()), ("40375", ""));
    assert_eq!(got.attributes.get("callState").map(String::as_str), Some("CS_DISCONNECTED"));

    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, &call_id(guid)),
        vec![
            (T::CallStarted, S::Initiated),
            (T::CallQueued, S::Queued),
            (T::CallOffered, S::Ringing),
            (T::CallConnected, S::Connected),
            (T::CallHeld, S::OnHold),
            (T::CallResumed, S::Connected),
            (T::WrapUpStarted, S::WrapUp),
            (T::WrapUpEnded, S::WrapUp),
            (T::ParticipantLeft, S::WrapUp),
            (T::CallEnded, S::Ended),
        ]
    );
    let last = event(updates.last().expect("updates"));
    assert_eq!(last.vendor_event_type, "InteractionDeleted");
    let end = ended(last);
    assert_eq!((end.outcome(), end.hangup_initiator()), (pb::CallOutcome::Completed, pb::PartyRole::Customer));
    assert_eq!((end.reason.as_str(), end.disposition.as_str()), ("CEC_DISCONNECT_NORMAL", "1000"));
    assert_eq!(dur_secs(&end.duration), Some(459));
    assert_eq!(ts_secs(&last.occurred_at), Some(T0 + 521), "interactionEventTS is the event time");
    let final_call = updates.last().and_then(|u| u.call.as_ref()).expect("update carries the call");
    assert_eq!(final_call.outcome(), pb::CallOutcome::Completed);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_outbound_call_answered_by_the_customer_completes() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let guid = "int-1963f527a2a-9wjz0hrkcolMxIqiOhxEsKFe9-phone-01-acmecorp01";
    let alan = merge_json(agent(ALAN, 40388), json!({"direction": "out", "isOutboundCall": true, "queueId": 1092}));
    let dialed = json!({"attachedDatum": [{"attachedDataKey": "phoneNum", "attachedDataValue": 6_298_994_259u64}]});
    let t = 1_744_819_092;

    c.send_all(&[
        interaction("InteractionCreated", guid, t, None, json!({"direction": "out", "attachedData": dialed})),
        interaction("InteractionAssigned", guid, t + 1, None, alan.clone()),
        interaction("InteractionCustomerAccepted", guid, t + 17, None, alan.clone()),
        interaction("InteractionPostProcess", guid, t + 200, None, alan.clone()),
        interaction(
            "InteractionEndPostProcess",
            guid,
            t + 230,
            None,
            merge_json(alan.clone(), json!({"dispositionCode": "SALE"})),
        ),
        interaction("InteractionDeassigned", guid, t + 231, None, alan.clone()),
        interaction(
            "InteractionDeleted",
            guid,
            t + 231,
            None,
            json!({"callHangupReason": "CEC_DISCONNECT_NORMAL", "hangupInitiator": "AGENT", "direction": "out"}),
        ),
    ])
    .await;

    let got = c.call(&call_id(guid)).await;
    assert_eq!((got.state(), got.outcome()), (S::Ended, pb::CallOutcome::Completed));
    assert_eq!(got.direction(), pb::Direction::Outbound);
    assert_eq!(got.hangup_initiator(), pb::PartyRole::Agent);
    assert_eq!(got.disposition, "SALE", "the wrap-up disposition is kept");
    assert_eq!(ts_secs(&got.answered_at), Some(t + 17), "the customer answered");
    assert_eq!(got.parties[0].e164, "+16298994259", "a national phoneNum gets the default region");
    assert_eq!(got.parties[0].phone_number, "6298994259");

    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, &call_id(guid)),
        vec![
            (T::CallStarted, S::Initiated),
            (T::CallOffered, S::Ringing),
            (T::CallConnected, S::Connected),
            (T::WrapUpStarted, S::WrapUp),
            (T::WrapUpEnded, S::WrapUp),
            (T::ParticipantLeft, S::WrapUp),
            (T::CallEnded, S::Ended),
        ]
    );
    assert!(
        updates.iter().map(event).all(|e| e.attributes.get("occurred_at_source").map(String::as_str) == Some("vendor"))
    );
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn outbound_calls_that_never_connect_end_with_the_outcome_of_the_hangup_reason() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let alan = merge_json(agent(ALAN, 40388), json!({"direction": "out"}));
    let t = 1_744_819_300;
    let cases = [
        ("int-1963f527b10-Xr4TnB8wQe2LpZ6vKm1Hs9DcA-phone-01-acmecorp01", "CEC_DISCONNECT_NOANSWER", "00:00:31"),
        ("int-1963f527c22-Lp0Ow9Ik8Uj7Yh6Tg5Rf4Ed3W-phone-01-acmecorp01", "CEC_DISCONNECT_BUSY", "00:00:04"),
    ];

    for (guid, reason, duration) in cases {
        c.send_all(&[
            interaction("InteractionCreated", guid, t, None, json!({"direction": "out"})),
            interaction("InteractionAssigned", guid, t + 1, None, alan.clone()),
            interaction(
                "InteractionDeleted",
                guid,
                t + 32,
                None,
                json!({"callHangupReason": reason, "hangupInitiator": "SYSTEM",
                       "attachedData": {"attachedDatum": [{"attachedDataKey": "callDuration", "attachedDataValue": duration}]}}),
            ),
        ])
        .await;
    }

    let no_answer = c.call(&call_id(cases[0].0)).await;
    assert_eq!((no_answer.state(), no_answer.outcome()), (S::Ended, pb::CallOutcome::NoAnswer));
    assert_eq!(no_answer.hangup_initiator(), pb::PartyRole::System);
    assert_eq!(dur_secs(&no_answer.duration), Some(31), "callDuration HH:MM:SS");
    assert!(no_answer.answered_at.is_none());
    let busy = c.call(&call_id(cases[1].0)).await;
    assert_eq!(
        (busy.state(), busy.outcome(), busy.end_reason.as_str()),
        (S::Ended, pb::CallOutcome::Busy, "CEC_DISCONNECT_BUSY")
    );

    let updates = c.replay(from_beginning()).await;
    let ends: Vec<_> = updates
        .iter()
        .map(event)
        .filter(|e| e.r#type() == T::CallEnded)
        .map(|e| (e.call_id.clone(), ended(e).outcome()))
        .collect();
    assert_eq!(
        ends,
        vec![(call_id(cases[0].0), pb::CallOutcome::NoAnswer), (call_id(cases[1].0), pb::CallOutcome::Busy)]
    );
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_caller_who_hangs_up_in_the_queue_is_abandoned() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let guid = "int-1963f55c2e1-Qm3Xq8dZr0aK2LwVbN7sTy1Pe-phone-01-acmecorp01";
    let queue = json!({"direction": "in", "queueId": 1162, "attachedData": caller(&[("queueDirection", json!("in"))])});
    let t = 1_744_819_500;

    c.send_all(&[
        interaction("InteractionCreated", guid, t, None, json!({"attachedData": caller(&[])})),
        interaction("InteractionQueued", guid, t + 1, None, queue.clone()),
        interaction(
            "InteractionUnqueued",
            guid,
            t + 61,
            None,
            merge_json(queue.clone(), json!({"callState": "CS_IDLE"})),
        ),
        interaction(
            "InteractionDeleted",
            guid,
            t + 61,
            None,
            json!({"callHangupReason": "CEC_NONE", "hangupInitiator": "CUSTOMER", "callState": "CS_DISCONNECTED"}),
        ),
    ])
    .await;

    let got = c.call(&call_id(guid)).await;
    assert_eq!((got.state(), got.outcome()), (S::Ended, pb::CallOutcome::Abandoned));
    assert!(got.answered_at.is_none() && got.agent_ids.is_empty());
    assert_eq!(ts_secs(&got.queued_at), Some(t + 1));
    assert_eq!(got.end_reason, "CEC_NONE");

    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, &call_id(guid)),
        vec![
            (T::CallStarted, S::Initiated),
            (T::CallQueued, S::Queued),
            (T::CallDequeued, S::Queued),
            (T::CallEnded, S::Ended),
        ]
    );
    assert_eq!(ended(event(&updates[3])).outcome(), pb::CallOutcome::Abandoned);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_offer_rejected_by_one_agent_is_re_offered_to_another_who_accepts() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let guid = "int-1963f53a7f9-fRUlBL19w0hsi4GN50Xbcgazp-phone-03-acmecorp01";
    let queue = json!({"direction": "in", "queueId": 222});
    let t = 1_744_819_200;

    c.send_all(&[
        interaction("InteractionCreated", guid, t, None, json!({"attachedData": caller(&[])})),
        interaction("InteractionQueued", guid, t + 1, None, queue.clone()),
        interaction("InteractionAssigned", guid, t + 2, None, merge_json(agent(IAN, 40412), queue.clone())),
        interaction(
            "InteractionRejected",
            guid,
            t + 18,
            None,
            merge_json(agent(IAN, 40412), json!({"rejectReason": 2, "callState": "CS_QUEUED"})),
        ),
        // The same GUID is assigned again, to another agent: a new offer, not a duplicate.
        interaction("InteractionAssigned", guid, t + 20, None, merge_json(agent(GRACE, 40375), queue.clone())),
        interaction("InteractionAccepted", guid, t + 25, None, agent(GRACE, 40375)),
    ])
    .await;

    let got = c.call(&call_id(guid)).await;
    assert_eq!(got.state(), S::Connected);
    assert_eq!(got.agent_ids, vec![IAN.to_string(), GRACE.to_string()]);
    assert_eq!(ts_secs(&got.answered_at), Some(t + 25));

    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, &call_id(guid)),
        vec![
            (T::CallStarted, S::Initiated),
            (T::CallQueued, S::Queued),
            (T::CallOffered, S::Ringing),
            (T::OfferRejected, S::Queued),
            (T::CallOffered, S::Ringing),
            (T::CallConnected, S::Connected),
        ]
    );
    let rejected = event(&updates[3]);
    assert_eq!(rejected.agent_id, IAN);
    assert_eq!(rejected.attributes.get("rejectReasonText").map(String::as_str), Some("agent_reject"));
    assert_eq!(event(&updates[4]).agent_id, GRACE);
    server.stop().await.expect("clean shutdown");
}

fn party<'c>(call: &'c pb::Call, party_id: &str) -> &'c pb::Party {
    call.parties
        .iter()
        .find(|p| p.party_id == party_id)
        .unwrap_or_else(|| panic!("no party {party_id}: {:?}", call.parties))
}

fn agent_party_id(agent_id: &str) -> String {
    format!("agent:{agent_id}")
}

fn transfer(e: &pb::CallEvent) -> &pb::Transfer {
    match &e.detail {
        Some(pb::call_event::Detail::Transfer(t)) => t,
        other => panic!("expected a transfer detail, got {other:?}"),
    }
}

use pb::PartyState as P;

/// 8x8's documented transfer (seed 002, "transfer" walkthrough): the customer stays on line 1 throughout, and
/// Grace's post-process, end of post-process and deassignment are hers, not the customer's call's.
#[tokio::test]
async fn a_transfer_to_another_agent_links_the_new_interaction_to_the_first_conversation() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let first = "int-1963f52d470-OcB3AbajqjTb9ikyLLBxBr1l7-phone-02-acmecorp01";
    let second = "int-1963f53f0c2-Hk2VbQw9Lr5ZtN8xYcJmP4sDa-phone-02-acmecorp01";
    let linked = json!({"attachedDatum": [
        {"attachedDataKey": "originalInteractionGuid", "attachedDataValue": first},
        {"attachedDataKey": "originalTransactionId", "attachedDataValue": 429968},
    ]});
    let t = 1_744_819_224;

    c.send_all(&[
        // 1. Grace is connected with the customer on line 1.
        interaction("InteractionCreated", first, t, None, json!({"direction": "in", "attachedData": caller(&[])})),
        interaction("InteractionAssigned", first, t + 3, None, agent(GRACE, 40375)),
        interaction("InteractionAccepted", first, t + 8, None, agent(GRACE, 40375)),
        // 2.-3. A new interaction for line 2 (the consult), assigned to and accepted by Ian.
        interaction("InteractionCreated", second, t + 60, None, json!({"attachedData": linked})),
        interaction("InteractionAssigned", second, t + 61, None, agent(IAN, 40412)),
        interaction("InteractionAccepted", second, t + 66, None, agent(IAN, 40412)),
        // 4.-7. The transfer: request, Grace's wrap-up, the participant change, Grace leaves.
        interaction("InteractionTransferRequest", first, t + 90, None, agent(GRACE, 40375)),
        interaction("InteractionPostProcess", first, t + 91, None, agent(GRACE, 40375)),
        interaction(
            "InteractionParticipantChange",
            first,
            t + 92,
            None,
            merge_json(
                agent(IAN, 40412),
                json!({"callState": "CS_CONNECTED", "participatingAgents": format!("{GRACE},{IAN}")}),
            ),
        ),
        interaction("InteractionEndPostProcess", first, t + 120, None, agent(GRACE, 40375)),
        interaction("InteractionDeassigned", first, t + 121, None, agent(GRACE, 40375)),
    ])
    .await;

    let one = c.call(&call_id(first)).await;
    let two = c.call(&call_id(second)).await;
    assert_eq!(one.conversation_id, call_id(first));
    assert_eq!(two.conversation_id, call_id(first), "originalInteractionGuid links the new leg");
    assert_eq!(two.previous_call_id, call_id(first), "the consult line came from line 1");
    assert_eq!(two.state(), S::Connected);
    assert_eq!(two.agent_ids, vec![IAN.to_string()]);
    assert_eq!(one.agent_ids, vec![GRACE.to_string(), IAN.to_string()]);
    // Changed by issue 11: this used to be WRAP_UP with an ended_at ("Grace's leg is in her wrap-up") while the
    // customer was talking to Ian. The call is the customer's; Grace's wrap-up is on her party.
    assert_eq!(one.state(), S::Connected, "the customer is talking to Ian");
    assert!(one.ended_at.is_none() && one.wrap_up_ended_at.is_none(), "{one:?}");
    assert_eq!(party(&one, "customer").state(), P::Connected);
    assert_eq!(party(&one, &agent_party_id(IAN)).state(), P::Connected);
    let grace = party(&one, &agent_party_id(GRACE));
    assert_eq!(grace.state(), P::Left);
    assert_eq!(ts_secs(&grace.joined_at), Some(t + 8));
    assert_eq!(ts_secs(&grace.left_at), Some(t + 91), "she left the conversation when her post-process began");
    let wrap = grace.wrap_up.as_ref().expect("Grace's wrap-up");
    assert_eq!((ts_secs(&wrap.started_at), ts_secs(&wrap.ended_at)), (Some(t + 91), Some(t + 120)));

    let filter = pb::SubscribeFilter { conversation_ids: vec![call_id(first)], ..Default::default() };
    let updates = c.replay(pb::SubscribeRequest { filter: Some(filter.clone()), ..from_beginning() }).await;
    assert_eq!(updates.len(), 11, "both legs are in the conversation");
    assert!(updates.iter().map(event).all(|e| e.conversation_id == call_id(first)));
    assert_eq!(
        steps(&updates, &call_id(first)),
        vec![
            (T::CallStarted, S::Initiated),
            (T::CallOffered, S::Ringing),
            (T::CallConnected, S::Connected),
            (T::TransferRequested, S::Connected),
            (T::WrapUpStarted, S::Connected),
            (T::CallTransferred, S::Connected),
            (T::WrapUpEnded, S::Connected),
            (T::ParticipantLeft, S::Connected),
        ]
    );
    assert_eq!(
        steps(&updates, &call_id(second)),
        vec![(T::CallStarted, S::Initiated), (T::CallOffered, S::Ringing), (T::CallConnected, S::Connected)]
    );
    let on_first: Vec<&pb::CallEvent> = updates.iter().map(event).filter(|e| e.call_id == call_id(first)).collect();
    let requested = transfer(on_first[3]);
    assert_eq!(requested.from.as_ref().map(|p| p.agent_id.as_str()), Some(GRACE));
    let done = transfer(on_first[5]);
    assert_eq!(on_first[5].vendor_event_type, "InteractionParticipantChange");
    assert_eq!(done.from.as_ref().map(|p| p.party_id.clone()), Some(agent_party_id(GRACE)));
    assert_eq!(done.to.as_ref().map(|p| (p.party_id.clone(), p.state())), Some((agent_party_id(IAN), P::Connected)));
    assert_eq!(on_first[4].agent_id, GRACE, "the wrap-up event is Grace's");
    assert_eq!(on_first[4].parties.iter().find(|p| p.agent_id == GRACE).map(pb::Party::state), Some(P::WrapUp));

    // Ian finishes with the customer: his post-process is the call's wrap-up, and the interaction ends.
    c.send_all(&[
        interaction("InteractionPostProcess", first, t + 400, None, agent(IAN, 40412)),
        interaction("InteractionEndPostProcess", first, t + 430, None, agent(IAN, 40412)),
        interaction("InteractionDeassigned", first, t + 431, None, agent(IAN, 40412)),
        interaction(
            "InteractionDeleted",
            first,
            t + 431,
            None,
            json!({"callHangupReason": "CEC_DISCONNECT_NORMAL", "hangupInitiator": "CUSTOMER"}),
        ),
    ])
    .await;
    let one = c.call(&call_id(first)).await;
    assert_eq!((one.state(), one.outcome()), (S::Ended, pb::CallOutcome::Completed));
    assert_eq!(ts_secs(&one.ended_at), Some(t + 400), "the conversation ended when Ian's post-process began");
    assert_eq!(party(&one, "customer").state(), P::Left);
    assert_eq!(party(&one, &agent_party_id(IAN)).state(), P::Left);
    let updates = c.replay(pb::SubscribeRequest { filter: Some(filter), ..from_beginning() }).await;
    assert_eq!(
        steps(&updates, &call_id(first))[8..],
        [
            (T::WrapUpStarted, S::WrapUp),
            (T::WrapUpEnded, S::WrapUp),
            (T::ParticipantLeft, S::WrapUp),
            (T::CallEnded, S::Ended)
        ]
    );
    server.stop().await.expect("clean shutdown");
}

/// Grace consults Ian on a second line and goes back to the customer without transferring: the consult line
/// ends, the customer's call goes on with Grace.
#[tokio::test]
async fn a_consult_without_a_transfer_leaves_the_customers_call_with_the_first_agent() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let first = "int-1963f52d471-C0nsu1tF1rstL1n3Aa1Bb2Cc3-phone-02-acmecorp01";
    let consult = "int-1963f53f0c3-C0nsu1tS3c0ndL1n3Dd4Ee5Ff-phone-02-acmecorp01";
    let linked = json!({"attachedDatum": [{"attachedDataKey": "originalInteractionGuid", "attachedDataValue": first}]});
    let t = 1_744_820_000;

    c.send_all(&[
        interaction("InteractionCreated", first, t, None, json!({"direction": "in", "attachedData": caller(&[])})),
        interaction("InteractionAccepted", first, t + 8, None, agent(GRACE, 40375)),
        interaction("LineHoldStatus", first, t + 50, None, merge_json(agent(GRACE, 40375), json!({"status": true}))),
        interaction("InteractionCreated", consult, t + 51, None, json!({"attachedData": linked})),
        interaction("InteractionAccepted", consult, t + 55, None, agent(IAN, 40412)),
        // Ian's side of the consult ends: his post-process is the consult line's wrap-up.
        interaction("InteractionPostProcess", consult, t + 90, None, agent(IAN, 40412)),
        interaction("InteractionDeleted", consult, t + 91, None, json!({"callHangupReason": "CEC_DISCONNECT_NORMAL"})),
        // Grace is back on the customer line.
        interaction("InteractionReconnect", first, t + 92, None, agent(GRACE, 40375)),
    ])
    .await;

    let one = c.call(&call_id(first)).await;
    assert_eq!(one.state(), S::Connected);
    assert!(one.ended_at.is_none());
    assert_eq!(one.agent_ids, vec![GRACE.to_string()], "Ian never joined the customer's interaction");
    assert_eq!(party(&one, "customer").state(), P::Connected);
    assert_eq!(party(&one, &agent_party_id(GRACE)).state(), P::Connected);
    assert_eq!((one.hold_count, dur_secs(&one.total_hold)), (1, Some(42)));
    let two = c.call(&call_id(consult)).await;
    assert_eq!((two.state(), two.outcome()), (S::Ended, pb::CallOutcome::Completed));
    assert_eq!(
        (two.previous_call_id.as_str(), two.conversation_id.as_str()),
        (call_id(first).as_str(), call_id(first).as_str())
    );
    assert_eq!(party(&two, &agent_party_id(IAN)).state(), P::WrapUp, "Ian's wrap-up outlives the consult line");

    let updates = c.replay(from_beginning()).await;
    assert!(updates.iter().map(event).all(|e| e.r#type() != T::CallTransferred), "nothing was transferred");
    server.stop().await.expect("clean shutdown");
}

/// Grace conferences Ian into the customer's interaction, then drops off: the customer and Ian talk on.
#[tokio::test]
async fn a_conference_keeps_the_call_when_the_first_agent_drops_off() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let first = "int-1963f52d472-C0nf3r3nc3L1n3Aa1Bb2Cc3Dd-phone-02-acmecorp01";
    let t = 1_744_821_000;

    c.send_all(&[
        interaction("InteractionCreated", first, t, None, json!({"direction": "in", "attachedData": caller(&[])})),
        interaction("InteractionAccepted", first, t + 8, None, agent(GRACE, 40375)),
        interaction("InteractionJoinLinesRequest", first, t + 60, None, agent(GRACE, 40375)),
        interaction("InteractionJoined", first, t + 62, None, agent(GRACE, 40375)),
        interaction(
            "InteractionParticipantChange",
            first,
            t + 62,
            None,
            merge_json(agent(IAN, 40412), json!({"participatingAgents": format!("{GRACE},{IAN}")})),
        ),
        interaction("InteractionPostProcess", first, t + 120, None, agent(GRACE, 40375)),
        interaction("InteractionEndPostProcess", first, t + 140, None, agent(GRACE, 40375)),
        interaction("InteractionDeassigned", first, t + 141, None, agent(GRACE, 40375)),
    ])
    .await;

    let one = c.call(&call_id(first)).await;
    assert_eq!(one.state(), S::Connected);
    assert!(one.ended_at.is_none());
    assert_eq!(one.agent_ids, vec![GRACE.to_string(), IAN.to_string()]);
    assert_eq!(party(&one, &agent_party_id(IAN)).state(), P::Connected);
    assert_eq!(party(&one, &agent_party_id(GRACE)).state(), P::Left);
    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, &call_id(first)),
        vec![
            (T::CallStarted, S::Initiated),
            (T::CallConnected, S::Connected),
            (T::CallUpdated, S::Connected),
            (T::ConferenceStarted, S::Connected),
            (T::ParticipantJoined, S::Connected),
            (T::WrapUpStarted, S::Connected),
            (T::WrapUpEnded, S::Connected),
            (T::ParticipantLeft, S::Connected),
        ],
        "a join without a transfer request is a join, not a transfer"
    );
    assert_eq!(transfer(event(&updates[3])).kind(), pb::TransferKind::Conference);
    server.stop().await.expect("clean shutdown");
}

/// 8x8 gives up on a queued call (InteractionQueueTimeout): the caller did not hang up, so it is not an abandon.
#[tokio::test]
async fn a_queue_timeout_is_not_reported_as_an_abandon() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let guid = "int-1963f55c2e2-Qu3u3T1m30utAa1Bb2Cc3Dd4E-phone-01-acmecorp01";
    let queue = json!({"direction": "in", "queueId": 1162,
        "attachedData": caller(&[("tenantSkillName", json!("Customer Service"))])});
    let t = 1_744_819_600;

    c.send_all(&[
        interaction("InteractionCreated", guid, t, None, json!({"attachedData": caller(&[])})),
        interaction("InteractionQueued", guid, t + 1, None, queue.clone()),
        interaction("InteractionQueueTimeout", guid, t + 301, None, queue.clone()),
        interaction(
            "InteractionDeleted",
            guid,
            t + 302,
            None,
            json!({"callHangupReason": "CEC_NONE", "hangupInitiator": "SYSTEM"}),
        ),
    ])
    .await;

    let got = c.call(&call_id(guid)).await;
    assert_eq!((got.state(), got.outcome()), (S::Ended, pb::CallOutcome::Missed));
    assert_eq!((got.queue_id.as_str(), got.queue_name.as_str()), ("1162", "Customer Service"));
    assert_eq!(got.queue_visits.len(), 1);
    let visit = &got.queue_visits[0];
    assert_eq!(
        (visit.queue_id.as_str(), visit.queue_name.as_str(), visit.result()),
        ("1162", "Customer Service", pb::QueueResult::Timeout)
    );
    assert_eq!((ts_secs(&visit.entered_at), ts_secs(&visit.left_at)), (Some(t + 1), Some(t + 301)));
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_recording_starts_pauses_resumes_and_becomes_ready_after_the_call_ended() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let guid = "int-1963f4d8314-ShlIYL3nayugzbFYJvHhZgPL2-phone-03-acmecorp01";
    let t = 1_744_819_180;
    let rec = |status: &str| {
        merge_json(agent(ALAN, 40388), json!({"status": status, "recordingMode": "yes", "isAPICall": false}))
    };

    c.send_all(&[
        interaction("InteractionCreated", guid, t, None, json!({"attachedData": caller(&[])})),
        interaction("InteractionAccepted", guid, t + 5, None, agent(ALAN, 40388)),
        interaction("InteractionRecordingStarted", guid, t + 6, None, json!({"recordingMode": "yes"})),
        interaction("RecordingStatus", guid, t + 40, None, rec("pause")),
        interaction("RecordingStatus", guid, t + 43, None, rec("resume")),
        interaction("InteractionPostProcess", guid, t + 200, None, agent(ALAN, 40388)),
        interaction(
            "InteractionDeleted",
            guid,
            t + 230,
            None,
            json!({"callHangupReason": "CEC_DISCONNECT_NORMAL", "hangupInitiator": "CUSTOMER"}),
        ),
        interaction("InteractionRecordingReady", guid, t + 260, None, json!({"recordingMode": "yes"})),
    ])
    .await;

    let got = c.call(&call_id(guid)).await;
    assert_eq!((got.state(), got.outcome()), (S::Ended, pb::CallOutcome::Completed));
    assert_eq!(got.recording.as_ref().map(pb::Recording::state), Some(pb::RecordingState::Ready));

    let updates = c.replay(from_beginning()).await;
    let recording: Vec<_> = updates
        .iter()
        .map(event)
        .filter(|e| matches!(e.detail, Some(pb::call_event::Detail::Recording(_))))
        .map(|e| (e.r#type(), recording_state(e), e.state()))
        .collect();
    assert_eq!(
        recording,
        vec![
            (T::RecordingStarted, pb::RecordingState::Active, S::Connected),
            (T::RecordingPaused, pb::RecordingState::Paused, S::Connected),
            (T::RecordingResumed, pb::RecordingState::Active, S::Connected),
            (T::RecordingReady, pb::RecordingState::Ready, S::Ended),
        ],
        "a late RECORDING_READY is recorded but never reopens the call"
    );
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_stale_hold_status_with_an_older_sequence_id_does_not_move_the_call() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let guid = "int-184a6371aa0-Vb2Nc8Xz4Lk1Qw7Er5Ty3Ui9O-phone-00-acmecorp01";
    let grace = agent(GRACE, 40375);
    let hold = |on: bool, ts: i64, seq: u64| {
        interaction("LineHoldStatus", guid, ts, Some(seq), merge_json(grace.clone(), json!({"status": on})))
    };

    c.send_all(&[
        interaction("InteractionCreated", guid, T0, Some(300), json!({"attachedData": caller(&[])})),
        interaction("InteractionAccepted", guid, T0 + 10, Some(302), grace.clone()),
        hold(true, T0 + 30, 304),
        hold(false, T0 + 50, 305),
    ])
    .await;

    // The hold of sequence 303 arrives after the release of 305.
    let late = c.send(&hold(true, T0 + 20, 303)).await;
    assert_eq!(late.outcome(), pb::IngestOutcome::Duplicate, "a stale toggle is dropped");
    let got = c.call(&call_id(guid)).await;
    assert_eq!((got.state(), got.on_hold, got.hold_count), (S::Connected, false, 1));

    // A stale lifecycle step is recorded but does not move the call back either.
    let queued = c.send(&interaction("InteractionQueued", guid, T0 + 2, Some(301), json!({"queueId": 1162}))).await;
    assert_eq!(queued.outcome(), pb::IngestOutcome::Accepted);
    assert_eq!(queued.events[0].state(), S::Connected);
    assert_eq!(c.call(&call_id(guid)).await.state(), S::Connected);

    let updates = c.replay(from_beginning()).await;
    assert_eq!(
        steps(&updates, &call_id(guid)),
        vec![
            (T::CallStarted, S::Initiated),
            (T::CallConnected, S::Connected),
            (T::CallHeld, S::OnHold),
            (T::CallResumed, S::Connected),
            (T::CallQueued, S::Connected),
        ]
    );
    let sequences: Vec<_> = updates
        .iter()
        .map(event)
        .map(|e| e.attributes.get("msgInfo.sequenceId").cloned().unwrap_or_default())
        .collect();
    assert_eq!(sequences, vec!["300", "302", "304", "305", "301"]);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn the_same_pulsar_frame_redelivered_is_a_duplicate() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let guid = "int-184a63564dc-ohWfVIbHJz2Hr2JFhAfdlb4Fa-phone-00-acmecorp01";
    let created = interaction("InteractionCreated", guid, T0, None, json!({"attachedData": caller(&[])}));

    let first = c.send(&frame("CAEQ4AE=", &created, 0)).await;
    assert_eq!(first.outcome(), pb::IngestOutcome::Accepted);
    let again = c.send(&frame("CAEQ4AE=", &created, 1)).await;
    assert_eq!(again.outcome(), pb::IngestOutcome::Duplicate);
    assert_eq!(again.events.len(), 1, "a duplicate returns the events of the first delivery");
    assert_eq!(again.events[0].event_id, first.events[0].event_id);
    assert_eq!(again.events[0].attributes.get("redeliveryCount").map(String::as_str), Some("0"));

    let got = c.call(&call_id(guid)).await;
    assert_eq!((got.state(), got.call_sequence), (S::Initiated, 1));
    let updates = c.replay(from_beginning()).await;
    assert_eq!(updates.len(), 1);
    assert_eq!(event(&updates[0]).attributes.get("messageId").map(String::as_str), Some("CAEQ4AE="));
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_pulsar_frame_and_the_decoded_event_of_the_same_content_both_work() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let framed = "int-184a6400001-Fr4m3dPu1s4rM3ss4g3Aa1Bb2-phone-00-acmecorp01";
    let decoded = "int-184a6400002-D3c0d3dEv3ntB0dyCc3Dd4Ee5-phone-00-acmecorp01";
    let script = |guid: &str| {
        vec![
            interaction("InteractionCreated", guid, T0, None, json!({"attachedData": caller(&[])})),
            interaction("InteractionQueued", guid, T0 + 1, None, json!({"direction": "in", "queueId": 1162})),
            interaction("InteractionAssigned", guid, T0 + 4, None, agent(GRACE, 40375)),
        ]
    };

    let frames: Vec<Value> =
        script(framed).iter().enumerate().map(|(i, e)| frame(&format!("CAEQ{i}AE="), e, 0)).collect();
    c.send_all(&frames).await;
    c.send_all(&script(decoded)).await;

    let (a, b) = (c.call(&call_id(framed)).await, c.call(&call_id(decoded)).await);
    assert_eq!((a.state(), a.direction(), a.queue_id.as_str()), (S::Ringing, pb::Direction::Inbound, "1162"));
    assert_eq!(
        (b.state(), b.direction(), &b.queue_id, &b.parties, &b.agent_ids, &b.started_at, &b.queued_at),
        (a.state(), a.direction(), &a.queue_id, &a.parties, &a.agent_ids, &a.started_at, &a.queued_at)
    );
    assert_eq!(a.attributes.get("messageId").map(String::as_str), Some("CAEQ2AE="));
    assert!(!b.attributes.contains_key("messageId"));

    // The decoded form of a frame already ingested repeats a state the call is in: nothing new.
    let repeat = c.send(&script(framed)[2]).await;
    assert_eq!(repeat.outcome(), pb::IngestOutcome::Duplicate);

    let updates = c.replay(from_beginning()).await;
    assert_eq!(steps(&updates, &call_id(framed)), steps(&updates, &call_id(decoded)));
    assert_eq!(updates.len(), 6);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn vendor_detection_recognises_frames_decoded_events_and_control_frames() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let guid = "int-184a6400003-D3t3ct3dVend0rUnsp3c1f13d-phone-00-acmecorp01";
    let created = interaction("InteractionCreated", guid, T0, None, json!({"attachedData": caller(&[])}));
    let queued = interaction("InteractionQueued", guid, T0 + 1, None, json!({"direction": "in"}));

    for (payload, outcome) in [
        (frame("CAEQ9AE=", &created, 0), pb::IngestOutcome::Accepted),
        (queued, pb::IngestOutcome::Accepted),
        (json!({"type": "isEndOfTopic", "endOfTopic": "true"}), pb::IngestOutcome::Ignored),
        (json!({"ClientCheck": {"heartbeat": "[HEARTBEAT]", "msgInfo": {}}}), pb::IngestOutcome::Ignored),
    ] {
        let r = c.try_ingest(request(pb::Vendor::Unspecified, &payload.to_string())).await.expect("ingest succeeds");
        assert_eq!((r.outcome(), r.vendor()), (outcome, pb::Vendor::Vendor8x8EventStreaming), "{payload}");
    }
    let got = c.call(&call_id(guid)).await;
    assert_eq!((got.state(), got.vendor()), (S::Queued, pb::Vendor::Vendor8x8EventStreaming));
    let updates = c.replay(from_beginning()).await;
    assert_eq!(steps(&updates, &call_id(guid)), vec![(T::CallStarted, S::Initiated), (T::CallQueued, S::Queued)]);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_agent_status_change_is_an_agent_event_with_no_call() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let status = json!({"AgentStatusChange": {
        "agentId": GRACE,
        "msgInfo": {"instanceId": INSTANCE, "sequenceId": 215, "timestamp": 1_669_235_544_917u64},
        "newReasonCodeUser": "801=1722",
        "newState": 5,
        "newSubState": "none",
        "newSubStateReason": "none",
        "statusEventTS": 1_669_235_544,
    }});

    let r = c.send(&status).await;
    assert_eq!(r.outcome(), pb::IngestOutcome::Accepted);
    let e = &r.events[0];
    assert_eq!((e.r#type(), e.call_id.as_str(), e.state()), (T::AgentStatusChanged, "", S::Unspecified));
    assert_eq!(c.send(&status).await.outcome(), pb::IngestOutcome::Duplicate, "same instance and sequence");

    let updates = c.replay(from_beginning()).await;
    assert_eq!(updates.len(), 1);
    assert!(updates[0].call.is_none(), "no call is touched");
    let e = event(&updates[0]);
    assert_eq!(e.agent_id, GRACE);
    assert_eq!(ts_secs(&e.occurred_at), Some(1_669_235_544));
    match &e.detail {
        Some(pb::call_event::Detail::AgentStatus(s)) => {
            assert_eq!((s.state.as_str(), s.reason.as_str()), ("5", "801=1722"))
        }
        other => panic!("expected an agent status, got {other:?}"),
    }
    let listed = c.calls.list_calls(pb::ListCallsRequest::default()).await.expect("ListCalls succeeds").into_inner();
    assert!(listed.calls.is_empty(), "{:?}", listed.calls);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_frame_with_bad_base64_or_bad_json_inside_is_invalid_argument_naming_the_payload() {
    let server = TestServer::memory().await;
    let mut c = Clients::new(&server).await;
    let bad_base64 = json!({"messageId": "CAEQ5QE=", "payload": "eyJJbnRlcmFjdGlvbiI6!!", "publishTime": "2022-11-23T20:41:51.201Z"});
    let bad_json = json!({"messageId": "CAEQ5gE=", "payload": STANDARD.encode(r#"{"Interaction": {"event": }}"#)});

    for (payload, needle) in [(bad_base64, "base64"), (bad_json, "line 1 column 27")] {
        let status = c
            .try_ingest(request(pb::Vendor::Vendor8x8EventStreaming, &payload.to_string()))
            .await
            .expect_err("bad payload is rejected");
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().expect("BadRequest details");
        assert_eq!(bad.field_violations[0].field, "payload");
        assert!(bad.field_violations[0].description.contains(needle), "{:?}", bad.field_violations);
    }
    assert!(c.replay(from_beginning()).await.is_empty(), "nothing is stored");
    server.stop().await.expect("clean shutdown");
}
