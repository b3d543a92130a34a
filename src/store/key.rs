//! `(tenant, id)` map keys shared by the stores' in-memory maps.
//!
//! Maps keyed by them are hashbrown's (foldhash): every ingest looks up
//! several keys, and SipHash plus two `String`s per lookup showed up in
//! profiles; [`KeyRef`] looks up without allocating.

use std::hash::{Hash, Hasher};

use hashbrown::Equivalent;

/// `(tenant, id)`: a call id, a correlation key or a dedup key of a tenant.
pub(super) type Key = (String, String);

/// A borrowed [`Key`]: hashes exactly as the tuple of `String`s does.
#[derive(Clone, Copy)]
pub(super) struct KeyRef<'a>(pub &'a str, pub &'a str);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

#[cfg(test)]
mod tests {
    use hashbrown::HashMap;

    use super::*;

    #[test]
    fn a_borrowed_key_finds_its_owned_key() {
        let mut m: HashMap<Key, u8> = HashMap::new();
        m.insert(("acme".into(), "c1".into()), 1);
        assert_eq!(m.get(&KeyRef("acme", "c1")), Some(&1));
        // The split between the two parts matters.
        assert_eq!(m.get(&KeyRef("acmec", "1")), None);
    }
}
