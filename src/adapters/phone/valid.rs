//! Phone-number validity from libphonenumber's metadata, with the patterns
//! compiled once.
//!
//! `phonenumber::is_valid` answers the same question, but every pattern it
//! tries goes through the crate's shared regex cache: a mutex, a SipHash of
//! the pattern's text (hundreds of bytes) and an LRU update, per pattern, and
//! a number of the North American plan tries up to a dozen patterns twice.
//! That was about 5 % of the server's CPU per Ingest when every call brings a
//! new number (a `perf` profile of S1). This module reads the same metadata
//! (`phonenumber::metadata::DATABASE`), compiles each country code's patterns
//! into plain `regex::Regex`es the first time the code is seen, and follows
//! the crate's algorithm step for step (`validator::source_for`, then
//! `number_type(..) != Unknown`), so the answers are the crate's; a test
//! compares the two on every region's example numbers and their neighbours.

use std::sync::OnceLock;

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex::{Regex, RegexBuilder};

/// Country calling codes are one to three digits.
pub(super) const CODES: usize = 1000;

/// One pattern with the lengths it allows, matched like the crate's
/// `Descriptor::is_match`: the length first, then a match that starts at the
/// first digit (the crate does not require the match to cover the number).
#[derive(Debug)]
struct Pattern {
    regex: Regex,
    lengths: Vec<u16>,
}

impl Pattern {
    fn of(d: &Descriptor) -> Option<Pattern> {
        Some(Pattern { regex: compile(d.national_number().as_str())?, lengths: d.possible_length().to_vec() })
    }

    fn is_match(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && starts_at_zero(&self.regex, national)
    }
}

/// One region's patterns: the general description, every number type's, and
/// the leading digits that claim a number for the region when several share
/// a country code.
#[derive(Debug)]
struct Region {
    leading_digits: Option<Regex>,
    general: Pattern,
    types: Vec<Pattern>,
}

impl Region {
    fn of(meta: &Metadata) -> Option<Region> {
        let d = meta.descriptors();
        // The crate's `number_type` order; for "is it any type" the order
        // does not change the answer.
        let types = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ];
        let leading_digits = match meta.leading_digits() {
            Some(r) => Some(compile(r.as_str())?),
            None => None,
        };
        Some(Region {
            leading_digits,
            general: Pattern::of(d.general())?,
            types: types.into_iter().flatten().map(Pattern::of).collect::<Option<_>>()?,
        })
    }

    /// `number_type(meta, national) != Type::Unknown`.
    fn has_type(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|t| t.is_match(national))
    }
}

/// The regions of one country calling code, in the metadata's order.
#[derive(Debug)]
enum Code {
    /// No region has this code.
    Unknown,
    /// One region, or a non-geographic code (`001`): no choice to make.
    One(Region),
    /// Several regions (`+1`, `+7`, `+44`, …): the first that claims the
    /// number by its leading digits or, without them, by a number type.
    Shared(Vec<Region>),
}

impl Code {
    fn load(code: u16) -> Code {
        let Some(regions) = DATABASE.region(&code) else { return Code::Unknown };
        let region = |id: &str| -> Option<Region> {
            // The crate turns the id into a `country::Id` first; an id it
            // cannot parse makes the number invalid.
            id.parse::<phonenumber::country::Id>().ok()?;
            Region::of(DATABASE.by_id(id)?)
        };
        if let [only] = regions.as_slice() {
            let one = if *only == "001" {
                DATABASE.by_code(&code).and_then(|m| m.into_iter().next()).and_then(Region::of)
            } else {
                region(only)
            };
            return one.map_or(Code::Unknown, Code::One);
        }
        // A region whose metadata does not load ends the crate's search
        // with a panic (`unwrap`); here it is skipped, so such a number is
        // at worst reported invalid instead of crashing the server.
        Code::Shared(regions.iter().filter_map(|id| region(id)).collect())
    }

    fn is_valid(&self, national: &str) -> bool {
        match self {
            Code::Unknown => false,
            Code::One(r) => r.has_type(national),
            Code::Shared(regions) => regions
                .iter()
                .find(|r| match &r.leading_digits {
                    Some(ld) => starts_at_zero(ld, national),
                    None => r.has_type(national),
                })
                .is_some_and(|r| r.has_type(national)),
        }
    }
}

/// Whether `number` is valid, by libphonenumber's metadata: the same answer
/// as `phonenumber::is_valid(number)`.
pub fn is_valid(number: &phonenumber::PhoneNumber) -> bool {
    national_is_valid(number.country().code(), &number.national().to_string())
}

/// Whether the national number `national` (digits, without leading zeros
/// the crate would keep apart) is valid under country calling code `code`:
/// [`is_valid`] for a number not parsed into the crate's type.
pub fn national_is_valid(code: u16, national: &str) -> bool {
    static CODES_SEEN: OnceLock<Box<[OnceLock<Code>]>> = OnceLock::new();
    let table = CODES_SEEN.get_or_init(|| (0..CODES).map(|_| OnceLock::new()).collect());
    let Some(slot) = table.get(usize::from(code)) else { return false };
    slot.get_or_init(|| Code::load(code)).is_valid(national)
}

/// Compiles a metadata pattern anchored at the start of the text.
///
/// The crate asks for the leftmost match and whether it starts at the first
/// character; the leftmost match starts there exactly when some match does,
/// which an anchored `is_match` answers without scanning the rest of the
/// text for a later start or looking for where the match ends (a perf
/// profile of S1 had the unanchored search at 4 % of the server's CPU).
pub(super) fn compile(pattern: &str) -> Option<Regex> {
    // The crate builds its patterns with the `x` flag (whitespace ignored);
    // the newline ends any comment before the closing parenthesis.
    RegexBuilder::new(&format!("^(?:{pattern}\n)")).ignore_whitespace(true).build().ok()
}

/// A match that starts at the first character: the crate's test (`find`,
/// then `start() == 0`), on a pattern [`compile`] anchored.
fn starts_at_zero(regex: &Regex, text: &str) -> bool {
    regex.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate's answer and ours for `+<code><national>`, when it parses.
    fn both(code: u16, national: &str) -> Option<(bool, bool)> {
        let n = phonenumber::parse(None, format!("+{code}{national}")).ok()?;
        Some((phonenumber::is_valid(&n), is_valid(&n)))
    }

    /// Every region's example numbers, and numbers one digit away from them
    /// (last digit changed, one digit more, one less, first digit changed),
    /// get the crate's answer.
    #[test]
    fn answers_as_the_crate_does_around_every_example_number() {
        let mut compared = 0;
        let mut valid = 0;
        for meta in DATABASE.iter() {
            let code = meta.country_code();
            let d = meta.descriptors();
            let examples = [
                Some(d.general()),
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.personal_number(),
                d.voip(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ];
            for example in examples.into_iter().flatten().filter_map(Descriptor::example) {
                let mut variants =
                    vec![example.to_string(), format!("{example}5"), example[..example.len() - 1].to_string()];
                for digit in ['0', '3', '9'] {
                    let mut last = example[..example.len() - 1].to_string();
                    last.push(digit);
                    variants.push(last);
                    variants.push(format!("{digit}{}", &example[1..]));
                }
                for national in variants.iter().filter(|v| !v.is_empty()) {
                    if let Some((crate_says, we_say)) = both(code, national) {
                        assert_eq!(we_say, crate_says, "+{code} {national} ({})", meta.id());
                        compared += 1;
                        valid += usize::from(we_say);
                    }
                }
            }
        }
        assert!(compared > 2_000 && valid > 500, "compared {compared}, valid {valid}");
    }

    #[test]
    fn numbers_of_shared_codes_find_their_region() {
        // `None`: whatever the crate says; the point is that we agree.
        for (raw, expect) in [
            ("+14155550123", None),
            ("+14152370800", None),
            ("+16135550123", None),
            ("+16139950123", None),
            ("+18765550123", None),
            ("+18769999999", None),
            ("+447799147855", Some(true)), // GB mobile
            ("+79123456789", None),        // RU or KZ, by leading digits
            ("+77012345678", None),
            ("+80012345678", None), // 001: international freephone
        ] {
            let n = phonenumber::parse(None, raw).unwrap();
            assert_eq!(is_valid(&n), phonenumber::is_valid(&n), "{raw}");
            if let Some(expect) = expect {
                assert_eq!(is_valid(&n), expect, "{raw}");
            }
        }
    }
}
