//! ListOffsets: earliest, latest, by timestamp, max timestamp.
//!
//! Runs on the connection's shard; each partition hops to its owning shard.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, RequestHeader};

use crate::shard::ShardCtx;

pub const API_KEY: ApiKey = ApiKey::ListOffsets;
pub const VERSIONS: (i16, i16) = (1, 8);

pub async fn handle(
    ctx: &Rc<ShardCtx>,
    header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
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
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(ResponseError::UnknownServerError.code())
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
