//! `switchboard.v1.IngestService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status::{bad_request, to_status};
use super::{convert, tenancy};
use crate::adapters::FieldViolation;
use crate::domain::Vendor;
use crate::proto::v1 as pb;
use crate::service::Services;
use crate::service::ingest::IngestInput;
use crate::store::IngestOutcome;

/// The IngestService implementation.
#[derive(Clone)]
pub struct IngestApi {
    services: Arc<Services>,
}

impl IngestApi {
    /// Serves ingest on `services`.
    pub fn new(services: Arc<Services>) -> IngestApi {
        IngestApi { services }
    }
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
    async fn ingest(&self, request: Request<pb::IngestRequest>) -> Result<Response<pb::IngestResponse>, Status> {
        let tenant = tenancy::resolve(&request, &request.get_ref().tenant_id)?;
        let req = request.into_inner();
        let vendor = match req.vendor {
            0 => None,
            n => Some(Vendor::from_number(n).ok_or_else(|| invalid("vendor", format!("unknown vendor value {n}")))?),
        };
        let bridge_received_at = match &req.received_at {
            None => None,
            Some(t) => Some(convert::from_timestamp(t).ok_or_else(|| invalid("received_at", "out of range"))?),
        };
        let input = IngestInput {
            tenant,
            vendor,
            payload: req.payload,
            request_id: Some(req.request_id).filter(|s| !s.is_empty()),
            vendor_event_type: Some(req.vendor_event_type).filter(|s| !s.is_empty()),
            bridge_received_at,
        };
        let out = self.services.ingest(input).await.map_err(to_status)?;
        let events = out
            .records
            .iter()
            .map(|r| convert::decode_event(r.update_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                tracing::error!(error = %e, "stored event does not decode");
                Status::internal("internal error")
            })?;
        Ok(Response::new(pb::IngestResponse {
            outcome: outcome(out.outcome) as i32,
            events,
            vendor: out.vendor.number(),
        }))
    }
}
