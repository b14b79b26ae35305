//! Fetch: read batches from the owning shards' logs, with long polling.
//!
//! Advertised 0–16 (old librdkafka checks for 2, 4, 10); the codec decodes 4+ and
//! `odradek_net::legacy_apis` decodes 0–3. Those old versions carry legacy message sets: the
//! batches read are converted down to magic 0 (v0–1) or 1 (v2–3) here, as Kafka does unless
//! `message.downconversion.enable` is false for the topic (then UNSUPPORTED_VERSION).
//! Runs on the connection's shard; each partition's read hops to its owning shard. When fewer
//! than `min_bytes` are available the request waits (up to `max_wait_ms`) for an append to any
//! of its partitions, woken by the owners, then reads again. From v7, fetch sessions (KIP-227,
//! see `fetch_session`) let a consumer name only the partitions that changed and get back only
//! those with news.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use odradek_net::message_set;
use odradek_net::segmented::Shared;
use odradek_storage::{batch, LeaderEpoch, Offset};

use crate::data_path::{scatter, wait_for_any_owner, Fetch, FetchItem};
use crate::fetch_session::{PartitionKey, Plan, Position, Reported};
use crate::ids::TopicPartition;
use crate::metadata::MetadataSnapshot;
use crate::partition_ops::FetchResult;
use crate::session::RequestContext;
use crate::shard::ShardCtx;
use crate::topic_config;

use super::{Answer, IntoAnswer, RunsOn};

pub const API_KEY: ApiKey = ApiKey::Fetch;
pub const VERSIONS: (i16, i16) = (0, 16);
pub const RUNS_ON: RunsOn = RunsOn::PartitionOwners;

/// The longest a fetch may wait, whatever the client asks (bounds a parked request).
const MAX_WAIT_MS_MAX: i32 = 60_000;

/// One partition to read, resolved against the metadata.
struct Wanted {
    tp: Result<TopicPartition, ResponseError>,
    item: FetchItem,
}

/// The response, and the record data it holds for sending by reference (see
/// `odradek_net::segmented`).
pub async fn handle(ctx: &RequestContext, request: FetchRequest) -> Answer<FetchResponse> {
    let version = ctx.version();
    let by_id = version >= 13;
    let plan = match session_plan(&ctx.shard, version, &request, by_id) {
        Ok(plan) => plan,
        Err(code) => return FetchResponse::default().with_error_code(code).into_answer(),
    };
    let metadata = ctx.shard.metadata();
    let max_bytes = usize::try_from(request.max_bytes.max(0)).unwrap_or(0);
    let wanted = resolve(&metadata, &plan.partitions, by_id, max_bytes);
    let min_bytes = usize::try_from(request.min_bytes.max(0)).unwrap_or(0);
    let max_wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_WAIT_MS_MAX) as u64);

    let fetch = Fetch {
        replica: replica_id(version, &request),
    };
    let deadline = Instant::now() + max_wait;
    let mut results = read_all(&ctx.shard, fetch, &wanted).await;
    loop {
        let available: usize = results.iter().map(FetchResult::records_len).sum();
        let failed = results.iter().any(|r| r.error_code != 0);
        let remaining = deadline.saturating_duration_since(Instant::now());
        // min_bytes 0 answers at once, even empty (Kafka's rule); 1 waits for any data.
        if available >= min_bytes || failed || remaining.is_zero() {
            break;
        }
        let committed = fetch.replica.is_none();
        wait_for_appends(&ctx.shard, &wanted, &results, remaining, committed).await;
        results = read_all(&ctx.shard, fetch, &wanted).await;
    }
    trim_to(max_bytes, &mut results);
    if version < ZSTD_FETCH_VERSION_MIN {
        refuse_zstd(&mut results);
    }
    if version < LEGACY_VERSION_END {
        down_convert_all(version, &metadata, &wanted, &mut results);
        trim_to(max_bytes, &mut results);
    }
    respond(&ctx.shard, plan, by_id, results)
}

/// The follower that sends the fetch (its broker id: the body's `replica_id` before v15, its
/// `replica_state` from v15), or `None` for a consumer (-1).
fn replica_id(version: i16, request: &FetchRequest) -> Option<i32> {
    let id = match version {
        15.. => request.replica_state.replica_id.0,
        _ => request.replica_id.0,
    };
    (id >= 0).then_some(id)
}

/// The partitions this fetch reads: the request's, or (in an established fetch session) the
/// session's with the request's changes applied. Fetch < 7 has no sessions.
fn session_plan(
    ctx: &ShardCtx,
    version: i16,
    request: &FetchRequest,
    by_id: bool,
) -> Result<Plan, i16> {
    let key = |name: &TopicName, id: Uuid, partition: i32| PartitionKey {
        topic: if by_id {
            String::new()
        } else {
            name.to_string()
        },
        topic_id: if by_id { id } else { Uuid::nil() },
        partition,
    };
    let named: Vec<(PartitionKey, Position)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                let position = Position {
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes,
                    current_leader_epoch: LeaderEpoch::from_request(p.current_leader_epoch),
                };
                (key(&t.topic, t.topic_id, p.partition), position)
            })
        })
        .collect();
    if version < SESSION_VERSION_MIN {
        return Ok(Plan {
            session_id: 0,
            incremental: false,
            partitions: named,
        });
    }
    let forgotten: Vec<PartitionKey> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| key(&t.topic, t.topic_id, p)))
        .collect();
    ctx.fetch_sessions.borrow_mut().begin(
        request.session_id,
        request.session_epoch,
        named,
        &forgotten,
    )
}

/// The first Fetch version that may carry zstd batches (KIP-110).
const ZSTD_FETCH_VERSION_MIN: i16 = 10;

/// A partition whose answer holds a zstd batch gets UNSUPPORTED_COMPRESSION_TYPE and no
/// records, as Kafka answers clients too old to decode zstd.
fn refuse_zstd(results: &mut [FetchResult]) {
    for result in results.iter_mut() {
        if holds_zstd(&result.records) {
            *result = FetchResult {
                error_code: ResponseError::UnsupportedCompressionType.code(),
                ..FetchResult::default()
            };
        }
    }
}

/// Whether any whole batch in `pieces` (batches back to back, cut anywhere) is zstd.
fn holds_zstd(pieces: &[Bytes]) -> bool {
    const ZSTD: u8 = 4;
    let total: usize = pieces.iter().map(Bytes::len).sum();
    let byte_at = |mut at: usize| {
        for piece in pieces {
            if at < piece.len() {
                return Some(piece[at]);
            }
            at -= piece.len();
        }
        None
    };
    let mut start = 0usize;
    // batchLength at 8..12 counts the bytes after itself; attributes' low byte is at 22.
    while start + batch::HEADER_BYTES <= total {
        let length = (start + 8..start + 12)
            .filter_map(byte_at)
            .fold(0u32, |n, b| (n << 8) | u32::from(b));
        let Some(attributes) = byte_at(start + 22) else {
            return false;
        };
        if attributes & 0x7 == ZSTD {
            return true;
        }
        start += batch::LOG_OVERHEAD + length as usize;
    }
    false
}

/// Fetch below this version answers with legacy message sets (magic 0 or 1).
const LEGACY_VERSION_END: i16 = 4;

/// What one partition's down-conversion may inflate (compressed stored batches opened). A stored
/// batch is at most `max.message.bytes` compressed; this is far past what such a batch holds
/// uncompressed unless it was built to be a bomb, which then gets CORRUPT_MESSAGE instead of
/// costing the shard its memory.
const DOWN_CONVERSION_INFLATE_MAX: usize = 256 << 20;

/// Replaces each partition's batches with a legacy message set for Fetch `version` (one piece,
/// at most the partition's `max_bytes` but never less than one message), or with
/// UNSUPPORTED_VERSION where the topic forbids down-conversion.
fn down_convert_all(
    version: i16,
    metadata: &MetadataSnapshot,
    wanted: &[Wanted],
    results: &mut [FetchResult],
) {
    let magic = message_set::Magic::for_fetch_version(version);
    for (w, result) in wanted.iter().zip(results.iter_mut()) {
        let (Ok(tp), 0) = (&w.tp, result.error_code) else {
            continue;
        };
        if result.records.is_empty() {
            continue;
        }
        if !down_conversion_enabled(metadata, &tp.topic) {
            *result = FetchResult {
                error_code: ResponseError::UnsupportedVersion.code(),
                ..FetchResult::default()
            };
            continue;
        }
        let batches = joined(&result.records);
        match message_set::down_convert(
            &batches,
            magic,
            w.item.offset.get(),
            w.item.max_bytes,
            DOWN_CONVERSION_INFLATE_MAX,
        ) {
            Ok(set) if set.is_empty() => result.records.clear(),
            Ok(set) => result.records = vec![set],
            Err(error) => {
                tracing::warn!(
                    partition = %tp,
                    offset = %w.item.offset,
                    %error,
                    "cannot down-convert stored batches for an old consumer"
                );
                *result = FetchResult {
                    error_code: error.kafka_error().code(),
                    ..FetchResult::default()
                };
            }
        }
    }
}

/// `message.downconversion.enable` for `topic`: its override, else the broker's default.
/// The broker's default is the snapshot's: run-time changes to it apply at once.
fn down_conversion_enabled(metadata: &MetadataSnapshot, topic: &str) -> bool {
    let broker = &metadata.broker_config;
    let overrides = metadata.topic(topic).map(|t| &t.configs);
    let value = match overrides {
        Some(overrides) => {
            topic_config::effective(broker, overrides, "message.downconversion.enable")
        }
        None => None,
    };
    value.map_or(broker.log_message_downconversion_enable, |v| v == "true")
}

/// `pieces` as one buffer (no copy when there is one piece).
fn joined(pieces: &[Bytes]) -> Bytes {
    if let [only] = pieces {
        return only.clone();
    }
    let mut all = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
    pieces.iter().for_each(|p| all.extend_from_slice(p));
    all.freeze()
}

/// The first Fetch version with sessions (KIP-227).
const SESSION_VERSION_MIN: i16 = 7;

fn resolve(
    metadata: &MetadataSnapshot,
    partitions: &[(PartitionKey, Position)],
    by_id: bool,
    max_bytes: usize,
) -> Vec<Wanted> {
    let missing = if by_id {
        ResponseError::UnknownTopicId
    } else {
        ResponseError::UnknownTopicOrPartition
    };
    partitions
        .iter()
        .map(|(key, position)| {
            let meta = if by_id {
                metadata.topic_by_id(&key.topic_id)
            } else {
                metadata.topic(&key.topic)
            };
            let tp = match meta {
                Some(meta) if (0..meta.partitions).contains(&key.partition) => {
                    Ok(TopicPartition::new(meta.name.clone(), key.partition))
                }
                Some(_) => Err(ResponseError::UnknownTopicOrPartition),
                None => Err(missing),
            };
            let partition_max = usize::try_from(position.max_bytes.max(0)).unwrap_or(0);
            let item = FetchItem {
                offset: Offset(position.fetch_offset),
                max_bytes: partition_max.min(max_bytes),
                current_leader_epoch: position.current_leader_epoch,
            };
            Wanted { tp, item }
        })
        .collect()
}

/// Reads every resolvable partition from its owner; one result per `wanted`, in order.
async fn read_all(ctx: &ShardCtx, fetch: Fetch, wanted: &[Wanted]) -> Vec<FetchResult> {
    let items = wanted
        .iter()
        .filter_map(|w| w.tp.as_ref().ok().map(|tp| (tp.clone(), w.item)))
        .collect::<Vec<_>>();
    let mut read = scatter(ctx, fetch, items).await.into_iter();
    let results = wanted
        .iter()
        .map(|w| match &w.tp {
            Ok(_) => read.next().expect("one read per resolved partition"),
            Err(error) => FetchResult::failed(*error),
        })
        .collect();
    assert!(read.next().is_none(), "no read is left over");
    results
}

/// Parks until an append reaches any of the partitions past what was just read, or `timeout`.
async fn wait_for_appends(
    ctx: &ShardCtx,
    wanted: &[Wanted],
    read: &[FetchResult],
    timeout: Duration,
    committed: bool,
) {
    let items = wanted
        .iter()
        .zip(read)
        .filter_map(|(w, r)| {
            let tp = w.tp.as_ref().ok()?;
            Some((tp.clone(), w.item.offset.max(Offset(r.high_watermark))))
        })
        .collect();
    wait_for_any_owner(ctx, items, timeout, committed).await;
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

/// The response: every planned partition, or in an incremental session answer only those with
/// records, an error or moved offsets; consecutive partitions of one topic share its entry.
fn respond(
    ctx: &ShardCtx,
    plan: Plan,
    by_id: bool,
    results: Vec<FetchResult>,
) -> Answer<FetchResponse> {
    assert_eq!(
        plan.partitions.len(),
        results.len(),
        "one read result per planned partition"
    );
    let included = if plan.session_id == 0 {
        vec![true; results.len()]
    } else {
        let answers: Vec<(&PartitionKey, Reported, bool)> = plan
            .partitions
            .iter()
            .zip(&results)
            .map(|((key, _), r)| {
                let reported = Reported {
                    high_watermark: r.high_watermark,
                    last_stable_offset: r.last_stable_offset,
                    log_start_offset: r.log_start_offset,
                };
                (key, reported, r.error_code != 0 || r.records_len() > 0)
            })
            .collect();
        let changed = ctx
            .fetch_sessions
            .borrow_mut()
            .report(plan.session_id, &answers);
        changed
            .into_iter()
            .map(|c| c || !plan.incremental)
            .collect()
    };
    let mut shared = Vec::new();
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut last_key: Option<&PartitionKey> = None;
    let answered = plan.partitions.iter().zip(results).zip(included);
    for (((key, _), result), include) in answered {
        if !include {
            continue;
        }
        let same_topic =
            last_key.is_some_and(|k| k.topic == key.topic && k.topic_id == key.topic_id);
        if !same_topic {
            let topic = FetchableTopicResponse::default();
            topics.push(if by_id {
                topic.with_topic_id(key.topic_id)
            } else {
                topic.with_topic(TopicName(StrBytes::from_string(key.topic.clone())))
            });
        }
        last_key = Some(key);
        let data = partition_data(key.partition, result, &mut shared);
        if let Some(topic) = topics.last_mut() {
            topic.partitions.push(data);
        }
    }
    let response = FetchResponse::default()
        .with_session_id(plan.session_id)
        .with_responses(topics);
    Answer::sharing(response, shared)
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

#[cfg(test)]
mod tests {
    use super::*;
    use odradek_storage::testing::batch;

    fn with_codec(batch: Bytes, codec: u8) -> Bytes {
        let mut bytes = batch.to_vec();
        bytes[22] = (bytes[22] & !0x7) | codec;
        Bytes::from(bytes)
    }

    #[test]
    fn given_batches_cut_anywhere_when_one_is_zstd_should_find_it() {
        let plain = batch(3, 100, 1, 7);
        let zstd = with_codec(batch(2, 50, 1, 8), 4);
        let mut all = plain.to_vec();
        all.extend_from_slice(&plain);
        all.extend_from_slice(&zstd);
        let all = Bytes::from(all);
        for cut in [1, 22, 23, plain.len(), plain.len() + 30, all.len() - 1] {
            let pieces = vec![all.slice(..cut), all.slice(cut..)];
            assert!(holds_zstd(&pieces), "cut at {cut}");
        }
        let two_plain = vec![plain.clone(), plain.slice(..40)];
        assert!(
            !holds_zstd(&two_plain),
            "a partial batch at the end is not read"
        );
        assert!(!holds_zstd(&[with_codec(plain, 3)]), "lz4 is not zstd");
    }
}
