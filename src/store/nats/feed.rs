//! This replica's view of the log: one ordered consumer over the whole
//! stream feeding the local hub and the call mirror, and the decoding of
//! logged messages into records.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{consumer, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use super::{BOOKKEEPING_HEADER, Bookkeeping, Inner, unavailable};
use crate::codec::Record;
use crate::codec::convert;
use crate::codec::proto::v1 as pb;
use crate::domain::Call;
use crate::store::StoreError;

/// This replica's consumer: every message of the stream, in order, into the
/// mirror and (past `publish_after`) the hub. Recreated from the next
/// sequence after any error, so a NATS restart resumes without gap or
/// duplicate.
pub(super) async fn feed(
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
    /// A logged message as a record, and the call after it.
    pub(super) fn to_record(
        &self,
        seq: u64,
        payload: &Bytes,
        headers: Option<&HeaderMap>,
    ) -> Result<(Arc<Record>, Option<Call>), StoreError> {
        let update = pb::CallUpdate::decode(payload.as_ref()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut bytes = payload.to_vec();
        bytes.extend(convert::sequence_suffix(seq, update.call.is_some()));
        let record =
            Arc::new(Record::from_update(seq, &update, &bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?);
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

    pub(super) fn apply_to_mirror(&self, record: Arc<Record>, call: Option<Call>, publish: bool) {
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
            // The tail first: a subscriber that reads it after registering
            // with the hub misses nothing (it may see a record twice, and
            // drops the second by its cursor).
            let records = [record];
            self.tail.push(&records);
            self.hub.publish(&records);
        }
    }

    /// Fills the mirror with every call in the KV bucket.
    pub(super) async fn load_mirror(&self, head: u64) -> Result<(), StoreError> {
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
}
