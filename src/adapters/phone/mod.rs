//! Phone numbers: kept exactly as the vendor gave them, plus E.164 when they
//! parse (libphonenumber metadata via the `phonenumber` crate).
//!
//! Vendors send `+1 (415) 999-0000`, `5515557212` (national, no country
//! code), `447799147855` (country code, no `+`), extensions (`40375`) and
//! names (Amazon Quick Connect, SIP accounts). Names become display names;
//! extensions stay numbers without E.164; nothing is dropped because it
//! fails to parse.

use hashbrown::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use phonenumber::country;

mod international;
mod valid;

use crate::domain::{Party, PartyRole};

/// Digits at or below this count, without a leading `+`, are extensions.
const MAX_EXTENSION_DIGITS: usize = 6;

/// Longer text is not a phone number (and is not parsed or remembered).
const MAX_NUMBER_LEN: usize = 48;

/// Numbers remembered by [`PhoneNormalizer::e164`] before the memory is reset:
/// the bound of the phone cache (entries of at most [`MAX_NUMBER_LEN`]
/// bytes; the whole cache is cleared when it is full).
const CACHE_LIMIT: usize = 16_384;

/// Normalizes phone numbers with a default region for national numbers.
///
/// Parsing with libphonenumber's metadata costs about 10 µs, about as much
/// as a whole gRPC call, and every event of a call repeats the same numbers,
/// so results are remembered (bounded).
#[derive(Clone, Debug)]
pub struct PhoneNormalizer {
    region: Option<country::Id>,
    cache: Arc<Mutex<HashMap<String, Option<String>>>>,
}

impl PhoneNormalizer {
    /// A normalizer for the CLDR region code `region` (`US`, `GB`, `NL`);
    /// empty means "no default region" (only international numbers parse).
    pub fn new(region: &str) -> Result<PhoneNormalizer, String> {
        let region = region.trim();
        if region.is_empty() {
            return Ok(PhoneNormalizer { region: None, cache: Arc::default() });
        }
        country::Id::from_str(&region.to_ascii_uppercase())
            .map(|id| PhoneNormalizer { region: Some(id), cache: Arc::default() })
            .map_err(|_| format!("unknown region code {region:?} (expected an ISO 3166 alpha-2 code such as US)"))
    }

    /// Loads libphonenumber's metadata (parsed on first use: a fraction of a
    /// second in a release build, seconds in a debug one) on a thread of its
    /// own, so that the first Ingest with a number does not wait for it.
    pub fn warm_up() {
        let spawned = std::thread::Builder::new().name("switchboard-phone-metadata".into()).spawn(|| {
            let _ = phonenumber::parse(None, "+14155550100").map(|n| phonenumber::is_valid(&n));
        });
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "phone metadata loads on first use instead");
        }
    }

    /// The E.164 form of `raw`, when it is a valid phone number.
    pub fn e164(&self, raw: &str) -> Option<String> {
        let raw = raw.trim();
        if raw.len() > MAX_NUMBER_LEN {
            return None;
        }
        if let Some(hit) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(raw) {
            return hit.clone();
        }
        let parsed = self.parse(raw);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(raw.to_string(), parsed.clone());
        parsed
    }

    fn parse(&self, raw: &str) -> Option<String> {
        if let Some(answer) = international::e164(raw) {
            return answer;
        }
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        if digits.len() <= MAX_EXTENSION_DIGITS && !raw.starts_with('+') {
            return None;
        }
        let valid = |n: phonenumber::PhoneNumber| {
            valid::is_valid(&n).then(|| n.format().mode(phonenumber::Mode::E164).to_string())
        };
        // International numbers parse without a region: with one, the crate
        // strips that region's national prefix after the country code
        // (`+31 15…` loses its `1` under region US).
        let region = if raw.starts_with('+') { None } else { self.region };
        let parsed = phonenumber::parse(region, raw).ok().and_then(valid);
        parsed.or_else(|| {
            // Country code without the `+` (8x8 `phoneNum: 447799147855`).
            (!raw.starts_with('+'))
                .then(|| phonenumber::parse(None, format!("+{digits}")).ok().and_then(valid))
                .flatten()
        })
    }

    /// A party from a vendor's "phone number or name" field.
    pub fn party(&self, raw: &str, role: PartyRole) -> Party {
        let raw = raw.trim();
        let mut party = Party { role: Some(role), ..Party::default() };
        if raw.is_empty() {
            return party;
        }
        let number = raw.strip_prefix("tel:").unwrap_or(raw);
        if number.chars().any(|c| c.is_alphabetic()) {
            party.display_name = raw.to_string();
        } else {
            party.phone_number = raw.to_string();
            party.e164 = self.e164(number).unwrap_or_default();
        }
        party
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> PhoneNormalizer {
        PhoneNormalizer::new("US").unwrap()
    }

    #[test]
    fn formatted_and_national_numbers_become_e164() {
        assert_eq!(us().e164("+1 (415) 999-0000").as_deref(), Some("+14159990000"));
        assert_eq!(us().e164("5515557212").as_deref(), Some("+15515557212"));
        assert_eq!(us().e164("+15515557212").as_deref(), Some("+15515557212"));
    }

    #[test]
    fn international_numbers_parse_whatever_the_default_region() {
        assert_eq!(us().e164("+31152511411").as_deref(), Some("+31152511411"));
        assert_eq!(us().e164("+31 10 123 4567").as_deref(), Some("+31101234567"));
    }

    #[test]
    fn a_country_code_without_plus_is_recognised() {
        assert_eq!(us().e164("447799147855").as_deref(), Some("+447799147855"));
    }

    #[test]
    fn the_default_region_decides_national_numbers() {
        let nl = PhoneNormalizer::new("nl").unwrap();
        assert_eq!(nl.e164("0152511411").as_deref(), Some("+31152511411"));
        assert!(PhoneNormalizer::new("XX").is_err());
    }

    #[test]
    fn extensions_and_names_are_not_forced_into_numbers() {
        let ext = us().party("40375", PartyRole::Agent);
        assert_eq!((ext.phone_number.as_str(), ext.e164.as_str()), ("40375", ""));
        let qc = us().party("Billing Queue Transfer", PartyRole::ThirdParty);
        assert_eq!((qc.display_name.as_str(), qc.phone_number.as_str()), ("Billing Queue Transfer", ""));
        let sip = us().party("wes", PartyRole::Agent);
        assert_eq!(sip.display_name, "wes");
    }

    #[test]
    fn garbage_keeps_the_raw_value_without_e164() {
        let p = us().party("123456789012345678", PartyRole::Customer);
        assert_eq!(p.phone_number, "123456789012345678");
        assert_eq!(p.e164, "");
    }
}
