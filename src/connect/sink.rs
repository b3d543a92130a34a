//! The Ingest side of a connector: sends one vendor frame, classifies the
//! answer, and retries what may succeed later.
//!
//! | Ingest answer | what the connector does |
//! |---|---|
//! | ACCEPTED, DUPLICATE, IGNORED | done: the frame may be acknowledged |
//! | INVALID_ARGUMENT | dead-lettered, then done (one bad message never blocks the stream) |
//! | UNAVAILABLE, RESOURCE_EXHAUSTED, no server, any other error | retried with backoff (the server's RetryInfo when it gives one); never acknowledged meanwhile |
//! | UNAUTHENTICATED, PERMISSION_DENIED | fatal: the connector stops with the reason (a retry cannot fix a credential) |

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tonic::Code;

use super::backoff::{Backoff, BackoffPolicy};
use super::dead_letter::DeadLetters;
use super::ops::Ops;
use crate::cli::Conn;
use crate::proto::v1 as pb;
use crate::proto::v1::ingest_service_client::IngestServiceClient;

/// One frame to ingest.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The vendor frame exactly as received.
    pub payload: Bytes,
    /// An idempotency key kept across retries (empty: the vendor identity,
    /// e.g. the Pulsar `messageId`, deduplicates).
    pub request_id: String,
    /// When the connector received it.
    pub received_at: SystemTime,
}

/// What became of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Ingest answered with this outcome.
    Ingested(pb::IngestOutcome),
    /// Ingest rejected it (INVALID_ARGUMENT); it is in the dead-letter file.
    DeadLettered,
}

/// Why a frame was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The connector is stopping (or the vendor session ended) before Ingest succeeded.
    #[error("cancelled before Ingest succeeded")]
    Cancelled,
    /// Ingest refused the connector's credential; retrying cannot help.
    #[error("Ingest refused the connector ({code:?}): {message}; check --token and --tenant")]
    Refused {
        /// The status code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// The dead-letter file could not be written, so the frame must not be acknowledged.
    #[error("cannot write the dead-letter file: {0}")]
    DeadLetter(#[from] std::io::Error),
}

/// How the connector treats an Ingest error.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Dead-letter and acknowledge.
    Reject,
    /// Retry after at least this long (the server's RetryInfo), or the backoff.
    Retry(Option<Duration>),
    /// Stop the connector.
    Fatal,
}

/// Classifies an Ingest error status.
pub fn classify(status: &tonic::Status) -> Verdict {
    match status.code() {
        Code::InvalidArgument => Verdict::Reject,
        Code::Unauthenticated | Code::PermissionDenied => Verdict::Fatal,
        _ => Verdict::Retry(tonic_types::StatusExt::get_details_retry_info(status).and_then(|r| r.retry_delay)),
    }
}

/// Sends frames of one vendor to Ingest.
#[derive(Clone)]
pub struct Sink {
    client: IngestServiceClient<Conn>,
    vendor: pb::Vendor,
    tenant: String,
    backoff: BackoffPolicy,
    dead_letters: Arc<DeadLetters>,
    ops: Arc<Ops>,
}

impl Sink {
    /// A sink over `channel` for `vendor`.
    pub fn new(
        channel: Conn,
        vendor: pb::Vendor,
        tenant: String,
        backoff: BackoffPolicy,
        dead_letters: Arc<DeadLetters>,
        ops: Arc<Ops>,
    ) -> Sink {
        Sink { client: IngestServiceClient::new(channel), vendor, tenant, backoff, dead_letters, ops }
    }

    /// Where rejected frames go.
    pub fn dead_letters_path(&self) -> &std::path::Path {
        self.dead_letters.path()
    }

    /// Ingests `frame`, retrying until Ingest gives a final answer or `cancel` fires.
    pub async fn deliver(&self, frame: &Frame, cancel: &CancellationToken) -> Result<Delivered, SinkError> {
        let request = pb::IngestRequest {
            vendor: self.vendor as i32,
            payload: frame.payload.clone(),
            tenant_id: self.tenant.clone(),
            request_id: frame.request_id.clone(),
            vendor_event_type: String::new(),
            received_at: Some(prost_types::Timestamp::from(frame.received_at)),
            agent_id: String::new(),
        };
        let mut backoff = Backoff::new(self.backoff);
        loop {
            let mut client = self.client.clone();
            let answer = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(SinkError::Cancelled),
                answer = client.ingest(request.clone()) => answer,
            };
            let status = match answer {
                Ok(resp) => {
                    self.ops.set_ingest_reachable(true);
                    let outcome = resp.get_ref().outcome();
                    self.ops.metrics.ingested(outcome);
                    return Ok(Delivered::Ingested(outcome));
                }
                Err(status) => status,
            };
            match classify(&status) {
                Verdict::Reject => {
                    self.ops.set_ingest_reachable(true);
                    self.ops.metrics.rejected();
                    self.dead_letters.append(&frame.payload, &status).await?;
                    self.ops.metrics.dead_lettered.increment(1);
                    tracing::warn!(
                        connector = self.ops.connector,
                        reason = status.message(),
                        dead_letters = %self.dead_letters.path().display(),
                        "Ingest rejected a frame; dead-lettered"
                    );
                    return Ok(Delivered::DeadLettered);
                }
                Verdict::Fatal => {
                    return Err(SinkError::Refused { code: status.code(), message: status.message().to_string() });
                }
                Verdict::Retry(hint) => {
                    if matches!(status.code(), Code::Unavailable | Code::Unknown | Code::Cancelled) {
                        self.ops.set_ingest_reachable(false);
                    }
                    let delay = backoff.next_delay().max(hint.unwrap_or_default());
                    self.ops.metrics.retries.increment(1);
                    tracing::warn!(
                        connector = self.ops.connector,
                        code = ?status.code(),
                        reason = status.message(),
                        attempt = backoff.attempts(),
                        retry_in = ?delay,
                        "Ingest failed; retrying (not acknowledged)"
                    );
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(SinkError::Cancelled),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_invalid_argument_is_dead_lettered_and_credentials_are_fatal() {
        assert_eq!(classify(&tonic::Status::invalid_argument("x")), Verdict::Reject);
        assert_eq!(classify(&tonic::Status::unavailable("x")), Verdict::Retry(None));
        assert_eq!(classify(&tonic::Status::resource_exhausted("x")), Verdict::Retry(None));
        assert_eq!(classify(&tonic::Status::internal("x")), Verdict::Retry(None));
        assert_eq!(classify(&tonic::Status::unauthenticated("x")), Verdict::Fatal);
        assert_eq!(classify(&tonic::Status::permission_denied("x")), Verdict::Fatal);
    }

    #[test]
    fn the_servers_retry_delay_is_honoured() {
        use tonic_types::{ErrorDetails, StatusExt};
        let status = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
        );
        assert_eq!(classify(&status), Verdict::Retry(Some(Duration::from_secs(2))));
    }
}
