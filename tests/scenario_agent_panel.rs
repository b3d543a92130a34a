//! Whole-call scenarios of the 8x8 agent panel ("mashell") adapter, through
//! the gRPC API of an in-process server: the panel sends no call id, so
//! these check that its events correlate into the right calls (see the
//! module doc of `adapters::agent_panel` and `plan::correlate`).
//!
//! Each payload carries the relay's receive time (`IngestRequest.received_at`)
//! as a bridge in the agent's page would, so times without a vendor time
//! (answer, wrap-up end) are deterministic.

mod common;

use common::{TestServer, dur_secs, ended, event, from_beginning, get_call, replay, request, ts_millis};
use serde_json::{Value, json};
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::call_service_client::CallServiceClient;
use switchboard::proto::v1::ingest_service_client::IngestServiceClient;
use tonic::transport::Channel;

const VENDOR: pb::Vendor = pb::Vendor::Vendor8x8AgentPanel;

/// The seed's call: `startTime`, `endTime`, `callDuration` 00:00:22.
const START: i64 = 1_751_445_666_638;
const END: i64 = 1_751_445_695_892;
/// When the agent accepted: 22 s before the end, so the computed talk time
/// equals the panel's `callDuration` (ringing took the other 7.254 s).
const ANSWERED: i64 = END - 22_000;

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// One interaction as the panel reports it: the fields every event repeats,
/// and the facts of its end.
#[derive(Clone)]
struct Interaction {
    /// `voice-phone` or `voicemail`.
    media: &'static str,
    /// `cc` or `uc`.
    product: &'static str,
    number: &'static str,
    direction: &'static str,
    start: i64,
    end: i64,
    duration: &'static str,
    calling_name: Option<&'static str>,
}

impl Interaction {
    fn cc(number: &'static str, direction: &'static str, start: i64, end: i64, duration: &'static str) -> Self {
        Interaction { media: "voice-phone", product: "cc", number, direction, start, end, duration, calling_name: None }
    }

    fn uc(number: &'static str, direction: &'static str, start: i64, end: i64, duration: &'static str) -> Self {
        Interaction { product: "uc", ..Interaction::cc(number, direction, start, end, duration) }
    }

    fn voicemail(number: &'static str, name: &'static str, start: i64, end: i64, duration: &'static str) -> Self {
        Interaction {
            media: "voicemail",
            calling_name: Some(name),
            ..Interaction::cc(number, "inbound", start, end, duration)
        }
    }

    /// The event `step` with a fresh `eventId` and `extra` data fields.
    fn event(&self, step: &str, extra: Value) -> String {
        let mut data = json!({
            "eventName": step,
            "eventId": uuid::Uuid::new_v4().to_string(),
            "method": "mapEvent",
            "direction": self.direction,
            "media": if self.media == "voicemail" { "voicemail" } else { "phone" },
            "searchContext": self.number,
            "schemaVersion": "1.0.0",
        });
        if let Some(name) = self.calling_name {
            data["callingName"] = json!(name);
        }
        if self.product == "uc" {
            data["startTime"] = json!(self.start.to_string());
        }
        for (k, v) in extra.as_object().into_iter().flatten() {
            data[k] = v.clone();
        }
        json!({
            "eventType": format!("mashell-{}-{step}-{}-event-v1", self.media, self.product),
            "status": "success",
            "data": data,
        })
        .to_string()
    }

    fn offered(&self) -> String {
        self.event("offered", json!({}))
    }

    fn accepted(&self) -> String {
        self.event("accepted", json!({}))
    }

    fn times(&self) -> Value {
        json!({
            "startTime": self.start.to_string(),
            "endTime": self.end.to_string(),
            "callDuration": self.duration,
        })
    }

    fn completed(&self, notes: &str) -> String {
        let mut extra = self.times();
        if self.media == "voice-phone" {
            extra["callRecording"] = json!(format!("https://vcc-na12.8x8.com/recordings/acme/{}.wav", self.start));
            extra["hasRecording"] = json!(true);
        }
        if !notes.is_empty() {
            extra["additionalData"] = json!({"notes": notes});
        }
        self.event("completed", extra)
    }

    fn terminated(&self, disposition: &str, notes: &str) -> String {
        let mut extra = self.times();
        if self.media == "voice-phone" {
            extra["callRecording"] = json!(format!("https://vcc-na12.8x8.com/recordings/acme/{}.wav", self.start));
            extra["hasRecording"] = json!(true);
        }
        if self.product == "cc" {
            extra["additionalData"] = json!({
                "disposition_code": disposition,
                "lastTclCodeShort": "",
                "lastTclCodeDesc": "",
                "notes": notes,
            });
        }
        self.event("terminated", extra)
    }

    /// A `terminated` for a call nobody answered: no talk, no recording, no
    /// wrap-up data.
    fn terminated_unanswered(&self) -> String {
        let mut extra = self.times();
        extra["callDuration"] = json!("00:00:00");
        extra["callRecording"] = json!("");
        extra["hasRecording"] = json!(false);
        self.event("terminated", extra)
    }
}

struct Panel {
    /// Kept alive for the test's duration.
    _server: TestServer,
    ingest: IngestServiceClient<Channel>,
    calls: CallServiceClient<Channel>,
}

impl Panel {
    async fn start() -> Panel {
        let server = TestServer::memory().await;
        let ingest = server.ingest_client().await;
        let calls = server.call_client().await;
        Panel { _server: server, ingest, calls }
    }

    /// Ingests `payload` as relayed at `relayed_ms`.
    async fn send(&mut self, payload: &str, relayed_ms: i64) -> pb::IngestResponse {
        let mut req = request(VENDOR, payload);
        req.received_at = Some(timestamp(relayed_ms));
        self.ingest
            .ingest(req)
            .await
            .unwrap_or_else(|s| panic!("ingest failed: {s:?}\npayload: {payload}"))
            .into_inner()
    }

    /// Ingests and expects ACCEPTED; returns the call id of its events.
    async fn accept(&mut self, payload: &str, relayed_ms: i64) -> String {
        let r = self.send(payload, relayed_ms).await;
        assert_eq!(r.outcome(), pb::IngestOutcome::Accepted, "{payload}");
        let ids: Vec<&str> = r.events.iter().map(|e| e.call_id.as_str()).collect();
        assert!(!ids.is_empty() && ids.iter().all(|id| *id == ids[0]), "one call per payload: {ids:?}");
        ids[0].to_string()
    }

    async fn call(&mut self, call_id: &str) -> pb::Call {
        get_call(&mut self.calls, call_id).await
    }

    /// Every update in the log, in order (Subscribe from the beginning until
    /// CAUGHT_UP).
    async fn replay(&mut self) -> Vec<pb::CallUpdate> {
        replay(&mut self.calls, from_beginning()).await
    }
}

fn types_of(updates: &[pb::CallUpdate], call_id: &str) -> Vec<pb::EventType> {
    updates.iter().map(event).filter(|e| e.call_id == call_id).map(|e| e.r#type()).collect()
}

use pb::EventType as T;

#[tokio::test]
async fn a_cc_inbound_call_offered_accepted_completed_terminated_is_one_completed_call() {
    let mut panel = Panel::start().await;
    let call = Interaction::cc("+14155550132", "inbound", START, END, "00:00:22");
    let notes = "Customer asked to move the July invoice to the new billing address.";

    let offered = panel.accept(&call.offered(), START + 482).await;
    let accepted = panel.accept(&call.accepted(), ANSWERED).await;
    let completed = panel.accept(&call.completed(notes), END + 418).await;
    let terminated = panel.accept(&call.terminated("1000", notes), END + 45_615).await;
    assert!(offered.starts_with("8x8ap:"));
    assert_eq!([&accepted, &completed, &terminated], [&offered; 3], "all four events correlate to one call");

    let c = panel.call(&offered).await;
    assert_eq!(c.state(), pb::CallState::Ended);
    assert_eq!(c.outcome(), pb::CallOutcome::Completed);
    assert_eq!(c.direction(), pb::Direction::Inbound);
    assert_eq!(c.media(), pb::Media::Voice);
    assert_eq!(dur_secs(&c.duration), Some(22), "the panel's callDuration");
    assert_eq!(dur_secs(&c.talk_duration), Some(22), "computed: end - answer");
    assert_eq!(c.disposition, "1000");
    assert_eq!(c.notes, vec![notes.to_string()]);
    assert_eq!(ts_millis(&c.started_at), Some(START));
    assert_eq!(ts_millis(&c.answered_at), Some(ANSWERED));
    assert_eq!(ts_millis(&c.ended_at), Some(END));
    assert_eq!(ts_millis(&c.wrap_up_ended_at), Some(END + 45_615));
    let rec = c.recording.as_ref().expect("recording");
    assert_eq!(rec.state(), pb::RecordingState::Ready);
    assert!(rec.url.ends_with(&format!("/{START}.wav")), "{}", rec.url);
    assert_eq!(c.parties.len(), 1);
    assert_eq!((c.parties[0].role(), c.parties[0].e164.as_str()), (pb::PartyRole::Customer, "+14155550132"));
    // Changed by issue 11: the recording URL of `completed` is a RECORDING_READY event of its own (one more
    // event); `terminated` repeats the URL, which is no news.
    assert_eq!(c.call_sequence, 6);

    let updates = panel.replay().await;
    assert_eq!(
        types_of(&updates, &offered),
        vec![T::CallOffered, T::CallConnected, T::WrapUpStarted, T::RecordingReady, T::WrapUpEnded, T::CallEnded]
    );
    assert_eq!(updates.len(), 6, "nothing else in the log");
    let seqs: Vec<u64> = updates.iter().map(|u| event(u).call_sequence).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    let states: Vec<pb::CallState> = updates.iter().map(|u| event(u).state()).collect();
    use pb::CallState as S;
    assert_eq!(states, vec![S::Ringing, S::Connected, S::WrapUp, S::WrapUp, S::WrapUp, S::Ended]);
    assert_eq!(ts_millis(&event(&updates[2]).occurred_at), Some(END), "completed happens at endTime");
    match &event(&updates[3]).detail {
        Some(pb::call_event::Detail::Recording(r)) => {
            assert_eq!(r.state(), pb::RecordingState::Ready);
            assert!(r.url.ends_with(&format!("/{START}.wav")), "{}", r.url);
        }
        other => panic!("expected a recording detail, got {other:?}"),
    }
    let end = event(&updates[5]);
    assert_eq!(end.vendor_event_type, "mashell-voice-phone-terminated-cc-event-v1");
    let detail = ended(end);
    assert_eq!(
        (detail.outcome(), detail.disposition.as_str(), dur_secs(&detail.duration)),
        (pb::CallOutcome::Completed, "1000", Some(22))
    );
    let last = updates[5].call.as_ref().expect("call after the event");
    assert_eq!(last.state(), pb::CallState::Ended);
}

#[tokio::test]
async fn a_uc_outbound_call_correlates_by_its_start_time_and_ends_without_wrap_up() {
    let mut panel = Panel::start().await;
    let (start, end) = (1_751_449_201_204, 1_751_449_262_517);
    let call = Interaction::uc("+16465550187", "outbound", start, end, "00:00:58");

    let offered = panel.accept(&call.offered(), start + 90).await;
    let accepted = panel.accept(&call.accepted(), start + 3_313).await;
    let terminated = panel.accept(&call.terminated("", ""), end + 240).await;
    assert_eq!([&accepted, &terminated], [&offered; 2]);

    let c = panel.call(&offered).await;
    assert_eq!(c.state(), pb::CallState::Ended);
    assert_eq!(c.outcome(), pb::CallOutcome::Completed);
    assert_eq!(c.direction(), pb::Direction::Outbound);
    assert_eq!(ts_millis(&c.started_at), Some(start), "known from offered on in UC");
    assert_eq!(ts_millis(&c.answered_at), Some(start + 3_313));
    assert_eq!(ts_millis(&c.ended_at), Some(end));
    assert_eq!(dur_secs(&c.duration), Some(58));
    assert_eq!(c.wrap_up_ended_at, None, "UC has no wrap-up");
    assert_eq!(c.attributes.get("product").map(String::as_str), Some("uc"));

    let updates = panel.replay().await;
    // Changed by issue 11: UC `terminated` brings the recording URL: RECORDING_READY after the end.
    assert_eq!(types_of(&updates, &offered), vec![T::CallOffered, T::CallConnected, T::CallEnded, T::RecordingReady]);
    let seqs: Vec<u64> = updates.iter().map(|u| event(u).call_sequence).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert_eq!(ts_millis(&event(&updates[2]).occurred_at), Some(end), "UC terminated happens at endTime");
}

#[tokio::test]
async fn two_back_to_back_cc_calls_from_the_same_number_are_two_calls() {
    let mut panel = Panel::start().await;
    let first = Interaction::cc("+14155550132", "inbound", START, END, "00:00:22");
    let (start2, end2) = (END + 95_000, END + 95_000 + 64_250);
    let second = Interaction::cc("+14155550132", "inbound", start2, end2, "00:00:57");

    let a = panel.accept(&first.offered(), START + 482).await;
    panel.accept(&first.accepted(), ANSWERED).await;
    panel.accept(&first.completed(""), END + 418).await;
    panel.accept(&first.terminated("1000", ""), END + 45_615).await;
    let b = panel.accept(&second.offered(), start2 + 510).await;
    assert_ne!(a, b, "an offered after the previous call ended starts a new call");
    assert_eq!(panel.accept(&second.accepted(), end2 - 57_000).await, b);
    assert_eq!(panel.accept(&second.completed(""), end2 + 300).await, b);
    assert_eq!(panel.accept(&second.terminated("1010", ""), end2 + 20_000).await, b);

    let (ca, cb) = (panel.call(&a).await, panel.call(&b).await);
    for (c, start, end, disposition) in [(&ca, START, END, "1000"), (&cb, start2, end2, "1010")] {
        assert_eq!((c.state(), c.outcome()), (pb::CallState::Ended, pb::CallOutcome::Completed));
        assert_eq!((ts_millis(&c.started_at), ts_millis(&c.ended_at)), (Some(start), Some(end)));
        assert_eq!(c.disposition, disposition);
        assert_eq!(c.call_sequence, 6);
    }
    let updates = panel.replay().await;
    // Changed by issue 11: each call's recording URL first appears on `completed`: a RECORDING_READY.
    let full =
        vec![T::CallOffered, T::CallConnected, T::WrapUpStarted, T::RecordingReady, T::WrapUpEnded, T::CallEnded];
    assert_eq!(types_of(&updates, &a), full);
    assert_eq!(types_of(&updates, &b), full);
}

#[tokio::test]
async fn an_offer_never_accepted_then_terminated_ends_missed_inbound_and_no_answer_outbound() {
    let mut panel = Panel::start().await;
    let inbound = Interaction::cc("+13125550176", "inbound", START, START + 18_400, "00:00:00");
    let missed = panel.accept(&inbound.offered(), START + 350).await;
    assert_eq!(panel.accept(&inbound.terminated_unanswered(), START + 19_020).await, missed);

    let c = panel.call(&missed).await;
    assert_eq!((c.state(), c.outcome()), (pb::CallState::Ended, pb::CallOutcome::Missed));
    assert_eq!(c.answered_at, None);
    assert_eq!(dur_secs(&c.duration), Some(0));
    assert_eq!(c.recording.as_ref().map(|r| r.state()), Some(pb::RecordingState::None));

    let (start, end) = (START + 600_000, START + 631_000);
    let outbound = Interaction::uc("+16465550187", "outbound", start, end, "00:00:00");
    let unanswered = panel.accept(&outbound.offered(), start + 80).await;
    assert_eq!(panel.accept(&outbound.terminated_unanswered(), end + 150).await, unanswered);
    let c = panel.call(&unanswered).await;
    assert_eq!((c.state(), c.outcome()), (pb::CallState::Ended, pb::CallOutcome::NoAnswer));

    let updates = panel.replay().await;
    assert_eq!(types_of(&updates, &missed), vec![T::CallOffered, T::WrapUpEnded, T::CallEnded]);
    assert_eq!(types_of(&updates, &unanswered), vec![T::CallOffered, T::CallEnded]);
    let end = updates.iter().map(event).find(|e| e.call_id == missed && e.r#type() == T::CallEnded).expect("end");
    assert_eq!(ended(end).outcome(), pb::CallOutcome::Missed);
}

#[tokio::test]
async fn the_same_event_id_delivered_twice_is_a_duplicate() {
    let mut panel = Panel::start().await;
    let call = Interaction::cc("+14155550132", "inbound", START, END, "00:00:22");
    let offered = call.offered();
    let completed = call.completed("");

    let first = panel.send(&offered, START + 482).await;
    let again = panel.send(&offered, START + 1_907).await;
    assert_eq!(again.outcome(), pb::IngestOutcome::Duplicate);
    assert_eq!(again.events.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![1], "the first delivery's events");
    assert_eq!(again.events[0].event_id, first.events[0].event_id);

    panel.accept(&call.accepted(), ANSWERED).await;
    let done = panel.send(&completed, END + 418).await;
    assert_eq!(done.outcome(), pb::IngestOutcome::Accepted);
    let repeat = panel.send(&completed, END + 5_000).await;
    assert_eq!(repeat.outcome(), pb::IngestOutcome::Duplicate);
    assert_eq!(repeat.events, done.events);

    let updates = panel.replay().await;
    let call_id = &first.events[0].call_id;
    // Changed by issue 11: the completed event's recording URL is a RECORDING_READY of its own.
    assert_eq!(
        types_of(&updates, call_id),
        vec![T::CallOffered, T::CallConnected, T::WrapUpStarted, T::RecordingReady]
    );
    assert_eq!(panel.call(call_id).await.call_sequence, 4);
}

#[tokio::test]
async fn failed_envelopes_and_chat_events_are_ignored_and_publish_nothing() {
    let mut panel = Panel::start().await;
    let failed = json!({
        "eventType": "mashell-voice-phone-completed-cc-event-v1",
        "status": "failed",
        "data": {
            "eventName": "completed",
            "error": "INVALID_SCHEMA",
            "schemaVersion": "1.0.0",
            "allowedSchemaVersions": ["1.0.0"],
            "validSchema": false,
            "errorDescription": [{"code": "invalid_type", "expected": "string", "received": "undefined",
                                  "path": ["endTime"], "message": "Required"}],
        },
    })
    .to_string();
    let unsupported = common::fixture("8x8_agent_panel", "failed-unsupported-schema-version.json");
    let chat = common::fixture("8x8_agent_panel", "chat-offered-cc.json");
    let sms = common::fixture("8x8_agent_panel", "chat-nextgen-terminated-cc.json");
    for payload in [&failed, &unsupported, &chat, &sms] {
        let r = panel.send(payload, START).await;
        assert_eq!(r.outcome(), pb::IngestOutcome::Ignored, "{payload}");
        assert!(r.events.is_empty());
        assert_eq!(r.vendor(), VENDOR);
    }

    // The log holds only what comes after.
    let call = Interaction::cc("+14155550132", "inbound", START, END, "00:00:22");
    let id = panel.accept(&call.offered(), START + 482).await;
    let updates = panel.replay().await;
    assert_eq!(updates.len(), 1);
    assert_eq!((event(&updates[0]).sequence, event(&updates[0]).call_id.as_str()), (1, id.as_str()));
}

#[tokio::test]
async fn a_voicemail_becomes_its_own_voicemail_call_beside_the_unanswered_voice_offer() {
    let mut panel = Panel::start().await;
    let (start, end) = (1_751_452_800_310, 1_751_452_845_020);
    // The call rang the voicemail number's agent, who did not take it...
    let ring = Interaction::cc("+16175550143", "inbound", start - 30_000, start, "00:00:00");
    let rang = panel.accept(&ring.offered(), start - 29_600).await;
    // ...and the caller's voicemail is then worked as an interaction.
    let vm = Interaction::voicemail("+16175550143", "Dana Whitfield", start, end, "00:00:44");
    let notes = "Wants a callback about the delayed delivery, order 58213.";
    let id = panel.accept(&vm.offered(), end + 60_000).await;
    assert_ne!(id, rang, "voicemails correlate under their own key");
    assert_eq!(panel.accept(&vm.accepted(), end + 72_500).await, id);
    assert_eq!(panel.accept(&vm.completed(notes), end + 120_800).await, id);
    assert_eq!(panel.accept(&vm.terminated("2040", notes), end + 151_300).await, id);

    let c = panel.call(&id).await;
    assert_eq!(c.media(), pb::Media::Voicemail);
    assert_eq!((c.state(), c.outcome()), (pb::CallState::Ended, pb::CallOutcome::Completed));
    assert_eq!(c.parties.len(), 1);
    assert_eq!(c.parties[0].display_name, "Dana Whitfield");
    assert_eq!(c.parties[0].e164, "+16175550143");
    assert_eq!((ts_millis(&c.started_at), ts_millis(&c.ended_at)), (Some(start), Some(end)));
    assert_eq!(dur_secs(&c.duration), Some(44));
    assert_eq!(c.disposition, "2040");
    assert_eq!(c.notes, vec![notes.to_string()]);
    assert_eq!(c.recording, None, "voicemail events carry no recording fields");

    let voice = panel.call(&rang).await;
    assert_eq!((voice.state(), voice.media()), (pb::CallState::Ringing, pb::Media::Voice));

    let updates = panel.replay().await;
    assert_eq!(
        types_of(&updates, &id),
        vec![T::CallOffered, T::CallConnected, T::WrapUpStarted, T::WrapUpEnded, T::CallEnded]
    );
    assert!(updates.iter().map(event).filter(|e| e.call_id == id).all(|e| e.media() == pb::Media::Voicemail));
}

#[tokio::test]
async fn a_manual_search_rings_a_call_that_the_real_offer_for_the_same_number_reuses() {
    let mut panel = Panel::start().await;
    let call = Interaction::cc("+14155550160", "outbound", START, END, "00:00:22");
    let searched = panel.accept(&call.offered(), START - 12_000).await;
    let real = panel.send(&call.offered(), START + 150).await;
    assert_eq!(real.outcome(), pb::IngestOutcome::Duplicate, "the call already rings: nothing new");
    assert_eq!(panel.accept(&call.accepted(), ANSWERED).await, searched);
    assert_eq!(panel.accept(&call.completed(""), END + 418).await, searched);
    assert_eq!(panel.accept(&call.terminated("1000", ""), END + 9_000).await, searched);

    let c = panel.call(&searched).await;
    assert_eq!((c.state(), c.outcome()), (pb::CallState::Ended, pb::CallOutcome::Completed));
    let updates = panel.replay().await;
    assert_eq!(
        types_of(&updates, &searched),
        vec![T::CallOffered, T::CallConnected, T::WrapUpStarted, T::RecordingReady, T::WrapUpEnded, T::CallEnded],
        "issue 11: the recording's first appearance is a RECORDING_READY"
    );
}

#[tokio::test]
async fn a_callback_taken_by_another_agent_during_wrap_up_is_not_ended_by_the_first_calls_terminated() {
    let mut panel = Panel::start().await;
    let first = Interaction::cc("+14155550132", "inbound", START, END, "00:00:22");
    let (start2, end2) = (END + 20_000, END + 110_000);
    let callback = Interaction::cc("+14155550132", "inbound", start2, end2, "00:01:20");

    // Agent A's call, now in wrap-up.
    let a = panel.accept(&first.offered(), START + 482).await;
    panel.accept(&first.accepted(), ANSWERED).await;
    panel.accept(&first.completed(""), END + 418).await;
    // The customer calls back at once; agent B's panel (same tenant) rings.
    let b = panel.accept(&callback.offered(), start2 + 400).await;
    assert_ne!(a, b);
    assert_eq!(panel.accept(&callback.accepted(), start2 + 9_000).await, b);
    // Agent A finishes wrap-up while B talks.
    assert_eq!(panel.accept(&first.terminated("1000", ""), end2 - 30_000).await, a, "A's terminated ends A's call");
    let cb = panel.call(&b).await;
    assert_eq!(cb.state(), pb::CallState::Connected, "B is still talking");
    assert_eq!(panel.accept(&callback.completed(""), end2 + 300).await, b);
    assert_eq!(panel.accept(&callback.terminated("1010", ""), end2 + 30_000).await, b);
    let (ca, cb) = (panel.call(&a).await, panel.call(&b).await);
    assert_eq!((ca.state(), ts_millis(&ca.started_at)), (pb::CallState::Ended, Some(START)));
    assert_eq!((cb.state(), ts_millis(&cb.started_at)), (pb::CallState::Ended, Some(start2)));
}

#[tokio::test]
async fn a_cc_call_first_seen_at_completed_ends_completed_not_missed() {
    let mut panel = Panel::start().await;
    let call = Interaction::cc("+14155550132", "inbound", START, END, "00:00:22");
    let id = panel.accept(&call.completed(""), END + 418).await;
    assert_eq!(panel.accept(&call.terminated("1000", ""), END + 45_615).await, id);
    let c = panel.call(&id).await;
    assert_eq!((c.state(), c.outcome()), (pb::CallState::Ended, pb::CallOutcome::Completed));
}

#[tokio::test]
async fn the_doc_title_spelling_is_detected_and_correlates_like_the_envelope_spelling() {
    let mut panel = Panel::start().await;
    let call = Interaction::uc("+16465550187", "outbound", START, END, "00:00:22");
    let offered = call.offered().replace("mashell-voice-phone-offered-uc-event-v1", "Voice-Phone-Offered-UC-v1");
    let mut req = request(pb::Vendor::Unspecified, &offered);
    req.received_at = Some(timestamp(START + 100));
    let r = panel.ingest.ingest(req).await.expect("detected").into_inner();
    assert_eq!((r.outcome(), r.vendor()), (pb::IngestOutcome::Accepted, VENDOR));
    assert_eq!(r.events[0].vendor_event_type, "mashell-voice-phone-offered-uc-event-v1");
    let id = r.events[0].call_id.clone();
    assert_eq!(panel.accept(&call.accepted(), START + 4_000).await, id);
}

impl Panel {
    /// Ingests as the relay of agent `agent` (`IngestRequest.agent_id`) and expects ACCEPTED.
    async fn accept_as(&mut self, agent: &str, payload: &str, relayed_ms: i64) -> pb::IngestResponse {
        let mut req = request(VENDOR, payload);
        req.received_at = Some(timestamp(relayed_ms));
        req.agent_id = agent.into();
        let r = self.ingest.ingest(req).await.unwrap_or_else(|s| panic!("ingest failed: {s:?}")).into_inner();
        assert_eq!(r.outcome(), pb::IngestOutcome::Accepted, "{payload}");
        r
    }
}

/// Two CC calls from one number are open at once (a withheld or shared trunk number): the older call's
/// `completed` (whose `startTime` is the older call's) belongs to the call first received nearest that time,
/// not to the newest open call. Before issue 11 it went to the newest, stamping the wrong call.
#[tokio::test]
async fn two_open_calls_of_one_number_the_completed_goes_to_the_call_nearest_its_start_time() {
    let mut panel = Panel::start().await;
    let number = "+14155550199";
    let first = Interaction::cc(number, "inbound", START, END, "00:00:22");
    let (start2, end2) = (START + 12_000, END + 40_000);
    let second = Interaction::cc(number, "inbound", start2, end2, "00:00:51");

    let a = panel.accept(&first.offered(), START + 482).await;
    assert_eq!(panel.accept(&first.accepted(), ANSWERED).await, a);
    let b = panel.accept(&second.offered(), start2 + 400).await;
    assert_ne!(a, b, "an offer for a connected call's number is the next call");
    assert_eq!(panel.accept(&second.accepted(), start2 + 5_000).await, b);

    assert_eq!(panel.accept(&first.completed(""), END + 418).await, a, "the older call's completed");
    assert_eq!(panel.accept(&second.completed(""), end2 + 300).await, b);
    assert_eq!(panel.accept(&first.terminated("1000", ""), END + 9_000).await, a);
    assert_eq!(panel.accept(&second.terminated("1010", ""), end2 + 9_000).await, b);

    let (ca, cb) = (panel.call(&a).await, panel.call(&b).await);
    assert_eq!((ts_millis(&ca.started_at), ca.disposition.as_str()), (Some(START), "1000"));
    assert_eq!((ts_millis(&cb.started_at), cb.disposition.as_str()), (Some(start2), "1010"));
    assert!([&ca, &cb].iter().all(|c| c.state() == pb::CallState::Ended));
}

/// One caller on two agents' panels (a transfer from Grace to Ian): each relay sends its agent's `agent_id`,
/// so each agent's events build that agent's call, with the agent as a party; the wrap-up code of
/// `lastTclCodeShort`/`lastTclCodeDesc` is on the agent's party and the call.
#[tokio::test]
async fn one_caller_on_two_agents_panels_is_two_agents_calls_with_their_wrap_up_codes() {
    let mut panel = Panel::start().await;
    let number = "+14155550177";
    let grace = Interaction::cc(number, "inbound", START, END, "00:00:22");
    let (start2, end2) = (START + 20_000, END + 60_000);
    let ian = Interaction::cc(number, "inbound", start2, end2, "00:01:10");

    let g = panel.accept_as("grace", &grace.offered(), START + 482).await.events[0].call_id.clone();
    panel.accept_as("grace", &grace.accepted(), ANSWERED).await;
    let i = panel.accept_as("ian", &ian.offered(), start2 + 300).await.events[0].call_id.clone();
    assert_ne!(g, i, "Ian's panel is Ian's call");
    assert_eq!(panel.accept_as("ian", &ian.accepted(), start2 + 4_000).await.events[0].call_id, i);
    // Ian's completed arrives first; it still goes to Ian's call (the agent is in the key).
    assert_eq!(panel.accept_as("ian", &ian.completed(""), end2 + 100).await.events[0].call_id, i);
    assert_eq!(panel.accept_as("grace", &grace.completed(""), END + 418).await.events[0].call_id, g);
    let mut terminated: Value = serde_json::from_str(&grace.terminated("1000", "")).unwrap();
    terminated["data"]["additionalData"]["lastTclCodeShort"] = json!("XFER");
    terminated["data"]["additionalData"]["lastTclCodeDesc"] = json!("Transferred to billing");
    assert_eq!(panel.accept_as("grace", &terminated.to_string(), END + 9_000).await.events[0].call_id, g);

    let cg = panel.call(&g).await;
    assert_eq!(cg.agent_ids, vec!["grace".to_string()]);
    assert_eq!((cg.state(), ts_millis(&cg.started_at)), (pb::CallState::Ended, Some(START)));
    let code = pb::WrapUpCode { code: "XFER".into(), label: "Transferred to billing".into() };
    assert_eq!(cg.wrap_up_codes, vec![code.clone()]);
    let gp = cg.parties.iter().find(|p| p.agent_id == "grace").expect("Grace's party");
    assert_eq!((gp.party_id.as_str(), gp.role()), ("agent:grace", pb::PartyRole::Agent));
    let wrap = gp.wrap_up.as_ref().expect("Grace's wrap-up");
    assert_eq!(wrap.codes, vec![code]);
    assert_eq!((ts_millis(&wrap.started_at), wrap.disposition.as_str()), (Some(END), "1000"));
    let ci = panel.call(&i).await;
    assert_eq!((ci.state(), ts_millis(&ci.started_at)), (pb::CallState::WrapUp, Some(start2)));
    assert_eq!(ci.agent_ids, vec!["ian".to_string()]);
}
