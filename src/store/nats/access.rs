//! The JetStream and KV reads and writes of an ingest: dedup entries, call
//! state with compare-and-set, the correlation index, and the optimistic
//! append per event (`Nats-Expected-Last-Subject-Sequence`). What to write
//! is decided by the ingest plan, in [`super::ingest`].

use std::sync::Arc;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;

use super::{BOOKKEEPING_HEADER, Bookkeeping, Inner, MAX_ATTEMPTS, subjects, unavailable};
use crate::codec::Record;
use crate::domain::{Call, TenantId};
use crate::plan::{CORRELATION_CANDIDATES, DedupEntry};
use crate::store::StoreError;

impl Inner {
    pub(super) async fn dedup_get(&self, tenant: &TenantId, key: &str) -> Result<Option<DedupEntry>, StoreError> {
        let v = self.dedup.get(subjects::hashed_key(tenant.as_str(), key)).await.map_err(unavailable)?;
        Ok(v.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    pub(super) async fn dedup_put(&self, tenant: &TenantId, key: &str, entry: &DedupEntry) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(entry)?;
        self.dedup.put(subjects::hashed_key(tenant.as_str(), key), bytes.into()).await.map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn call_entry(&self, tenant: &TenantId, call_id: &str) -> Result<Option<(Call, u64)>, StoreError> {
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
    /// fine; an older one is retried on the fresh revision. Returns the new
    /// revision, or `None` when a newer state was already there.
    pub(super) async fn save_call(&self, call: &Call, mut revision: Option<u64>) -> Result<Option<u64>, StoreError> {
        let key = subjects::call_key(&call.tenant_id, &call.call_id);
        let bytes: Bytes = serde_json::to_vec(call)?.into();
        for _ in 0..MAX_ATTEMPTS {
            let done = match revision {
                Some(rev) => self.calls.update(&key, bytes.clone(), rev).await.map_err(|e| e.to_string()),
                None => self.calls.create(&key, bytes.clone()).await.map_err(|e| e.to_string()),
            };
            if let Ok(rev) = done {
                return Ok(Some(rev));
            }
            match self.calls.entry(&key).await.map_err(unavailable)? {
                Some(e) if e.operation == kv::Operation::Put => {
                    let stored: Call = serde_json::from_slice(&e.value)?;
                    if stored.last_sequence >= call.last_sequence {
                        return Ok(None);
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
    ///
    /// Returns the sequence of the subject's last message (0 when retention
    /// removed them all), which is what the next append must expect: the
    /// call's state may outlive its messages.
    pub(super) async fn repair(&self, tenant: &TenantId, call_id: &str) -> Result<u64, StoreError> {
        let subject = subjects::call_subject(&self.nats.subject_prefix, tenant.as_str(), call_id);
        let last = match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => m,
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => return Ok(0),
            Err(e) => return Err(unavailable(e)),
        };
        let current = self.call_entry(tenant, call_id).await?;
        let (_, call) = self.to_record(last.sequence, &last.payload, Some(&last.headers))?;
        if let Some(call) = call
            && current.as_ref().is_none_or(|(c, _)| c.last_sequence < call.last_sequence)
        {
            self.save_call(&call, current.map(|(_, rev)| rev)).await?;
        }
        Ok(last.sequence)
    }

    /// The ids of the recent calls with a correlation key, oldest first.
    pub(super) async fn correlated_ids(&self, tenant: &TenantId, key: &str) -> Result<Vec<String>, StoreError> {
        let k = subjects::hashed_key(tenant.as_str(), key);
        match self.correlation.entry(&k).await.map_err(unavailable)? {
            Some(e) if e.operation == kv::Operation::Put => Ok(serde_json::from_slice(&e.value).unwrap_or_default()),
            _ => Ok(Vec::new()),
        }
    }

    pub(super) async fn remember_correlation(
        &self,
        tenant: &TenantId,
        key: &str,
        call_id: &str,
    ) -> Result<(), StoreError> {
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
    pub(super) async fn records(&self, seqs: &[u64]) -> Result<Vec<Arc<Record>>, StoreError> {
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
    pub(super) async fn publish(
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
}
