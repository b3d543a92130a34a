//! The on-disk layout and its version (`PRAGMA user_version`).
//!
//! Version 2 (this build) keeps each fact once, in rows sized for their
//! tables (BENCHMARKS.md, "Storage footprint"):
//!
//! * `events`: the log. A rowid table keyed by the sequence (appends fill
//!   pages in order) holding the encoded `CallUpdate`, the tenant and the
//!   receive time; the filter metadata is decoded from the update on read.
//! * `calls`: one row per call, keyed by its first sequence (which never
//!   changes), rewritten in place on every event: the wire `Call` (the bytes
//!   the event's update carries), the bookkeeping the wire form lacks, and
//!   the columns listings filter on.
//! * `dedup`: one row per key, the key being 16 bytes of a hash; rows are
//!   numbered in insertion order, so the dedup window removes a prefix
//!   without an index on time.
//! * `meta`: the retention floor.
//!
//! Version 1 (every build up to d10bdb5: `call_json`, text dedup keys, filter
//! columns beside every update) is migrated on open ([`super::migrate`]).

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;
use super::migrate;

/// The layout this build reads and writes.
pub(super) const VERSION: i64 = 2;

/// The tables and indexes of [`VERSION`].
///
/// `calls_ended` names `CallState::Ended` by its number (7;
/// `ended_state_number_matches_the_schema` checks it).
pub(super) const DDL: &str = "
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    received_at INTEGER NOT NULL, -- microseconds
    update_pb BLOB NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant);
CREATE INDEX events_by_time ON events (received_at);
CREATE TABLE calls (
    first_seq INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    call_id TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    state INTEGER NOT NULL,
    vendor INTEGER NOT NULL,
    direction INTEGER,
    queue_id TEXT NOT NULL,
    agent_ids TEXT NOT NULL,
    correlation_key TEXT,
    updated_at INTEGER NOT NULL,
    first_received_at INTEGER, -- nanoseconds
    call_pb BLOB NOT NULL,
    bookkeeping TEXT
);
CREATE UNIQUE INDEX calls_by_id ON calls (tenant, call_id);
CREATE INDEX calls_by_tenant ON calls (tenant);
CREATE INDEX calls_ended ON calls (last_seq) WHERE state = 7;
CREATE INDEX calls_by_correlation ON calls (tenant, correlation_key, last_seq) WHERE correlation_key IS NOT NULL;
CREATE TABLE dedup (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    created_at INTEGER NOT NULL, -- microseconds
    entry BLOB NOT NULL
);
CREATE UNIQUE INDEX dedup_by_key ON dedup (key);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
";

/// The layout version a database file declares.
fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Whether the file has a table of this name.
pub(super) fn has_table(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1", [name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Brings the file at `conn` to [`VERSION`]: creates the tables of an empty
/// file, migrates an older layout, and refuses anything else (a newer build's
/// file, or tables this build does not know) rather than misread it.
pub(super) fn prepare(conn: &mut Connection, path: &std::path::Path) -> Result<(), StoreError> {
    match user_version(conn)? {
        VERSION => Ok(()),
        0 if !has_table(conn, "events")? => {
            let tx = conn.transaction()?;
            tx.execute_batch(DDL)?;
            tx.pragma_update(None, "user_version", VERSION)?;
            tx.commit()?;
            Ok(())
        }
        0 => migrate::from_v1(conn, path),
        v if v > VERSION => Err(StoreError::Corrupt(format!(
            "{} has schema version {v}, written by a newer switchboard; this build reads version {VERSION} \
             (run the newer build, or restore a backup taken before it ran)",
            path.display()
        ))),
        v => Err(StoreError::Corrupt(format!(
            "{} declares schema version {v}, which no switchboard build wrote; refusing to read it",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CallState;

    #[test]
    fn ended_state_number_matches_the_schema() {
        assert!(DDL.contains(&format!("WHERE state = {}", CallState::Ended.number())));
    }

    #[test]
    fn a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", VERSION + 1).unwrap();
        let err = prepare(&mut conn, &path).unwrap_err().to_string();
        assert!(err.contains("newer switchboard"), "{err}");
    }
}
