//! Bearer-token authentication (DESIGN §8).
//!
//! Tokens are configured only as SHA-256 hashes, each bound to one tenant and
//! a set of roles, in the config file or in a file named by `--auth-file`
//! (mounted from a Kubernetes Secret):
//!
//! ```toml
//! [[tokens]]
//! name = "acme-8x8-bridge"
//! sha256 = "<hex sha256 of the token>"
//! tenant = "acme"
//! roles = ["ingest"]
//! ```
//!
//! A presented token is hashed and compared with every configured hash in
//! constant time, so neither the token nor which entry matched leaks through
//! timing. The token file is re-read when it changes (Secret rotation).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::domain::TenantId;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Call `Ingest`.
    Ingest,
    /// Call `Subscribe`.
    Subscribe,
    /// Call `GetCall` and `ListCalls`.
    Query,
    /// Everything, for any tenant.
    Admin,
}

impl Role {
    /// The role's name as configured.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Subscribe => "subscribe",
            Role::Query => "query",
            Role::Admin => "admin",
        }
    }

    /// Parses a configured role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ingest" => Some(Role::Ingest),
            "subscribe" => Some(Role::Subscribe),
            "query" => Some(Role::Query),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// One configured token, as written in the config or token file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A label for logs and metrics (never the token itself).
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// The tenant the token acts for.
    pub tenant: String,
    /// What it may do.
    pub roles: Vec<Role>,
}

/// The shape of an `--auth-file`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    tokens: Vec<TokenConfig>,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's configured name.
    pub name: String,
    /// The token's tenant.
    pub tenant: TenantId,
    /// The token's roles.
    pub roles: BTreeSet<Role>,
}

impl Caller {
    /// Whether the caller has `role` (admins have every role).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }

    /// Whether the caller may act for other tenants.
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }
}

/// A configured token, validated.
#[derive(Clone, Debug)]
struct Entry {
    hash: [u8; 32],
    caller: Caller,
}

/// Why a token set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// The token file could not be read.
    #[error("cannot read auth file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The token file is not valid.
    #[error("invalid auth file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// An entry is invalid.
    #[error("invalid token {name:?}: {message}")]
    Entry {
        /// The entry's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

fn validate(t: &TokenConfig) -> Result<Entry, AuthConfigError> {
    let bad = |m: &str| AuthConfigError::Entry { name: t.name.clone(), message: m.to_string() };
    if t.name.trim().is_empty() {
        return Err(bad("name must not be empty"));
    }
    let bytes = hex::decode(t.sha256.trim()).map_err(|_| bad("sha256 must be 64 hex digits"))?;
    let hash: [u8; 32] = bytes.try_into().map_err(|_| bad("sha256 must be 64 hex digits"))?;
    let tenant = TenantId::parse(&t.tenant).map_err(|m| bad(&format!("tenant {m}")))?;
    if t.roles.is_empty() {
        return Err(bad("roles must not be empty"));
    }
    Ok(Entry { hash, caller: Caller { name: t.name.clone(), tenant, roles: t.roles.iter().copied().collect() } })
}

/// Reads the tokens of an auth file.
pub fn read_token_file(path: &Path) -> Result<Vec<TokenConfig>, AuthConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthConfigError::Read { path: path.into(), source })?;
    let file: TokenFile =
        toml::from_str(&text).map_err(|e| AuthConfigError::Parse { path: path.into(), message: e.to_string() })?;
    Ok(file.tokens)
}

/// Why a request was not authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` metadata.
    #[error("missing bearer token")]
    Missing,
    /// Not `Bearer <token>`.
    #[error("malformed authorization header; expected `Bearer <token>`")]
    Malformed,
    /// No configured token matches.
    #[error("invalid token")]
    Invalid,
}

/// The token set in force; swapped atomically when the token file changes.
#[derive(Clone, Default)]
pub struct Authenticator {
    entries: Arc<RwLock<Arc<Vec<Entry>>>>,
    enabled: bool,
}

impl Authenticator {
    /// Authentication off: every request is anonymous.
    pub fn disabled() -> Authenticator {
        Authenticator::default()
    }

    /// Authentication on, with these tokens.
    pub fn new(tokens: &[TokenConfig]) -> Result<Authenticator, AuthConfigError> {
        let entries = tokens.iter().map(validate).collect::<Result<Vec<_>, _>>()?;
        Ok(Authenticator { entries: Arc::new(RwLock::new(Arc::new(entries))), enabled: true })
    }

    /// Whether tokens are required.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// True when no tokens are configured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the token set (all or nothing: an invalid set keeps the old one).
    pub fn replace(&self, tokens: &[TokenConfig]) -> Result<(), AuthConfigError> {
        let entries = tokens.iter().map(validate).collect::<Result<Vec<_>, _>>()?;
        *self.entries.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(entries);
        Ok(())
    }

    fn snapshot(&self) -> Arc<Vec<Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Authenticates the value of an `authorization` header.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Malformed)?;
        let mut presented = [0u8; 32];
        presented.copy_from_slice(sha256(token.as_bytes()).as_ref());
        let entries = self.snapshot();
        let mut found: Option<&Entry> = None;
        for e in entries.iter() {
            // Compare with every entry, so timing does not tell which matched.
            if bool::from(e.hash.ct_eq(&presented)) {
                found = Some(e);
            }
        }
        found.map(|e| e.caller.clone()).ok_or(AuthError::Invalid)
    }
}

/// SHA-256, the hash a token file stores.
fn sha256(bytes: &[u8]) -> ring::digest::Digest {
    ring::digest::digest(&ring::digest::SHA256, bytes)
}

/// A fresh random token and its config entry (`switchboard token new`).
pub fn new_token(name: &str, tenant: &TenantId, roles: &[Role]) -> Result<(String, String), getrandom::Error> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let token = format!("sbt_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = hex::encode(sha256(token.as_bytes()));
    let roles = roles.iter().map(|r| format!("{:?}", r.name())).collect::<Vec<_>>().join(", ");
    let entry = format!("[[tokens]]\nname = {name:?}\nsha256 = \"{hash}\"\ntenant = \"{tenant}\"\nroles = [{roles}]\n");
    Ok((token, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, secret: &str, tenant: &str, roles: &[Role]) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            sha256: hex::encode(sha256(secret.as_bytes())),
            tenant: tenant.into(),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn a_configured_token_authenticates_as_its_tenant_and_roles() {
        let auth = Authenticator::new(&[token("bridge", "s3cret", "acme", &[Role::Ingest])]).unwrap();
        let c = auth.authenticate(Some("Bearer s3cret")).unwrap();
        assert_eq!((c.name.as_str(), c.tenant.as_str()), ("bridge", "acme"));
        assert!(c.has(Role::Ingest) && !c.has(Role::Subscribe));
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_told_apart() {
        let auth = Authenticator::new(&[token("bridge", "s3cret", "acme", &[Role::Ingest])]).unwrap();
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
        assert_eq!(auth.authenticate(Some("Basic abc")), Err(AuthError::Malformed));
        assert_eq!(auth.authenticate(Some("Bearer ")), Err(AuthError::Malformed));
        assert_eq!(auth.authenticate(Some("Bearer wrong")), Err(AuthError::Invalid));
    }

    #[test]
    fn admins_have_every_role() {
        let auth = Authenticator::new(&[token("ops", "root", "ops", &[Role::Admin])]).unwrap();
        let c = auth.authenticate(Some("Bearer root")).unwrap();
        assert!(c.has(Role::Query) && c.is_admin());
    }

    #[test]
    fn invalid_entries_are_refused_and_a_failed_reload_keeps_the_old_set() {
        let mut bad = token("x", "y", "acme", &[Role::Query]);
        bad.sha256 = "abc".into();
        assert!(Authenticator::new(&[bad.clone()]).is_err());
        let auth = Authenticator::new(&[token("a", "a", "acme", &[Role::Query])]).unwrap();
        assert!(auth.replace(&[bad]).is_err());
        assert!(auth.authenticate(Some("Bearer a")).is_ok());
    }

    #[test]
    fn a_new_token_round_trips_through_its_config_entry() {
        let tenant = TenantId::parse("acme").unwrap();
        let (tok, entry) = new_token("bridge", &tenant, &[Role::Ingest, Role::Subscribe]).unwrap();
        let file: TokenFile = toml::from_str(&entry).unwrap();
        let auth = Authenticator::new(&file.tokens).unwrap();
        let c = auth.authenticate(Some(&format!("Bearer {tok}"))).unwrap();
        assert!(c.has(Role::Subscribe) && c.tenant == tenant);
    }
}
