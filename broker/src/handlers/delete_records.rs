//! DeleteRecords: move partitions' log start offsets forward (offset -1: to the high watermark).
//!
//! Runs on the connection's shard; each partition hops to its owning shard, whose log deletes
//! the whole segments below the new start and persists the start offset.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};

use odradek_storage::Offset;

use crate::data_path::{for_known_partitions, DeleteBefore, DeleteRecords};
use crate::session::RequestContext;

use super::RunsOn;

pub const API_KEY: ApiKey = ApiKey::DeleteRecords;
pub const VERSIONS: (i16, i16) = (0, 2);
pub const RUNS_ON: RunsOn = RunsOn::PartitionOwners;

pub async fn handle(ctx: &RequestContext, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let items = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let before = match p.offset {
                    -1 => DeleteBefore::HighWatermark,
                    offset => DeleteBefore::Offset(Offset(offset)),
                };
                (t.name.to_string(), p.partition_index, before)
            })
        })
        .collect();
    let mut answers = for_known_partitions(&ctx.shard, DeleteRecords, items)
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
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(answer.error_code)
                        .with_low_watermark(answer.low_watermark)
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
