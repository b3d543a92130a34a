//! `switchboard.v1.CallService`: Subscribe, GetCall, ListCalls.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::status::{bad_request, to_status};
use super::wire::EncodedResponse;
use super::{convert, tenancy};
use crate::adapters::FieldViolation;
use crate::domain::{Direction, EventFilter, EventType, Vendor};
use crate::proto::v1 as pb;
use crate::service::ServiceError;
use crate::service::Services;
use crate::service::subscribe::{Start, SubscribeSpec};
use crate::store::{CallQuery, StateFilter};

/// Bounds of a per-stream heartbeat override.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);

/// The CallService implementation.
#[derive(Clone)]
pub struct CallApi {
    services: Arc<Services>,
}

impl CallApi {
    /// Serves calls on `services`.
    pub fn new(services: Arc<Services>) -> CallApi {
        CallApi { services }
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

    fn finish(self) -> Result<(), Status> {
        if self.0.is_empty() { Ok(()) } else { Err(to_status(ServiceError::InvalidRequest(self.0))) }
    }
}

fn filter(f: Option<pb::SubscribeFilter>, v: &mut Violations) -> EventFilter {
    let f = f.unwrap_or_default();
    let ids = |field: &str, xs: Vec<String>, v: &mut Violations| {
        for (i, x) in xs.iter().enumerate() {
            if x.is_empty() {
                v.add(format!("filter.{field}[{i}]"), "must not be empty");
            }
        }
        xs.into_iter().collect::<HashSet<_>>()
    };
    EventFilter {
        types: v.enums("filter.types", &f.types, EventType::from_number),
        vendors: v.enums("filter.vendors", &f.vendors, Vendor::from_number),
        directions: v.enums("filter.directions", &f.directions, Direction::from_number),
        call_ids: ids("call_ids", f.call_ids, v),
        conversation_ids: ids("conversation_ids", f.conversation_ids, v),
        agent_ids: ids("agent_ids", f.agent_ids, v),
        queue_ids: ids("queue_ids", f.queue_ids, v),
    }
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<EncodedResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::call_service_server::CallService for CallApi {
    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let tenant = tenancy::resolve(&request, &request.get_ref().tenant_id)?;
        let req = request.into_inner();
        let mut v = Violations::default();
        let filter = filter(req.filter, &mut v);
        let start = match req.start {
            None => Start::Live,
            Some(pb::subscribe_request::Start::AfterSequence(n)) => Start::After(n),
            Some(pb::subscribe_request::Start::FromBeginning(true)) => Start::FromBeginning,
            Some(pb::subscribe_request::Start::FromBeginning(false)) => Start::Live,
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
        Ok(Response::new(Box::pin(stream.map(|r| r.map_err(|e| to_status(ServiceError::Store(e)))))))
    }

    async fn get_call(&self, request: Request<pb::GetCallRequest>) -> Result<Response<pb::GetCallResponse>, Status> {
        let tenant = tenancy::resolve(&request, &request.get_ref().tenant_id)?;
        let call = self.services.get_call(&tenant, &request.get_ref().call_id).await.map_err(to_status)?;
        Ok(Response::new(pb::GetCallResponse { call: Some(convert::call(&call)) }))
    }

    async fn list_calls(
        &self,
        request: Request<pb::ListCallsRequest>,
    ) -> Result<Response<pb::ListCallsResponse>, Status> {
        let tenant = tenancy::resolve(&request, &request.get_ref().tenant_id)?;
        let req = request.into_inner();
        let f = req.filter.unwrap_or_default();
        let bad = |field: &str, n: i32| {
            bad_request(
                format!("{field}: unknown value {n}"),
                "INVALID_REQUEST",
                &[FieldViolation::new(field, format!("unknown value {n}"))],
            )
        };
        let state = match pb::CallStateFilter::try_from(f.state) {
            Ok(pb::CallStateFilter::Unspecified | pb::CallStateFilter::Any) => StateFilter::Any,
            Ok(pb::CallStateFilter::Active) => StateFilter::Active,
            Ok(pb::CallStateFilter::Ended) => StateFilter::Ended,
            Err(_) => return Err(bad("filter.state", f.state)),
        };
        let vendor = match f.vendor {
            0 => None,
            n => Some(Vendor::from_number(n).ok_or_else(|| bad("filter.vendor", n))?),
        };
        let direction = match f.direction {
            0 => None,
            n => Some(Direction::from_number(n).ok_or_else(|| bad("filter.direction", n))?),
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
