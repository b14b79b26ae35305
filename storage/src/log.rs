//! The partition log: the public face of the engine.
//!
//! The engine lives in private modules: `engine` (state, appends, milestones), `flusher`
//! (direct-I/O writes), `durability` (group commit, `flush.ms`), `preallocate`, `read` (fetch
//! reads, timestamp lookups), `recovery` (open), `retention` (retention, DeleteRecords),
//! `segment`, `cache`, `epochs` (the leader-epoch cache), `waiters`, `fileio`, and the public
//! `index`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::Bytes;

use crate::cache::LogCache;
use crate::config::{LogConfig, ShardStorageConfig};
use crate::engine::{Engine, ShardState, State};
use crate::error::{AppendError, ReadError, StorageError};
use crate::types::{LeaderEpoch, Offset};
use crate::waiters::{Signal, Waiters};
use crate::{durability, epochs, fileio, flusher, read, recovery, retention, truncate};

/// What an append was given, and the futures for its two milestones.
pub struct AppendReceipt {
    /// Offset assigned to the first record of the first batch.
    pub base_offset: Offset,
    /// Offset of the last record of the last batch.
    pub last_offset: Offset,
    /// The broker time stamped into LogAppendTime batches, or -1 under CreateTime.
    pub log_append_time_ms: i64,
    /// The log start offset at the time of the append.
    pub log_start_offset: Offset,
    /// One past `last_offset`: the point both milestones wait for.
    end_offset: i64,
    log: Rc<PartitionLog>,
}

impl AppendReceipt {
    /// Resolves once every byte of the append is on the device (acks=1).
    pub async fn written(&self) -> Result<(), StorageError> {
        self.log.engine.wait_written(self.end_offset).await
    }

    /// Resolves once every byte of the append is synced: written with `O_DSYNC` or covered by an
    /// `fdatasync` (acks=all).
    pub async fn durable(&self) -> Result<(), StorageError> {
        self.log.engine.wait_durable(self.end_offset).await
    }
}

/// A byte range of a segment file (whole batches, all on the device) that can be sent without
/// passing through user space. The segment may be deleted by retention after the read returned;
/// reading the region then fails with an I/O error naming the path.
#[derive(Clone, Debug)]
pub struct FileRegion {
    pub path: PathBuf,
    pub position: u64,
    pub len: u32,
}

impl FileRegion {
    /// Reads the region into memory (the fallback while zero-copy sends are not wired).
    pub async fn read(&self) -> Result<Bytes, StorageError> {
        let file = fileio::open_dma_read(&self.path).await?;
        let result =
            fileio::read_exact_at(&file, &self.path, self.position, self.len as usize).await;
        let _ = file.close().await;
        Ok(Bytes::from(result?))
    }
}

/// One piece of a read: batches already in memory, or a region of a segment file.
#[derive(Clone, Debug)]
pub enum Chunk {
    Memory(Bytes),
    File(FileRegion),
}

/// Whole batches starting with the one that contains the requested offset.
#[derive(Clone, Debug, Default)]
pub struct ReadOutcome {
    pub chunks: Vec<Chunk>,
    /// Sum of the chunk lengths.
    pub bytes: usize,
}

/// What a retention pass removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: Offset,
}

/// Memory shared by every log of one shard: the write-buffer budget and the tail cache
/// (evicted oldest first). One per shard, created at start.
pub struct ShardStorage {
    pub config: ShardStorageConfig,
    pub(crate) state: RefCell<ShardState>,
}

impl ShardStorage {
    pub fn new(config: ShardStorageConfig) -> Rc<ShardStorage> {
        let state = RefCell::new(ShardState::new(&config));
        Rc::new(ShardStorage { config, state })
    }

    /// Bytes appended on this shard and not yet on the device.
    pub fn pending_bytes(&self) -> usize {
        self.state.borrow().pending_bytes
    }

    /// Bytes of written batches held by the tail cache.
    pub fn cached_bytes(&self) -> usize {
        self.state.borrow().tail.cached_bytes()
    }

    /// Device reads issued by fetch reads on this shard since start (tail-cache and read-window
    /// hits issue none).
    pub fn device_reads(&self) -> u64 {
        self.state.borrow().device_reads
    }

    /// Bytes those device reads asked for.
    pub fn device_read_bytes(&self) -> u64 {
        self.state.borrow().device_read_bytes
    }

    /// Fetch reads that had to wait for the device: a sequential reader served by read-ahead
    /// waits once, at its start.
    pub fn read_waits(&self) -> u64 {
        self.state.borrow().read_waits
    }

    /// `fdatasync`s of segment files the flushers issued on this shard since start (seals and
    /// recovery not counted).
    pub fn segment_syncs(&self) -> u64 {
        self.state.borrow().segment_syncs
    }

    /// Segment writes issued synced (`O_DSYNC`) because an appender waited for durability.
    pub fn synced_writes(&self) -> u64 {
        self.state.borrow().synced_writes
    }

    /// Logs of this shard that failed (a write or sync error) since start: each refuses appends
    /// from then on, and its waiters got the error.
    pub fn failed_logs(&self) -> u64 {
        self.state.borrow().failed_logs
    }
}

/// The log of one partition, owned by one shard.
pub struct PartitionLog {
    engine: Rc<Engine>,
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        // Let the flusher drain what was appended and stop (no clean marker: that is `close()`).
        let _ = self.engine.begin_close();
    }
}

impl PartitionLog {
    /// Opens (creating when missing) the partition directory `dir` and recovers it.
    pub async fn open(
        dir: PathBuf,
        config: LogConfig,
        shard: Rc<ShardStorage>,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        let recovered = recovery::recover(&dir, &config).await?;
        let state = State {
            config,
            segments: recovered.segments,
            log_start: recovered.log_start,
            next_offset: recovered.next_offset,
            written_end: recovered.next_offset,
            durable_end: recovered.next_offset,
            pending: VecDeque::new(),
            pending_bytes: 0,
            max_timestamp: recovered.max_timestamp,
            written_waiters: Waiters::default(),
            durable_waiters: Waiters::default(),
            data_waiters: Waiters::default(),
            failure: None,
            closing: false,
            interval_sync_due: false,
            interval_timer_running: false,
            flusher_done: None,
            producers: recovered.producers,
            snapshots: recovered.snapshots,
            epochs: recovered.epochs,
            epochs_unstored: recovered.epochs_unstored,
        };
        let engine = Rc::new(Engine {
            dir,
            shard,
            state: RefCell::new(state),
            cache: Rc::new(RefCell::new(LogCache::default())),
            flusher_wakeup: Signal::default(),
            checkpoint_lock: glommio::sync::Semaphore::new(1),
            snapshot_write: RefCell::new(None),
        });
        flusher::spawn(&engine);
        Ok(Rc::new(PartitionLog { engine }))
    }

    /// Validates and appends the batches of one produce partition (back to back in `batches`)
    /// as the partition's leader at `epoch`, which is stamped into every batch and recorded in
    /// the leader-epoch cache. Offsets are assigned at once; nothing of an invalid set is
    /// appended. An epoch older than one that already wrote is refused
    /// ([`AppendError::StaleLeaderEpoch`]).
    pub fn append(
        self: &Rc<Self>,
        batches: Bytes,
        epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendReceipt, AppendError> {
        let appended = self.engine.append(batches, epoch, now_ms)?;
        Ok(AppendReceipt {
            base_offset: Offset(appended.base_offset),
            last_offset: Offset(appended.last_offset),
            log_append_time_ms: appended.log_append_time_ms,
            log_start_offset: Offset(appended.log_start),
            end_offset: appended.last_offset + 1,
            log: self.clone(),
        })
    }

    /// Appends a leader's batches as this partition's follower, keeping their offsets and
    /// leader epochs (see `Engine::append_replica`): they must start at this log's end
    /// ([`AppendError::NotContiguous`] otherwise: truncate first, or fetch from the end).
    pub fn append_replica(
        self: &Rc<Self>,
        batches: Bytes,
        now_ms: i64,
    ) -> Result<AppendReceipt, AppendError> {
        let appended = self.engine.append_replica(batches, now_ms)?;
        Ok(AppendReceipt {
            base_offset: Offset(appended.base_offset),
            last_offset: Offset(appended.last_offset),
            log_append_time_ms: appended.log_append_time_ms,
            log_start_offset: Offset(appended.log_start),
            end_offset: appended.last_offset + 1,
            log: self.clone(),
        })
    }

    /// [`append`](Self::append), waiting in the shard's line while its write buffer is full
    /// (see `room`) for at most `wait_max`; past it the answer is
    /// [`AppendError::Backpressure`]. `now_ms` is read when the append happens.
    ///
    /// The line is joined, or the append made, before the first await: appends reach the log in
    /// the order their futures are first polled.
    pub async fn append_in_line(
        self: &Rc<Self>,
        batches: Bytes,
        epoch: LeaderEpoch,
        now_ms: impl Fn() -> i64,
        wait_max: std::time::Duration,
    ) -> Result<AppendReceipt, AppendError> {
        let shard = Rc::clone(&self.engine.shard);
        let deadline = std::time::Instant::now() + wait_max;
        let mut ticket = None;
        loop {
            if shard.state.borrow().room.may_try(ticket) {
                match self.append(batches.clone(), epoch, now_ms()) {
                    Err(AppendError::Backpressure) => {}
                    result => {
                        if let Some(ticket) = ticket {
                            shard.state.borrow_mut().room.leave(ticket);
                        }
                        return result;
                    }
                }
            }
            let (wake, woken) = futures::channel::oneshot::channel();
            ticket = Some(shard.state.borrow_mut().room.wait(ticket, wake));
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let timer = glommio::timer::sleep(left);
            let gave_up = matches!(
                futures::future::select(woken, std::pin::pin!(timer)).await,
                futures::future::Either::Right(_)
            );
            if gave_up {
                if let Some(ticket) = ticket {
                    shard.state.borrow_mut().room.leave(ticket);
                }
                return Err(AppendError::Backpressure);
            }
        }
    }

    /// Whole batches from the one containing `offset`, at least one even past `max_bytes`
    /// (KIP-74), never past `upper_bound`.
    pub async fn read(
        &self,
        offset: Offset,
        max_bytes: usize,
        upper_bound: Offset,
    ) -> Result<ReadOutcome, ReadError> {
        read::read(&self.engine, offset.0, max_bytes, upper_bound.0).await
    }

    /// Resolves when records at or past `offset` are readable (written end > offset), or at once.
    /// Dropping it is safe (long polling cancels it).
    pub async fn wait_for_data(&self, offset: Offset) {
        self.engine.wait_data(offset.0).await
    }

    pub fn log_start_offset(&self) -> Offset {
        Offset(self.engine.state.borrow().log_start)
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> Offset {
        Offset(self.engine.state.borrow().next_offset)
    }

    /// The end of the bytes on the device; the single-node high watermark.
    pub fn written_end_offset(&self) -> Offset {
        Offset(self.engine.state.borrow().written_end)
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` that wrote into this log and
    /// the offset where its records end (the next epoch's start, or the log end for the newest);
    /// `None` when `epoch` is newer than every epoch here (Kafka's undefined answer).
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let st = self.engine.state.borrow();
        match st.epochs.end_offset_for(epoch.0, st.next_offset) {
            epochs::UNDEFINED => None,
            (epoch, offset) => Some((LeaderEpoch(epoch), Offset(offset))),
        }
    }

    /// The epoch of the leader that wrote the record at `offset` (`None` before the first epoch).
    pub fn epoch_at(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.engine
            .state
            .borrow()
            .epochs
            .epoch_at(offset.0)
            .map(LeaderEpoch)
    }

    /// The newest leader epoch that wrote into this log and the offset of its first batch.
    pub fn latest_epoch(&self) -> Option<(LeaderEpoch, Offset)> {
        let st = self.engine.state.borrow();
        st.epochs
            .latest()
            .map(|(epoch, start)| (LeaderEpoch(epoch), Offset(start)))
    }

    /// The end of the bytes covered by a sync.
    pub fn durable_end_offset(&self) -> Offset {
        Offset(self.engine.state.borrow().durable_end)
    }

    /// The first batch whose max timestamp is >= `timestamp_ms`, as (its base offset, its bytes),
    /// so the caller can find the exact record; `None` when no record is that new.
    pub async fn batch_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(Offset, Bytes)>, StorageError> {
        read::batch_for_timestamp(&self.engine, timestamp_ms).await
    }

    /// The largest timestamp in the log and the offset of the batch's last record holding it.
    pub fn max_timestamp(&self) -> Option<(i64, Offset)> {
        self.engine
            .state
            .borrow()
            .max_timestamp
            .map(|(ts, offset)| (ts, Offset(offset)))
    }

    /// DeleteRecords: moves the log start offset up to `offset` (deleting whole segments below it).
    pub async fn delete_records_before(&self, offset: Offset) -> Result<Offset, StorageError> {
        retention::delete_records_before(&self.engine, offset.0).await
    }

    /// Forgets idempotent producers that have not appended since `cutoff_ms` (wall clock);
    /// returns how many. Their next batch is accepted at any sequence, as a new producer's.
    pub fn expire_producers(&self, cutoff_ms: i64) -> usize {
        self.engine.state.borrow_mut().producers.expire(cutoff_ms)
    }

    /// Idempotent producers the log remembers.
    pub fn producer_count(&self) -> usize {
        self.engine.state.borrow().producers.len()
    }

    /// One retention pass by `retention.ms` and `retention.bytes` over closed segments.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome, StorageError> {
        retention::enforce(&self.engine, now_ms).await
    }

    /// Replaces the settings (IncrementalAlterConfigs); applies from the next append or pass.
    pub fn set_config(&self, config: LogConfig) {
        self.engine.state.borrow_mut().config = config;
        durability::start_interval_timer(&self.engine);
        // A waiter may now be due a sync under the new policy.
        self.engine.flusher_wakeup.raise();
    }

    pub fn config(&self) -> LogConfig {
        self.engine.state.borrow().config.clone()
    }

    /// Bytes of all segments on disk.
    pub fn size_bytes(&self) -> u64 {
        self.engine
            .state
            .borrow()
            .segments
            .iter()
            .map(|s| s.size.get())
            .sum()
    }

    /// Flushes, syncs, writes the indexes and the clean-shutdown marker.
    pub async fn close(&self) -> Result<(), StorageError> {
        let Some(done) = self.engine.begin_close() else {
            return match &self.engine.state.borrow().failure {
                Some(failure) => Err(failure.to_error()),
                None => Ok(()),
            };
        };
        done.await.unwrap_or(Err(StorageError::Closed))?;
        let active = self.engine.state.borrow().active().clone();
        if !active.sealed.get() {
            active.seal().await?;
        }
        let segments: Vec<_> = self.engine.state.borrow().segments.clone();
        for segment in segments {
            segment.indexes_stored().await;
            segment.release_file();
        }
        self.engine.cache.borrow_mut().clear();
        // Roll snapshots still being written land first: none may appear after the close's own
        // (or, for DeleteTopics, in a directory re-created for a new topic of the same name).
        let roll_snapshot = self.engine.snapshot_write.borrow_mut().take();
        if let Some(write) = roll_snapshot {
            write.await;
        }
        // A log that has no producers and no snapshot yet (it never rolled) writes none:
        // recovery after a clean shutdown then starts with no producers. Otherwise the close's
        // snapshot supersedes the older ones.
        let snapshot = {
            let mut st = self.engine.state.borrow_mut();
            let wanted = st.producers.len() > 0 || !st.snapshots.is_empty();
            wanted.then(|| {
                let offset = st.next_offset;
                let stale = self.engine.snapshot_producers(&mut st, offset);
                (offset, st.producers.encode(offset), stale)
            })
        };
        if let Some((offset, bytes, stale)) = snapshot {
            crate::engine::store_snapshot(&self.engine.dir, offset, bytes, stale).await?;
        }
        let epochs = {
            let mut st = self.engine.state.borrow_mut();
            std::mem::take(&mut st.epochs_unstored).then(|| st.epochs.encode())
        };
        if let Some(bytes) = epochs {
            epochs::store(&self.engine.dir, bytes).await?;
        }
        let marker = self.engine.dir.join(recovery::CLEAN_MARKER);
        fileio::write_file_atomic(&marker, Vec::new()).await?;
        fileio::sync_dir(&self.engine.dir).await
    }

    /// Closes the log, cuts its end back to before `end` at a batch boundary (a batch holding
    /// `end` goes whole), and opens it again: the answer is the reopened log, whose indexes,
    /// producer state and leader epochs recovery rebuilt from what remains. For a follower
    /// whose log diverged from its leader's; a log ending at or below `end` is only reopened.
    /// A log whose every segment starts past `end` is emptied and starts at its first segment.
    pub async fn truncate_to(
        self: Rc<Self>,
        end: Offset,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        let (dir, config, shard) = self.close_for_rewrite().await?;
        truncate::truncate_closed(&dir, end.0).await?;
        PartitionLog::open(dir, config, shard).await
    }

    /// Closes the log for a rewrite of its closed directory, and answers what reopens it.
    async fn close_for_rewrite(
        self: Rc<Self>,
    ) -> Result<(PathBuf, LogConfig, Rc<ShardStorage>), StorageError> {
        self.close().await?;
        let dir = self.engine.dir.clone();
        let config = self.config();
        let shard = Rc::clone(&self.engine.shard);
        Ok((dir, config, shard))
    }

    /// Closes the log, empties it so that it starts (and ends) at `start`, and opens it again:
    /// for a follower whose leader's log now starts past this log's end.
    pub async fn restart_at(
        self: Rc<Self>,
        start: Offset,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        let (dir, config, shard) = self.close_for_rewrite().await?;
        truncate::empty_closed(&dir, start.get()).await?;
        PartitionLog::open(dir, config, shard).await
    }

    /// Closes the log and removes its directory (DeleteTopics).
    pub async fn delete(&self) -> Result<(), StorageError> {
        self.close().await?;
        let dir = self.engine.dir.clone();
        // Removing a directory tree is a run of blocking syscalls: the executor's blocking pool
        // does it, and the shard awaits it.
        let removed = glommio::executor()
            .spawn_blocking(move || std::fs::remove_dir_all(&dir))
            .await;
        removed.map_err(fileio::io_err("remove directory", &self.engine.dir))
    }
}
