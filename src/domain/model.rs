//! Canonical types: the vocabulary every vendor is translated into.
//!
//! Enum discriminants equal the protobuf numbers of `switchboard.v1`, which
//! are part of the public contract; `codec::convert` checks the names match.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Declares a C-like enum whose discriminants are its protobuf numbers, with
/// the protobuf short name and a checked conversion from the wire value.
macro_rules! proto_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $num:literal => $proto:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($(#[$vmeta])* $variant = $num,)+ }

        impl $name {
            /// Every value, in protobuf order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The protobuf value name without the enum prefix (`CALL_STARTED`).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $proto,)+ }
            }

            /// The protobuf number.
            pub fn number(self) -> i32 {
                self as i32
            }

            /// The value for a protobuf number; `None` for 0 (unspecified) and
            /// numbers this build does not know.
            pub fn from_number(n: i32) -> Option<Self> {
                match n { $($num => Some($name::$variant),)+ _ => None }
            }

            /// The value for a short name (`CALL_STARTED`), as used in CLI flags.
            pub fn from_name(s: &str) -> Option<Self> {
                // Stored names are exact; flags may be any case.
                Self::ALL.iter().copied().find(|v| v.name() == s).or_else(|| Self::ALL.iter().copied().find(|v| v.name().eq_ignore_ascii_case(s)))
            }
        }
    };
}

proto_enum! {
    /// The vendor a payload came from.
    Vendor {
        /// 8x8 Contact Center agent panel ("mashell") browser events.
        AgentPanel8x8 = 1 => "8X8_AGENT_PANEL",
        /// 8x8 Event Streaming (Pulsar over WebSocket).
        EventStreaming8x8 = 2 => "8X8_EVENT_STREAMING",
        /// Xelion PBX WebSocket CallEvent notifications.
        Xelion = 3 => "XELION",
        /// Salesforce Service Cloud Voice toolkit telephony events.
        SalesforceVoice = 4 => "SALESFORCE_VOICE",
    }
}

impl Vendor {
    /// The namespace prefix of this vendor's call ids (`8x8es:int-...`), so
    /// ids of different vendors can never collide.
    pub fn call_id_prefix(self) -> &'static str {
        match self {
            Vendor::AgentPanel8x8 => "8x8ap",
            Vendor::EventStreaming8x8 => "8x8es",
            Vendor::Xelion => "xelion",
            Vendor::SalesforceVoice => "sf",
        }
    }

    /// A short lowercase label for metrics and CloudEvents sources.
    pub fn label(self) -> &'static str {
        match self {
            Vendor::AgentPanel8x8 => "8x8_agent_panel",
            Vendor::EventStreaming8x8 => "8x8_event_streaming",
            Vendor::Xelion => "xelion",
            Vendor::SalesforceVoice => "salesforce_voice",
        }
    }
}

proto_enum! {
    /// Which way a call goes.
    Direction {
        /// A customer called in.
        Inbound = 1 => "INBOUND",
        /// An agent or user called out.
        Outbound = 2 => "OUTBOUND",
        /// Extension to extension.
        Internal = 3 => "INTERNAL",
    }
}

proto_enum! {
    /// The role of a party in a call.
    PartyRole {
        /// The external caller or callee.
        Customer = 1 => "CUSTOMER",
        /// An agent or PBX user.
        Agent = 2 => "AGENT",
        /// A transfer target or conference participant.
        ThirdParty = 3 => "THIRD_PARTY",
        /// A supervisor.
        Supervisor = 4 => "SUPERVISOR",
        /// The platform itself.
        System = 5 => "SYSTEM",
    }
}

proto_enum! {
    /// The media of an interaction.
    Media {
        /// A phone call.
        Voice = 1 => "VOICE",
        /// A voicemail.
        Voicemail = 2 => "VOICEMAIL",
        /// A video call.
        Video = 3 => "VIDEO",
    }
}

proto_enum! {
    /// Recording state of a call.
    RecordingState {
        /// Recording now.
        Active = 1 => "ACTIVE",
        /// Paused, e.g. while a card number is read out.
        Paused = 2 => "PAUSED",
        /// Finished and available.
        Ready = 3 => "READY",
        /// Not recorded.
        None = 4 => "NONE",
    }
}

proto_enum! {
    /// Where a call is in its lifecycle.
    CallState {
        /// Exists, not queued or ringing yet.
        Initiated = 1 => "INITIATED",
        /// Waiting in a queue.
        Queued = 2 => "QUEUED",
        /// Offered to an agent or ringing.
        Ringing = 3 => "RINGING",
        /// Answered: the customer is talking to someone.
        Connected = 4 => "CONNECTED",
        /// On hold.
        OnHold = 5 => "ON_HOLD",
        /// After-call work.
        WrapUp = 6 => "WRAP_UP",
        /// Over; terminal.
        Ended = 7 => "ENDED",
    }
}

impl CallState {
    /// How far along the lifecycle a state is. CONNECTED and ON_HOLD share a
    /// rank because a call toggles between them.
    pub fn rank(self) -> u8 {
        match self {
            CallState::Initiated => 1,
            CallState::Queued => 2,
            CallState::Ringing => 3,
            CallState::Connected | CallState::OnHold => 4,
            CallState::WrapUp => 5,
            CallState::Ended => 6,
        }
    }

    /// True until the call has ended.
    pub fn is_active(self) -> bool {
        self != CallState::Ended
    }
}

proto_enum! {
    /// How a call ended.
    CallOutcome {
        /// Answered and ended normally.
        Completed = 1 => "COMPLETED",
        /// Nobody answered (PBX).
        Missed = 2 => "MISSED",
        /// The caller gave up before an answer.
        Abandoned = 3 => "ABANDONED",
        /// Refused by the callee or the system.
        Rejected = 4 => "REJECTED",
        /// The callee was busy.
        Busy = 5 => "BUSY",
        /// No answer (outbound).
        NoAnswer = 6 => "NO_ANSWER",
        /// Technical failure.
        Failed = 7 => "FAILED",
        /// Cancelled before connecting.
        Cancelled = 8 => "CANCELLED",
        /// Blocked by policy.
        Blocked = 9 => "BLOCKED",
        /// Invalid address.
        BadAddress = 10 => "BAD_ADDRESS",
        /// This leg was handed on to another leg or destination.
        Transferred = 11 => "TRANSFERRED",
        /// The caller reached voicemail.
        Voicemail = 12 => "VOICEMAIL",
        /// Closed by the server after a long time without news.
        Expired = 13 => "EXPIRED",
    }
}

proto_enum! {
    /// Where one party is in a call (the call's own state is [`CallState`]).
    PartyState {
        /// Offered to or ringing at this party.
        Alerting = 1 => "ALERTING",
        /// On the call, talking.
        Connected = 2 => "CONNECTED",
        /// On the call, on hold.
        OnHold = 3 => "ON_HOLD",
        /// Off the conversation, in after-call work.
        WrapUp = 4 => "WRAP_UP",
        /// Gone from the call.
        Left = 5 => "LEFT",
    }
}

impl PartyState {
    /// True while the party is still in the conversation (ringing, talking
    /// or held).
    pub fn is_present(self) -> bool {
        matches!(self, PartyState::Alerting | PartyState::Connected | PartyState::OnHold)
    }
}

proto_enum! {
    /// An agent's availability, from the vendor's documented codes.
    AgentState {
        /// Available for work.
        Available = 1 => "AVAILABLE",
        /// Busy (working, not available).
        Busy = 2 => "BUSY",
        /// In after-call work.
        WrapUp = 3 => "WRAP_UP",
        /// Logged in but away (break).
        Away = 4 => "AWAY",
        /// Logged out.
        Offline = 5 => "OFFLINE",
    }
}

proto_enum! {
    /// How a call was handed on.
    TransferKind {
        /// Without the first agent talking to the target first.
        Blind = 1 => "BLIND",
        /// After the first agent talked to the target (warm).
        Attended = 2 => "ATTENDED",
        /// A consult: talking to another party without handing on.
        Consult = 3 => "CONSULT",
        /// The parties were joined into one conversation.
        Conference = 4 => "CONFERENCE",
    }
}

proto_enum! {
    /// How a call left a queue.
    QueueResult {
        /// An agent was assigned.
        Assigned = 1 => "ASSIGNED",
        /// The caller hung up while queued.
        Abandoned = 2 => "ABANDONED",
        /// The queue's time limit passed.
        Timeout = 3 => "TIMEOUT",
        /// Moved on to another queue.
        Overflow = 4 => "OVERFLOW",
        /// Transferred out of the queue.
        Transferred = 5 => "TRANSFERRED",
    }
}

/// One wrap-up (disposition, TCL) code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrapUpCode {
    /// The code as the vendor gives it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    /// Its label, when the vendor gives one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
}

/// One agent's after-call work.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrapUp {
    /// When the agent began the wrap-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the agent finished it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Codes chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<WrapUpCode>,
    /// Disposition set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub disposition: String,
}

/// One stay of a call in a queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueVisit {
    /// Queue id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub queue_id: String,
    /// Queue name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub queue_name: String,
    /// Entry time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entered_at: Option<DateTime<Utc>>,
    /// Exit time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_at: Option<DateTime<Utc>>,
    /// How it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<QueueResult>,
}

/// A transfer, consult or conference step (the `transfer` detail).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The kind, when known.
    #[serde(default)]
    pub kind: Option<TransferKind>,
    /// Who hands the call on.
    #[serde(default)]
    pub from: Option<Party>,
    /// Who it is handed to.
    #[serde(default)]
    pub to: Option<Party>,
    /// The target as the vendor gave it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
}

proto_enum! {
    /// What happened to a call.
    EventType {
        /// The call exists (dialled or arrived).
        CallStarted = 1 => "CALL_STARTED",
        /// Entered a queue.
        CallQueued = 2 => "CALL_QUEUED",
        /// Left a queue unanswered.
        CallDequeued = 3 => "CALL_DEQUEUED",
        /// Offered to an agent, ringing.
        CallOffered = 4 => "CALL_OFFERED",
        /// The offer was rejected or timed out.
        OfferRejected = 5 => "OFFER_REJECTED",
        /// Answered: someone talks to the customer.
        CallConnected = 6 => "CALL_CONNECTED",
        /// Put on hold.
        CallHeld = 7 => "CALL_HELD",
        /// Taken off hold.
        CallResumed = 8 => "CALL_RESUMED",
        /// Someone muted their microphone.
        CallMuted = 9 => "CALL_MUTED",
        /// Someone unmuted it again.
        CallUnmuted = 10 => "CALL_UNMUTED",
        /// A participant joined.
        ParticipantJoined = 11 => "PARTICIPANT_JOINED",
        /// A participant left; the call goes on.
        ParticipantLeft = 12 => "PARTICIPANT_LEFT",
        /// A transfer was requested.
        TransferRequested = 13 => "TRANSFER_REQUESTED",
        /// The call was handed to another agent or number.
        CallTransferred = 14 => "CALL_TRANSFERRED",
        /// A conference started.
        ConferenceStarted = 15 => "CONFERENCE_STARTED",
        /// Three-way hold status swapped.
        ParticipantsSwapped = 16 => "PARTICIPANTS_SWAPPED",
        /// Recording started.
        RecordingStarted = 17 => "RECORDING_STARTED",
        /// Recording paused.
        RecordingPaused = 18 => "RECORDING_PAUSED",
        /// Recording resumed.
        RecordingResumed = 19 => "RECORDING_RESUMED",
        /// The recording is available.
        RecordingReady = 20 => "RECORDING_READY",
        /// After-call work started.
        WrapUpStarted = 21 => "WRAP_UP_STARTED",
        /// After-call work finished.
        WrapUpEnded = 22 => "WRAP_UP_ENDED",
        /// The call is over (terminal state).
        CallEnded = 23 => "CALL_ENDED",
        /// Nobody answered (terminal state).
        CallMissed = 24 => "CALL_MISSED",
        /// A transcript utterance.
        Transcript = 25 => "TRANSCRIPT",
        /// A note.
        NoteAdded = 26 => "NOTE_ADDED",
        /// A supervisor-help flag was raised.
        FlagRaised = 27 => "FLAG_RAISED",
        /// The flag was lowered.
        FlagLowered = 28 => "FLAG_LOWERED",
        /// Call data changed.
        CallUpdated = 29 => "CALL_UPDATED",
        /// Audio statistics.
        AudioStats = 30 => "AUDIO_STATS",
        /// An agent's status changed (no call).
        AgentStatusChanged = 31 => "AGENT_STATUS_CHANGED",
    }
}

/// One participant of a call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// What the party is to the call.
    pub role: Option<PartyRole>,
    /// The number as the vendor gave it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phone_number: String,
    /// E.164 when the number parses.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub e164: String,
    /// A human-readable name (caller name, Quick Connect name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// Vendor agent id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_id: String,
    /// Vendor user id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id: String,
    /// Stable id of the party within its call (set on the call's parties).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub party_id: String,
    /// The party's own state in the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PartyState>,
    /// When it joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<DateTime<Utc>>,
    /// When it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_at: Option<DateTime<Utc>>,
    /// Its after-call work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_up: Option<WrapUp>,
}

impl Party {
    /// Whether two records describe the same participant, so merging a call's
    /// parties never lists one person twice.
    pub fn same_as(&self, other: &Party) -> bool {
        let eq = |a: &str, b: &str| !a.is_empty() && a == b;
        eq(&self.agent_id, &other.agent_id)
            || eq(&self.user_id, &other.user_id)
            || eq(&self.e164, &other.e164)
            || (self.e164.is_empty() && other.e164.is_empty() && eq(&self.phone_number, &other.phone_number))
            || (self.phone_number.is_empty()
                && other.phone_number.is_empty()
                && self.agent_id.is_empty()
                && eq(&self.display_name, &other.display_name))
    }

    /// Fills this party's empty fields from `other`; true if anything changed.
    pub fn absorb(&mut self, other: &Party) -> bool {
        let mut changed = false;
        let mut fill = |dst: &mut String, src: &str| {
            if dst.is_empty() && !src.is_empty() {
                *dst = src.to_string();
                changed = true;
            }
        };
        fill(&mut self.phone_number, &other.phone_number);
        fill(&mut self.e164, &other.e164);
        fill(&mut self.display_name, &other.display_name);
        fill(&mut self.agent_id, &other.agent_id);
        fill(&mut self.user_id, &other.user_id);
        if self.role.is_none() && other.role.is_some() {
            self.role = other.role;
            changed = true;
        }
        changed
    }
}

/// What is known about a recording.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The state, when known.
    pub state: Option<RecordingState>,
    /// Where to fetch it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

/// Details of an ended or missed call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// How it ended (derived from the call when the vendor gives none).
    pub outcome: Option<CallOutcome>,
    /// Who hung up.
    pub hangup_initiator: Option<PartyRole>,
    /// The vendor's reason, verbatim.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The vendor's duration.
    pub duration: Option<Duration>,
    /// Talk time.
    pub talk_duration: Option<Duration>,
    /// Disposition code.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub disposition: String,
}

/// Audio-quality sample.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioStats {
    /// `inputChannelStats` or `outputChannelStats`.
    pub channel: String,
    /// Packets lost.
    pub packets_lost: u64,
    /// Packets counted.
    pub packets_count: u64,
    /// Jitter buffer (ms).
    pub jitter_buffer_millis: u64,
    /// Round trip (ms).
    pub round_trip_time_millis: u64,
}

/// Event-specific details (the proto `detail` oneof).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Detail {
    /// CALL_ENDED / CALL_MISSED.
    Ended(Ended),
    /// TRANSCRIPT: one utterance.
    Transcript {
        /// Vendor utterance id.
        utterance_id: String,
        /// What was said.
        text: String,
        /// Who said it.
        sender_role: Option<PartyRole>,
        /// When it was sent.
        sent_at: Option<DateTime<Utc>>,
    },
    /// NOTE_ADDED.
    Note {
        /// The note.
        text: String,
        /// Who wrote it.
        author: String,
    },
    /// FLAG_RAISED / FLAG_LOWERED.
    Flag {
        /// The flag message.
        text: String,
        /// Who raised or lowered it.
        raised_by: String,
    },
    /// RECORDING_*.
    Recording(Recording),
    /// PARTICIPANT_JOINED / PARTICIPANT_LEFT.
    Participant(Party),
    /// AGENT_STATUS_CHANGED.
    AgentStatus {
        /// New status, as the vendor gives it.
        state: String,
        /// Reason code.
        reason: String,
        /// The status read from the vendor's documented codes.
        #[serde(default)]
        agent_state: Option<AgentState>,
    },
    /// TRANSFER_REQUESTED / CALL_TRANSFERRED (and consult/conference steps).
    Transfer(Box<Transfer>),
    /// AUDIO_STATS.
    AudioStats(AudioStats),
}

/// One canonical lifecycle event, as appended to the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    /// Deterministic id (see `identity::event_id`).
    pub event_id: String,
    /// Log position.
    pub sequence: u64,
    /// Position within the call (0 for agent events).
    pub call_sequence: u64,
    /// The tenant: calls and events never cross it.
    pub tenant_id: String,
    /// Call id; empty for agent events.
    pub call_id: String,
    /// Conversation id; empty for agent events.
    pub conversation_id: String,
    /// What happened.
    pub event_type: EventType,
    /// Best known time of the event.
    pub occurred_at: DateTime<Utc>,
    /// Server receive time.
    pub received_at: DateTime<Utc>,
    /// The vendor that reported it.
    pub vendor: Vendor,
    /// The vendor's event name.
    pub vendor_event_type: String,
    /// Direction when known.
    pub direction: Option<Direction>,
    /// Call state after the event; `None` for agent events.
    pub state: Option<CallState>,
    /// Parties the event names.
    pub parties: Vec<Party>,
    /// Agent concerned.
    pub agent_id: String,
    /// Queue concerned.
    pub queue_id: String,
    /// Voice or voicemail, when the vendor says.
    pub media: Option<Media>,
    /// Event-specific details.
    pub detail: Option<Detail>,
    /// Vendor extras.
    pub attributes: BTreeMap<String, String>,
}

/// The state of one call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Namespaced call id.
    pub call_id: String,
    /// Conversation id (the call id when the vendor gives no linkage).
    pub conversation_id: String,
    /// The tenant: calls and events never cross it.
    pub tenant_id: String,
    /// The vendor whose events built it.
    pub vendor: Vendor,
    /// Direction when known.
    pub direction: Option<Direction>,
    /// Lifecycle state.
    pub state: CallState,
    /// Outcome once ended.
    pub outcome: Option<CallOutcome>,
    /// Everyone who took part.
    pub parties: Vec<Party>,
    /// Agents in order of appearance.
    pub agent_ids: Vec<String>,
    /// Queue, when known.
    pub queue_id: String,
    /// Start time.
    pub started_at: Option<DateTime<Utc>>,
    /// Queue entry time.
    pub queued_at: Option<DateTime<Utc>>,
    /// Answer time.
    pub answered_at: Option<DateTime<Utc>>,
    /// End time.
    pub ended_at: Option<DateTime<Utc>>,
    /// End of after-call work.
    pub wrap_up_ended_at: Option<DateTime<Utc>>,
    /// On hold now.
    pub on_hold: bool,
    /// Muted now.
    pub muted: bool,
    /// The latest recording state and its URL.
    pub recording: Option<Recording>,
    /// Number of holds.
    pub hold_count: u32,
    /// Time on hold (completed holds).
    pub total_hold: Duration,
    /// When the current hold began (to add to `total_hold` on resume).
    pub hold_started_at: Option<DateTime<Utc>>,
    /// Talk time.
    pub talk_duration: Option<Duration>,
    /// Vendor duration.
    pub duration: Option<Duration>,
    /// Agent notes, in order.
    pub notes: Vec<String>,
    /// Transcript utterances seen.
    pub transcript_count: u32,
    /// Log sequence of the first event (stable order for listings).
    pub first_sequence: u64,
    /// Log sequence of the latest event.
    pub last_sequence: u64,
    /// Number of events.
    pub call_sequence: u64,
    /// Server time of the latest change.
    pub updated_at: DateTime<Utc>,
    /// Disposition code.
    pub disposition: String,
    /// Vendor hang-up reason.
    pub end_reason: String,
    /// Who hung up.
    pub hangup_initiator: Option<PartyRole>,
    /// Voice or voicemail, when the vendor says.
    pub media: Option<Media>,
    /// Merged vendor extras.
    pub attributes: BTreeMap<String, String>,
    /// Latest vendor ordering position applied (stale-event detection).
    pub vendor_order: Option<crate::domain::VendorOrder>,
    /// Latest vendor event time applied (stale-event detection).
    pub last_vendor_time: Option<DateTime<Utc>>,
    /// Correlation key of calls whose id had to be synthesized (8x8 agent
    /// panel); `None` for vendors with call ids.
    pub correlation_key: Option<String>,
    /// The leg this one was transferred or consulted from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub previous_call_id: String,
    /// The name of the queue in `queue_id`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub queue_name: String,
    /// Every queue the call went through, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue_visits: Vec<QueueVisit>,
    /// Wrap-up codes chosen for the call, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wrap_up_codes: Vec<WrapUpCode>,
    /// A transfer requested and not completed yet: the next participant who
    /// joins completes it (bookkeeping, not on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_requested: Option<Box<Transfer>>,
    /// Server time of the call's first event (correlation of calls without
    /// ids; not on the wire). `None` for calls stored by older builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_received_at: Option<DateTime<Utc>>,
    /// The call was transferred away to another leg or destination (a
    /// CALL_TRANSFERRED that names nobody who joined this leg): its end is
    /// TRANSFERRED, not COMPLETED (bookkeeping, not on the wire).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handed_on: bool,
}

impl Call {
    /// A call seen for the first time; the first event fills it in.
    pub fn new(tenant_id: &str, call_id: &str, vendor: Vendor, now: DateTime<Utc>) -> Call {
        Call {
            call_id: call_id.to_string(),
            conversation_id: call_id.to_string(),
            tenant_id: tenant_id.to_string(),
            vendor,
            direction: None,
            state: CallState::Initiated,
            outcome: None,
            parties: Vec::new(),
            agent_ids: Vec::new(),
            queue_id: String::new(),
            started_at: None,
            queued_at: None,
            answered_at: None,
            ended_at: None,
            wrap_up_ended_at: None,
            on_hold: false,
            muted: false,
            recording: None,
            hold_count: 0,
            total_hold: Duration::ZERO,
            hold_started_at: None,
            talk_duration: None,
            duration: None,
            notes: Vec::new(),
            transcript_count: 0,
            first_sequence: 0,
            last_sequence: 0,
            call_sequence: 0,
            updated_at: now,
            disposition: String::new(),
            end_reason: String::new(),
            hangup_initiator: None,
            media: None,
            attributes: BTreeMap::new(),
            vendor_order: None,
            last_vendor_time: None,
            correlation_key: None,
            previous_call_id: String::new(),
            queue_name: String::new(),
            queue_visits: Vec::new(),
            wrap_up_codes: Vec::new(),
            transfer_requested: None,
            first_received_at: Some(now),
            handed_on: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_stored_before_parties_had_states_still_reads() {
        // What sqlite and NATS KV rows written by older builds look like:
        // none of the multi-party fields.
        let mut old = serde_json::to_value(Call::new("acme", "sf:c1", Vendor::SalesforceVoice, Utc::now())).unwrap();
        let obj = old.as_object_mut().unwrap();
        for k in ["previous_call_id", "queue_name", "queue_visits", "wrap_up_codes"] {
            obj.remove(k);
        }
        obj.insert("parties".into(), serde_json::json!([{"role": "Customer", "phone_number": "+15551234567"}]));
        let call: Call = serde_json::from_value(old).unwrap();
        assert!(call.queue_visits.is_empty() && call.wrap_up_codes.is_empty() && call.previous_call_id.is_empty());
        assert_eq!(call.parties[0].state, None);
        assert_eq!(call.parties[0].party_id, "");
    }
}
