//! OffsetForLeaderEpoch: where a leader epoch's records end in a partition's log, from its
//! leader-epoch cache. A consumer that followed an older leader (KIP-320) or a follower coming
//! back compares the answer with its own position and truncates past it: records it has beyond
//! that offset were never the new leader's.
//!
//! The answer for epoch E is the largest epoch at or below E that wrote into the log and the
//! offset where its records end: the next epoch's start, or the log end for the newest. An epoch
//! newer than all is -1/-1 (Kafka's undefined). Only the leader answers (NOT_LEADER_OR_FOLLOWER
//! elsewhere), and from v2 the asker's current leader epoch is checked (FENCED_LEADER_EPOCH,
//! UNKNOWN_LEADER_EPOCH). v0–1 are decoded by `odradek_net::legacy_apis`.
//!
//! Runs on the connection's shard; each partition hops to its owning shard.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use odradek_storage::LeaderEpoch;

use crate::data_path::{for_known_partitions, EpochEndItem, EpochEnds};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::OffsetForLeaderEpoch;
pub const VERSIONS: (i16, i16) = (0, 4);
pub const RUNS_ON: RunsOn = RunsOn::PartitionOwners;

pub async fn handle(
    ctx: &RequestContext,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let items = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let item = EpochEndItem {
                    epoch: LeaderEpoch::from_request(p.leader_epoch),
                    current_leader_epoch: LeaderEpoch::from_request(p.current_leader_epoch),
                };
                (t.topic.to_string(), p.partition, item)
            })
        })
        .collect();
    let mut answers = for_known_partitions(&ctx.shard, EpochEnds, items)
        .await
        .into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .zip(answers.by_ref())
                .map(|(p, answer)| {
                    EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_error_code(answer.error_code)
                        .with_leader_epoch(answer.leader_epoch)
                        .with_end_offset(answer.end_offset)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
