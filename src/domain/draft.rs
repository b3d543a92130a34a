//! What a vendor adapter hands to the pipeline: canonical events that do not
//! yet have a place in the log or a call state.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::{
    CallOutcome, Detail, Direction, EventType, Media, Party, PartyRole, QueueResult, Recording, Vendor, WrapUpCode,
};

/// The result of normalizing one vendor payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalized {
    /// The vendor that was used (given or detected).
    pub vendor: Vendor,
    /// The vendor's own event name (`callHungUpEvent`).
    pub vendor_event_type: String,
    /// Who this vendor event is, for deduplication and event ids.
    pub identity: Identity,
    /// Other keys the same vendor event is known by: a delivery that matches
    /// any of them is a duplicate too (an 8x8 event delivered on two
    /// overlapping Pulsar topics has two `messageId`s but one inner identity).
    pub aliases: Vec<Identity>,
    /// The canonical events; empty when `ignored` is set.
    pub events: Vec<EventDraft>,
    /// Why the payload produces no event (heartbeat, control frame, chat
    /// media...). `Some` means the outcome is IGNORED.
    pub ignored: Option<String>,
}

impl Normalized {
    /// The common case: one vendor event, one canonical event.
    pub fn single(vendor: Vendor, vendor_event_type: impl Into<String>, identity: Identity, draft: EventDraft) -> Self {
        Normalized {
            vendor,
            vendor_event_type: vendor_event_type.into(),
            identity,
            aliases: Vec::new(),
            events: vec![draft],
            ignored: None,
        }
    }

    /// A payload that is understood but produces nothing.
    pub fn ignored(
        vendor: Vendor,
        vendor_event_type: impl Into<String>,
        why: impl Into<String>,
        identity: Identity,
    ) -> Self {
        Normalized {
            vendor,
            vendor_event_type: vendor_event_type.into(),
            identity,
            aliases: Vec::new(),
            events: Vec::new(),
            ignored: Some(why.into()),
        }
    }
}

/// The identity of a vendor event, in DESIGN §4.1's order of preference
/// (after the request's own `request_id`, which the pipeline adds).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Identity {
    /// The vendor's unique id for the event (Pulsar `messageId`, panel
    /// `eventId`, Salesforce `detail.id`).
    VendorId(String),
    /// The natural key of a one-shot event (`callHungUpEvent` + `callId`).
    Natural(String),
    /// A hash of the payload's canonical JSON. Only a *consecutive* repeat is
    /// a duplicate: the same content after other events of the same call
    /// (hold, resume, hold) is new.
    ContentHash(String),
}

impl Identity {
    /// The dedup key as stored (tenant-scoped by the store).
    pub fn key(&self) -> String {
        // `concat`, not `format!`: every ingest builds this key, and the
        // formatting machinery cost ten times the copy (callgrind, S12).
        match self {
            Identity::VendorId(s) => ["id:", s].concat(),
            Identity::Natural(s) => ["nat:", s].concat(),
            Identity::ContentHash(s) => ["hash:", s].concat(),
        }
    }

    /// True for content hashes, which dedup only consecutive repeats.
    pub fn is_content_hash(&self) -> bool {
        matches!(self, Identity::ContentHash(_))
    }
}

/// A vendor's ordering position (8x8 `msgInfo.sequenceId` within one
/// `instanceId`). Positions only compare within the same scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorOrder {
    /// What the position counts within (the producing instance).
    pub scope: String,
    /// The position.
    pub position: u64,
}

/// How an event names its call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallRef {
    /// The vendor gives a call id; already namespaced (`sf:...`).
    Id(String),
    /// The vendor gives none (8x8 agent panel): the pipeline finds the open
    /// call with the same correlation key, or starts one.
    Correlate(Correlation),
}

/// Inputs to call-id synthesis for vendors without call ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Correlation {
    /// What identifies "the same call" apart from time: vendor, normalized
    /// number and direction (the tenant is added by the store).
    pub key: String,
    /// The call's start time when the event carries it.
    pub started_at: Option<DateTime<Utc>>,
}

/// Call-level facts an event carries beyond the event itself (8x8 panel
/// `startTime`, Xelion `date`, 8x8 `callAnsweredTime`...). Merged into the
/// call: times fill gaps, everything else overwrites.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallFacts {
    /// Call start.
    pub started_at: Option<DateTime<Utc>>,
    /// Answer time.
    pub answered_at: Option<DateTime<Utc>>,
    /// End time.
    pub ended_at: Option<DateTime<Utc>>,
    /// Vendor duration.
    pub duration: Option<Duration>,
    /// Talk time.
    pub talk_duration: Option<Duration>,
    /// Recording info.
    pub recording: Option<Recording>,
    /// Disposition code.
    pub disposition: Option<String>,
    /// Agent notes the event carries.
    pub notes: Vec<String>,
    /// Outcome the vendor states.
    pub outcome: Option<CallOutcome>,
    /// Vendor hang-up reason.
    pub end_reason: Option<String>,
    /// Who hung up.
    pub hangup_initiator: Option<PartyRole>,
    /// The queue's name (8x8 `tenantSkillName`).
    pub queue_name: Option<String>,
    /// How the call left its queue, for CALL_DEQUEUED (a timeout is not an
    /// abandon).
    pub queue_result: Option<QueueResult>,
    /// Wrap-up codes chosen (on the call and on the event's agent party).
    pub wrap_up_codes: Vec<WrapUpCode>,
    /// The leg this one was transferred or consulted from (namespaced id).
    pub previous_call_id: Option<String>,
}

/// One canonical event before it has a call state or a log position.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDraft {
    /// The call; `None` for agent events.
    pub call: Option<CallRef>,
    /// The conversation, when the vendor links legs.
    pub conversation_id: Option<String>,
    /// What happened.
    pub event_type: EventType,
    /// The vendor's time for the event, when it gives one.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Direction when known.
    pub direction: Option<Direction>,
    /// Parties named.
    pub parties: Vec<Party>,
    /// Agent concerned.
    pub agent_id: String,
    /// Queue concerned.
    pub queue_id: String,
    /// Voice or voicemail, when the vendor says.
    pub media: Option<Media>,
    /// Event details.
    pub detail: Option<Detail>,
    /// Vendor extras.
    pub attributes: BTreeMap<String, String>,
    /// Call-level facts.
    pub facts: CallFacts,
    /// Vendor ordering position.
    pub order: Option<VendorOrder>,
    /// The party this event is about when it is one party's step (an 8x8
    /// agent's post-process or deassignment, a Salesforce rep's `callended`,
    /// a Xelion group member's miss). While another agent is still on the
    /// call, the event changes only that party (DESIGN §3.6); otherwise it
    /// is the call's step.
    pub party_scope: Option<Party>,
}

impl EventDraft {
    /// A draft of `event_type` for `call`, everything else empty.
    pub fn new(event_type: EventType, call: Option<CallRef>) -> EventDraft {
        EventDraft {
            call,
            conversation_id: None,
            event_type,
            occurred_at: None,
            direction: None,
            parties: Vec::new(),
            agent_id: String::new(),
            queue_id: String::new(),
            media: None,
            detail: None,
            attributes: BTreeMap::new(),
            facts: CallFacts::default(),
            order: None,
            party_scope: None,
        }
    }
}
