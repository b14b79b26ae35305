//! What a shard does to a partition it owns for the data-path APIs: Produce, Fetch, ListOffsets
//! and DeleteRecords. Each function runs on the owning shard; its inputs and outputs are plain
//! `Send` data (`Bytes`, integers) so that they cross the channel mesh unchanged.
//!
//! Kafka errors are error codes in these results, never a Rust `Err`: the handler copies them
//! into the response for the partition concerned.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{select, select_all};
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use odradek_storage::{
    now_ms, AppendError, BatchError, Chunk, LeaderEpoch, Offset, PartitionLog, ReadError,
    SequenceError, StorageError,
};

use crate::data_path::{DeleteBefore, Owner};
use crate::replication::{acks, Replica};

/// What a producer waits for (Kafka's `acks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// `0`: nothing; no response is sent.
    None,
    /// `1`: the leader wrote the batch.
    Leader,
    /// `-1` (`all`): the batch is durable (and, in a cluster, on every in-sync replica).
    All,
}

impl Acks {
    /// Kafka's wire value, if it is one.
    pub fn from_wire(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// The outcome of appending one partition's records.
#[derive(Debug, Clone, Default)]
pub struct ProduceResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The records that made the batch fail, by index, with why (Produce v8+, KIP-467): the
    /// producer fails those and retries or fails the others as its own rules say.
    pub record_errors: Vec<(i32, String)>,
}

/// The outcome of reading one partition.
#[derive(Debug, Clone, Default)]
pub struct FetchResult {
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Whole batches, back to back, in pieces (tail-cache entries, file reads); empty for none.
    pub records: Vec<Bytes>,
}

impl FetchResult {
    /// A partition that could not be read.
    pub fn failed(error: ResponseError) -> FetchResult {
        FetchResult {
            error_code: error.code(),
            ..FetchResult::default()
        }
    }

    /// Bytes of record data.
    pub fn records_len(&self) -> usize {
        self.records.iter().map(Bytes::len).sum()
    }
}

/// The outcome of one ListOffsets lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOffsetResult {
    pub error_code: i16,
    pub timestamp: i64,
    pub offset: i64,
    /// The epoch of the leader that wrote `offset`'s record (or, for the log end, the current
    /// one); `None` where no offset was found.
    pub leader_epoch: Option<LeaderEpoch>,
}

impl ListOffsetResult {
    pub fn failed(error: ResponseError) -> ListOffsetResult {
        ListOffsetResult {
            error_code: error.code(),
            ..ListOffsetResult::NOT_FOUND
        }
    }

    /// No offset answers the lookup (not an error).
    const NOT_FOUND: ListOffsetResult = ListOffsetResult {
        error_code: 0,
        timestamp: -1,
        offset: -1,
        leader_epoch: None,
    };
}

/// The outcome of one OffsetForLeaderEpoch partition: the largest epoch at or below the one
/// asked that wrote into the log, and the offset where its records end; -1 and -1 when the log
/// holds no epoch that old (or any), or on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndResult {
    pub error_code: i16,
    pub leader_epoch: i32,
    pub end_offset: i64,
}

impl EpochEndResult {
    pub fn failed(error: ResponseError) -> EpochEndResult {
        EpochEndResult {
            error_code: error.code(),
            ..EpochEndResult::UNDEFINED
        }
    }

    /// Kafka's answer for an epoch the log has no end for (not an error).
    const UNDEFINED: EpochEndResult = EpochEndResult {
        error_code: 0,
        leader_epoch: -1,
        end_offset: -1,
    };
}

/// OffsetForLeaderEpoch for one partition (see [`EpochEndResult`]); `epoch` `None` is Kafka's
/// "no epoch" (-1), answered as undefined.
pub fn epoch_end(log: &PartitionLog, epoch: Option<LeaderEpoch>) -> EpochEndResult {
    match epoch.and_then(|epoch| log.end_offset_for_epoch(epoch)) {
        Some((epoch, end)) => EpochEndResult {
            error_code: 0,
            leader_epoch: epoch.0,
            end_offset: end.get(),
        },
        None => EpochEndResult::UNDEFINED,
    }
}

/// The outcome of one DeleteRecords partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteRecordsResult {
    pub error_code: i16,
    /// The log start offset after the deletion; -1 on an error.
    pub low_watermark: i64,
}

impl DeleteRecordsResult {
    pub fn failed(error: ResponseError) -> DeleteRecordsResult {
        DeleteRecordsResult {
            error_code: error.code(),
            low_watermark: -1,
        }
    }
}

/// Kafka's answer to a request that names leader epoch `asked` of a partition whose leader is
/// at `current`: an older epoch is fenced (the client lags behind a leader change), a newer one
/// unknown (this broker lags); none asked (`None`: old versions, -1) is never refused.
pub fn check_leader_epoch(
    current: LeaderEpoch,
    asked: Option<LeaderEpoch>,
) -> Result<(), ResponseError> {
    match asked {
        Some(asked) if asked < current => Err(ResponseError::FencedLeaderEpoch),
        Some(asked) if asked > current => Err(ResponseError::UnknownLeaderEpoch),
        _ => Ok(()),
    }
}

/// ListOffsets sentinels (KIP-734, KIP-405, KIP-1005).
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// Appends `records` (waiting up to `wait_max` in line for write-buffer room) and waits for the
/// milestone `acks` asks for: for acks=all, durable here and on every in-sync replica (the high
/// watermark past it, within `wait_max` too); for acks=1 written; or nothing (the append is
/// still ordered before any later one on this partition). acks=all needs `min.insync.replicas`
/// in the ISR before the append (NOT_ENOUGH_REPLICAS) and once replicated
/// (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
pub async fn produce(
    on: Owner<'_>,
    records: Bytes,
    acks: Acks,
    wait_max: Duration,
) -> ProduceResult {
    let log = on.log;
    let deadline = std::time::Instant::now() + wait_max;
    if acks == Acks::All {
        if let Err(failed) = acks::enough_replicas(&on, ResponseError::NotEnoughReplicas) {
            return failed;
        }
    }
    let records = match recompressed(log.config().compression, records) {
        Ok(records) => records,
        Err(why) => return ProduceResult::failed(ResponseError::CorruptMessage, why),
    };
    let receipt = match log
        .append_in_line(records, on.leader_epoch, now_ms, wait_max)
        .await
    {
        Ok(receipt) => receipt,
        Err(e) => {
            let mut failed = ProduceResult::failed(append_error(&e), e.to_string());
            failed.record_errors = record_errors(&e);
            return failed;
        }
    };
    let milestone = match acks {
        Acks::All => receipt.durable().await,
        Acks::Leader => receipt.written().await,
        Acks::None => Ok(()),
    };
    if let Err(e) = milestone {
        tracing::error!(error = %e, "append failed on the device");
        return ProduceResult::failed(ResponseError::KafkaStorageError, e.to_string());
    }
    if acks == Acks::All {
        if let Err(failed) = acks::replicated(&on, receipt.last_offset, deadline).await {
            return failed;
        }
    }
    ProduceResult {
        error_code: 0,
        error_message: None,
        base_offset: receipt.base_offset.get(),
        log_append_time_ms: receipt.log_append_time_ms,
        log_start_offset: receipt.log_start_offset.get(),
        record_errors: Vec::new(),
    }
}

/// The per-record errors of a refused append, for the records Kafka names (KIP-467).
fn record_errors(e: &AppendError) -> Vec<(i32, String)> {
    match e {
        AppendError::Invalid(BatchError::KeylessRecords { indexes }) => indexes
            .iter()
            .map(|&index| {
                (
                    index,
                    "a record without a key on a compacted topic".to_string(),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The batch stored with the topic's `compression.type` codec, as Kafka does when it differs
/// from the producer's: decoded and encoded again through the codec, producer fields, offsets
/// deltas and timestamps kept. Batches already in that codec, and anything the log will refuse
/// anyway (other magic, bad CRC), pass unchanged.
fn recompressed(codec: Option<u8>, records: Bytes) -> Result<Bytes, String> {
    let Some(codec) = codec else {
        return Ok(records);
    };
    let Ok(header) = odradek_storage::batch::validate(&records, u32::MAX) else {
        return Ok(records);
    };
    if header.compression() == codec || header.is_control() {
        return Ok(records);
    }
    let compression = match codec {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    };
    let set = RecordBatchDecoder::decode(&mut records.clone())
        .map_err(|e| format!("cannot decode the batch to recompress it: {e}"))?;
    let mut out = bytes::BytesMut::with_capacity(records.len());
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut out, set.records.iter(), &options)
        .map_err(|e| format!("cannot recompress the batch: {e}"))?;
    Ok(out.freeze())
}

impl ProduceResult {
    pub fn failed(error: ResponseError, message: String) -> ProduceResult {
        ProduceResult {
            error_code: error.code(),
            error_message: Some(message),
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
            record_errors: Vec::new(),
        }
    }
}

fn append_error(e: &AppendError) -> ResponseError {
    match e {
        AppendError::Invalid(BatchError::Corrupt(_)) => ResponseError::CorruptMessage,
        AppendError::Invalid(BatchError::TooLarge { .. }) => ResponseError::MessageTooLarge,
        AppendError::Invalid(BatchError::Invalid(_) | BatchError::KeylessRecords { .. }) => {
            ResponseError::InvalidRecord
        }
        AppendError::Invalid(BatchError::InvalidTimestamp { .. }) => {
            ResponseError::InvalidTimestamp
        }
        // The append waited in line for write-buffer room as long as the request allowed.
        AppendError::Backpressure => ResponseError::RequestTimedOut,
        AppendError::Transactional => ResponseError::TransactionalIdAuthorizationFailed,
        AppendError::Sequence(SequenceError::StaleEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        AppendError::Sequence(_) => ResponseError::OutOfOrderSequenceNumber,
        // Another broker has led the partition since this one's metadata says it leads.
        AppendError::StaleLeaderEpoch { .. } => ResponseError::NotLeaderOrFollower,
        // Only a follower's appends check offsets; a producer's never see this.
        AppendError::NotContiguous { .. } => ResponseError::UnknownServerError,
        AppendError::Storage(_) => ResponseError::KafkaStorageError,
    }
}

/// Reads whole batches from the one containing `offset`, up to `upper_bound` (the high
/// watermark for a consumer, the written end for a follower). Regions of closed segments are
/// read into memory here, on the owning shard.
pub async fn fetch(
    log: &PartitionLog,
    offset: Offset,
    max_bytes: usize,
    upper_bound: Offset,
    high_watermark: Offset,
) -> FetchResult {
    let mut result = FetchResult {
        error_code: 0,
        high_watermark: high_watermark.get(),
        last_stable_offset: high_watermark.get(),
        log_start_offset: log.log_start_offset().get(),
        records: Vec::new(),
    };
    let failed = match log.read(offset, max_bytes, upper_bound).await {
        Ok(outcome) => match in_memory(outcome.chunks).await {
            Ok(records) => {
                result.records = records;
                return result;
            }
            Err(e) => e,
        },
        Err(ReadError::OffsetOutOfRange { .. }) => {
            result.error_code = ResponseError::OffsetOutOfRange.code();
            return result;
        }
        Err(ReadError::Storage(e)) => e,
    };
    result.error_code = read_failure(log, offset, &failed).code();
    result.log_start_offset = log.log_start_offset().get();
    result
}

/// The Kafka error for a fetch read that failed. When retention or DeleteRecords moved the log
/// start past `offset` during the read (the segment was being deleted under it), the offset is
/// out of range, as it would have been a moment later, and the consumer resets; anything else is
/// a storage error.
fn read_failure(log: &PartitionLog, offset: Offset, error: &StorageError) -> ResponseError {
    let log_start = log.log_start_offset();
    if offset < log_start {
        tracing::debug!(%offset, %log_start, %error, "fetch read raced a deletion");
        ResponseError::OffsetOutOfRange
    } else {
        tracing::error!(%error, "fetch read failed");
        ResponseError::KafkaStorageError
    }
}

/// The chunks of a read as bytes in memory, in order: file regions are read here, memory chunks
/// are passed on as they are (the response sends them by reference).
async fn in_memory(chunks: Vec<Chunk>) -> Result<Vec<Bytes>, StorageError> {
    let mut pieces = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        pieces.push(match chunk {
            Chunk::Memory(bytes) => bytes,
            Chunk::File(region) => region.read().await?,
        });
    }
    Ok(pieces)
}

/// Waits until any of `(log, replica, offset)` has data at or past its offset, or `timeout`
/// passes. `committed` (a consumer's wait): until its high watermark may have passed the
/// offset, so that data written but not yet replicated does not wake the wait again and again.
pub async fn wait_for_any(
    waits: Vec<(Rc<PartitionLog>, Rc<Replica>, Offset)>,
    committed: bool,
    timeout: Duration,
) {
    if waits.is_empty() {
        glommio::timer::sleep(timeout).await;
        return;
    }
    let waiters = waits
        .iter()
        .map(|(log, replica, offset)| {
            Box::pin(async move {
                match committed {
                    true => replica.high_watermark_moved(log, *offset).await,
                    false => log.wait_for_data(*offset).await,
                }
            })
        })
        .collect::<Vec<_>>();
    let timer = Box::pin(glommio::timer::sleep(timeout));
    let _ = select(select_all(waiters), timer).await;
}

/// ListOffsets for one partition: a sentinel (latest, earliest, max timestamp) or the first
/// record whose timestamp is at or after `timestamp`. Each offset found is answered with the
/// epoch of the leader that wrote it (the log end: the newest epoch), or `epoch`, the partition
/// leader's, where the log holds none yet.
pub async fn list_offset(
    log: &PartitionLog,
    timestamp: i64,
    epoch: LeaderEpoch,
    high_watermark: Offset,
) -> ListOffsetResult {
    let found = |timestamp, offset: i64| ListOffsetResult {
        error_code: 0,
        timestamp,
        offset,
        leader_epoch: (offset >= 0).then(|| written_by(log, offset, epoch)),
    };
    match timestamp {
        LATEST_TIMESTAMP => found(-1, high_watermark.get()),
        // Nothing is in remote storage: as Kafka without it, no offset.
        LATEST_TIERED_TIMESTAMP => found(-1, -1),
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => found(-1, log.log_start_offset().get()),
        // KIP-734 as Kafka 3.8+ answers it: the offset of the first record holding the largest
        // timestamp, read from its batch (the log only tracks batches).
        MAX_TIMESTAMP => match log.max_timestamp() {
            Some((ts, batch_last)) => {
                match offset_for_timestamp(log, ts, epoch, high_watermark).await {
                    exact if exact.offset >= 0 => exact,
                    _ => found(ts, batch_last.get()),
                }
            }
            None => found(-1, -1),
        },
        t if t < 0 => ListOffsetResult::failed(ResponseError::InvalidRequest),
        t => offset_for_timestamp(log, t, epoch, high_watermark).await,
    }
}

/// The epoch that wrote `offset`, or `current` before any epoch wrote.
fn written_by(log: &PartitionLog, offset: i64, current: LeaderEpoch) -> LeaderEpoch {
    log.epoch_at(Offset(offset)).unwrap_or(current)
}

async fn offset_for_timestamp(
    log: &PartitionLog,
    timestamp: i64,
    epoch: LeaderEpoch,
    high_watermark: Offset,
) -> ListOffsetResult {
    let batch = match log.batch_for_timestamp(timestamp).await {
        Ok(Some((_, batch))) => batch,
        Ok(None) => return ListOffsetResult::NOT_FOUND,
        Err(e) => {
            tracing::error!(error = %e, "timestamp lookup failed");
            return ListOffsetResult::failed(ResponseError::KafkaStorageError);
        }
    };
    let high_watermark = high_watermark.get();
    match first_record_at_or_after(batch, timestamp) {
        Some((ts, offset)) if offset < high_watermark => ListOffsetResult {
            error_code: 0,
            timestamp: ts,
            offset,
            leader_epoch: Some(written_by(log, offset, epoch)),
        },
        _ => ListOffsetResult::NOT_FOUND,
    }
}

/// The (timestamp, offset) of the first record in `batch` stamped at or after `timestamp`.
/// Under LogAppendTime every record carries the batch's max timestamp.
fn first_record_at_or_after(mut batch: Bytes, timestamp: i64) -> Option<(i64, i64)> {
    let header = odradek_storage::BatchHeader::parse(&batch)?;
    if header.is_log_append_time() {
        let ts = header.max_timestamp();
        return (ts >= timestamp).then(|| (ts, header.base_offset()));
    }
    let set = RecordBatchDecoder::decode(&mut batch).ok()?;
    set.records
        .iter()
        .find(|r| r.timestamp >= timestamp)
        .map(|r| (r.timestamp, r.offset))
}

/// DeleteRecords for one partition.
pub async fn delete_records(
    log: &PartitionLog,
    before: DeleteBefore,
    high_watermark: Offset,
) -> DeleteRecordsResult {
    let target = match before {
        DeleteBefore::HighWatermark => high_watermark,
        DeleteBefore::Offset(offset) => offset,
    };
    if !log.config().cleanup_delete {
        // Kafka refuses to move the start of a log that is compacted only.
        return DeleteRecordsResult::failed(ResponseError::PolicyViolation);
    }
    if target < Offset::ZERO || target > high_watermark {
        return DeleteRecordsResult::failed(ResponseError::OffsetOutOfRange);
    }
    match log.delete_records_before(target).await {
        Ok(low_watermark) => DeleteRecordsResult {
            error_code: 0,
            low_watermark: low_watermark.get(),
        },
        Err(e) => {
            tracing::error!(error = %e, "delete records failed");
            DeleteRecordsResult::failed(ResponseError::KafkaStorageError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odradek_storage::testing::batch_of_size;
    use odradek_storage::{FileRegion, LogConfig, ShardStorage, ShardStorageConfig};

    #[test]
    fn a_read_of_a_segment_deleted_under_it_is_out_of_range_not_a_storage_error() {
        odradek_storage::testing::run(|| async {
            let dir = tempfile::tempdir().expect("tempdir");
            let shard = ShardStorage::new(ShardStorageConfig {
                tail_cache_bytes: 0,
                ..ShardStorageConfig::default()
            });
            let config = LogConfig {
                segment_bytes: 64 << 10,
                ..LogConfig::default()
            };
            let log = PartitionLog::open(dir.path().join("t-0"), config, shard)
                .await
                .expect("open");
            // One 100 kB batch per segment.
            let mut last = None;
            for _ in 0..3 {
                last = Some(
                    log.append(batch_of_size(100_000, 1, 7), LeaderEpoch::SINGLE_NODE, 0)
                        .expect("append"),
                );
            }
            last.expect("appended").durable().await.expect("durable");
            let mut files: Vec<_> = std::fs::read_dir(dir.path().join("t-0"))
                .expect("list")
                .map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            files.sort();
            // A read of the first segment file, as a fetch makes it, caught by the deletion.
            let region = FileRegion {
                path: files[0].clone(),
                position: 0,
                len: 1_000,
            };
            let start = log.delete_records_before(Offset(2)).await.expect("delete");
            assert_eq!(start, Offset(2));
            let error = in_memory(vec![Chunk::File(region)])
                .await
                .expect_err("the file is gone");
            assert_eq!(
                read_failure(&log, Offset(0), &error),
                ResponseError::OffsetOutOfRange
            );
            assert_eq!(
                read_failure(&log, Offset(2), &error),
                ResponseError::KafkaStorageError,
                "a failed read of data still in the log is a storage error"
            );
            log.close().await.expect("close");
        });
    }
}
