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

mod subjects;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use async_nats::{Client, ConnectOptions, HeaderMap};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::planner::{CORRELATION_CANDIDATES, DedupEntry};
use super::{
    CallQuery, IngestBatch, IngestOutcome, IngestResult, LogBounds, PruneStats, Record, Snapshot, Store, StoreError,
    StoreOptions,
};
use crate::domain::identity::event_id;
use crate::domain::lifecycle::{self, Applied, ApplyContext};
use crate::domain::{Call, CallRef, CallState, EventMeta, EventType, Identity, TenantId, VendorOrder};
use crate::grpc::convert;
use crate::hub::Hub;
use crate::proto::v1 as pb;

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
    /// Password.
    pub password: Option<String>,
    /// Token.
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

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            url: "nats://127.0.0.1:4222".into(),
            user: None,
            password: None,
            token: None,
            creds_file: None,
            ca_file: None,
            stream: "SWITCHBOARD".into(),
            subject_prefix: "switchboard".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_bytes: None,
            request_timeout: Duration::from_secs(5),
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

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Local view of call state, fed by the replica's consumer, in stream order.
#[derive(Default)]
struct Mirror {
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
            opts,
            nats,
            mirror: Mutex::new(Mirror::default()),
            feeding: AtomicBool::new(false),
        });
        let head = inner.info().await?.state.last_sequence;
        inner.load_mirror(head).await?;
        inner.hub.set_head(head);
        let stop = CancellationToken::new();
        let feeder =
            tokio::spawn(feed(inner.clone(), head.saturating_sub(MIRROR_CATCH_UP), head, reconnected, stop.clone()));
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

/// This replica's consumer: every message of the stream, in order, into the
/// mirror and (past `publish_after`) the hub. Recreated from the next
/// sequence after any error, so a NATS restart resumes without gap or
/// duplicate.
async fn feed(
    inner: Arc<Inner>,
    start_after: u64,
    publish_after: u64,
    mut reconnected: tokio::sync::watch::Receiver<u64>,
    stop: CancellationToken,
) {
    let mut next = start_after + 1;
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let cfg = consumer::pull::OrderedConfig {
            filter_subject: format!("{}.>", inner.nats.subject_prefix),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: next },
            ..Default::default()
        };
        let messages = match inner.stream.create_consumer(cfg).await {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                inner.feeding.store(false, Ordering::Release);
                tracing::warn!(error = %e, "cannot start the stream consumer; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        inner.feeding.store(true, Ordering::Release);
        backoff = Duration::from_millis(100);
        reconnected.mark_unchanged();
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return,
                _ = reconnected.changed() => {
                    tracing::info!("NATS reconnected; resuming the stream consumer at {next}");
                    break;
                }
                m = messages.next() => m,
            };
            match msg {
                Some(Ok(msg)) => {
                    let Ok(info) = msg.info() else { continue };
                    let seq = info.stream_sequence;
                    if seq < next {
                        continue;
                    }
                    match inner.to_record(seq, &msg.payload, msg.headers.as_ref()) {
                        Ok((record, call)) => inner.apply_to_mirror(record, call, seq > publish_after),
                        Err(e) => {
                            tracing::error!(sequence = seq, error = %e, "undecodable message in the stream; skipped")
                        }
                    }
                    next = seq + 1;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "stream consumer interrupted; resuming at {next}");
                    break;
                }
                None => break,
            }
        }
        inner.feeding.store(false, Ordering::Release);
    }
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

    /// A logged message as a record, and the call after it.
    fn to_record(
        &self,
        seq: u64,
        payload: &Bytes,
        headers: Option<&HeaderMap>,
    ) -> Result<(Arc<Record>, Option<Call>), StoreError> {
        let update = pb::CallUpdate::decode(payload.as_ref()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let event = update.event.as_ref().ok_or_else(|| StoreError::Corrupt("message without an event".into()))?;
        let mut agent_ids = update.call.as_ref().map(|c| c.agent_ids.clone()).unwrap_or_default();
        if !event.agent_id.is_empty() && !agent_ids.contains(&event.agent_id) {
            agent_ids.push(event.agent_id.clone());
        }
        let queue_id = update
            .call
            .as_ref()
            .map(|c| c.queue_id.clone())
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| event.queue_id.clone());
        let direction = match event.direction {
            0 => update.call.as_ref().map_or(0, |c| c.direction),
            d => d,
        };
        let meta = EventMeta {
            call_id: event.call_id.clone(),
            conversation_id: event.conversation_id.clone(),
            event_type: EventType::from_number(event.r#type),
            vendor: crate::domain::Vendor::from_number(event.vendor),
            direction: crate::domain::Direction::from_number(direction),
            agent_ids,
            queue_id,
        };
        let received_at = event.received_at.as_ref().and_then(convert::from_timestamp).unwrap_or_default();
        let mut bytes = payload.to_vec();
        bytes.extend(convert::sequence_suffix(seq, update.call.is_some()));
        let record = Arc::new(Record::from_parts(seq, event.tenant_id.clone(), received_at, meta, &bytes));
        let call = update.call.as_ref().map(|c| {
            let mut call = convert::call_from_pb(c);
            call.last_sequence = seq;
            let book: Bookkeeping = headers
                .and_then(|h| h.get(BOOKKEEPING_HEADER))
                .and_then(|v| serde_json::from_str(v.as_str()).ok())
                .unwrap_or_default();
            call.first_sequence = if book.first_sequence == 0 { seq } else { book.first_sequence };
            call.vendor_order = book.vendor_order;
            call.last_vendor_time = book.last_vendor_time;
            call.hold_started_at = book.hold_started_at;
            call.correlation_key = book.correlation_key;
            call
        });
        Ok((record, call))
    }

    fn apply_to_mirror(&self, record: Arc<Record>, call: Option<Call>, publish: bool) {
        {
            let mut m = self.mirror.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(call) = call {
                let key = (call.tenant_id.clone(), call.call_id.clone());
                let newer = m.calls.get(&key).is_none_or(|c| c.call_sequence <= call.call_sequence);
                if newer {
                    m.calls.insert(key, call);
                }
            }
            m.head = m.head.max(record.sequence);
        }
        if publish {
            self.hub.publish(&[record]);
        }
    }

    /// Fills the mirror with every call in the KV bucket.
    async fn load_mirror(&self, head: u64) -> Result<(), StoreError> {
        let mut watch = self.calls.watch_with_history(">").await.map_err(unavailable)?;
        let mut calls = HashMap::new();
        let mut remaining = self.calls.status().await.map_err(unavailable)?.values() > 0;
        // Reads until the entry with delta 0 (the newest), or a timeout.
        while remaining {
            let Some(entry) =
                tokio::time::timeout(self.nats.request_timeout, watch.next()).await.map_err(unavailable)?
            else {
                break;
            };
            let entry = entry.map_err(unavailable)?;
            if entry.operation == kv::Operation::Put
                && let Ok(call) = serde_json::from_slice::<Call>(&entry.value)
            {
                calls.insert((call.tenant_id.clone(), call.call_id.clone()), call);
            }
            remaining = entry.delta > 0;
        }
        let mut m = self.mirror.lock().unwrap_or_else(|p| p.into_inner());
        m.calls = calls;
        m.head = head;
        Ok(())
    }

    async fn dedup_get(&self, tenant: &TenantId, key: &str) -> Result<Option<DedupEntry>, StoreError> {
        let v = self.dedup.get(subjects::hashed_key(tenant.as_str(), key)).await.map_err(unavailable)?;
        Ok(v.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    async fn dedup_put(&self, tenant: &TenantId, key: &str, entry: &DedupEntry) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(entry)?;
        self.dedup.put(subjects::hashed_key(tenant.as_str(), key), bytes.into()).await.map_err(unavailable)?;
        Ok(())
    }

    async fn call_entry(&self, tenant: &TenantId, call_id: &str) -> Result<Option<(Call, u64)>, StoreError> {
        let e = self.calls.entry(subjects::call_key(tenant.as_str(), call_id)).await.map_err(unavailable)?;
        match e {
            Some(e) if e.operation == kv::Operation::Put => {
                let call: Call = serde_json::from_slice(&e.value)?;
                Ok(Some((call, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Writes a call's state with compare-and-set on `revision` (`None`:
    /// the key must not exist). A lost race with a state at least as new is
    /// fine; an older one is retried on the fresh revision.
    async fn save_call(&self, call: &Call, mut revision: Option<u64>) -> Result<(), StoreError> {
        let key = subjects::call_key(&call.tenant_id, &call.call_id);
        let bytes: Bytes = serde_json::to_vec(call)?.into();
        for _ in 0..MAX_ATTEMPTS {
            let done = match revision {
                Some(rev) => self.calls.update(&key, bytes.clone(), rev).await.map(|_| ()).map_err(|e| e.to_string()),
                None => self.calls.create(&key, bytes.clone()).await.map(|_| ()).map_err(|e| e.to_string()),
            };
            if done.is_ok() {
                return Ok(());
            }
            match self.calls.entry(&key).await.map_err(unavailable)? {
                Some(e) if e.operation == kv::Operation::Put => {
                    let stored: Call = serde_json::from_slice(&e.value)?;
                    if stored.last_sequence >= call.last_sequence {
                        return Ok(());
                    }
                    revision = Some(e.revision);
                }
                Some(e) => revision = Some(e.revision),
                None => revision = None,
            }
        }
        Err(StoreError::Unavailable("call state contention".into()))
    }

    /// Brings a call's KV state up to the last message of its subject (after
    /// a replica died between appending and saving). Returns the call.
    async fn repair(&self, tenant: &TenantId, call_id: &str) -> Result<Option<(Call, u64)>, StoreError> {
        let subject = subjects::call_subject(&self.nats.subject_prefix, tenant.as_str(), call_id);
        let last = match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => Some(m),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => None,
            Err(e) => return Err(unavailable(e)),
        };
        let current = self.call_entry(tenant, call_id).await?;
        let Some(msg) = last else { return Ok(current) };
        let (_, call) = self.to_record(msg.sequence, &msg.payload, Some(&msg.headers))?;
        let Some(call) = call else { return Ok(current) };
        if current.as_ref().is_some_and(|(c, _)| c.last_sequence >= call.last_sequence) {
            return Ok(current);
        }
        self.save_call(&call, current.map(|(_, rev)| rev)).await?;
        self.call_entry(tenant, call_id).await
    }

    async fn correlated(&self, tenant: &TenantId, key: &str) -> Result<(Vec<Call>, Option<u64>), StoreError> {
        let k = subjects::hashed_key(tenant.as_str(), key);
        let entry = self.correlation.entry(&k).await.map_err(unavailable)?;
        let (ids, rev): (Vec<String>, Option<u64>) = match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                (serde_json::from_slice(&e.value).unwrap_or_default(), Some(e.revision))
            }
            _ => (Vec::new(), None),
        };
        let mut calls = Vec::new();
        for id in ids {
            if let Some((c, _)) = self.call_entry(tenant, &id).await? {
                calls.push(c);
            }
        }
        calls.sort_by_key(|c| std::cmp::Reverse(c.last_sequence));
        Ok((calls, rev))
    }

    async fn remember_correlation(&self, tenant: &TenantId, key: &str, call_id: &str) -> Result<(), StoreError> {
        let k = subjects::hashed_key(tenant.as_str(), key);
        for _ in 0..MAX_ATTEMPTS {
            let entry = self.correlation.entry(&k).await.map_err(unavailable)?;
            let (mut ids, rev): (Vec<String>, Option<u64>) = match entry {
                Some(e) if e.operation == kv::Operation::Put => {
                    (serde_json::from_slice(&e.value).unwrap_or_default(), Some(e.revision))
                }
                Some(e) => (Vec::new(), Some(e.revision)),
                None => (Vec::new(), None),
            };
            if ids.last().map(String::as_str) == Some(call_id) {
                return Ok(());
            }
            ids.retain(|i| i != call_id);
            ids.push(call_id.to_string());
            if ids.len() > CORRELATION_CANDIDATES {
                ids.remove(0);
            }
            let bytes: Bytes = serde_json::to_vec(&ids)?.into();
            let ok = match rev {
                Some(r) => self.correlation.update(&k, bytes, r).await.is_ok(),
                None => self.correlation.create(&k, bytes).await.is_ok(),
            };
            if ok {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable("correlation index contention".into()))
    }

    /// Records of the given sequences that are still in the stream.
    async fn records(&self, seqs: &[u64]) -> Result<Vec<Arc<Record>>, StoreError> {
        let mut out = Vec::with_capacity(seqs.len());
        for &s in seqs {
            match self.stream.get_raw_message(s).await {
                Ok(m) => out.push(self.to_record(m.sequence, &m.payload, Some(&m.headers))?.0),
                Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(out)
    }

    /// Publishes one event; `Ok(None)` when the call moved on under us.
    async fn publish(
        &self,
        subject: String,
        payload: Bytes,
        id: &str,
        book: &Bookkeeping,
        expected: Option<u64>,
    ) -> Result<Option<jetstream::publish::PublishAck>, StoreError> {
        let mut msg = jetstream::message::PublishMessage::build().payload(payload).message_id(id);
        msg = msg.header(BOOKKEEPING_HEADER, serde_json::to_string(book)?.as_str());
        if let Some(e) = expected {
            msg = msg.expected_last_subject_sequence(e);
        }
        let js = jetstream::ContextBuilder::new().timeout(self.nats.request_timeout).build(self.client.clone());
        let ack = js.send_publish(subject, msg).await.map_err(unavailable)?;
        match ack.await {
            Ok(ack) => Ok(Some(ack)),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn ingest(&self, batch: IngestBatch) -> Result<IngestResult, StoreError> {
        self.connected()?;
        let tenant = &batch.tenant;
        let n = &batch.normalized;
        let now = batch.received_at;
        let live = |e: Option<DedupEntry>| {
            e.filter(|e| (now - e.created_at).to_std().map_or(true, |a| a <= self.opts.dedup_window))
        };
        let request_key = batch.request_id.as_ref().map(|r| format!("req:{r}"));
        if let Some(k) = &request_key
            && let Some(entry) = live(self.dedup_get(tenant, k).await?)
        {
            return Ok(IngestResult {
                outcome: IngestOutcome::Duplicate,
                records: self.records(&entry.sequences).await?,
                dedup_hit: Some("request_id"),
            });
        }
        let identity_key = n.identity.key();
        if let Some(entry) = live(self.dedup_get(tenant, &identity_key).await?) {
            let repeat = if !n.identity.is_content_hash() || entry.call_id.is_empty() {
                true
            } else {
                self.call_entry(tenant, &entry.call_id)
                    .await?
                    .is_some_and(|(c, _)| c.call_sequence == entry.call_sequence)
            };
            if repeat {
                if let Some(k) = &request_key {
                    self.dedup_put(tenant, k, &entry).await?;
                }
                let hit = match n.identity {
                    Identity::VendorId(_) => "vendor_id",
                    Identity::Natural(_) => "natural_key",
                    Identity::ContentHash(_) => "content_hash",
                };
                return Ok(IngestResult {
                    outcome: IngestOutcome::Duplicate,
                    records: self.records(&entry.sequences).await?,
                    dedup_hit: Some(hit),
                });
            }
        }
        if n.ignored.is_some() {
            return Ok(IngestResult { outcome: IngestOutcome::Ignored, records: Vec::new(), dedup_hit: None });
        }

        let mut appended: Vec<Arc<Record>> = Vec::new();
        let mut existing: Vec<Arc<Record>> = Vec::new();
        let mut last_call: Option<Call> = None;
        for (index, draft) in n.events.iter().enumerate() {
            let mut ctx = ApplyContext {
                tenant_id: tenant.as_str(),
                vendor: n.vendor,
                vendor_event_type: &n.vendor_event_type,
                received_at: now,
                bridge_received_at: batch.bridge_received_at,
                event_id: event_id(tenant.as_str(), n.vendor, &identity_key, draft.event_type, index),
            };
            let Some(call_ref) = &draft.call else {
                let event = lifecycle::agent_event(draft, &ctx);
                let subject = subjects::agent_subject(&self.nats.subject_prefix, tenant.as_str());
                let payload = convert::encode_update(&event, None);
                let ack =
                    self.publish(subject, payload.clone(), &event.event_id, &Bookkeeping::default(), None).await?;
                let ack =
                    ack.ok_or_else(|| StoreError::Backend("unexpected sequence check on an agent subject".into()))?;
                let (record, _) = self.to_record(ack.sequence, &payload, None)?;
                if ack.duplicate {
                    existing.push(record)
                } else {
                    appended.push(record)
                }
                continue;
            };
            let mut done = false;
            for _ in 0..MAX_ATTEMPTS {
                let (call_id, current) = self.resolve(tenant, call_ref, draft.event_type, &batch).await?;
                if n.identity.is_content_hash() {
                    let at = current.as_ref().map_or(0, |(c, _)| c.call_sequence);
                    ctx.event_id =
                        event_id(tenant.as_str(), n.vendor, &format!("{identity_key}@{at}"), draft.event_type, index);
                }
                let expected = current.as_ref().map_or(0, |(c, _)| c.last_sequence);
                let revision = current.as_ref().map(|(_, r)| *r);
                let (mut event, mut call) = match lifecycle::apply(current.map(|(c, _)| c), &call_id, draft, &ctx) {
                    Applied::Duplicate => {
                        done = true;
                        break;
                    }
                    Applied::Event { event, call } => (*event, *call),
                };
                if let CallRef::Correlate(c) = call_ref {
                    call.correlation_key = Some(c.key.clone());
                }
                let book = Bookkeeping {
                    first_sequence: call.first_sequence,
                    vendor_order: call.vendor_order.clone(),
                    last_vendor_time: call.last_vendor_time,
                    hold_started_at: call.hold_started_at,
                    correlation_key: call.correlation_key.clone(),
                };
                let subject = subjects::call_subject(&self.nats.subject_prefix, tenant.as_str(), &call_id);
                let payload = convert::encode_update(&event, Some(&call));
                match self.publish(subject, payload.clone(), &event.event_id, &book, Some(expected)).await? {
                    None => {
                        // Another replica appended to this call: catch up and re-apply.
                        self.repair(tenant, &call_id).await?;
                        continue;
                    }
                    Some(ack) if ack.duplicate => {
                        // Already logged (a concurrent or earlier delivery).
                        let (record, _) = self.to_record(ack.sequence, &payload, None)?;
                        existing.push(record);
                        self.repair(tenant, &call_id).await?;
                    }
                    Some(ack) => {
                        event.sequence = ack.sequence;
                        call.last_sequence = ack.sequence;
                        if call.first_sequence == 0 {
                            call.first_sequence = ack.sequence;
                        }
                        self.save_call(&call, revision).await?;
                        if let CallRef::Correlate(c) = call_ref {
                            self.remember_correlation(tenant, &c.key, &call_id).await?;
                        }
                        appended.push(Arc::new(Record::from_event(&event, Some(&call))));
                        last_call = Some(call);
                    }
                }
                done = true;
                break;
            }
            if !done {
                return Err(StoreError::Unavailable(format!("call {call_ref:?} is contended by other writers; retry")));
            }
        }

        if appended.is_empty() {
            if let Some(k) = &request_key {
                let entry = DedupEntry {
                    call_id: String::new(),
                    call_sequence: 0,
                    sequences: existing.iter().map(|r| r.sequence).collect(),
                    created_at: now,
                };
                self.dedup_put(tenant, k, &entry).await?;
            }
            return Ok(IngestResult {
                outcome: IngestOutcome::Duplicate,
                records: existing,
                dedup_hit: Some("repeated_state"),
            });
        }
        let entry = DedupEntry {
            call_id: last_call.as_ref().map(|c| c.call_id.clone()).unwrap_or_default(),
            call_sequence: last_call.as_ref().map_or(0, |c| c.call_sequence),
            sequences: appended.iter().map(|r| r.sequence).collect(),
            created_at: now,
        };
        self.dedup_put(tenant, &identity_key, &entry).await?;
        if let Some(k) = &request_key {
            self.dedup_put(tenant, k, &entry).await?;
        }
        Ok(IngestResult { outcome: IngestOutcome::Accepted, records: appended, dedup_hit: None })
    }

    /// The call an event belongs to (see the planner's rules) and its state.
    async fn resolve(
        &self,
        tenant: &TenantId,
        call_ref: &CallRef,
        event_type: EventType,
        batch: &IngestBatch,
    ) -> Result<(String, Option<(Call, u64)>), StoreError> {
        match call_ref {
            CallRef::Id(id) => Ok((id.clone(), self.call_entry(tenant, id).await?)),
            CallRef::Correlate(c) => {
                let (candidates, _) = self.correlated(tenant, &c.key).await?;
                if let Some(call) = super::planner::correlate(&candidates, c, event_type, batch.received_at, &self.opts)
                {
                    let id = call.call_id.clone();
                    return Ok((id.clone(), self.call_entry(tenant, &id).await?));
                }
                let id = super::planner::new_correlated_id(tenant.as_str(), c, batch);
                Ok((id.clone(), self.call_entry(tenant, &id).await?))
            }
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
            let next = tokio::time::timeout(self.nats.request_timeout, messages.next()).await.map_err(unavailable)?;
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
        let mut calls: Vec<Call> = m
            .calls
            .iter()
            .filter(|((t, _), c)| t == tenant.as_str() && query.matches(c))
            .map(|(_, c)| c.clone())
            .collect();
        calls.sort_by_key(|c| std::cmp::Reverse(c.first_sequence));
        calls.truncate(query.limit);
        Ok(calls)
    }

    async fn snapshot(&self, tenant: &TenantId) -> Result<Snapshot, StoreError> {
        let m = self.inner.mirror.lock().unwrap_or_else(|p| p.into_inner());
        let mut calls: Vec<Call> = m
            .calls
            .iter()
            .filter(|((t, _), c)| t == tenant.as_str() && c.state.is_active())
            .map(|(_, c)| c.clone())
            .collect();
        calls.sort_by_key(|c| c.first_sequence);
        Ok(Snapshot { calls, as_of: m.head })
    }

    async fn prune(&self, now: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        // JetStream enforces retention on the log and the buckets; only the
        // local mirror needs trimming.
        let Some(max_age) = self.inner.opts.retention_max_age.and_then(|a| chrono::Duration::from_std(a).ok()) else {
            return Ok(PruneStats::default());
        };
        let mut m = self.inner.mirror.lock().unwrap_or_else(|p| p.into_inner());
        let before = m.calls.len();
        m.calls.retain(|_, c| c.state != CallState::Ended || c.updated_at >= now - max_age);
        Ok(PruneStats { calls: (before - m.calls.len()) as u64, ..PruneStats::default() })
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
