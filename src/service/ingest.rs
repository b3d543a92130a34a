//! Ingest: adapter → store (dedup, state machine, append) → hub.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{ServiceError, Services};
use crate::codec::Record;
use crate::domain::{TenantId, Vendor};
use crate::store::{IngestBatch, IngestOutcome};

/// Longest accepted `request_id` and `vendor_event_type`.
const MAX_KEY_LEN: usize = 128;

/// One ingest request, validated at the edge except for the payload.
#[derive(Clone, Debug)]
pub struct IngestInput {
    /// The tenant the credential acts for: every key and call is scoped to it.
    pub tenant: TenantId,
    /// The vendor, or `None` to detect it.
    pub vendor: Option<Vendor>,
    /// The vendor JSON.
    pub payload: bytes::Bytes,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// Vendor event type for envelopes without one.
    pub vendor_event_type: Option<String>,
    /// The agent a browser relay forwards for (`IngestRequest.agent_id`).
    pub agent_id: Option<String>,
    /// When the bridge received it.
    pub bridge_received_at: Option<DateTime<Utc>>,
    /// The caller's W3C trace context, carried onto the events.
    pub traceparent: Option<String>,
}

/// What an ingest did.
#[derive(Clone, Debug)]
pub struct IngestOutput {
    /// Accepted, duplicate or ignored.
    pub outcome: IngestOutcome,
    /// The vendor used.
    pub vendor: Vendor,
    /// The events (see `IngestResponse.events`).
    pub records: Vec<Arc<Record>>,
}

impl Services {
    /// Normalizes, dedups, applies and appends one payload.
    pub async fn ingest(&self, input: IngestInput) -> Result<IngestOutput, ServiceError> {
        let limit = self.options.max_payload_bytes;
        if input.payload.len() > limit {
            return Err(ServiceError::PayloadTooLarge { size: input.payload.len(), limit });
        }
        if input.payload.is_empty() {
            return Err(ServiceError::invalid("payload", "must not be empty"));
        }
        check_key("request_id", input.request_id.as_deref(), MAX_KEY_LEN, false)?;
        check_key("vendor_event_type", input.vendor_event_type.as_deref(), MAX_KEY_LEN, false)?;
        check_key("agent_id", input.agent_id.as_deref(), crate::adapters::MAX_ID_LEN, true)?;
        let started = std::time::Instant::now();
        let mut normalized = self.normalizer.normalize_for(
            input.vendor,
            &input.payload,
            input.vendor_event_type.as_deref(),
            input.agent_id.as_deref(),
        )?;
        metrics::histogram!("switchboard_normalize_seconds", "vendor" => normalized.vendor.label())
            .record(started.elapsed().as_secs_f64());
        if let Some(tp) = &input.traceparent {
            for draft in &mut normalized.events {
                draft.attributes.insert("traceparent".into(), tp.clone());
            }
        }
        let vendor = normalized.vendor;
        if let Some(reason) = &normalized.ignored {
            tracing::debug!(vendor = vendor.label(), reason = reason.as_str(), "payload ignored");
        }
        let batch = IngestBatch {
            tenant: input.tenant,
            request_id: input.request_id,
            normalized,
            received_at: self.clock.now(),
            bridge_received_at: input.bridge_received_at,
        };
        let started = std::time::Instant::now();
        let result = self.store.ingest(batch).await?;
        metrics::histogram!("switchboard_store_append_seconds", "store" => self.store.kind())
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("switchboard_ingest_total", "vendor" => vendor.label(), "outcome" => result.outcome.label())
            .increment(1);
        if let Some(kind) = result.dedup_hit {
            metrics::counter!("switchboard_dedup_hits_total", "kind" => kind).increment(1);
        }
        Ok(IngestOutput { outcome: result.outcome, vendor, records: result.records })
    }
}

/// A request field that becomes part of a key: at most `max` printable
/// characters (`trimmed`: without surrounding spaces either, so that two
/// relays spelling one agent differently are not two agents).
fn check_key(field: &str, value: Option<&str>, max: usize, trimmed: bool) -> Result<(), ServiceError> {
    let Some(v) = value else {
        return Ok(());
    };
    if v.len() <= max && !v.chars().any(char::is_control) && (!trimmed || v.trim() == v) {
        return Ok(());
    }
    let spaces = if trimmed { " without surrounding spaces" } else { "" };
    Err(ServiceError::invalid(field, format!("must be at most {max} printable characters{spaces}")))
}
