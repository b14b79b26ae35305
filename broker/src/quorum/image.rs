//! The metadata image and the commands of the metadata log.
//!
//! Every entry of the log is one [`Proposal`]: a [`Command`] and the id its proposer waits on.
//! Every node applies the committed entries in log order with [`ClusterImage::apply`], a pure
//! function of the image and the command, so every node computes the same image and the same
//! outcome: checks that depend on the state (does the topic exist, are there enough brokers)
//! are made there, at apply time, and the proposer reads its command's outcome from its own
//! apply. Placement of replicas is deterministic too (seeded by the topic id the proposer drew).
//!
//! The image is also the Raft snapshot's data: serialized whole (JSON), it is what a voter that
//! has fallen behind the leader's compacted log installs.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::control::ControlError;
use crate::metadata::{PartitionState, TopicMeta};

/// Replicas of each partition in partition order, the leader first.
pub type Assignment = Vec<Vec<i32>>;

/// No leader (Kafka's -1): every replica of the partition's ISR is fenced.
pub const NO_LEADER: i32 = -1;

/// A broker as it registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub node_id: i32,
    /// Drawn at each start: tells a restarted broker from its previous life.
    pub incarnation: u64,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// No heartbeat within `broker.session.timeout.ms`: it leads nothing and clients are not
    /// told about it.
    pub fenced: bool,
}

/// Everything the metadata log holds, as of some applied index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterImage {
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Broker settings changed at run time, cluster-wide (IncrementalAlterConfigs, BROKER).
    pub broker_configs: BTreeMap<String, String>,
    /// The last producer-id generation handed to a starting broker (see `producer_ids`).
    pub producer_id_generation: u64,
}

/// One entry of the metadata log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Proposal {
    /// Drawn by the proposer, which waits for the entry carrying it to be applied.
    pub id: u64,
    pub command: Command,
}

/// A change to the metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A broker starting: its endpoint, and the producer-id generation it has used before
    /// (from the single-node file), so the one it gets is past it.
    RegisterBroker {
        registration: BrokerRegistration,
        producer_id_floor: u64,
    },
    FenceBroker {
        node_id: i32,
        incarnation: u64,
    },
    UnfenceBroker {
        node_id: i32,
        incarnation: u64,
    },
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        /// Replicas of each partition, leader first; `None`: placed by the controller.
        assignment: Option<Assignment>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        count: i32,
        assignment: Option<Assignment>,
    },
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    SetBrokerConfigs {
        configs: BTreeMap<String, String>,
    },
    /// A partition leader changes its ISR (Kafka's AlterPartition).
    AlterPartition(IsrChange),
    /// Leader elections asked by an operator (ElectLeaders) or the controller's own rebalance:
    /// for `partitions` (`None`: every partition), the preferred replica where it is live and in
    /// sync, or with `unclean`, any live replica for a partition that has no leader.
    ElectLeaders {
        partitions: Option<Vec<(String, i32)>>,
        unclean: bool,
    },
    /// A single-node data directory's topic registry, the first entry of its log: its topics
    /// keep their ids and this node leads their partitions.
    Import {
        node_id: i32,
        topics: BTreeMap<String, TopicMeta>,
        broker_configs: BTreeMap<String, String>,
    },
}

/// A partition leader's new ISR: applied only if it still leads at `leader_epoch` and the
/// partition is at `partition_epoch`, so a deposed leader or a change computed from a stale
/// state cannot take effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrChange {
    pub topic: String,
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// One partition's leader election: (topic, partition, why not; `None`: a new leader).
pub type Election = (String, i32, Option<ControlError>);

/// The proposal an entry of the log carries; `None` for Raft's own entries (a new leader's
/// empty entry; voters are static, so no conf changes) and, logged, for one that does not
/// decode (entries are checksummed on disk and written by this code: a bug, not input).
pub fn proposal_of(entry: &raft::prelude::Entry) -> Option<Proposal> {
    if entry.get_entry_type() != raft::prelude::EntryType::EntryNormal || entry.data.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Proposal>(&entry.data) {
        Ok(proposal) => Some(proposal),
        Err(error) => {
            let index = entry.index;
            tracing::error!(index, %error, "a metadata log entry does not decode; skipped");
            None
        }
    }
}

/// What an applied command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The topic as it now is (for DeleteTopic: as it was).
    Topic(TopicMeta),
    /// A broker registered and got this producer-id generation.
    Registered {
        producer_id_generation: u64,
    },
    /// A partition as it now is.
    Partition(PartitionState),
    /// Each election asked for: its partition and why it did not happen (`None`: it did).
    Elections(Vec<Election>),
    Done,
}

pub type Applied = Result<Outcome, ControlError>;

impl ClusterImage {
    /// Applies one committed command. Deterministic: every node gets the same image and result.
    pub fn apply(&mut self, command: Command) -> Applied {
        match command {
            Command::RegisterBroker {
                registration,
                producer_id_floor,
            } => {
                let node_id = registration.node_id;
                self.brokers.insert(node_id, registration);
                self.elect_where_leaderless(node_id);
                self.producer_id_generation =
                    self.producer_id_generation.max(producer_id_floor) + 1;
                Ok(Outcome::Registered {
                    producer_id_generation: self.producer_id_generation,
                })
            }
            Command::FenceBroker {
                node_id,
                incarnation,
            } => {
                if let Some(broker) = self.current(node_id, incarnation) {
                    broker.fenced = true;
                    self.move_leadership_from(node_id);
                }
                Ok(Outcome::Done)
            }
            Command::UnfenceBroker {
                node_id,
                incarnation,
            } => {
                if let Some(broker) = self.current(node_id, incarnation) {
                    broker.fenced = false;
                    self.elect_where_leaderless(node_id);
                }
                Ok(Outcome::Done)
            }
            Command::CreateTopic {
                name,
                id,
                partitions,
                replication_factor,
                assignment,
                configs,
            } => self
                .create_topic(
                    name,
                    id,
                    partitions,
                    replication_factor,
                    assignment,
                    configs,
                )
                .map(Outcome::Topic),
            Command::DeleteTopic { name } => {
                let meta = self
                    .topics
                    .remove(&name)
                    .ok_or_else(|| unknown_topic(&name))?;
                Ok(Outcome::Topic(meta))
            }
            Command::CreatePartitions {
                name,
                count,
                assignment,
            } => self
                .create_partitions(&name, count, assignment)
                .map(Outcome::Topic),
            Command::SetTopicConfigs { name, configs } => {
                let meta = self
                    .topics
                    .get_mut(&name)
                    .ok_or_else(|| unknown_topic(&name))?;
                meta.configs = configs;
                Ok(Outcome::Topic(meta.clone()))
            }
            Command::SetBrokerConfigs { configs } => {
                self.broker_configs = configs;
                Ok(Outcome::Done)
            }
            Command::AlterPartition(change) => self.alter_partition(change).map(Outcome::Partition),
            Command::ElectLeaders {
                partitions,
                unclean,
            } => Ok(Outcome::Elections(self.elect_leaders(partitions, unclean))),
            Command::Import {
                node_id,
                topics,
                broker_configs,
            } => {
                for (name, mut meta) in topics {
                    meta.partition_states = (0..meta.partitions)
                        .map(|_| PartitionState::new(vec![node_id], &[]))
                        .collect();
                    self.topics.insert(name, meta);
                }
                self.broker_configs = broker_configs;
                Ok(Outcome::Done)
            }
        }
    }

    /// The brokers that may lead and host new replicas, by id.
    pub fn live_brokers(&self) -> Vec<&BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced).collect()
    }

    fn current(&mut self, node_id: i32, incarnation: u64) -> Option<&mut BrokerRegistration> {
        self.brokers
            .get_mut(&node_id)
            .filter(|b| b.incarnation == incarnation)
    }

    fn create_topic(
        &mut self,
        name: String,
        id: Uuid,
        partitions: i32,
        replication_factor: i16,
        assignment: Option<Assignment>,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, ControlError> {
        if self.topics.contains_key(&name) {
            return Err(ControlError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic '{name}' already exists"),
            ));
        }
        let replicas = match assignment {
            Some(assignment) => self.checked_assignment(assignment, None)?,
            None => self.place(seed(&id), 0..partitions, replication_factor)?,
        };
        let meta = TopicMeta {
            name: name.clone(),
            id,
            partitions: replicas.len() as i32,
            configs,
            partition_states: self.new_partitions(replicas),
        };
        self.topics.insert(name, meta.clone());
        Ok(meta)
    }

    /// States of new partitions on `assignment`, every live replica in sync.
    fn new_partitions(&self, assignment: Assignment) -> Vec<PartitionState> {
        let live: Vec<i32> = self.live_brokers().iter().map(|b| b.node_id).collect();
        assignment
            .into_iter()
            .map(|replicas| PartitionState::new(replicas, &live))
            .collect()
    }

    fn create_partitions(
        &mut self,
        name: &str,
        count: i32,
        assignment: Option<Assignment>,
    ) -> Result<TopicMeta, ControlError> {
        let old = self.topics.get(name).ok_or_else(|| unknown_topic(name))?;
        if count <= old.partitions {
            let message = format!(
                "topic '{name}' has {} partitions; the new count must be larger",
                old.partitions
            );
            return Err(ControlError::new(ResponseError::InvalidPartitions, message));
        }
        let replication_factor = old
            .partition_states
            .first()
            .map_or(1, |p| p.replicas.len() as i16);
        let added = match assignment {
            Some(assignment) => {
                if assignment.len() as i32 != count - old.partitions {
                    let message = format!(
                        "{} assignments for {} new partitions",
                        assignment.len(),
                        count - old.partitions
                    );
                    return Err(ControlError::new(
                        ResponseError::InvalidReplicaAssignment,
                        message,
                    ));
                }
                self.checked_assignment(assignment, Some(replication_factor))?
            }
            None => self.place(seed(&old.id), old.partitions..count, replication_factor)?,
        };
        let new_states = self.new_partitions(added);
        let meta = self.topics.get_mut(name).expect("looked up above");
        meta.partitions = count;
        meta.partition_states.extend(new_states);
        Ok(meta.clone())
    }

    /// Replicas for `partitions` over the live brokers: leaders round-robin from a start the
    /// seed picks, followers the next brokers in a list that alternates racks (when brokers
    /// have racks), so a partition's replicas sit in as many racks as there are.
    fn place(
        &self,
        seed: u64,
        partitions: std::ops::Range<i32>,
        replication_factor: i16,
    ) -> Result<Assignment, ControlError> {
        let brokers = rack_alternated(&self.live_brokers());
        let n = brokers.len();
        if replication_factor < 1 || replication_factor as usize > n {
            return Err(ControlError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {replication_factor} with {n} live broker{}",
                    if n == 1 { "" } else { "s" }
                ),
            ));
        }
        let start = (seed % n as u64) as usize;
        Ok(partitions
            .map(|p| {
                let first = start + p as usize;
                (0..replication_factor as usize)
                    .map(|j| brokers[(first + j) % n])
                    .collect()
            })
            .collect())
    }

    /// An explicit assignment, checked: registered brokers, none twice in a partition, one
    /// replication factor for all.
    fn checked_assignment(
        &self,
        assignment: Assignment,
        replication_factor: Option<i16>,
    ) -> Result<Assignment, ControlError> {
        let invalid = |message: String| {
            Err(ControlError::new(
                ResponseError::InvalidReplicaAssignment,
                message,
            ))
        };
        let factor = replication_factor
            .map(|f| f as usize)
            .or_else(|| assignment.first().map(Vec::len));
        for (partition, replicas) in assignment.iter().enumerate() {
            if replicas.is_empty() || Some(replicas.len()) != factor {
                return invalid(format!(
                    "partition {partition}: every partition needs the same, non-zero number of \
                     replicas"
                ));
            }
            if let Some(unknown) = replicas.iter().find(|r| !self.brokers.contains_key(r)) {
                return invalid(format!(
                    "partition {partition}: broker {unknown} is not registered"
                ));
            }
            let mut sorted = replicas.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != replicas.len() {
                return invalid(format!("partition {partition}: a broker is named twice"));
            }
        }
        Ok(assignment)
    }
}

/// Brokers ordered so that neighbours are in different racks where racks allow: racks in name
/// order, taking one broker of each in turn (Kafka's "rack-alternated" list).
fn rack_alternated(brokers: &[&BrokerRegistration]) -> Vec<i32> {
    let mut racks: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for broker in brokers {
        racks
            .entry(broker.rack.as_deref())
            .or_default()
            .push(broker.node_id);
    }
    let mut ordered = Vec::with_capacity(brokers.len());
    for round in 0.. {
        let before = ordered.len();
        ordered.extend(racks.values().filter_map(|ids| ids.get(round)));
        if ordered.len() == before {
            break;
        }
    }
    ordered
}

/// A placement seed every node derives alike from the topic id.
fn seed(id: &Uuid) -> u64 {
    let bytes = id.as_bytes();
    u64::from_le_bytes(bytes[..8].try_into().expect("16 bytes"))
}

pub(super) fn unknown_topic(name: &str) -> ControlError {
    ControlError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("topic '{name}' does not exist"),
    )
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
