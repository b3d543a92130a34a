//! S9: the store without gRPC. Appends of 1, 16 and 256 ingests submitted
//! together (the sqlite writer commits what is waiting as one group: one
//! fsync), durable sqlite vs the memory store, and reading the log back by
//! range. Payloads are real fixtures (8x8 Event Streaming, Xelion, Salesforce)
//! with a fresh call id per ingest, normalized before the clock starts.
//!
//! `cargo bench --bench store`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use criterion::{BatchSize, Criterion, Throughput};
use futures_util::future::join_all;
use switchboard::adapters::{Normalizer, PhoneNormalizer};
use switchboard::domain::{TenantId, Vendor};
use switchboard::hub::Hub;
use switchboard::store::memory::MemoryStore;
use switchboard::store::sqlite::SqliteStore;
use switchboard::store::{IngestBatch, IngestOutcome, Store, StoreOptions};

#[path = "support/mod.rs"]
mod support;

/// (vendor, fixture, the id in it that makes a call distinct)
const TEMPLATES: &[(Vendor, &str, &str)] = &[
    (Vendor::EventStreaming8x8, "8x8_event_streaming/interaction-created.json", "ohWfVIbHJz2Hr2JFhAfdlb4Fa"),
    (Vendor::Xelion, "xelion/newCallEvent-inbound.json", "186ba647df1ef222"),
    (Vendor::SalesforceVoice, "salesforce_voice/callstarted.json", "4f1c2a9e-5b7d-4e3a-9c61-2d8b0e7f3a14"),
];

struct Source {
    normalizer: Normalizer,
    templates: Vec<(Vendor, String, &'static str)>,
    counter: AtomicU64,
    tenant: TenantId,
}

impl Source {
    fn new() -> Source {
        let root = support::root();
        Source {
            normalizer: Normalizer::new(PhoneNormalizer::new("US").expect("valid region")),
            templates: TEMPLATES
                .iter()
                .map(|(v, f, id)| (*v, std::fs::read_to_string(root.join(f)).expect("fixture reads"), *id))
                .collect(),
            counter: AtomicU64::new(0),
            tenant: TenantId::parse("bench").expect("valid tenant"),
        }
    }

    /// `n` ingests of new calls.
    fn batches(&self, n: usize) -> Vec<IngestBatch> {
        (0..n)
            .map(|_| {
                let i = self.counter.fetch_add(1, Ordering::Relaxed);
                let (vendor, text, id) = &self.templates[(i % self.templates.len() as u64) as usize];
                let payload = text.replace(id, &format!("{id}{i:x}"));
                IngestBatch {
                    tenant: self.tenant.clone(),
                    request_id: None,
                    normalized: self.normalizer.normalize(Some(*vendor), payload.as_bytes(), None).expect("normalizes"),
                    received_at: Utc::now(),
                    bridge_received_at: None,
                }
            })
            .collect()
    }
}

async fn append(store: &dyn Store, batches: Vec<IngestBatch>) {
    for r in join_all(batches.into_iter().map(|b| store.ingest(b))).await {
        assert_eq!(r.expect("ingest succeeds").outcome, IngestOutcome::Accepted);
    }
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let source = Source::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite: Arc<dyn Store> =
        Arc::new(rt.block_on(SqliteStore::open(dir.path(), Hub::new(16), StoreOptions::default())).expect("opens"));
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new(Hub::new(16), StoreOptions::default()));

    for batch in [1usize, 16, 256] {
        let mut g = c.benchmark_group(format!("store/append_batch_{batch}"));
        g.throughput(Throughput::Elements(batch as u64));
        for (name, store) in [("sqlite_durable", &sqlite), ("memory", &memory)] {
            g.bench_function(name, |b| {
                b.iter_batched(
                    || source.batches(batch),
                    |bs| rt.block_on(append(store.as_ref(), bs)),
                    BatchSize::PerIteration,
                )
            });
        }
        g.finish();
    }

    // Read back: whole log in pages of 512, as replay does.
    let tenant = source.tenant.clone();
    for (name, store) in [("sqlite", &sqlite), ("memory", &memory)] {
        let last = rt.block_on(store.bounds()).expect("bounds").last;
        let mut g = c.benchmark_group("store/read_range");
        let count = rt.block_on(async {
            let (mut after, mut n) = (0, 0u64);
            loop {
                let page = store.read(&tenant, after, 512).await.expect("reads");
                let Some(r) = page.last() else { break };
                after = r.sequence;
                n += page.len() as u64;
            }
            n
        });
        g.throughput(Throughput::Elements(count));
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut after = 0;
                    while after < last {
                        let page = store.read(&tenant, after, 512).await.expect("reads");
                        let Some(r) = page.last() else { break };
                        after = r.sequence;
                    }
                })
            })
        });
        g.finish();
    }
    rt.block_on(sqlite.close()).expect("closes");
    c.final_summary();
}
