//! Golden tests of the vendor adapters.
//!
//! Every `tests/fixtures/<vendor>/<name>.json` is a vendor payload (valid
//! JSON, derived from the vendor's documented sample; corrections are listed
//! in that directory's README). Beside it, `<name>.expected.json` holds the
//! request options (`request`: `vendor_event_type`, `detect`, `agent_id`) and the canonical result (`expected`): the
//! outcome, the events as clients receive them (protobuf JSON) and the call
//! after them, produced by running the payload alone through the real
//! pipeline (adapter, ingest plan, state machine, memory store).
//!
//! Review a change of behaviour by regenerating the goldens and reading the
//! diff: `UPDATE_GOLDEN=1 cargo test --test fixtures`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use switchboard::adapters::{AdapterError, Normalizer, PhoneNormalizer};
use switchboard::domain::{TenantId, Vendor};
use switchboard::grpc::json::message;
use switchboard::hub::Hub;
use switchboard::proto::v1 as pb;
use switchboard::store::memory::MemoryStore;
use switchboard::store::{IngestBatch, Store, StoreOptions};

fn fixtures_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn vendor_of_dir(dir: &str) -> Vendor {
    Vendor::ALL
        .iter()
        .copied()
        .find(|v| v.label() == dir)
        .unwrap_or_else(|| panic!("fixture directory {dir:?} names no vendor"))
}

/// Every payload fixture of a vendor directory, sorted.
fn payloads(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().ends_with(".expected.json"))
        .collect();
    out.sort();
    out
}

fn golden_path(payload: &Path) -> PathBuf {
    payload.with_extension("expected.json")
}

/// Runs one payload through the pipeline and renders the result.
async fn render(vendor: Vendor, payload: &[u8], request: &Value) -> Value {
    let normalizer = Normalizer::new(PhoneNormalizer::new("US").expect("valid region"));
    let hint = request.get("vendor_event_type").and_then(Value::as_str);
    let detect = request.get("detect").and_then(Value::as_bool).unwrap_or(false);
    let agent_id = request.get("agent_id").and_then(Value::as_str);
    let normalized = match normalizer.normalize_for((!detect).then_some(vendor), payload, hint, agent_id) {
        Ok(n) => n,
        Err(e) => return error_json(&e),
    };
    let identity = normalized.identity.key();
    let vendor_event_type = normalized.vendor_event_type.clone();
    let ignored = normalized.ignored.clone();
    let used = normalized.vendor;
    let store = MemoryStore::new(Hub::new(16), StoreOptions::default());
    let batch = IngestBatch {
        tenant: TenantId::parse("acme").expect("valid tenant"),
        request_id: None,
        normalized,
        received_at: Utc.with_ymd_and_hms(2025, 7, 2, 8, 41, 6).single().expect("valid time"),
        bridge_received_at: None,
    };
    let result = store.ingest(batch).await.expect("memory store accepts");
    let mut events = Vec::new();
    let mut last_call = Value::Null;
    for r in &result.records {
        let update = <pb::CallUpdate as prost::Message>::decode(r.update_bytes()).expect("stored update decodes");
        events.push(message(update.event.as_ref().expect("event"), "switchboard.v1.CallEvent"));
        if let Some(c) = &update.call {
            last_call = message(c, "switchboard.v1.Call");
        }
    }
    json!({
        "vendor": format!("VENDOR_{}", used.name()),
        "vendor_event_type": vendor_event_type,
        "identity": identity,
        "outcome": result.outcome.label(),
        "ignored_reason": ignored,
        "events": events,
        "call": last_call,
    })
}

fn error_json(e: &AdapterError) -> Value {
    json!({
        "error": {
            "reason": e.reason(),
            "violations": e.violations().iter().map(|v| json!({"field": v.field, "description": v.description})).collect::<Vec<_>>(),
        }
    })
}

#[tokio::test]
async fn every_fixture_matches_its_golden_file() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let mut count = 0;
    for entry in std::fs::read_dir(fixtures_root()).expect("fixtures directory") {
        let dir = entry.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        let vendor = vendor_of_dir(&dir.file_name().expect("name").to_string_lossy());
        for payload_path in payloads(&dir) {
            count += 1;
            let payload = std::fs::read(&payload_path).expect("fixture readable");
            let gpath = golden_path(&payload_path);
            let golden: Value =
                std::fs::read(&gpath).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_else(|| json!({}));
            let request = golden.get("request").cloned().unwrap_or_else(|| json!({}));
            let actual = render(vendor, &payload, &request).await;
            if update {
                let mut out = serde_json::Map::new();
                if let Some(n) = golden.get("note") {
                    out.insert("note".into(), n.clone());
                }
                out.insert("request".into(), request.clone());
                out.insert("expected".into(), actual);
                let text = serde_json::to_string_pretty(&Value::Object(out)).expect("json") + "\n";
                std::fs::write(&gpath, text).expect("golden writable");
            } else if golden.get("expected") != Some(&actual) {
                failures.push(format!(
                    "{}:\n  expected: {}\n  actual:   {}",
                    payload_path.display(),
                    golden.get("expected").map_or("<missing golden>".to_string(), Value::to_string),
                    actual
                ));
            }
        }
    }
    assert!(count > 0, "no fixtures found");
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ from their golden files (UPDATE_GOLDEN=1 to regenerate):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_fixture_is_valid_json() {
    for entry in std::fs::read_dir(fixtures_root()).expect("fixtures directory") {
        let dir = entry.expect("entry").path();
        if dir.is_dir() {
            for p in payloads(&dir) {
                let bytes = std::fs::read(&p).expect("readable");
                serde_json::from_slice::<Value>(&bytes)
                    .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", p.display()));
            }
        }
    }
}

/// Every event type in every adapter's mapping table has at least one
/// fixture producing it.
#[tokio::test]
async fn every_mapped_vendor_event_type_has_a_fixture() {
    let normalizer = Normalizer::new(PhoneNormalizer::new("US").expect("valid region"));
    let mut missing = Vec::new();
    for &vendor in Vendor::ALL {
        let dir = fixtures_root().join(vendor.label());
        let mut seen = BTreeSet::new();
        if dir.is_dir() {
            for p in payloads(&dir) {
                let golden: Value = std::fs::read(golden_path(&p))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_else(|| json!({}));
                if let Some(t) = golden.pointer("/expected/vendor_event_type").and_then(Value::as_str) {
                    seen.insert(t.to_ascii_lowercase().replace('_', ""));
                }
            }
        }
        for t in normalizer.adapter(vendor).event_types() {
            if !seen.contains(&t.to_ascii_lowercase().replace('_', "")) {
                missing.push(format!("{}: {t}", vendor.label()));
            }
        }
    }
    assert!(missing.is_empty(), "vendor event types without a fixture:\n{}", missing.join("\n"));
}
