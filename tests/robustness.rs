//! Robustness of the adapters: arbitrary bytes and mutated fixtures, fed to
//! every adapter (and, when accepted, through the whole pipeline), never
//! panic: the result is always a clean error or canonical events.
//!
//! Budget: `PROPTEST_CASES` (default 256 per property) keeps this to seconds
//! in CI; raise it for a longer local run.

use std::path::PathBuf;

use chrono::Utc;
use proptest::prelude::*;
use serde_json::Value;
use switchboard::adapters::{AdapterError, Normalizer, PhoneNormalizer};
use switchboard::domain::{TenantId, Vendor};
use switchboard::hub::Hub;
use switchboard::store::memory::MemoryStore;
use switchboard::store::{IngestBatch, Store, StoreOptions};

fn normalizer() -> Normalizer {
    Normalizer::new(PhoneNormalizer::new("US").unwrap())
}

/// Every fixture payload of every vendor.
fn fixtures() -> Vec<(Vendor, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for &v in Vendor::ALL {
        let Ok(dir) = std::fs::read_dir(root.join(v.label())) else { continue };
        for e in dir.flatten() {
            let p = e.path();
            let name = p.to_string_lossy().to_string();
            if name.ends_with(".json") && !name.ends_with(".expected.json") {
                out.push((v, std::fs::read(&p).unwrap()));
            }
        }
    }
    assert!(out.len() > 100, "fixtures are present");
    out
}

fn vendor_choice() -> impl Strategy<Value = Option<Vendor>> {
    prop_oneof![Just(None), (0..Vendor::ALL.len()).prop_map(|i| Some(Vendor::ALL[i]))]
}

fn hint() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("callHungUpEvent".to_string())),
        Just(Some("newCallEvent".to_string())),
        "[a-zA-Z]{0,20}".prop_map(Some)
    ]
}

/// Runs a payload through normalization and, when it is accepted, the whole
/// pipeline on a memory store. Panics are the only failure.
fn run(vendor: Option<Vendor>, payload: &[u8], hint: Option<&str>) {
    match normalizer().normalize(vendor, payload, hint) {
        Err(e) => assert!(!e.violations().is_empty(), "an error always names what is wrong: {e:?}"),
        Ok(n) => {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let store = MemoryStore::new(Hub::new(8), StoreOptions::default());
                let batch = IngestBatch {
                    tenant: TenantId::parse("fuzz").unwrap(),
                    request_id: None,
                    normalized: n,
                    received_at: Utc::now(),
                    bridge_received_at: None,
                };
                store.ingest(batch.clone()).await.unwrap();
                store.ingest(batch).await.unwrap();
            });
        }
    }
}

/// A random JSON value, from small scalars to awkward ones.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("N/A".into())),
        Just(Value::String("00:99:99".into())),
        Just(Value::String("9999999999999999999999".into())),
        Just(Value::String("+1 (415) 555-0132".into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the value at a random path of `v` (chosen by `pick`) with `new`.
fn mutate(v: &mut Value, pick: &mut impl Iterator<Item = usize>, new: Value) {
    let n = match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    let choice = pick.next().unwrap_or(0);
    if n == 0 || choice.is_multiple_of(4) {
        *v = new;
        return;
    }
    let i = choice % n;
    match v {
        Value::Object(m) => {
            let key = m.keys().nth(i).cloned().unwrap_or_default();
            if choice.is_multiple_of(7) {
                m.remove(&key);
            } else if let Some(child) = m.get_mut(&key) {
                mutate(child, pick, new);
            }
        }
        Value::Array(a) => mutate(&mut a[i], pick, new),
        _ => {}
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), vendor in vendor_choice(), hint in hint()) {
        run(vendor, &bytes, hint.as_deref());
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value(), vendor in vendor_choice(), hint in hint()) {
        run(vendor, value.to_string().as_bytes(), hint.as_deref());
    }

    #[test]
    fn mutated_fixtures_never_panic(
        index in any::<prop::sample::Index>(),
        path in prop::collection::vec(any::<usize>(), 1..6),
        new in json_value(),
        detect in any::<bool>(),
        hint in hint(),
    ) {
        let all = fixtures();
        let (vendor, bytes) = &all[index.index(all.len())];
        let mut value: Value = serde_json::from_slice(bytes).unwrap();
        mutate(&mut value, &mut path.into_iter(), new);
        run((!detect).then_some(*vendor), value.to_string().as_bytes(), hint.as_deref());
    }

    #[test]
    fn truncated_and_bit_flipped_fixtures_never_panic(
        index in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let all = fixtures();
        let (vendor, bytes) = &all[index.index(all.len())];
        let mut b = bytes.clone();
        for (at, byte) in flips {
            let i = at.index(b.len());
            b[i] ^= byte;
        }
        b.truncate(cut.index(b.len() + 1));
        run(Some(*vendor), &b, None);
    }
}

#[test]
fn deeply_nested_json_is_refused_by_the_parser_not_the_stack() {
    for depth in [200, 10_000, 1_000_000] {
        let deep = format!("{{\"type\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
        let err = normalizer().normalize(None, deep.as_bytes(), None).unwrap_err();
        assert!(matches!(err, AdapterError::InvalidJson { .. }), "{err:?}");
    }
}

#[test]
fn a_base64_payload_inside_a_pulsar_frame_cannot_smuggle_deep_nesting() {
    use base64::Engine;
    let inner = format!("{{\"Interaction\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let frame = serde_json::json!({
        "messageId": "CAEQAQ==",
        "payload": base64::engine::general_purpose::STANDARD.encode(inner),
        "publishTime": "2025-10-15T09:30:00.000Z",
        "redeliveryCount": 0
    });
    let r = normalizer().normalize(Some(Vendor::EventStreaming8x8), frame.to_string().as_bytes(), None);
    assert!(r.is_err());
}
