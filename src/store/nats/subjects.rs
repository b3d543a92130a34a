//! Safe NATS names for tenants and calls.
//!
//! Subjects are `<prefix>.<tenant>.<call>` (agent events: `<prefix>.<tenant>._agent`),
//! KV keys `<tenant>.<call>`. Tenant ids may contain `.` and call ids
//! anything a vendor sends (`SIP/wes-000001d8`, `sf:…`), so each token keeps
//! `[A-Za-z0-9_-]` and writes every other byte as `=XX` (hex). The result
//! never contains `.`, `*`, `>` or whitespace, is valid in subjects and KV
//! keys, and is unique per input, so one tenant's filter can never match
//! another tenant's subjects.

use crate::domain::identity::short_hash;

/// Escaped tokens longer than this are replaced by a hash, so no id can make
/// a NATS command line exceed the server's limit (4 KiB by default).
const MAX_TOKEN: usize = 200;

/// Escapes one subject or key token (a hash for over-long ones).
pub fn escape(s: &str) -> String {
    let out = escape_all(s);
    if out.len() > MAX_TOKEN { format!("h={}", short_hash(&[s.as_bytes()])) } else { out }
}

fn escape_all(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("=00");
    }
    out
}

/// The token of agent events (no call). Escaped call ids never start with
/// `_agent` alone: they always carry a vendor prefix and `=3A`.
pub const AGENT_TOKEN: &str = "_agent";

/// The subject of a call's events.
pub fn call_subject(prefix: &str, tenant: &str, call_id: &str) -> String {
    format!("{prefix}.{}.{}", escape(tenant), escape(call_id))
}

/// The subject of a tenant's agent events.
pub fn agent_subject(prefix: &str, tenant: &str) -> String {
    format!("{prefix}.{}.{AGENT_TOKEN}", escape(tenant))
}

/// The filter of all a tenant's subjects.
pub fn tenant_filter(prefix: &str, tenant: &str) -> String {
    format!("{prefix}.{}.>", escape(tenant))
}

/// The KV key of a call.
pub fn call_key(tenant: &str, call_id: &str) -> String {
    format!("{}.{}", escape(tenant), escape(call_id))
}

/// The KV key of a dedup or correlation key (hashed: vendor keys can be long).
pub fn hashed_key(tenant: &str, key: &str) -> String {
    format!("{}.{}", escape(tenant), short_hash(&[key.as_bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_safe_characters_and_escape_everything_else() {
        assert_eq!(escape("acme"), "acme");
        assert_eq!(escape("acme.eu"), "acme=2Eeu");
        assert_eq!(escape("xelion:SIP/wes-000001d8"), "xelion=3ASIP=2Fwes-000001d8");
        assert_eq!(escape("a>b*c d"), "a=3Eb=2Ac=20d");
        assert_eq!(escape("a=b"), "a=3Db", "the escape character itself is escaped");
    }

    #[test]
    fn over_long_tokens_become_a_hash() {
        let t = escape(&"/".repeat(1000));
        assert!(t.starts_with("h=") && t.len() < 64, "{t}");
        assert_ne!(t, escape(&"/".repeat(1001)));
    }

    #[test]
    fn a_tenant_filter_never_matches_another_tenants_subjects() {
        let acme = tenant_filter("switchboard", "acme");
        let other = call_subject("switchboard", "acme.eu", "sf:1");
        assert!(!other.starts_with(acme.trim_end_matches('>')));
        assert_eq!(call_subject("switchboard", "acme", "sf:1"), "switchboard.acme.sf=3A1");
    }
}
