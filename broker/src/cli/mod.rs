//! The admin CLI: `odradek cluster …`, `odradek group …` and `odradek topic …`, plain blocking
//! Kafka clients of any
//! Kafka-compatible broker (`--bootstrap HOST:PORT`). No executor and no broker preflight run
//! for them: they only open TCP connections, with timeouts.
//!
//! Layout:
//! - [`client`]: the blocking connection (version negotiation, correlation ids) and the cluster
//!   of connections (bootstrap, coordinators, leaders).
//! - [`group`]: `group list | describe | delete`; [`reset`]: `group reset-offsets`.
//! - [`topic`]: `topic list | describe | create | delete | alter`.
//! - [`cluster`]: `cluster describe`.
//! - [`offsets`]: log start / end offsets and offsets by time, asked of partition leaders.
//! - [`table`]: the plain table printer; `--json` prints JSON instead.

mod client;
mod cluster;
mod group;
mod offsets;
mod reset;
mod table;
mod topic;

use std::process::ExitCode;
use std::time::Duration;

use odradek_net::NetError;

/// Admin subcommands; without one, `odradek` runs the broker.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// The cluster: describe (its id, controller and brokers).
    Cluster(ClusterCommand),
    /// Consumer groups: list, describe, reset-offsets, delete.
    Group(GroupCommand),
    /// Topics: list, describe, create, delete, alter.
    Topic(TopicCommand),
}

#[derive(clap::Args, Debug)]
pub struct ClusterCommand {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    action: cluster::ClusterAction,
}

#[derive(clap::Args, Debug)]
pub struct GroupCommand {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    action: group::GroupAction,
}

#[derive(clap::Args, Debug)]
pub struct TopicCommand {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    action: topic::TopicAction,
}

/// Options of every admin command.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// A broker to start from.
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    bootstrap: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Connect and per-request timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000, global = true)]
    timeout_ms: u64,
}

impl Common {
    fn connect(&self) -> Result<client::Cluster, CliError> {
        if self.timeout_ms == 0 {
            return Err(CliError::Usage("--timeout-ms must be at least 1".into()));
        }
        client::Cluster::connect(&self.bootstrap, Duration::from_millis(self.timeout_ms))
    }

    /// Prints `json` with `--json`, else the text `render` makes.
    fn emit(&self, json: serde_json::Value, render: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string_pretty(&json) {
                Ok(text) => println!("{text}"),
                Err(error) => eprintln!("odradek: error: cannot print JSON: {error}"),
            }
        } else {
            print!("{}", render());
        }
    }
}

/// Why an admin command failed; printed as one line on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach the broker at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{name}: {context}{}", suffix(.message))]
    Kafka {
        name: String,
        context: String,
        message: Option<String>,
    },
    #[error("the broker at {addr} does not serve {api} in a version this CLI knows")]
    Unsupported { addr: String, api: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("protocol error: {0}")]
    Net(#[from] NetError),
    #[error("{0}")]
    Usage(String),
}

fn suffix(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default()
}

/// Runs one admin command; the exit code is 0 only when it did all it was asked.
pub fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Cluster(cluster) => cluster::run(&cluster.common, cluster.action),
        Command::Group(group) => group::run(&group.common, group.action),
        Command::Topic(topic) => topic::run(&topic.common, topic.action),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let line = error.to_string().replace(['\n', '\r'], " ");
            eprintln!("odradek: error: {line}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `name=value` (for `--config`).
fn parse_assignment(text: &str) -> Result<(String, String), CliError> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(CliError::Usage(format!(
            "--config {text}: expected NAME=VALUE, e.g. retention.ms=60000"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_need_a_name_and_an_equals_sign() {
        let parsed = parse_assignment("retention.ms=1000").expect("valid");
        assert_eq!(parsed, ("retention.ms".into(), "1000".into()));
        assert_eq!(parse_assignment("a=").expect("empty value").1, "");
        assert!(parse_assignment("retention.ms").is_err());
        assert!(parse_assignment("=5").is_err());
    }

    #[test]
    fn kafka_errors_are_one_line_with_name_and_message() {
        let error = CliError::Kafka {
            name: "UNKNOWN_TOPIC_OR_PARTITION".into(),
            context: "topic 'x'".into(),
            message: Some("no such topic".into()),
        };
        assert_eq!(
            error.to_string(),
            "UNKNOWN_TOPIC_OR_PARTITION: topic 'x' (no such topic)"
        );
    }
}
