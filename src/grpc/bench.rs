//! `switchboard.bench.v1.BenchService`: the no-op baselines a load generator
//! measures in the same run as Ingest and Subscribe (BENCHMARKS.md). Compiled
//! only with the `bench` cargo feature (which the load tool, `tools/load`,
//! turns on) and served only with `--enable-bench-service`.
//!
//! * `Noop` decodes an `IngestRequest`-shaped message (tonic and prost do
//!   that before the handler) and answers with a counter: the unary floor.
//! * `NoopPublish` wraps the client's encoded `CallUpdate` into a frame once
//!   and hands it to a [`Hub`] of its own; `NoopSubscribe` streams those
//!   frames with the pre-encoded codec of Subscribe: the fan-out floor,
//!   without parse, normalize or log append.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::codec::Record;
use crate::codec::proto::bench::v1 as pb;
use crate::codec::wire::EncodedResponse;
use crate::domain::{EventFilter, EventMeta};
use crate::hub::Hub;

/// The tenant name of the bench hub (it has no tenants of its own).
const TENANT: &str = "bench";

/// The BenchService implementation.
#[derive(Clone)]
pub struct BenchApi {
    inner: Arc<Inner>,
}

struct Inner {
    noops: AtomicU64,
    hub: Arc<Hub>,
    /// The last sequence published; held while publishing so the hub sees
    /// records in order from one caller at a time, as the stores do.
    published: Mutex<u64>,
    filter: Arc<EventFilter>,
    shutdown: CancellationToken,
}

impl BenchApi {
    /// A bench service whose streams queue `buffer` updates each and end on
    /// `shutdown`.
    pub fn new(buffer: usize, shutdown: CancellationToken) -> BenchApi {
        BenchApi {
            inner: Arc::new(Inner {
                noops: AtomicU64::new(0),
                hub: Hub::new(buffer),
                published: Mutex::new(0),
                filter: Arc::new(EventFilter::default()),
                shutdown,
            }),
        }
    }
}

type NoopStream = Pin<Box<dyn Stream<Item = Result<EncodedResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::bench_service_server::BenchService for BenchApi {
    async fn noop(&self, _request: Request<pb::NoopRequest>) -> Result<Response<pb::NoopResponse>, Status> {
        let count = self.inner.noops.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Response::new(pb::NoopResponse { count }))
    }

    async fn noop_publish(
        &self,
        request: Request<pb::NoopPublishRequest>,
    ) -> Result<Response<pb::NoopPublishResponse>, Status> {
        let update = request.into_inner().update;
        let mut last = self.inner.published.lock().unwrap_or_else(|p| p.into_inner());
        let sequence = *last + 1;
        let record =
            Arc::new(Record::from_parts(sequence, TENANT.into(), chrono::Utc::now(), EventMeta::default(), &update));
        self.inner.hub.publish(&[record]);
        *last = sequence;
        let subscribers = self.inner.hub.subscribers() as u64;
        Ok(Response::new(pb::NoopPublishResponse { sequence, subscribers }))
    }

    type NoopSubscribeStream = NoopStream;

    async fn noop_subscribe(
        &self,
        request: Request<pb::NoopSubscribeRequest>,
    ) -> Result<Response<Self::NoopSubscribeStream>, Status> {
        let req = request.into_inner();
        let replay = EncodedResponse(crate::codec::record::update_frame(&req.replay_update));
        let mut feed = self.inner.hub.subscribe(TENANT, self.inner.filter.clone(), None);
        let shutdown = self.inner.shutdown.clone();
        let stream = async_stream::stream! {
            for _ in 0..req.replay_count {
                if shutdown.is_cancelled() {
                    return;
                }
                yield Ok(replay.clone());
            }
            let mut cancelled = std::pin::pin!(shutdown.cancelled());
            loop {
                let next = tokio::select! {
                    biased;
                    _ = &mut cancelled => return,
                    r = feed.recv_record() => r,
                };
                match next {
                    Some(r) => yield Ok(EncodedResponse(r.frame().clone())),
                    None => {
                        yield Err(Status::resource_exhausted("the stream fell behind its queue"));
                        return;
                    }
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}
