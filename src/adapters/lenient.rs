//! Lenient readers for the loosely typed values vendors send: numbers as
//! strings, `"true"`, `"N/A"`, `HH:MM:SS` or seconds, epoch seconds or
//! milliseconds or ISO 8601. Each reader accepts every documented form and
//! rejects anything else with an error that names the expected form (the
//! adapter reports it under the field's JSON path).
//!
//! Use with `#[serde(default, deserialize_with = "...")]` on `Option` fields.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

/// The longest duration a vendor may report (ten years): anything longer is
/// a broken value, and would not fit a `google.protobuf.Duration` sanely.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Vendor times outside 1970..2200 are broken values, not calls.
fn plausible(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (t.timestamp() >= 0 && t.timestamp() < 7_258_118_400).then_some(t)
}

/// A duration from seconds, if finite, non-negative and plausible.
fn seconds_duration(f: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(f).ok().filter(|d| *d <= MAX_DURATION)
}

/// Any JSON scalar, as vendors mix them.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// A string.
    Str(String),
    /// A number (kept as JSON to preserve integers exactly).
    Num(serde_json::Number),
    /// A boolean.
    Bool(bool),
}

/// Read by a direct visitor rather than `#[serde(untagged)]`, which buffers
/// the value and tries each variant: this reader runs for most vendor fields
/// and dominated normalization time.
impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Num(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Num(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                serde_json::Number::from_f64(v).map(Scalar::Num).ok_or_else(|| E::custom("a finite number"))
            }
        }
        d.deserialize_any(V)
    }
}

impl Scalar {
    /// The value as text: numbers in their JSON form, booleans as
    /// `true`/`false`.
    pub fn text(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Num(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// Flattens any JSON value to the string form kept in `attributes`.
pub fn flatten(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// A string, or a number/boolean turned into its text. Blank and `"N/A"`
/// become `None`.
pub fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(|s| s.text()).filter(|s| !s.trim().is_empty() && !is_na(s)))
}

fn is_na(s: &str) -> bool {
    s.eq_ignore_ascii_case("n/a") || s.eq_ignore_ascii_case("null")
}

/// A non-negative integer given as a number or a decimal string. Blank and
/// `"N/A"` become `None`.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Scalar>::deserialize(d)? {
        None => Ok(None),
        Some(Scalar::Num(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("expected a non-negative integer, got {n}"))),
        Some(Scalar::Str(s)) if s.trim().is_empty() || is_na(s.trim()) => Ok(None),
        Some(Scalar::Str(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("expected a non-negative integer, got {s:?}"))),
        Some(Scalar::Bool(b)) => Err(de::Error::custom(format!("expected a non-negative integer, got {b}"))),
    }
}

/// A boolean given as `true`, `"true"`, `"yes"`, `1` (and their negatives).
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<Scalar>::deserialize(d)? {
        None => Ok(None),
        Some(Scalar::Bool(b)) => Ok(Some(b)),
        Some(Scalar::Num(n)) => match n.as_u64() {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(de::Error::custom(format!("expected a boolean, got {n}"))),
        },
        Some(Scalar::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Ok(Some(true)),
            "false" | "no" | "n" | "0" => Ok(Some(false)),
            "" | "n/a" => Ok(None),
            _ => Err(de::Error::custom(format!("expected a boolean, got {s:?}"))),
        },
    }
}

/// Epoch milliseconds, as a number or a decimal string (8x8 panel
/// `startTime: "1751445666638"`).
pub fn opt_epoch_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match opt_u64(d)? {
        None | Some(0) => Ok(None),
        Some(ms) => {
            millis(ms).map(Some).ok_or_else(|| de::Error::custom(format!("epoch milliseconds out of range: {ms}")))
        }
    }
}

/// Epoch seconds, as a number or a decimal string (8x8 `interactionEventTS`).
pub fn opt_epoch_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match opt_u64(d)? {
        None | Some(0) => Ok(None),
        Some(s) => seconds(s).map(Some).ok_or_else(|| de::Error::custom(format!("epoch seconds out of range: {s}"))),
    }
}

/// An ISO 8601 / RFC 3339 timestamp (Pulsar `publishTime`).
pub fn opt_iso8601<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s.trim())
            .map_err(|e| de::Error::custom(format!("expected an ISO 8601 timestamp, got {s:?}: {e}")))
            .and_then(|t| {
                plausible(t.with_timezone(&Utc))
                    .map(Some)
                    .ok_or_else(|| de::Error::custom(format!("timestamp {s:?} is outside 1970..2200")))
            }),
    }
}

/// Xelion's zone-less UTC `yyyy-MM-dd HH:mm:ss` (a `T` separator and
/// fractional seconds are tolerated too).
pub fn opt_xelion_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => {
            let t = s.trim();
            ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
                .and_then(|n| plausible(Utc.from_utc_datetime(&n)))
                .map(Some)
                .ok_or_else(|| {
                    de::Error::custom(format!(
                        "expected a UTC date `yyyy-MM-dd HH:mm:ss` between 1970 and 2200, got {s:?}"
                    ))
                })
        }
    }
}

/// A duration given as `HH:MM:SS` (or `MM:SS`), or as seconds (number or
/// string). The 8x8 panel documents "seconds" and sends `"00:00:22"`.
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<Scalar>::deserialize(d)? {
        None => Ok(None),
        Some(Scalar::Num(n)) => {
            n.as_f64().and_then(seconds_duration).map(Some).ok_or_else(|| {
                de::Error::custom(format!("expected a duration in seconds (at most ten years), got {n}"))
            })
        }
        Some(Scalar::Str(s)) => parse_duration(&s).map_err(de::Error::custom),
        Some(Scalar::Bool(b)) => Err(de::Error::custom(format!("expected a duration, got {b}"))),
    }
}

/// Parses `HH:MM:SS`, `MM:SS` or decimal seconds; blank is `None`.
pub fn parse_duration(s: &str) -> Result<Option<Duration>, String> {
    let t = s.trim();
    if t.is_empty() || is_na(t) {
        return Ok(None);
    }
    let bad = || format!("expected a duration as HH:MM:SS or seconds, got {s:?}");
    if t.contains(':') {
        let parts: Vec<&str> = t.split(':').collect();
        if parts.len() > 3 {
            return Err(bad());
        }
        let mut secs: u64 = 0;
        for (i, p) in parts.iter().enumerate() {
            let v: u64 = p.parse().map_err(|_| bad())?;
            if i > 0 && v >= 60 {
                return Err(bad());
            }
            secs = secs.checked_mul(60).and_then(|x| x.checked_add(v)).ok_or_else(bad)?;
        }
        return Some(Duration::from_secs(secs)).filter(|d| *d <= MAX_DURATION).map(Some).ok_or_else(bad);
    }
    let f: f64 = t.parse().map_err(|_| bad())?;
    seconds_duration(f).map(Some).ok_or_else(bad)
}

/// Epoch milliseconds as a time, if plausible (1970..2200).
pub fn millis(ms: u64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(i64::try_from(ms).ok()?).single().and_then(plausible)
}

/// Epoch seconds as a time, if plausible (1970..2200).
pub fn seconds(s: u64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(i64::try_from(s).ok()?, 0).single().and_then(plausible)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "opt_u64")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "opt_bool")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "opt_duration")]
        d: Option<Duration>,
        #[serde(default, deserialize_with = "opt_text")]
        s: Option<String>,
        #[serde(default, deserialize_with = "opt_epoch_millis")]
        ms: Option<DateTime<Utc>>,
        #[serde(default, deserialize_with = "opt_xelion_date")]
        x: Option<DateTime<Utc>>,
    }

    fn t(v: serde_json::Value) -> Result<T, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn numbers_as_strings_and_na_are_read() {
        assert_eq!(t(json!({"n": "42"})).unwrap().n, Some(42));
        assert_eq!(t(json!({"n": 42})).unwrap().n, Some(42));
        assert_eq!(t(json!({"n": "N/A"})).unwrap().n, None);
        assert!(t(json!({"n": "forty"})).is_err());
        assert_eq!(t(json!({"s": 447799147855u64})).unwrap().s.as_deref(), Some("447799147855"));
    }

    #[test]
    fn booleans_as_strings_are_read() {
        assert_eq!(t(json!({"b": "true"})).unwrap().b, Some(true));
        assert_eq!(t(json!({"b": "no"})).unwrap().b, Some(false));
        assert_eq!(t(json!({"b": false})).unwrap().b, Some(false));
        assert!(t(json!({"b": "maybe"})).is_err());
    }

    #[test]
    fn durations_as_clock_or_seconds_are_read() {
        assert_eq!(t(json!({"d": "00:00:22"})).unwrap().d, Some(Duration::from_secs(22)));
        assert_eq!(t(json!({"d": "1:02:03"})).unwrap().d, Some(Duration::from_secs(3723)));
        assert_eq!(t(json!({"d": "75"})).unwrap().d, Some(Duration::from_secs(75)));
        assert_eq!(t(json!({"d": 12})).unwrap().d, Some(Duration::from_secs(12)));
        assert!(t(json!({"d": "00:99:00"})).is_err());
    }

    #[test]
    fn absurd_durations_and_times_are_refused_not_panicked_on() {
        assert!(t(json!({"d": 1e20})).is_err());
        assert!(t(json!({"d": "1e19"})).is_err());
        assert!(t(json!({"d": "99999999:00:00"})).is_err());
        assert!(t(json!({"ms": "99999999999999999"})).is_err());
        assert!(t(json!({"x": "9999-12-31 23:59:59"})).is_err());
    }

    #[test]
    fn times_in_each_vendor_format_are_read() {
        assert_eq!(t(json!({"ms": "1751445666638"})).unwrap().ms.unwrap().timestamp_millis(), 1_751_445_666_638);
        let x = t(json!({"x": "2016-10-23 14:02:59"})).unwrap().x.unwrap();
        assert_eq!(x.to_rfc3339(), "2016-10-23T14:02:59+00:00");
        assert!(t(json!({"x": "23/10/2016"})).is_err());
    }
}
