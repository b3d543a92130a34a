//! S2's floor: what SQLite itself costs per event for the rows the sqlite
//! store writes, with no switchboard code on the path. Plain rusqlite, the
//! store's own layout ([`switchboard::store::sqlite::SCHEMA_DDL`]) and its
//! settings (WAL, `synchronous=FULL`, the writer's cache and checkpoint
//! interval), one new call per event as in S2, committed in groups of S2's
//! size. Then the same rows in leaner layouts, to show which part of the cost
//! a different design would remove (BENCHMARKS.md, "S2: the floor"):
//!
//! * `today`: every table and index; per event the writer's two lookups (the
//!   call by id, the dedup key: both miss), a dedup row, the event row and
//!   the call row (an upsert on `calls_by_id`).
//! * `lookups-in-memory`: without the two random-key indexes (`calls_by_id`,
//!   `dedup_by_key`), as if the writer kept those lookups in memory.
//! * `folded`: `lookups-in-memory` plus what would make it durable with
//!   bounded memory: the newest keys (dedup keys, call ids) kept in memory
//!   and folded into two keyed tables in large sorted batches (every
//!   [`FOLD_EVERY`] events), so that a leaf page takes many keys per write
//!   instead of one. The fold's cost is counted in the per-event figure.
//! * `log-only`: the event row and its two indexes: calls and dedup keys kept
//!   elsewhere (in memory, with snapshots).
//! * `bare-log`: the event row alone.
//!
//! Reported as process CPU per event and as a ratio to `bare-log` measured in
//! the same run (the machines are shared). Row sizes are S2's file averages:
//! an 880-byte update, a 408-byte wire call, a 60-byte dedup entry.
//!
//! `cargo bench --bench sqlite_floor [-- --events N --group G --rounds R]`

use std::time::Instant;

use rusqlite::{Connection, params};
use switchboard::store::sqlite::SCHEMA_DDL;

const LAYOUTS: [&str; 5] = ["today", "lookups-in-memory", "folded", "log-only", "bare-log"];
/// Events between two folds of the `folded` layout.
const FOLD_EVERY: usize = 20_000;
/// The keyed tables the `folded` layout folds into (a proposal, not the
/// store's layout).
const FOLDED_DDL: &str = "
CREATE TABLE dedup_keys (key BLOB PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE call_ids (key BLOB PRIMARY KEY, first_seq INTEGER NOT NULL) WITHOUT ROWID;";
const UPDATE_BYTES: usize = 880;
const CALL_BYTES: usize = 408;
const DEDUP_ENTRY_BYTES: usize = 60;

/// The statements of `SCHEMA_DDL` a layout keeps, by the name they create.
fn ddl(layout: &str) -> String {
    let keep = |name: &str| match layout {
        "today" => true,
        "lookups-in-memory" | "folded" => !matches!(name, "calls_by_id" | "dedup_by_key"),
        "log-only" => name.starts_with("events"),
        _ => name == "events",
    };
    SCHEMA_DDL
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter(|s| {
            let name = s.split_whitespace().find(|w| !matches!(*w, "CREATE" | "UNIQUE" | "TABLE" | "INDEX"));
            name.is_some_and(keep)
        })
        .map(|s| format!("{s};\n"))
        .collect()
}

/// xorshift64: reproducible bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// This process's CPU time (user and system), in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Writes `events` events in groups of `group` with `layout`; CPU µs per event.
fn run(layout: &str, events: usize, group: usize) -> f64 {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut conn = Connection::open(dir.path().join("floor.db")).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL").expect("WAL");
    conn.pragma_update(None, "synchronous", "FULL").expect("synchronous");
    conn.pragma_update(None, "cache_size", -16 * 1024).expect("cache_size");
    conn.pragma_update(None, "wal_autocheckpoint", 4_000).expect("wal_autocheckpoint");
    conn.execute_batch(&ddl(layout)).expect("the layout");
    if layout == "folded" {
        conn.execute_batch(FOLDED_DDL).expect("the folded tables");
    }
    let mut unfolded: Vec<([u8; 16], [u8; 16], i64)> = Vec::with_capacity(FOLD_EVERY);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (update, call_pb, entry) = (rng.bytes(UPDATE_BYTES), rng.bytes(CALL_BYTES), rng.bytes(DEDUP_ENTRY_BYTES));
    let with_calls = matches!(layout, "today" | "lookups-in-memory" | "folded");
    let started = cpu_seconds();
    let mut seq = 0i64;
    while (seq as usize) < events {
        let tx = conn.transaction().expect("begin");
        for _ in 0..group {
            seq += 1;
            let call_id = format!("{:016x}-{:016x}", rng.next(), rng.next());
            let key = rng.bytes(16);
            let at = 1_764_000_000_000_000i64 + seq * 50;
            if layout == "today" {
                let call: Option<i64> = tx
                    .prepare_cached("SELECT first_seq FROM calls WHERE tenant = ?1 AND call_id = ?2")
                    .and_then(|mut s| s.query_row(params!["acme", call_id], |r| r.get(0)))
                    .ok();
                let dedup: Option<Vec<u8>> = tx
                    .prepare_cached("SELECT entry FROM dedup WHERE key = ?1")
                    .and_then(|mut s| s.query_row([&key[..]], |r| r.get(0)))
                    .ok();
                assert!(call.is_none() && dedup.is_none(), "every event is new");
            }
            if with_calls {
                tx.prepare_cached("INSERT INTO dedup (key, created_at, entry) VALUES (?1, ?2, ?3)")
                    .and_then(|mut s| s.execute(params![&key[..], at, &entry[..]]))
                    .expect("dedup row");
            }
            tx.prepare_cached("INSERT INTO events (seq, tenant, received_at, update_pb) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(params![seq, "acme", at, &update[..]]))
                .expect("event row");
            if with_calls {
                let on_conflict = if layout == "today" {
                    " ON CONFLICT (tenant, call_id) DO UPDATE SET last_seq = excluded.last_seq, call_pb = excluded.call_pb"
                } else {
                    ""
                };
                let sql = format!(
                    "INSERT INTO calls (first_seq, tenant, call_id, last_seq, state, vendor, direction, queue_id, \
                     agent_ids, correlation_key, updated_at, first_received_at, call_pb, bookkeeping) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14){on_conflict}"
                );
                tx.prepare_cached(&sql)
                    .and_then(|mut s| {
                        s.execute(params![
                            seq,
                            "acme",
                            call_id,
                            seq,
                            2,
                            2,
                            1,
                            "support-nl",
                            "agent-1042",
                            None::<String>,
                            at,
                            at * 1000,
                            &call_pb[..],
                            None::<String>
                        ])
                    })
                    .expect("call row");
            }
        }
        tx.commit().expect("commit");
        if layout == "folded" {
            for k in 0..group {
                let n = seq as u64 - k as u64;
                let mut dedup = [0u8; 16];
                dedup[..8].copy_from_slice(&rng.next().to_be_bytes());
                let mut call = [0u8; 16];
                call[..8].copy_from_slice(&(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes());
                unfolded.push((dedup, call, n as i64));
            }
            if unfolded.len() >= FOLD_EVERY || seq as usize >= events {
                fold(&mut conn, &mut unfolded);
            }
        }
    }
    (cpu_seconds() - started) * 1e6 / events as f64
}

/// Writes the keys kept in memory into the keyed tables, sorted: one pass
/// over each B-tree, each leaf written once for all the keys it takes.
fn fold(conn: &mut Connection, unfolded: &mut Vec<([u8; 16], [u8; 16], i64)>) {
    let tx = conn.transaction().expect("begin fold");
    unfolded.sort_unstable_by_key(|k| k.0);
    for (dedup, _, id) in unfolded.iter() {
        tx.prepare_cached("INSERT INTO dedup_keys (key, id) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![&dedup[..], id]))
            .expect("fold a dedup key");
    }
    unfolded.sort_unstable_by_key(|k| k.1);
    for (_, call, seq) in unfolded.iter() {
        tx.prepare_cached("INSERT INTO call_ids (key, first_seq) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![&call[..], seq]))
            .expect("fold a call id");
    }
    tx.commit().expect("commit fold");
    unfolded.clear();
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (events, group, rounds) = (arg("--events", 100_000), arg("--group", 29), arg("--rounds", 3).max(1));
    // The layouts are cut from the store's DDL by name: fail loudly if a
    // renamed index would make two of them the same.
    assert!(ddl("today").contains("calls_by_id") && ddl("today").contains("dedup_by_key"));
    assert!(!ddl("lookups-in-memory").contains("_by_id") && !ddl("lookups-in-memory").contains("_by_key"));
    assert!(ddl("lookups-in-memory").contains("calls_by_tenant") && ddl("log-only").contains("events_by_time"));
    assert!(!ddl("log-only").contains("CREATE TABLE calls") && !ddl("bare-log").contains("INDEX"));
    println!("S2 floor: {events} events, one new call each, groups of {group}, {rounds} rounds (alternating)");
    let mut runs = vec![Vec::new(); LAYOUTS.len()];
    let wall = Instant::now();
    for _ in 0..rounds {
        for (i, layout) in LAYOUTS.iter().enumerate() {
            runs[i].push(run(layout, events, group));
        }
    }
    let bare = median(runs[LAYOUTS.len() - 1].clone());
    for (layout, us) in LAYOUTS.iter().zip(runs) {
        let shown: Vec<String> = us.iter().map(|u| format!("{u:.1}")).collect();
        let m = median(us);
        println!("  {layout:<18} {m:>6.1} µs CPU per event (runs {}), {:.2}× bare-log", shown.join(", "), m / bare);
    }
    println!("  ({:.0} s)", wall.elapsed().as_secs_f64());
}
