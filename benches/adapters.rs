//! Adapter throughput per vendor (payloads/s, parse + normalize) against
//! plain `serde_json::from_slice::<serde_json::Value>` on the same payloads
//! (performance.md B3). Every fixture that is not an error case takes part.
//!
//! `cargo bench --bench adapters` prints Criterion's numbers and, at the end,
//! the ratio per vendor: normalize payloads/s ÷ Value-parse payloads/s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use switchboard::adapters::{Normalizer, PhoneNormalizer};
use switchboard::domain::Vendor;

#[path = "support/mod.rs"]
mod support;

fn bench(c: &mut Criterion) -> Vec<(Vendor, usize)> {
    let normalizer = Normalizer::new(PhoneNormalizer::new("US").expect("valid region"));
    let all = support::payloads(&support::root());
    let mut counts = Vec::new();
    for vendor in Vendor::ALL {
        let set: Vec<&support::Payload> = all.iter().filter(|p| p.vendor == *vendor && p.outcome != "error").collect();
        if set.is_empty() {
            continue;
        }
        for p in &set {
            normalizer
                .normalize(p.given, &p.bytes, p.hint.as_deref())
                .unwrap_or_else(|e| panic!("{} does not normalize: {e}", p.name));
        }
        let mut g = c.benchmark_group(format!("adapters/{}", vendor.label()));
        g.throughput(Throughput::Elements(set.len() as u64));
        g.bench_function("serde_json_value", |b| {
            b.iter(|| {
                for p in &set {
                    black_box(serde_json::from_slice::<serde_json::Value>(black_box(&p.bytes)).ok());
                }
            })
        });
        g.bench_function("normalize", |b| {
            b.iter(|| {
                for p in &set {
                    black_box(normalizer.normalize(p.given, black_box(&p.bytes), p.hint.as_deref()).ok());
                }
            })
        });
        g.finish();
        counts.push((*vendor, set.len()));
    }
    counts
}

/// Criterion's mean time of one benchmark, from its saved estimates.
fn mean_ns(group: &str, name: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"), std::path::PathBuf::from);
    let path = dir.join("criterion").join(group.replace('/', "_")).join(name).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v.pointer("/mean/point_estimate")?.as_f64()
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let counts = bench(&mut c);
    c.final_summary();
    println!("\nadapter throughput vs serde_json::Value parse of the same payloads (higher ratio is better):");
    for (vendor, n) in counts {
        let group = format!("adapters/{}", vendor.label());
        if let (Some(v), Some(a)) = (mean_ns(&group, "serde_json_value"), mean_ns(&group, "normalize")) {
            let per_s = |ns: f64| n as f64 / (ns / 1e9);
            println!(
                "  {:<22} {n:>3} payloads: Value parse {:>9.0}/s, normalize {:>9.0}/s, ratio {:.3}",
                vendor.label(),
                per_s(v),
                per_s(a),
                v / a
            );
        }
    }
}
