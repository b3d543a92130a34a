//! The machinery behind [`declare_knobs!`]: one declaration per
//! configuration knob becomes the `serve` flag, its `SWITCHBOARD_*`
//! environment twin, its config-file key, its resolution (flag, then
//! environment, then file, then default) and the `[default: …]` of its help.
//!
//! The knobs themselves are declared in `config.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use clap::builder::ValueParser;
use serde::{Deserialize, Deserializer};

use super::{LogFormat, StoreKind};

/// What every environment twin starts with.
pub(crate) const ENV_PREFIX: &str = "SWITCHBOARD_";

/// `SWITCHBOARD_` followed by `key` upper-cased, as bytes (`N` is the
/// length of both together).
pub(crate) const fn env_bytes<const N: usize>(key: &str) -> [u8; N] {
    let prefix = ENV_PREFIX.as_bytes();
    let key = key.as_bytes();
    assert!(prefix.len() + key.len() == N, "N is the length of the prefix and the key");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < prefix.len() {
        out[i] = prefix[i];
        i += 1;
    }
    let mut j = 0;
    while j < key.len() {
        out[i + j] = key[j].to_ascii_uppercase();
        j += 1;
    }
    out
}

/// The environment twin of the knob `$key`, computed at compile time:
/// `knob_env!(nats_url)` is `"SWITCHBOARD_NATS_URL"`.
macro_rules! knob_env {
    ($key:ident) => {{
        const KEY: &str = stringify!($key);
        const BYTES: [u8; $crate::config::knobs::ENV_PREFIX.len() + KEY.len()] = $crate::config::knobs::env_bytes(KEY);
        const NAME: &str = match ::std::str::from_utf8(&BYTES) {
            Ok(name) => name,
            Err(_) => panic!("file keys are ASCII"),
        };
        NAME
    }};
}
pub(crate) use knob_env;

/// A type a knob can have: how a flag or variable is parsed, how the config
/// file is read, and how a default is shown in `--help`.
pub(crate) trait KnobValue: Sized {
    /// The flag's (and its environment twin's) parser.
    fn parser() -> ValueParser;
    /// Reads the value of the file key.
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
    /// The value as `--help` shows it; it parses back to itself.
    fn show(&self) -> String;
}

macro_rules! displayed {
    ($($t:ty),*) => {$(
        impl KnobValue for $t {
            fn parser() -> ValueParser {
                clap::value_parser!($t).into()
            }
            fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$t as Deserialize>::deserialize(d)
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
displayed!(SocketAddr, String, usize, u64, u32, f64);

macro_rules! value_enum {
    ($($t:ty),*) => {$(
        impl KnobValue for $t {
            fn parser() -> ValueParser {
                clap::builder::EnumValueParser::<$t>::new().into()
            }
            fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$t as Deserialize>::deserialize(d)
            }
            fn show(&self) -> String {
                self.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
            }
        }
    )*};
}
value_enum!(StoreKind, LogFormat);

impl KnobValue for PathBuf {
    fn parser() -> ValueParser {
        clap::value_parser!(PathBuf)
    }
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <PathBuf as Deserialize>::deserialize(d)
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
}

impl KnobValue for Duration {
    fn parser() -> ValueParser {
        ValueParser::new(|s: &str| humantime::parse_duration(s).map_err(|e| e.to_string()))
    }
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        humantime_serde::deserialize(d)
    }
    /// The largest whole unit: `7d`, `24h` (one day reads better in
    /// hours), `2m`, `15s`, `0s`.
    fn show(&self) -> String {
        const DAY: u64 = 24 * 3600;
        let secs = self.as_secs();
        if self.subsec_nanos() == 0 && secs > 0 {
            for (unit, suffix) in [(DAY, "d"), (3600, "h"), (60, "m"), (1, "s")] {
                if secs.is_multiple_of(unit) && (unit != DAY || secs > DAY) {
                    return format!("{}{suffix}", secs / unit);
                }
            }
        }
        if self.is_zero() { "0s".to_owned() } else { humantime::format_duration(*self).to_string() }
    }
}

/// `deserialize_with` of every knob's file key.
pub(crate) fn from_file<'de, D: Deserializer<'de>, T: KnobValue>(d: D) -> Result<Option<T>, D::Error> {
    T::read(d).map(Some)
}

/// A knob's help: its doc comment as clap would render it (lines joined,
/// one trailing period dropped), then its default.
pub(crate) fn help(doc: &[&str], default: Option<String>) -> String {
    let mut text = doc.iter().map(|line| line.trim()).filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" ");
    if text.ends_with('.') && !text.ends_with("..") {
        text.pop();
    }
    match default {
        Some(default) => format!("{text} [default: {default}]"),
        None => text,
    }
}

/// A knob's default as `--help` shows it.
pub(crate) fn show_default<T: KnobValue>(default: impl Into<T>) -> String {
    default.into().show()
}

/// The resolved type of a knob: its own type when it has a default,
/// otherwise optional.
macro_rules! knob_type {
    ($ty:ty) => { Option<$ty> };
    ($ty:ty, $default:ident) => { $ty };
}
pub(crate) use knob_type;

/// A knob's value after the flag (or its environment twin) and the file:
/// falls back to the default when there is one.
macro_rules! knob_resolve {
    ($value:expr) => {
        $value
    };
    ($value:expr, $default:ident) => {
        $value.unwrap_or_else(|| $default.into())
    };
}
pub(crate) use knob_resolve;

/// The `[default: …]` of a knob's help, when it has a default.
macro_rules! knob_default_shown {
    ($ty:ty) => {
        None
    };
    ($ty:ty, $default:ident) => {
        Some($crate::config::knobs::show_default::<$ty>($default))
    };
}
pub(crate) use knob_default_shown;

/// Declares every configuration knob once and generates from that:
///
/// * `ServeArgs`, the `serve` flags: `--foo-bar` with the environment twin
///   `SWITCHBOARD_FOO_BAR`, help from the doc comment and the default, all
///   optional so that unset flags fall through to the file;
/// * `FileConfig`, the config file: the key `foo_bar`, unknown keys refused;
/// * `Knobs`, every knob resolved: flag (or environment) over file over
///   default.
///
/// A value knob is `name: Type = DEFAULT_CONSTANT, clap_attr = …;` or,
/// without a default, `name: Type, …;` (it resolves to an `Option`). A
/// switch is `name;`: a flag without a value, off unless the flag, its
/// environment twin or the file turns it on. Doc comments come first, then
/// any `#[cfg(…)]`, which applies to everything generated for the knob.
///
/// Besides the knobs, `ServeArgs` has `--config` (the file itself) and
/// `--check-config` (a mode), and `FileConfig` has `[[tokens]]`.
macro_rules! declare_knobs {
    (
        values {$(
            $(#[doc = $doc:literal])*
            $(#[cfg($cfg:meta)])*
            $name:ident: $ty:ty $(= $default:ident)? $(, $arg:ident = $arg_value:expr)*;
        )*}
        switches {$(
            $(#[doc = $sdoc:literal])*
            $(#[cfg($scfg:meta)])*
            $switch:ident;
        )*}
    ) => {
        /// `switchboard serve` flags. All optional: unset flags fall back to
        /// the config file, then to the defaults (the `DEFAULT_*` constants).
        #[derive(clap::Args, Clone, Debug, Default)]
        pub struct ServeArgs {
            /// TOML config file (flags and environment override it).
            #[arg(long, env = $crate::config::knobs::knob_env!(config), value_name = "FILE")]
            pub config: Option<PathBuf>,
            $(
                $(#[doc = $doc])*
                $(#[cfg($cfg)])*
                #[arg(
                    long,
                    env = $crate::config::knobs::knob_env!($name),
                    value_parser = <$ty as $crate::config::knobs::KnobValue>::parser(),
                    help = $crate::config::knobs::help(
                        &[$($doc),*],
                        $crate::config::knobs::knob_default_shown!($ty $(, $default)?),
                    ),
                    $($arg = $arg_value,)*
                )]
                pub $name: Option<$ty>,
            )*
            $(
                $(#[doc = $sdoc])*
                $(#[cfg($scfg)])*
                #[arg(
                    long,
                    env = $crate::config::knobs::knob_env!($switch),
                    help = $crate::config::knobs::help(&[$($sdoc),*], Some("off".to_owned())),
                )]
                pub $switch: bool,
            )*
            /// Validate the configuration, print it, and exit.
            #[arg(long)]
            pub check_config: bool,
        }

        /// The config file: the same keys as the flags.
        #[derive(Clone, Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileConfig {
            $(
                $(#[cfg($cfg)])*
                #[serde(default, deserialize_with = "crate::config::knobs::from_file")]
                $name: Option<$ty>,
            )*
            $(
                $(#[cfg($scfg)])*
                #[serde(default)]
                $switch: Option<bool>,
            )*
            #[serde(default)]
            tokens: Vec<TokenConfig>,
        }

        /// Every knob resolved: flag (or environment twin) over file over
        /// default.
        #[derive(Clone, Debug, PartialEq)]
        struct Knobs {
            $(
                $(#[cfg($cfg)])*
                $name: $crate::config::knobs::knob_type!($ty $(, $default)?),
            )*
            $(
                $(#[cfg($scfg)])*
                $switch: bool,
            )*
        }

        impl Knobs {
            /// Resolves the flags over the file (without its tokens).
            fn resolve(args: ServeArgs, file: FileConfig) -> Knobs {
                Knobs {
                    $(
                        $(#[cfg($cfg)])*
                        $name: $crate::config::knobs::knob_resolve!(args.$name.or(file.$name) $(, $default)?),
                    )*
                    $(
                        $(#[cfg($scfg)])*
                        $switch: args.$switch || file.$switch.unwrap_or(false),
                    )*
                }
            }

            /// The file key of every knob and its default as `--help`
            /// shows it (`None`: no default, or a switch).
            #[cfg(test)]
            fn declared() -> Vec<(&'static str, Option<String>)> {
                vec![
                    $(
                        $(#[cfg($cfg)])*
                        (stringify!($name), $crate::config::knobs::knob_default_shown!($ty $(, $default)?)),
                    )*
                    $(
                        $(#[cfg($scfg)])*
                        (stringify!($switch), None),
                    )*
                ]
            }
        }

        impl Default for Knobs {
            fn default() -> Knobs {
                Knobs::resolve(ServeArgs::default(), FileConfig::default())
            }
        }
    };
}
pub(crate) use declare_knobs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_twins_are_the_keys_upper_cased_behind_the_prefix() {
        assert_eq!(knob_env!(nats_url), "SWITCHBOARD_NATS_URL");
        assert_eq!(knob_env!(listen), "SWITCHBOARD_LISTEN");
    }

    #[test]
    fn durations_show_in_their_largest_whole_unit_and_parse_back() {
        for (secs, shown) in [(0, "0s"), (15, "15s"), (60, "1m"), (120, "2m"), (4 * 3600, "4h"), (86_400, "24h")] {
            let d = Duration::from_secs(secs);
            assert_eq!(d.show(), shown);
            assert_eq!(humantime::parse_duration(shown).unwrap(), d);
        }
        assert_eq!(Duration::from_secs(7 * 86_400).show(), "7d");
        assert_eq!(Duration::from_millis(1500).show(), "1s 500ms");
    }

    #[test]
    fn help_is_the_doc_comment_without_its_period_then_the_default() {
        assert_eq!(help(&[" Log format."], Some("text".into())), "Log format [default: text]");
        assert_eq!(help(&[" One", " two [default: none]."], None), "One two [default: none]");
    }
}
