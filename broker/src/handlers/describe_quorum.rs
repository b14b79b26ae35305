//! DescribeQuorum (KIP-595): the metadata quorum — its leader, epoch (the Raft term), high
//! watermark (the commit index), voters and observers (broker-only nodes, Raft learners). The
//! leader knows each one's log end (its last replicated index); another node answers what it
//! knows and -1 for those. v2 names the voters' controller listeners. Runs on any shard
//! (shard 0's driver keeps the status).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};

use super::util::{str_bytes, topic_name};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::DescribeQuorum;
pub const VERSIONS: (i16, i16) = (0, 2);
pub const RUNS_ON: RunsOn = RunsOn::Connection;

/// Kafka's name for the metadata log's topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Each replica of the metadata log with its log end (-1 where this node does not know it).
fn replica_states(replicas: &[(i32, Option<u64>)]) -> Vec<ReplicaState> {
    replicas
        .iter()
        .map(|(id, log_end)| {
            ReplicaState::default()
                .with_replica_id(BrokerId(*id))
                .with_log_end_offset(log_end.map_or(-1, |end| end as i64))
                .with_last_fetch_timestamp(-1)
                .with_last_caught_up_timestamp(-1)
        })
        .collect()
}

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let status = match ctx.shard.node.quorum_status.lock() {
        Ok(status) => status.clone(),
        Err(_) => Default::default(),
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let known_topic = topic.topic_name.0.as_str() == METADATA_TOPIC;
            let partitions = topic
                .partitions
                .into_iter()
                .map(|partition| {
                    let answer =
                        PartitionData::default().with_partition_index(partition.partition_index);
                    if !known_topic || partition.partition_index != 0 {
                        return answer
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_leader_id(BrokerId(-1))
                            .with_leader_epoch(-1);
                    }
                    answer
                        .with_leader_id(BrokerId(status.leader.unwrap_or(-1)))
                        .with_leader_epoch(status.term as i32)
                        .with_high_watermark(status.commit as i64)
                        .with_current_voters(replica_states(&status.voters))
                        .with_observers(replica_states(&status.observers))
                })
                .collect();
            TopicData::default()
                .with_topic_name(topic_name(topic.topic_name.0.as_str()))
                .with_partitions(partitions)
        })
        .collect();
    let nodes = ctx
        .shard
        .config
        .controller_quorum_voters
        .iter()
        .map(|voter| {
            Node::default()
                .with_node_id(BrokerId(voter.node_id))
                .with_listeners(vec![Listener::default()
                    .with_name(str_bytes("CONTROLLER"))
                    .with_host(str_bytes(&voter.host))
                    .with_port(voter.port)])
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(topics)
        .with_nodes(nodes)
}
