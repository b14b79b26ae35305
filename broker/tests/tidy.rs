//! Tidy: what neither the compiler nor clippy checks across the workspace, as TigerBeetle's
//! `tidy.zig` does. Every `.rs` file (outside `target/`) is formatted, keeps its lines to
//! [`LINE_CHARS_MAX`] and its length to [`FILE_LINES_MAX`]; `rust-version` is at least what
//! every locked dependency declares, and every crate inherits it; every dependency a crate's
//! `Cargo.toml` names is used by its sources, and every workspace dependency by some crate; the
//! storage engine, which runs on the reactors, calls `std::fs` only where it says why.
//!
//! No network and no cargo subprocess: it reads the sources, `Cargo.lock`, and the manifests of
//! the crates cargo unpacked to build the workspace (`$CARGO_HOME/registry/src`), and runs
//! `rustfmt --check` on the files.
//!
//! An allowance below is an exception at today's size. It may only shrink: a file that grows past
//! it fails, and so does one that shrank without lowering it (or no longer needs it), so that
//! the next change cannot take the room back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// rustfmt's `max_width`, for what rustfmt cannot wrap (comments, strings, attributes).
const LINE_CHARS_MAX: usize = 100;
/// STYLE.md: split a file by responsibility before it passes about this.
const FILE_LINES_MAX: usize = 600;

/// Files longer than [`FILE_LINES_MAX`], at their length today.
const LONG_FILES: &[(&str, usize)] = &[
    ("broker/tests/crash_recovery.rs", 724),
    ("net/src/message_set.rs", 644),
    ("storage/tests/append_read.rs", 658),
];

/// Files with lines longer than [`LINE_CHARS_MAX`], and how many.
const LONG_LINES: &[(&str, usize)] = &[];

/// Where the storage engine may call `std::fs` (per file, how many lines), each off the reactor.
const STORAGE_STD_FS: &[(&str, usize)] = &[
    // `create_and_list_dir`: glommio has no asynchronous readdir; runs on the blocking pool.
    ("storage/src/fileio.rs", 2),
    // `PartitionLog::delete`: `remove_dir_all` on a thread of its own.
    ("storage/src/log.rs", 1),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the broker crate sits in the workspace")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The `.rs` files under `dir`, skipping build output and hidden directories, as paths relative
/// to the workspace root with `/` separators.
fn rust_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let root = root();
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    dirs.push(path);
                }
            } else if name.ends_with(".rs") {
                let relative = path.strip_prefix(&root).expect("under the root");
                let relative = relative.to_string_lossy().replace('\\', "/");
                found.push((relative, path));
            }
        }
    }
    found.sort();
    found
}

/// Compares what was found (a count per file) with the allowance list `table`: a file without
/// an allowance is reported, and so is an allowance its file does not match exactly.
fn ratchet(found: &BTreeMap<String, usize>, allowed: &[(&str, usize)], table: &str) -> Vec<String> {
    let allowed: BTreeMap<&str, usize> = allowed.iter().copied().collect();
    let mut problems = Vec::new();
    for (file, &count) in found {
        match allowed.get(file.as_str()) {
            None => problems.push(format!("{file}: {count}")),
            Some(&allowance) if count > allowance => problems.push(format!(
                "{file}: {count}, more than the {allowance} {table} allows"
            )),
            Some(&allowance) if count < allowance => problems.push(format!(
                "{file}: {count}, fewer than the {allowance} {table} allows: lower it to {count}"
            )),
            Some(_) => {}
        }
    }
    for (file, allowance) in allowed {
        if !found.contains_key(file) {
            problems.push(format!(
                "{file}: none left of the {allowance} {table} allows: remove its entry"
            ));
        }
    }
    problems
}

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

/// A function declaration whose name alone overflows (a `given_…_when_…_should_…` test): it
/// cannot be wrapped.
fn is_long_fn_name(line: &str) -> bool {
    let rest = line.trim_start();
    let Some(rest) = rest.strip_prefix("fn ") else {
        return false;
    };
    let name_end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    matches!(&rest[name_end..], "(" | "() {")
}

fn long_lines(files: &[(String, PathBuf)]) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    for (name, path) in files {
        let count = read(path)
            .lines()
            .filter(|l| l.chars().count() > LINE_CHARS_MAX && !is_long_fn_name(l))
            .count();
        if count > 0 {
            found.insert(name.clone(), count);
        }
    }
    found
}

fn long_files(files: &[(String, PathBuf)]) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    for (name, path) in files {
        let lines = read(path).lines().count();
        if lines > FILE_LINES_MAX {
            found.insert(name.clone(), lines);
        }
    }
    found
}

#[test]
fn lines_fit_in_100_characters() {
    let found = long_lines(&rust_files(&root()));
    assert_none(
        "lines over 100 characters, per file (wrap them: rustfmt does not wrap comments, strings \
         or macro arguments)",
        ratchet(&found, LONG_LINES, "LONG_LINES"),
    );
}

#[test]
fn files_stay_under_600_lines() {
    let found = long_files(&rust_files(&root()));
    assert_none(
        "files over 600 lines, with their length (split them by responsibility)",
        ratchet(&found, LONG_FILES, "LONG_FILES"),
    );
}

/// `rustfmt` beside the `cargo` that built this test (a rustup toolchain or proxy), else on the
/// `PATH`.
fn rustfmt() -> PathBuf {
    let beside_cargo = Path::new(env!("CARGO")).with_file_name("rustfmt");
    if beside_cargo.is_file() {
        beside_cargo
    } else {
        PathBuf::from("rustfmt")
    }
}

/// `cargo fmt` formats only the modules it finds by following `mod` items, so it skips files
/// whose `mod` is inside a macro (the handlers, declared by `api_table!`): every file is given
/// to rustfmt by name instead.
#[test]
fn every_file_is_formatted() {
    let files = rust_files(&root());
    let output = std::process::Command::new(rustfmt())
        .args(["--check", "--edition", "2021"])
        .args(files.iter().map(|(_, path)| path))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run rustfmt ({e}): install it with `rustup component add rustfmt`")
        });
    let report = String::from_utf8_lossy(&output.stdout);
    let unformatted: BTreeSet<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("Diff in "))
        .map(|l| l.rsplit_once(':').map_or(l, |(path, _)| path))
        .map(|l| l.rsplit_once(':').map_or(l, |(path, _)| path))
        .collect();
    assert!(
        output.status.success(),
        "not formatted (run `rustfmt --edition 2021` on them):\n  {}\n{}",
        unformatted.into_iter().collect::<Vec<_>>().join("\n  "),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_storage_engine_calls_std_fs_only_off_the_reactor() {
    let mut found = BTreeMap::new();
    for (name, path) in rust_files(&root().join("storage/src")) {
        let count = read(&path)
            .lines()
            .filter(|l| l.contains("std::fs"))
            .count();
        if count > 0 {
            found.insert(name, count);
        }
    }
    assert_none(
        "lines calling std::fs in the storage engine, per file; it blocks the shard: use glommio's \
         files (or its blocking pool, saying why)",
        ratchet(&found, STORAGE_STD_FS, "STORAGE_STD_FS"),
    );
}

/// The sections of a TOML file: `(header, lines)`, the lines before the first header under "".
fn sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut sections = vec![(String::new(), Vec::new())];
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            let header = line.trim_matches(|c| c == '[' || c == ']').to_string();
            sections.push((header, Vec::new()));
        } else if !line.is_empty() && !line.starts_with('#') {
            sections
                .last_mut()
                .expect("one section")
                .1
                .push(line.to_string());
        }
    }
    sections
}

/// The value of `key = "value"` among `lines`.
fn string_value(lines: &[String], key: &str) -> Option<String> {
    lines.iter().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The keys of a dependency table's lines (`name = …`, `name.workspace = true`).
fn dependency_names(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| {
            let key = line.split('=').next()?.trim();
            let name = key.split('.').next()?.trim().trim_matches('"');
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

fn is_dependency_table(header: &str) -> bool {
    let table = header.rsplit('.').next().unwrap_or(header);
    matches!(
        table,
        "dependencies" | "dev-dependencies" | "build-dependencies"
    ) && (header == table || header.starts_with("target."))
}

/// The workspace's member directories, from the root manifest.
fn members() -> Vec<String> {
    let manifest = read(&root().join("Cargo.toml"));
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members list");
    let list = line.split_once('=').expect("members = [...]").1;
    list.trim()
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Each member's dependencies (all tables), by member.
fn member_dependencies() -> BTreeMap<String, Vec<String>> {
    members()
        .into_iter()
        .map(|member| {
            let manifest = read(&root().join(&member).join("Cargo.toml"));
            let names = sections(&manifest)
                .into_iter()
                .filter(|(header, _)| is_dependency_table(header))
                .flat_map(|(_, lines)| dependency_names(&lines))
                .collect();
            (member, names)
        })
        .collect()
}

/// Whether `source` names the crate `ident` as code does (`ident::…`, `use ident`, `extern crate
/// ident`), not merely as a word.
fn mentions(source: &str, ident: &str) -> bool {
    let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
    source.match_indices(ident).any(|(at, _)| {
        let before = source[..at].chars().next_back();
        let after = &source[at + ident.len()..];
        boundary(before)
            && (after.starts_with("::")
                || (boundary(after.chars().next())
                    && (source[..at].ends_with("use ") || source[..at].ends_with("extern crate "))))
    })
}

#[test]
fn every_dependency_is_used() {
    let mut problems = Vec::new();
    let dependencies = member_dependencies();
    for (member, names) in &dependencies {
        let sources: Vec<String> = rust_files(&root().join(member))
            .iter()
            .map(|(_, path)| read(path))
            .collect();
        for name in names {
            let ident = name.replace('-', "_");
            if !sources.iter().any(|s| mentions(s, &ident)) {
                problems.push(format!("{member}/Cargo.toml: {name} is never used"));
            }
        }
    }
    let used: BTreeSet<&String> = dependencies.values().flatten().collect();
    let manifest = read(&root().join("Cargo.toml"));
    for (header, lines) in sections(&manifest) {
        if header == "workspace.dependencies" {
            for name in dependency_names(&lines) {
                if !used.contains(&name) {
                    problems.push(format!("Cargo.toml: workspace dependency {name} is unused"));
                }
            }
        }
    }
    assert_none("unused dependencies (remove them)", problems);
}

/// `"1.89"` or `"1.89.0"` as comparable numbers (`[1, 89, 0]` both).
fn version(text: &str) -> [u32; 3] {
    let mut parts = [0; 3];
    for (part, text_part) in parts.iter_mut().zip(text.split('.')) {
        *part = text_part
            .parse()
            .unwrap_or_else(|_| panic!("a version: {text}"));
    }
    parts
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .expect("CARGO_HOME or HOME")
}

/// The `(name, version)` of every registry package in `Cargo.lock`.
fn locked_registry_packages() -> Vec<(String, String)> {
    sections(&read(&root().join("Cargo.lock")))
        .into_iter()
        .filter(|(header, lines)| {
            header == "package"
                && string_value(lines, "source").is_some_and(|s| s.starts_with("registry+"))
        })
        .map(|(_, lines)| {
            let name = string_value(&lines, "name").expect("a locked package's name");
            let version = string_value(&lines, "version").expect("a locked package's version");
            (name, version)
        })
        .collect()
}

/// The `rust-version` each unpacked locked package declares, by package. Packages only other
/// platforms use were never unpacked; they are not here.
fn locked_rust_versions() -> BTreeMap<String, Option<String>> {
    let registries: Vec<PathBuf> = std::fs::read_dir(cargo_home().join("registry/src"))
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    let mut found = BTreeMap::new();
    for (name, version) in locked_registry_packages() {
        let unpacked = registries
            .iter()
            .map(|registry| registry.join(format!("{name}-{version}/Cargo.toml")))
            .find(|manifest| manifest.is_file());
        if let Some(manifest) = unpacked {
            let declared = sections(&read(&manifest))
                .into_iter()
                .find(|(header, _)| header == "package")
                .and_then(|(_, lines)| string_value(&lines, "rust-version"));
            found.insert(format!("{name} {version}"), declared);
        }
    }
    found
}

#[test]
fn rust_version_is_what_the_locked_dependencies_need() {
    let manifest = read(&root().join("Cargo.toml"));
    let declared = sections(&manifest)
        .into_iter()
        .find(|(header, _)| header == "workspace.package")
        .and_then(|(_, lines)| string_value(&lines, "rust-version"))
        .expect("[workspace.package] rust-version");
    let locked = locked_rust_versions();
    // Every direct dependency was unpacked to build the tests that run now: if one is missing,
    // this looked in the wrong place.
    let direct: BTreeSet<String> = member_dependencies().into_values().flatten().collect();
    let members = members();
    for name in direct.iter().filter(|n| !n.starts_with("odradek-")) {
        assert!(
            locked
                .keys()
                .any(|k| k.split(' ').next() == Some(name.as_str())),
            "{name} is not unpacked under {}: where did cargo put it?",
            cargo_home().display()
        );
    }
    let mut problems: Vec<String> = locked
        .iter()
        .filter_map(|(package, needs)| Some((package, needs.as_deref()?)))
        .filter(|(_, needs)| version(needs) > version(&declared))
        .map(|(package, needs)| format!("{package} needs Rust {needs}"))
        .collect();
    for member in &members {
        let manifest = read(&root().join(member).join("Cargo.toml"));
        if !manifest.contains("rust-version.workspace = true") {
            problems.push(format!("{member}/Cargo.toml does not inherit rust-version"));
        }
    }
    assert_none(
        &format!("rust-version = \"{declared}\" in Cargo.toml is not true"),
        problems,
    );
}
