//! Fetch: read batches from the owning shards' logs, with long polling.
//!
//! Advertised 0–16 (old librdkafka checks for 2, 4, 10); the codec decodes 4+. Versions 0–3 never
//! reach this file: `odradek_net::legacy` answers them with UNSUPPORTED_VERSION per partition, as
//! Kafka 4 does.
//! Runs on the connection's shard; each partition's read hops to its owning shard. When fewer
//! than `min_bytes` are available the request waits (up to `max_wait_ms`) for an append to any
//! of its partitions, woken by the owners, then reads again. Fetch sessions (KIP-227) are not
//! kept: every response carries session id 0, which tells clients to send full fetches.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader};

use odradek_net::segmented::Shared;

use crate::data_path::{scatter, wait_for_any_owner, DataReply, DataRequest};
use crate::ids::TopicPartition;
use crate::metadata::MetadataSnapshot;
use crate::partition_ops::FetchResult;
use crate::shard::ShardCtx;

pub const API_KEY: ApiKey = ApiKey::Fetch;
pub const VERSIONS: (i16, i16) = (0, 16);

/// The longest a fetch may wait, whatever the client asks (bounds a parked request).
const MAX_WAIT_MS_MAX: i32 = 60_000;

/// One partition of the request, resolved against the metadata.
struct Wanted {
    tp: Result<TopicPartition, ResponseError>,
    offset: i64,
    max_bytes: usize,
}

/// The response, and the record data it holds for sending by reference (see
/// `odradek_net::segmented`).
pub async fn handle(
    ctx: &Rc<ShardCtx>,
    header: &RequestHeader,
    request: FetchRequest,
) -> (FetchResponse, Vec<Shared>) {
    let by_id = header.request_api_version >= 13;
    let metadata = ctx.metadata();
    let max_bytes = usize::try_from(request.max_bytes.max(0)).unwrap_or(0);
    let wanted = resolve(&metadata, &request, by_id, max_bytes);
    let min_bytes = usize::try_from(request.min_bytes.max(0)).unwrap_or(0);
    let max_wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_WAIT_MS_MAX) as u64);

    let deadline = Instant::now() + max_wait;
    let mut results = read_all(ctx, &wanted).await;
    loop {
        let available: usize = results.iter().map(FetchResult::records_len).sum();
        let failed = results.iter().any(|r| r.error_code != 0);
        let remaining = deadline.saturating_duration_since(Instant::now());
        // min_bytes 0 answers at once, even empty (Kafka's rule); 1 waits for any data.
        if available >= min_bytes || failed || remaining.is_zero() {
            break;
        }
        wait_for_appends(ctx, &wanted, &results, remaining).await;
        results = read_all(ctx, &wanted).await;
    }
    trim_to(max_bytes, &mut results);
    respond(request, by_id, results)
}

fn resolve(
    metadata: &MetadataSnapshot,
    request: &FetchRequest,
    by_id: bool,
    max_bytes: usize,
) -> Vec<Wanted> {
    let mut wanted = Vec::new();
    for topic in &request.topics {
        let meta = if by_id {
            metadata.topic_by_id(&topic.topic_id)
        } else {
            metadata.topic(topic.topic.as_str())
        };
        let missing = if by_id {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        for p in &topic.partitions {
            let tp = match meta {
                Some(meta) if (0..meta.partitions).contains(&p.partition) => {
                    Ok(TopicPartition::new(meta.name.clone(), p.partition))
                }
                Some(_) => Err(ResponseError::UnknownTopicOrPartition),
                None => Err(missing),
            };
            let partition_max = usize::try_from(p.partition_max_bytes.max(0)).unwrap_or(0);
            wanted.push(Wanted {
                tp,
                offset: p.fetch_offset,
                max_bytes: partition_max.min(max_bytes),
            });
        }
    }
    wanted
}

/// Reads every resolvable partition from its owner; one result per `wanted`, in order.
async fn read_all(ctx: &ShardCtx, wanted: &[Wanted]) -> Vec<FetchResult> {
    let items = wanted
        .iter()
        .filter_map(|w| {
            w.tp.as_ref()
                .ok()
                .map(|tp| (tp.clone(), (w.offset, w.max_bytes)))
        })
        .collect::<Vec<_>>();
    let mut read = scatter(
        ctx,
        items,
        |items| DataRequest::Fetch { items },
        |reply| match reply {
            DataReply::Fetched(results) => Some(results),
            _ => None,
        },
        || FetchResult {
            error_code: ResponseError::NotLeaderOrFollower.code(),
            ..FetchResult::default()
        },
    )
    .await
    .into_iter();
    wanted
        .iter()
        .map(|w| match &w.tp {
            Ok(_) => read.next().unwrap_or_else(lost),
            Err(error) => FetchResult {
                error_code: error.code(),
                ..FetchResult::default()
            },
        })
        .collect()
}

/// Parks until an append reaches any of the partitions past what was just read, or `timeout`.
async fn wait_for_appends(
    ctx: &ShardCtx,
    wanted: &[Wanted],
    read: &[FetchResult],
    timeout: Duration,
) {
    let items = wanted
        .iter()
        .zip(read)
        .filter_map(|(w, r)| {
            let tp = w.tp.as_ref().ok()?;
            Some((tp.clone(), w.offset.max(r.high_watermark)))
        })
        .collect();
    wait_for_any_owner(ctx, items, timeout).await;
}

/// Keeps whole partitions in request order while they fit in `max_bytes`; the first non-empty
/// partition is always kept whole (KIP-74) so a large batch can never stall a consumer.
fn trim_to(max_bytes: usize, results: &mut [FetchResult]) {
    let mut used = 0usize;
    for result in results.iter_mut() {
        let len = result.records_len();
        if len == 0 {
            continue;
        }
        if used > 0 && used + len > max_bytes {
            result.records.clear();
        } else {
            used += len;
        }
    }
}

/// The answer for a partition that got none (never reported as a success).
fn lost() -> FetchResult {
    FetchResult {
        error_code: ResponseError::UnknownServerError.code(),
        ..FetchResult::default()
    }
}

fn respond(
    request: FetchRequest,
    by_id: bool,
    results: Vec<FetchResult>,
) -> (FetchResponse, Vec<Shared>) {
    let mut results = results.into_iter();
    let mut shared = Vec::new();
    let responses = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = results.next().unwrap_or_else(lost);
                    partition_data(p.partition, result, &mut shared)
                })
                .collect();
            let response = FetchableTopicResponse::default().with_partitions(partitions);
            if by_id {
                response.with_topic_id(topic.topic_id)
            } else {
                response.with_topic(topic.topic)
            }
        })
        .collect();
    let response = FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses);
    (response, shared)
}

/// One partition of the response; its record data, if any, joins `shared`.
fn partition_data(index: i32, result: FetchResult, shared: &mut Vec<Shared>) -> PartitionData {
    let ok = result.error_code == 0;
    let records = if result.records.is_empty() {
        Bytes::new()
    } else {
        let (held, entry) = Shared::joined(result.records, shared.len());
        shared.push(entry);
        held
    };
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(result.error_code)
        .with_high_watermark(if ok { result.high_watermark } else { -1 })
        .with_last_stable_offset(if ok { result.last_stable_offset } else { -1 })
        .with_log_start_offset(if ok { result.log_start_offset } else { -1 })
        .with_preferred_read_replica(BrokerId(-1))
        .with_records(Some(records))
}
