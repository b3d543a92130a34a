//! Tenant ids: the unit of isolation for calls, events and dedup keys.

use std::fmt;

/// A validated tenant id: 1–64 characters of `[A-Za-z0-9._-]`, so it is safe
/// in NATS subjects, file names and metric labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

/// The tenant used when authentication is off and the request names none.
pub const DEFAULT_TENANT: &str = "default";

impl TenantId {
    /// Parses a tenant id; `Err` says what is wrong with it.
    pub fn parse(s: &str) -> Result<TenantId, &'static str> {
        if s.is_empty() {
            return Err("must not be empty");
        }
        if s.len() > 64 {
            return Err("must be at most 64 characters");
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return Err("may only contain letters, digits, '.', '_' and '-'");
        }
        Ok(TenantId(s.to_string()))
    }

    /// The `default` tenant.
    pub fn default_tenant() -> TenantId {
        TenantId(DEFAULT_TENANT.to_string())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_restricted_to_a_safe_alphabet() {
        assert!(TenantId::parse("acme-01.eu_west").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("a b").is_err());
        assert!(TenantId::parse("a>b").is_err());
        assert!(TenantId::parse(&"x".repeat(65)).is_err());
    }
}
