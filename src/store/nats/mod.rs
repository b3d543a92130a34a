//! The `nats` store: NATS JetStream shared by N stateless replicas.
//!
//! * **Log**: one JetStream stream (file storage, replicas and retention from
//!   config) on subjects `<prefix>.<tenant>.<call>`; the `sequence` clients
//!   see is the stream sequence. Each message is the event's `CallUpdate`
//!   (the event and the call after it) stored without its position, which a
//!   reader appends ([`convert::sequence_suffix`]). `Nats-Msg-Id` is the
//!   event id, so the broker drops a re-published event within its
//!   duplicate window.
//! * **Call state**: a KV bucket, updated with compare-and-set on the entry's
//!   revision. **Dedup keys** and the **correlation index** (8x8 agent panel)
//!   are KV buckets too, with the dedup and correlation windows as TTLs.
//! * **Ordering across replicas**: an event is published with
//!   `Nats-Expected-Last-Subject-Sequence` = the last sequence of its call's
//!   subject that the replica based its state on. If another replica appended
//!   to the call meanwhile, the publish is refused and the replica reloads
//!   the call and re-applies the event. So each call's events are applied in
//!   exactly the order they are logged, and `call_sequence` stays gap-free,
//!   whichever replica takes them. Events of *different* calls are not
//!   ordered with each other beyond their stream sequence.
//! * **Fan-out**: each replica runs one ordered consumer over the whole
//!   stream, feeding its local hub (and its mirror of call state used for
//!   snapshots and listings), so a subscriber on any replica sees every
//!   event of every replica, in stream order.

mod access;
mod feed;
mod ingest;
mod subjects;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use async_nats::{Client, ConnectOptions};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{
    CallQuery, EntryCounts, IngestBatch, IngestResult, LogBounds, PruneStats, Record, Snapshot, Store, StoreError,
    StoreOptions,
};
use crate::domain::{Call, CallState, TenantId, VendorOrder};
use crate::hub::Hub;
use crate::store::tail::Tail;

pub use subjects::escape;

/// How many times an event is re-applied when other replicas keep winning
/// the race for its call.
const MAX_ATTEMPTS: usize = 32;
/// Recent messages re-read at start-up, so the call mirror catches call
/// state whose KV update was still in flight.
const MIRROR_CATCH_UP: u64 = 1000;
/// Header with the call state the wire form does not carry.
const BOOKKEEPING_HEADER: &str = "Switchboard-Call-Bookkeeping";

/// How to reach NATS and shape the JetStream objects.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password of `user`.
    pub password: Option<String>,
    /// Token authentication, instead of a user and password.
    pub token: Option<String>,
    /// Credentials file (JWT + NKey).
    pub creds_file: Option<PathBuf>,
    /// CA bundle for TLS to NATS.
    pub ca_file: Option<PathBuf>,
    /// Stream name; the KV buckets are named after it.
    pub stream: String,
    /// Subject prefix of the log.
    pub subject_prefix: String,
    /// Stream and bucket replicas (a NATS cluster).
    pub replicas: usize,
    /// The broker's duplicate window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// Stream size limit in bytes (`None`: unlimited).
    pub max_bytes: Option<u64>,
    /// Timeout of every NATS request (publish ack, KV, info).
    pub request_timeout: Duration,
}

/// The NATS URL of [`NatsOptions::default`]. `--nats-url` itself has no
/// default: `--store nats` requires it.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// `--nats-stream`.
pub const DEFAULT_NATS_STREAM: &str = "SWITCHBOARD";
/// `--nats-subject-prefix`.
pub const DEFAULT_NATS_SUBJECT_PREFIX: &str = "switchboard";
/// `--nats-stream-replicas`.
pub const DEFAULT_NATS_STREAM_REPLICAS: usize = 1;
/// `--nats-duplicate-window`.
pub const DEFAULT_NATS_DUPLICATE_WINDOW: Duration = Duration::from_secs(2 * 60);
/// `--nats-max-bytes` (0: no limit).
pub const DEFAULT_NATS_MAX_BYTES: u64 = 0;
/// `--nats-request-timeout`.
pub const DEFAULT_NATS_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for NatsOptions {
    /// The server's defaults, with the URL of a local nats-server.
    fn default() -> Self {
        NatsOptions {
            url: DEFAULT_NATS_URL.into(),
            user: None,
            password: None,
            token: None,
            creds_file: None,
            ca_file: None,
            stream: DEFAULT_NATS_STREAM.into(),
            subject_prefix: DEFAULT_NATS_SUBJECT_PREFIX.into(),
            replicas: DEFAULT_NATS_STREAM_REPLICAS,
            duplicate_window: DEFAULT_NATS_DUPLICATE_WINDOW,
            max_bytes: Some(DEFAULT_NATS_MAX_BYTES).filter(|n| *n > 0),
            request_timeout: DEFAULT_NATS_REQUEST_TIMEOUT,
        }
    }
}

/// Call state the protobuf `Call` does not carry; travels in a header so a
/// call can be rebuilt from its last message.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Bookkeeping {
    #[serde(default)]
    first_sequence: u64,
    #[serde(default)]
    vendor_order: Option<VendorOrder>,
    #[serde(default)]
    last_vendor_time: Option<DateTime<Utc>>,
    #[serde(default)]
    hold_started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    correlation_key: Option<String>,
}

impl Bookkeeping {
    /// What a call's messages carry beside its protobuf state.
    fn of(call: &Call) -> Bookkeeping {
        Bookkeeping {
            first_sequence: call.first_sequence,
            vendor_order: call.vendor_order.clone(),
            last_vendor_time: call.last_vendor_time,
            hold_started_at: call.hold_started_at,
            correlation_key: call.correlation_key.clone(),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Local view of call state, fed by the replica's consumer, in stream order.
#[derive(Default)]
struct Mirror {
    /// Every call this replica has seen. Bound: active calls plus ended calls
    /// with an event still in the stream and younger than
    /// `--retention-max-age`; prune (every `--retention-interval`) drops the
    /// rest, so count retention (`--retention-max-events`) bounds it too.
    calls: HashMap<(String, String), Call>,
    /// The last stream sequence applied.
    head: u64,
}

struct Inner {
    client: Client,
    stream: stream::Stream,
    calls: kv::Store,
    dedup: kv::Store,
    correlation: kv::Store,
    hub: Arc<Hub>,
    opts: StoreOptions,
    nats: NatsOptions,
    mirror: Mutex<Mirror>,
    feeding: AtomicBool,
    /// The newest records this replica's consumer published to its hub
    /// (`--replay-cache-bytes`): a subscriber that lagged behind its queue,
    /// or reconnects with a recent cursor, reads them from memory instead
    /// of creating a JetStream consumer of its own. Complete after the head
    /// at open; records at or below it are never published here, so a read
    /// that starts below it goes to the stream.
    tail: Tail,
}

/// The JetStream store.
pub struct NatsStore {
    inner: Arc<Inner>,
    stop: CancellationToken,
    feeder: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Connects with the configured credentials; async-nats reconnects on its own
/// afterwards. `reconnected` ticks on every (re)connection, so the consumer
/// can be recreated at once instead of waiting for missed heartbeats.
async fn connect(n: &NatsOptions, reconnected: tokio::sync::watch::Sender<u64>) -> Result<Client, StoreError> {
    let mut co =
        ConnectOptions::new().name("switchboard").connection_timeout(n.request_timeout).event_callback(move |event| {
            let reconnected = reconnected.clone();
            async move {
                match event {
                    async_nats::Event::Disconnected => tracing::warn!("NATS connection lost; reconnecting"),
                    async_nats::Event::Connected => {
                        tracing::info!("NATS connected");
                        reconnected.send_modify(|n| *n += 1);
                    }
                    other => tracing::debug!(event = %other, "NATS event"),
                }
            }
        });
    if let (Some(u), Some(p)) = (&n.user, &n.password) {
        co = co.user_and_password(u.clone(), p.clone());
    }
    if let Some(t) = &n.token {
        co = co.token(t.clone());
    }
    if let Some(path) = &n.creds_file {
        co = co
            .credentials_file(path)
            .await
            .map_err(|e| StoreError::Backend(format!("NATS credentials {}: {e}", path.display())))?;
    }
    if let Some(ca) = &n.ca_file {
        co = co.add_root_certificates(ca.clone()).require_tls(true);
    }
    let urls: Vec<&str> = n.url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    co.connect(urls.as_slice()).await.map_err(|e| unavailable(format!("cannot connect to NATS at {}: {e}", n.url)))
}

impl NatsStore {
    /// Connects, creates (or updates) the stream and buckets, loads the call
    /// mirror and starts this replica's consumer.
    pub async fn open(nats: NatsOptions, hub: Arc<Hub>, opts: StoreOptions) -> Result<NatsStore, StoreError> {
        let (reconnected_tx, reconnected) = tokio::sync::watch::channel(0u64);
        let client = connect(&nats, reconnected_tx).await?;
        let js = jetstream::ContextBuilder::new().timeout(nats.request_timeout).build(client.clone());
        let stream_cfg = stream::Config {
            name: nats.stream.clone(),
            subjects: vec![format!("{}.>", nats.subject_prefix)],
            storage: stream::StorageType::File,
            num_replicas: nats.replicas,
            max_age: opts.retention_max_age.unwrap_or_default(),
            max_messages: opts.retention_max_events.map_or(-1, |n| n as i64),
            max_bytes: nats.max_bytes.map_or(-1, |n| n as i64),
            duplicate_window: nats.duplicate_window,
            allow_direct: true,
            ..Default::default()
        };
        js.create_or_update_stream(stream_cfg)
            .await
            .map_err(|e| unavailable(format!("cannot create stream {}: {e}", nats.stream)))?;
        let stream = js.get_stream(&nats.stream).await.map_err(unavailable)?;
        let kv = |suffix: &str, max_age: Duration| {
            let js = js.clone();
            let bucket = format!("{}_{suffix}", nats.stream);
            let replicas = nats.replicas;
            async move { key_value(&js, &bucket, max_age, replicas).await }
        };
        let head = stream.get_info().await.map_err(unavailable)?.state.last_sequence;
        let calls = kv("CALLS", opts.retention_max_age.unwrap_or_default()).await?;
        let dedup = kv("DEDUP", opts.dedup_window).await?;
        let correlation = kv("CORRELATION", opts.correlation_window * 2).await?;
        let inner = Arc::new(Inner {
            client,
            stream,
            calls,
            dedup,
            correlation,
            hub,
            nats,
            mirror: Mutex::new(Mirror::default()),
            feeding: AtomicBool::new(false),
            tail: Tail::new(opts.replay_cache_bytes, head),
            opts,
        });
        inner.load_mirror(head).await?;
        inner.hub.set_head(head);
        let stop = CancellationToken::new();
        let feeder = tokio::spawn(feed::feed(
            inner.clone(),
            head.saturating_sub(MIRROR_CATCH_UP),
            head,
            reconnected,
            stop.clone(),
        ));
        tracing::info!(stream = %inner.nats.stream, url = %inner.nats.url, last_sequence = head, "nats store open");
        Ok(NatsStore { inner, stop, feeder: Mutex::new(Some(feeder)) })
    }
}

/// Creates (or updates) a KV bucket. The stream is configured here with the
/// KV conventions (`KV_<bucket>`, `$KV.<bucket>.>`, one value per key,
/// rollups, discard new) because async-nats' own helper first queries
/// account information in a form older servers (the Debian nats-server
/// 2.9) do not answer.
async fn key_value(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, StoreError> {
    let cfg = stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        duplicate_window: if max_age.is_zero() {
            Duration::from_secs(120)
        } else {
            max_age.min(Duration::from_secs(120))
        },
        ..Default::default()
    };
    js.create_or_update_stream(cfg).await.map_err(|e| unavailable(format!("cannot create KV bucket {bucket}: {e}")))?;
    js.get_key_value(bucket).await.map_err(|e| unavailable(format!("cannot open KV bucket {bucket}: {e}")))
}

impl Inner {
    async fn info(&self) -> Result<stream::Info, StoreError> {
        self.stream.get_info().await.map_err(unavailable)
    }

    fn connected(&self) -> Result<(), StoreError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(StoreError::Unavailable(format!("NATS is {state}"))),
        }
    }

    async fn read(&self, tenant: &TenantId, after: u64, limit: usize) -> Result<Vec<Arc<Record>>, StoreError> {
        let info = self.info().await?;
        let pruned_through = info.state.first_sequence.saturating_sub(1);
        if after < pruned_through {
            return Err(StoreError::CursorExpired { oldest: pruned_through + 1 });
        }
        if after >= info.state.last_sequence {
            return Ok(Vec::new());
        }
        // The tail only after the retention check above: it may still hold
        // records the stream's limits removed, and a cursor below them is
        // expired on every replica alike.
        if let Some(records) = self.tail.read(tenant.as_str(), after, limit) {
            // What this replica's hub has published past `after`; anything
            // newer reaches a registered subscriber through the hub.
            return Ok(records);
        }
        let cfg = consumer::pull::OrderedConfig {
            filter_subject: subjects::tenant_filter(&self.nats.subject_prefix, tenant.as_str()),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: after + 1 },
            ..Default::default()
        };
        let mut consumer = self.stream.create_consumer(cfg).await.map_err(unavailable)?;
        let info = consumer.info().await.map_err(unavailable)?.clone();
        let pending = info.num_pending as usize;
        if pending == 0 {
            let _ = self.stream.delete_consumer(&info.name).await;
            return Ok(Vec::new());
        }
        let want = pending.min(limit);
        let mut messages = consumer.messages().await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            // A message that does not come was removed by retention meanwhile:
            // stop, and let the check below tell.
            let Ok(next) = tokio::time::timeout(self.nats.request_timeout, messages.next()).await else { break };
            match next {
                Some(Ok(msg)) => {
                    let seq = msg.info().map_err(unavailable)?.stream_sequence;
                    out.push(self.to_record(seq, &msg.payload, msg.headers.as_ref())?.0);
                }
                Some(Err(e)) => return Err(unavailable(e)),
                None => break,
            }
        }
        drop(messages);
        let stream = self.stream.clone();
        tokio::spawn(async move {
            let _ = stream.delete_consumer(&info.name).await;
        });
        // Retention may have removed events after `after` while the consumer
        // was created: it would have skipped them silently.
        let first = self.info().await?.state.first_sequence;
        if first.saturating_sub(1) > after {
            return Err(StoreError::CursorExpired { oldest: first });
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for NatsStore {
    async fn ingest(&self, batch: IngestBatch) -> Result<IngestResult, StoreError> {
        self.inner.ingest(batch).await
    }

    async fn read(&self, tenant: &TenantId, after: u64, limit: usize) -> Result<Vec<Arc<Record>>, StoreError> {
        self.inner.read(tenant, after, limit).await
    }

    async fn bounds(&self) -> Result<LogBounds, StoreError> {
        let state = self.inner.info().await?.state;
        let pruned_through = state.first_sequence.saturating_sub(1);
        Ok(LogBounds {
            last: state.last_sequence,
            pruned_through,
            pruned_through_time: (pruned_through > 0).then_some(state.first_timestamp),
        })
    }

    async fn seek_time(&self, tenant: &TenantId, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let b = self.bounds().await?;
        if b.pruned_through_time.is_some_and(|t| t >= since) {
            return Err(StoreError::CursorExpired { oldest: b.oldest_available() });
        }
        let cfg = consumer::pull::OrderedConfig {
            filter_subject: subjects::tenant_filter(&self.inner.nats.subject_prefix, tenant.as_str()),
            deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time: since },
            ..Default::default()
        };
        let mut consumer = self.inner.stream.create_consumer(cfg).await.map_err(unavailable)?;
        let info = consumer.info().await.map_err(unavailable)?.clone();
        let mut cursor = b.last;
        if info.num_pending > 0 {
            let mut messages = consumer.messages().await.map_err(unavailable)?;
            if let Ok(Some(Ok(msg))) = tokio::time::timeout(self.inner.nats.request_timeout, messages.next()).await {
                cursor = msg.info().map_err(unavailable)?.stream_sequence - 1;
            }
        }
        let _ = self.inner.stream.delete_consumer(&info.name).await;
        Ok(cursor.max(b.pruned_through))
    }

    async fn get_call(&self, tenant: &TenantId, call_id: &str) -> Result<Option<Call>, StoreError> {
        Ok(self.inner.call_entry(tenant, call_id).await?.map(|(c, _)| c))
    }

    async fn list_calls(&self, tenant: &TenantId, query: &CallQuery) -> Result<Vec<Call>, StoreError> {
        let m = self.inner.mirror.lock().unwrap_or_else(|p| p.into_inner());
        let mine = m.calls.iter().filter(|((t, _), _)| t == tenant.as_str()).map(|(_, c)| c);
        Ok(crate::store::list_page(mine, query))
    }

    async fn snapshot(&self, tenant: &TenantId) -> Result<Snapshot, StoreError> {
        let m = self.inner.mirror.lock().unwrap_or_else(|p| p.into_inner());
        let mine = m.calls.iter().filter(|((t, _), _)| t == tenant.as_str()).map(|(_, c)| c);
        Ok(Snapshot { calls: crate::store::active_calls(mine), as_of: m.head })
    }

    async fn idle_calls(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Call>, StoreError> {
        // The mirror may be a moment behind: the expiry names the state it
        // saw, and the plan drops it when the call has moved on.
        let m = self.inner.mirror.lock().unwrap_or_else(|p| p.into_inner());
        Ok(crate::store::idle_calls(m.calls.values(), before, limit))
    }

    async fn prune(&self, now: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        // JetStream enforces retention on the log and the buckets; only the
        // local mirror needs trimming. An ended call goes when retention
        // removed its last event (count or age, as in the other stores), or
        // by age alone.
        let max_age = self.inner.opts.retention_max_age.and_then(|a| chrono::Duration::from_std(a).ok());
        if max_age.is_none() && self.inner.opts.retention_max_events.is_none() {
            return Ok(PruneStats::default());
        }
        let pruned_through = self.inner.info().await?.state.first_sequence.saturating_sub(1);
        let oldest = max_age.and_then(|a| now.checked_sub_signed(a));
        let mut m = self.inner.mirror.lock().unwrap_or_else(|p| p.into_inner());
        let before = m.calls.len();
        m.calls.retain(|_, c| {
            c.state != CallState::Ended
                || (c.last_sequence > pruned_through && oldest.is_none_or(|o| c.updated_at >= o))
        });
        Ok(PruneStats { calls: (before - m.calls.len()) as u64, ..PruneStats::default() })
    }

    async fn entry_counts(&self) -> Result<EntryCounts, StoreError> {
        let events = self.inner.info().await?.state.messages;
        let calls = self.inner.mirror.lock().unwrap_or_else(|p| p.into_inner()).calls.len() as u64;
        Ok(EntryCounts { events, calls, ..EntryCounts::default() })
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.stop.cancel();
        let feeder = self.feeder.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(f) = feeder {
            let _ = f.await;
        }
        let _ = self.inner.client.flush().await;
        Ok(())
    }

    fn is_healthy(&self) -> bool {
        self.inner.connected().is_ok() && self.inner.feeding.load(Ordering::Acquire)
    }

    fn kind(&self) -> &'static str {
        "nats"
    }

    fn replay_batch(&self) -> usize {
        2048
    }
}
