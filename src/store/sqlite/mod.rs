//! The default store: one SQLite file (`switchboard.db` under `--data-dir`)
//! in WAL mode with `synchronous=FULL`, written by one thread with group
//! commit.
//!
//! Ingest requests queue to the writer thread. It takes every request that
//! is waiting (up to [`MAX_GROUP`]), plans each one in order against the
//! transaction (so later requests see earlier ones), commits once (one WAL
//! fsync for the whole group), and only then acknowledges them and publishes
//! their records to the hub. An acknowledged event is therefore on disk:
//! `kill -9` loses nothing that was acknowledged. Reads use a small pool of
//! read-only connections; WAL gives each read transaction a consistent view.
//!
//! The layout ([`schema`]) keeps each fact once in rows sized for their
//! tables; [`rows`] holds the stored forms, [`migrate`] brings files of
//! older builds to the current layout on open. Inspect it with the `sqlite3`
//! shell: `events` (the log; `update_pb` is the protobuf `CallUpdate`),
//! `calls` (`call_pb` is the protobuf `Call`), `dedup` (hashed keys), `meta`.

mod migrate;
mod rows;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hashbrown::HashMap;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;

use super::key::{Key, KeyRef};
use super::tail::Tail;
use super::{
    CallQuery, EntryCounts, IngestBatch, IngestOutcome, IngestResult, LogBounds, PruneStats, Record, Snapshot,
    StateFilter, Store, StoreError, StoreOptions,
};
use crate::domain::{Call, Direction, TenantId, Vendor};
use crate::hub::Hub;
use crate::plan::{self, DedupEntry, StateView};
use rows::{SEP, from_micros, micros};

/// The tables and indexes this build writes: for measuring SQLite alone
/// with the store's own layout (`benches/sqlite_floor.rs`, S2's floor).
pub const SCHEMA_DDL: &str = schema::DDL;

/// Most ingests committed in one transaction.
pub const MAX_GROUP: usize = 512;
/// Rows deleted per retention statement, to keep write transactions short.
const PRUNE_CHUNK: u64 = 10_000;
/// Calls kept in the writer's cache before it is reset.
const CALL_CACHE_LIMIT: usize = 100_000;
/// Bytes of the database file a reader maps (SQLite's `mmap_size`).
const READER_MMAP_BYTES: i64 = 1 << 30;
/// A reader's page cache, negative meaning KiB (SQLite's `cache_size`).
const READER_CACHE_KIB: i64 = -16 * 1024;
/// The writer's page cache, negative meaning KiB. SQLite's default (2 MiB)
/// made the writer read index pages back from the OS on every group once the
/// call and dedup indexes outgrew it (`pread` 2 % of the server's CPU in a
/// perf profile of S2).
const WRITER_CACHE_KIB: i64 = -16 * 1024;
/// WAL pages after which a commit copies the WAL back into the database
/// (SQLite's `wal_autocheckpoint`, default 1,000). The random-key indexes
/// (calls, dedup keys) dirty the same pages again and again; a longer
/// interval copies each of them once per checkpoint instead of several
/// times (the inline checkpoint was 6 % of the server's CPU in S2). The WAL
/// file grows to about this many 4 KiB pages between checkpoints.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 4_000;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    Ingest(Box<IngestBatch>, Reply<IngestResult>),
    Prune(DateTime<Utc>, Reply<PruneStats>),
    Close(oneshot::Sender<()>),
}

/// State shared by the writer thread and the async side.
struct Shared {
    bounds: Mutex<LogBounds>,
    healthy: AtomicBool,
    closed: AtomicBool,
    /// Calls in the writer's cache (for [`Store::entry_counts`]).
    cached_calls: AtomicU64,
    /// The newest committed records, for catching-up readers.
    tail: Tail,
}

/// The SQLite store.
pub struct SqliteStore {
    commands: mpsc::SyncSender<Command>,
    readers: Arc<ReaderPool>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Plans that do not depend on the values bound to a statement: without
    // this, SQLite may read a bound value while planning (to prove a partial
    // index fits) and then compile the statement again whenever that
    // binding changes, on every execution (`sqlite3Reprepare` took 3–5 % of
    // the server's CPU in perf profiles of S2). Our indexes are chosen by
    // the shape of each query; no plan here needs a value.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    if read_only {
        // Replays read the log sequentially: map it instead of a `pread` per
        // page (half of a replay's CPU without), and keep more of it cached.
        conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
        conn.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
    } else {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    }
    Ok(conn)
}

fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
}

fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

fn read_bounds(conn: &Connection) -> Result<LogBounds, StoreError> {
    let pruned_through: u64 = meta_get(conn, "pruned_through")?.and_then(|v| v.parse().ok()).unwrap_or(0);
    let pruned_through_time = meta_get(conn, "pruned_through_time")?.and_then(|v| v.parse().ok()).map(from_micros);
    let max: Option<i64> = conn.query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
    Ok(LogBounds { last: (max.unwrap_or(0) as u64).max(pruned_through), pruned_through, pruned_through_time })
}

impl SqliteStore {
    /// Opens (creating if needed) `switchboard.db` in `dir`.
    pub async fn open(dir: &Path, hub: Arc<Hub>, opts: StoreOptions) -> Result<SqliteStore, StoreError> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(&dir, hub, opts))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    fn open_blocking(dir: &Path, hub: Arc<Hub>, opts: StoreOptions) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("switchboard.db");
        let mut conn = open_connection(&path, false)?;
        schema::prepare(&mut conn, &path)?;
        let bounds = read_bounds(&conn)?;
        hub.set_head(bounds.last);
        let tail = Tail::new(opts.replay_cache_bytes, bounds.last);
        warm_tail(&conn, &tail)?;
        let shared = Arc::new(Shared {
            bounds: Mutex::new(bounds),
            healthy: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            cached_calls: AtomicU64::new(0),
            tail,
        });
        let (tx, rx) = mpsc::sync_channel(MAX_GROUP * 4);
        let writer =
            Writer { conn, hub, opts, shared: shared.clone(), cache: Cache::default(), next_seq: bounds.last + 1 };
        let handle = std::thread::Builder::new()
            .name("switchboard-sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        tracing::info!(path = %path.display(), last_sequence = bounds.last, "sqlite store open");
        Ok(SqliteStore {
            commands: tx,
            readers: Arc::new(ReaderPool { path: path.clone(), idle: Mutex::new(Vec::new()) }),
            shared,
            writer: Mutex::new(Some(handle)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn send<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        let commands = self.commands.clone();
        let cmd = make(tx);
        // The queue is bounded: a full queue blocks briefly, off the runtime.
        match commands.try_send(cmd) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(cmd)) => {
                tokio::task::spawn_blocking(move || commands.send(cmd))
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))?
                    .map_err(|_| StoreError::Closed)?;
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            let out = f(&mut conn);
            pool.put(conn);
            out
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

/// Read-only connections, reused across requests.
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn get(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => open_connection(&self.path, true),
        }
    }

    fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < 16 {
            idle.push(conn);
        }
    }
}

const RECORD_COLUMNS: &str = "seq, tenant, received_at, update_pb";

fn row_record(r: &rusqlite::Row<'_>) -> Result<Record, StoreError> {
    let update = r.get_ref(3)?.as_blob().map_err(rusqlite::Error::from)?;
    rows::load_record(r.get(0)?, r.get(1)?, r.get(2)?, update)
}

/// The columns [`row_call`] reads.
const CALL_COLUMNS: &str = "first_seq, correlation_key, first_received_at, call_pb, bookkeeping";

fn row_call(r: &rusqlite::Row<'_>) -> Result<Call, StoreError> {
    let columns = rows::CallColumns {
        first_sequence: r.get::<_, i64>(0)? as u64,
        correlation_key: r.get(1)?,
        first_received_at: r.get(2)?,
    };
    let call_pb = r.get_ref(3)?.as_blob().map_err(rusqlite::Error::from)?;
    let bookkeeping = r.get_ref(4)?.as_str_or_null().map_err(rusqlite::Error::from)?;
    rows::load_call(call_pb, bookkeeping, columns)
}

/// Every row of a query through `f` (rusqlite's `query_map` wants the
/// closure's error to be its own).
fn collect_rows<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    f: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// Inserts or rewrites a call's row. `wire` is the call's encoded
/// `pb::Call` when the caller has it (the record of the event that produced
/// this state).
fn upsert_call(tx: &Transaction<'_>, tenant: &str, call: &Call, wire: Option<&[u8]>) -> Result<(), StoreError> {
    let stored = rows::store_call(call, wire)?;
    tx.prepare_cached(
        "INSERT INTO calls (first_seq, tenant, call_id, last_seq, state, vendor, direction, queue_id, agent_ids, correlation_key, updated_at, first_received_at, call_pb, bookkeeping)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (tenant, call_id) DO UPDATE SET last_seq = excluded.last_seq, state = excluded.state,
           direction = excluded.direction, queue_id = excluded.queue_id, agent_ids = excluded.agent_ids,
           correlation_key = excluded.correlation_key, updated_at = excluded.updated_at,
           first_received_at = excluded.first_received_at, call_pb = excluded.call_pb,
           bookkeeping = excluded.bookkeeping",
    )?
    .execute(params![
        call.first_sequence as i64,
        tenant,
        call.call_id,
        call.last_sequence as i64,
        call.state.number(),
        call.vendor.number(),
        call.direction.map(Direction::number),
        call.queue_id,
        call.agent_ids.join(&SEP.to_string()),
        call.correlation_key,
        micros(call.updated_at),
        stored.first_received_at,
        stored.call_pb,
        stored.bookkeeping,
    ])?;
    Ok(())
}

/// Remembers a dedup key (a later write of the same key replaces the row,
/// numbering it anew: rows stay in insertion order for the window's prune).
fn put_dedup(tx: &Transaction<'_>, tenant: &str, key: &str, entry: &DedupEntry) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT OR REPLACE INTO dedup (key, created_at, entry) VALUES (?1, ?2, ?3)")?
        .execute(params![&rows::dedup_key(tenant, key)[..], micros(entry.created_at), rows::encode_dedup(entry)])?;
    Ok(())
}

/// Fills the replay tail with the newest events on disk, so that catch-ups
/// right after a restart read memory too.
fn warm_tail(conn: &Connection, tail: &Tail) -> Result<(), StoreError> {
    if tail.budget() == 0 {
        return Ok(());
    }
    let mut stmt = conn.prepare(&format!("SELECT {RECORD_COLUMNS} FROM events ORDER BY seq DESC"))?;
    let mut rows = stmt.query([])?;
    let mut newest_first = Vec::new();
    let mut bytes = 0;
    while let Some(row) = rows.next()? {
        let record = row_record(row)?;
        bytes += record.frame().len();
        if bytes > tail.budget() {
            break;
        }
        newest_first.push(Arc::new(record));
    }
    tail.warm(newest_first);
    Ok(())
}

fn check_cursor(shared: &Shared, after: u64) -> Result<(), StoreError> {
    let b = *shared.bounds.lock().unwrap_or_else(|p| p.into_inner());
    if after < b.pruned_through {
        return Err(StoreError::CursorExpired { oldest: b.oldest_available() });
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ingest(&self, batch: IngestBatch) -> Result<IngestResult, StoreError> {
        self.send(|reply| Command::Ingest(Box::new(batch), reply)).await
    }

    async fn read(&self, tenant: &TenantId, after: u64, limit: usize) -> Result<Vec<Arc<Record>>, StoreError> {
        check_cursor(&self.shared, after)?;
        if let Some(records) = self.shared.tail.read(tenant.as_str(), after, limit) {
            // Retention may have run between the check and the read.
            check_cursor(&self.shared, after)?;
            return Ok(records);
        }
        let tenant = tenant.as_str().to_string();
        let shared = self.shared.clone();
        self.with_reader(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM events WHERE tenant = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ))?;
            let records =
                collect_rows(&mut stmt, params![tenant, after as i64, limit as i64], |r| row_record(r).map(Arc::new))?;
            // Retention may have run between the check and the read.
            check_cursor(&shared, after)?;
            Ok(records)
        })
        .await
    }

    async fn bounds(&self) -> Result<LogBounds, StoreError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(*self.shared.bounds.lock().unwrap_or_else(|p| p.into_inner()))
    }

    async fn seek_time(&self, tenant: &TenantId, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let b = self.bounds().await?;
        if b.pruned_through_time.is_some_and(|t| t >= since) {
            return Err(StoreError::CursorExpired { oldest: b.oldest_available() });
        }
        let tenant = tenant.as_str().to_string();
        self.with_reader(move |conn| {
            let first: Option<i64> = conn.query_row(
                "SELECT min(seq) FROM events WHERE tenant = ?1 AND received_at >= ?2",
                params![tenant, micros(since)],
                |r| r.get(0),
            )?;
            Ok(match first {
                Some(s) => (s as u64 - 1).max(b.pruned_through),
                None => b.last,
            })
        })
        .await
    }

    async fn get_call(&self, tenant: &TenantId, call_id: &str) -> Result<Option<Call>, StoreError> {
        let (tenant, call_id) = (tenant.as_str().to_string(), call_id.to_string());
        self.with_reader(move |conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE tenant = ?1 AND call_id = ?2"))?;
            Ok(collect_rows(&mut stmt, [&tenant, &call_id], row_call)?.pop())
        })
        .await
    }

    async fn list_calls(&self, tenant: &TenantId, query: &CallQuery) -> Result<Vec<Call>, StoreError> {
        let tenant = tenant.as_str().to_string();
        let q = query.clone();
        self.with_reader(move |conn| {
            let state = match q.state {
                StateFilter::Any => "",
                StateFilter::Active => " AND state != 7",
                StateFilter::Ended => " AND state = 7",
            };
            let sql = format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE tenant = ?1 AND first_seq < ?2{state}
                 AND (?3 IS NULL OR vendor = ?3) AND (?4 IS NULL OR direction = ?4)
                 AND (?5 IS NULL OR instr(char(31) || agent_ids || char(31), char(31) || ?5 || char(31)) > 0)
                 AND (?6 IS NULL OR queue_id = ?6)
                 ORDER BY first_seq DESC LIMIT ?7"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let before = q.before_first_sequence.map_or(i64::MAX, |b| b as i64);
            collect_rows(
                &mut stmt,
                params![
                    tenant,
                    before,
                    q.vendor.map(Vendor::number),
                    q.direction.map(Direction::number),
                    q.agent_id,
                    q.queue_id,
                    q.limit as i64
                ],
                row_call,
            )
        })
        .await
    }

    async fn snapshot(&self, tenant: &TenantId) -> Result<Snapshot, StoreError> {
        let tenant = tenant.as_str().to_string();
        let floor = self.bounds().await?.pruned_through;
        self.with_reader(move |conn| {
            // One read transaction: the calls and the sequence agree.
            let tx = conn.transaction()?;
            let max: Option<i64> = tx.query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE tenant = ?1 AND state != 7 ORDER BY first_seq"
            ))?;
            let calls = collect_rows(&mut stmt, [&tenant], row_call)?;
            drop(stmt);
            tx.finish()?;
            Ok(Snapshot { calls, as_of: (max.unwrap_or(0) as u64).max(floor) })
        })
        .await
    }

    async fn idle_calls(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<Call>, StoreError> {
        // A scan of the active calls, once per retention interval; no index
        // on `updated_at`, which every event would have to update.
        self.with_reader(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CALL_COLUMNS} FROM calls WHERE state != 7 AND updated_at < ?1 ORDER BY updated_at LIMIT ?2"
            ))?;
            collect_rows(&mut stmt, params![micros(before), limit as i64], row_call)
        })
        .await
    }

    async fn prune(&self, now: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        self.send(|reply| Command::Prune(now, reply)).await
    }

    /// Counted on a reader connection, off the writer thread: the log from
    /// its bounds (sequences are dense), calls and dedup keys by their rows.
    async fn entry_counts(&self) -> Result<EntryCounts, StoreError> {
        let b = *self.shared.bounds.lock().unwrap_or_else(|p| p.into_inner());
        let cached_calls = self.shared.cached_calls.load(Ordering::Acquire);
        self.with_reader(move |conn| {
            let count = |table: &str| -> Result<u64, StoreError> {
                Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0))? as u64)
            };
            Ok(EntryCounts {
                events: b.last.saturating_sub(b.pruned_through),
                calls: count("calls")?,
                correlation_keys: 0,
                dedup_keys: count("dedup")?,
                cached_calls,
            })
        })
        .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        let commands = self.commands.clone();
        // The queue may be full: wait for room off the async runtime.
        let sent =
            tokio::task::spawn_blocking(move || commands.send(Command::Close(tx)).is_ok()).await.unwrap_or(false);
        if sent {
            let _ = rx.await;
        }
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        tracing::info!(path = %self.path.display(), "sqlite store closed");
        Ok(())
    }

    fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire) && !self.shared.closed.load(Ordering::Acquire)
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Without an explicit close, stop the writer once queued work is done.
        let (tx, _rx) = oneshot::channel();
        let _ = self.commands.try_send(Command::Close(tx));
    }
}

/// Committed state the writer keeps in memory.
#[derive(Default)]
struct Cache {
    /// Calls the writer read or wrote. Bound: retention drops an ended call
    /// with its rows (prune); and the cache is reset whenever it holds more
    /// than [`CALL_CACHE_LIMIT`] calls (many long-lived active calls).
    ///
    /// The planner takes a call out instead of copying it (see
    /// [`View::load_call`]); the group's commit puts the new state back.
    /// Boxed, as in the memory store: a rehash moves pointers, not calls.
    calls: HashMap<Key, Box<Call>>,
}

/// Writes of the current group, visible to later plans of the same group.
#[derive(Default)]
struct Pending {
    calls: HashMap<Key, Box<Call>>,
    dedup: HashMap<Key, DedupEntry>,
    records: HashMap<u64, Arc<Record>>,
}

struct View<'a, 'c> {
    tx: &'a Transaction<'c>,
    cache: &'a mut Cache,
    pending: &'a mut Pending,
}

impl View<'_, '_> {
    /// A call's committed state, or this group's newer one. `take` hands the
    /// cached copy over instead of cloning it: the planner builds the call's
    /// next state from it, and the group's commit caches that state (a failed
    /// group or an unchanged call leaves a miss, read back from the table).
    /// A call read from the table is cached only when it is not taken.
    fn load_call(&mut self, tenant: &str, call_id: &str, take: bool) -> Result<Option<Call>, StoreError> {
        let key = KeyRef(tenant, call_id);
        if let Some(c) = self.pending.calls.get(&key) {
            return Ok(Some(Call::clone(c)));
        }
        let cached = if take { self.cache.calls.remove(&key) } else { self.cache.calls.get(&key).cloned() };
        if let Some(c) = cached {
            return Ok(Some(*c));
        }
        let mut stmt =
            self.tx.prepare_cached(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE tenant = ?1 AND call_id = ?2"))?;
        let call = collect_rows(&mut stmt, [tenant, call_id], row_call)?.pop();
        if let Some(c) = &call
            && !take
        {
            self.cache.calls.insert((tenant.to_string(), call_id.to_string()), Box::new(c.clone()));
        }
        Ok(call)
    }
}

impl StateView for View<'_, '_> {
    type Error = StoreError;

    fn call(&mut self, tenant: &str, call_id: &str) -> Result<Option<Call>, StoreError> {
        self.load_call(tenant, call_id, true)
    }

    fn correlated(&mut self, tenant: &str, key: &str) -> Result<Vec<Call>, StoreError> {
        let ids: Vec<String> = self
            .tx
            .prepare_cached(
                "SELECT call_id FROM calls WHERE tenant = ?1 AND correlation_key = ?2 ORDER BY last_seq DESC LIMIT ?3",
            )?
            .query_map(params![tenant, key, plan::CORRELATION_CANDIDATES as i64], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        let mut calls = Vec::with_capacity(ids.len());
        // Candidates: at most one of them is this event's call.
        for id in ids {
            calls.extend(self.load_call(tenant, &id, false)?);
        }
        // Calls of this group not committed yet.
        for ((t, _), c) in &self.pending.calls {
            if t == tenant
                && c.correlation_key.as_deref() == Some(key)
                && !calls.iter().any(|x: &Call| x.call_id == c.call_id)
            {
                calls.push(Call::clone(c));
            }
        }
        calls.sort_by_key(|c| std::cmp::Reverse(c.last_sequence));
        Ok(calls)
    }

    fn dedup(&mut self, tenant: &str, key: &str) -> Result<Option<DedupEntry>, StoreError> {
        if let Some(e) = self.pending.dedup.get(&KeyRef(tenant, key)) {
            return Ok(Some(e.clone()));
        }
        let mut stmt = self.tx.prepare_cached("SELECT entry, created_at FROM dedup WHERE key = ?1")?;
        let key = rows::dedup_key(tenant, key);
        let mut found = collect_rows(&mut stmt, [&key[..]], |r| {
            let entry = r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            rows::decode_dedup(entry, r.get(1)?)
        })?;
        Ok(found.pop())
    }
}

/// The writer thread.
struct Writer {
    conn: Connection,
    hub: Arc<Hub>,
    opts: StoreOptions,
    shared: Arc<Shared>,
    cache: Cache,
    next_seq: u64,
}

/// The result of one planned ingest inside a group.
struct Planned {
    outcome: IngestOutcome,
    records: Vec<Arc<Record>>,
    publish: bool,
    dedup_hit: Option<&'static str>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut closing = None;
        while closing.is_none() {
            let Ok(first) = rx.recv() else { break };
            let mut ingests = Vec::new();
            let mut queue = vec![first];
            while queue.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(c) => queue.push(c),
                    Err(_) => break,
                }
            }
            for cmd in queue {
                match cmd {
                    Command::Ingest(batch, reply) => ingests.push((batch, reply)),
                    Command::Prune(now, reply) => {
                        self.commit_group(std::mem::take(&mut ingests));
                        let _ = reply.send(self.prune(now));
                    }
                    Command::Close(done) => closing = Some(done),
                }
            }
            self.commit_group(ingests);
        }
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!(error = %e, "final WAL checkpoint failed");
        }
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    fn commit_group(&mut self, group: Vec<(Box<IngestBatch>, Reply<IngestResult>)>) {
        if group.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let first_seq = self.next_seq;
        let mut pending = Pending::default();
        // A panic while planning (a bug) must fail this group, not kill the
        // writer: the transaction rolls back as it unwinds.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.write_group(&group, &mut pending)))
            .unwrap_or_else(|_| Err(StoreError::Backend("the writer panicked while planning this group".into())));
        match outcome {
            Ok(results) => {
                self.shared.healthy.store(true, Ordering::Release);
                if self.next_seq > first_seq {
                    self.shared.bounds.lock().unwrap_or_else(|p| p.into_inner()).last = self.next_seq - 1;
                }
                if self.cache.calls.len() > CALL_CACHE_LIMIT {
                    self.cache.calls.clear();
                }
                self.cache.calls.extend(pending.calls);
                self.shared.cached_calls.store(self.cache.calls.len() as u64, Ordering::Release);
                let to_publish: Vec<Arc<Record>> =
                    results.iter().filter(|p| p.publish).flat_map(|p| p.records.iter().cloned()).collect();
                self.shared.tail.push(&to_publish);
                self.hub.publish(&to_publish);
                metrics::histogram!("switchboard_store_commit_seconds", "store" => "sqlite")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("switchboard_store_group_size", "store" => "sqlite").record(group.len() as f64);
                for ((_, reply), p) in group.into_iter().zip(results) {
                    let _ =
                        reply.send(Ok(IngestResult { outcome: p.outcome, records: p.records, dedup_hit: p.dedup_hit }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, size = group.len(), "group commit failed");
                self.shared.healthy.store(false, Ordering::Release);
                self.next_seq = first_seq;
                for (_, reply) in group {
                    let _ = reply.send(Err(StoreError::Unavailable(format!("commit failed: {e}"))));
                }
            }
        }
    }

    fn write_group(
        &mut self,
        group: &[(Box<IngestBatch>, Reply<IngestResult>)],
        pending: &mut Pending,
    ) -> Result<Vec<Planned>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut results = Vec::with_capacity(group.len());
        for (batch, _) in group {
            let tenant = batch.tenant.as_str().to_string();
            let mut view = View { tx: &tx, cache: &mut self.cache, pending };
            let plan = plan::plan(batch, &mut view, &mut self.next_seq, self.opts.windows())?;
            for (key, entry) in &plan.dedup_writes {
                put_dedup(&tx, &tenant, key, entry)?;
                pending.dedup.insert((tenant.clone(), key.clone()), entry.clone());
            }
            if plan.outcome != IngestOutcome::Accepted {
                let records = Self::records_by_seq(&tx, pending, &plan.duplicate_of)?;
                results.push(Planned { outcome: plan.outcome, records, publish: false, dedup_hit: plan.dedup_hit });
                continue;
            }
            let mut records = Vec::with_capacity(plan.appended.len());
            for (event, call) in plan.appended {
                let (sequence, received_at) = (event.sequence, event.received_at);
                let record = Arc::new(Record::from_event(event, call.as_ref()));
                tx.prepare_cached("INSERT INTO events (seq, tenant, received_at, update_pb) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![sequence as i64, tenant, micros(received_at), record.update_bytes()])?;
                if let Some(call) = call {
                    upsert_call(&tx, &tenant, &call, record.call_bytes().as_deref())?;
                    pending.calls.insert((tenant.clone(), call.call_id.clone()), Box::new(call));
                }
                pending.records.insert(sequence, record.clone());
                records.push(record);
            }
            results.push(Planned { outcome: IngestOutcome::Accepted, records, publish: true, dedup_hit: None });
        }
        tx.commit()?;
        Ok(results)
    }

    fn records_by_seq(tx: &Transaction<'_>, pending: &Pending, seqs: &[u64]) -> Result<Vec<Arc<Record>>, StoreError> {
        let mut out = Vec::with_capacity(seqs.len());
        for s in seqs {
            if let Some(r) = pending.records.get(s) {
                out.push(r.clone());
                continue;
            }
            let mut stmt = tx.prepare_cached(&format!("SELECT {RECORD_COLUMNS} FROM events WHERE seq = ?1"))?;
            let r = collect_rows(&mut stmt, [*s as i64], row_record)?.pop();
            out.extend(r.map(Arc::new));
        }
        Ok(out)
    }

    /// One retention step: at most [`PRUNE_CHUNK`] events (so queued ingests
    /// never wait long behind it; the retention loop repeats while there is
    /// more), ended calls whose events are gone, and expired dedup keys.
    fn prune(&mut self, now: DateTime<Utc>) -> Result<PruneStats, StoreError> {
        let mut stats = PruneStats::default();
        let last = self.next_seq - 1;
        let mut cutoff: u64 = 0;
        if let Some(oldest) = self
            .opts
            .retention_max_age
            .and_then(|a| chrono::Duration::from_std(a).ok())
            .and_then(|a| now.checked_sub_signed(a))
        {
            let by_age: Option<i64> =
                self.conn
                    .query_row("SELECT max(seq) FROM events WHERE received_at < ?1", [micros(oldest)], |r| r.get(0))?;
            cutoff = cutoff.max(by_age.unwrap_or(0) as u64);
        }
        if let Some(max) = self.opts.retention_max_events {
            cutoff = cutoff.max(last.saturating_sub(max));
        }
        let before = *self.shared.bounds.lock().unwrap_or_else(|p| p.into_inner());
        if cutoff > before.pruned_through {
            let (from, to) = (before.pruned_through, (before.pruned_through + PRUNE_CHUNK).min(cutoff));
            let tx = self.conn.transaction()?;
            let newest: Option<i64> = tx.query_row(
                "SELECT max(received_at) FROM events WHERE seq > ?1 AND seq <= ?2",
                [from as i64, to as i64],
                |r| r.get(0),
            )?;
            stats.events =
                tx.execute("DELETE FROM events WHERE seq > ?1 AND seq <= ?2", [from as i64, to as i64])? as u64;
            let mut after = before;
            after.pruned_through = to;
            if let Some(t) = newest.map(from_micros) {
                after.pruned_through_time = Some(after.pruned_through_time.map_or(t, |p| p.max(t)));
            }
            meta_set(&tx, "pruned_through", &to.to_string())?;
            if let Some(t) = after.pruned_through_time {
                meta_set(&tx, "pruned_through_time", &micros(t).to_string())?;
            }
            // `state = 7` (ENDED) spelled out: the partial index `calls_ended`
            // serves only a literal.
            stats.calls = tx.execute("DELETE FROM calls WHERE state = 7 AND last_seq <= ?1", [to as i64])? as u64;
            // Readers re-check the bounds after reading: publish the new floor
            // before the rows disappear, so a racing read reports the cursor
            // expired instead of returning rows with a silent gap.
            *self.shared.bounds.lock().unwrap_or_else(|p| p.into_inner()) = after;
            if let Err(e) = tx.commit() {
                *self.shared.bounds.lock().unwrap_or_else(|p| p.into_inner()) = before;
                return Err(e.into());
            }
            self.shared.tail.trim_through(to);
            self.cache.calls.retain(|_, c| c.state.is_active() || c.last_sequence > to);
            self.shared.cached_calls.store(self.cache.calls.len() as u64, Ordering::Release);
            stats.more = to < cutoff;
        }
        if let Some(oldest) =
            chrono::Duration::from_std(self.opts.dedup_window).ok().and_then(|w| now.checked_sub_signed(w))
        {
            // Rows are numbered in insertion order: remove the prefix before
            // the first key still inside the window (a scan of just the
            // expired rows). A row written out of time order (a request id
            // remembered for an older first delivery) waits until the rows
            // before it expired too: never removed early.
            let first_live: Option<i64> = self
                .conn
                .query_row("SELECT id FROM dedup WHERE created_at >= ?1 ORDER BY id LIMIT 1", [micros(oldest)], |r| {
                    r.get(0)
                })
                .optional()?;
            stats.dedup_keys =
                self.conn.execute("DELETE FROM dedup WHERE id < ?1", [first_live.unwrap_or(i64::MAX)])? as u64;
        }
        Ok(stats)
    }
}
