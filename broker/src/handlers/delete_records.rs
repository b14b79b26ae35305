//! DeleteRecords: move partitions' log start offsets forward.
//!
//! Runs on the connection's shard; each partition hops to its owning shard.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader,
};

use crate::shard::ShardCtx;

pub const API_KEY: ApiKey = ApiKey::DeleteRecords;
pub const VERSIONS: (i16, i16) = (0, 2);

pub async fn handle(
    ctx: &Rc<ShardCtx>,
    header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    // lead engineer: data path
    let _ = (ctx, header);
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1)
                        .with_error_code(ResponseError::UnknownServerError.code())
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
