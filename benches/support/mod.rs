//! Fixture loading shared by the benches and the callgrind probe.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use switchboard::domain::Vendor;

/// One vendor payload as the fixtures give it.
pub struct Payload {
    /// `<vendor dir>/<file>`.
    pub name: String,
    /// The vendor of its directory.
    pub vendor: Vendor,
    /// `None` when the golden asks for detection.
    pub given: Option<Vendor>,
    /// The request's `vendor_event_type`.
    pub hint: Option<String>,
    /// The JSON bytes.
    pub bytes: Vec<u8>,
    /// The golden outcome (`accepted`, `ignored`, or `error`).
    pub outcome: String,
}

/// `tests/fixtures`.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture payload with a golden, sorted by name.
pub fn payloads(root: &Path) -> Vec<Payload> {
    let mut out = Vec::new();
    for vendor in Vendor::ALL {
        let dir = root.join(vendor.label());
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().ends_with(".expected.json"))
            .collect();
        files.sort();
        for file in files {
            let Ok(golden) = std::fs::read(file.with_extension("expected.json")) else { continue };
            let golden: Value = serde_json::from_slice(&golden).expect("golden is JSON");
            let request = golden.get("request").cloned().unwrap_or(Value::Null);
            let outcome = match golden.pointer("/expected/outcome").and_then(Value::as_str) {
                Some(o) => o.to_string(),
                None => "error".to_string(),
            };
            let detect = request.get("detect").and_then(Value::as_bool).unwrap_or(false);
            out.push(Payload {
                name: format!("{}/{}", vendor.label(), file.file_name().and_then(|n| n.to_str()).unwrap_or("?")),
                vendor: *vendor,
                given: (!detect).then_some(*vendor),
                hint: request.get("vendor_event_type").and_then(Value::as_str).map(str::to_string),
                bytes: std::fs::read(&file).expect("fixture reads"),
                outcome,
            });
        }
    }
    out
}
