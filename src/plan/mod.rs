//! The ingest plan (DESIGN §4, §11.3): what one ingest does to the log,
//! decided in one place for every store. A store fetches and writes; it does
//! not decide.
//!
//! The plan is pure over what it is given through a [`StateView`] (dedup
//! entries, candidate calls, current call states) and runs in three steps:
//!
//! 1. [`screen`]: the dedup ladder (DESIGN §4.1): request id → vendor
//!    identity (a content hash only for a consecutive repeat) → aliases →
//!    ignored payloads.
//! 2. [`Planning::step`] per draft: call resolution (DESIGN §4.2,
//!    [`correlate`]) and the [`lifecycle`] state machine; the store assigns
//!    the event its log position and records it with [`Planning::commit`].
//! 3. [`Planning::finish`]: the dedup keys to remember.
//!
//! Stores that assign their own sequences (memory, sqlite) call [`plan`],
//! which runs the steps over a view that reads synchronously. The NATS store
//! prefetches what a step needs (concurrently, and again only when a step
//! names something it lacked), runs the same steps, and learns each
//! position from the broker's acknowledgement.

mod correlate;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::identity::event_id;
use crate::domain::lifecycle::{self, Applied, ApplyContext};
use crate::domain::{Call, CallEvent, CallOutcome, CallRef, EventDraft, EventType, Identity, Normalized, TenantId};

pub use correlate::{CORRELATION_CANDIDATES, correlate, new_correlated_id};

/// One ingest request, ready for the store.
#[derive(Clone, Debug)]
pub struct IngestBatch {
    /// The tenant the credential acts for: every key and call is scoped to it.
    pub tenant: TenantId,
    /// The request's idempotency key, when given.
    pub request_id: Option<String>,
    /// What the adapter made of the payload.
    pub normalized: Normalized,
    /// Server receive time.
    pub received_at: DateTime<Utc>,
    /// The bridge's receive time, when given.
    pub bridge_received_at: Option<DateTime<Utc>>,
}

/// What became of an ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// New events were appended.
    Accepted,
    /// Nothing new.
    Duplicate,
    /// Not a call event.
    Ignored,
}

impl IngestOutcome {
    /// Label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            IngestOutcome::Accepted => "accepted",
            IngestOutcome::Duplicate => "duplicate",
            IngestOutcome::Ignored => "ignored",
        }
    }
}

/// A remembered ingest: what a duplicate of it returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupEntry {
    /// The call the first delivery touched (empty for agent events).
    pub call_id: String,
    /// That call's `call_sequence` right after the first delivery.
    pub call_sequence: u64,
    /// The sequences the first delivery appended.
    pub sequences: Vec<u64>,
    /// When the first delivery was received (for the dedup window).
    pub created_at: DateTime<Utc>,
}

/// The windows the plan applies.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    /// How long a dedup key identifies a repeat.
    pub dedup: Duration,
    /// How long a synthesized (8x8 agent panel) call stays open for
    /// correlation without news.
    pub correlation: Duration,
}

/// Read access to the store's current state, including what earlier plans of
/// the same commit wrote.
pub trait StateView {
    /// Why a read failed (the store's error).
    type Error;
    /// A call by id.
    fn call(&mut self, tenant: &str, call_id: &str) -> Result<Option<Call>, Self::Error>;
    /// The most recent calls with this correlation key (any state), newest
    /// first, at most [`CORRELATION_CANDIDATES`].
    fn correlated(&mut self, tenant: &str, key: &str) -> Result<Vec<Call>, Self::Error>;
    /// A dedup entry by key.
    fn dedup(&mut self, tenant: &str, key: &str) -> Result<Option<DedupEntry>, Self::Error>;
}

/// What one ingest does to the store.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The outcome.
    pub outcome: IngestOutcome,
    /// New events with their sequences, each with its call after it (`None`
    /// for agent events). A call touched twice appears twice; the last one
    /// is its final state.
    pub appended: Vec<(CallEvent, Option<Call>)>,
    /// For a duplicate: the sequences of the first delivery.
    pub duplicate_of: Vec<u64>,
    /// Dedup keys to remember.
    pub dedup_writes: Vec<(String, DedupEntry)>,
    /// What made a duplicate a duplicate (for metrics).
    pub dedup_hit: Option<&'static str>,
}

impl Plan {
    fn duplicate(entry: &DedupEntry, remember: Option<(String, DedupEntry)>, hit: &'static str) -> Plan {
        Plan {
            outcome: IngestOutcome::Duplicate,
            appended: Vec::new(),
            duplicate_of: entry.sequences.clone(),
            dedup_writes: remember.into_iter().collect(),
            dedup_hit: Some(hit),
        }
    }

    fn ignored() -> Plan {
        Plan {
            outcome: IngestOutcome::Ignored,
            appended: Vec::new(),
            duplicate_of: Vec::new(),
            dedup_writes: Vec::new(),
            dedup_hit: None,
        }
    }
}

/// The verdict of the dedup ladder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screened {
    /// A repeat of an earlier delivery.
    Duplicate {
        /// The first delivery.
        entry: DedupEntry,
        /// What identified it (`request_id`, `vendor_id`, `natural_key`,
        /// `content_hash`, `alias`).
        hit: &'static str,
        /// The request id to remember for it, when the request had a new one.
        remember: Option<(String, DedupEntry)>,
    },
    /// Not a call event.
    Ignored,
    /// New: plan its events.
    New,
}

/// Runs the dedup ladder (DESIGN §4.1).
pub fn screen<V: StateView>(batch: &IngestBatch, view: &mut V, windows: Windows) -> Result<Screened, V::Error> {
    let tenant = batch.tenant.as_str();
    let n = &batch.normalized;
    let request_key = request_key(batch);
    let live = |e: Option<DedupEntry>| e.filter(|e| within(e.created_at, batch.received_at, windows.dedup));
    let remember = |entry: &DedupEntry| request_key.clone().map(|k| (k, entry.clone()));

    if let Some(k) = &request_key
        && let Some(entry) = live(view.dedup(tenant, k)?)
    {
        return Ok(Screened::Duplicate { entry, hit: "request_id", remember: None });
    }
    if let Some(entry) = live(view.dedup(tenant, &n.identity.key())?) {
        let repeat = if !n.identity.is_content_hash() || entry.call_id.is_empty() {
            true
        } else {
            // Content hashes only dedup a consecutive repeat: nothing else
            // happened to the call since the first delivery.
            view.call(tenant, &entry.call_id)?.is_some_and(|c| c.call_sequence == entry.call_sequence)
        };
        if repeat {
            let hit = match n.identity {
                Identity::VendorId(_) => "vendor_id",
                Identity::Natural(_) => "natural_key",
                Identity::ContentHash(_) => "content_hash",
            };
            return Ok(Screened::Duplicate { remember: remember(&entry), entry, hit });
        }
    }
    for alias in n.aliases.iter().filter(|a| !a.is_content_hash()) {
        if let Some(entry) = live(view.dedup(tenant, &alias.key())?) {
            return Ok(Screened::Duplicate { remember: remember(&entry), entry, hit: "alias" });
        }
    }
    if n.ignored.is_some() {
        return Ok(Screened::Ignored);
    }
    Ok(Screened::New)
}

/// What one draft does, before the store gives it a position.
#[derive(Clone, Debug)]
pub enum Step {
    /// Nothing new: the call is already in the state the event reports.
    Repeat,
    /// A new event.
    Event {
        /// The event (`sequence` 0 until committed).
        event: Box<CallEvent>,
        /// Its call after it (`None` for an agent event).
        call: Option<Box<Call>>,
        /// The last sequence of the call the event was applied to (0 for a
        /// new call): a log that checks its writers (JetStream's expected
        /// last subject sequence) expects this.
        based_on: u64,
    },
}

/// The events of one ingest being planned, in draft order.
pub struct Planning<'b> {
    batch: &'b IngestBatch,
    identity_key: String,
    /// Calls committed earlier in this payload: later drafts see them.
    local: HashMap<String, Call>,
    appended: Vec<(CallEvent, Option<Call>)>,
}

impl<'b> Planning<'b> {
    /// Starts planning the events of a screened-new batch.
    pub fn new(batch: &'b IngestBatch) -> Planning<'b> {
        Planning { batch, identity_key: batch.normalized.identity.key(), local: HashMap::new(), appended: Vec::new() }
    }

    /// Whose events these are.
    pub fn tenant(&self) -> &TenantId {
        &self.batch.tenant
    }

    /// How many drafts the payload has.
    pub fn drafts(&self) -> usize {
        self.batch.normalized.events.len()
    }

    /// Resolves draft `index`'s call and applies the draft to it. Pure over
    /// the view: run it again after the view learned more.
    pub fn step<V: StateView>(&self, index: usize, view: &mut V, windows: Windows) -> Result<Step, V::Error> {
        let batch = self.batch;
        let n = &batch.normalized;
        let tenant = batch.tenant.as_str();
        let draft = &n.events[index];
        let ctx = |event_id| ApplyContext {
            tenant_id: tenant,
            vendor: n.vendor,
            vendor_event_type: &n.vendor_event_type,
            received_at: batch.received_at,
            bridge_received_at: batch.bridge_received_at,
            event_id,
        };
        let event_id_of = |at: Option<u64>| event_id(tenant, n.vendor, &self.identity_key, at, draft.event_type, index);
        let Some(call_ref) = &draft.call else {
            let event = lifecycle::agent_event(draft, &ctx(event_id_of(None)));
            return Ok(Step::Event { event: Box::new(event), call: None, based_on: 0 });
        };
        let (call_id, existing) = correlate::resolve(batch, call_ref, draft, view, &self.local, windows)?;
        if is_expiry(draft)
            && existing.as_ref().is_none_or(|c| !c.state.is_active() || Some(c.updated_at) != draft.occurred_at)
        {
            // The call had news (or ended, or is gone) since the sweep saw
            // it idle: it stays as it is.
            return Ok(Step::Repeat);
        }
        let event_id = if n.identity.is_content_hash() {
            // The same content may legitimately recur (hold, resume, hold):
            // "the same vendor event" is the same content at the same point
            // of the call, so the call's position is part of the event id.
            let at = existing.as_ref().map_or(0, |c| c.call_sequence);
            event_id_of(Some(at))
        } else {
            event_id_of(None)
        };
        let ctx = ctx(event_id);
        let based_on = existing.as_ref().map_or(0, |c| c.last_sequence);
        Ok(match lifecycle::apply(existing, &call_id, draft, &ctx) {
            Applied::Duplicate => Step::Repeat,
            Applied::Event { event, mut call } => {
                if let CallRef::Correlate(c) = call_ref {
                    call.correlation_key = Some(c.key.clone());
                }
                Step::Event { event, call: Some(call), based_on }
            }
        })
    }

    /// Records draft `index`'s stepped event at its log position; returns it
    /// with its call.
    pub fn commit(
        &mut self,
        index: usize,
        mut event: CallEvent,
        mut call: Option<Call>,
        sequence: u64,
    ) -> &(CallEvent, Option<Call>) {
        event.sequence = sequence;
        if let Some(call) = &mut call {
            call.last_sequence = sequence;
            if call.first_sequence == 0 {
                call.first_sequence = sequence;
            }
            if index + 1 < self.drafts() {
                // Later drafts of this payload must see this event.
                self.local.insert(call.call_id.clone(), call.clone());
            }
        }
        self.appended.push((event, call));
        self.appended.last().expect("just pushed")
    }

    /// The plan: the committed events and the dedup keys to remember. With
    /// nothing committed, the payload repeated states the calls are already
    /// in: a duplicate of `already_logged` (events a log found it already
    /// held).
    pub fn finish(self, already_logged: &[u64]) -> Plan {
        let now = self.batch.received_at;
        let request_key = request_key(self.batch);
        if self.appended.is_empty() {
            let entry = DedupEntry {
                call_id: String::new(),
                call_sequence: 0,
                sequences: already_logged.to_vec(),
                created_at: now,
            };
            let remember = request_key.map(|k| (k, entry.clone()));
            return Plan::duplicate(&entry, remember, "repeated_state");
        }
        let (call_id, call_sequence) = self
            .appended
            .iter()
            .rev()
            .find_map(|(_, c)| c.as_ref().map(|c| (c.call_id.clone(), c.call_sequence)))
            .unwrap_or_default();
        let entry = DedupEntry {
            call_id,
            call_sequence,
            sequences: self.appended.iter().map(|(e, _)| e.sequence).collect(),
            created_at: now,
        };
        let aliases = self.batch.normalized.aliases.iter().map(|a| a.key());
        let mut dedup_writes: Vec<(String, DedupEntry)> =
            std::iter::once(self.identity_key).chain(aliases).map(|k| (k, entry.clone())).collect();
        if let Some(k) = request_key {
            dedup_writes.push((k, entry));
        }
        Plan {
            outcome: IngestOutcome::Accepted,
            appended: self.appended,
            duplicate_of: Vec::new(),
            dedup_writes,
            dedup_hit: None,
        }
    }
}

/// Plans one ingest for a store that assigns its own sequences;
/// `next_sequence` is advanced past every sequence used.
pub fn plan<V: StateView>(
    batch: &IngestBatch,
    view: &mut V,
    next_sequence: &mut u64,
    windows: Windows,
) -> Result<Plan, V::Error> {
    match screen(batch, view, windows)? {
        Screened::Duplicate { entry, hit, remember } => return Ok(Plan::duplicate(&entry, remember, hit)),
        Screened::Ignored => return Ok(Plan::ignored()),
        Screened::New => {}
    }
    let mut planning = Planning::new(batch);
    for index in 0..planning.drafts() {
        if let Step::Event { event, call, .. } = planning.step(index, view, windows)? {
            let sequence = *next_sequence;
            *next_sequence += 1;
            planning.commit(index, *event, call.map(|c| *c), sequence);
        }
    }
    Ok(planning.finish(&[]))
}

/// Whether a draft is the server's own idle expiry
/// ([`crate::service::expiry`]): a `CALL_ENDED` with the outcome
/// `CALL_OUTCOME_EXPIRED`, timed at the last update of the call it saw.
fn is_expiry(draft: &EventDraft) -> bool {
    draft.event_type == EventType::CallEnded && draft.facts.outcome == Some(CallOutcome::Expired)
}

/// The dedup keys [`screen`] reads, in its order: a store that fetches
/// ahead (NATS) asks for these without knowing how keys are spelled.
pub fn dedup_keys(batch: &IngestBatch) -> impl Iterator<Item = String> + '_ {
    let n = &batch.normalized;
    request_key(batch)
        .into_iter()
        .chain(std::iter::once(n.identity.key()))
        .chain(n.aliases.iter().filter(|a| !a.is_content_hash()).map(|a| a.key()))
}

/// The dedup key of the request's idempotency key.
fn request_key(batch: &IngestBatch) -> Option<String> {
    batch.request_id.as_ref().map(|r| ["req:", r.as_str()].concat())
}

/// Whether `t` is within `window` before `now` (a time in the future is).
fn within(t: DateTime<Utc>, now: DateTime<Utc>, window: Duration) -> bool {
    (now - t).to_std().map_or(true, |age| age <= window)
}
