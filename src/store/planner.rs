//! The serialized heart of ingest, shared by every store that assigns its own
//! sequences: dedup (DESIGN §4.1), call-id resolution (§4.2), the state
//! machine (§3.5) and sequence assignment, as one pure-ish pass over a
//! [`StateView`] of the store.
//!
//! The store runs [`plan`] while it holds its write lock (memory) or inside
//! its writer thread's transaction (sqlite), then persists the [`Plan`]
//! atomically. Nothing here does I/O except through the view.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{IngestBatch, IngestOutcome, StoreError, StoreOptions};
use crate::domain::identity::{event_id, short_hash};
use crate::domain::lifecycle::{self, Applied, ApplyContext};
use crate::domain::{Call, CallEvent, CallRef, CallState, Correlation, EventDraft, EventType};

/// How many recent calls of one correlation key are considered.
pub const CORRELATION_CANDIDATES: usize = 8;

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

/// Read access to the store's current state, including what earlier plans of
/// the same commit wrote.
pub trait StateView {
    /// A call by id.
    fn call(&mut self, tenant: &str, call_id: &str) -> Result<Option<Call>, StoreError>;
    /// The most recent calls with this correlation key (any state), newest
    /// first, at most [`CORRELATION_CANDIDATES`].
    fn correlated(&mut self, tenant: &str, key: &str) -> Result<Vec<Call>, StoreError>;
    /// A dedup entry by key.
    fn dedup(&mut self, tenant: &str, key: &str) -> Result<Option<DedupEntry>, StoreError>;
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
    fn duplicate(entry: &DedupEntry, request_key: Option<String>, hit: &'static str) -> Plan {
        Plan {
            outcome: IngestOutcome::Duplicate,
            appended: Vec::new(),
            duplicate_of: entry.sequences.clone(),
            dedup_writes: request_key.map(|k| (k, entry.clone())).into_iter().collect(),
            dedup_hit: Some(hit),
        }
    }
}

/// Plans one ingest. `next_sequence` is advanced past every sequence used.
pub fn plan(
    batch: &IngestBatch,
    view: &mut dyn StateView,
    next_sequence: &mut u64,
    opts: &StoreOptions,
) -> Result<Plan, StoreError> {
    let tenant = batch.tenant.as_str();
    let now = batch.received_at;
    let n = &batch.normalized;
    let request_key = batch.request_id.as_ref().map(|r| format!("req:{r}"));
    let live = |e: Option<DedupEntry>| e.filter(|e| within(e.created_at, now, opts.dedup_window));

    if let Some(k) = &request_key
        && let Some(entry) = live(view.dedup(tenant, k)?)
    {
        return Ok(Plan::duplicate(&entry, None, "request_id"));
    }
    let identity_key = n.identity.key();
    if let Some(entry) = live(view.dedup(tenant, &identity_key)?) {
        let repeat = if !n.identity.is_content_hash() || entry.call_id.is_empty() {
            true
        } else {
            // Content hashes only dedup a consecutive repeat: nothing else
            // happened to the call since the first delivery.
            view.call(tenant, &entry.call_id)?.is_some_and(|c| c.call_sequence == entry.call_sequence)
        };
        if repeat {
            let hit = match n.identity {
                crate::domain::Identity::VendorId(_) => "vendor_id",
                crate::domain::Identity::Natural(_) => "natural_key",
                crate::domain::Identity::ContentHash(_) => "content_hash",
            };
            return Ok(Plan::duplicate(&entry, request_key, hit));
        }
    }
    for alias in n.aliases.iter().filter(|a| !a.is_content_hash()) {
        if let Some(entry) = live(view.dedup(tenant, &alias.key())?) {
            return Ok(Plan::duplicate(&entry, request_key, "alias"));
        }
    }
    if n.ignored.is_some() {
        return Ok(Plan {
            outcome: IngestOutcome::Ignored,
            appended: Vec::new(),
            duplicate_of: Vec::new(),
            dedup_writes: Vec::new(),
            dedup_hit: None,
        });
    }

    let mut local: HashMap<String, Call> = HashMap::new();
    let mut appended = Vec::new();
    for (index, draft) in n.events.iter().enumerate() {
        let mut ctx = ApplyContext {
            tenant_id: tenant,
            vendor: n.vendor,
            vendor_event_type: &n.vendor_event_type,
            received_at: now,
            bridge_received_at: batch.bridge_received_at,
            event_id: event_id(tenant, n.vendor, &identity_key, draft.event_type, index),
        };
        let Some(call_ref) = &draft.call else {
            let mut event = lifecycle::agent_event(draft, &ctx);
            event.sequence = take(next_sequence);
            appended.push((event, None));
            continue;
        };
        let (call_id, existing) = resolve(tenant, call_ref, draft, view, &local, batch, opts)?;
        if n.identity.is_content_hash() {
            // The same content may legitimately recur (hold, resume, hold):
            // "the same vendor event" is the same content at the same point
            // of the call, so the call's position is part of the event id.
            let at = existing.as_ref().map_or(0, |c| c.call_sequence);
            ctx.event_id = event_id(tenant, n.vendor, &format!("{identity_key}@{at}"), draft.event_type, index);
        }
        match lifecycle::apply(existing, &call_id, draft, &ctx) {
            Applied::Duplicate => {}
            Applied::Event { mut event, mut call } => {
                let seq = take(next_sequence);
                event.sequence = seq;
                call.last_sequence = seq;
                if call.first_sequence == 0 {
                    call.first_sequence = seq;
                }
                if let CallRef::Correlate(c) = call_ref {
                    call.correlation_key = Some(c.key.clone());
                }
                if index + 1 < n.events.len() {
                    // Later events of this payload must see this one.
                    local.insert(call_id, (*call).clone());
                }
                appended.push((*event, Some(*call)));
            }
        }
    }

    if appended.is_empty() {
        // Every event repeated a state the call is already in.
        let entry = DedupEntry { call_id: String::new(), call_sequence: 0, sequences: Vec::new(), created_at: now };
        return Ok(Plan::duplicate(&entry, request_key, "repeated_state"));
    }
    let (call_id, call_sequence) = appended
        .iter()
        .rev()
        .find_map(|(_, c)| c.as_ref().map(|c| (c.call_id.clone(), c.call_sequence)))
        .unwrap_or_default();
    let entry = DedupEntry {
        call_id,
        call_sequence,
        sequences: appended.iter().map(|(e, _)| e.sequence).collect(),
        created_at: now,
    };
    let mut dedup_writes: Vec<(String, DedupEntry)> =
        std::iter::once(identity_key).chain(n.aliases.iter().map(|a| a.key())).map(|k| (k, entry.clone())).collect();
    if let Some(k) = request_key {
        dedup_writes.push((k, entry));
    }
    Ok(Plan { outcome: IngestOutcome::Accepted, appended, duplicate_of: Vec::new(), dedup_writes, dedup_hit: None })
}

fn take(next: &mut u64) -> u64 {
    let s = *next;
    *next += 1;
    s
}

fn within(t: DateTime<Utc>, now: DateTime<Utc>, window: std::time::Duration) -> bool {
    (now - t).to_std().map_or(true, |age| age <= window)
}

/// Finds the call an event belongs to: its id and current state.
fn resolve(
    tenant: &str,
    call_ref: &CallRef,
    draft: &EventDraft,
    view: &mut dyn StateView,
    local: &HashMap<String, Call>,
    batch: &IngestBatch,
    opts: &StoreOptions,
) -> Result<(String, Option<Call>), StoreError> {
    match call_ref {
        CallRef::Id(id) => {
            let existing = match local.get(id) {
                Some(c) => Some(c.clone()),
                None => view.call(tenant, id)?,
            };
            Ok((id.clone(), existing))
        }
        CallRef::Correlate(c) => {
            let mut candidates: Vec<Call> =
                local.values().filter(|call| call.correlation_key.as_deref() == Some(&c.key)).cloned().collect();
            for call in view.correlated(tenant, &c.key)? {
                if !candidates.iter().any(|x| x.call_id == call.call_id) {
                    candidates.push(call);
                }
            }
            candidates.sort_by_key(|x| std::cmp::Reverse(x.last_sequence));
            if let Some(call) = correlate(&candidates, c, draft.event_type, batch.received_at, opts) {
                return Ok((call.call_id.clone(), Some(call.clone())));
            }
            let id = new_correlated_id(tenant, c, batch);
            let existing = match local.get(&id) {
                Some(c) => Some(c.clone()),
                None => view.call(tenant, &id)?,
            };
            Ok((id, existing))
        }
    }
}

/// The id of a new call of a vendor without call ids: a hash of the key
/// with the start time, or without one with the first event's identity
/// (unique per vendor event).
pub(crate) fn new_correlated_id(tenant: &str, c: &Correlation, batch: &IngestBatch) -> String {
    let start = match c.started_at {
        Some(t) => t.timestamp_millis().to_string(),
        None => batch.normalized.identity.key(),
    };
    let prefix = batch.normalized.vendor.call_id_prefix();
    format!("{prefix}:{}", short_hash(&[tenant.as_bytes(), c.key.as_bytes(), start.as_bytes()]))
}

/// The correlation rule for vendors without call ids (DESIGN §4.2), over
/// the recent calls with the same key (tenant, vendor, number, direction),
/// newest first:
///
/// 1. When the event knows the call's start time, the call with exactly that
///    start time is its call, even if it has ended (a late or repeated
///    `terminated`).
/// 2. Otherwise the newest call that is still open, had news within the
///    correlation window, does not know a different start time, and that the
///    event does not move backwards (an `offered` for a call already in
///    wrap-up is the next call).
/// 3. Anything else starts a new call.
pub(crate) fn correlate<'a>(
    candidates: &'a [Call],
    c: &Correlation,
    event_type: EventType,
    now: DateTime<Utc>,
    opts: &StoreOptions,
) -> Option<&'a Call> {
    if let Some(t) = c.started_at
        && let Some(call) = candidates.iter().find(|call| call.started_at == Some(t))
    {
        return Some(call);
    }
    candidates.iter().find(|call| {
        let compatible = c.started_at.is_none() || call.started_at.is_none();
        let forward = lifecycle::advance_target(event_type).is_none_or(|t| t.rank() >= call.state.rank());
        call.state != CallState::Ended && compatible && forward && within(call.updated_at, now, opts.correlation_window)
    })
}
