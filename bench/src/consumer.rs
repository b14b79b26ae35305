//! Consumers: each task fetches its assigned partitions (no consumer group) from their leaders
//! with long polling, measures end-to-end latency from the send time in every message, and with
//! --verify checks the sequence numbers per producer and partition.
//!
//! A consumer stops when every producer is done and it has read up to the highest acknowledged
//! offset of its partitions, or `--drain-timeout` after the producers stopped.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use odradek_storage::batch::{self, BatchHeader};

use crate::args::Workload;
use crate::bootstrap::Cluster;
use crate::client::Conn;
use crate::error::BenchError;
use crate::payload::MessageHeader;
use crate::run::Shared;
use crate::stats::{nanos, LocalStats};

/// Long-poll wait of each fetch.
const FETCH_WAIT_MS: i32 = 200;
const FETCH_BYTES_MAX: i32 = 64 << 20;
/// The smallest encoded record: length, attributes, timestamp and offset deltas, key and value
/// lengths, header count (one byte each at least).
const RECORD_BYTES_MIN: usize = 7;
/// Records per compressed batch we accept: the decoder reserves room for the declared count
/// before reading, so a lying header must not reach it.
const COMPRESSED_RECORDS_MAX: usize = 4 << 20;

/// Sequence checks of one partition.
#[derive(Debug, Default, Clone)]
pub struct PartitionCheck {
    /// Per producer: the next sequence number expected.
    pub next_seq: HashMap<u32, u64>,
    pub duplicates: u64,
    pub gaps: u64,
    pub missing: u64,
}

impl PartitionCheck {
    fn observe(&mut self, producer: u32, seq: u64) {
        let next = self.next_seq.entry(producer).or_insert(0);
        if seq == *next {
            *next += 1;
        } else if seq < *next {
            self.duplicates += 1;
        } else {
            self.gaps += 1;
            self.missing += seq - *next;
            *next = seq + 1;
        }
    }
}

/// What a consumer reports at the end.
#[derive(Debug, Default)]
pub struct ConsumerResult {
    pub checks: BTreeMap<i32, PartitionCheck>,
    /// Consumers that gave up waiting for the last acknowledged messages.
    pub drain_timed_out: bool,
}

pub struct ConsumerCtx {
    pub run_id: u32,
    pub partitions: Vec<i32>,
    pub workload: Arc<Workload>,
    pub cluster: Arc<Cluster>,
    pub shared: Arc<Shared>,
    pub stats: Rc<RefCell<LocalStats>>,
}

pub async fn run_consumer(ctx: ConsumerCtx) -> Result<ConsumerResult, BenchError> {
    let ctx = Rc::new(ctx);
    let mut by_leader: BTreeMap<SocketAddr, Vec<i32>> = BTreeMap::new();
    for &p in &ctx.partitions {
        by_leader
            .entry(ctx.cluster.leaders[p as usize])
            .or_default()
            .push(p);
    }
    let loops: Vec<_> = by_leader
        .into_iter()
        .map(|(leader, partitions)| {
            glommio::spawn_local(fetch_loop(Rc::clone(&ctx), leader, partitions)).detach()
        })
        .collect();
    let mut result = ConsumerResult::default();
    let mut first_error = None;
    for handle in loops {
        match handle.await {
            Some(Ok(part)) => {
                result.checks.extend(part.checks);
                result.drain_timed_out |= part.drain_timed_out;
            }
            Some(Err(e)) => first_error = first_error.or(Some(e)),
            None => {}
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(result),
    }
}

struct Position {
    partition: i32,
    next_offset: i64,
}

async fn fetch_loop(
    ctx: Rc<ConsumerCtx>,
    leader: SocketAddr,
    partitions: Vec<i32>,
) -> Result<ConsumerResult, BenchError> {
    let w = &ctx.workload;
    let fetch_timeout = w.timeout + std::time::Duration::from_millis(FETCH_WAIT_MS as u64);
    let mut conn = Conn::open(leader, fetch_timeout).await?;
    let mut positions: Vec<Position> = partitions
        .iter()
        .map(|&p| Position {
            partition: p,
            next_offset: ctx.cluster.start_offsets[p as usize],
        })
        .collect();
    let mut result = ConsumerResult::default();
    let topic = TopicName(StrBytes::from_string(w.topic.clone()));
    let version = ctx.cluster.versions.fetch;
    let partition_bytes_max = w.fetch_partition_bytes_max;
    let mut last_fetch_empty = false;
    // One fetch stays in flight while the previous response is read: the next fetch's offsets
    // follow from the batch headers alone, so the broker never waits for our decoding.
    let mut in_flight = conn
        .send(
            ApiKey::Fetch,
            version,
            &fetch_request(&topic, &positions, partition_bytes_max),
        )
        .await?;
    loop {
        let response: FetchResponse = conn
            .receive(ApiKey::Fetch, version, in_flight, "fetch response")
            .await?;
        let receipt_ns = ctx.stats.borrow().clock.now_ns();
        if response.error_code != 0 {
            return Err(BenchError::kafka("fetch", response.error_code));
        }
        let mut fetched = Vec::new();
        for data in response.responses.iter().flat_map(|t| t.partitions.iter()) {
            if data.error_code != 0 {
                return Err(BenchError::kafka(
                    format!("fetch from partition {}", data.partition_index),
                    data.error_code,
                ));
            }
            let Some(position) = positions
                .iter_mut()
                .find(|p| p.partition == data.partition_index)
            else {
                continue;
            };
            let batches = whole_batches(data.records.clone().unwrap_or_default())?;
            let from_offset = position.next_offset;
            if let Some(&(_, next)) = batches.last() {
                position.next_offset = position.next_offset.max(next);
            }
            fetched.push((position.partition, from_offset, batches));
        }
        let stop = should_stop(&ctx, &positions, last_fetch_empty);
        if stop.is_none() {
            in_flight = conn
                .send(
                    ApiKey::Fetch,
                    version,
                    &fetch_request(&topic, &positions, partition_bytes_max),
                )
                .await?;
        }
        let mut received = 0;
        for (partition, from_offset, batches) in fetched {
            let check = result.checks.entry(partition).or_default();
            received += consume_batches(&ctx, batches, from_offset, check, receipt_ns)?;
        }
        last_fetch_empty = received == 0;
        ctx.shared.consumed.fetch_add(received, Ordering::AcqRel);
        if let Some(timed_out) = stop {
            result.drain_timed_out = timed_out;
            return Ok(result);
        }
        glommio::yield_if_needed().await;
    }
}

/// `Some(drain_timed_out)` when this fetch loop is done.
fn should_stop(ctx: &ConsumerCtx, positions: &[Position], last_fetch_empty: bool) -> Option<bool> {
    let clock = ctx.stats.borrow().clock;
    let now = clock.now_ns();
    if ctx.workload.producers == 0 {
        let quota_met = ctx
            .workload
            .messages
            .is_some_and(|n| ctx.shared.consumed.load(Ordering::Acquire) >= n);
        return (quota_met || now >= clock.deadline_ns).then_some(false);
    }
    if ctx.shared.producers_left.load(Ordering::Acquire) > 0 {
        return None;
    }
    let caught_up = if ctx.workload.acks == 0 {
        last_fetch_empty
    } else {
        positions.iter().all(|p| {
            p.next_offset >= ctx.shared.acked_high[p.partition as usize].load(Ordering::Acquire)
        })
    };
    if caught_up {
        return Some(false);
    }
    let done_ns = ctx.shared.producers_done_ns.load(Ordering::Acquire);
    if done_ns == 0 {
        // The last producer is about to write its end time.
        return None;
    }
    (now > done_ns.saturating_add(nanos(ctx.workload.drain_timeout))).then_some(true)
}

fn fetch_request(
    topic: &TopicName,
    positions: &[Position],
    partition_bytes_max: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(FETCH_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES_MAX)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic.clone())
            .with_partitions(
                positions
                    .iter()
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(p.partition)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(p.next_offset)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(partition_bytes_max)
                    })
                    .collect(),
            )])
}

/// The whole record batches of `records` (a fetch may end in a partial one, read next time),
/// each with the offset that follows it.
fn whole_batches(mut records: Bytes) -> Result<Vec<(Bytes, i64)>, BenchError> {
    let mut batches = Vec::new();
    while let Some(header) = BatchHeader::parse(&records) {
        let base_offset = header.base_offset();
        let total = header
            .total_bytes()
            .filter(|&n| n >= batch::HEADER_BYTES)
            .ok_or_else(|| BenchError::Protocol {
                what: "fetch",
                reason: format!(
                    "record batch length {} at offset {base_offset}",
                    header.batch_length()
                ),
            })?;
        if records.len() < total {
            break;
        }
        let next_offset = header.last_offset() + 1;
        let batch = records.split_to(total);
        check_record_count(&batch, base_offset)?;
        batches.push((batch, next_offset));
    }
    Ok(batches)
}

/// Rejects a batch whose record count cannot be true (see [`COMPRESSED_RECORDS_MAX`]).
fn check_record_count(bytes: &[u8], base_offset: i64) -> Result<(), BenchError> {
    let header = BatchHeader::parse(bytes).expect("a whole batch");
    let count = header.record_count();
    let max = if header.compression() != 0 {
        COMPRESSED_RECORDS_MAX
    } else {
        (bytes.len() - batch::HEADER_BYTES) / RECORD_BYTES_MIN
    };
    match usize::try_from(count) {
        Ok(n) if n <= max => Ok(()),
        _ => Err(BenchError::Protocol {
            what: "fetch",
            reason: format!("record batch at offset {base_offset} claims {count} records"),
        }),
    }
}

/// Accounts for every record of `batches` at or after `from_offset`; returns the number of
/// messages received. Uncompressed batches (magic 2) are read in place; with --verify their CRC
/// is checked too. Others go through the codec's decoder, which always checks it (and refuses
/// the legacy formats).
fn consume_batches(
    ctx: &ConsumerCtx,
    batches: Vec<(Bytes, i64)>,
    from_offset: i64,
    check: &mut PartitionCheck,
    receipt_ns: u64,
) -> Result<u64, BenchError> {
    let mut received = 0;
    let mut stats = ctx.stats.borrow_mut();
    let mut on_record = |offset: i64, value: &[u8]| {
        if offset < from_offset {
            return;
        }
        let header = MessageHeader::read(value, ctx.run_id);
        stats.on_receive(receipt_ns, value.len() as u64, header.map(|h| h.send_ns));
        if let (Some(h), true) = (header, ctx.workload.verify) {
            check.observe(h.producer, h.seq);
        }
        received += 1;
    };
    for (mut bytes, next_offset) in batches {
        if next_offset <= from_offset {
            continue; // A batch before our position (a fetch may start mid-batch).
        }
        let corrupt = |reason: String| BenchError::Protocol {
            what: "decoding a fetched record batch",
            reason,
        };
        let header = BatchHeader::parse(&bytes).expect("a whole batch");
        if header.is_control() {
            continue; // Transaction markers are not messages.
        }
        if header.compression() != 0 || header.magic() != 2 {
            let decoded =
                RecordBatchDecoder::decode(&mut bytes).map_err(|e| corrupt(e.to_string()))?;
            for record in &decoded.records {
                on_record(record.offset, record.value.as_deref().unwrap_or(&[]));
            }
            continue;
        }
        if ctx.workload.verify {
            batch::validate(&bytes, u32::MAX).map_err(|e| corrupt(e.to_string()))?;
        }
        let base_offset = header.base_offset();
        for record in batch::records(&bytes) {
            let record = record.map_err(|e| corrupt(format!("at offset {base_offset}: {e}")))?;
            let offset = base_offset + i64::from(record.offset_delta);
            on_record(offset, record.value.unwrap_or(&[]));
        }
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::records::{Compression, Record};
    use odradek_net::codec::{encode_records, plain_record};

    fn batch(count: usize) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| plain_record(i as i64, 0, -1, None, Some(Bytes::from_static(b"value"))))
            .collect();
        encode_records(&records, Compression::None).expect("encode")
    }

    #[test]
    fn whole_batches_stop_at_a_partial_one_and_give_the_next_offset() {
        let one = batch(3);
        let mut two = BytesMut::new();
        two.put_slice(&one);
        two.put_slice(&one[..one.len() - 5]);
        let batches = whole_batches(two.freeze()).expect("valid");
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].1, 3);
        for cut in 0..one.len() {
            assert!(whole_batches(one.slice(..cut)).expect("partial").is_empty());
        }
    }

    #[test]
    fn a_lying_record_count_is_rejected() {
        let mut bytes = BytesMut::from(&batch(3)[..]);
        const RECORD_COUNT_AT: usize = 57;
        bytes[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(whole_batches(bytes.freeze()).is_err());
        let mut bytes = BytesMut::from(&batch(3)[..]);
        bytes[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(whole_batches(bytes.freeze()).is_err());
    }

    #[test]
    fn sequence_checks_find_gaps_and_duplicates() {
        let mut check = PartitionCheck::default();
        for seq in [0, 1, 2, 2, 5, 6] {
            check.observe(1, seq);
        }
        check.observe(2, 0);
        assert_eq!(check.duplicates, 1);
        assert_eq!(check.gaps, 1);
        assert_eq!(check.missing, 2);
        assert_eq!(check.next_seq[&1], 7);
        assert_eq!(check.next_seq[&2], 1);
    }
}
