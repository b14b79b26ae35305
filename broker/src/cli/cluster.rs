//! `odradek cluster describe`: the cluster id, the active controller, every broker with its
//! address, rack and state, and the metadata quorum (leader, epoch, high watermark, and each
//! voter's log end and lag). Brokers come from DescribeCluster (the live ones) and the voters
//! of DescribeQuorum (a voter that is not live is fenced, or not registered since it started);
//! the quorum is asked of its leader, the only node that knows every voter's progress.

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest,
    DescribeQuorumResponse,
};
use serde_json::json;

use super::client::{check, topic_name, Cluster};
use super::table::Table;
use super::{CliError, Common};

/// Kafka's name for the metadata log's topic.
const METADATA_TOPIC: &str = "__cluster_metadata";

#[derive(clap::Subcommand, Debug)]
pub enum ClusterAction {
    /// The cluster id, the controller, every broker (id, host, port, rack, state) and the
    /// metadata quorum (leader, epoch, each voter's lag).
    Describe,
}

pub fn run(common: &Common, action: ClusterAction) -> Result<(), CliError> {
    let mut cluster = common.connect()?;
    match action {
        ClusterAction::Describe => describe(common, &mut cluster),
    }
}

struct BrokerRow {
    id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
    state: &'static str,
}

struct Voter {
    id: i32,
    log_end: i64,
}

fn describe(common: &Common, cluster: &mut Cluster) -> Result<(), CliError> {
    let (_, described): (i16, DescribeClusterResponse) = cluster
        .bootstrap()
        .call_negotiated(ApiKey::DescribeCluster, |_| {
            DescribeClusterRequest::default()
        })?;
    check(
        described.error_code,
        described.error_message.as_ref(),
        "DescribeCluster",
    )?;
    let controller = described.controller_id.0;
    let mut brokers: Vec<BrokerRow> = described
        .brokers
        .iter()
        .map(|b| BrokerRow {
            id: b.broker_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
            state: "registered",
        })
        .collect();
    // The leader knows every voter's progress; any other node only the leader and epoch.
    let leader = brokers.iter().find(|b| b.id == controller);
    let quorum = match leader {
        Some(b) => {
            let (host, port) = (b.host.clone(), b.port);
            describe_quorum(cluster, Some((&host, port)))?
        }
        None => describe_quorum(cluster, None)?,
    };
    for voter in quorum.voters.iter().chain(&quorum.observers) {
        if !brokers.iter().any(|b| b.id == voter.id) {
            brokers.push(BrokerRow {
                id: voter.id,
                host: "-".into(),
                port: -1,
                rack: None,
                state: "fenced",
            });
        }
    }
    brokers.sort_by_key(|b| b.id);
    let lag = |voter: &Voter| (voter.log_end >= 0).then(|| quorum.high_watermark - voter.log_end);
    let json = json!({
        "cluster_id": described.cluster_id.to_string(),
        "controller_id": (controller >= 0).then_some(controller),
        "brokers": brokers
            .iter()
            .map(|b| json!({
                "node_id": b.id,
                "host": (b.port >= 0).then_some(&b.host),
                "port": (b.port >= 0).then_some(b.port),
                "rack": b.rack,
                "state": b.state,
            }))
            .collect::<Vec<_>>(),
        "quorum": {
            "leader_id": (quorum.leader >= 0).then_some(quorum.leader),
            "epoch": quorum.epoch,
            "high_watermark": quorum.high_watermark,
            "voters": quorum.voters.iter().map(|v| json!({
                "node_id": v.id,
                "log_end_offset": (v.log_end >= 0).then_some(v.log_end),
                "lag": lag(v),
            })).collect::<Vec<_>>(),
            "observers": quorum.observers.iter().map(|v| json!({
                "node_id": v.id,
                "log_end_offset": (v.log_end >= 0).then_some(v.log_end),
                "lag": lag(v),
            })).collect::<Vec<_>>(),
        },
    });
    common.emit(json, || {
        let controller = match controller >= 0 {
            true => controller.to_string(),
            false => "(none)".into(),
        };
        let mut text = format!(
            "cluster {}, controller {controller}\n",
            described.cluster_id
        );
        let mut table = Table::new(&["BROKER", "HOST", "PORT", "RACK", "STATE"]);
        for b in &brokers {
            let port = if b.port >= 0 {
                b.port.to_string()
            } else {
                "-".into()
            };
            let rack = b.rack.clone().unwrap_or_else(|| "-".into());
            table.row(vec![
                b.id.to_string(),
                b.host.clone(),
                port,
                rack,
                b.state.into(),
            ]);
        }
        text.push_str(&table.render());
        text.push_str(&format!(
            "\nquorum: leader {}, epoch {}, high watermark {}\n",
            quorum.leader, quorum.epoch, quorum.high_watermark
        ));
        let mut voters = Table::new(&["REPLICA", "ROLE", "LOG END", "LAG"]);
        let roles = quorum.voters.iter().map(|v| (v, "voter"));
        for (v, role) in roles.chain(quorum.observers.iter().map(|v| (v, "observer"))) {
            let unknown = || "-".to_string();
            let log_end = (v.log_end >= 0).then(|| v.log_end.to_string());
            let lag = lag(v).map(|l| l.to_string());
            voters.row(vec![
                v.id.to_string(),
                role.to_string(),
                log_end.unwrap_or_else(unknown),
                lag.unwrap_or_else(unknown),
            ]);
        }
        text.push_str(&voters.render());
        text
    });
    Ok(())
}

struct Quorum {
    leader: i32,
    epoch: i32,
    high_watermark: i64,
    voters: Vec<Voter>,
    /// Broker-only nodes following the log.
    observers: Vec<Voter>,
}

/// DescribeQuorum of the broker at `at` (the bootstrap one when `None`).
fn describe_quorum(cluster: &mut Cluster, at: Option<(&str, i32)>) -> Result<Quorum, CliError> {
    let connection = match at {
        Some((host, port)) => cluster.broker(host, port)?,
        None => cluster.bootstrap(),
    };
    let (_, response): (i16, DescribeQuorumResponse) =
        connection.call_negotiated(ApiKey::DescribeQuorum, |_| {
            DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                .with_topic_name(topic_name(METADATA_TOPIC))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
        })?;
    check(
        response.error_code,
        response.error_message.as_ref(),
        "DescribeQuorum",
    )?;
    let partition = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| CliError::Protocol("DescribeQuorum answered no partition".into()))?;
    check(
        partition.error_code,
        partition.error_message.as_ref(),
        "DescribeQuorum",
    )?;
    let replicas = |states: &[ReplicaState]| {
        let mut replicas: Vec<Voter> = states
            .iter()
            .map(|v| Voter {
                id: v.replica_id.0,
                log_end: v.log_end_offset,
            })
            .collect();
        replicas.sort_by_key(|v| v.id);
        replicas
    };
    Ok(Quorum {
        leader: partition.leader_id.0,
        epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: replicas(&partition.current_voters),
        observers: replicas(&partition.observers),
    })
}
