//! Produce: append record batches to the owning shards' logs; acks 0, 1, all.
//!
//! Advertised 0–11 (old librdkafka checks for 0, 2, 3, 7); the codec decodes 3+.
//! Runs on the connection's shard; each partition's append hops to its owning shard, where the
//! batches are validated (CRC32C, size, magic) and stored exactly as sent — compressed batches
//! are never decompressed or recompressed. With `acks=all` a partition is answered once its
//! batches are synced, with `acks=1` once written, with `acks=0` never.
//! Batches of idempotent producers are checked against the partition's producer state there: a
//! retry is answered with the stored batch's offsets (once that batch has reached the milestone
//! `acks` asks for), a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch
//! INVALID_PRODUCER_EPOCH. Transactional batches get TRANSACTIONAL_ID_AUTHORIZATION_FAILED and
//! control batches INVALID_RECORD (transactions are not served).

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, RequestHeader};

use super::util::str_bytes;
use crate::data_path::{scatter, DataReply, DataRequest};
use crate::ids::TopicPartition;
use crate::partition_ops::ProduceResult;
use crate::shard::ShardCtx;

pub const API_KEY: ApiKey = ApiKey::Produce;
pub const VERSIONS: (i16, i16) = (0, 11);

/// `None` for acks=0 (no response is sent).
pub async fn handle(
    ctx: &Rc<ShardCtx>,
    _header: &RequestHeader,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let rejection = rejection_for_request(&request);
    let metadata = ctx.metadata();

    // One slot per partition of the request, in order: an answer now, or an append to send.
    let mut answers: Vec<Option<ProduceResult>> = Vec::new();
    let mut appends: Vec<(TopicPartition, Bytes)> = Vec::new();
    for topic in &request.topic_data {
        let partitions = metadata.topic(topic.name.as_str()).map(|t| t.partitions);
        for p in &topic.partition_data {
            let early = match (&rejection, partitions, &p.records) {
                (Some((error, why)), _, _) => Some(ProduceResult::failed(*error, why.clone())),
                (_, Some(count), Some(_)) if (0..count).contains(&p.index) => None,
                (_, Some(_), None) => Some(ProduceResult::failed(
                    ResponseError::InvalidRecord,
                    "no records".to_string(),
                )),
                _ => Some(ProduceResult::failed(
                    ResponseError::UnknownTopicOrPartition,
                    format!("{}-{} does not exist", topic.name.as_str(), p.index),
                )),
            };
            if early.is_none() {
                let records = p.records.clone().unwrap_or_default();
                appends.push((TopicPartition::new(topic.name.as_str(), p.index), records));
            }
            answers.push(early);
        }
    }

    let mut appended = scatter(
        ctx,
        appends,
        |items| DataRequest::Produce { acks, items },
        |reply| match reply {
            DataReply::Produced(results) => Some(results),
            _ => None,
        },
        || ProduceResult::failed(ResponseError::NotLeaderOrFollower, "shard stopping".into()),
    )
    .await
    .into_iter();

    if acks == 0 {
        return None;
    }
    // Every partition has exactly one answer by construction; a missing one is never a success.
    let lost = || ProduceResult::failed(ResponseError::UnknownServerError, "no answer".into());
    let mut answers = answers
        .into_iter()
        .map(|slot| slot.or_else(|| appended.next()).unwrap_or_else(lost));
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic| {
            let partition_responses = topic
                .partition_data
                .iter()
                .map(|p| partition_response(p.index, answers.next().unwrap_or_else(lost)))
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    Some(ProduceResponse::default().with_responses(responses))
}

/// A reason to refuse every partition of the request.
fn rejection_for_request(request: &ProduceRequest) -> Option<(ResponseError, String)> {
    if !matches!(request.acks, -1..=1) {
        return Some((
            ResponseError::InvalidRequiredAcks,
            format!("acks must be -1, 0 or 1, not {}", request.acks),
        ));
    }
    if request.transactional_id.is_some() {
        return Some((
            ResponseError::TransactionalIdAuthorizationFailed,
            "transactions are not supported yet".to_string(),
        ));
    }
    None
}

fn partition_response(index: i32, result: ProduceResult) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(result.error_code)
        .with_error_message(result.error_message.as_deref().map(str_bytes))
        .with_base_offset(result.base_offset)
        .with_log_append_time_ms(result.log_append_time_ms)
        .with_log_start_offset(result.log_start_offset)
}
