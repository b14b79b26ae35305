//! The table checked against itself and against README's settings table.

use std::collections::BTreeSet;

use super::*;

#[test]
fn every_name_is_unique() {
    let mut broker_names = BTreeSet::new();
    let mut topic_names = BTreeSet::new();
    for setting in SETTINGS {
        let units = setting.units.iter().map(|u| u.name);
        for name in [setting.name]
            .into_iter()
            .chain(setting.aliases.iter().copied())
            .chain(units)
        {
            assert!(broker_names.insert(name), "`{name}` names two settings");
            assert!(
                !IGNORED.contains(&name),
                "`{name}` is a setting and ignored"
            );
        }
        if let Some(topic_name) = setting.topic_name {
            assert!(
                topic_names.insert(topic_name),
                "topic config `{topic_name}` twice"
            );
        }
    }
}

#[test]
fn every_default_is_accepted_as_written() {
    for setting in SETTINGS {
        let default = setting.default_value();
        assert_eq!(
            setting.normalize(&default).as_deref(),
            Ok(default.as_str()),
            "{}",
            setting.name
        );
    }
}

#[test]
fn units_scale_integer_settings() {
    for setting in SETTINGS.iter().filter(|s| !s.units.is_empty()) {
        assert!(
            (setting.ops.bounds)().is_some(),
            "{}: units need an integer",
            setting.name
        );
        for unit in setting.units {
            assert!(unit.factor > 1, "{}", unit.name);
            let named = find(unit.name).expect("a unit is a name");
            assert_eq!(named.name(), unit.name);
            assert!(
                !named.is_dynamic(),
                "{}: only the setting's own name changes",
                unit.name
            );
        }
    }
}

#[test]
fn scopes_fit_topic_names() {
    for setting in SETTINGS {
        match setting.scope {
            // Today only the defaults of topic configs change at run time.
            Scope::Dynamic | Scope::TopicOnly => {
                assert!(setting.topic_name.is_some(), "{}", setting.name)
            }
            Scope::Static => assert!(setting.topic_name.is_none(), "{}", setting.name),
        }
    }
    assert!(is_dynamic("log.retention.ms"));
    assert!(!is_dynamic("log.retention.hours"));
    assert!(!is_dynamic("num.partitions"));
    assert!(!is_dynamic("log.cleaner.delete.retention.ms"));
    assert!(find("log.cleaner.delete.retention.ms").is_none());
}

#[test]
fn broker_describe_lists_each_setting_then_its_units() {
    let config = BrokerConfig {
        log_retention_ms: 2 * 3_600_000,
        ..BrokerConfig::default()
    };
    let described = describe(&config);
    let names: Vec<&str> = described.iter().map(|d| d.name).collect();
    let at = names
        .iter()
        .position(|n| *n == "log.retention.ms")
        .expect("described");
    assert_eq!(
        names[at..at + 3],
        [
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours"
        ]
    );
    let values: Vec<&str> = described[at..at + 3]
        .iter()
        .map(|d| d.value.as_str())
        .collect();
    assert_eq!(values, ["7200000", "120", "2"]);
    assert!(!described[at].read_only && described[at + 2].read_only);
    assert_eq!(described[at + 2].doc, "log.retention.ms in hours.");
    assert!(!names.contains(&"log.cleaner.delete.retention.ms"));
}

/// One row of README's settings table.
struct ReadmeRow {
    /// The backquoted names of the first column (flags such as `--listen` left out).
    names: Vec<String>,
    topic_name: Option<String>,
    default: String,
}

/// README's table under `## Settings`: `| setting | topic config | default | meaning |`, a name
/// or `—` (no broker setting) first, and a default that starts with the table's value (`—`:
/// none), which words in parentheses may follow.
fn readme_rows() -> Vec<ReadmeRow> {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("\n## Settings\n")
        .nth(1)
        .expect("README has ## Settings");
    let rows: Vec<&str> = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 4, "README row `{row}` needs four cells");
            let names = quoted(cells[0])
                .into_iter()
                .filter(|n| !n.starts_with("--"))
                .collect();
            let topic_name = quoted(cells[1]).into_iter().next();
            let first = cells[2].split_whitespace().next().unwrap_or_default();
            let default = match first.trim_matches('`') {
                "—" => String::new(),
                value => value.to_string(),
            };
            ReadmeRow {
                names,
                topic_name,
                default,
            }
        })
        .collect()
}

/// The backquoted words of `cell`.
fn quoted(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

#[test]
fn readme_lists_every_setting_with_its_topic_name_and_default() {
    let rows = readme_rows();
    assert!(!rows.is_empty(), "README's settings table is empty");
    for setting in SETTINGS {
        let row = rows.iter().find(|row| match row.names.first() {
            Some(name) => *name == setting.name,
            None => row.topic_name.as_deref() == setting.topic_name,
        });
        let Some(row) = row else {
            panic!("README's settings table has no row for `{}`", setting.name);
        };
        let what = format!("README's row of `{}`", setting.name);
        assert_eq!(
            row.topic_name.as_deref(),
            setting.topic_name,
            "{what}: topic config"
        );
        assert_eq!(row.default, setting.default_value(), "{what}: default");
        assert_eq!(
            row.names.is_empty(),
            !setting.is_broker_setting(),
            "{what}: setting name"
        );
        for unit in setting.units {
            assert!(
                row.names.iter().any(|n| n == unit.name),
                "{what} lacks `{}`",
                unit.name
            );
        }
        for name in row.names.iter().skip(1) {
            let known = setting.aliases.contains(&name.as_str())
                || setting.units.iter().any(|u| u.name == name);
            assert!(known, "{what}: `{name}` is no alias or unit of it");
        }
    }
    assert_eq!(
        rows.len(),
        SETTINGS.len(),
        "README's settings table has extra rows"
    );
}
