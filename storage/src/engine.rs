//! The state of one partition log and the synchronous half of the engine: appends, offsets and
//! milestone bookkeeping. The flusher ([`crate::flusher`]) does the writing; this module decides
//! what is written where.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;

use crate::batch::{self, BatchHeader};
use crate::cache::{CachedBatch, LogCache, TailCache};
use crate::config::{FlushPolicy, LogConfig, ShardStorageConfig, TimestampType};
use crate::epochs::EpochCache;
use crate::error::{AppendError, StorageError};
use crate::producers::{self, ProducerStates, Stamp, Verdict};
use crate::segment::{BatchMeta, Segment};
use crate::types::LeaderEpoch;
use crate::waiters::{Failure, Signal, Waiters};

/// The largest segment, whatever `segment.bytes` says (Kafka's own bound): index positions are
/// 32-bit, and a segment ends at most one batch (< 2 GiB) past this.
const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

/// The shard-wide memory accounting behind [`crate::ShardStorage`].
pub(crate) struct ShardState {
    /// Bytes appended but not yet on the device, across the shard's logs.
    pub pending_bytes: usize,
    pub tail: TailCache,
    /// Whole-size write buffers kept for reuse by the shard's flushers (bounded).
    pub write_buffers: Vec<glommio::io::DmaBuffer>,
    /// Recently read stretches of segment files (bounded).
    pub windows: crate::readwin::Windows,
    /// Device reads issued by fetch reads (a metric).
    pub device_reads: u64,
    /// Bytes those device reads asked for (a metric).
    pub device_read_bytes: u64,
    /// Fetch reads that waited for the device (missed every window, read-ahead included).
    pub read_waits: u64,
    /// `fdatasync`s the flushers issued (a metric).
    pub segment_syncs: u64,
    /// Segment writes issued through the `O_DSYNC` descriptor (a metric).
    pub synced_writes: u64,
    /// Logs of this shard whose flusher failed since start.
    pub failed_logs: u64,
    /// Appends waiting for room in the write buffer.
    pub room: crate::room::RoomLine,
}

impl ShardState {
    pub fn new(config: &ShardStorageConfig) -> ShardState {
        ShardState {
            pending_bytes: 0,
            tail: TailCache::new(config.tail_cache_bytes),
            write_buffers: Vec::new(),
            windows: crate::readwin::Windows::default(),
            device_reads: 0,
            device_read_bytes: 0,
            read_waits: 0,
            segment_syncs: 0,
            synced_writes: 0,
            failed_logs: 0,
            room: crate::room::RoomLine::default(),
        }
    }
}

/// A batch waiting for the flusher.
pub(crate) struct Pending {
    pub segment: Rc<Segment>,
    pub base_offset: i64,
    /// One past the batch's last offset.
    pub end_offset: i64,
    pub bytes: Bytes,
}

/// What the appending side and the flusher share.
pub(crate) struct State {
    pub config: LogConfig,
    /// Segments in base-offset order; the last one is active.
    pub segments: Vec<Rc<Segment>>,
    pub log_start: i64,
    /// The next offset to assign.
    pub next_offset: i64,
    /// Every offset below is on the device.
    pub written_end: i64,
    /// Every offset below is covered by a sync.
    pub durable_end: i64,
    pub pending: VecDeque<Pending>,
    /// Bytes of `pending`.
    pub pending_bytes: usize,
    pub max_timestamp: Option<(i64, i64)>,
    pub written_waiters: Waiters,
    pub durable_waiters: Waiters,
    pub data_waiters: Waiters,
    pub failure: Option<Failure>,
    /// No more appends; the flusher drains and stops.
    pub closing: bool,
    /// A periodic sync (flush.ms) is due.
    pub interval_sync_due: bool,
    /// A `flush.ms` timer task runs.
    pub interval_timer_running: bool,
    /// The flusher's result, taken by `close()`.
    pub flusher_done: Option<oneshot::Receiver<Result<(), StorageError>>>,
    /// Idempotent producers' epochs and last batches.
    pub producers: ProducerStates,
    /// Offsets of the producer snapshot files in the directory, ascending.
    pub snapshots: VecDeque<i64>,
    /// Where each leader epoch's batches start.
    pub epochs: EpochCache,
    /// `epochs` changed since the flusher last stored it; it stores it before its next write.
    pub epochs_unstored: bool,
}

impl State {
    pub fn active(&self) -> &Rc<Segment> {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    /// The segment holding `offset`: the last one whose base is at or below it.
    pub fn segment_for(&self, offset: i64) -> Option<Rc<Segment>> {
        let after = self.segments.partition_point(|s| s.base_offset <= offset);
        after.checked_sub(1).map(|i| self.segments[i].clone())
    }

    /// Whether an appender waits for durability that a sync before its acknowledgement gives.
    pub fn durability_awaited(&self) -> bool {
        self.config.flush == FlushPolicy::SyncBeforeAck && !self.durable_waiters.is_empty()
    }

    /// Whether the flusher should sync now.
    pub fn sync_wanted(&self) -> bool {
        let behind = self.durable_end < self.written_end;
        behind && (self.durability_awaited() || self.interval_sync_due)
    }

    /// Takes the oldest pending batch.
    pub fn take_pending(&mut self) -> Option<Pending> {
        let batch = self.pending.pop_front()?;
        self.pending_bytes -= batch.bytes.len();
        Some(batch)
    }

    pub fn check_usable(&self) -> Result<(), StorageError> {
        if let Some(failure) = &self.failure {
            return Err(failure.to_error());
        }
        if self.closing {
            return Err(StorageError::Closed);
        }
        Ok(())
    }
}

/// One log's engine: its directory, state, cache and flusher wake-up.
pub(crate) struct Engine {
    pub dir: PathBuf,
    pub shard: Rc<crate::ShardStorage>,
    pub state: RefCell<State>,
    pub cache: Rc<RefCell<LogCache>>,
    pub flusher_wakeup: Signal,
    /// Serializes writes of the log-start checkpoint.
    pub checkpoint_lock: glommio::sync::Semaphore,
    /// The last roll's producer snapshot write. Each one waits for the one before, so they
    /// land (and prune older files) in roll order; `close()` waits for the last.
    pub snapshot_write: RefCell<Option<glommio::task::JoinHandle<()>>>,
}

/// What one append produced.
pub(crate) struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start: i64,
}

/// Kafka's per-record checks on append: keys on compacted topics, CreateTime timestamps within
/// the topic's bounds. Answers the max timestamp to write into the header when the one sent is
/// not the records' (`None`: it is). Compressed batches are not opened here: their header's base
/// and max timestamps stand for their records, a max below the base (e.g. -1) is raised to the
/// base, and their keys are not checked.
fn check_records(
    bytes: &[u8],
    header: &BatchHeader<'_>,
    config: &LogConfig,
    now_ms: i64,
) -> Result<Option<i64>, batch::BatchError> {
    let summary = batch::summarize_records(bytes, header).transpose()?;
    if config.keys_required && summary.is_some_and(|s| s.keyless) {
        return Err(batch::BatchError::KeylessRecords {
            indexes: batch::keyless_records(bytes),
        });
    }
    let (min, max) = match summary {
        Some(s) => (s.min_timestamp, s.max_timestamp),
        None => (
            header.base_timestamp(),
            header.max_timestamp().max(header.base_timestamp()),
        ),
    };
    if config.timestamp_type == TimestampType::CreateTime {
        // -1 is "no timestamp" (old clients): Kafka does not bound it.
        if min >= 0 && min < now_ms.saturating_sub(config.timestamp_before_max_ms) {
            return Err(batch::BatchError::InvalidTimestamp {
                timestamp_ms: min,
                reason: "further in the past than message.timestamp.before.max.ms from",
            });
        }
        if max > now_ms.saturating_add(config.timestamp_after_max_ms) {
            return Err(batch::BatchError::InvalidTimestamp {
                timestamp_ms: max,
                reason: "further in the future than message.timestamp.after.max.ms from",
            });
        }
    }
    Ok((max != header.max_timestamp()).then_some(max))
}

impl Engine {
    /// Appends `batches` as the partition's leader at `epoch`, which is stamped into each.
    pub fn append(
        &self,
        batches: Bytes,
        epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let mut st = self.state.borrow_mut();
        st.check_usable()?;
        if let Some((newest, _)) = st.epochs.latest().filter(|&(e, _)| e > epoch.0) {
            return Err(AppendError::StaleLeaderEpoch {
                asked: epoch.0,
                newest,
            });
        }
        let ranges = batch::split_batches(&batches, st.config.max_message_bytes)?;
        let lat = st.config.timestamp_type == TimestampType::LogAppendTime;
        let mut stamps: Vec<Stamp> = Vec::new();
        let mut max_timestamp_fixes: Vec<Option<i64>> = Vec::with_capacity(ranges.len());
        for range in &ranges {
            let header = BatchHeader::parse(&batches[range.clone()]).expect("validated");
            if header.is_control() {
                return Err(
                    batch::BatchError::Invalid("control batches come only from brokers").into(),
                );
            }
            if header.is_transactional() {
                return Err(AppendError::Transactional);
            }
            max_timestamp_fixes.push(check_records(
                &batches[range.clone()],
                &header,
                &st.config,
                now_ms,
            )?);
            if let Some(stamp) = Stamp::of(&header) {
                if stamp.first_seq < 0 {
                    return Err(batch::BatchError::Invalid(
                        "a producer id with a negative base sequence",
                    )
                    .into());
                }
                stamps.push(stamp);
            }
        }
        if !stamps.is_empty() {
            if let Verdict::Duplicate(original) = st.producers.check(&stamps)? {
                return Ok(Appended {
                    base_offset: original.base_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: if lat { original.timestamp } else { -1 },
                    log_start: st.log_start,
                });
            }
        }
        self.reserve_write_buffer(batches.len())?;
        let mut copy = BytesMut::from(&batches[..]);
        let base_offset = st.next_offset;
        if st.epochs.assign(epoch.0, base_offset) {
            st.epochs_unstored = true;
        }
        for (range, max_timestamp_fix) in ranges.into_iter().zip(max_timestamp_fixes) {
            let mut one = copy.split_to(range.len());
            batch::set_base_offset(&mut one, st.next_offset);
            batch::set_partition_leader_epoch(&mut one, epoch.0);
            if lat {
                batch::set_log_append_time(&mut one, now_ms);
            } else if let Some(max_timestamp) = max_timestamp_fix {
                batch::set_max_timestamp(&mut one, max_timestamp);
            }
            let meta = self.place(&mut st, one.freeze(), now_ms);
            st.producers.record_stored(&meta, now_ms);
        }
        self.flusher_wakeup.raise();
        Ok(Appended {
            base_offset,
            last_offset: st.next_offset - 1,
            log_append_time_ms: if lat { now_ms } else { -1 },
            log_start: st.log_start,
        })
    }

    /// Appends a leader's batches as a follower: at the offsets and with the leader epochs they
    /// carry, which must continue this log exactly (the first at its end, each after the one
    /// before, epochs never going back). The batches were checked by the leader; here they are
    /// checked whole (CRC, framing) and their producers' sequences recorded, not judged, so a
    /// follower's producer state is the leader's.
    pub fn append_replica(&self, batches: Bytes, now_ms: i64) -> Result<Appended, AppendError> {
        let mut st = self.state.borrow_mut();
        st.check_usable()?;
        let ranges = batch::split_batches(&batches, u32::MAX)?;
        let mut expected = st.next_offset;
        let mut newest_epoch = st.epochs.latest().map(|(e, _)| e);
        for range in &ranges {
            let header = BatchHeader::parse(&batches[range.clone()]).expect("validated");
            if header.base_offset() != expected {
                return Err(AppendError::NotContiguous {
                    expected,
                    got: header.base_offset(),
                });
            }
            let epoch = header.partition_leader_epoch();
            if let Some(newest) = newest_epoch.filter(|&n| n > epoch) {
                return Err(AppendError::StaleLeaderEpoch {
                    asked: epoch,
                    newest,
                });
            }
            newest_epoch = Some(epoch);
            expected = header.last_offset() + 1;
        }
        self.reserve_write_buffer(batches.len())?;
        // One copy of the set: the batches must not pin the larger response buffer they came in.
        let mut copy = BytesMut::from(&batches[..]);
        let base_offset = st.next_offset;
        for range in ranges {
            let one = copy.split_to(range.len()).freeze();
            let epoch = BatchHeader::parse(&one)
                .expect("validated")
                .partition_leader_epoch();
            let at = st.next_offset;
            if st.epochs.assign(epoch, at) {
                st.epochs_unstored = true;
            }
            let meta = self.place(&mut st, one, now_ms);
            st.producers.record_stored(&meta, now_ms);
        }
        self.flusher_wakeup.raise();
        Ok(Appended {
            base_offset,
            last_offset: st.next_offset - 1,
            log_append_time_ms: -1,
            log_start: st.log_start,
        })
    }

    fn reserve_write_buffer(&self, bytes: usize) -> Result<(), AppendError> {
        let mut shard = self.shard.state.borrow_mut();
        let limit = self.shard.config.write_buffer_bytes;
        // One append always fits an empty buffer, so a batch larger than the buffer still goes in.
        if shard.pending_bytes > 0 && shard.pending_bytes + bytes > limit {
            return Err(AppendError::Backpressure);
        }
        shard.pending_bytes += bytes;
        Ok(())
    }

    /// Puts one checked, offset-stamped batch at the end of the log.
    fn place(&self, st: &mut State, bytes: Bytes, now_ms: i64) -> BatchMeta {
        let len = bytes.len() as u64;
        self.maybe_roll(st, len, now_ms);
        let header = BatchHeader::parse(&bytes).expect("the batch was validated");
        let segment = st.active().clone();
        let meta = BatchMeta::from_header(&header, segment.size.get(), len);
        assert_eq!(
            meta.base_offset, st.next_offset,
            "offsets are assigned in order"
        );
        segment.record(&meta, st.config.index_interval_bytes);
        if segment.first_append_ms.get().is_none() {
            segment.first_append_ms.set(Some(now_ms));
        }
        if st
            .max_timestamp
            .is_none_or(|(ts, _)| meta.max_timestamp > ts)
        {
            st.max_timestamp = Some((meta.max_timestamp, meta.last_offset));
        }
        st.next_offset = meta.last_offset + 1;
        self.cache.borrow_mut().push(CachedBatch {
            base_offset: meta.base_offset,
            last_offset: meta.last_offset,
            bytes: bytes.clone(),
        });
        st.pending_bytes += bytes.len();
        st.pending.push_back(Pending {
            segment,
            base_offset: meta.base_offset,
            end_offset: st.next_offset,
            bytes,
        });
        meta
    }

    /// Starts a new segment when the active one would pass `segment.bytes` or is older than
    /// `segment.ms`. The new file is created by the flusher when it first writes to it.
    fn maybe_roll(&self, st: &mut State, len: u64, now_ms: i64) {
        let active = st.active();
        if active.size.get() == 0 {
            return;
        }
        let by_size = active.size.get() + len > st.config.segment_bytes.min(SEGMENT_BYTES_MAX);
        let age_ms = active
            .first_append_ms
            .get()
            .map_or(0, |first| now_ms.saturating_sub(first));
        let by_time = age_ms >= 0 && age_ms as u64 > st.config.segment_ms;
        if !(by_size || by_time) {
            return;
        }
        tracing::info!(
            dir = %self.dir.display(),
            closed = active.base_offset,
            base_offset = st.next_offset,
            bytes = active.size.get(),
            reason = if by_size { "segment.bytes" } else { "segment.ms" },
            "segment rolled"
        );
        let segment = Rc::new(Segment::new(&self.dir, st.next_offset));
        st.segments.push(segment);
        let offset = st.next_offset;
        let stale = self.snapshot_producers(st, offset);
        let dir = self.dir.clone();
        let bytes = st.producers.encode(offset);
        let previous = self.snapshot_write.borrow_mut().take();
        let write = glommio::spawn_local(async move {
            if let Some(previous) = previous {
                previous.await;
            }
            if let Err(error) = store_snapshot(&dir, offset, bytes, stale).await {
                // Only restart recovery reads it, and it falls back to walking more of the log.
                tracing::warn!(dir = %dir.display(), %error, "cannot write a producer snapshot");
            }
        })
        .detach();
        *self.snapshot_write.borrow_mut() = Some(write);
    }

    /// Registers a producer snapshot at `offset`; returns the older snapshots to remove.
    pub fn snapshot_producers(&self, st: &mut State, offset: i64) -> Vec<i64> {
        if st.snapshots.back() != Some(&offset) {
            st.snapshots.push_back(offset);
        }
        let excess = st.snapshots.len().saturating_sub(producers::SNAPSHOTS_KEPT);
        st.snapshots.drain(..excess).collect()
    }

    /// The flusher wrote `batches` (in order): move the written end and wake its waiters.
    pub fn on_written(&self, batches: &[Pending]) {
        let Some(last) = batches.last() else { return };
        let bytes: usize = batches.iter().map(|b| b.bytes.len()).sum();
        {
            let mut shard = self.shard.state.borrow_mut();
            assert!(shard.pending_bytes >= bytes, "write buffer accounting");
            shard.pending_bytes -= bytes;
            shard.room.wake_front();
            for b in batches {
                shard
                    .tail
                    .written(&self.cache, b.base_offset, b.bytes.len());
            }
        }
        let mut st = self.state.borrow_mut();
        assert!(
            last.end_offset > st.written_end,
            "the written end only grows"
        );
        st.written_end = last.end_offset;
        let reached = st.written_end;
        st.written_waiters.wake_up_to(reached);
        st.data_waiters.wake_up_to(reached);
    }

    /// A sync covering everything below `end` completed.
    pub fn on_durable(&self, end: i64) {
        let mut st = self.state.borrow_mut();
        if end > st.durable_end {
            st.durable_end = end;
        }
        let reached = st.durable_end;
        st.durable_waiters.wake_up_to(reached);
    }

    /// The flusher failed: the log refuses appends and every waiter gets the error. `unwritten`
    /// are the batches it had taken but not written; with the pending ones they leave the shard's
    /// write buffer.
    pub fn fail(&self, error: &StorageError, unwritten: &[Pending]) {
        tracing::error!(
            dir = %self.dir.display(),
            %error,
            "partition log failed; it refuses appends from now on"
        );
        let failure = Failure::of(error);
        let mut st = self.state.borrow_mut();
        st.written_waiters.fail_all(&failure);
        st.durable_waiters.fail_all(&failure);
        st.data_waiters.fail_all(&failure);
        let pending: usize = st.pending.drain(..).map(|p| p.bytes.len()).sum();
        st.pending_bytes = 0;
        let dropped = pending + unwritten.iter().map(|p| p.bytes.len()).sum::<usize>();
        st.failure = Some(failure);
        let mut shard = self.shard.state.borrow_mut();
        shard.pending_bytes = shard.pending_bytes.saturating_sub(dropped);
        shard.failed_logs += 1;
        shard.room.wake_front();
    }

    /// Waits until every offset below `end` is on the device.
    pub async fn wait_written(&self, end: i64) -> Result<(), StorageError> {
        let rx = {
            let mut st = self.state.borrow_mut();
            if st.written_end >= end {
                return Ok(());
            }
            if let Some(failure) = &st.failure {
                return Err(failure.to_error());
            }
            st.written_waiters.add(end)
        };
        crate::waiters::settle(rx).await
    }

    /// Waits until every offset below `end` is covered by a sync.
    pub async fn wait_durable(&self, end: i64) -> Result<(), StorageError> {
        let rx = {
            let mut st = self.state.borrow_mut();
            if st.durable_end >= end {
                return Ok(());
            }
            if let Some(failure) = &st.failure {
                return Err(failure.to_error());
            }
            st.durable_waiters.add(end)
        };
        self.flusher_wakeup.raise();
        crate::waiters::settle(rx).await
    }

    /// Waits until the written end passes `offset` (or the log fails or closes).
    pub async fn wait_data(&self, offset: i64) {
        let rx = {
            let mut st = self.state.borrow_mut();
            if st.written_end > offset || st.failure.is_some() || st.closing {
                return;
            }
            st.data_waiters.add(offset + 1)
        };
        let _ = rx.await;
    }

    /// Stops appends and lets the flusher drain; returns its completion (once).
    pub fn begin_close(&self) -> Option<oneshot::Receiver<Result<(), StorageError>>> {
        let mut st = self.state.borrow_mut();
        st.closing = true;
        st.data_waiters.close_all();
        let done = st.flusher_done.take();
        drop(st);
        self.flusher_wakeup.raise();
        done
    }
}

/// Writes a producer snapshot, then removes the `stale` ones it replaces.
pub(crate) async fn store_snapshot(
    dir: &std::path::Path,
    offset: i64,
    bytes: Vec<u8>,
    stale: Vec<i64>,
) -> Result<(), StorageError> {
    crate::fileio::write_file_atomic(&dir.join(producers::snapshot_name(offset)), bytes).await?;
    for old in stale {
        crate::fileio::remove_file(&dir.join(producers::snapshot_name(old))).await?;
    }
    Ok(())
}
