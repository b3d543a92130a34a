//! Whole Salesforce Voice calls through the real server, checked through
//! GetCall and a Subscribe replay.

mod common;

use common::*;
use serde_json::{Value, json};
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::EventType as T;

const CUSTOMER: &str = "+1 (415) 555-0132";

struct Sf {
    server: TestServer,
    ingest: switchboard::proto::v1::ingest_service_client::IngestServiceClient<tonic::transport::Channel>,
    calls: switchboard::proto::v1::call_service_client::CallServiceClient<tonic::transport::Channel>,
}

impl Sf {
    async fn start() -> Sf {
        let server = TestServer::memory().await;
        let ingest = server.ingest_client().await;
        let calls = server.call_client().await;
        Sf { server, ingest, calls }
    }

    async fn send(&mut self, t: &str, call: &str, extra: Value) -> pb::IngestResponse {
        ingest_sf(&mut self.ingest, t, call, extra).await
    }

    async fn call(&mut self, id: &str) -> pb::Call {
        get_call(&mut self.calls, id).await
    }

    /// The replayed events of one call: (type, call_sequence, state).
    async fn replay(&mut self, id: &str) -> Vec<(T, u64, pb::CallState)> {
        let req = pb::SubscribeRequest {
            filter: Some(pb::SubscribeFilter { call_ids: vec![id.into()], ..Default::default() }),
            ..from_beginning()
        };
        replay(&mut self.calls, req).await.iter().map(event).map(|e| (e.r#type(), e.call_sequence, e.state())).collect()
    }
}

fn message(id: &str, text: &str, role: &str) -> Value {
    json!({"id": id, "clientSentTimestamp": 1594944652299u64, "serverReceivedTimestamp": 1594944652328u64,
           "content": {"formatType": "Text", "text": text}, "sender": {"role": role, "displayName": "Angela Agent"}})
}

#[tokio::test]
async fn an_inbound_call_with_hold_recording_transcripts_notes_flags_and_wrap_up() {
    let mut sf = Sf::start().await;
    let c = "4f1c2a9e-5b7d-4e3a-9c61-2d8b0e7f3a14";
    sf.send("callstarted", c, json!({"callType": "inbound", "participant": CUSTOMER})).await;
    sf.send("callconnected", c, json!({"callType": "inbound", "participant": CUSTOMER})).await;
    sf.send("transcript", c, message("u1", "Hello, thanks for calling.", "Agent")).await;
    sf.send("hold", c, json!({"participant": CUSTOMER})).await;
    sf.send("resume", c, json!({"participant": CUSTOMER})).await;
    sf.send("pauserecording", c, json!({})).await;
    sf.send("resumerecording", c, json!({})).await;
    sf.send("mute", c, json!({})).await;
    sf.send("unmute", c, json!({})).await;
    sf.send("transcript", c, message("u2", "I would like a refund.", "EndUser")).await;
    sf.send("flagraise", c, message("f1", "The customer wants a credit note.", "Agent")).await;
    sf.send("flaglower", c, json!({"id": "f2", "content": {"formatType": null, "text": null}, "sender": {"role": "Supervisor", "displayName": "Samir Supervisor"}})).await;
    sf.send("note", c, message("n1", "Refund approved.", "Agent")).await;
    sf.send("callended", c, json!({})).await;
    let late = sf.send("wrapupended", c, json!({})).await;
    assert_eq!(
        late.events[0].state(),
        pb::CallState::Ended,
        "a late wrap-up end is recorded but never reopens the call"
    );

    let id = format!("sf:{c}");
    let call = sf.call(&id).await;
    assert_eq!(
        (call.state(), call.outcome(), call.direction()),
        (pb::CallState::Ended, pb::CallOutcome::Completed, pb::Direction::Inbound)
    );
    assert_eq!((call.hold_count, call.transcript_count, call.call_sequence), (1, 2, 15));
    assert_eq!(call.notes, vec!["Refund approved."]);
    assert_eq!(call.recording.unwrap().state(), pb::RecordingState::Active);
    assert!(!call.muted && !call.on_hold);
    assert!(call.answered_at.is_some() && call.ended_at.is_some() && call.wrap_up_ended_at.is_some());
    assert_eq!(call.parties[0].e164, "+14155550132");
    let replay = sf.replay(&id).await;
    let types: Vec<T> = replay.iter().map(|r| r.0).collect();
    assert_eq!(
        types,
        vec![
            T::CallStarted,
            T::CallConnected,
            T::Transcript,
            T::CallHeld,
            T::CallResumed,
            T::RecordingPaused,
            T::RecordingResumed,
            T::CallMuted,
            T::CallUnmuted,
            T::Transcript,
            T::FlagRaised,
            T::FlagLowered,
            T::NoteAdded,
            T::CallEnded,
            T::WrapUpEnded,
        ]
    );
    assert_eq!(replay.iter().map(|r| r.1).collect::<Vec<_>>(), (1..=15).collect::<Vec<_>>());
    assert_eq!(replay[3].2, pb::CallState::OnHold);
}

#[tokio::test]
async fn an_outbound_call_in_aura_names_that_nobody_answers_ends_no_answer() {
    let mut sf = Sf::start().await;
    let c = "d7a9f1b7-fc17-43fe-8ca7-e584a2b34792";
    sf.send("CALL_STARTED", c, json!({"callType": "outbound", "participant": "+1 (415) 999-0000"})).await;
    sf.send("CALL_ENDED", c, json!({})).await;
    let call = sf.call(&format!("sf:{c}")).await;
    assert_eq!((call.direction(), call.outcome()), (pb::Direction::Outbound, pb::CallOutcome::NoAnswer));
    let types: Vec<T> = sf.replay(&format!("sf:{c}")).await.iter().map(|r| r.0).collect();
    assert_eq!(types, vec![T::CallStarted, T::CallEnded]);
}

#[tokio::test]
async fn an_inbound_call_that_is_never_connected_is_missed() {
    let mut sf = Sf::start().await;
    sf.send("callstarted", "m1", json!({"callType": "inbound", "participant": CUSTOMER})).await;
    sf.send("callended", "m1", json!({})).await;
    assert_eq!(sf.call("sf:m1").await.outcome(), pb::CallOutcome::Missed);
}

#[tokio::test]
async fn native_telephony_calls_begin_with_callconnected() {
    let mut sf = Sf::start().await;
    let first = sf.send("callconnected", "nt1", json!({"callType": "inbound", "participant": CUSTOMER})).await;
    assert_eq!((first.events[0].call_sequence, first.events[0].state()), (1, pb::CallState::Connected));
    sf.send("callended", "nt1", json!({})).await;
    let call = sf.call("sf:nt1").await;
    assert_eq!((call.state(), call.outcome()), (pb::CallState::Ended, pb::CallOutcome::Completed));
}

#[tokio::test]
async fn a_three_way_call_swaps_and_conferences_and_a_quick_connect_name_stays_a_name() {
    let mut sf = Sf::start().await;
    let c = "conf-1";
    sf.send("callconnected", c, json!({"callType": "inbound", "participant": CUSTOMER})).await;
    sf.send("hold", c, json!({"participant": CUSTOMER})).await;
    sf.send("participantadded", c, json!({"participant": "Billing Escalations"})).await;
    sf.send("swap", c, json!({})).await;
    let conf = sf.send("conference", c, json!({})).await;
    assert_eq!(conf.events[0].state(), pb::CallState::Connected, "a conference takes everyone off hold");
    sf.send("participantremoved", c, json!({"participant": "Billing Escalations"})).await;
    let call = sf.call(&format!("sf:{c}")).await;
    assert!(!call.on_hold);
    let third = call.parties.iter().find(|p| p.role() == pb::PartyRole::ThirdParty).expect("the added participant");
    assert_eq!((third.display_name.as_str(), third.phone_number.as_str()), ("Billing Escalations", ""));
    let types: Vec<T> = sf.replay(&format!("sf:{c}")).await.iter().map(|r| r.0).collect();
    assert_eq!(
        types,
        vec![
            T::CallConnected,
            T::CallHeld,
            T::ParticipantJoined,
            T::ParticipantsSwapped,
            T::ConferenceStarted,
            T::ParticipantLeft
        ]
    );
}

#[tokio::test]
async fn a_warm_transfer_keeps_the_conversation_and_records_each_segments_voice_call_id() {
    let mut sf = Sf::start().await;
    let c = "c5d93c19-e03b-44f8-85e6-a11f02e70c45";
    sf.send("callconnected", c, json!({"callType": "inbound", "participant": CUSTOMER})).await;
    let mut first = message("f1", "Please take over.", "Agent");
    first["voiceCallId"] = json!("0LQRM0000006CSz");
    sf.send("flagraise", c, first).await;
    sf.send("participantadded", c, json!({"participant": "+1 (628) 555-0190"})).await;
    // The transferring rep drops: participant removed, not a hang-up.
    let removed = sf.send("participantremoved", c, json!({"participant": "+1 (628) 555-0190"})).await;
    assert_eq!(removed.events[0].state(), pb::CallState::Connected, "the call goes on");
    let mut second = message("f2", "Taking over now.", "Agent");
    second["voiceCallId"] = json!("0LQRM0000006CT0");
    let flag = sf.send("flagraise", c, second).await;
    assert_eq!(flag.events[0].attributes["voiceCallId"], "0LQRM0000006CT0");
    let call = sf.call(&format!("sf:{c}")).await;
    assert_eq!((call.conversation_id.as_str(), call.state()), (format!("sf:{c}").as_str(), pb::CallState::Connected));
    assert_eq!(call.attributes["voiceCallId"], "0LQRM0000006CT0", "the latest segment");
}

#[tokio::test]
async fn a_replayed_transcript_is_a_duplicate_and_audio_stats_are_kept_per_channel() {
    let mut sf = Sf::start().await;
    sf.send("callconnected", "a1", json!({"callType": "inbound"})).await;
    let t = sf.send("transcript", "a1", message("u1", "Hello", "Agent")).await;
    let again = sf.send("transcript", "a1", message("u1", "Hello", "Agent")).await;
    assert_eq!((again.outcome(), again.events), (pb::IngestOutcome::Duplicate, t.events));
    let stats = sf
        .send(
            "audiostats",
            "a1",
            json!({"stats": {"inputChannelStats": {"packetsLost": 3, "packetsCount": 1500, "jitterBufferMillis": 40, "roundTripTimeMillis": 85},
                             "outputChannelStats": {"packetsLost": 0, "packetsCount": 1498, "jitterBufferMillis": 20, "roundTripTimeMillis": 85}}}),
        )
        .await;
    assert_eq!(stats.events.len(), 2);
    let Some(pb::call_event::Detail::AudioStats(s)) = &stats.events[0].detail else { panic!("audio stats detail") };
    assert_eq!((s.channel.as_str(), s.packets_lost, s.round_trip_time_millis), ("inputChannelStats", 3, 85));
    assert_eq!(sf.call("sf:a1").await.state(), pb::CallState::Connected, "statistics do not move the call");
    sf.server.stop().await.unwrap();
}

impl Sf {
    /// What a rep's browser relay sends: the event with the logged-in rep in `IngestRequest.agent_id`.
    async fn send_as(&mut self, agent: &str, t: &str, call: &str, extra: Value) -> pb::IngestResponse {
        let mut req = request(pb::Vendor::SalesforceVoice, &sf(t, call, extra));
        req.agent_id = agent.into();
        self.ingest.ingest(req).await.unwrap_or_else(|s| panic!("ingest failed: {s:?}")).into_inner()
    }
}

/// A rep-to-rep transfer seen through both reps' relays: both report the same `callId`. Issue 11: the second
/// rep's `callconnected`, `callended` and `wrapupended` are hers (not duplicates of the first rep's), and the
/// first rep's `callended` ends only her part while the customer talks to the second rep.
#[tokio::test]
async fn a_rep_to_rep_transfer_through_both_relays_keeps_the_call_until_the_last_rep_hangs_up() {
    let mut sf = Sf::start().await;
    let c = "7b1d0c5e-2f44-4c1a-9a57-0e6f0d1b2c3d";
    let id = format!("sf:{c}");
    let (angela, ben) = ("005RM000002AnGeLA", "005RM000002bEnRep");
    let inbound = json!({"callType": "inbound", "participant": CUSTOMER});

    assert_eq!(sf.send_as(angela, "callstarted", c, inbound.clone()).await.outcome(), pb::IngestOutcome::Accepted);
    sf.send_as(angela, "callconnected", c, inbound.clone()).await;
    let r = sf.send_as(ben, "callconnected", c, json!({"callType": "transfer", "participant": CUSTOMER})).await;
    assert_eq!(r.outcome(), pb::IngestOutcome::Accepted, "Ben's answer is not a repeat of Angela's");
    let r = sf.send_as(angela, "callended", c, json!({})).await;
    assert_eq!(r.outcome(), pb::IngestOutcome::Accepted);
    assert_eq!((r.events[0].r#type(), r.events[0].state()), (T::ParticipantLeft, pb::CallState::Connected));
    let r = sf.send_as(angela, "wrapupended", c, json!({})).await;
    assert_eq!(r.events[0].state(), pb::CallState::Connected);

    let call = sf.call(&id).await;
    assert_eq!(call.state(), pb::CallState::Connected, "the customer is talking to Ben");
    assert!(call.ended_at.is_none());
    assert_eq!(call.agent_ids, vec![angela.to_string(), ben.to_string()]);
    let party = |call: &pb::Call, agent: &str| {
        call.parties.iter().find(|p| p.agent_id == agent).cloned().unwrap_or_else(|| panic!("no party for {agent}"))
    };
    let a = party(&call, angela);
    assert_eq!((a.party_id.as_str(), a.state()), ("agent:005RM000002AnGeLA", pb::PartyState::Left));
    assert!(a.left_at.is_some() && a.wrap_up.as_ref().is_some_and(|w| w.ended_at.is_some()));
    assert_eq!(party(&call, ben).state(), pb::PartyState::Connected);

    // Ben hangs up: the call ends; his wrap-up end is his (and not a duplicate of Angela's).
    let r = sf.send_as(ben, "callended", c, json!({})).await;
    assert_eq!((r.events[0].r#type(), r.events[0].state()), (T::CallEnded, pb::CallState::Ended));
    assert_eq!(sf.send_as(ben, "wrapupended", c, json!({})).await.outcome(), pb::IngestOutcome::Accepted);
    assert_eq!(
        sf.send_as(ben, "callended", c, json!({})).await.outcome(),
        pb::IngestOutcome::Duplicate,
        "a relay retry"
    );
    let call = sf.call(&id).await;
    assert_eq!((call.state(), call.outcome()), (pb::CallState::Ended, pb::CallOutcome::Completed));
    assert_eq!(party(&call, ben).state(), pb::PartyState::Left);
    assert_eq!(party(&call, "").role(), pb::PartyRole::Customer);
    assert_eq!(
        sf.replay(&id).await.iter().map(|(t, _, s)| (*t, *s)).collect::<Vec<_>>(),
        vec![
            (T::CallStarted, pb::CallState::Initiated),
            (T::CallConnected, pb::CallState::Connected),
            (T::CallConnected, pb::CallState::Connected),
            (T::ParticipantLeft, pb::CallState::Connected),
            (T::WrapUpEnded, pb::CallState::Connected),
            (T::CallEnded, pb::CallState::Ended),
            (T::WrapUpEnded, pb::CallState::Ended),
        ]
    );
}

/// Without `agent_id` (an older relay) a second `callended` for the same call is still the documented repeat.
#[tokio::test]
async fn without_an_agent_id_a_repeated_callended_is_still_a_duplicate() {
    let mut sf = Sf::start().await;
    let c = "7b1d0c5e-2f44-4c1a-9a57-0e6f0d1b2c3e";
    sf.send("callconnected", c, json!({"callType": "inbound", "participant": CUSTOMER})).await;
    assert_eq!(sf.send("callended", c, json!({})).await.outcome(), pb::IngestOutcome::Accepted);
    assert_eq!(sf.send("callended", c, json!({})).await.outcome(), pb::IngestOutcome::Duplicate);
}

/// An `agent_id` that cannot be an id is refused naming the field, and nothing of the payload is stored.
#[tokio::test]
async fn an_unreadable_agent_id_is_invalid_argument_naming_agent_id() {
    let mut rig = Sf::start().await;
    let c = "7b1d0c5e-2f44-4c1a-9a57-0e6f0d1b2c3f";
    for bad in ["rep\n1".to_string(), " rep".to_string(), "x".repeat(300)] {
        let mut req = request(pb::Vendor::SalesforceVoice, &sf("callstarted", c, json!({})));
        req.agent_id = bad;
        let status = rig.ingest.ingest(req).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let details = tonic_types::StatusExt::get_details_bad_request(&status).expect("BadRequest");
        assert_eq!(details.field_violations[0].field, "agent_id");
    }
    assert!(rig.replay(&format!("sf:{c}")).await.is_empty(), "nothing stored");
}
