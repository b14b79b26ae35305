//! ListOffsets: earliest, latest, by timestamp, max timestamp (v7+), earliest local (v8+,
//! the log start: every segment is local), latest tiered (v9+: -1, nothing is tiered).
//!
//! v0 (decoded by `odradek_net::legacy_apis`) answers with the same one offset as v1+; Kafka's
//! v0 looked timestamps up by segment modification time (the newest segment base offset
//! before the timestamp), Odradek by the records' timestamps, as v1+ does.
//!
//! Runs on the connection's shard; each partition hops to its owning shard. Without
//! transactions the last stable offset is the high watermark, so both isolation levels get the
//! same answer. A timestamp lookup finds the first batch whose max timestamp is recent enough
//! through the time index, then the first record in it at or after the timestamp.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use odradek_storage::LeaderEpoch;

use crate::data_path::{for_known_partitions, ListOffsets, ListOffsetsItem};
use crate::partition_ops::{ListOffsetResult, EARLIEST_TIMESTAMP};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::ListOffsets;
pub const VERSIONS: (i16, i16) = (0, 9);
pub const RUNS_ON: RunsOn = RunsOn::PartitionOwners;

pub async fn handle(ctx: &RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let version = ctx.version();
    // The leader epoch exists from v4; the codec refuses it set on older versions.
    let has_epoch = version >= 4;
    // v0 (decoded by `odradek_net::legacy_apis`) knows only the latest (-1) and earliest (-2)
    // sentinels: as Kafka does, the later ones get UNSUPPORTED_VERSION there.
    let unsupported_sentinel = |timestamp: i64| version == 0 && timestamp < EARLIEST_TIMESTAMP;
    let items = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let item = ListOffsetsItem {
                    timestamp: p.timestamp,
                    current_leader_epoch: LeaderEpoch::from_request(p.current_leader_epoch),
                };
                (t.name.to_string(), p.partition_index, item)
            })
        })
        .collect();
    let mut answers = for_known_partitions(&ctx.shard, ListOffsets, items)
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
                    let answer = match unsupported_sentinel(p.timestamp) {
                        true => ListOffsetResult::failed(ResponseError::UnsupportedVersion),
                        false => answer,
                    };
                    let epoch = answer.leader_epoch.filter(|_| has_epoch);
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(answer.error_code)
                        .with_timestamp(answer.timestamp)
                        .with_offset(answer.offset)
                        .with_leader_epoch(epoch.map_or(-1, |e| e.0))
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
