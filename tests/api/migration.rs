//! The sqlite store opens a data directory written by an older build in the
//! version-1 layout (every build up to d10bdb5), migrates it, and reads back exactly what
//! was written: the log bytes and their metadata, every call with its
//! bookkeeping, dedup keys, the retention floor; sequences continue.
//!
//! The version-1 DDL and a writer of its rows (what that build's writer
//! did: the same ingest plan, `call_json`, text keys with `entry_json`) are
//! kept here, frozen, so the migration keeps being tested against the real
//! old layout.

use std::collections::HashMap;
use std::convert::Infallible;

use chrono::{Duration as ChronoDuration, Utc};
use rusqlite::{Connection, params};
use serde_json::json;
use switchboard::adapters::{Normalizer, PhoneNormalizer};
use switchboard::codec::Record;
use switchboard::domain::{Call, TenantId, Vendor};
use switchboard::hub::Hub;
use switchboard::plan::{self, DedupEntry, StateView};
use switchboard::store::sqlite::SqliteStore;
use switchboard::store::{CallQuery, IngestBatch, IngestOutcome, StateFilter, Store, StoreOptions};

use crate::common::sf;

/// The version-1 schema, as every build up to d10bdb5 created it.
const V1_DDL: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    call_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    vendor INTEGER NOT NULL,
    direction INTEGER,
    agent_ids TEXT NOT NULL,
    queue_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    update_pb BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_tenant ON events (tenant, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at);
CREATE TABLE IF NOT EXISTS calls (
    tenant TEXT NOT NULL,
    call_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    vendor INTEGER NOT NULL,
    direction INTEGER,
    queue_id TEXT NOT NULL,
    agent_ids TEXT NOT NULL,
    correlation_key TEXT,
    updated_at INTEGER NOT NULL,
    call_json TEXT NOT NULL,
    PRIMARY KEY (tenant, call_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS calls_by_start ON calls (tenant, first_seq);
CREATE INDEX IF NOT EXISTS calls_ended ON calls (last_seq) WHERE state = 'ENDED';
CREATE INDEX IF NOT EXISTS calls_by_correlation ON calls (tenant, correlation_key, last_seq) WHERE correlation_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS dedup (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    entry_json TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_time ON dedup (created_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
";

/// Separated agent ids, as version 1 joined them.
const SEP: &str = "\u{1f}";

/// Writes version-1 rows the way that build's writer did (one ingest per
/// transaction is enough here), planning with the shared ingest plan.
struct V1Writer {
    conn: Connection,
    calls: HashMap<(String, String), Call>,
    dedup: HashMap<(String, String), DedupEntry>,
    next_seq: u64,
}

impl StateView for V1Writer {
    type Error = Infallible;

    fn call(&mut self, tenant: &str, call_id: &str) -> Result<Option<Call>, Infallible> {
        Ok(self.calls.get(&(tenant.to_string(), call_id.to_string())).cloned())
    }

    fn correlated(&mut self, tenant: &str, key: &str) -> Result<Vec<Call>, Infallible> {
        let mut calls: Vec<Call> = self
            .calls
            .iter()
            .filter(|((t, _), c)| t == tenant && c.correlation_key.as_deref() == Some(key))
            .map(|(_, c)| c.clone())
            .collect();
        calls.sort_by_key(|c| std::cmp::Reverse(c.last_sequence));
        calls.truncate(plan::CORRELATION_CANDIDATES);
        Ok(calls)
    }

    fn dedup(&mut self, tenant: &str, key: &str) -> Result<Option<DedupEntry>, Infallible> {
        Ok(self.dedup.get(&(tenant.to_string(), key.to_string())).cloned())
    }
}

impl V1Writer {
    fn create(path: &std::path::Path) -> V1Writer {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(V1_DDL).unwrap();
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')", []).unwrap();
        V1Writer { conn, calls: HashMap::new(), dedup: HashMap::new(), next_seq: 1 }
    }

    /// Plans and writes one ingest; returns its records.
    fn ingest(&mut self, batch: &IngestBatch) -> (IngestOutcome, Vec<Record>) {
        let windows = StoreOptions::default().windows();
        let mut next = self.next_seq;
        let plan = plan::plan(batch, self, &mut next, windows).unwrap();
        self.next_seq = next;
        let tenant = batch.tenant.as_str().to_string();
        let tx = self.conn.transaction().unwrap();
        for (key, entry) in &plan.dedup_writes {
            tx.execute(
                "INSERT INTO dedup (tenant, key, created_at, entry_json) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, key) DO UPDATE SET created_at = excluded.created_at, entry_json = excluded.entry_json",
                params![tenant, key, entry.created_at.timestamp_micros(), serde_json::to_string(entry).unwrap()],
            )
            .unwrap();
        }
        let mut records = Vec::new();
        for (event, call) in &plan.appended {
            let record = Record::from_event(event.clone(), call.as_ref());
            let meta = record.meta();
            tx.execute(
                "INSERT INTO events (seq, tenant, call_id, conversation_id, event_type, vendor, direction, agent_ids, queue_id, received_at, event_id, update_pb)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    event.sequence as i64,
                    tenant,
                    meta.call_id,
                    meta.conversation_id,
                    event.event_type.name(),
                    event.vendor.number(),
                    meta.direction.map(|d| d.number()),
                    meta.agent_ids.join(SEP),
                    meta.queue_id,
                    event.received_at.timestamp_micros(),
                    event.event_id,
                    record.update_bytes(),
                ],
            )
            .unwrap();
            if let Some(call) = call {
                tx.execute(
                    "INSERT INTO calls (tenant, call_id, first_seq, last_seq, state, vendor, direction, queue_id, agent_ids, correlation_key, updated_at, call_json)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (tenant, call_id) DO UPDATE SET last_seq = excluded.last_seq, state = excluded.state,
                       direction = excluded.direction, queue_id = excluded.queue_id, agent_ids = excluded.agent_ids,
                       correlation_key = excluded.correlation_key, updated_at = excluded.updated_at, call_json = excluded.call_json",
                    params![
                        tenant,
                        call.call_id,
                        call.first_sequence as i64,
                        call.last_sequence as i64,
                        call.state.name(),
                        call.vendor.number(),
                        call.direction.map(|d| d.number()),
                        call.queue_id,
                        call.agent_ids.join(SEP),
                        call.correlation_key,
                        call.updated_at.timestamp_micros(),
                        serde_json::to_string(call).unwrap(),
                    ],
                )
                .unwrap();
                self.calls.insert((tenant.clone(), call.call_id.clone()), call.clone());
            }
            records.push(record);
        }
        tx.commit().unwrap();
        for (key, entry) in plan.dedup_writes {
            self.dedup.insert((tenant.clone(), key), entry);
        }
        (plan.outcome, records)
    }
}

fn normalizer() -> Normalizer {
    Normalizer::new(PhoneNormalizer::new("US").unwrap())
}

fn batch(tenant: &str, vendor: Vendor, payload: &str, request_id: Option<&str>, minutes_ago: i64) -> IngestBatch {
    IngestBatch {
        tenant: TenantId::parse(tenant).unwrap(),
        request_id: request_id.map(str::to_string),
        normalized: normalizer().normalize(Some(vendor), payload.as_bytes(), None).unwrap(),
        received_at: Utc::now() - ChronoDuration::minutes(minutes_ago),
        bridge_received_at: None,
    }
}

fn sf_batch(tenant: &str, event: &str, call: &str, minutes_ago: i64) -> IngestBatch {
    let extra = match event {
        "callstarted" | "callconnected" => json!({"callType": "inbound", "participant": "+1 (415) 555-0132"}),
        _ => json!({}),
    };
    batch(tenant, Vendor::SalesforceVoice, &sf(event, call, extra), None, minutes_ago)
}

/// An 8x8 Event Streaming event of one interaction (its transfer leaves
/// bookkeeping on the call that only the stored form keeps).
fn es_batch(event: &str, agent: &str, at: i64) -> IngestBatch {
    let body = json!({"Interaction": {
        "event": event, "interactionGUID": "int-mig-1", "interactionEventTS": at, "mediaType": "phone",
        "msgInfo": {}, "agentId": agent, "direction": "in",
        "attachedData": {"attachedDatum": [{"attachedDataKey": "phoneNum", "attachedDataValue": 5_515_557_212u64}]},
    }});
    batch("t", Vendor::EventStreaming8x8, &body.to_string(), None, 30)
}

#[tokio::test]
async fn a_version_1_data_directory_is_migrated_and_read_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.db");
    let mut old = V1Writer::create(&path);
    let mut written: Vec<Record> = Vec::new();
    let mut replayable = Vec::new();
    for (i, call) in ["m1", "m2", "m3"].iter().enumerate() {
        for event in ["callstarted", "callconnected", "hold", "resume", "callended", "wrapupended"] {
            if *call == "m3" && event == "callended" {
                break; // m3 stays active
            }
            let b = sf_batch("t", event, call, 60 - i as i64);
            let (outcome, records) = old.ingest(&b);
            assert_eq!(outcome, IngestOutcome::Accepted, "{call} {event}");
            written.extend(records);
            replayable.push(b);
        }
    }
    let with_id = batch("t", Vendor::SalesforceVoice, &sf("mute", "m3", json!({})), Some("req-m3"), 20);
    written.extend(old.ingest(&with_id).1);
    written.extend(old.ingest(&sf_batch("other", "callstarted", "m1", 10)).1);
    // A transfer requested and not completed: bookkeeping off the wire.
    for (event, agent, at) in
        [("InteractionAccepted", "grace", 1_744_819_230), ("InteractionTransferRequest", "grace", 1_744_819_300)]
    {
        let (outcome, records) = old.ingest(&es_batch(event, agent, at));
        assert_eq!(outcome, IngestOutcome::Accepted, "{event}");
        written.extend(records);
    }
    old.conn.execute("INSERT INTO meta (key, value) VALUES ('pruned_through', '0')", []).unwrap();
    let old_calls = old.calls.clone();
    drop(old);

    let store = SqliteStore::open(dir.path(), Hub::new(1024), StoreOptions::default()).await.unwrap();
    let t = TenantId::parse("t").unwrap();
    let other = TenantId::parse("other").unwrap();

    // The log: the same bytes and metadata at the same positions.
    let mut read = store.read(&t, 0, 1000).await.unwrap();
    read.extend(store.read(&other, 0, 1000).await.unwrap());
    read.sort_by_key(|r| r.sequence);
    assert_eq!(read.len(), written.len());
    for (r, w) in read.iter().zip(&written) {
        // Times are stored in microseconds (in both layouts).
        let at = |r: &Record| r.received_at.timestamp_micros();
        assert_eq!((r.sequence, &r.tenant, at(r)), (w.sequence, &w.tenant, at(w)));
        assert_eq!(r.update_bytes(), w.update_bytes(), "event {}", w.sequence);
        assert_eq!(r.meta(), w.meta(), "event {}", w.sequence);
    }
    assert_eq!(store.bounds().await.unwrap().last, written.len() as u64);

    // Every call, bookkeeping included.
    for ((tenant, call_id), call) in &old_calls {
        let got = store.get_call(&TenantId::parse(tenant).unwrap(), call_id).await.unwrap();
        assert_eq!(got.as_ref(), Some(call), "{tenant}/{call_id}");
    }
    let transfer = &old_calls[&("t".to_string(), "8x8es:int-mig-1".to_string())];
    assert!(transfer.transfer_requested.is_some(), "the fixture has bookkeeping to keep");

    // Listings and their filters.
    let ids = |calls: Vec<Call>| calls.into_iter().map(|c| c.call_id).collect::<Vec<_>>();
    let all = store.list_calls(&t, &CallQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(ids(all), ["8x8es:int-mig-1", "sf:m3", "sf:m2", "sf:m1"]);
    let active = CallQuery { state: StateFilter::Active, limit: 10, ..Default::default() };
    assert_eq!(ids(store.list_calls(&t, &active).await.unwrap()), ["8x8es:int-mig-1", "sf:m3"]);
    let ended = CallQuery { state: StateFilter::Ended, limit: 1, ..Default::default() };
    let page = store.list_calls(&t, &ended).await.unwrap();
    assert_eq!(ids(page.clone()), ["sf:m2"]);
    let next = CallQuery {
        state: StateFilter::Ended,
        before_first_sequence: Some(page[0].first_sequence),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(ids(store.list_calls(&t, &next).await.unwrap()), ["sf:m1"]);
    let sf_only = CallQuery { vendor: Some(Vendor::SalesforceVoice), limit: 10, ..Default::default() };
    assert_eq!(store.list_calls(&t, &sf_only).await.unwrap().len(), 3);
    assert_eq!(store.snapshot(&t).await.unwrap().calls.len(), 2);

    // Dedup keys: a redelivery is still a duplicate of the first delivery.
    let again = store.ingest(replayable[0].clone()).await.unwrap();
    assert_eq!(again.outcome, IngestOutcome::Duplicate);
    assert_eq!(again.records.iter().map(|r| r.sequence).collect::<Vec<_>>(), vec![1]);
    let again = store.ingest(with_id.clone()).await.unwrap();
    assert_eq!((again.outcome, again.dedup_hit), (IngestOutcome::Duplicate, Some("request_id")));

    // New events continue the log and the calls (the transfer completes
    // from the migrated bookkeeping).
    let next = store.ingest(sf_batch("t", "unmute", "m3", 0)).await.unwrap();
    assert_eq!(next.outcome, IngestOutcome::Accepted);
    assert_eq!(next.records[0].sequence, written.len() as u64 + 1);
    let joined = store.ingest(es_batch("InteractionParticipantChange", "ian", 1_744_819_302)).await.unwrap();
    assert_eq!(joined.outcome, IngestOutcome::Accepted);
    let call = store.get_call(&t, "8x8es:int-mig-1").await.unwrap().unwrap();
    assert!(call.transfer_requested.is_none(), "the transfer completed");
    store.close().await.unwrap();

    // The file now declares version 2 and holds no old table.
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 2);
    let old_tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema WHERE name LIKE '%_v1' OR name = 'dedup_by_time'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(old_tables, 0);
    // Opening again does not migrate again.
    drop(conn);
    let store = SqliteStore::open(dir.path(), Hub::new(16), StoreOptions::default()).await.unwrap();
    assert_eq!(store.bounds().await.unwrap().last, written.len() as u64 + 2);
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_file_of_an_unknown_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("switchboard.db")).unwrap();
    conn.execute_batch("CREATE TABLE events (seq INTEGER PRIMARY KEY, whatever TEXT);").unwrap();
    drop(conn);
    let err = SqliteStore::open(dir.path(), Hub::new(16), StoreOptions::default()).await.err().unwrap();
    assert!(err.to_string().contains("no schema version this build knows"), "{err}");
}
