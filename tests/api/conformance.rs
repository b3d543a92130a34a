//! The store conformance suite: the same checks of the `Store` contract,
//! written once, run against memory, sqlite and NATS JetStream.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;
use switchboard::adapters::{Normalizer, PhoneNormalizer};
use switchboard::domain::{CallOutcome, CallState, EventFilter, TenantId, Vendor};
use switchboard::hub::Hub;
use switchboard::service::expiry::expiry_batch;
use switchboard::store::memory::MemoryStore;
use switchboard::store::nats::NatsStore;
use switchboard::store::sqlite::SqliteStore;
use switchboard::store::{
    CallQuery, EntryCounts, IngestBatch, IngestOutcome, StateFilter, Store, StoreError, StoreOptions,
};

use crate::common::nats::{NatsServer, isolated, nats_url};
use crate::common::{fixture, sf};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Sqlite,
    Nats,
}

/// A fresh store of one backend, and what keeps it alive.
struct Backend {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    /// A second replica on the same log (NATS only).
    replica: Option<Arc<dyn Store>>,
    _dir: Option<tempfile::TempDir>,
    _nats: Option<NatsServer>,
}

async fn backend(kind: Kind, opts: StoreOptions) -> Backend {
    let hub = Hub::new(4096);
    match kind {
        Kind::Memory => Backend {
            store: Arc::new(MemoryStore::new(hub.clone(), opts)),
            hub,
            replica: None,
            _dir: None,
            _nats: None,
        },
        Kind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(SqliteStore::open(dir.path(), hub.clone(), opts).await.unwrap());
            Backend { store, hub, replica: None, _dir: Some(dir), _nats: None }
        }
        Kind::Nats => {
            let (url, server) = nats_url().await;
            let n = isolated(&url);
            let store = Arc::new(NatsStore::open(n.clone(), hub.clone(), opts.clone()).await.unwrap());
            let replica: Arc<dyn Store> = Arc::new(NatsStore::open(n, Hub::new(4096), opts).await.unwrap());
            Backend { store, hub, replica: Some(replica), _dir: None, _nats: server }
        }
    }
}

fn normalizer() -> Normalizer {
    Normalizer::new(PhoneNormalizer::new("US").unwrap())
}

fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).unwrap()
}

fn batch(t: &str, vendor: Vendor, payload: &str, request_id: Option<&str>) -> IngestBatch {
    IngestBatch {
        tenant: tenant(t),
        request_id: request_id.map(str::to_string),
        normalized: normalizer().normalize(Some(vendor), payload.as_bytes(), None).unwrap(),
        received_at: Utc::now(),
        bridge_received_at: None,
    }
}

fn sf_batch(t: &str, event: &str, call: &str) -> IngestBatch {
    batch(t, Vendor::SalesforceVoice, &sf(event, call, json!({"callType": "inbound"})), None)
}

async fn ingest(store: &Arc<dyn Store>, b: IngestBatch) -> (IngestOutcome, Vec<u64>) {
    let r = store.ingest(b).await.unwrap();
    (r.outcome, r.records.iter().map(|r| r.sequence).collect())
}

async fn dedup(b: &Backend) {
    let s = &b.store;
    let (o, first) = ingest(s, sf_batch("t", "callconnected", "d1")).await;
    assert_eq!(o, IngestOutcome::Accepted);
    let (o, again) = ingest(s, sf_batch("t", "callconnected", "d1")).await;
    assert_eq!((o, again), (IngestOutcome::Duplicate, first.clone()), "the first delivery's records");
    let mut with_id = sf_batch("t", "hold", "d1");
    with_id.request_id = Some("r-1".into());
    let (o, held) = ingest(s, with_id.clone()).await;
    assert_eq!(o, IngestOutcome::Accepted);
    let (o, again) = ingest(s, with_id).await;
    assert_eq!((o, again), (IngestOutcome::Duplicate, held));
    let (o, none) = ingest(s, sf_batch("t", "hold", "d1")).await;
    assert_eq!((o, none.len()), (IngestOutcome::Duplicate, 1), "same content, nothing in between: a retry");
    ingest(s, sf_batch("t", "resume", "d1")).await;
    let (o, _) = ingest(s, sf_batch("t", "hold", "d1")).await;
    assert_eq!(o, IngestOutcome::Accepted, "same content after other events: new");
    let (o, _) = ingest(s, sf_batch("other", "callconnected", "d1")).await;
    assert_eq!(o, IngestOutcome::Accepted, "dedup keys are per tenant");
    let (o, seqs) = ingest(s, batch("t", Vendor::SalesforceVoice, &sf("callerverified", "d1", json!({})), None)).await;
    assert_eq!((o, seqs.len()), (IngestOutcome::Ignored, 0));
}

async fn read_paging_and_tenants(b: &Backend) {
    let s = &b.store;
    let mut mine = Vec::new();
    for i in 0..10 {
        mine.extend(ingest(s, sf_batch("a", "callstarted", &format!("p{i}"))).await.1);
        ingest(s, sf_batch("b", "callstarted", &format!("p{i}"))).await;
    }
    let first = s.read(&tenant("a"), 0, 4).await.unwrap();
    assert_eq!(first.iter().map(|r| r.sequence).collect::<Vec<_>>(), mine[..4]);
    let rest = s.read(&tenant("a"), first[3].sequence, 100).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.sequence).collect::<Vec<_>>(), mine[4..], "the rest, and a short read at the end");
    assert!(rest.iter().all(|r| r.tenant == "a"));
    assert!(s.read(&tenant("a"), *mine.last().unwrap(), 100).await.unwrap().is_empty());
    let bounds = s.bounds().await.unwrap();
    assert_eq!(bounds.last, 20);
    assert_eq!(bounds.pruned_through, 0);
}

async fn snapshot_get_and_list(b: &Backend) {
    let s = &b.store;
    let mut published = b.hub.subscribe("t", Arc::new(EventFilter::default()), None);
    ingest(s, sf_batch("t", "callconnected", "s1")).await;
    ingest(s, sf_batch("t", "callconnected", "s2")).await;
    ingest(s, sf_batch("t", "callended", "s2")).await;
    let (_, last) = ingest(s, sf_batch("t", "hold", "s3")).await;
    // The replica-local views of the NATS store follow the stream; a
    // record reaches the hub after the views have it.
    let caught_up =
        async { while published.recv_record().await.expect("the hub keeps the feed").sequence < last[0] {} };
    tokio::time::timeout(Duration::from_secs(10), caught_up).await.expect("the store's views follow the log");
    let snap = s.snapshot(&tenant("t")).await.unwrap();
    assert_eq!(snap.as_of, last[0]);
    assert_eq!(snap.calls.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(), vec!["sf:s1", "sf:s3"]);
    let c = s.get_call(&tenant("t"), "sf:s2").await.unwrap().unwrap();
    assert_eq!((c.call_sequence, c.last_sequence), (2, 3));
    assert!(s.get_call(&tenant("other"), "sf:s2").await.unwrap().is_none());
    let q = |state, before| CallQuery { state, before_first_sequence: before, limit: 10, ..CallQuery::default() };
    let all = s.list_calls(&tenant("t"), &q(StateFilter::Any, None)).await.unwrap();
    assert_eq!(all.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(), vec!["sf:s3", "sf:s2", "sf:s1"]);
    let page2 = s.list_calls(&tenant("t"), &q(StateFilter::Any, Some(all[0].first_sequence))).await.unwrap();
    assert_eq!(page2.len(), 2);
    let ended = s.list_calls(&tenant("t"), &q(StateFilter::Ended, None)).await.unwrap();
    assert_eq!(ended.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(), vec!["sf:s2"]);
}

async fn seek_time(b: &Backend) {
    let s = &b.store;
    // The memory and sqlite stores seek by `received_at`; NATS by the time
    // the server stored the message, which the ingest before `cut` precedes
    // and the one after it follows.
    let mut early = sf_batch("t", "callstarted", "early");
    early.received_at = Utc::now() - chrono::Duration::seconds(1);
    ingest(s, early).await;
    let cut = Utc::now();
    let mut later = sf_batch("t", "callstarted", "late");
    later.received_at = cut + chrono::Duration::seconds(1);
    let (_, seqs) = ingest(s, later).await;
    assert_eq!(s.seek_time(&tenant("t"), cut).await.unwrap(), seqs[0] - 1);
    assert_eq!(s.seek_time(&tenant("t"), Utc::now() + chrono::Duration::hours(1)).await.unwrap(), seqs[0]);
}

async fn the_hub_gets_records_in_log_order(b: &Backend) {
    let mut feed = b.hub.subscribe("t", Arc::new(EventFilter::default()), None);
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.extend(ingest(&b.store, sf_batch("t", "callstarted", &format!("h{i}"))).await.1);
    }
    for want in acked {
        let r = tokio::time::timeout(Duration::from_secs(10), feed.recv_record()).await.unwrap().unwrap();
        assert_eq!(r.sequence, want);
    }
}

/// Concurrent writers of one call (on two replicas when the backend has
/// them) never lose an update: `call_sequence` is 1..n in log order.
async fn concurrent_writers_of_one_call(b: &Backend) {
    let writers: Vec<Arc<dyn Store>> = match &b.replica {
        Some(r) => vec![b.store.clone(), r.clone(), b.store.clone(), r.clone()],
        None => vec![b.store.clone(); 4],
    };
    ingest(&b.store, sf_batch("t", "callconnected", "busy")).await;
    let mut tasks = Vec::new();
    for (w, store) in writers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let payload = json!({"type": "transcript", "detail": {"callId": "busy", "id": format!("u{w}-{i}"), "content": {"text": "hello"}, "sender": {"role": "Agent"}}});
                let r = store.ingest(batch("t", Vendor::SalesforceVoice, &payload.to_string(), None)).await.unwrap();
                assert_eq!(r.outcome, IngestOutcome::Accepted);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let records = b.store.read(&tenant("t"), 0, 1000).await.unwrap();
    let mut call_seqs = Vec::new();
    for r in records.iter().filter(|r| r.meta().call_id == "sf:busy") {
        let u = <switchboard::proto::v1::CallUpdate as prost::Message>::decode(r.update_bytes()).unwrap();
        call_seqs.push(u.event.unwrap().call_sequence);
    }
    assert_eq!(call_seqs, (1..=41).collect::<Vec<u64>>(), "gap-free and in log order");
    let call = b.store.get_call(&tenant("t"), "sf:busy").await.unwrap().unwrap();
    assert_eq!((call.call_sequence, call.transcript_count), (41, 40));
}

async fn agent_panel_events_correlate_into_one_call(b: &Backend) {
    let offered = fixture("8x8_agent_panel", "voice-phone-offered-cc.json");
    let accepted = fixture("8x8_agent_panel", "voice-phone-accepted-cc.json");
    let (_, o) = ingest(&b.store, batch("t", Vendor::AgentPanel8x8, &offered, None)).await;
    let (_, a) = ingest(&b.store, batch("t", Vendor::AgentPanel8x8, &accepted, None)).await;
    let recs = b.store.read(&tenant("t"), o[0] - 1, 10).await.unwrap();
    assert_eq!(recs.iter().map(|r| r.sequence).collect::<Vec<_>>(), vec![o[0], a[0]]);
    assert_eq!(recs[0].meta().call_id, recs[1].meta().call_id, "offered and accepted are one call");

    // The same caller offered on two agents' panels at once (each relay
    // names its agent): two calls, each agent's accept on her own.
    let relay = |payload: &str, agent: &str| {
        let payload = payload.replace("\"eventId\": \"", &format!("\"eventId\": \"{agent}-"));
        let normalized =
            normalizer().normalize_for(Some(Vendor::AgentPanel8x8), payload.as_bytes(), None, Some(agent)).unwrap();
        IngestBatch { normalized, ..batch("t2", Vendor::AgentPanel8x8, &payload, None) }
    };
    let mut call_of = std::collections::BTreeMap::new();
    for (payload, agent) in [(&offered, "ann"), (&offered, "bob"), (&accepted, "bob"), (&accepted, "ann")] {
        let (o, seqs) = ingest(&b.store, relay(payload, agent)).await;
        assert_eq!(o, IngestOutcome::Accepted, "{agent}");
        let rec = b.store.read(&tenant("t2"), seqs[0] - 1, 1).await.unwrap();
        call_of.entry(agent).or_insert_with(Vec::new).push(rec[0].meta().call_id.clone());
    }
    assert_eq!(call_of["ann"][0], call_of["ann"][1], "ann's accept is on ann's call");
    assert_eq!(call_of["bob"][0], call_of["bob"][1], "bob's accept is on bob's call");
    assert_ne!(call_of["ann"][0], call_of["bob"][0], "two agents' panels are two calls");
}

/// Party states, wrap-ups and a transfer under way (bookkeeping the next event needs) survive each store's
/// stored form of the call (wire bytes plus bookkeeping rows in sqlite, the key-value bucket in NATS).
async fn a_transfer_keeps_each_partys_state(b: &Backend) {
    let es = |event: &str, agent: &str, at: i64| {
        let body = json!({"Interaction": {
            "event": event, "interactionGUID": "int-conf-1", "interactionEventTS": at, "mediaType": "phone",
            "msgInfo": {}, "agentId": agent, "direction": "in",
            "attachedData": {"attachedDatum": [{"attachedDataKey": "phoneNum", "attachedDataValue": 5_515_557_212u64}]},
        }});
        batch("t", Vendor::EventStreaming8x8, &body.to_string(), None)
    };
    ingest(&b.store, es("InteractionAccepted", "grace", 1_744_819_230)).await;
    ingest(&b.store, es("InteractionTransferRequest", "grace", 1_744_819_300)).await;
    ingest(&b.store, es("InteractionPostProcess", "grace", 1_744_819_301)).await;
    let (o, _) = ingest(&b.store, es("InteractionParticipantChange", "ian", 1_744_819_302)).await;
    assert_eq!(o, IngestOutcome::Accepted);
    let call = b.store.get_call(&tenant("t"), "8x8es:int-conf-1").await.unwrap().unwrap();
    assert_eq!(call.state, switchboard::domain::CallState::Connected, "the customer talks to Ian");
    assert!(call.ended_at.is_none() && call.transfer_requested.is_none(), "the transfer completed");
    let state = |id: &str| call.parties.iter().find(|p| p.party_id == id).and_then(|p| p.state);
    use switchboard::domain::PartyState as P;
    assert_eq!(
        (state("customer"), state("agent:grace"), state("agent:ian")),
        (Some(P::Connected), Some(P::WrapUp), Some(P::Connected))
    );
    let recs = b.store.read(&tenant("t"), 0, 10).await.unwrap();
    assert_eq!(recs.len(), 4);
}

async fn an_expired_cursor_is_refused(kind: Kind) {
    let opts = StoreOptions { retention_max_events: Some(5), ..StoreOptions::default() };
    let b = backend(kind, opts).await;
    for i in 0..10 {
        ingest(&b.store, sf_batch("t", "callstarted", &format!("x{i}"))).await;
    }
    b.store.prune(Utc.timestamp_opt(2_000_000_000, 0).unwrap().min(Utc::now())).await.unwrap();
    let bounds = b.store.bounds().await.unwrap();
    assert_eq!((bounds.pruned_through, bounds.last), (5, 10));
    assert!(matches!(b.store.read(&tenant("t"), 1, 10).await, Err(StoreError::CursorExpired { oldest: 6 })));
    let rest = b.store.read(&tenant("t"), 5, 10).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.sequence).collect::<BTreeSet<_>>(), (6..=10).collect());
}

/// A call whose earlier events left retention (by count) still takes events.
async fn a_call_outlives_its_retained_events(kind: Kind) {
    let opts = StoreOptions { retention_max_events: Some(3), ..StoreOptions::default() };
    let b = backend(kind, opts).await;
    ingest(&b.store, sf_batch("t", "callconnected", "long")).await;
    for i in 0..6 {
        ingest(&b.store, sf_batch("t", "callstarted", &format!("other{i}"))).await;
    }
    b.store.prune(Utc::now()).await.unwrap();
    let (o, seqs) = ingest(&b.store, sf_batch("t", "hold", "long")).await;
    assert_eq!((o, seqs.len()), (IngestOutcome::Accepted, 1));
    let call = b.store.get_call(&tenant("t"), "sf:long").await.unwrap().unwrap();
    assert_eq!((call.call_sequence, call.on_hold), (2, true));
}

/// Idle expiry (DESIGN §3.6) at the store: the sweep's candidates, one
/// logged `CALL_ENDED` (`CALL_OUTCOME_EXPIRED`) however many replicas try, no
/// expiry of a call that had news since the sweep read it, and no reopening
/// by a late vendor event.
async fn idle_calls_expire_once(b: &Backend) {
    let s = &b.store;
    for (event, call) in [("callconnected", "idle-1"), ("callconnected", "busy-1"), ("callended", "done-1")] {
        ingest(s, sf_batch("exp", event, call)).await;
    }
    let later = Utc::now() + chrono::Duration::hours(13);
    let idle = chrono::Duration::hours(12);
    let mut candidates = Vec::new();
    for _ in 0..1000 {
        candidates = s.idle_calls(later, 10).await.unwrap();
        if candidates.len() == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let ids: BTreeSet<&str> = candidates.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["sf:busy-1", "sf:idle-1"]), "active calls only, any tenant");
    assert!(s.idle_calls(Utc::now() - chrono::Duration::hours(1), 10).await.unwrap().is_empty());
    // News for busy-1 after the sweep read it: its expiry must not apply.
    ingest(s, sf_batch("exp", "hold", "busy-1")).await;
    for call in &candidates {
        let batch = expiry_batch(tenant("exp"), call, later, idle);
        let replicas: Vec<&Arc<dyn Store>> = std::iter::once(s).chain(b.replica.as_ref()).collect();
        let outcomes = futures_util::future::join_all(replicas.iter().map(|r| r.ingest(batch.clone()))).await;
        let accepted = outcomes.iter().filter(|o| o.as_ref().unwrap().outcome == IngestOutcome::Accepted).count();
        let expected = usize::from(call.call_id == "sf:idle-1");
        assert_eq!(accepted, expected, "{}: one expiry however many replicas try", call.call_id);
    }
    let expired = s.get_call(&tenant("exp"), "sf:idle-1").await.unwrap().unwrap();
    assert_eq!((expired.state, expired.outcome), (CallState::Ended, Some(CallOutcome::Expired)));
    assert_eq!(expired.ended_at, Some(candidates.iter().find(|c| c.call_id == "sf:idle-1").unwrap().updated_at));
    let busy = s.get_call(&tenant("exp"), "sf:busy-1").await.unwrap().unwrap();
    assert_eq!(busy.state, CallState::OnHold, "a call with news stays open");
    // A late vendor event is recorded and never reopens the call.
    let (o, _) = ingest(s, sf_batch("exp", "resume", "idle-1")).await;
    assert_eq!(o, IngestOutcome::Accepted);
    let after = s.get_call(&tenant("exp"), "sf:idle-1").await.unwrap().unwrap();
    assert_eq!((after.state, after.outcome), (CallState::Ended, Some(CallOutcome::Expired)));
    // A second sweep finds nothing more to close on idle-1.
    let again = expiry_batch(tenant("exp"), &expired, later, idle);
    assert_ne!(s.ingest(again).await.unwrap().outcome, IngestOutcome::Accepted);
}

/// Issue 16: a long ingest of whole calls (every call new, customer numbers
/// repeating) under count retention and a short dedup window, the clock
/// moving 100 ms per call. After every retention pass each structure the
/// store keeps is back within its bound (`EntryCounts`): the log at the
/// retention count, calls at those with an event still in the log, dedup
/// keys at the window's worth. Counts, not RSS: it does not flake.
async fn entry_counts_return_to_their_bounds(kind: Kind) {
    const CALL: [&str; 6] = ["callstarted", "callconnected", "hold", "resume", "callended", "wrapupended"];
    // Fewer calls where each ingest costs more (an fsync, a JetStream
    // round trip); every store goes through many retention passes.
    let (calls, retained, round) = match kind {
        Kind::Memory => (2_400u64, 600u64, 200u64),
        Kind::Sqlite => (1_200, 600, 200),
        Kind::Nats => (180, 120, 30),
    };
    let window = Duration::from_secs(3);
    let opts = StoreOptions {
        dedup_window: window,
        retention_max_events: Some(retained),
        retention_max_age: None,
        ..StoreOptions::default()
    };
    let b = backend(kind, opts).await;
    let t0 = Utc::now() - chrono::Duration::hours(1);
    let at = |call: u64| t0 + chrono::Duration::milliseconds(call as i64 * 100);
    // Calls in one dedup window, plus the one being ingested.
    let window_calls = window.as_millis() as u64 / 100 + 1;
    let bound = EntryCounts {
        events: retained,
        calls: retained.div_ceil(CALL.len() as u64) + 1,
        correlation_keys: retained.div_ceil(CALL.len() as u64) + 1,
        dedup_keys: window_calls * CALL.len() as u64 * 2,
        cached_calls: retained.div_ceil(CALL.len() as u64) + 1,
    };
    let within = |c: &EntryCounts| {
        c.events <= bound.events
            && c.calls <= bound.calls
            && c.correlation_keys <= bound.correlation_keys
            && c.dedup_keys <= bound.dedup_keys
            && c.cached_calls <= bound.cached_calls
    };
    for call in 0..calls {
        let id = format!("soak-{call}");
        let number = format!("+1 (415) 200-{:04}", call % 50);
        for ev in CALL {
            let extra = match ev {
                "callstarted" | "callconnected" => json!({"callType": "inbound", "participant": number}),
                "hold" | "resume" => json!({"participant": number}),
                _ => json!({}),
            };
            let mut batch = batch("t", Vendor::SalesforceVoice, &sf(ev, &id, extra), None);
            batch.received_at = at(call);
            assert_eq!(ingest(&b.store, batch).await.0, IngestOutcome::Accepted, "{kind:?}: {ev} of {id}");
        }
        if (call + 1) % round != 0 {
            continue;
        }
        // Retention as the server runs it: bounded steps while there is
        // more. The NATS mirror follows the stream asynchronously: a call it
        // applies late goes at the next pass.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let counts = loop {
            while b.store.prune(at(call)).await.unwrap().more {}
            let counts = b.store.entry_counts().await.unwrap();
            if within(&counts) || tokio::time::Instant::now() > deadline {
                break counts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(within(&counts), "{kind:?} after {} calls: {counts:?} exceeds {bound:?}", call + 1);
        assert!(counts.events >= retained.min((call + 1) * CALL.len() as u64) / 2, "{kind:?}: {counts:?}");
    }
    b.store.close().await.unwrap();
    if let Some(r) = &b.replica {
        r.close().await.unwrap();
    }
}

async fn suite(kind: Kind) {
    for check in 0..9 {
        let b = backend(kind, StoreOptions::default()).await;
        match check {
            0 => dedup(&b).await,
            1 => read_paging_and_tenants(&b).await,
            2 => snapshot_get_and_list(&b).await,
            3 => seek_time(&b).await,
            4 => the_hub_gets_records_in_log_order(&b).await,
            5 => concurrent_writers_of_one_call(&b).await,
            6 => idle_calls_expire_once(&b).await,
            7 => agent_panel_events_correlate_into_one_call(&b).await,
            _ => a_transfer_keeps_each_partys_state(&b).await,
        }
        b.store.close().await.unwrap();
        if let Some(r) = &b.replica {
            r.close().await.unwrap();
        }
    }
    an_expired_cursor_is_refused(kind).await;
    a_call_outlives_its_retained_events(kind).await;
    entry_counts_return_to_their_bounds(kind).await;
}

#[tokio::test]
async fn the_memory_store_conforms() {
    suite(Kind::Memory).await;
}

#[tokio::test]
async fn the_sqlite_store_conforms() {
    suite(Kind::Sqlite).await;
}

#[tokio::test]
async fn the_nats_store_conforms() {
    suite(Kind::Nats).await;
}
