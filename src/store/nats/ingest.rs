//! Ingest on JetStream: dedup in KV, the state machine against the call's
//! KV state, and an optimistic append per event
//! (`Nats-Expected-Last-Subject-Sequence`) retried when another replica
//! appended to the same call first.

use std::sync::Arc;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;

use super::{BOOKKEEPING_HEADER, Bookkeeping, Inner, MAX_ATTEMPTS, subjects, unavailable};
use crate::codec::Record;
use crate::codec::convert;
use crate::domain::identity::event_id;
use crate::domain::lifecycle::{self, Applied, ApplyContext};
use crate::domain::{Call, CallRef, EventType, Identity, TenantId};
use crate::store::planner::{self, CORRELATION_CANDIDATES, DedupEntry};
use crate::store::{IngestBatch, IngestOutcome, IngestResult, StoreError};

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
    /// fine; an older one is retried on the fresh revision.
    pub(super) async fn save_call(&self, call: &Call, mut revision: Option<u64>) -> Result<(), StoreError> {
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

    pub(super) async fn correlated(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<(Vec<Call>, Option<u64>), StoreError> {
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

    pub(super) async fn ingest(&self, batch: IngestBatch) -> Result<IngestResult, StoreError> {
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
        for alias in n.aliases.iter().filter(|a| !a.is_content_hash()) {
            if let Some(entry) = live(self.dedup_get(tenant, &alias.key()).await?) {
                if let Some(k) = &request_key {
                    self.dedup_put(tenant, k, &entry).await?;
                }
                let records = self.records(&entry.sequences).await?;
                return Ok(IngestResult { outcome: IngestOutcome::Duplicate, records, dedup_hit: Some("alias") });
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
            // What the call's subject ends at, when known better than the
            // call state says (after a repair).
            let mut subject_last: Option<u64> = None;
            for _ in 0..MAX_ATTEMPTS {
                let (call_id, current) = self.resolve(tenant, call_ref, draft.event_type, &batch).await?;
                if n.identity.is_content_hash() {
                    let at = current.as_ref().map_or(0, |(c, _)| c.call_sequence);
                    ctx.event_id =
                        event_id(tenant.as_str(), n.vendor, &format!("{identity_key}@{at}"), draft.event_type, index);
                }
                let expected =
                    subject_last.take().unwrap_or_else(|| current.as_ref().map_or(0, |(c, _)| c.last_sequence));
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
                        // Another replica appended to this call (or retention
                        // removed its messages): catch up and re-apply.
                        subject_last = Some(self.repair(tenant, &call_id).await?);
                        continue;
                    }
                    Some(ack) if ack.duplicate => {
                        // Already logged (a concurrent or earlier delivery):
                        // answer with what the log holds.
                        existing.extend(self.records(&[ack.sequence]).await?);
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
        for alias in &n.aliases {
            self.dedup_put(tenant, &alias.key(), &entry).await?;
        }
        if let Some(k) = &request_key {
            self.dedup_put(tenant, k, &entry).await?;
        }
        Ok(IngestResult { outcome: IngestOutcome::Accepted, records: appended, dedup_hit: None })
    }

    /// The call an event belongs to (see the planner's rules) and its state.
    pub(super) async fn resolve(
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
                if let Some(call) = planner::correlate(&candidates, c, event_type, batch.received_at, &self.opts) {
                    let id = call.call_id.clone();
                    return Ok((id.clone(), self.call_entry(tenant, &id).await?));
                }
                let id = planner::new_correlated_id(tenant.as_str(), c, batch);
                Ok((id.clone(), self.call_entry(tenant, &id).await?))
            }
        }
    }
}
