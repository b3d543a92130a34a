//! The per-call state machine (DESIGN §3.5, §4.3): a pure function from a
//! call's state and one event draft to the event to record and the call after
//! it.
//!
//! Rules:
//! * ENDED is terminal: later events are recorded and may fill in details
//!   (recording ready, wrap-up ended, outcome) but never reopen the call.
//! * A repeat of the state the call is already in (hold while on hold,
//!   connected while connected) is a duplicate, not a new event.
//! * Lifecycle steps only move forward. An event that would move the call
//!   backwards (a late `connected` after wrap-up) is recorded with the state
//!   unchanged and only fills gaps. An event older than what the call has
//!   seen (vendor sequence or vendor time) never toggles hold or re-queues;
//!   it may still move the call forward or end it.
//! * Two steps may go back by design: ON_HOLD -> CONNECTED, and RINGING ->
//!   QUEUED when an agent rejects an offer and the call is re-queued.

use chrono::{DateTime, Utc};

use super::draft::{CallFacts, EventDraft, VendorOrder};
use super::model::{
    Call, CallEvent, CallOutcome, CallState, Detail, Direction, EventType, Party, Recording, RecordingState, Vendor,
};

/// Bounds on what one call accumulates. Every event carries the whole call,
/// so an unbounded call would make each later event (and its fan-out)
/// bigger; past these limits further items are dropped from the call (the
/// events themselves still carry them).
pub mod limits {
    /// Notes kept on a call.
    pub const NOTES: usize = 100;
    /// Characters kept of each note on the call.
    pub const NOTE_CHARS: usize = 4096;
    /// Parties kept on a call.
    pub const PARTIES: usize = 32;
    /// Agent ids kept on a call.
    pub const AGENTS: usize = 32;
    /// Attributes kept on a call.
    pub const ATTRIBUTES: usize = 128;
    /// Characters kept of each attribute value on the call.
    pub const ATTRIBUTE_CHARS: usize = 1024;
}

fn truncated(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Who and when, for one application of a draft.
#[derive(Clone, Debug)]
pub struct ApplyContext<'a> {
    /// Owner.
    pub tenant_id: &'a str,
    /// Vendor of the payload.
    pub vendor: Vendor,
    /// Vendor event name.
    pub vendor_event_type: &'a str,
    /// Server receive time.
    pub received_at: DateTime<Utc>,
    /// The bridge's receive time, if the request gave one.
    pub bridge_received_at: Option<DateTime<Utc>>,
    /// The event id to give the event.
    pub event_id: String,
}

/// The result of applying a draft.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// Nothing new: the call is already in the state the event reports.
    Duplicate,
    /// A new event. `sequence` fields are left 0 for the store to assign.
    Event {
        /// The event, with `call_sequence` and `state` set.
        event: Box<CallEvent>,
        /// The call after the event.
        call: Box<Call>,
    },
}

/// What an event type does to the lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Move forward to this state; a repeat of it is a duplicate.
    Advance(CallState),
    /// Go to the hold state (implies the call was answered).
    Hold,
    /// Leave hold (implies the call was answered).
    Unhold,
    /// Re-queue after a rejected offer.
    Requeue,
    /// End the call.
    End,
    /// Everything else: the state stays.
    Stay,
}

/// The lifecycle step of each event type: the one table of state effects.
fn step_of(t: EventType) -> Step {
    use EventType::*;
    match t {
        CallStarted => Step::Advance(CallState::Initiated),
        CallQueued => Step::Advance(CallState::Queued),
        CallOffered => Step::Advance(CallState::Ringing),
        CallConnected => Step::Advance(CallState::Connected),
        WrapUpStarted => Step::Advance(CallState::WrapUp),
        CallHeld => Step::Hold,
        CallResumed | ConferenceStarted => Step::Unhold,
        OfferRejected => Step::Requeue,
        CallEnded | CallMissed => Step::End,
        CallDequeued | CallMuted | CallUnmuted | ParticipantJoined | ParticipantLeft | TransferRequested
        | CallTransferred | ParticipantsSwapped | RecordingStarted | RecordingPaused | RecordingResumed
        | RecordingReady | WrapUpEnded | Transcript | NoteAdded | FlagRaised | FlagLowered | CallUpdated
        | AudioStats | AgentStatusChanged => Step::Stay,
    }
}

/// The state an event type moves a call forward to, if it is a lifecycle
/// step (used to tell whether an event could belong to an existing call).
pub fn advance_target(t: EventType) -> Option<CallState> {
    match step_of(t) {
        Step::Advance(s) => Some(s),
        _ => None,
    }
}

/// Event types that only toggle a flag: a repeat of the flag's current value
/// is a duplicate.
fn toggle_is_repeat(t: EventType, call: &Call) -> bool {
    let rec = call.recording.as_ref().and_then(|r| r.state);
    match t {
        EventType::CallMuted => call.muted,
        EventType::CallUnmuted => !call.muted,
        EventType::RecordingStarted | EventType::RecordingResumed => rec == Some(RecordingState::Active),
        EventType::RecordingPaused => rec == Some(RecordingState::Paused),
        _ => false,
    }
}

/// Applies `draft` to `call` (`None` when the call is new).
pub fn apply(call: Option<Call>, call_id: &str, draft: &EventDraft, ctx: &ApplyContext<'_>) -> Applied {
    let is_new = call.is_none();
    let mut call = call.unwrap_or_else(|| Call::new(ctx.tenant_id, call_id, ctx.vendor, ctx.received_at));
    let when = draft.occurred_at.or(ctx.bridge_received_at).unwrap_or(ctx.received_at);
    let stale = !is_new && is_stale(&call, draft);
    let informative = merge_info(&mut call, draft);

    let before = call.state;
    let step = step_of(draft.event_type);
    let mut repeat = toggle_is_repeat(draft.event_type, &call);
    if before == CallState::Ended {
        // Terminal: record late events, never move. A second end that adds
        // nothing is a duplicate.
        if matches!(step, Step::End) {
            repeat = !end_adds_information(&call, draft);
        }
    } else if stale && matches!(step, Step::Hold | Step::Unhold | Step::Requeue) {
        // Older than what the call has seen: a toggle or a step back would
        // undo newer news. Forward steps and the end still apply: they can
        // only move the call on, and a late end must still end it.
        repeat = !matches!(step, Step::Requeue);
    } else {
        match step {
            Step::Advance(target) => {
                if target.rank() > before.rank() {
                    call.state = target;
                } else if target == before || (target == CallState::Connected && before == CallState::OnHold) {
                    repeat = !informative;
                }
            }
            Step::Hold => match before {
                CallState::OnHold => repeat = true,
                s if s.rank() <= CallState::Connected.rank() => call.state = CallState::OnHold,
                _ => {}
            },
            Step::Unhold => match before {
                CallState::Connected if draft.event_type == EventType::CallResumed => repeat = true,
                s if s.rank() <= CallState::Connected.rank() => call.state = CallState::Connected,
                _ => {}
            },
            Step::Requeue => {
                if before == CallState::Ringing {
                    call.state = if call.queued_at.is_some() { CallState::Queued } else { CallState::Initiated };
                }
            }
            Step::End => call.state = CallState::Ended,
            Step::Stay => {
                if implies_answered(draft.event_type) && before.rank() < CallState::Connected.rank() {
                    call.state = CallState::Connected;
                }
            }
        }
    }
    if repeat && !is_new {
        return Applied::Duplicate;
    }

    apply_effects(&mut call, draft, before, when);
    if !stale && let Some(order) = &draft.order {
        call.vendor_order = Some(order.clone());
    }
    if let Some(t) = draft.occurred_at {
        call.last_vendor_time = Some(call.last_vendor_time.map_or(t, |prev| prev.max(t)));
    }
    call.call_sequence += 1;
    call.updated_at = ctx.received_at;
    let event = build_event(&call, draft, ctx, when);
    Applied::Event { event: Box::new(event), call: Box::new(call) }
}

/// Builds an agent event (no call, no state).
pub fn agent_event(draft: &EventDraft, ctx: &ApplyContext<'_>) -> CallEvent {
    let mut event =
        build_event_base(draft, ctx, draft.occurred_at.or(ctx.bridge_received_at).unwrap_or(ctx.received_at));
    event.state = None;
    event
}

/// Events that cannot happen before a call is answered: seeing one means the
/// call is connected even if the vendor never said so (Salesforce Native
/// Telephony has no `callstarted`).
fn implies_answered(t: EventType) -> bool {
    matches!(
        t,
        EventType::CallMuted
            | EventType::CallUnmuted
            | EventType::ParticipantsSwapped
            | EventType::RecordingPaused
            | EventType::RecordingResumed
            | EventType::Transcript
    )
}

fn is_stale(call: &Call, draft: &EventDraft) -> bool {
    if let (Some(VendorOrder { scope, position }), Some(prev)) = (&draft.order, &call.vendor_order)
        && *scope == prev.scope
    {
        return *position < prev.position;
    }
    matches!((draft.occurred_at, call.last_vendor_time), (Some(t), Some(prev)) if t < prev)
}

fn end_adds_information(call: &Call, draft: &EventDraft) -> bool {
    let facts = &draft.facts;
    let detail_outcome = match &draft.detail {
        Some(Detail::Ended(e)) => e.outcome,
        _ => None,
    };
    let missed = (draft.event_type == EventType::CallMissed).then_some(CallOutcome::Missed);
    let outcome = facts.outcome.or(detail_outcome).or(missed);
    outcome.is_some_and(|o| call.outcome != Some(o))
        || facts.disposition.as_deref().is_some_and(|d| !d.is_empty() && call.disposition != d)
        || facts.end_reason.as_deref().is_some_and(|r| !r.is_empty() && call.end_reason != r)
        || (facts.duration.is_some() && call.duration.is_none())
}

/// Merges the draft's descriptive data into the call; true when the call
/// learned something it did not know (a new agent, party or queue).
fn merge_info(call: &mut Call, draft: &EventDraft) -> bool {
    let mut informative = false;
    if call.direction.is_none() && draft.direction.is_some() {
        call.direction = draft.direction;
    }
    if let Some(conv) = &draft.conversation_id
        && !conv.is_empty()
        && call.conversation_id == call.call_id
    {
        call.conversation_id = conv.clone();
    }
    for p in &draft.parties {
        informative |= merge_party(&mut call.parties, p);
    }
    if let Some(Detail::Participant(p)) = &draft.detail {
        informative |= merge_party(&mut call.parties, p);
    }
    if !draft.agent_id.is_empty() && !call.agent_ids.contains(&draft.agent_id) && call.agent_ids.len() < limits::AGENTS
    {
        call.agent_ids.push(draft.agent_id.clone());
        informative = true;
    }
    if !draft.queue_id.is_empty() && call.queue_id != draft.queue_id {
        call.queue_id = draft.queue_id.clone();
        informative = true;
    }
    if call.media.is_none() {
        call.media = draft.media;
    }
    for (k, v) in &draft.attributes {
        if call.attributes.len() < limits::ATTRIBUTES || call.attributes.contains_key(k) {
            call.attributes.insert(k.clone(), truncated(v, limits::ATTRIBUTE_CHARS));
        }
    }
    informative
}

fn merge_party(parties: &mut Vec<Party>, p: &Party) -> bool {
    if let Some(existing) = parties.iter_mut().find(|e| e.same_as(p)) {
        existing.absorb(p);
        false
    } else if parties.len() < limits::PARTIES {
        parties.push(p.clone());
        true
    } else {
        false
    }
}

/// Applies the state-specific side effects (timestamps, hold accounting,
/// recording, notes, outcome).
fn apply_effects(call: &mut Call, draft: &EventDraft, before: CallState, when: DateTime<Utc>) {
    merge_facts(call, &draft.facts);
    let fill = |slot: &mut Option<DateTime<Utc>>| {
        if slot.is_none() {
            *slot = Some(when);
        }
    };
    match draft.event_type {
        EventType::CallStarted => fill(&mut call.started_at),
        EventType::CallQueued => fill(&mut call.queued_at),
        EventType::CallConnected => fill(&mut call.answered_at),
        EventType::CallMuted => call.muted = true,
        EventType::CallUnmuted => call.muted = false,
        EventType::RecordingStarted | EventType::RecordingResumed => set_recording(call, RecordingState::Active, None),
        EventType::RecordingPaused => set_recording(call, RecordingState::Paused, None),
        EventType::RecordingReady => {
            let url = match &draft.detail {
                Some(Detail::Recording(r)) => Some(r.url.clone()),
                _ => None,
            };
            set_recording(call, RecordingState::Ready, url);
        }
        EventType::WrapUpEnded => fill(&mut call.wrap_up_ended_at),
        EventType::Transcript => call.transcript_count += 1,
        EventType::NoteAdded => {
            if let Some(Detail::Note { text, .. }) = &draft.detail
                && !text.is_empty()
                && call.notes.len() < limits::NOTES
            {
                call.notes.push(truncated(text, limits::NOTE_CHARS));
            }
        }
        _ => {}
    }
    if draft.event_type == EventType::CallMissed {
        call.outcome = Some(CallOutcome::Missed);
    }
    if let Some(Detail::Ended(e)) = &draft.detail {
        merge_facts(
            call,
            &CallFacts {
                outcome: e.outcome,
                hangup_initiator: e.hangup_initiator,
                end_reason: Some(e.reason.clone()),
                duration: e.duration,
                talk_duration: e.talk_duration,
                disposition: Some(e.disposition.clone()),
                ..CallFacts::default()
            },
        );
    }

    // Hold accounting follows the state, whatever event moved it.
    let now_on_hold = call.state == CallState::OnHold;
    if now_on_hold && before != CallState::OnHold {
        call.hold_count += 1;
        call.hold_started_at = Some(when);
    } else if !now_on_hold && let Some(start) = call.hold_started_at.take() {
        call.total_hold = call.total_hold.saturating_add((when - start).to_std().unwrap_or_default());
    }
    call.on_hold = now_on_hold;
    if call.state == CallState::Connected || call.state == CallState::OnHold {
        fill(&mut call.answered_at);
    }
    if matches!(call.state, CallState::WrapUp | CallState::Ended) && before.rank() < call.state.rank() {
        fill(&mut call.ended_at);
        if call.state == CallState::Ended {
            call.muted = false;
            if call.outcome.is_none() {
                // After-call work only follows a conversation.
                let talked = before == CallState::WrapUp;
                call.outcome = Some(if talked { CallOutcome::Completed } else { derive_outcome(call) });
            }
        }
        if call.talk_duration.is_none()
            && let (Some(a), Some(e)) = (call.answered_at, call.ended_at)
        {
            call.talk_duration = (e - a).to_std().ok();
        }
    }
}

/// The outcome of a call that ended without the vendor saying how.
fn derive_outcome(call: &Call) -> CallOutcome {
    if call.answered_at.is_some() {
        CallOutcome::Completed
    } else if call.direction == Some(Direction::Outbound) {
        CallOutcome::NoAnswer
    } else if call.queued_at.is_some() {
        CallOutcome::Abandoned
    } else {
        CallOutcome::Missed
    }
}

fn merge_facts(call: &mut Call, f: &CallFacts) {
    let fill = |slot: &mut Option<DateTime<Utc>>, v: Option<DateTime<Utc>>| {
        if slot.is_none() {
            *slot = v;
        }
    };
    fill(&mut call.started_at, f.started_at);
    fill(&mut call.answered_at, f.answered_at);
    fill(&mut call.ended_at, f.ended_at);
    if f.duration.is_some() {
        call.duration = f.duration;
    }
    if f.talk_duration.is_some() {
        call.talk_duration = f.talk_duration;
    }
    if let Some(r) = &f.recording {
        let rec = call.recording.get_or_insert_with(Recording::default);
        if r.state.is_some() {
            rec.state = r.state;
        }
        if !r.url.is_empty() {
            rec.url = r.url.clone();
        }
    }
    let set = |slot: &mut String, v: &Option<String>| {
        if let Some(v) = v
            && !v.is_empty()
        {
            *slot = v.clone();
        }
    };
    set(&mut call.disposition, &f.disposition);
    set(&mut call.end_reason, &f.end_reason);
    for n in &f.notes {
        let n = truncated(n, limits::NOTE_CHARS);
        if !n.is_empty() && !call.notes.contains(&n) && call.notes.len() < limits::NOTES {
            call.notes.push(n);
        }
    }
    if f.outcome.is_some() {
        call.outcome = f.outcome;
    }
    if f.hangup_initiator.is_some() {
        call.hangup_initiator = f.hangup_initiator;
    }
}

fn set_recording(call: &mut Call, state: RecordingState, url: Option<String>) {
    let rec = call.recording.get_or_insert_with(Recording::default);
    rec.state = Some(state);
    if let Some(url) = url.filter(|u| !u.is_empty()) {
        rec.url = url;
    }
}

fn build_event(call: &Call, draft: &EventDraft, ctx: &ApplyContext<'_>, when: DateTime<Utc>) -> CallEvent {
    let mut event = build_event_base(draft, ctx, when);
    event.call_sequence = call.call_sequence;
    event.call_id = call.call_id.clone();
    event.conversation_id = call.conversation_id.clone();
    event.state = Some(call.state);
    if event.direction.is_none() {
        event.direction = call.direction;
    }
    if event.media.is_none() {
        event.media = call.media;
    }
    if let Some(Detail::Ended(e)) = &mut event.detail {
        // The event reports the outcome the call ended with, even when the
        // vendor left it to be derived.
        if e.outcome.is_none() {
            e.outcome = call.outcome;
        }
        if e.talk_duration.is_none() {
            e.talk_duration = call.talk_duration;
        }
    } else if matches!(draft.event_type, EventType::CallEnded | EventType::CallMissed) {
        event.detail = Some(Detail::Ended(super::model::Ended {
            outcome: call.outcome,
            hangup_initiator: call.hangup_initiator,
            reason: call.end_reason.clone(),
            duration: call.duration,
            talk_duration: call.talk_duration,
            disposition: call.disposition.clone(),
        }));
    }
    event
}

fn build_event_base(draft: &EventDraft, ctx: &ApplyContext<'_>, when: DateTime<Utc>) -> CallEvent {
    let mut attributes = draft.attributes.clone();
    let source = if draft.occurred_at.is_some() {
        "vendor"
    } else if ctx.bridge_received_at.is_some() {
        "bridge"
    } else {
        "server"
    };
    attributes.insert("occurred_at_source".into(), source.into());
    CallEvent {
        event_id: ctx.event_id.clone(),
        sequence: 0,
        call_sequence: 0,
        tenant_id: ctx.tenant_id.to_string(),
        call_id: String::new(),
        conversation_id: String::new(),
        event_type: draft.event_type,
        occurred_at: when,
        received_at: ctx.received_at,
        vendor: ctx.vendor,
        vendor_event_type: ctx.vendor_event_type.to_string(),
        direction: draft.direction,
        state: None,
        parties: draft.parties.clone(),
        agent_id: draft.agent_id.clone(),
        queue_id: draft.queue_id.clone(),
        media: draft.media,
        detail: draft.detail.clone(),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::draft::CallRef;
    use crate::domain::model::Ended;
    use chrono::TimeZone;

    fn ctx(t: i64) -> ApplyContext<'static> {
        ApplyContext {
            tenant_id: "acme",
            vendor: Vendor::SalesforceVoice,
            vendor_event_type: "test",
            received_at: Utc.timestamp_opt(1_700_000_000 + t, 0).unwrap(),
            bridge_received_at: None,
            event_id: format!("e{t}"),
        }
    }

    fn draft(t: EventType) -> EventDraft {
        EventDraft::new(t, Some(CallRef::Id("sf:c1".into())))
    }

    /// Applies drafts in order and returns the states after each (None for
    /// duplicates) and the final call.
    fn run(drafts: &[EventDraft]) -> (Vec<Option<CallState>>, Call) {
        let mut call: Option<Call> = None;
        let mut states = Vec::new();
        for (i, d) in drafts.iter().enumerate() {
            match apply(call.clone(), "sf:c1", d, &ctx(i as i64)) {
                Applied::Duplicate => states.push(None),
                Applied::Event { event, call: c } => {
                    assert_eq!(event.call_sequence, c.call_sequence);
                    states.push(event.state);
                    call = Some(*c);
                }
            }
        }
        (states, call.expect("at least one event applied"))
    }

    use CallState::*;
    use EventType::*;

    #[test]
    fn an_inbound_call_walks_forward_and_ends_completed() {
        let (states, call) =
            run(&[draft(CallStarted), draft(CallQueued), draft(CallOffered), draft(CallConnected), draft(CallEnded)]);
        assert_eq!(states, vec![Some(Initiated), Some(Queued), Some(Ringing), Some(Connected), Some(Ended)]);
        assert_eq!(call.outcome, Some(CallOutcome::Completed));
        assert_eq!(call.call_sequence, 5);
        assert!(call.talk_duration.is_some());
    }

    #[test]
    fn hold_while_on_hold_is_a_duplicate_and_hold_time_is_counted() {
        let (states, call) =
            run(&[draft(CallConnected), draft(CallHeld), draft(CallHeld), draft(CallResumed), draft(CallResumed)]);
        assert_eq!(states, vec![Some(Connected), Some(OnHold), None, Some(Connected), None]);
        assert_eq!(call.hold_count, 1);
        assert_eq!(call.total_hold, std::time::Duration::from_secs(2));
        assert!(!call.on_hold);
        assert_eq!(call.call_sequence, 3, "duplicates do not consume a call sequence");
    }

    #[test]
    fn ended_is_terminal_but_late_events_are_recorded() {
        let (states, call) =
            run(&[draft(CallConnected), draft(CallEnded), draft(CallHeld), draft(WrapUpEnded), draft(CallConnected)]);
        assert_eq!(states, vec![Some(Connected), Some(Ended), Some(Ended), Some(Ended), Some(Ended)]);
        assert!(call.wrap_up_ended_at.is_some());
        assert!(!call.on_hold);
    }

    #[test]
    fn a_second_end_without_news_is_a_duplicate_but_one_with_an_outcome_is_kept() {
        let mut rejected = draft(CallEnded);
        rejected.detail = Some(Detail::Ended(Ended { outcome: Some(CallOutcome::Rejected), ..Ended::default() }));
        let (states, call) = run(&[draft(CallOffered), draft(CallEnded), draft(CallEnded), rejected]);
        assert_eq!(states, vec![Some(Ringing), Some(Ended), None, Some(Ended)]);
        assert_eq!(call.outcome, Some(CallOutcome::Rejected));
    }

    #[test]
    fn a_late_connected_after_wrap_up_does_not_move_back_but_fills_answer_time() {
        let (states, call) = run(&[draft(CallOffered), draft(WrapUpStarted), draft(CallConnected)]);
        assert_eq!(states, vec![Some(Ringing), Some(WrapUp), Some(WrapUp)]);
        assert!(call.answered_at.is_some());
    }

    #[test]
    fn a_rejected_offer_requeues_and_a_new_offer_rings_again() {
        let mut offer_a = draft(CallOffered);
        offer_a.agent_id = "a".into();
        let mut offer_b = draft(CallOffered);
        offer_b.agent_id = "b".into();
        let (states, call) = run(&[draft(CallQueued), offer_a, draft(OfferRejected), offer_b]);
        assert_eq!(states, vec![Some(Queued), Some(Ringing), Some(Queued), Some(Ringing)]);
        assert_eq!(call.agent_ids, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn a_repeated_offer_to_a_new_agent_is_not_a_duplicate() {
        let mut offer_a = draft(CallOffered);
        offer_a.agent_id = "a".into();
        let mut offer_b = draft(CallOffered);
        offer_b.agent_id = "b".into();
        let (states, _) = run(&[offer_a.clone(), offer_a, offer_b]);
        assert_eq!(states, vec![Some(Ringing), None, Some(Ringing)]);
    }

    #[test]
    fn a_stale_vendor_sequence_never_moves_state() {
        let order = |n| Some(VendorOrder { scope: "i1".into(), position: n });
        let mut connect = draft(CallConnected);
        connect.order = order(10);
        let mut unhold = draft(CallResumed);
        unhold.order = order(12);
        let mut hold = draft(CallHeld);
        hold.order = order(11);
        let mut old_hold = draft(CallHeld);
        old_hold.order = order(5);
        let (states, call) = run(&[connect, hold, unhold, old_hold]);
        assert_eq!(states, vec![Some(Connected), Some(OnHold), Some(Connected), None]);
        assert_eq!(call.state, Connected);
    }

    #[test]
    fn a_stale_end_still_ends_the_call() {
        let order = |n| Some(VendorOrder { scope: "i1".into(), position: n });
        let mut connect = draft(CallConnected);
        connect.order = order(10);
        let mut left = draft(ParticipantLeft);
        left.order = order(20);
        let mut end = draft(CallEnded);
        end.order = order(19);
        let (states, call) = run(&[connect, left, end]);
        assert_eq!(states, vec![Some(Connected), Some(Connected), Some(Ended)]);
        assert_eq!(call.outcome, Some(CallOutcome::Completed));
    }

    #[test]
    fn a_call_keeps_a_bounded_number_of_notes() {
        let notes: Vec<EventDraft> = (0..limits::NOTES + 20)
            .map(|i| {
                let mut d = draft(NoteAdded);
                d.detail =
                    Some(Detail::Note { text: format!("note {i} {}", "x".repeat(10_000)), author: String::new() });
                d
            })
            .collect();
        let (_, call) = run(&notes);
        assert_eq!(call.notes.len(), limits::NOTES);
        assert!(call.notes.iter().all(|n| n.chars().count() <= limits::NOTE_CHARS));
        assert_eq!(call.call_sequence as usize, limits::NOTES + 20, "the events are all recorded");
    }

    #[test]
    fn an_older_vendor_time_is_stale() {
        let at = |s: i64| Some(Utc.timestamp_opt(1_700_000_100 + s, 0).unwrap());
        let mut wrap = draft(WrapUpStarted);
        wrap.occurred_at = at(50);
        let mut queued = draft(CallQueued);
        queued.occurred_at = at(10);
        let (states, _) = run(&[draft(CallConnected), wrap, queued]);
        assert_eq!(states, vec![Some(Connected), Some(WrapUp), Some(WrapUp)]);
    }

    #[test]
    fn outcome_is_derived_when_the_vendor_gives_none() {
        let (_, abandoned) = run(&[draft(CallQueued), draft(CallEnded)]);
        assert_eq!(abandoned.outcome, Some(CallOutcome::Abandoned));
        let mut out = draft(CallStarted);
        out.direction = Some(Direction::Outbound);
        let (_, no_answer) = run(&[out, draft(CallEnded)]);
        assert_eq!(no_answer.outcome, Some(CallOutcome::NoAnswer));
        let (_, missed) = run(&[draft(CallMissed)]);
        assert_eq!(missed.outcome, Some(CallOutcome::Missed));
    }

    #[test]
    fn a_call_first_seen_in_wrap_up_ends_completed() {
        let (_, call) = run(&[draft(WrapUpStarted), draft(CallEnded)]);
        assert_eq!(call.outcome, Some(CallOutcome::Completed));
    }

    #[test]
    fn mute_toggles_and_repeats_are_duplicates() {
        let (states, call) = run(&[draft(CallConnected), draft(CallMuted), draft(CallMuted), draft(CallUnmuted)]);
        assert_eq!(states, vec![Some(Connected), Some(Connected), None, Some(Connected)]);
        assert!(!call.muted);
    }

    #[test]
    fn the_first_event_may_be_connected_or_even_a_mute() {
        let (states, call) = run(&[draft(CallMuted)]);
        assert_eq!(states, vec![Some(Connected)]);
        assert!(call.muted && call.answered_at.is_some());
    }

    #[test]
    fn recording_pause_and_resume_track_recording_state() {
        let (states, call) =
            run(&[draft(CallConnected), draft(RecordingPaused), draft(RecordingPaused), draft(RecordingResumed)]);
        assert_eq!(states, vec![Some(Connected), Some(Connected), None, Some(Connected)]);
        assert_eq!(call.recording.and_then(|r| r.state), Some(RecordingState::Active));
    }
}
