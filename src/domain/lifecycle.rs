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
//!
//! Calls with more than two people (DESIGN §3.6): **a call ends when the
//! customer leaves it (or its last party leaves). An agent who leaves, wraps
//! up or misses the call while another agent (or the customer with another
//! agent) is still on it changes that agent's party, not the call.**
//! * Every party on a call has a stable `party_id` and its own state
//!   (ALERTING, CONNECTED, ON_HOLD, WRAP_UP, LEFT), join and leave times and
//!   wrap-up. The events move them: an offer rings the agent, an answer
//!   connects the agent and the customer, a hold holds the customer and the
//!   holding agent, a wrap-up puts the agent in WRAP_UP, a wrap-up end or a
//!   departure makes the party LEFT, the call's end makes everyone still on
//!   it LEFT (an agent in wrap-up stays in wrap-up).
//! * A draft with a `party_scope` is that party's step. While another agent
//!   (AGENT, THIRD_PARTY or SUPERVISOR party, CONNECTED or ON_HOLD) is on the
//!   call, or a transfer was requested and has not completed (the customer
//!   waits on the line for its target), it is *local*: WRAP_UP_STARTED / WRAP_UP_ENDED / PARTICIPANT_LEFT
//!   change only the party, and a CALL_ENDED / CALL_MISSED is recorded as
//!   that party's PARTICIPANT_LEFT. Its end facts (hang-up time, outcome,
//!   reason, duration) describe the party's leg, not the call, and are not
//!   merged into the call; its disposition goes to the party's wrap-up.
//!   Otherwise the draft is the call's step, exactly as without a scope.
//! * The call is in WRAP_UP only once the customer has left: the call-level
//!   wrap-up makes the customer party LEFT. The call's end itself still comes
//!   from the vendor's end event (8x8 InteractionDeleted, Xelion
//!   callHungUpEvent, the last rep's `callended`, panel `terminated`): a
//!   party's PARTICIPANT_LEFT is recorded on that party and never inferred
//!   to be the end, because vendors report departures of parties they do not
//!   name reliably (a channel of a hunt group, a host or the removed agent).
//! * A participant who joins after a TRANSFER_REQUESTED completes the
//!   transfer: the event is CALL_TRANSFERRED with a `transfer` detail from
//!   the requesting party to the one who joined. Without a request, a join is
//!   a join (8x8 sends the same event for conferences and supervisor joins).
//! * A CALL_TRANSFERRED whose `transfer` detail names nobody who joined this
//!   leg hands the leg on (to another leg or destination): when it ends without a vendor
//!   outcome, its outcome is TRANSFERRED.
//! * Queue visits: CALL_QUEUED opens one (another queue while queued closes
//!   the open one as OVERFLOW), an offer or answer closes it ASSIGNED,
//!   CALL_DEQUEUED with the vendor's result (a timeout is TIMEOUT), the end
//!   of a never-answered call ABANDONED unless the visit already has a
//!   result. A call that timed out of its queue and was never answered ends
//!   MISSED, not ABANDONED: the caller did not hang up.

use chrono::{DateTime, Utc};

use super::draft::{CallFacts, EventDraft, VendorOrder};
use super::model::{
    Call, CallEvent, CallOutcome, CallState, Detail, Direction, EventType, Party, PartyRole, PartyState, QueueResult,
    QueueVisit, Recording, RecordingState, Transfer, Vendor, WrapUp,
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
    /// Queue visits kept on a call.
    pub const QUEUE_VISITS: usize = 32;
    /// Wrap-up codes kept on a call (and on each party).
    pub const WRAP_UP_CODES: usize = 32;
}

fn truncated(s: &str, max_chars: usize) -> String {
    // No more bytes than the limit means no more characters: no need to
    // walk them (most values are short).
    if s.len() <= max_chars {
        return s.to_string();
    }
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Who and when, for one application of a draft.
#[derive(Clone, Debug)]
pub struct ApplyContext<'a> {
    /// The tenant: every call is scoped to it.
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
fn toggle_is_repeat(t: EventType, call: &Call, draft: &EventDraft) -> bool {
    let rec = call.recording.as_ref().and_then(|r| r.state);
    match t {
        EventType::CallMuted => call.muted,
        EventType::CallUnmuted => !call.muted,
        EventType::RecordingStarted | EventType::RecordingResumed => rec == Some(RecordingState::Active),
        EventType::RecordingPaused => rec == Some(RecordingState::Paused),
        // Only a recording's first appearance is news: the same ready
        // recording again (the panel repeats its URL on `terminated`) is not.
        EventType::RecordingReady => {
            let url = match &draft.detail {
                Some(Detail::Recording(r)) => r.url.as_str(),
                _ => "",
            };
            rec == Some(RecordingState::Ready) && call.recording.as_ref().is_some_and(|r| r.url == url)
        }
        _ => false,
    }
}

/// Applies `draft` to `call` (`None` when the call is new).
pub fn apply(call: Option<Call>, call_id: &str, draft: &EventDraft, ctx: &ApplyContext<'_>) -> Applied {
    let is_new = call.is_none();
    let mut call = call.unwrap_or_else(|| {
        let mut new = Call::new(ctx.tenant_id, call_id, ctx.vendor, ctx.received_at);
        // The bridge's receive time is nearer the vendor's clock (correlation).
        new.first_received_at = Some(ctx.bridge_received_at.unwrap_or(ctx.received_at));
        new
    });
    let when = draft.occurred_at.or(ctx.bridge_received_at).unwrap_or(ctx.received_at);
    let stale = !is_new && is_stale(&call, draft);
    let informative = merge_info(&mut call, draft, when);
    // One party's step while others are still on the call changes only that
    // party (module comment); a join after a transfer request completes it.
    // A transfer under way counts as someone on the call: the customer stays
    // on the line for its target (8x8 sends the first agent's post-process
    // before the second agent joins the customer's interaction).
    let local =
        draft.party_scope.as_ref().is_some_and(|p| others_on_call(&call, p) || call.transfer_requested.is_some())
            && call.state.is_active();
    let adjusted = if local {
        Some(localized(draft))
    } else if draft.event_type == EventType::ParticipantJoined
        && call.state.is_active()
        && let Some(requested) = &call.transfer_requested
    {
        Some(completed_transfer(draft, requested))
    } else {
        None
    };
    let draft = adjusted.as_ref().unwrap_or(draft);

    let before = call.state;
    let step = match step_of(draft.event_type) {
        Step::Advance(CallState::WrapUp) if local => Step::Stay,
        step => step,
    };
    let mut repeat = toggle_is_repeat(draft.event_type, &call, draft);
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
    let party_changed = party_effects(&mut call, draft, local, before, when);
    if repeat && party_changed && !stale && matches!(step, Step::Advance(_)) && before != CallState::Ended {
        // The call already is where the event says, but a party moved (the
        // second agent's answer on a connected call).
        repeat = false;
    }
    if repeat && !is_new {
        return Applied::Duplicate;
    }

    apply_effects(&mut call, draft, before, when, local, is_new);
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
fn merge_info(call: &mut Call, draft: &EventDraft, when: DateTime<Utc>) -> bool {
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
    let answered = call.answered_at.is_some();
    let outbound = call.direction == Some(Direction::Outbound);
    let mut named: Vec<&Party> = draft.parties.iter().collect();
    match &draft.detail {
        Some(Detail::Participant(p)) => named.push(p),
        Some(Detail::Transfer(t)) => named.extend(t.from.iter().chain(t.to.iter())),
        _ => {}
    }
    named.extend(draft.party_scope.iter());
    for p in named {
        informative |= merge_party(&mut call.parties, p, answered || !outbound, when);
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
        let room = call.attributes.len() < limits::ATTRIBUTES;
        match call.attributes.get_mut(k) {
            // Most events of a call repeat its attributes: nothing to copy.
            Some(kept) if kept == v => {}
            Some(kept) => *kept = truncated(v, limits::ATTRIBUTE_CHARS),
            None if room => {
                call.attributes.insert(k.clone(), truncated(v, limits::ATTRIBUTE_CHARS));
            }
            None => {}
        }
    }
    informative
}

/// Adds `p` to the call's parties (or fills in the one it is). A new party
/// gets its stable id; a customer is on the call from the start of an
/// inbound call, ringing on an outbound call until it is answered.
fn merge_party(parties: &mut Vec<Party>, p: &Party, customer_on: bool, when: DateTime<Utc>) -> bool {
    if let Some(existing) = parties.iter_mut().find(|e| e.same_as(p)) {
        existing.absorb(p);
        false
    } else if parties.len() < limits::PARTIES {
        let mut new = Party {
            role: p.role,
            phone_number: p.phone_number.clone(),
            e164: p.e164.clone(),
            display_name: p.display_name.clone(),
            agent_id: p.agent_id.clone(),
            user_id: p.user_id.clone(),
            ..Party::default()
        };
        new.party_id = party_id(parties, &new);
        if new.role == Some(PartyRole::Customer) {
            let state = if customer_on { PartyState::Connected } else { PartyState::Alerting };
            set_party_state(&mut new, state, when);
        }
        parties.push(new);
        true
    } else {
        false
    }
}

/// A party's id, unique within the call and never changed: `customer` for
/// the (first) customer, else from the first of agent id, user id, E.164,
/// number and name, with `#2`, `#3`... on a clash.
fn party_id(parties: &[Party], p: &Party) -> String {
    let first_customer = p.role == Some(PartyRole::Customer)
        && !parties.iter().any(|e| e.role == Some(PartyRole::Customer) && e.party_id == "customer");
    let base = if first_customer {
        "customer".to_string()
    } else if !p.agent_id.is_empty() {
        ["agent:", &p.agent_id].concat()
    } else if !p.user_id.is_empty() {
        ["user:", &p.user_id].concat()
    } else if !p.e164.is_empty() {
        ["number:", &p.e164].concat()
    } else if !p.phone_number.is_empty() {
        ["number:", &p.phone_number].concat()
    } else if !p.display_name.is_empty() {
        ["name:", &p.display_name].concat()
    } else {
        "party".to_string()
    };
    let taken = |id: &str| parties.iter().any(|e| e.party_id == id);
    if !taken(&base) {
        return base;
    }
    (2..).map(|n| format!("{base}#{n}")).find(|id| !taken(id)).expect("some suffix is free")
}

/// Whether someone other than `me` who handles calls (an agent, third party
/// or supervisor) is on the call now: then `me` leaving changes only `me`.
fn others_on_call(call: &Call, me: &Party) -> bool {
    call.parties.iter().any(|p| {
        !p.same_as(me)
            && p.role != Some(PartyRole::Customer)
            && matches!(p.state, Some(PartyState::Connected | PartyState::OnHold))
    })
}

/// One party's step while others are on the call: a wrap-up or departure
/// of that party only. An end becomes the party's PARTICIPANT_LEFT; end
/// facts describe the party's leg and stay off the call.
fn localized(draft: &EventDraft) -> EventDraft {
    let mut d = draft.clone();
    let party = d.party_scope.clone().unwrap_or_default();
    if matches!(d.event_type, EventType::CallEnded | EventType::CallMissed) {
        d.attributes.insert("party_step".into(), d.event_type.name().to_ascii_lowercase());
        d.event_type = EventType::ParticipantLeft;
        d.detail = Some(Detail::Participant(party));
    }
    let f = &mut d.facts;
    f.ended_at = None;
    f.outcome = None;
    f.end_reason = None;
    f.hangup_initiator = None;
    f.duration = None;
    f.talk_duration = None;
    d
}

/// A participant joining after a transfer request: the transfer completes.
fn completed_transfer(draft: &EventDraft, requested: &Transfer) -> EventDraft {
    let mut d = draft.clone();
    let to = match &draft.detail {
        Some(Detail::Participant(p)) => Some(p.clone()),
        _ => draft.parties.iter().find(|p| p.role != Some(PartyRole::Customer)).cloned(),
    };
    d.event_type = EventType::CallTransferred;
    d.detail = Some(Detail::Transfer(Box::new(Transfer {
        kind: requested.kind,
        from: requested.from.clone(),
        to,
        target: requested.target.clone(),
    })));
    d
}

/// Moves a party to `state`, stamping join, leave and wrap-up times; true
/// when it changed.
fn set_party_state(p: &mut Party, state: PartyState, when: DateTime<Utc>) -> bool {
    if p.state == Some(state) {
        return false;
    }
    p.state = Some(state);
    match state {
        PartyState::Connected | PartyState::OnHold => {
            if p.joined_at.is_none() {
                p.joined_at = Some(when);
            }
            // Back on the call (a re-offer after a miss): not gone anymore.
            p.left_at = None;
        }
        PartyState::Alerting => p.left_at = None,
        PartyState::WrapUp => {
            if p.left_at.is_none() {
                p.left_at = Some(when);
            }
            let w = p.wrap_up.get_or_insert_with(WrapUp::default);
            if w.started_at.is_none() {
                w.started_at = Some(when);
            }
        }
        PartyState::Left => {
            if p.left_at.is_none() {
                p.left_at = Some(when);
            }
            if let Some(w) = &mut p.wrap_up
                && w.ended_at.is_none()
            {
                w.ended_at = Some(when);
            }
        }
    }
    true
}

/// The call's party an event is about: its scope, else its agent.
fn subject_index(call: &Call, draft: &EventDraft) -> Option<usize> {
    if let Some(p) = &draft.party_scope {
        return call.parties.iter().position(|e| e.same_as(p));
    }
    if draft.agent_id.is_empty() {
        return None;
    }
    call.parties.iter().position(|e| e.agent_id == draft.agent_id)
}

/// Moves the parties an event concerns (module comment); true when any
/// party's state changed.
fn party_effects(call: &mut Call, draft: &EventDraft, local: bool, before: CallState, when: DateTime<Utc>) -> bool {
    use PartyState as P;
    let subject = subject_index(call, draft);
    let named = |call: &Call, p: Option<&Party>| p.and_then(|p| call.parties.iter().position(|e| e.same_as(p)));
    let mut changed = false;
    let mut move_one = |call: &mut Call, i: Option<usize>, to: P, allowed: &dyn Fn(Option<P>) -> bool| {
        if let Some(i) = i
            && allowed(call.parties[i].state)
        {
            changed |= set_party_state(&mut call.parties[i], to, when);
        }
    };
    let any = |_: Option<P>| true;
    let not_gone = |s: Option<P>| !matches!(s, Some(P::WrapUp | P::Left));
    let customer = call.parties.iter().position(|p| p.role == Some(PartyRole::Customer));
    match draft.event_type {
        EventType::CallOffered => move_one(call, subject, P::Alerting, &|s| matches!(s, None | Some(P::Left))),
        EventType::OfferRejected => move_one(call, subject, P::Left, &|s| matches!(s, None | Some(P::Alerting))),
        EventType::CallConnected => {
            move_one(call, subject, P::Connected, &not_gone);
            move_one(call, customer, P::Connected, &|s| matches!(s, None | Some(P::Alerting)));
            // Without an agent id (a PBX), the answer names who talks: the
            // users or numbers on the event are connected.
            if subject.is_none() {
                for p in &draft.parties {
                    let i = named(call, Some(p));
                    move_one(call, i, P::Connected, &|s| matches!(s, None | Some(P::Alerting)));
                }
            }
        }
        EventType::CallHeld if call.state == CallState::OnHold => {
            move_one(call, customer, P::OnHold, &|s| s == Some(P::Connected));
            move_one(call, subject, P::OnHold, &|s| s == Some(P::Connected));
        }
        EventType::CallResumed | EventType::ConferenceStarted => {
            for i in 0..call.parties.len() {
                move_one(call, Some(i), P::Connected, &|s| s == Some(P::OnHold));
            }
        }
        EventType::ParticipantJoined | EventType::CallTransferred => {
            let who = match &draft.detail {
                Some(Detail::Participant(p)) => named(call, Some(p)),
                Some(Detail::Transfer(t)) => named(call, t.to.as_ref()),
                _ => None,
            };
            move_one(call, who, P::Connected, &any);
        }
        EventType::ParticipantLeft => {
            // Only a party the event says left: the participant, else the
            // scope. An agent merely named on the event may be someone else
            // (8x8's host who removed a participant).
            let who = match &draft.detail {
                Some(Detail::Participant(p)) => named(call, Some(p)),
                _ => named(call, draft.party_scope.as_ref()),
            };
            // An agent who already finished wrap-up stays LEFT; one in
            // wrap-up who is deassigned has left too.
            move_one(call, who, P::Left, &any);
        }
        EventType::WrapUpStarted => {
            if !local && call.state.rank() >= CallState::WrapUp.rank() {
                move_one(call, customer, P::Left, &|s| s.is_none_or(PartyState::is_present));
            }
            match subject {
                Some(_) => move_one(call, subject, P::WrapUp, &|s| s != Some(P::Left)),
                None if !local => {
                    for i in 0..call.parties.len() {
                        if call.parties[i].role != Some(PartyRole::Customer) {
                            move_one(call, Some(i), P::WrapUp, &|s| s.is_some_and(PartyState::is_present));
                        }
                    }
                }
                None => {}
            }
        }
        EventType::WrapUpEnded => match subject {
            Some(i) => {
                move_one(call, subject, P::Left, &any);
                // A vendor without a wrap-up start (Salesforce) still shows
                // when the party's wrap-up ended.
                let w = call.parties[i].wrap_up.get_or_insert_with(WrapUp::default);
                w.ended_at.get_or_insert(when);
            }
            None => {
                for i in 0..call.parties.len() {
                    move_one(call, Some(i), P::Left, &|s| s == Some(P::WrapUp));
                }
            }
        },
        _ => {}
    }
    if call.state == CallState::Ended && before != CallState::Ended {
        for i in 0..call.parties.len() {
            move_one(call, Some(i), P::Left, &|s| s.is_none_or(PartyState::is_present));
        }
    } else if call.state == CallState::WrapUp {
        move_one(call, customer, P::Left, &|s| s.is_none_or(PartyState::is_present));
    } else if matches!(call.state, CallState::Connected | CallState::OnHold)
        && !matches!(draft.event_type, EventType::ParticipantLeft | EventType::WrapUpStarted | EventType::WrapUpEnded)
    {
        // Someone an event names on an answered call is on it, even when
        // the vendor never said they answered.
        move_one(call, subject, P::Connected, &|s| s.is_none());
        move_one(call, customer, P::Connected, &|s| matches!(s, None | Some(P::Alerting)));
    } else if call.state == CallState::Ringing {
        move_one(call, subject, P::Alerting, &|s| s.is_none());
    }
    // Wrap-up codes and a party step's disposition belong to the party.
    let codes = &draft.facts.wrap_up_codes;
    let disposition = draft.facts.disposition.as_deref().filter(|d| !d.is_empty());
    let wrap_event = matches!(draft.event_type, EventType::WrapUpStarted | EventType::WrapUpEnded);
    if let Some(i) = subject
        && (!codes.is_empty() || (disposition.is_some() && (local || wrap_event)))
    {
        let w = call.parties[i].wrap_up.get_or_insert_with(WrapUp::default);
        for c in codes {
            if !w.codes.contains(c) && w.codes.len() < limits::WRAP_UP_CODES {
                w.codes.push(c.clone());
            }
        }
        if let Some(d) = disposition {
            w.disposition = d.to_string();
        }
    }
    changed
}

/// Applies the state-specific side effects (timestamps, hold accounting,
/// recording, notes, outcome).
fn apply_effects(
    call: &mut Call,
    draft: &EventDraft,
    before: CallState,
    when: DateTime<Utc>,
    local: bool,
    first: bool,
) {
    if local {
        // One party's step: its disposition is the party's (party_effects).
        let facts = CallFacts { disposition: None, ..draft.facts.clone() };
        merge_facts(call, &facts);
    } else {
        merge_facts(call, &draft.facts);
    }
    event_effects(call, draft, when, local);
    queue_effects(call, draft, when);
    merge_end_detail(call, draft);
    hold_accounting(call, before, when);
    end_effects(call, before, when, first);
}

/// Fills a time the call does not know yet.
fn fill(slot: &mut Option<DateTime<Utc>>, when: DateTime<Utc>) {
    if slot.is_none() {
        *slot = Some(when);
    }
}

/// The facts of an end detail (outcome, initiator, reason, durations,
/// disposition): they win over what the event's type implied.
fn merge_end_detail(call: &mut Call, draft: &EventDraft) {
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
}

/// What each event type does beyond the state: times, flags, recording,
/// a transfer under way, transcript and note counts.
fn event_effects(call: &mut Call, draft: &EventDraft, when: DateTime<Utc>, local: bool) {
    match draft.event_type {
        EventType::CallStarted => fill(&mut call.started_at, when),
        EventType::CallQueued => fill(&mut call.queued_at, when),
        EventType::CallConnected => fill(&mut call.answered_at, when),
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
        EventType::WrapUpEnded if !local => fill(&mut call.wrap_up_ended_at, when),
        EventType::TransferRequested => {
            if let Some(Detail::Transfer(t)) = &draft.detail {
                call.transfer_requested = Some(t.clone());
            } else {
                call.transfer_requested = Some(Box::default());
            }
        }
        EventType::CallTransferred | EventType::ConferenceStarted => {
            call.transfer_requested = None;
            // Handed to another leg or destination when nobody joined this
            // one (Xelion callTransferredEvent); a transfer to an agent who
            // joined this leg (8x8) keeps the customer here.
            let away = matches!(&draft.detail, Some(Detail::Transfer(t)) if t.to.is_none());
            if draft.event_type == EventType::CallTransferred && away {
                call.handed_on = true;
            }
        }
        EventType::Transcript => call.transcript_count += 1,
        EventType::NoteAdded => {
            if let Some(Detail::Note { text, .. }) = &draft.detail
                && !text.is_empty()
                && call.notes.len() < limits::NOTES
            {
                call.notes.push(truncated(text, limits::NOTE_CHARS));
            }
        }
        EventType::CallMissed => call.outcome = Some(CallOutcome::Missed),
        _ => {}
    }
}

/// Hold accounting follows the state, whatever event moved it.
fn hold_accounting(call: &mut Call, before: CallState, when: DateTime<Utc>) {
    let now_on_hold = call.state == CallState::OnHold;
    if now_on_hold && before != CallState::OnHold {
        call.hold_count += 1;
        call.hold_started_at = Some(when);
    } else if !now_on_hold && let Some(start) = call.hold_started_at.take() {
        call.total_hold = call.total_hold.saturating_add((when - start).to_std().unwrap_or_default());
    }
    call.on_hold = now_on_hold;
    if call.state == CallState::Connected || call.state == CallState::OnHold {
        fill(&mut call.answered_at, when);
    }
}

/// Reaching wrap-up or the end: the end time, the outcome when the vendor
/// gave none, an abandoned queue visit, the talk time.
fn end_effects(call: &mut Call, before: CallState, when: DateTime<Utc>, first: bool) {
    if !(matches!(call.state, CallState::WrapUp | CallState::Ended) && before.rank() < call.state.rank()) {
        return;
    }
    fill(&mut call.ended_at, when);
    if call.state == CallState::Ended {
        call.muted = false;
        if call.outcome.is_none() {
            // After-call work only follows a conversation.
            let talked = before == CallState::WrapUp;
            // A leg first seen at its end that lasted (a transferred leg
            // that arrives only as a hang-up) was not missed: nothing
            // says it rang unanswered.
            let lasted = first && call.duration.is_some_and(|d| !d.is_zero());
            call.outcome = Some(match derive_outcome(call) {
                _ if call.handed_on => CallOutcome::Transferred,
                _ if talked => CallOutcome::Completed,
                CallOutcome::Missed if lasted => CallOutcome::Completed,
                derived => derived,
            });
        }
        if let Some(v) = call.queue_visits.last_mut()
            && v.result.is_none()
            && call.answered_at.is_none()
            && call.outcome == Some(CallOutcome::Abandoned)
        {
            v.result = Some(QueueResult::Abandoned);
            v.left_at.get_or_insert(when);
        }
    }
    if call.talk_duration.is_none()
        && let (Some(a), Some(e)) = (call.answered_at, call.ended_at)
    {
        call.talk_duration = (e - a).to_std().ok();
    }
}

/// The outcome of a call that ended without the vendor saying how.
fn derive_outcome(call: &Call) -> CallOutcome {
    let timed_out = call.queue_visits.last().is_some_and(|v| v.result == Some(QueueResult::Timeout));
    if call.answered_at.is_some() {
        CallOutcome::Completed
    } else if timed_out {
        // The queue gave up, not the caller: nobody answered.
        CallOutcome::Missed
    } else if call.direction == Some(Direction::Outbound) {
        CallOutcome::NoAnswer
    } else if call.queued_at.is_some() {
        CallOutcome::Abandoned
    } else {
        CallOutcome::Missed
    }
}

/// Queue visits (module comment).
fn queue_effects(call: &mut Call, draft: &EventDraft, when: DateTime<Utc>) {
    let open = call.queue_visits.last().is_some_and(|v| v.left_at.is_none());
    let close = |call: &mut Call, result: Option<QueueResult>| {
        if let Some(v) = call.queue_visits.last_mut()
            && v.left_at.is_none()
        {
            v.left_at = Some(when);
            v.result = result;
        }
    };
    match draft.event_type {
        EventType::CallQueued => {
            let same = open && call.queue_visits.last().is_some_and(|v| v.queue_id == draft.queue_id);
            if same {
                if let (Some(v), Some(name)) = (call.queue_visits.last_mut(), &draft.facts.queue_name)
                    && v.queue_name.is_empty()
                {
                    v.queue_name = name.clone();
                }
                return;
            }
            close(call, Some(QueueResult::Overflow));
            if call.queue_visits.len() < limits::QUEUE_VISITS {
                call.queue_visits.push(QueueVisit {
                    queue_id: draft.queue_id.clone(),
                    queue_name: draft.facts.queue_name.clone().unwrap_or_default(),
                    entered_at: Some(when),
                    left_at: None,
                    result: None,
                });
            }
        }
        EventType::CallOffered | EventType::CallConnected => close(call, Some(QueueResult::Assigned)),
        EventType::CallDequeued => close(call, draft.facts.queue_result),
        EventType::CallTransferred => close(call, Some(QueueResult::Transferred)),
        _ => {}
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
    set(&mut call.queue_name, &f.queue_name);
    if let Some(prev) = &f.previous_call_id
        && call.previous_call_id.is_empty()
        && *prev != call.call_id
    {
        call.previous_call_id = prev.clone();
    }
    for c in &f.wrap_up_codes {
        if !call.wrap_up_codes.contains(c) && call.wrap_up_codes.len() < limits::WRAP_UP_CODES {
            call.wrap_up_codes.push(c.clone());
        }
    }
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
    // The parties an event names, as the call knows them now: their ids and
    // states (a subscriber sees who rang, answered, wrapped up or left).
    let annotate = |p: &mut Party| {
        if let Some(c) = call.parties.iter().find(|c| c.same_as(p)) {
            p.party_id = c.party_id.clone();
            p.state = c.state;
        }
    };
    event.parties.iter_mut().for_each(annotate);
    match &mut event.detail {
        Some(Detail::Participant(p)) => annotate(p),
        Some(Detail::Transfer(t)) => {
            t.from.iter_mut().chain(t.to.iter_mut()).for_each(annotate);
        }
        _ => {}
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

    fn agent(id: &str) -> Party {
        Party { role: Some(PartyRole::Agent), agent_id: id.into(), ..Party::default() }
    }

    fn customer() -> Party {
        Party { role: Some(PartyRole::Customer), e164: "+15515557212".into(), ..Party::default() }
    }

    /// An event by or about agent `id`.
    fn by(t: EventType, id: &str) -> EventDraft {
        let mut d = draft(t);
        d.agent_id = id.into();
        d.parties.push(agent(id));
        d
    }

    /// Agent `id`'s own step (8x8 post-process, a rep's `callended`).
    fn scoped(t: EventType, id: &str) -> EventDraft {
        let mut d = by(t, id);
        d.party_scope = Some(agent(id));
        d
    }

    fn joined(id: &str) -> EventDraft {
        let mut d = by(ParticipantJoined, id);
        d.detail = Some(Detail::Participant(agent(id)));
        d
    }

    fn party<'c>(call: &'c Call, id: &str) -> &'c Party {
        call.parties.iter().find(|p| p.party_id == id).unwrap_or_else(|| panic!("no party {id}: {:?}", call.parties))
    }

    fn started() -> EventDraft {
        let mut d = draft(CallStarted);
        d.direction = Some(Direction::Inbound);
        d.parties.push(customer());
        d
    }

    #[test]
    fn a_lone_agents_wrap_up_is_the_calls_wrap_up_and_the_customer_has_left() {
        let (states, call) = run(&[
            started(),
            by(CallOffered, "grace"),
            by(CallConnected, "grace"),
            scoped(WrapUpStarted, "grace"),
            scoped(WrapUpEnded, "grace"),
            draft(CallEnded),
        ]);
        assert_eq!(
            states,
            vec![Some(Initiated), Some(Ringing), Some(Connected), Some(WrapUp), Some(WrapUp), Some(Ended)]
        );
        assert!(call.ended_at.is_some() && call.wrap_up_ended_at.is_some());
        let (c, g) = (party(&call, "customer"), party(&call, "agent:grace"));
        assert_eq!((c.state, g.state), (Some(PartyState::Left), Some(PartyState::Left)));
        let w = g.wrap_up.as_ref().expect("grace wrapped up");
        assert!(w.started_at.is_some() && w.ended_at.is_some());
        assert_eq!(call.outcome, Some(CallOutcome::Completed));
    }

    #[test]
    fn an_agent_who_wraps_up_while_another_talks_to_the_customer_changes_only_her_party() {
        let (states, call) = run(&[
            started(),
            by(CallConnected, "grace"),
            joined("ian"),
            scoped(WrapUpStarted, "grace"),
            scoped(WrapUpEnded, "grace"),
            scoped(ParticipantLeft, "grace"),
        ]);
        assert_eq!(
            states,
            vec![Some(Initiated), Some(Connected), Some(Connected), Some(Connected), Some(Connected), Some(Connected)]
        );
        assert_eq!(call.ended_at, None, "the customer is still talking");
        assert_eq!(call.wrap_up_ended_at, None);
        assert_eq!(party(&call, "customer").state, Some(PartyState::Connected));
        assert_eq!(party(&call, "agent:ian").state, Some(PartyState::Connected));
        let g = party(&call, "agent:grace");
        assert_eq!(g.state, Some(PartyState::Left));
        assert!(g.left_at.is_some() && g.wrap_up.as_ref().is_some_and(|w| w.ended_at.is_some()));
        assert_eq!(call.agent_ids, vec!["grace".to_string(), "ian".to_string()]);

        // Ian is the last agent: his wrap-up is the call's.
        let mut more = vec![
            started(),
            by(CallConnected, "grace"),
            joined("ian"),
            scoped(WrapUpStarted, "grace"),
            scoped(WrapUpStarted, "ian"),
            draft(CallEnded),
        ];
        more[5].detail = None;
        let (states, call) = run(&more);
        assert_eq!(states[4..], [Some(WrapUp), Some(Ended)]);
        assert_eq!(party(&call, "customer").state, Some(PartyState::Left));
        assert_eq!(party(&call, "agent:ian").state, Some(PartyState::WrapUp), "wrap-up outlives the call");
        assert_eq!(call.outcome, Some(CallOutcome::Completed));
    }

    #[test]
    fn an_agents_end_while_another_agent_is_on_the_call_is_her_departure() {
        let mut end = scoped(CallEnded, "rep1");
        end.facts.ended_at = Some(Utc.timestamp_opt(1_700_000_004, 0).unwrap());
        end.facts.disposition = Some("transferred".into());
        let (states, call) = run(&[started(), by(CallConnected, "rep1"), by(CallConnected, "rep2"), end]);
        assert_eq!(states, vec![Some(Initiated), Some(Connected), Some(Connected), Some(Connected)]);
        assert_eq!((call.state, call.ended_at, call.outcome), (Connected, None, None));
        assert_eq!(call.disposition, "", "the rep's disposition is hers");
        let r1 = party(&call, "agent:rep1");
        assert_eq!(r1.state, Some(PartyState::Left));
        assert_eq!(r1.wrap_up.as_ref().map(|w| w.disposition.as_str()), Some("transferred"));
        assert_eq!(party(&call, "agent:rep2").state, Some(PartyState::Connected));

        // The last rep's end ends the call.
        let (_, call) = run(&[started(), by(CallConnected, "rep1"), scoped(CallEnded, "rep1")]);
        assert_eq!((call.state, call.outcome), (Ended, Some(CallOutcome::Completed)));
    }

    #[test]
    fn the_event_of_a_local_end_is_a_participant_left_naming_the_party() {
        let mut call = None;
        for (i, d) in [started(), by(CallConnected, "a"), by(CallConnected, "b")].iter().enumerate() {
            if let Applied::Event { call: c, .. } = apply(call.clone(), "sf:c1", d, &ctx(i as i64)) {
                call = Some(*c);
            }
        }
        let Applied::Event { event, .. } = apply(call, "sf:c1", &scoped(CallMissed, "b"), &ctx(9)) else {
            panic!("expected an event")
        };
        assert_eq!((event.event_type, event.state), (ParticipantLeft, Some(Connected)));
        let Some(Detail::Participant(p)) = &event.detail else { panic!("{:?}", event.detail) };
        assert_eq!((p.party_id.as_str(), p.state), ("agent:b", Some(PartyState::Left)));
        assert_eq!(event.attributes.get("party_step").map(String::as_str), Some("call_missed"));
    }

    #[test]
    fn a_members_miss_before_anyone_answered_is_the_calls_miss() {
        let (states, call) = run(&[started(), by(CallOffered, "u1"), by(CallOffered, "u2"), scoped(CallMissed, "u1")]);
        assert_eq!(states.last(), Some(&Some(Ended)));
        assert_eq!(call.outcome, Some(CallOutcome::Missed));
    }

    #[test]
    fn a_join_after_a_transfer_request_completes_the_transfer() {
        let mut request = by(TransferRequested, "grace");
        request.detail = Some(Detail::Transfer(Box::new(Transfer {
            from: Some(agent("grace")),
            target: "ian".into(),
            ..Transfer::default()
        })));
        let mut call = None;
        let mut events = Vec::new();
        for (i, d) in [started(), by(CallConnected, "grace"), request, joined("ian"), joined("sam")].iter().enumerate()
        {
            if let Applied::Event { event, call: c } = apply(call.clone(), "sf:c1", d, &ctx(i as i64)) {
                events.push(*event);
                call = Some(*c);
            }
        }
        let types: Vec<_> = events.iter().map(|e| e.event_type).collect();
        assert_eq!(types, vec![CallStarted, CallConnected, TransferRequested, CallTransferred, ParticipantJoined]);
        let Some(Detail::Transfer(t)) = &events[3].detail else { panic!("{:?}", events[3].detail) };
        assert_eq!(t.from.as_ref().map(|p| p.party_id.as_str()), Some("agent:grace"));
        assert_eq!(
            t.to.as_ref().map(|p| (p.party_id.as_str(), p.state)),
            Some(("agent:ian", Some(PartyState::Connected)))
        );
        assert_eq!(t.target, "ian");
        assert!(call.expect("call").transfer_requested.is_none(), "a later join is a join");
    }

    #[test]
    fn a_hold_holds_the_customer_and_the_agent_and_a_resume_reconnects_them() {
        let (_, held) = run(&[started(), by(CallConnected, "grace"), by(CallHeld, "grace")]);
        assert_eq!(party(&held, "customer").state, Some(PartyState::OnHold));
        assert_eq!(party(&held, "agent:grace").state, Some(PartyState::OnHold));
        let (_, resumed) =
            run(&[started(), by(CallConnected, "grace"), by(CallHeld, "grace"), by(CallResumed, "grace")]);
        assert!(resumed.parties.iter().all(|p| p.state == Some(PartyState::Connected)));
    }

    #[test]
    fn offers_ring_and_a_rejection_leaves_and_party_ids_are_stable_and_unique() {
        let (_, call) = run(&[started(), by(CallOffered, "a"), draft(OfferRejected), by(CallOffered, "b")]);
        // The rejection names no agent: nobody's party moves on it.
        assert_eq!(party(&call, "agent:a").state, Some(PartyState::Alerting));
        let mut reject = by(OfferRejected, "a");
        reject.parties.clear();
        let (_, call) = run(&[started(), by(CallOffered, "a"), reject, by(CallOffered, "b")]);
        assert_eq!(party(&call, "agent:a").state, Some(PartyState::Left));
        assert_eq!(party(&call, "agent:b").state, Some(PartyState::Alerting));
        let mut two = draft(ParticipantJoined);
        two.detail = Some(Detail::Participant(Party {
            role: Some(PartyRole::ThirdParty),
            display_name: "Ops".into(),
            ..Party::default()
        }));
        let mut other_customer = draft(ParticipantJoined);
        other_customer.detail = Some(Detail::Participant(Party {
            role: Some(PartyRole::Customer),
            e164: "+15550000000".into(),
            ..Party::default()
        }));
        let (_, call) = run(&[started(), two, other_customer]);
        let ids: Vec<_> = call.parties.iter().map(|p| p.party_id.as_str()).collect();
        assert_eq!(ids, vec!["customer", "name:Ops", "number:+15550000000"]);
    }

    #[test]
    fn a_queue_timeout_is_not_an_abandon() {
        let mut queued = draft(CallQueued);
        queued.queue_id = "1162".into();
        queued.facts.queue_name = Some("Customer Service".into());
        let mut timeout = draft(CallDequeued);
        timeout.facts.queue_result = Some(QueueResult::Timeout);
        let (_, call) = run(&[started(), queued.clone(), timeout, draft(CallEnded)]);
        assert_eq!(call.outcome, Some(CallOutcome::Missed));
        assert_eq!(call.queue_name, "Customer Service");
        assert_eq!(call.queue_visits.len(), 1);
        assert_eq!(call.queue_visits[0].result, Some(QueueResult::Timeout));

        let (_, abandoned) = run(&[started(), queued.clone(), draft(CallDequeued), draft(CallEnded)]);
        assert_eq!(abandoned.outcome, Some(CallOutcome::Abandoned));
        assert_eq!(abandoned.queue_visits[0].result, Some(QueueResult::Abandoned));

        let mut overflow = draft(CallQueued);
        overflow.queue_id = "2000".into();
        let (_, assigned) = run(&[started(), queued, overflow, by(CallOffered, "a")]);
        let results: Vec<_> = assigned.queue_visits.iter().map(|v| (v.queue_id.as_str(), v.result)).collect();
        assert_eq!(results, vec![("1162", Some(QueueResult::Overflow)), ("2000", Some(QueueResult::Assigned))]);
    }

    #[test]
    fn an_agents_post_process_during_a_requested_transfer_is_hers_until_the_target_joins() {
        let (states, call) = run(&[
            started(),
            by(CallConnected, "grace"),
            by(TransferRequested, "grace"),
            scoped(WrapUpStarted, "grace"),
            joined("ian"),
            scoped(WrapUpEnded, "grace"),
        ]);
        assert_eq!(states[3..], [Some(Connected), Some(Connected), Some(Connected)], "the customer waits for Ian");
        assert_eq!(call.ended_at, None);
        assert_eq!(party(&call, "customer").state, Some(PartyState::Connected));
        assert_eq!(party(&call, "agent:grace").state, Some(PartyState::Left));
        assert_eq!(party(&call, "agent:ian").state, Some(PartyState::Connected));
    }

    #[test]
    fn a_leg_transferred_away_ends_transferred() {
        let mut away = draft(CallTransferred);
        away.detail = Some(Detail::Transfer(Box::default()));
        let (_, call) = run(&[started(), by(CallConnected, "wes"), away, draft(CallEnded)]);
        assert_eq!(call.outcome, Some(CallOutcome::Transferred));
        let (_, call) = run(&[started(), by(CallConnected, "wes"), draft(CallTransferred), draft(CallEnded)]);
        assert_eq!(call.outcome, Some(CallOutcome::Completed), "a transfer that says nothing moves nothing");
        // A transfer to an agent who joined this leg keeps the customer here: COMPLETED.
        let mut done = by(CallTransferred, "ian");
        done.detail = Some(Detail::Transfer(Box::new(Transfer { to: Some(agent("ian")), ..Transfer::default() })));
        let (_, call) = run(&[started(), by(CallConnected, "grace"), done, draft(CallEnded)]);
        assert_eq!(call.outcome, Some(CallOutcome::Completed));
    }
}
