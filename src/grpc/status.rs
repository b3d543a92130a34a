//! [`ServiceError`] → [`tonic::Status`], with `google.rpc` details: the one
//! place errors become statuses.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::adapters::FieldViolation;
use crate::service::ServiceError;
use crate::store::StoreError;

/// `google.rpc.ErrorInfo.domain` of switchboard's errors.
pub const ERROR_DOMAIN: &str = "switchboard";

/// How long clients should wait before retrying an unavailable store.
const RETRY_DELAY: Duration = Duration::from_secs(1);

fn with_info(
    code: Code,
    message: String,
    reason: &str,
    metadata: HashMap<String, String>,
    mut details: ErrorDetails,
) -> Status {
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// `INVALID_ARGUMENT` with a `BadRequest` listing each violation.
pub fn bad_request(message: String, reason: &str, violations: &[FieldViolation]) -> Status {
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    with_info(Code::InvalidArgument, message, reason, HashMap::new(), details)
}

/// Maps a service error to its status.
pub fn to_status(err: ServiceError) -> Status {
    match err {
        ServiceError::Adapter(e) => bad_request(e.to_string(), &e.reason().to_ascii_uppercase(), &e.violations()),
        ServiceError::InvalidRequest(v) => {
            bad_request(ServiceError::InvalidRequest(v.clone()).to_string(), "INVALID_REQUEST", &v)
        }
        ServiceError::PayloadTooLarge { size, limit } => with_info(
            Code::ResourceExhausted,
            format!("payload of {size} bytes exceeds the limit of {limit} bytes"),
            "PAYLOAD_TOO_LARGE",
            HashMap::from([
                ("limit_bytes".to_string(), limit.to_string()),
                ("size_bytes".to_string(), size.to_string()),
            ]),
            ErrorDetails::new(),
        ),
        ServiceError::NotFound(what) => {
            with_info(Code::NotFound, format!("{what} not found"), "NOT_FOUND", HashMap::new(), ErrorDetails::new())
        }
        ServiceError::TooManySubscribers { limit } => {
            let mut details = ErrorDetails::new();
            details.set_retry_info(Some(Duration::from_secs(5)));
            with_info(
                Code::ResourceExhausted,
                format!("the tenant already has {limit} open subscriptions"),
                "TOO_MANY_SUBSCRIBERS",
                HashMap::from([("limit".to_string(), limit.to_string())]),
                details,
            )
        }
        ServiceError::Store(e) => store_status(e),
    }
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::CursorExpired { oldest } => with_info(
            Code::OutOfRange,
            format!(
                "the cursor is older than retention; the oldest available sequence is {oldest}; resubscribe with include_snapshot"
            ),
            "CURSOR_EXPIRED",
            HashMap::from([("oldest_sequence".to_string(), oldest.to_string())]),
            ErrorDetails::new(),
        ),
        StoreError::CursorAhead { cursor, last } => with_info(
            Code::OutOfRange,
            format!("after_sequence {cursor} is beyond the end of the log ({last}); the log may have been reset"),
            "CURSOR_AHEAD",
            HashMap::from([("last_sequence".to_string(), last.to_string())]),
            ErrorDetails::new(),
        ),
        StoreError::Unavailable(_) | StoreError::Closed => {
            tracing::warn!(error = %e, "store unavailable");
            let mut details = ErrorDetails::new();
            details.set_retry_info(Some(RETRY_DELAY));
            with_info(
                Code::Unavailable,
                "the event store is unavailable; retry with backoff".into(),
                "STORE_UNAVAILABLE",
                HashMap::new(),
                details,
            )
        }
        StoreError::Corrupt(_) | StoreError::Backend(_) => {
            tracing::error!(error = %e, "store failure");
            Status::internal("internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::AdapterError;

    #[test]
    fn adapter_errors_carry_a_bad_request_with_json_paths() {
        let s = to_status(ServiceError::Adapter(AdapterError::field("detail.callId", "required")));
        assert_eq!(s.code(), Code::InvalidArgument);
        let br = s.get_details_bad_request().unwrap();
        assert_eq!(br.field_violations[0].field, "detail.callId");
    }

    #[test]
    fn an_expired_cursor_is_out_of_range_with_error_info() {
        let s = to_status(ServiceError::Store(StoreError::CursorExpired { oldest: 7 }));
        assert_eq!(s.code(), Code::OutOfRange);
        let info = s.get_details_error_info().unwrap();
        assert_eq!(info.reason, "CURSOR_EXPIRED");
        assert_eq!(info.metadata["oldest_sequence"], "7");
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let s = to_status(ServiceError::Store(StoreError::Backend("disk I/O error at /secret".into())));
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("secret"));
    }

    #[test]
    fn an_unavailable_store_tells_clients_when_to_retry() {
        let s = to_status(ServiceError::Store(StoreError::Unavailable("down".into())));
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.get_details_retry_info().is_some());
    }
}
