//! The in-process ingest path, for instruction counts (`scripts/callgrind`,
//! performance.md S12): normalize → plan → memory store append (encode once)
//! → hub publish to one live subscriber, for every accepted vendor fixture,
//! `--passes` times. Each pass uses its own tenant, so every ingest is new
//! and the work is the same from run to run.
//!
//! Only `measured` is counted (`valgrind --toggle-collect=*measured*`): the
//! first pass warms up (phone metadata, regex caches) outside of it.
//!
//! `--store sqlite` appends to the SQLite store instead (a fresh file in a
//! temporary directory), one ingest at a time, so every group commits one
//! payload. Its writer is a thread of its own, which a toggle on `measured`
//! would not count: `scripts/callgrind --store sqlite` counts everything in
//! two runs of different lengths and divides the difference.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use switchboard::adapters::{Normalizer, PhoneNormalizer};
use switchboard::domain::{EventFilter, TenantId};
use switchboard::hub::Hub;
use switchboard::store::memory::MemoryStore;
use switchboard::store::sqlite::SqliteStore;
use switchboard::store::{IngestBatch, IngestOutcome, Store, StoreOptions};

/// The server binary's allocator (`src/main.rs`), so the count is the server's.
#[global_allocator]
static ALLOC: switchboard::alloc::Mimalloc = switchboard::alloc::Mimalloc;

#[path = "../benches/support/mod.rs"]
mod support;

struct Path {
    normalizer: Normalizer,
    store: Box<dyn Store>,
    feed: switchboard::hub::LiveFeed,
    payloads: Vec<support::Payload>,
}

impl Path {
    /// One pass over every payload; returns the events appended.
    async fn pass(&mut self, tenant: &TenantId) -> u64 {
        let received = Utc.with_ymd_and_hms(2025, 7, 2, 8, 41, 6).single().expect("valid time");
        let mut events = 0;
        for p in &self.payloads {
            let normalized = self.normalizer.normalize(p.given, &p.bytes, p.hint.as_deref()).expect("normalizes");
            let batch = IngestBatch {
                tenant: tenant.clone(),
                request_id: None,
                normalized,
                received_at: received,
                bridge_received_at: None,
            };
            let r = self.store.ingest(batch).await.expect("ingests");
            // Fixtures of one vendor may describe the same call; whatever
            // they do, they do the same every pass.
            if r.outcome == IngestOutcome::Accepted {
                events += r.records.len() as u64;
            }
            while let Some(rec) = self.feed.try_recv() {
                std::hint::black_box(rec.frame());
            }
        }
        events
    }
}

#[inline(never)]
fn measured(rt: &tokio::runtime::Runtime, path: &mut Path, passes: u64) -> u64 {
    let mut events = 0;
    for i in 1..=passes {
        let tenant = TenantId::parse(&format!("t{i}")).expect("valid tenant");
        events += rt.block_on(path.pass(&tenant));
    }
    events
}

fn main() {
    let arg = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let passes: u64 = arg("--passes").and_then(|v| v.parse().ok()).unwrap_or(10);
    let sqlite = match arg("--store").as_deref() {
        None | Some("memory") => false,
        Some("sqlite") => true,
        Some(other) => panic!("--store {other}: expected memory or sqlite"),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let hub = Hub::new(1 << 16);
    let feed = hub.subscribe("t0", Arc::new(EventFilter::default()), None);
    let payloads: Vec<_> =
        support::payloads(&support::root()).into_iter().filter(|p| p.outcome == "accepted").collect();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut path = Path {
        normalizer: Normalizer::new(PhoneNormalizer::new("US").expect("valid region")),
        store: if sqlite {
            let store = rt.block_on(SqliteStore::open(dir.path(), hub.clone(), StoreOptions::default()));
            Box::new(store.expect("opens the SQLite store"))
        } else {
            Box::new(MemoryStore::new(hub.clone(), StoreOptions::default()))
        },
        feed,
        payloads,
    };
    // Warm-up pass (tenant t0, whose feed is drained): lazy statics, caches.
    let warm = rt.block_on(path.pass(&TenantId::parse("t0").expect("valid tenant")));
    let events = measured(&rt, &mut path, passes);
    rt.block_on(path.store.close()).expect("closes the store");
    println!("payloads {} passes {passes} events {events} (warm-up {warm})", path.payloads.len());
}
