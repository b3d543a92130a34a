//! Brings a file of an older layout to [`schema::VERSION`] on open.
//!
//! Version 1 (every build up to d10bdb5) declared itself in `meta.schema_version`
//! and kept `call_json`, text dedup keys with `entry_json`, and the filter
//! columns beside every update. The migration runs in one transaction: the
//! old tables are renamed, the new ones filled from them (the log by one
//! `INSERT … SELECT`, calls and dedup keys re-encoded row by row), the old
//! ones dropped. A crash part-way leaves the old layout as it was, and the
//! next start migrates again. Afterwards `VACUUM` returns the old tables'
//! pages to the file system (needs free space about the size of the new
//! file; without it the pages are reused by later writes instead).

use std::path::Path;
use std::time::Instant;

use rusqlite::Connection;

use super::schema::{self, has_table};
use super::{StoreError, meta_get, put_dedup, upsert_call};
use crate::domain::Call;
use crate::plan::DedupEntry;

/// Rows re-encoded between progress logs.
const PROGRESS_EVERY: u64 = 100_000;

/// Migrates a version-1 file; refuses a file with tables but no version this
/// build knows.
pub(super) fn from_v1(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let declared = if has_table(conn, "meta")? { meta_get(conn, "schema_version")? } else { None };
    if declared.as_deref() != Some("1") {
        return Err(StoreError::Corrupt(format!(
            "{} has tables but no schema version this build knows (meta.schema_version = {declared:?}, \
             user_version = 0); refusing to read it",
            path.display()
        )));
    }
    let started = Instant::now();
    let size_before = file_size(path);
    tracing::info!(path = %path.display(), bytes = size_before, "migrating the sqlite store from schema version 1 to 2");
    let tx = conn.transaction()?;
    // The old indexes go first: the new ones reuse some of their names.
    tx.execute_batch(
        "DROP INDEX IF EXISTS events_by_tenant;
         DROP INDEX IF EXISTS events_by_time;
         DROP INDEX IF EXISTS calls_by_start;
         DROP INDEX IF EXISTS calls_ended;
         DROP INDEX IF EXISTS calls_by_correlation;
         DROP INDEX IF EXISTS dedup_by_time;
         ALTER TABLE events RENAME TO events_v1;
         ALTER TABLE calls RENAME TO calls_v1;
         ALTER TABLE dedup RENAME TO dedup_v1;
         ALTER TABLE meta RENAME TO meta_v1;",
    )?;
    tx.execute_batch(schema::DDL)?;
    tx.execute_batch("INSERT INTO meta (key, value) SELECT key, value FROM meta_v1 WHERE key != 'schema_version';")?;
    let events = tx.execute(
        "INSERT INTO events (seq, tenant, received_at, update_pb)
         SELECT seq, tenant, received_at, update_pb FROM events_v1 ORDER BY seq",
        [],
    )?;
    let mut calls = 0u64;
    {
        let mut stmt = tx.prepare("SELECT tenant, first_seq, correlation_key, call_json FROM calls_v1")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let tenant: String = r.get(0)?;
            let mut call: Call = serde_json::from_str(r.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?)?;
            // The columns are what version 1 read its indexes by.
            call.first_sequence = r.get::<_, i64>(1)? as u64;
            call.correlation_key = r.get(2)?;
            upsert_call(&tx, &tenant, &call, None)?;
            calls += 1;
            if calls.is_multiple_of(PROGRESS_EVERY) {
                tracing::info!(calls, "migrating calls");
            }
        }
    }
    let mut keys = 0u64;
    {
        // In time order: the new rows are numbered in it (the window removes
        // a prefix).
        let mut stmt = tx.prepare("SELECT tenant, key, entry_json FROM dedup_v1 ORDER BY created_at")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let tenant: String = r.get(0)?;
            let key: String = r.get(1)?;
            let entry: DedupEntry = serde_json::from_str(r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?)?;
            put_dedup(&tx, &tenant, &key, &entry)?;
            keys += 1;
            if keys.is_multiple_of(PROGRESS_EVERY) {
                tracing::info!(keys, "migrating dedup keys");
            }
        }
    }
    tx.execute_batch(
        "DROP TABLE events_v1;
         DROP TABLE calls_v1;
         DROP TABLE dedup_v1;
         DROP TABLE meta_v1;",
    )?;
    tx.pragma_update(None, "user_version", schema::VERSION)?;
    tx.commit()?;
    tracing::info!(
        events,
        calls,
        dedup_keys = keys,
        seconds = started.elapsed().as_secs_f64(),
        "migrated to schema version 2"
    );
    // Outside the transaction (VACUUM cannot run in one). The data is
    // already migrated; a VACUUM that fails (no room for the copy) only
    // leaves the freed pages inside the file for reuse.
    match conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);") {
        Ok(()) => {
            tracing::info!(bytes_before = size_before, bytes_after = file_size(path), "compacted after migration")
        }
        Err(e) => {
            tracing::warn!(error = %e, "VACUUM after migration failed; the freed pages stay in the file for reuse")
        }
    }
    Ok(())
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
