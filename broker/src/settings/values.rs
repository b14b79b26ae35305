//! What a setting's text means: the kinds of value a setting takes (an integer within bounds, a
//! boolean, one of some names, …), the typed values that are more than a number
//! ([`CleanupPolicy`], [`CompressionType`]), and why a text is refused ([`ValueError`]).

use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;

use odradek_storage::TimestampType;

/// How a setting's text reads into its typed value and back. `parse` serves server.properties,
/// `--set`, CreateTopics and the AlterConfigs APIs; `format` is what DescribeConfigs, `--help` and
/// the registry's topic overrides show, so `format(parse(text))` is `text` normalized.
pub trait Kind {
    type Value;
    fn parse(&self, text: &str) -> Result<Self::Value, ValueError>;
    fn format(&self, value: &Self::Value) -> String;
    /// What the setting accepts, in words (`an integer in [1, 100000]`).
    fn accepted(&self) -> String;
    /// The least and the greatest value, for integer settings (a setting's units need them).
    fn bounds(&self) -> Option<(i128, i128)> {
        None
    }
}

/// Why a setting's text is refused. The messages name the accepted values: the caller adds the
/// setting's name and where the text came from.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("not an integer in [{min}, {max}]")]
    NotAnInteger { min: i128, max: i128 },
    #[error("out of range [{min}, {max}]")]
    OutOfRange { min: i128, max: i128 },
    #[error("expected true or false")]
    NotABoolean,
    #[error("expected {expected}")]
    NotOneOf { expected: String },
    #[error("expected HOST:PORT")]
    NoPort,
    #[error("bad port")]
    BadPort,
    #[error("expected a Kafka version such as 2.8 or 3.0-IV1")]
    NotAVersion,
    #[error("expected a number in [0, 1]")]
    NotAFraction,
}

/// The integer types settings use, widened for bounds and messages.
pub trait Integer: FromStr + PartialOrd + Display + Copy {
    fn wide(self) -> i128;
}

macro_rules! integer {
    ($($t:ty),*) => {
        $(impl Integer for $t {
            fn wide(self) -> i128 {
                self as i128
            }
        })*
    };
}
integer!(i16, i32, i64, u32, u64, usize);

/// An integer in `[min, max]` (the tuple's two fields).
pub struct Int<T>(pub T, pub T);

impl<T: Integer> Kind for Int<T> {
    type Value = T;

    fn parse(&self, text: &str) -> Result<T, ValueError> {
        let Int(min, max) = *self;
        let (min_wide, max_wide) = (min.wide(), max.wide());
        let value: T = text.parse().map_err(|_| ValueError::NotAnInteger {
            min: min_wide,
            max: max_wide,
        })?;
        if value < min || value > max {
            return Err(ValueError::OutOfRange {
                min: min_wide,
                max: max_wide,
            });
        }
        Ok(value)
    }

    fn format(&self, value: &T) -> String {
        value.to_string()
    }

    fn accepted(&self) -> String {
        format!("an integer in [{}, {}]", self.0, self.1)
    }

    fn bounds(&self) -> Option<(i128, i128)> {
        Some((self.0.wide(), self.1.wide()))
    }
}

/// `true` or `false`, in any case.
pub struct Bool;

impl Kind for Bool {
    type Value = bool;

    fn parse(&self, text: &str) -> Result<bool, ValueError> {
        match text.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ValueError::NotABoolean),
        }
    }

    fn format(&self, value: &bool) -> String {
        value.to_string()
    }

    fn accepted(&self) -> String {
        "true or false".into()
    }
}

/// One of a list of names, each standing for a value.
pub struct OneOf<T: 'static> {
    pub names: &'static [(&'static str, T)],
    /// Whether `GZIP` reads as `gzip` (Kafka's own case is what `format` writes).
    pub any_case: bool,
}

impl<T: Copy + PartialEq> Kind for OneOf<T> {
    type Value = T;

    fn parse(&self, text: &str) -> Result<T, ValueError> {
        let text = text.trim();
        self.names
            .iter()
            .find(|(name, _)| *name == text || (self.any_case && name.eq_ignore_ascii_case(text)))
            .map(|(_, value)| *value)
            .ok_or_else(|| ValueError::NotOneOf {
                expected: self.accepted(),
            })
    }

    fn format(&self, value: &T) -> String {
        match self.names.iter().find(|(_, v)| v == value) {
            Some((name, _)) => name.to_string(),
            None => panic!("a value of a OneOf setting has no name in its list"),
        }
    }

    fn accepted(&self) -> String {
        let names: Vec<&str> = self.names.iter().map(|(name, _)| *name).collect();
        either(&names)
    }
}

/// `a, b or c`.
fn either(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => only.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// `message.timestamp.type`'s names.
pub const TIMESTAMP_TYPES: &[(&str, TimestampType)] = &[
    ("CreateTime", TimestampType::CreateTime),
    ("LogAppendTime", TimestampType::LogAppendTime),
];

/// `compression.type`: the codec batches are stored with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionType {
    /// Each batch keeps the codec its producer chose.
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    pub const NAMES: &'static [(&'static str, CompressionType)] = &[
        ("producer", CompressionType::Producer),
        ("uncompressed", CompressionType::Uncompressed),
        ("gzip", CompressionType::Gzip),
        ("snappy", CompressionType::Snappy),
        ("lz4", CompressionType::Lz4),
        ("zstd", CompressionType::Zstd),
    ];

    /// The codec id (a batch header's attribute bits) batches are recompressed to; `None` keeps
    /// the producer's.
    pub fn codec(self) -> Option<u8> {
        match self {
            CompressionType::Producer => None,
            CompressionType::Uncompressed => Some(0),
            CompressionType::Gzip => Some(1),
            CompressionType::Snappy => Some(2),
            CompressionType::Lz4 => Some(3),
            CompressionType::Zstd => Some(4),
        }
    }
}

/// Free text, such as a rack name: trimmed, at most [`TEXT_BYTES_MAX`] bytes.
pub struct Text;

/// The longest free-text value (a rack id goes to clients in every Metadata answer).
pub const TEXT_BYTES_MAX: usize = 255;

impl Kind for Text {
    type Value = String;

    fn parse(&self, text: &str) -> Result<String, ValueError> {
        let text = text.trim();
        match text.len() <= TEXT_BYTES_MAX {
            true => Ok(text.to_string()),
            false => Err(ValueError::NotOneOf {
                expected: self.accepted(),
            }),
        }
    }

    fn format(&self, value: &String) -> String {
        value.clone()
    }

    fn accepted(&self) -> String {
        format!("text of at most {TEXT_BYTES_MAX} bytes")
    }
}

/// `cleanup.policy`: what bounds a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Segments go by age (`retention.ms`) and size (`retention.bytes`).
    Delete,
    /// Every record needs a key; no segment goes by age or size (compaction is not built yet).
    Compact,
    /// Both.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether `retention.ms` and `retention.bytes` delete old segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Whether the log is compacted (its records then need keys).
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }
}

/// A [`CleanupPolicy`] as Kafka writes it: a comma-separated list of `delete` and `compact`, in
/// any order (written back sorted: `compact,delete`).
pub struct Cleanup;

impl Kind for Cleanup {
    type Value = CleanupPolicy;

    fn parse(&self, text: &str) -> Result<CleanupPolicy, ValueError> {
        let mut parts: Vec<&str> = text.split(',').map(str::trim).collect();
        parts.sort_unstable();
        parts.dedup();
        match parts.as_slice() {
            ["delete"] => Ok(CleanupPolicy::Delete),
            ["compact"] => Ok(CleanupPolicy::Compact),
            ["compact", "delete"] => Ok(CleanupPolicy::CompactDelete),
            _ => Err(ValueError::NotOneOf {
                expected: self.accepted(),
            }),
        }
    }

    fn format(&self, value: &CleanupPolicy) -> String {
        match value {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
        .into()
    }

    fn accepted(&self) -> String {
        "delete, compact or compact,delete".into()
    }
}

/// A value that may be absent: the empty text, as Kafka writes an unset list.
pub struct Maybe<K>(pub K);

impl<K: Kind> Kind for Maybe<K> {
    type Value = Option<K::Value>;

    fn parse(&self, text: &str) -> Result<Self::Value, ValueError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        self.0.parse(text).map(Some)
    }

    fn format(&self, value: &Self::Value) -> String {
        value.as_ref().map(|v| self.0.format(v)).unwrap_or_default()
    }

    fn accepted(&self) -> String {
        format!("{}, or nothing", self.0.accepted())
    }
}

/// A directory: the first of a comma-separated list (`log.dirs`; Odradek uses one).
pub struct FirstDir;

impl Kind for FirstDir {
    type Value = PathBuf;

    fn parse(&self, text: &str) -> Result<PathBuf, ValueError> {
        Ok(PathBuf::from(
            text.split(',').next().unwrap_or_default().trim(),
        ))
    }

    fn format(&self, value: &PathBuf) -> String {
        value.display().to_string()
    }

    fn accepted(&self) -> String {
        "a directory".into()
    }
}

/// A Kafka version such as `0.10.2`, `2.8-IV1` or `3.0` (checked, kept as written).
pub struct Version;

impl Kind for Version {
    type Value = String;

    fn parse(&self, text: &str) -> Result<String, ValueError> {
        let text = text.trim();
        let version = text.split('-').next().unwrap_or_default();
        let parts: Vec<&str> = version.split('.').collect();
        let numeric = parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if (2..=4).contains(&parts.len()) && numeric {
            Ok(text.to_string())
        } else {
            Err(ValueError::NotAVersion)
        }
    }

    fn format(&self, value: &String) -> String {
        value.clone()
    }

    fn accepted(&self) -> String {
        "a Kafka version such as 2.8 or 3.0-IV1".into()
    }
}

/// A number in `[0, 1]`, as Kafka's `double` configs with that range.
pub struct Fraction;

impl Kind for Fraction {
    type Value = f64;

    fn parse(&self, text: &str) -> Result<f64, ValueError> {
        match text.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(ValueError::NotAFraction),
        }
    }

    fn format(&self, value: &f64) -> String {
        value.to_string()
    }

    fn accepted(&self) -> String {
        "a number in [0, 1]".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_checked_against_their_bounds() {
        let kind = Int(1u32, 100_000);
        assert_eq!(kind.parse("6"), Ok(6));
        assert_eq!(
            kind.parse("0"),
            Err(ValueError::OutOfRange {
                min: 1,
                max: 100_000
            })
        );
        assert_eq!(
            kind.parse("many"),
            Err(ValueError::NotAnInteger {
                min: 1,
                max: 100_000
            })
        );
        assert_eq!(
            Int(-1i64, i64::MAX).parse("-2").map_err(|e| e.to_string()),
            Err("out of range [-1, 9223372036854775807]".to_string())
        );
    }

    #[test]
    fn names_read_in_their_case_or_any() {
        let timestamp = OneOf {
            names: TIMESTAMP_TYPES,
            any_case: false,
        };
        assert_eq!(
            timestamp.parse("LogAppendTime"),
            Ok(TimestampType::LogAppendTime)
        );
        let refused = timestamp.parse("logappendtime").expect_err("exact case");
        assert_eq!(refused.to_string(), "expected CreateTime or LogAppendTime");
        let compression = OneOf {
            names: CompressionType::NAMES,
            any_case: true,
        };
        assert_eq!(compression.parse(" GZIP "), Ok(CompressionType::Gzip));
        assert_eq!(compression.format(&CompressionType::Zstd), "zstd");
        let refused = compression.parse("brotli").expect_err("unknown codec");
        assert_eq!(
            refused.to_string(),
            "expected producer, uncompressed, gzip, snappy, lz4 or zstd"
        );
    }

    #[test]
    fn cleanup_policies_read_in_any_order_and_write_sorted() {
        for (text, policy) in [
            ("delete", CleanupPolicy::Delete),
            ("compact", CleanupPolicy::Compact),
            ("delete, compact", CleanupPolicy::CompactDelete),
            ("compact,delete,compact", CleanupPolicy::CompactDelete),
        ] {
            assert_eq!(Cleanup.parse(text), Ok(policy), "{text}");
        }
        assert_eq!(
            Cleanup.format(&CleanupPolicy::CompactDelete),
            "compact,delete"
        );
        for bad in ["", "shred", "delete,", "delete,shred"] {
            assert!(Cleanup.parse(bad).is_err(), "{bad}");
        }
        assert!(CleanupPolicy::CompactDelete.deletes() && CleanupPolicy::CompactDelete.compacts());
        assert!(!CleanupPolicy::Compact.deletes() && !CleanupPolicy::Delete.compacts());
    }

    #[test]
    fn versions_and_fractions() {
        for good in ["0.10.2", "2.8-IV1", "3.0"] {
            assert_eq!(Version.parse(good).as_deref(), Ok(good));
        }
        for bad in ["3", "x.y", "1.2.3.4.5", ""] {
            assert_eq!(Version.parse(bad), Err(ValueError::NotAVersion), "{bad}");
        }
        assert_eq!(Fraction.parse("0.5"), Ok(0.5));
        assert_eq!(Fraction.parse("1.5"), Err(ValueError::NotAFraction));
    }
}
