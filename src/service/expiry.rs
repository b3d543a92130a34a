//! Calls that never end (DESIGN §3.6): a lost hang-up, an 8x8 agent-panel
//! `offered` from a manual search. After `--call-idle-timeout` without an
//! event the server closes such a call with a `CALL_ENDED` whose outcome is
//! `CALL_OUTCOME_EXPIRED`, ingested like any vendor event: through the ingest
//! plan, so it is sequenced, published and stored once, whichever replica
//! sweeps first (its identity is the call's, so a second replica's attempt is
//! a duplicate, and JetStream's per-call sequence check refuses a stale one).
//!
//! The expiry names the state it saw (the call's last update time) and the
//! plan drops it when the call has moved on since (see `plan::is_expiry`):
//! an event that arrives while the sweep runs keeps its call open. A late
//! vendor event for an expired call is recorded and never reopens it
//! (`CALL_STATE_ENDED` is terminal).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Services;
use crate::domain::{
    Call, CallFacts, CallOutcome, CallRef, Detail, Ended, EventDraft, EventType, Identity, Normalized, TenantId,
};
use crate::store::{IngestBatch, IngestOutcome, StoreError};

/// The vendor event type the server's own expiry events carry.
pub const EXPIRY_EVENT_TYPE: &str = "switchboard.CallExpired";

/// Calls closed per sweep at most (the rest follow at the next sweep).
pub const EXPIRY_BATCH: usize = 256;

impl Services {
    /// Closes every active call whose last event is older than `idle` (at
    /// most [`EXPIRY_BATCH`] per call); returns how many it closed.
    pub async fn expire_idle_calls(&self, idle: Duration) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let Ok(idle) = chrono::Duration::from_std(idle) else {
            return Ok(0);
        };
        let before = now - idle;
        let mut closed = 0;
        for call in self.store.idle_calls(before, EXPIRY_BATCH).await? {
            let Ok(tenant) = TenantId::parse(&call.tenant_id) else {
                continue;
            };
            let result = self.store.ingest(expiry_batch(tenant, &call, now, idle)).await?;
            if result.outcome == IngestOutcome::Accepted {
                closed += 1;
                metrics::counter!("switchboard_calls_expired_total", "vendor" => call.vendor.label()).increment(1);
                tracing::info!(tenant = %call.tenant_id, call_id = %call.call_id, last_update = %call.updated_at, "idle call expired");
            }
        }
        Ok(closed)
    }
}

/// The ingest that expires `call` as it was last updated, received `now`
/// after `idle` without news. Every replica builds the same one for the same
/// call state (its identity is the call's), so only one is ever logged.
pub fn expiry_batch(tenant: TenantId, call: &Call, now: DateTime<Utc>, idle: chrono::Duration) -> IngestBatch {
    let mut draft = EventDraft::new(EventType::CallEnded, Some(CallRef::Id(call.call_id.clone())));
    // The call ended, as far as anyone can tell, with its last news.
    draft.occurred_at = Some(call.updated_at);
    draft.facts = CallFacts { outcome: Some(CallOutcome::Expired), ..CallFacts::default() };
    draft.detail = Some(Detail::Ended(Ended {
        outcome: Some(CallOutcome::Expired),
        reason: format!("no event for {}", humantime::format_duration(idle.to_std().unwrap_or_default())),
        ..Ended::default()
    }));
    IngestBatch {
        tenant,
        request_id: None,
        normalized: Normalized::single(
            call.vendor,
            EXPIRY_EVENT_TYPE,
            Identity::Natural(format!("expired:{}", call.call_id)),
            draft,
        ),
        received_at: now,
        bridge_received_at: None,
    }
}
