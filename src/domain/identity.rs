//! Deterministic ids: the same vendor event always yields the same event id,
//! so consumers can deduplicate across redeliveries and replicas.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::{EventType, Vendor};

/// The UUIDv5 namespace of switchboard event ids.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x5b1c_2f0e_8d4a_4c3e_9a71_3e0f_6d2b_8c41);

/// The event id of the `index`-th canonical event of type `event_type` made
/// from the vendor event with dedup key `identity_key`.
pub fn event_id(tenant: &str, vendor: Vendor, identity_key: &str, event_type: EventType, index: usize) -> String {
    let name = format!("{tenant}\u{0}{}\u{0}{identity_key}\u{0}{}\u{0}{index}", vendor.number(), event_type.name());
    Uuid::new_v5(&EVENT_NAMESPACE, name.as_bytes()).to_string()
}

/// A short stable hash (hex) of some bytes: used for content-hash dedup keys
/// and synthesized call ids.
pub fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..16])
}

/// Hash of a JSON value's canonical form (object keys sorted, no
/// whitespace), so two serializations of the same payload hash the same.
pub fn canonical_json_hash(value: &serde_json::Value) -> String {
    // serde_json's default map is a BTreeMap: keys serialize sorted.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    short_hash(&[&bytes])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_deterministic_and_distinguish_their_inputs() {
        let a = event_id("acme", Vendor::Xelion, "nat:x", EventType::CallEnded, 0);
        assert_eq!(a, event_id("acme", Vendor::Xelion, "nat:x", EventType::CallEnded, 0));
        assert_ne!(a, event_id("other", Vendor::Xelion, "nat:x", EventType::CallEnded, 0));
        assert_ne!(a, event_id("acme", Vendor::Xelion, "nat:x", EventType::CallMissed, 0));
        assert_ne!(a, event_id("acme", Vendor::Xelion, "nat:x", EventType::CallEnded, 1));
    }

    #[test]
    fn canonical_hash_ignores_key_order_and_whitespace() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":{"c":2}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{ "b": {"c": 2}, "a": 1 }"#).unwrap();
        assert_eq!(canonical_json_hash(&a), canonical_json_hash(&b));
    }
}
