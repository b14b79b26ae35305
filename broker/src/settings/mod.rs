//! The one table of settings. Each entry declares a setting once: its Kafka broker name (what
//! `server.properties` says), other names and units it answers to, the topic config it is the
//! default of, when it may change, its kind (type and bounds), default and documentation, its
//! field in [`BrokerConfig`] and what it sets in a topic's
//! [`LogConfig`](odradek_storage::LogConfig). From it come `BrokerConfig` itself and its
//! defaults, config parsing ([`crate::config`]), topic configs ([`crate::topic_config`]),
//! DescribeConfigs, `--help` and the checks of README's table.
//!
//! Layout:
//! - `mod.rs`: [`Setting`], [`Scope`], [`Unit`], the `settings!` macro that builds the table,
//!   lookups by name, and the `--help` text.
//! - [`table`]: every setting, one entry each; Kafka settings ignored here ([`IGNORED`]).
//! - [`values`]: the kinds of value ([`Int`], [`Bool`], [`OneOf`], …), typed values
//!   ([`CleanupPolicy`], [`CompressionType`]) and [`ValueError`].
//! - [`listeners`]: the listener settings' values ([`Listener`], [`NamedListener`],
//!   [`SecurityProtocol`]).
//! - [`cluster`]: the KRaft settings' values ([`ProcessRoles`], [`Voters`]).

use odradek_storage::LogConfig;

mod cluster;
mod listeners;
mod table;
#[cfg(test)]
mod tests;
mod values;

pub use cluster::*;
pub use listeners::*;
pub use table::{BrokerConfig, IGNORED, SETTINGS};
pub use values::*;

/// When a setting may change, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Read at start (server.properties, `--set`); read-only at run time.
    Static,
    /// Also changed at run time by IncrementalAlterConfigs (or AlterConfigs) on the BROKER
    /// resource; the metadata log keeps the change across restarts.
    Dynamic,
    /// Only its topic config exists yet: the broker name is reported as the topic config's
    /// synonym with Kafka's default, and server.properties may not set it.
    TopicOnly,
}

/// Another name for a setting, counting in a larger unit (`log.retention.hours` for
/// `log.retention.ms`): `factor` of the setting's own unit. Negative values (`-1`: none) are
/// passed through unscaled. DescribeConfigs reports a unit as a setting of its own.
#[derive(Debug)]
pub struct Unit {
    pub name: &'static str,
    pub factor: i128,
}

/// One setting, as the table declares it.
pub struct Setting {
    /// Kafka's broker name: the key in server.properties and in DescribeConfigs (BROKER).
    pub name: &'static str,
    /// Other names server.properties may use for it (not described).
    pub aliases: &'static [&'static str],
    /// The same setting counted in larger units.
    pub units: &'static [Unit],
    /// The topic config this setting is the broker-wide default of.
    pub topic_name: Option<&'static str>,
    pub scope: Scope,
    pub doc: &'static str,
    ops: Ops,
}

/// A setting's kind and field, type-erased (written by `settings!` for each entry).
struct Ops {
    accepted: fn() -> String,
    bounds: fn() -> Option<(i128, i128)>,
    default: fn() -> String,
    get: fn(&BrokerConfig) -> String,
    set: fn(&mut BrokerConfig, &str) -> Result<(), ValueError>,
    normalize: fn(&str) -> Result<String, ValueError>,
    /// Sets the log config's fields from the topic's override (already normalized) or, without
    /// one, from the broker's value.
    to_log: Option<fn(&mut LogConfig, &BrokerConfig, Option<&str>)>,
}

/// Declares [`BrokerConfig`] (one field per setting, with its default) and [`SETTINGS`] (one
/// [`Setting`] per field) from one list. An entry reads:
///
/// ```text
/// field_name: FieldType {
///     name: "kafka.broker.name",
///     aliases: ["other.name"],                 // optional
///     units: [("kafka.name.hours", HOUR_MS)],   // optional; integer settings only
///     topic: "topic.name",                      // optional
///     scope: Static | Dynamic | TopicOnly,
///     kind: Int(1, 100),                        // a `Kind` whose `Value` is FieldType
///     default: 7,                               // a FieldType
///     doc: "What it does.",
///     log: |log, value| log.field = *value,     // optional: its effect on a topic's LogConfig
/// },
/// ```
///
/// After the entries, `; derived { field: Type = default, … }` declares the fields that are no
/// setting of their own but are decided from several once all are applied (the listener a
/// shard binds from `listeners` and the listener names); each default is what the settings'
/// defaults decide.
macro_rules! settings {
    (@some) => { None };
    (@some $x:expr) => { Some($x) };
    ($(
        $field:ident: $ty:ty {
            name: $name:literal,
            $(aliases: [$($alias:literal),* $(,)?],)?
            $(units: [$(($unit:literal, $factor:expr)),* $(,)?],)?
            $(topic: $topic:literal,)?
            scope: $scope:ident,
            kind: $kind:expr,
            default: $default:expr,
            doc: $doc:literal,
            $(log: $log:expr,)?
        },
    )*
    ;
    derived {$(
        $(#[$derived_meta:meta])*
        $derived:ident: $derived_ty:ty = $derived_default:expr,
    )*}
    ) => {
        /// Every broker setting, typed, with units in the names; built from the table in
        /// `settings/table.rs` (each field's doc names its setting).
        #[derive(Clone, Debug, PartialEq)]
        pub struct BrokerConfig {
            $(
                #[doc = concat!("`", $name, "`: ", $doc)]
                pub $field: $ty,
            )*
            $(
                $(#[$derived_meta])*
                pub $derived: $derived_ty,
            )*
            /// Names set explicitly by a file or `--set` (DescribeConfigs reports them as
            /// static).
            pub explicitly_set: std::collections::BTreeSet<String>,
            /// Names changed at run time (IncrementalAlterConfigs on the BROKER resource).
            pub dynamic_set: std::collections::BTreeSet<String>,
        }

        impl Default for BrokerConfig {
            fn default() -> Self {
                BrokerConfig {
                    $($field: $default,)*
                    $($derived: $derived_default,)*
                    explicitly_set: Default::default(),
                    dynamic_set: Default::default(),
                }
            }
        }

        /// Every setting, in the order `--help`, README and DescribeConfigs list them.
        pub static SETTINGS: &[$crate::settings::Setting] = &[$(
            $crate::settings::Setting {
                name: $name,
                aliases: &[$($($alias),*)?],
                units: &[$($($crate::settings::Unit { name: $unit, factor: $factor }),*)?],
                topic_name: settings!(@some $($topic)?),
                scope: $crate::settings::Scope::$scope,
                doc: $doc,
                ops: $crate::settings::Ops {
                    accepted: || $crate::settings::entry::accepted::<$ty, _>($kind),
                    bounds: || $crate::settings::entry::bounds::<$ty, _>($kind),
                    default: || $crate::settings::entry::format::<$ty, _>($kind, &$default),
                    get: |config| $crate::settings::entry::format($kind, &config.$field),
                    set: |config, text| {
                        config.$field = $crate::settings::entry::parse($kind, text)?;
                        Ok(())
                    },
                    normalize: |text| $crate::settings::entry::normalize::<$ty, _>($kind, text),
                    to_log: settings!(@some $(|log, config, text| {
                        let apply: fn(&mut odradek_storage::LogConfig, &$ty) = $log;
                        match text {
                            None => apply(log, &config.$field),
                            Some(text) => {
                                let value = $crate::settings::entry::parse($kind, text);
                                apply(log, &$crate::settings::entry::stored($name, value))
                            }
                        }
                    })?),
                },
            },
        )*];
    };
}
use settings;

/// What `settings!` entries call. Each takes the entry's kind with its value type pinned to the
/// field's type `T`, so that the literals of bounds (`Int(1, 100)`) take the field's type.
mod entry {
    use super::{Kind, ValueError};

    pub fn accepted<T, K: Kind<Value = T>>(kind: K) -> String {
        kind.accepted()
    }

    pub fn bounds<T, K: Kind<Value = T>>(kind: K) -> Option<(i128, i128)> {
        kind.bounds()
    }

    pub fn format<T, K: Kind<Value = T>>(kind: K, value: &T) -> String {
        kind.format(value)
    }

    pub fn parse<T, K: Kind<Value = T>>(kind: K, text: &str) -> Result<T, ValueError> {
        kind.parse(text)
    }

    pub fn normalize<T, K: Kind<Value = T>>(kind: K, text: &str) -> Result<String, ValueError> {
        let value = kind.parse(text)?;
        Ok(kind.format(&value))
    }

    /// The value of a topic override that was normalized when it was set: failing to read it
    /// is a bug (the kind's `format` wrote what its `parse` refuses).
    pub fn stored<T>(name: &str, parsed: Result<T, ValueError>) -> T {
        match parsed {
            Ok(value) => value,
            Err(error) => panic!("the stored override of `{name}` was normalized but: {error}"),
        }
    }
}

impl Setting {
    /// Its value in `config`, as Kafka writes it.
    pub fn value(&self, config: &BrokerConfig) -> String {
        (self.ops.get)(config)
    }

    /// Its default, as Kafka writes it.
    pub fn default_value(&self) -> String {
        (self.ops.default)()
    }

    /// What it accepts, in words.
    pub fn accepted(&self) -> String {
        (self.ops.accepted)()
    }

    /// Sets it in `config` from `text` (trimmed).
    pub fn set(&self, config: &mut BrokerConfig, text: &str) -> Result<(), ValueError> {
        (self.ops.set)(config, text)
    }

    /// Checks `text` (trimmed); returns it normalized, as a topic override is stored.
    pub fn normalize(&self, text: &str) -> Result<String, ValueError> {
        (self.ops.normalize)(text)
    }

    /// Sets its fields of `log` from the topic's normalized `override_text`, or else from
    /// `broker`.
    pub fn to_log(&self, log: &mut LogConfig, broker: &BrokerConfig, override_text: Option<&str>) {
        if let Some(to_log) = self.ops.to_log {
            to_log(log, broker, override_text);
        }
    }

    /// Whether server.properties and `--set` may set it.
    pub fn is_broker_setting(&self) -> bool {
        self.scope != Scope::TopicOnly
    }
}

impl Unit {
    /// The base setting's bounds counted in this unit.
    fn bounds(&self, (min, max): (i128, i128)) -> (i128, i128) {
        let min = if min < 0 {
            min
        } else {
            (min + self.factor - 1) / self.factor
        };
        (min, max / self.factor)
    }

    /// `text`, a count of this unit, as a count of the base setting's unit.
    fn to_base(&self, bounds: (i128, i128), text: &str) -> Result<String, ValueError> {
        let (min, max) = self.bounds(bounds);
        let count: i128 = text
            .parse()
            .map_err(|_| ValueError::NotAnInteger { min, max })?;
        if count < min || count > max {
            return Err(ValueError::OutOfRange { min, max });
        }
        let base = if count < 0 {
            count
        } else {
            count * self.factor
        };
        Ok(base.to_string())
    }

    /// `base_text`, the base setting's value, counted in this unit (rounded down).
    fn in_unit(&self, base_text: &str) -> String {
        match base_text.parse::<i128>() {
            Ok(base) => (base / self.factor).to_string(),
            Err(_) => panic!(
                "`{}`: the base value `{base_text}` is no integer",
                self.name
            ),
        }
    }
}

/// A name server.properties may use: a setting's own, an alias, or a unit.
#[derive(Clone, Copy)]
pub struct Named {
    pub setting: &'static Setting,
    pub unit: Option<&'static Unit>,
}

impl Named {
    /// What DescribeConfigs calls it: the unit's name, else the setting's (an alias reports as
    /// the setting it stands for).
    pub fn name(&self) -> &'static str {
        self.unit.map_or(self.setting.name, |u| u.name)
    }

    pub fn set(&self, config: &mut BrokerConfig, text: &str) -> Result<(), ValueError> {
        match self.unit {
            None => self.setting.set(config, text),
            Some(unit) => {
                let bounds = self.bounds();
                self.setting.set(config, &unit.to_base(bounds, text)?)
            }
        }
    }

    pub fn value(&self, config: &BrokerConfig) -> String {
        let value = self.setting.value(config);
        match self.unit {
            None => value,
            Some(unit) => unit.in_unit(&value),
        }
    }

    pub fn default_value(&self) -> String {
        let value = self.setting.default_value();
        match self.unit {
            None => value,
            Some(unit) => unit.in_unit(&value),
        }
    }

    fn bounds(&self) -> (i128, i128) {
        match (self.setting.ops.bounds)() {
            Some(bounds) => bounds,
            None => panic!("`{}` has units but no bounds", self.setting.name),
        }
    }

    fn doc(&self) -> String {
        match self.unit {
            None => self.setting.doc.to_string(),
            Some(unit) => {
                let word = unit.name.rsplit('.').next().unwrap_or(unit.name);
                format!("{} in {word}.", self.setting.name)
            }
        }
    }

    /// Whether it may change at run time (a unit may not: only the setting's own name).
    pub fn is_dynamic(&self) -> bool {
        self.unit.is_none() && self.setting.scope == Scope::Dynamic
    }
}

/// The broker setting server.properties calls `name` (its own name, an alias or a unit).
pub fn find(name: &str) -> Option<Named> {
    SETTINGS
        .iter()
        .filter(|s| s.is_broker_setting())
        .find_map(|setting| {
            if setting.name == name || setting.aliases.contains(&name) {
                return Some(Named {
                    setting,
                    unit: None,
                });
            }
            let unit = setting.units.iter().find(|u| u.name == name)?;
            Some(Named {
                setting,
                unit: Some(unit),
            })
        })
}

/// The setting behind topic config `name`.
pub fn find_topic(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.topic_name == Some(name))
}

/// Whether broker setting `name` may change at run time.
pub fn is_dynamic(name: &str) -> bool {
    find(name).is_some_and(|named| named.name() == name && named.is_dynamic())
}

/// Every name DescribeConfigs (BROKER) reports: each broker setting, then its units.
pub fn described() -> impl Iterator<Item = Named> {
    SETTINGS
        .iter()
        .filter(|s| s.is_broker_setting())
        .flat_map(|setting| {
            let own = Named {
                setting,
                unit: None,
            };
            let units = setting.units.iter().map(move |unit| Named {
                setting,
                unit: Some(unit),
            });
            std::iter::once(own).chain(units)
        })
}

/// One broker setting as DescribeConfigs (BROKER) reports it.
pub struct Described {
    pub name: &'static str,
    pub value: String,
    pub doc: String,
    pub read_only: bool,
}

/// Every broker setting's value in `config`.
pub fn describe(config: &BrokerConfig) -> Vec<Described> {
    described()
        .map(|named| Described {
            name: named.name(),
            value: named.value(config),
            doc: named.doc(),
            read_only: !named.is_dynamic(),
        })
        .collect()
}

/// The settings part of `odradek --help`, from the table.
pub fn help() -> String {
    let mut text = String::from(
        "Settings (--set NAME=VALUE or --config FILE; Kafka's names; \
         [topic: NAME] is the topic config it is the default of, dynamic: may change at run time \
         through IncrementalAlterConfigs):\n",
    );
    for named in described() {
        let setting = named.setting;
        let mut tags = Vec::new();
        if named.unit.is_none() {
            tags.extend(
                setting
                    .aliases
                    .iter()
                    .map(|alias| format!("alias: {alias}")),
            );
            tags.extend(setting.topic_name.map(|topic| format!("topic: {topic}")));
        }
        if named.is_dynamic() {
            tags.push("dynamic".into());
        }
        let tags = if tags.is_empty() {
            String::new()
        } else {
            format!("  [{}]", tags.join(", "))
        };
        let accepted = match named.unit {
            None => setting.accepted(),
            Some(unit) => {
                let (min, max) = unit.bounds(named.bounds());
                format!("an integer in [{min}, {max}]")
            }
        };
        push_entry(&mut text, named.name(), &named.default_value(), &tags);
        text.push_str(&format!("      {} Accepts {accepted}.\n", named.doc()));
    }
    text.push_str(
        "Topic configs without a broker setting yet (their broker default is Kafka's):\n",
    );
    for setting in SETTINGS.iter().filter(|s| !s.is_broker_setting()) {
        let topic_name = setting.topic_name.unwrap_or(setting.name);
        let tags = format!("  [synonym: {}]", setting.name);
        push_entry(&mut text, topic_name, &setting.default_value(), &tags);
        let accepted = setting.accepted();
        text.push_str(&format!("      {} Accepts {accepted}.\n", setting.doc));
    }
    text
}

fn push_entry(text: &mut String, name: &str, default: &str, tags: &str) {
    let default = if default.is_empty() {
        "(unset)"
    } else {
        default
    };
    text.push_str(&format!("  {name} = {default}{tags}\n"));
}
