//! The values of the KRaft settings (`process.roles`, `controller.quorum.voters`): what a node is
//! in a cluster and who votes in its metadata quorum.

use super::values::{Kind, ValueError};

/// `process.roles`: what a node of a KRaft cluster is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessRoles {
    /// Serves clients; needs the cluster's controllers.
    Broker,
    /// A member of the metadata quorum only.
    Controller,
    /// Both (Kafka's combined mode), as a node without cluster settings is.
    Combined,
}

impl ProcessRoles {
    pub const NAMES: &'static [(&'static str, ProcessRoles)] = &[
        ("broker,controller", ProcessRoles::Combined),
        ("controller,broker", ProcessRoles::Combined),
        ("broker", ProcessRoles::Broker),
        ("controller", ProcessRoles::Controller),
    ];
}

/// One member of `controller.quorum.voters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
}

/// `controller.quorum.voters`: `ID@HOST:PORT`, comma-separated; empty for none.
pub struct Voters;

impl Kind for Voters {
    type Value = Vec<Voter>;

    fn parse(&self, text: &str) -> Result<Vec<Voter>, ValueError> {
        let bad = || ValueError::NotOneOf {
            expected: self.accepted(),
        };
        let mut voters: Vec<Voter> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, address) = entry.split_once('@').ok_or_else(bad)?;
            let node_id = id.trim().parse::<i32>().ok().filter(|id| *id >= 0);
            let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let (Some(node_id), Ok(port)) = (node_id, port.parse::<u16>()) else {
                return Err(bad());
            };
            if host.is_empty() || voters.iter().any(|v| v.node_id == node_id) {
                return Err(bad());
            }
            voters.push(Voter {
                node_id,
                host: host.to_string(),
                port,
            });
        }
        Ok(voters)
    }

    fn format(&self, voters: &Vec<Voter>) -> String {
        let entries: Vec<String> = voters
            .iter()
            .map(|v| format!("{}@{}:{}", v.node_id, v.host, v.port))
            .collect();
        entries.join(",")
    }

    fn accepted(&self) -> String {
        "ID@HOST:PORT, comma-separated, each id once (or nothing)".into()
    }
}
