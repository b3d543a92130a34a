//! The E.164 form of a number already written internationally (`+1 (415)
//! 555-0100`, `+31152511411`) without libphonenumber's general parser.
//!
//! `phonenumber::parse` was 6.6 % of the server's CPU per Ingest in a `perf`
//! profile of S1, where every call brings a new number: it extracts the
//! number from free text, looks for extensions, IDDs and carrier codes with
//! regexes, and allocates along the way. A number that is `+`, digits and
//! the usual separators needs none of that when the crate would not strip a
//! national prefix from it: its E.164 form is `+` and its digits, and it is
//! valid exactly when [`valid::national_is_valid`] says so for its country
//! code and the rest. This module answers only then and leaves every other
//! number to the crate, so the answers are the crate's (a test compares the
//! two around every region's example numbers, written several ways).

use std::sync::OnceLock;

use phonenumber::metadata::DATABASE;
use regex::Regex;

use super::valid::{self, CODES, compile};

/// The crate's limits on a national significant number (`consts`).
const MIN_NATIONAL: usize = 2;
const MAX_NATIONAL: usize = 17;

/// `Some(e164)` or `Some(None)` (not a valid number) when the answer is
/// certain without the crate's parser; `None` when the crate must decide.
pub fn e164(raw: &str) -> Option<Option<String>> {
    let rest = raw.strip_prefix('+')?;
    let mut e164 = String::with_capacity(raw.len());
    e164.push('+');
    for c in rest.chars() {
        match c {
            '0'..='9' => e164.push(c),
            // Punctuation the crate's viability check accepts anywhere.
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let digits = &e164[1..];
    // The crate refuses these (too short, or a country code starting with
    // 0); the crate says so itself.
    if digits.len() <= MIN_NATIONAL || digits.starts_with('0') {
        return None;
    }
    // Country codes are prefix-free: the crate takes the first of one, two
    // or three digits that has metadata.
    let (code, info, national) = (1..=3).find_map(|len| {
        let code: u16 = digits[..len].parse().ok()?;
        let info = code_info(code);
        (!matches!(info, CodeInfo::Unknown)).then(|| (code, info, &digits[len..]))
    })?;
    if national.starts_with('0') || !(MIN_NATIONAL..=MAX_NATIONAL).contains(&national.len()) || info.may_strip(national)
    {
        return None;
    }
    Some(valid::national_is_valid(code, national).then_some(e164))
}

/// What this module knows of one country calling code, read from the
/// crate's metadata the first time the code is seen.
enum CodeInfo {
    /// No metadata: not a country code (the crate tries a longer one).
    Unknown,
    /// What decides whether the crate strips a national prefix from a
    /// number of this code: every region's `national_prefix_for_parsing`
    /// (anchored) and `national_prefix`.
    Known { patterns: Vec<Regex>, prefixes: Vec<String> },
    /// A pattern did not compile: the crate decides every number of it.
    Unreadable,
}

impl CodeInfo {
    fn of(code: u16) -> CodeInfo {
        let Some(regions) = DATABASE.by_code(&code) else { return CodeInfo::Unknown };
        let mut patterns = Vec::new();
        let mut prefixes = Vec::new();
        for meta in regions {
            if let Some(p) = meta.national_prefix_for_parsing() {
                // The crate strips when its leftmost match starts at the
                // first digit: exactly when the anchored pattern matches.
                match compile(p.as_str()) {
                    Some(p) => patterns.push(p),
                    None => return CodeInfo::Unreadable,
                }
            }
            if let Some(p) = meta.national_prefix() {
                prefixes.push(p.to_string());
            }
        }
        CodeInfo::Known { patterns, prefixes }
    }

    /// Whether the crate might strip a national prefix (or carrier code)
    /// from `national`, under whichever region of the code it picks: then
    /// the E.164 form is not simply the digits given.
    fn may_strip(&self, national: &str) -> bool {
        match self {
            CodeInfo::Known { patterns, prefixes } => {
                patterns.iter().any(|p| p.is_match(national))
                    || prefixes.iter().any(|p| national.starts_with(p.as_str()))
            }
            CodeInfo::Unknown | CodeInfo::Unreadable => true,
        }
    }
}

/// The [`CodeInfo`] of country code `code` (below [`CODES`]).
fn code_info(code: u16) -> &'static CodeInfo {
    static SEEN: OnceLock<Box<[OnceLock<CodeInfo>]>> = OnceLock::new();
    static UNKNOWN: CodeInfo = CodeInfo::Unknown;
    let table = SEEN.get_or_init(|| (0..CODES).map(|_| OnceLock::new()).collect());
    table.get(usize::from(code)).map_or(&UNKNOWN, |slot| slot.get_or_init(|| CodeInfo::of(code)))
}

#[cfg(test)]
mod tests {
    use phonenumber::metadata::Descriptor;

    use super::*;

    /// The crate's answer for an international number: what
    /// `PhoneNormalizer` gave before this module.
    fn crate_e164(raw: &str) -> Option<String> {
        let n = phonenumber::parse(None, raw).ok()?;
        phonenumber::is_valid(&n).then(|| n.format().mode(phonenumber::Mode::E164).to_string())
    }

    /// Every region's example numbers and their neighbours, written five
    /// ways, and with the region's national prefix in front: where this
    /// module answers, it answers as the crate does, and it answers for
    /// most of them.
    #[test]
    fn answers_as_the_crate_does_or_not_at_all() {
        let (mut answered, mut deferred, mut valid) = (0, 0, 0);
        for meta in DATABASE.iter() {
            let code = meta.country_code();
            let d = meta.descriptors();
            let examples = [Some(d.general()), d.fixed_line(), d.mobile(), d.toll_free(), d.voip(), d.uan()];
            for example in examples.into_iter().flatten().filter_map(Descriptor::example) {
                let mut nationals = vec![example.to_string(), format!("{example}7"), format!("9{example}")];
                if let Some(p) = meta.national_prefix() {
                    nationals.push(format!("{p}{example}"));
                }
                for national in nationals {
                    let split = national.len() / 2;
                    let (a, b) = national.split_at(split);
                    for raw in [
                        format!("+{code}{national}"),
                        format!("+{code} {a} {b}"),
                        format!("+{code} ({a}) {b}"),
                        format!("+{code}-{a}-{b}"),
                        format!("+{code}.{a}.{b}"),
                    ] {
                        match e164(&raw) {
                            Some(ours) => {
                                assert_eq!(ours, crate_e164(&raw), "{raw} ({})", meta.id());
                                answered += 1;
                                valid += usize::from(ours.is_some());
                            }
                            None => deferred += 1,
                        }
                    }
                }
            }
        }
        assert!(answered > 3 * deferred && valid > 2_000, "answered {answered}, deferred {deferred}, valid {valid}");
    }

    #[test]
    fn leaves_other_shapes_to_the_crate() {
        for raw in [
            "14155550100",          // no `+`
            "+1 415 555 0100 x12",  // an extension
            "+1-800-FLOWERS",       // letters
            "+0064 3 331 6005",     // an IDD after the `+`
            "+44 (0) 20 7946 0018", // the national prefix GB strips
            "+39 06 6982 0000",     // a leading zero the crate keeps apart
            "+12",                  // too short for the crate
            "tel:+14155550100",
        ] {
            assert_eq!(e164(raw), None, "{raw}");
        }
        assert_eq!(e164("+1 (415) 555-0100"), Some(crate_e164("+1 (415) 555-0100")));
        assert_eq!(e164("+31152511411"), Some(Some("+31152511411".to_string())));
        assert_eq!(e164("+999123456"), None, "no metadata for +999");
    }
}
