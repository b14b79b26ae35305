//! Produce: append record batches to the owning shards' logs; acks 0, 1, all.
//!
//! Advertised 0–11 (old librdkafka checks for 0, 2, 3, 7); the codec decodes 3+, and
//! `odradek_net::legacy_apis` decodes 0–2, whose legacy message sets (magic 0 and 1) are
//! up-converted here into one record batch per partition before anything else looks at them, as
//! Kafka's `LogValidator` does (see `odradek_net::message_set::up_convert`).
//! Runs on the connection's shard; each partition's append hops to its owning shard, where the
//! batches are validated (CRC32C, size, magic) and stored exactly as sent — compressed batches
//! are never decompressed or recompressed. With `acks=all` a partition is answered once its
//! batches are synced, with `acks=1` once written, with `acks=0` never.
//! Batches of idempotent producers are checked against the partition's producer state there: a
//! retry is answered with the stored batch's offsets (once that batch has reached the milestone
//! `acks` asks for), a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch
//! INVALID_PRODUCER_EPOCH. Transactional batches get TRANSACTIONAL_ID_AUTHORIZATION_FAILED and
//! control batches INVALID_RECORD (transactions are not served). As in Kafka, a partition carries
//! one batch (more: INVALID_RECORD) and zstd needs v7+ (UNSUPPORTED_COMPRESSION_TYPE). An append
//! that finds the owner's write buffer full waits in line for room, up to the request's
//! `timeout_ms` (then REQUEST_TIMED_OUT).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use odradek_net::message_set;
use odradek_storage::batch::BatchHeader;

use super::util::str_bytes;
use crate::data_path::{scatter, Produce};
use crate::ids::TopicPartition;
use crate::partition_ops::{Acks, ProduceResult};
use crate::session::RequestContext;

use super::{Answer, IntoAnswer, RunsOn};

pub const API_KEY: ApiKey = ApiKey::Produce;
pub const VERSIONS: (i16, i16) = (0, 11);
pub const RUNS_ON: RunsOn = RunsOn::PartitionOwners;

/// No response for acks=0.
pub async fn handle(ctx: &RequestContext, request: ProduceRequest) -> Answer<ProduceResponse> {
    let acks = Acks::from_wire(request.acks);
    let version = ctx.version();
    let timeout = append_wait_max(request.timeout_ms);
    let rejection = rejection_for_request(&request);
    let metadata = ctx.shard.metadata();
    let mut inflate_budget = UP_CONVERSION_INFLATE_MAX;

    // One slot per partition of the request, in order: an answer now, or an append to send.
    let mut answers: Vec<Option<ProduceResult>> = Vec::new();
    let mut appends: Vec<(TopicPartition, Bytes)> = Vec::new();
    for topic in &request.topic_data {
        let partitions = metadata.topic(topic.name.as_str()).map(|t| t.partitions);
        for p in &topic.partition_data {
            let accepted = match (&rejection, partitions, &p.records) {
                (Some((error, why)), _, _) => Err(ProduceResult::failed(*error, why.clone())),
                (_, Some(count), Some(records)) if (0..count).contains(&p.index) => {
                    accepted_records(version, records.clone(), &mut inflate_budget)
                }
                (_, Some(_), None) => Err(ProduceResult::failed(
                    ResponseError::InvalidRecord,
                    "no records".to_string(),
                )),
                _ => Err(ProduceResult::failed(
                    ResponseError::UnknownTopicOrPartition,
                    format!("{}-{} does not exist", topic.name.as_str(), p.index),
                )),
            };
            match accepted {
                Ok(records) => {
                    appends.push((TopicPartition::new(topic.name.as_str(), p.index), records));
                    answers.push(None);
                }
                Err(early) => answers.push(Some(early)),
            }
        }
    }

    // With acks that are not Kafka's, every partition was refused above: nothing is appended.
    let op = Produce {
        acks: acks.unwrap_or(Acks::All),
        timeout,
    };
    let mut appended = scatter(&ctx.shard, op, appends).await.into_iter();

    if acks == Some(Acks::None) {
        return Answer::none();
    }
    let mut answers = answers.into_iter().map(|slot| {
        slot.or_else(|| appended.next())
            .expect("every append is answered")
    });
    let responses: Vec<TopicProduceResponse> = request
        .topic_data
        .into_iter()
        .map(|topic| {
            let partition_responses = topic
                .partition_data
                .iter()
                .map(|p| {
                    let answer = answers.next().expect("one answer per partition");
                    partition_response(p.index, answer)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    assert!(
        answers.next().is_none() && appended.next().is_none(),
        "no answer is left over"
    );
    ProduceResponse::default()
        .with_responses(responses)
        .into_answer()
}

/// How long an append may wait for room in the owner's write buffer: the request's own
/// `timeout_ms`, at least a second (some clients send 0 with acks=0).
fn append_wait_max(timeout_ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0).clamp(1_000, 300_000))
}

/// What a request may inflate, all partitions together, while its legacy message sets are
/// up-converted (their compressed wrappers opened). A wrapper that passes it is refused with
/// MESSAGE_TOO_LARGE: a small hostile request cannot make the shard allocate gigabytes. The
/// bound is well past anything a legitimate old client sends (a request is at most
/// `socket.request.max.bytes`, 100 MiB by default, and old clients compress modestly).
const UP_CONVERSION_INFLATE_MAX: usize = 512 << 20;

/// A partition's records as they go to the log, or its answer when they do not: below v3 a
/// legacy message set becomes one record batch (a v2 batch passes as it is, as in Kafka), then
/// the version checks apply to that batch.
fn accepted_records(
    version: i16,
    records: Bytes,
    inflate_budget: &mut usize,
) -> Result<Bytes, ProduceResult> {
    let records = if version < LEGACY_VERSION_END {
        let converted = message_set::up_convert(records, *inflate_budget).map_err(|e| {
            ProduceResult::failed(e.kafka_error(), format!("legacy message set: {e}"))
        })?;
        *inflate_budget = inflate_budget.saturating_sub(converted.decompressed_bytes);
        converted.batch
    } else {
        records
    };
    match version_check(version, &records) {
        Some((error, why)) => Err(ProduceResult::failed(error, why.to_string())),
        None => Ok(records),
    }
}

/// Produce below this version carries legacy message sets (magic 0 or 1).
const LEGACY_VERSION_END: i16 = 3;

/// Kafka's checks of a partition's records that depend on the request version; the log checks
/// the rest (CRC, sizes, magic, sequences) where it appends.
fn version_check(version: i16, records: &[u8]) -> Option<(ResponseError, &'static str)> {
    // Malformed input is the log's to describe (CORRUPT_MESSAGE).
    let header = BatchHeader::parse(records)?;
    if header.magic() != 2 {
        return None;
    }
    if header
        .total_bytes()
        .is_some_and(|bytes| bytes < records.len())
    {
        return Some((
            ResponseError::InvalidRecord,
            "a produce request carries one record batch per partition",
        ));
    }
    if header.compression() == ZSTD && version < ZSTD_PRODUCE_VERSION_MIN {
        return Some((
            ResponseError::UnsupportedCompressionType,
            "zstd needs Produce v7 or newer",
        ));
    }
    None
}

/// The compression codec id of zstd, and the first Produce version that may carry it (KIP-110).
const ZSTD: u8 = 4;
const ZSTD_PRODUCE_VERSION_MIN: i16 = 7;

/// A reason to refuse every partition of the request.
fn rejection_for_request(request: &ProduceRequest) -> Option<(ResponseError, String)> {
    if Acks::from_wire(request.acks).is_none() {
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
        .with_record_errors(
            result
                .record_errors
                .into_iter()
                .map(|(index, why)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(index)
                        .with_batch_index_error_message(Some(str_bytes(&why)))
                })
                .collect(),
        )
}
