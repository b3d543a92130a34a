//! Which tenant a request acts for.
//!
//! With authentication off, the request's `tenant_id` decides (empty means
//! `default`).

use tonic::Status;

use crate::adapters::FieldViolation;
use crate::domain::TenantId;
use crate::grpc::status::bad_request;

/// The tenant a request acts for.
pub fn resolve<T>(_request: &tonic::Request<T>, requested: &str) -> Result<TenantId, Status> {
    if requested.is_empty() {
        return Ok(TenantId::default_tenant());
    }
    TenantId::parse(requested).map_err(|why| {
        bad_request(format!("invalid tenant_id: {why}"), "INVALID_REQUEST", &[FieldViolation::new("tenant_id", why)])
    })
}
