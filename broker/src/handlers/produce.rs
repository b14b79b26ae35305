//! Produce: append record batches to the owning shards' logs; acks 0, 1, all.
//!
//! Advertised 0–11 (old librdkafka checks for 0, 2, 3, 7); the codec decodes 3+.
//! Runs on the connection's shard; each partition's append hops to its owning shard.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, RequestHeader};

use crate::shard::ShardCtx;

pub const API_KEY: ApiKey = ApiKey::Produce;
pub const VERSIONS: (i16, i16) = (0, 11);

/// `None` for acks=0 (no response is sent).
pub async fn handle(
    ctx: &Rc<ShardCtx>,
    header: &RequestHeader,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    // lead engineer: data path
    let _ = (ctx, header);
    if request.acks == 0 {
        return None;
    }
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic| {
            let partition_responses = topic
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(ResponseError::UnknownServerError.code())
                        .with_base_offset(-1)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    Some(ProduceResponse::default().with_responses(responses))
}
