//! Ingest on JetStream through the shared [ingest plan](crate::plan): the
//! store prefetches what the plan will read (dedup entries, calls, the
//! correlation index) concurrently, runs the plan's steps over it, fetches
//! again only what a step named and lacked, and writes what the plan decided:
//! each event is appended with the call's last subject sequence expected, so
//! a replica that lost a race for a call reloads it and steps the draft
//! again.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use futures_util::future::try_join_all;

use super::{Bookkeeping, Inner, MAX_ATTEMPTS, subjects};
use crate::codec::{Record, convert};
use crate::domain::{Call, CallEvent, CallRef, TenantId};
use crate::plan::{self, DedupEntry, Planning, Screened, StateView, Step};
use crate::store::{IngestBatch, IngestOutcome, IngestResult, StoreError};

/// How many times a step may name state it lacked before the ingest gives
/// up (each round fetches everything named so far; two suffice in practice).
const MAX_FETCH_ROUNDS: usize = 4;

/// Something the plan reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Need {
    Dedup(String),
    Call(String),
    Correlated(String),
}

/// What an ingest fetched for the plan, as a [`StateView`]: a read of
/// anything not fetched yet is answered empty and noted in `needs`, and the
/// step is run again once it has been fetched.
#[derive(Default)]
struct Fetched {
    dedup: HashMap<String, Option<DedupEntry>>,
    /// Calls with the KV revision they were read at.
    calls: HashMap<String, Option<(Call, u64)>>,
    correlated: HashMap<String, Vec<String>>,
    needs: Vec<Need>,
}

impl Fetched {
    fn need(&mut self, need: Need) {
        if !self.needs.contains(&need) {
            self.needs.push(need);
        }
    }

    fn revision(&self, call_id: &str) -> Option<u64> {
        self.calls.get(call_id).and_then(|c| c.as_ref().map(|(_, rev)| *rev))
    }
}

impl StateView for Fetched {
    type Error = Infallible;

    fn call(&mut self, _tenant: &str, call_id: &str) -> Result<Option<Call>, Infallible> {
        match self.calls.get(call_id) {
            Some(c) => Ok(c.as_ref().map(|(c, _)| c.clone())),
            None => {
                self.need(Need::Call(call_id.to_string()));
                Ok(None)
            }
        }
    }

    fn correlated(&mut self, _tenant: &str, key: &str) -> Result<Vec<Call>, Infallible> {
        let Some(ids) = self.correlated.get(key).cloned() else {
            self.need(Need::Correlated(key.to_string()));
            return Ok(Vec::new());
        };
        let mut calls = Vec::with_capacity(ids.len());
        for id in ids {
            match self.calls.get(&id) {
                Some(Some((c, _))) => calls.push(c.clone()),
                Some(None) => {}
                None => self.need(Need::Call(id)),
            }
        }
        calls.sort_by_key(|c| std::cmp::Reverse(c.last_sequence));
        Ok(calls)
    }

    fn dedup(&mut self, _tenant: &str, key: &str) -> Result<Option<DedupEntry>, Infallible> {
        match self.dedup.get(key) {
            Some(e) => Ok(e.clone()),
            None => {
                self.need(Need::Dedup(key.to_string()));
                Ok(None)
            }
        }
    }
}

/// What the plan will certainly read of a batch: its dedup keys and its
/// drafts' calls or correlation indexes. Fetched in one concurrent round.
fn first_needs(batch: &IngestBatch) -> Vec<Need> {
    let mut needs: Vec<Need> = plan::dedup_keys(batch).map(Need::Dedup).collect();
    for draft in &batch.normalized.events {
        let need = match &draft.call {
            Some(CallRef::Id(id)) => Need::Call(id.clone()),
            Some(CallRef::Correlate(c)) => Need::Correlated(c.key.clone()),
            None => continue,
        };
        if !needs.contains(&need) {
            needs.push(need);
        }
    }
    needs
}

/// One fetched answer.
enum Got {
    Dedup(String, Option<DedupEntry>),
    Call(String, Option<Box<(Call, u64)>>),
    Correlated(String, Vec<String>, Vec<(String, Option<(Call, u64)>)>),
}

/// The events an ingest appended, and those the log already held.
#[derive(Default)]
struct Written {
    appended: Vec<Arc<Record>>,
    existing: Vec<Arc<Record>>,
}

impl Inner {
    /// Fetches `needs` concurrently into `into`.
    async fn fetch(&self, tenant: &TenantId, needs: Vec<Need>, into: &mut Fetched) -> Result<(), StoreError> {
        let got = try_join_all(needs.into_iter().map(|need| async move {
            Ok::<_, StoreError>(match need {
                Need::Dedup(k) => {
                    let e = self.dedup_get(tenant, &k).await?;
                    Got::Dedup(k, e)
                }
                Need::Call(id) => {
                    let c = self.call_entry(tenant, &id).await?;
                    Got::Call(id, c.map(Box::new))
                }
                Need::Correlated(key) => {
                    let ids = self.correlated_ids(tenant, &key).await?;
                    let calls = try_join_all(ids.iter().map(|id| async move {
                        Ok::<_, StoreError>((id.clone(), self.call_entry(tenant, id).await?))
                    }))
                    .await?;
                    Got::Correlated(key, ids, calls)
                }
            })
        }))
        .await?;
        for g in got {
            match g {
                Got::Dedup(k, e) => drop(into.dedup.insert(k, e)),
                Got::Call(id, c) => drop(into.calls.insert(id, c.map(|c| *c))),
                Got::Correlated(key, ids, calls) => {
                    into.correlated.insert(key, ids);
                    for (id, c) in calls {
                        into.calls.entry(id).or_insert(c);
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs a plan step over `fetched`, fetching what it named and lacked
    /// and running it again, until it lacks nothing.
    async fn settle<T>(
        &self,
        tenant: &TenantId,
        fetched: &mut Fetched,
        mut step: impl FnMut(&mut Fetched) -> Result<T, Infallible>,
    ) -> Result<T, StoreError> {
        for _ in 0..MAX_FETCH_ROUNDS {
            fetched.needs.clear();
            let Ok(out) = step(fetched);
            if fetched.needs.is_empty() {
                return Ok(out);
            }
            let needs = std::mem::take(&mut fetched.needs);
            self.fetch(tenant, needs, fetched).await?;
        }
        Err(StoreError::Unavailable("the ingest plan kept needing more state; retry".into()))
    }

    pub(super) async fn ingest(&self, batch: IngestBatch) -> Result<IngestResult, StoreError> {
        self.connected()?;
        let tenant = &batch.tenant;
        let windows = self.opts.windows();
        let mut fetched = Fetched::default();
        self.fetch(tenant, first_needs(&batch), &mut fetched).await?;
        match self.settle(tenant, &mut fetched, |v| plan::screen(&batch, v, windows)).await? {
            Screened::Duplicate { entry, hit, remember } => {
                if let Some((k, e)) = remember {
                    self.dedup_put(tenant, &k, &e).await?;
                }
                let records = self.records(&entry.sequences).await?;
                return Ok(IngestResult { outcome: IngestOutcome::Duplicate, records, dedup_hit: Some(hit) });
            }
            Screened::Ignored => {
                return Ok(IngestResult { outcome: IngestOutcome::Ignored, records: Vec::new(), dedup_hit: None });
            }
            Screened::New => {}
        }
        let mut planning = Planning::new(&batch);
        let mut written = Written::default();
        for index in 0..planning.drafts() {
            self.append_draft(&mut planning, index, &mut fetched, &mut written).await?;
        }
        let logged: Vec<u64> = written.existing.iter().map(|r| r.sequence).collect();
        let plan = planning.finish(&logged);
        try_join_all(plan.dedup_writes.iter().map(|(k, e)| self.dedup_put(tenant, k, e))).await?;
        Ok(match plan.outcome {
            IngestOutcome::Accepted => {
                IngestResult { outcome: plan.outcome, records: written.appended, dedup_hit: None }
            }
            _ => IngestResult { outcome: plan.outcome, records: written.existing, dedup_hit: plan.dedup_hit },
        })
    }

    /// Steps draft `index` and appends its event, stepping again on the
    /// call's fresh state when another replica appended to it first.
    async fn append_draft(
        &self,
        planning: &mut Planning<'_>,
        index: usize,
        fetched: &mut Fetched,
        written: &mut Written,
    ) -> Result<(), StoreError> {
        let windows = self.opts.windows();
        let tenant = planning.tenant().clone();
        // What the call's subject ends at, when known better than the call
        // state says (after a repair).
        let mut subject_last: Option<u64> = None;
        for _ in 0..MAX_ATTEMPTS {
            let step = self.settle(&tenant, fetched, |v| planning.step(index, v, windows)).await?;
            let Step::Event { event, call, based_on } = step else {
                return Ok(());
            };
            let Some(call) = call else {
                return self.append_agent_event(planning, index, *event, written).await;
            };
            let call_id = call.call_id.clone();
            let expected = subject_last.take().unwrap_or(based_on);
            let revision = fetched.revision(&call_id);
            let subject = subjects::call_subject(&self.nats.subject_prefix, tenant.as_str(), &call_id);
            let payload = convert::encode_update(&event, Some(&call));
            let book = Bookkeeping::of(&call);
            match self.publish(subject, payload, &event.event_id, &book, Some(expected)).await? {
                None => {
                    // Another replica appended to this call (or retention
                    // removed its messages): catch up and step again.
                    subject_last = Some(self.repair(&tenant, &call_id).await?);
                    fetched.calls.remove(&call_id);
                }
                Some(ack) if ack.duplicate => {
                    // Already logged (a concurrent or earlier delivery):
                    // answer with what the log holds.
                    written.existing.extend(self.records(&[ack.sequence]).await?);
                    self.repair(&tenant, &call_id).await?;
                    fetched.calls.remove(&call_id);
                    return Ok(());
                }
                Some(ack) => {
                    let (event, call) = planning.commit(index, *event, Some(*call), ack.sequence);
                    let call = call
                        .as_ref()
                        .ok_or_else(|| StoreError::Backend("committed call event lost its call".into()))?;
                    self.save_committed(&tenant, event, call, revision, fetched, written).await?;
                    return Ok(());
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "a call of this payload is contended by other writers (draft {index}); retry"
        )))
    }

    /// Saves a committed event's call state and correlation entry, and
    /// answers with its record.
    async fn save_committed(
        &self,
        tenant: &TenantId,
        event: &CallEvent,
        call: &Call,
        revision: Option<u64>,
        fetched: &mut Fetched,
        written: &mut Written,
    ) -> Result<(), StoreError> {
        let correlation = async {
            match &call.correlation_key {
                Some(key) => self.remember_correlation(tenant, key, &call.call_id).await,
                None => Ok(()),
            }
        };
        let (saved, ()) = tokio::try_join!(self.save_call(call, revision), correlation)?;
        match saved {
            Some(rev) => drop(fetched.calls.insert(call.call_id.clone(), Some((call.clone(), rev)))),
            None => drop(fetched.calls.remove(&call.call_id)),
        }
        if let Some(key) = &call.correlation_key {
            fetched.correlated.remove(key);
        }
        written.appended.push(Arc::new(Record::from_event(event.clone(), Some(call))));
        Ok(())
    }

    /// Appends an agent event (no call, no expectation) to the tenant's
    /// agent subject.
    async fn append_agent_event(
        &self,
        planning: &mut Planning<'_>,
        index: usize,
        event: CallEvent,
        written: &mut Written,
    ) -> Result<(), StoreError> {
        let subject = subjects::agent_subject(&self.nats.subject_prefix, &event.tenant_id);
        let payload = convert::encode_update(&event, None);
        let ack = self.publish(subject, payload.clone(), &event.event_id, &Bookkeeping::default(), None).await?;
        let ack = ack.ok_or_else(|| StoreError::Backend("unexpected sequence check on an agent subject".into()))?;
        let (record, _) = self.to_record(ack.sequence, &payload, None)?;
        if ack.duplicate {
            written.existing.push(record);
        } else {
            planning.commit(index, event, None, ack.sequence);
            written.appended.push(record);
        }
        Ok(())
    }
}
