//! Deterministic ids: the same vendor event always yields the same event id,
//! so consumers can deduplicate across redeliveries and replicas.

use ring::digest::{Context, SHA256};
use sha1::{Digest, Sha1};
use uuid::Uuid;

use super::model::{EventType, Vendor};

/// The UUIDv5 namespace of switchboard event ids.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x5b1c_2f0e_8d4a_4c3e_9a71_3e0f_6d2b_8c41);

/// The event id of the `index`-th canonical event of type `event_type` made
/// from the vendor event with dedup key `identity_key` (`@at` appended when
/// `at` is set: a content-hash key's position in its call).
///
/// A UUIDv5 over `tenant NUL vendor NUL key[@at] NUL type NUL index`: the
/// name is fed to SHA-1 piece by piece instead of being formatted first
/// (every event pays for this), and the result is the same as
/// `Uuid::new_v5` over the formatted name (a test keeps it so: these ids
/// are part of the contract).
pub fn event_id(
    tenant: &str,
    vendor: Vendor,
    identity_key: &str,
    at: Option<u64>,
    event_type: EventType,
    index: usize,
) -> String {
    let mut numbers = itoa::Buffer::new();
    let mut h = Sha1::new();
    h.update(EVENT_NAMESPACE.as_bytes());
    h.update(tenant.as_bytes());
    h.update([0]);
    h.update(numbers.format(vendor.number()).as_bytes());
    h.update([0]);
    h.update(identity_key.as_bytes());
    if let Some(at) = at {
        h.update(b"@");
        h.update(numbers.format(at).as_bytes());
    }
    h.update([0]);
    h.update(event_type.name().as_bytes());
    h.update([0]);
    h.update(numbers.format(index).as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let uuid = uuid::Builder::from_sha1_bytes(bytes).into_uuid();
    // `to_owned`: `to_string` on a `&mut str` goes through `Display`.
    uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer()).to_owned()
}

/// A short stable hash (hex) of some bytes: used for content-hash dedup keys
/// and synthesized call ids.
///
/// ring's SHA-256 is OpenSSL's assembly (SHA-NI, else AVX or SSSE3): on a
/// CPU without SHA-NI it takes about 0.6x the instructions of the `sha2`
/// crate's portable code, which hashed every content-hash payload
/// (BENCHMARKS.md, S12). Its SHA-1 is portable Rust, slower than `sha1`'s,
/// so event ids keep `sha1`.
pub fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Context::new(&SHA256);
    for p in parts {
        h.update(&(p.len() as u64).to_be_bytes());
        h.update(p);
    }
    // Into an array, not `hex::encode`: that builds its string a `char` at a
    // time, a tenth of a content hash's instructions besides SHA-256 itself.
    let mut digits = [0u8; 32];
    hex::encode_to_slice(&h.finish().as_ref()[..16], &mut digits).expect("16 bytes are 32 hex digits");
    String::from_utf8_lossy(&digits).into_owned()
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
        let a = event_id("acme", Vendor::Xelion, "nat:x", None, EventType::CallEnded, 0);
        assert_eq!(a, event_id("acme", Vendor::Xelion, "nat:x", None, EventType::CallEnded, 0));
        assert_ne!(a, event_id("other", Vendor::Xelion, "nat:x", None, EventType::CallEnded, 0));
        assert_ne!(a, event_id("acme", Vendor::Xelion, "nat:x", None, EventType::CallMissed, 0));
        assert_ne!(a, event_id("acme", Vendor::Xelion, "nat:x", None, EventType::CallEnded, 1));
        assert_ne!(a, event_id("acme", Vendor::Xelion, "nat:x", Some(0), EventType::CallEnded, 0));
    }

    /// The ids every earlier release gave: `Uuid::new_v5` over the formatted
    /// name. A change here changes every event id and dedup outcome.
    #[test]
    fn event_ids_are_the_uuid_v5_of_the_formatted_name() {
        let formatted = |tenant: &str, vendor: Vendor, key: &str, t: EventType, index: usize| {
            let name = format!("{tenant}\u{0}{}\u{0}{key}\u{0}{}\u{0}{index}", vendor.number(), t.name());
            Uuid::new_v5(&EVENT_NAMESPACE, name.as_bytes()).to_string()
        };
        for (tenant, vendor, key, at, t, index) in [
            ("acme", Vendor::Xelion, "nat:x", None, EventType::CallEnded, 0),
            ("t1", Vendor::SalesforceVoice, "hash:0f3a", Some(7), EventType::CallHeld, 2),
            ("", Vendor::EventStreaming8x8, "8x8es:msg:CAAQAw==", None, EventType::CallStarted, 11),
            ("tenant-ünïcode", Vendor::AgentPanel8x8, "", Some(u64::MAX), EventType::AgentStatusChanged, 1),
        ] {
            let key_at = match at {
                Some(at) => format!("{key}@{at}"),
                None => key.to_string(),
            };
            assert_eq!(event_id(tenant, vendor, key, at, t, index), formatted(tenant, vendor, &key_at, t, index));
        }
        // One id from before this function was rewritten, verbatim.
        assert_eq!(
            event_id("acme", Vendor::Xelion, "nat:x", None, EventType::CallEnded, 0),
            formatted("acme", Vendor::Xelion, "nat:x", EventType::CallEnded, 0)
        );
    }

    /// Content hashes are dedup keys and feed event ids: these values
    /// (computed with Python's `hashlib`) must never change.
    #[test]
    fn short_hashes_are_the_length_prefixed_sha256() {
        assert_eq!(short_hash(&[br#"{"a":1,"b":{"c":2}}"#]), "7b90257d9dbea5648b718b566df2e590");
        assert_eq!(short_hash(&[b"acme", b"corr-key", b"2025-07-02T08:41:06Z"]), "07ff914255ada3194495656ee5a17dc3");
        assert_eq!(short_hash(&[]), "e3b0c44298fc1c149afbf4c8996fb924");
        let v: serde_json::Value = serde_json::from_str(r#"{ "b": {"c": 2}, "a": 1 }"#).unwrap();
        assert_eq!(canonical_json_hash(&v), "7b90257d9dbea5648b718b566df2e590");
    }

    #[test]
    fn canonical_hash_ignores_key_order_and_whitespace() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":{"c":2}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{ "b": {"c": 2}, "a": 1 }"#).unwrap();
        assert_eq!(canonical_json_hash(&a), canonical_json_hash(&b));
    }
}
