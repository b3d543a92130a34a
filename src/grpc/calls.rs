//! `switchboard.v1.CallService`: Subscribe, GetCall, ListCalls.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::access::{RateLimiter, authorize};
use super::status::{bad_request, to_status};
use crate::adapters::FieldViolation;
use crate::auth::Role;
use crate::codec::convert;
use crate::codec::proto::v1 as pb;
use crate::codec::wire::EncodedResponse;
use crate::domain::{Direction, EventFilter, EventType, Vendor};
use crate::service::subscribe::{Start, SubscribeSpec};
use crate::service::{ServiceError, Services};
use crate::store::{CallQuery, StateFilter};

/// Bounds of a per-stream heartbeat override.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);

/// The CallService implementation.
#[derive(Clone)]
pub struct CallApi {
    services: Arc<Services>,
    limiter: Arc<RateLimiter>,
}

impl CallApi {
    /// Serves calls on `services`, admitting requests through `limiter`.
    pub fn new(services: Arc<Services>, limiter: Arc<RateLimiter>) -> CallApi {
        CallApi { services, limiter }
    }
}

/// Collects field violations while converting a request.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn add(&mut self, field: String, why: impl Into<String>) {
        self.0.push(FieldViolation::new(field, why));
    }

    fn enums<T: std::hash::Hash + Eq>(
        &mut self,
        field: &str,
        values: &[i32],
        conv: impl Fn(i32) -> Option<T>,
    ) -> HashSet<T> {
        let mut out = HashSet::new();
        for (i, v) in values.iter().enumerate() {
            match conv(*v) {
                Some(t) => {
                    out.insert(t);
                }
                None => self.add(format!("{field}[{i}]"), format!("unknown or unspecified value {v}")),
            }
        }
        out
    }

    fn ids(&mut self, field: &str, values: Vec<String>) -> HashSet<String> {
        for (i, x) in values.iter().enumerate() {
            if x.is_empty() {
                self.add(format!("filter.{field}[{i}]"), "must not be empty");
            }
        }
        values.into_iter().collect()
    }

    fn finish(self) -> Result<(), Status> {
        if self.0.is_empty() { Ok(()) } else { Err(to_status(ServiceError::InvalidRequest(self.0))) }
    }
}

fn filter(f: Option<pb::SubscribeFilter>, v: &mut Violations) -> EventFilter {
    let f = f.unwrap_or_default();
    EventFilter {
        types: v.enums("filter.types", &f.types, EventType::from_number),
        vendors: v.enums("filter.vendors", &f.vendors, Vendor::from_number),
        directions: v.enums("filter.directions", &f.directions, Direction::from_number),
        call_ids: v.ids("call_ids", f.call_ids),
        conversation_ids: v.ids("conversation_ids", f.conversation_ids),
        agent_ids: v.ids("agent_ids", f.agent_ids),
        queue_ids: v.ids("queue_ids", f.queue_ids),
    }
}

/// The client's deadline (`grpc-timeout`). tonic enforces it for unary calls;
/// a Subscribe stream honours it by ending with DEADLINE_EXCEEDED.
fn deadline(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let v = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok().filter(|_| digits.len() <= 8)?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<EncodedResponse, Status>> + Send>>;

fn invalid_enum(field: &str, n: i32) -> Status {
    let why = format!("unknown value {n}");
    bad_request(format!("{field}: {why}"), "INVALID_REQUEST", &[FieldViolation::new(field, why)])
}

impl CallApi {
    async fn open_subscription(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<SubscribeStream>, Status> {
        let tenant = authorize(&request, &request.get_ref().tenant_id, Role::Subscribe, &self.limiter)?;
        tracing::Span::current().record("tenant", tenant.as_str());
        let deadline = deadline(request.metadata());
        let req = request.into_inner();
        let mut v = Violations::default();
        let filter = filter(req.filter, &mut v);
        let start = match req.start {
            None | Some(pb::subscribe_request::Start::FromBeginning(false)) => Start::Live,
            Some(pb::subscribe_request::Start::AfterSequence(n)) => Start::After(n),
            Some(pb::subscribe_request::Start::FromBeginning(true)) => Start::FromBeginning,
            Some(pb::subscribe_request::Start::Since(t)) => match convert::from_timestamp(&t) {
                Some(t) => Start::Since(t),
                None => {
                    v.add("since".into(), "out of range");
                    Start::Live
                }
            },
        };
        let heartbeat = match req.heartbeat_interval.as_ref().map(convert::from_duration) {
            None => None,
            Some(Some(d)) if (MIN_HEARTBEAT..=MAX_HEARTBEAT).contains(&d) => Some(d),
            Some(_) => {
                v.add("heartbeat_interval".into(), "must be between 100ms and 1h");
                None
            }
        };
        v.finish()?;
        let spec = SubscribeSpec {
            tenant,
            filter: Arc::new(filter),
            start,
            include_snapshot: req.include_snapshot,
            heartbeat,
        };
        let stream = self.services.subscribe(spec).await.map_err(to_status)?;
        let stream = stream.map(|r| r.map_err(|e| to_status(ServiceError::Store(e))));
        Ok(Response::new(match deadline {
            None => Box::pin(stream),
            Some(d) => Box::pin(stream.take_until(tokio::time::sleep(d)).chain(futures_util::stream::once(async {
                Err(Status::deadline_exceeded("the subscription reached the client's deadline"))
            }))),
        }))
    }

    async fn get(&self, request: Request<pb::GetCallRequest>) -> Result<Response<pb::GetCallResponse>, Status> {
        let tenant = authorize(&request, &request.get_ref().tenant_id, Role::Query, &self.limiter)?;
        let span = tracing::Span::current();
        span.record("tenant", tenant.as_str());
        span.record("call_id", request.get_ref().call_id.as_str());
        let call = self.services.get_call(&tenant, &request.get_ref().call_id).await.map_err(to_status)?;
        Ok(Response::new(pb::GetCallResponse { call: Some(convert::call(&call)) }))
    }

    async fn list(&self, request: Request<pb::ListCallsRequest>) -> Result<Response<pb::ListCallsResponse>, Status> {
        let tenant = authorize(&request, &request.get_ref().tenant_id, Role::Query, &self.limiter)?;
        tracing::Span::current().record("tenant", tenant.as_str());
        let req = request.into_inner();
        let f = req.filter.unwrap_or_default();
        let state = match pb::CallStateFilter::try_from(f.state) {
            Ok(pb::CallStateFilter::Unspecified | pb::CallStateFilter::Any) => StateFilter::Any,
            Ok(pb::CallStateFilter::Active) => StateFilter::Active,
            Ok(pb::CallStateFilter::Ended) => StateFilter::Ended,
            Err(_) => return Err(invalid_enum("filter.state", f.state)),
        };
        let vendor = match f.vendor {
            0 => None,
            n => Some(Vendor::from_number(n).ok_or_else(|| invalid_enum("filter.vendor", n))?),
        };
        let direction = match f.direction {
            0 => None,
            n => Some(Direction::from_number(n).ok_or_else(|| invalid_enum("filter.direction", n))?),
        };
        let query = CallQuery {
            state,
            vendor,
            direction,
            agent_id: Some(f.agent_id).filter(|s| !s.is_empty()),
            queue_id: Some(f.queue_id).filter(|s| !s.is_empty()),
            before_first_sequence: None,
            limit: 0,
        };
        let (calls, next_page_token) =
            self.services.list_calls(&tenant, query, req.page_size, &req.page_token).await.map_err(to_status)?;
        Ok(Response::new(pb::ListCallsResponse { calls: calls.iter().map(convert::call).collect(), next_page_token }))
    }
}

#[tonic::async_trait]
impl pb::call_service_server::CallService for CallApi {
    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        self.open_subscription(request).await
    }

    async fn get_call(&self, request: Request<pb::GetCallRequest>) -> Result<Response<pb::GetCallResponse>, Status> {
        self.get(request).await
    }

    async fn list_calls(
        &self,
        request: Request<pb::ListCallsRequest>,
    ) -> Result<Response<pb::ListCallsResponse>, Status> {
        self.list(request).await
    }
}
