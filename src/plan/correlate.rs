//! Which call an event belongs to (DESIGN §4.2): by id, or for a vendor
//! without call ids (the 8x8 agent panel) by correlation over the recent
//! calls with the same key.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{IngestBatch, StateView, Windows, within};
use crate::domain::identity::short_hash;
use crate::domain::lifecycle;
use crate::domain::{Call, CallRef, CallState, Correlation, EventDraft, EventType};

/// How many recent calls of one correlation key are considered.
pub const CORRELATION_CANDIDATES: usize = 8;

/// Finds the call an event belongs to: its id and current state. `local`
/// holds the calls earlier drafts of the same payload touched.
pub(super) fn resolve<V: StateView>(
    batch: &IngestBatch,
    call_ref: &CallRef,
    draft: &EventDraft,
    view: &mut V,
    local: &HashMap<String, Call>,
    windows: Windows,
) -> Result<(String, Option<Call>), V::Error> {
    let tenant = batch.tenant.as_str();
    let lookup = |view: &mut V, id: &str| match local.get(id) {
        Some(c) => Ok(Some(c.clone())),
        None => view.call(tenant, id),
    };
    match call_ref {
        CallRef::Id(id) => Ok((id.clone(), lookup(view, id)?)),
        CallRef::Correlate(c) => {
            let mut candidates: Vec<Call> =
                local.values().filter(|call| call.correlation_key.as_deref() == Some(&c.key)).cloned().collect();
            for call in view.correlated(tenant, &c.key)? {
                if !candidates.iter().any(|x| x.call_id == call.call_id) {
                    candidates.push(call);
                }
            }
            candidates.sort_by_key(|x| std::cmp::Reverse(x.last_sequence));
            if let Some(i) = correlate(&candidates, c, draft.event_type, batch.received_at, windows) {
                // Taken, not cloned: the candidates were copied for this.
                let call = candidates.swap_remove(i);
                return Ok((call.call_id.clone(), Some(call)));
            }
            let id = new_correlated_id(tenant, c, batch);
            let existing = lookup(view, &id)?;
            Ok((id, existing))
        }
    }
}

/// The id of a new call of a vendor without call ids: a hash of the key
/// with the start time, or without one with the first event's identity
/// (unique per vendor event).
pub fn new_correlated_id(tenant: &str, c: &Correlation, batch: &IngestBatch) -> String {
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
/// 2. Otherwise a call that is still open, had news within the correlation
///    window, does not know a different start time, and that the event does
///    not move backwards (an `offered` for a call already in wrap-up is the
///    next call). When the event knows the call's start time (`completed`),
///    the one whose start, or first receive time when it has none, is nearest
///    that start time: with two open calls of one key (a transfer to a second
///    agent, a withheld number, a shared trunk number), the newest is the
///    wrong one for the older call's `completed`. Without a start time, the
///    newest.
/// 3. Anything else starts a new call.
///
/// Returns the position of the call among `candidates`.
pub fn correlate(
    candidates: &[Call],
    c: &Correlation,
    event_type: EventType,
    now: DateTime<Utc>,
    windows: Windows,
) -> Option<usize> {
    if let Some(t) = c.started_at
        && let Some(i) = candidates.iter().position(|call| call.started_at == Some(t))
    {
        return Some(i);
    }
    let mut open = candidates.iter().enumerate().filter(|(_, call)| {
        let compatible = c.started_at.is_none() || call.started_at.is_none();
        let forward = lifecycle::advance_target(event_type).is_none_or(|t| t.rank() >= call.state.rank());
        call.state != CallState::Ended && compatible && forward && within(call.updated_at, now, windows.correlation)
    });
    match c.started_at {
        // Ties keep the newest (candidates come newest first).
        Some(t) => open
            .min_by_key(|(_, call)| {
                let reference = call.started_at.or(call.first_received_at).unwrap_or(call.updated_at);
                (reference - t).num_milliseconds().unsigned_abs()
            })
            .map(|(i, _)| i),
        None => open.next().map(|(i, _)| i),
    }
}
