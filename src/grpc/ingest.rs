//! `switchboard.v1.IngestService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::access::{RateLimiter, authorize};
use super::status::{bad_request, to_status};
use crate::adapters::FieldViolation;
use crate::auth::Role;
use crate::codec::convert;
use crate::codec::proto::v1 as pb;
use crate::codec::wire::EncodedResponse;
use crate::domain::Vendor;
use crate::service::ingest::IngestInput;
use crate::service::{ServiceError, Services};
use crate::store::IngestOutcome;

/// The IngestService implementation.
#[derive(Clone)]
pub struct IngestApi {
    services: Arc<Services>,
    limiter: Arc<RateLimiter>,
}

impl IngestApi {
    /// Serves ingest on `services`, admitting requests through `limiter`.
    pub fn new(services: Arc<Services>, limiter: Arc<RateLimiter>) -> IngestApi {
        IngestApi { services, limiter }
    }

    async fn handle(&self, request: Request<pb::IngestRequest>) -> Result<Response<EncodedResponse>, Status> {
        let span = tracing::Span::current();
        let tenant = authorize(&request, &request.get_ref().tenant_id, Role::Ingest, &self.limiter)?;
        span.record("tenant", tenant.as_str());
        let traceparent = super::traceparent(request.metadata());
        let req = request.into_inner();
        let vendor = match req.vendor {
            0 => None,
            n => Some(Vendor::from_number(n).ok_or_else(|| invalid("vendor", format!("unknown vendor value {n}")))?),
        };
        let bridge_received_at = match &req.received_at {
            None => None,
            Some(t) => Some(convert::from_timestamp(t).ok_or_else(|| invalid("received_at", "out of range"))?),
        };
        let size = req.payload.len();
        let input = IngestInput {
            tenant: tenant.clone(),
            vendor,
            payload: req.payload,
            request_id: Some(req.request_id).filter(|s| !s.is_empty()),
            vendor_event_type: Some(req.vendor_event_type).filter(|s| !s.is_empty()),
            agent_id: Some(req.agent_id).filter(|s| !s.is_empty()),
            bridge_received_at,
            traceparent,
        };
        let out = match self.services.ingest(input).await {
            Ok(out) => out,
            Err(e) => {
                audit_rejection(&tenant, vendor, size, &e);
                return Err(to_status(e));
            }
        };
        span.record("vendor", out.vendor.label());
        span.record("outcome", out.outcome.label());
        if let Some(r) = out.records.first() {
            span.record("call_id", r.meta().call_id.as_str());
        }
        let answer = EncodedResponse::ingest(outcome(out.outcome), out.vendor.number(), &out.records).map_err(|e| {
            tracing::error!(error = %e, "stored event does not frame");
            Status::internal("internal error")
        })?;
        Ok(Response::new(answer))
    }
}

/// Counts and logs a rejected payload: size, vendor and reason, never the
/// content (it may hold personal data); the field-level detail only at debug.
fn audit_rejection(tenant: &crate::domain::TenantId, vendor: Option<Vendor>, size: usize, e: &ServiceError) {
    let vendor = vendor.map_or("unspecified", Vendor::label);
    let reason = match e {
        ServiceError::Adapter(a) => a.reason(),
        ServiceError::PayloadTooLarge { .. } => "payload_too_large",
        ServiceError::InvalidRequest(_) => "invalid_request",
        _ => return,
    };
    metrics::counter!("switchboard_ingest_rejected_total", "vendor" => vendor, "reason" => reason).increment(1);
    let fields: Vec<String> = match e {
        ServiceError::Adapter(a) => a.violations().into_iter().map(|v| v.field).collect(),
        ServiceError::InvalidRequest(v) => v.iter().map(|v| v.field.clone()).collect(),
        _ => Vec::new(),
    };
    tracing::info!(tenant = %tenant, vendor, size, reason, fields = ?fields, "payload rejected");
    tracing::debug!(tenant = %tenant, vendor, error = %e, "payload rejection detail");
}

fn outcome(o: IngestOutcome) -> pb::IngestOutcome {
    match o {
        IngestOutcome::Accepted => pb::IngestOutcome::Accepted,
        IngestOutcome::Duplicate => pb::IngestOutcome::Duplicate,
        IngestOutcome::Ignored => pb::IngestOutcome::Ignored,
    }
}

fn invalid(field: &str, why: impl Into<String>) -> Status {
    let why = why.into();
    bad_request(format!("{field}: {why}"), "INVALID_REQUEST", &[FieldViolation::new(field, why)])
}

#[tonic::async_trait]
impl pb::ingest_service_server::IngestService for IngestApi {
    async fn ingest(&self, request: Request<pb::IngestRequest>) -> Result<Response<EncodedResponse>, Status> {
        self.handle(request).await
    }
}
