//! Opening a partition directory: listing segments, loading or rebuilding indexes, and scanning
//! the tail segment batch by batch (CRC32C) after an unclean shutdown, truncating a torn or
//! corrupt tail to the last whole batch.
//!
//! Runs on a live shard when CreateTopics opens a log (and on every shard at start), so nothing
//! here blocks the reactor: files are read, sized and removed through glommio; creating and
//! listing the directory, which glommio cannot do asynchronously, is one trip to the executor's
//! blocking-thread pool (`fileio::create_and_list_dir`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::DmaFile;

use crate::batch::{self, BatchHeader, HEADER_BYTES};
use crate::config::LogConfig;
use crate::epochs::{self, EpochCache};
use crate::error::StorageError;
use crate::fileio::{self, glommio_err};
use crate::index::{OffsetIndex, TimeIndex};
use crate::producers::{self, ProducerStates};
use crate::retention;
use crate::segment::{walk_batches, BatchMeta, Segment};

/// The marker a clean `close()` leaves; removed when the log opens.
pub(crate) const CLEAN_MARKER: &str = ".clean";
/// Bytes read at once while checking the tail segment.
const RECOVERY_CHUNK_BYTES: usize = 1 << 20;

/// The recovered shape of a log.
pub(crate) struct Recovered {
    pub segments: Vec<Rc<Segment>>,
    pub log_start: i64,
    pub next_offset: i64,
    pub max_timestamp: Option<(i64, i64)>,
    pub producers: ProducerStates,
    /// Offsets of the producer snapshots left in the directory, ascending.
    pub snapshots: VecDeque<i64>,
    pub epochs: EpochCache,
    /// `epochs` is not what the directory holds (the flusher stores it).
    pub epochs_unstored: bool,
}

pub(crate) async fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered, StorageError> {
    let listing = fileio::create_and_list_dir(dir).await?;
    fileio::probe_iopoll_once(dir).await?;
    let clean = fileio::remove_if_present(&dir.join(CLEAN_MARKER)).await?;
    let checkpoint = retention::read_checkpoint(dir).await?;
    let bases = list_segments(&listing).await?;
    let snapshots = snapshot_offsets(&listing);
    let now_ms = crate::clock::now_ms();
    // After a crash the tail is read batch by batch anyway: the producers are rebuilt in that
    // same pass, from where `recover_producers` would start, on the guess that no snapshot lies
    // past the recovered end. When one does (a crash took batches it covered), that work is
    // dropped and `recover_producers` starts over; so it is when a snapshot cannot be read
    // (the full path removes it if it lies past the end and otherwise reports it).
    let mut early = if clean {
        None
    } else {
        producer_start(dir, &snapshots, &bases).await.ok()
    };
    let mut segments = Vec::with_capacity(bases.len().max(1));
    for (i, &base) in bases.iter().enumerate() {
        let segment = Rc::new(Segment::new(dir, base));
        match bases.get(i + 1) {
            Some(&next_base) => {
                open_closed(&segment, next_base, config).await?;
                if let Some(e) = early.as_mut().filter(|e| next_base > e.from) {
                    walk_producers(&segment, e.from, &mut e.states, now_ms).await?;
                }
            }
            None => {
                let producers = early.as_mut().map(|e| TailProducers {
                    from: e.from,
                    states: &mut e.states,
                    now_ms,
                });
                open_tail(&segment, clean, config, producers).await?;
            }
        }
        segments.push(segment);
    }
    let next_offset = segments
        .last()
        .map_or(checkpoint.unwrap_or(0), |s| s.next_offset.get());
    if segments.is_empty() {
        segments.push(Rc::new(Segment::new(dir, next_offset)));
    }
    let first_base = segments[0].base_offset;
    let log_start = checkpoint
        .map_or(first_base, |c| c.max(first_base))
        .min(next_offset);
    let max_timestamp = segments
        .iter()
        .filter_map(|s| s.max_timestamp.get())
        .max_by_key(|(ts, _)| *ts);
    let (producers, snapshots) = match early {
        Some(e) if e.newest_snapshot.is_none_or(|at| at <= next_offset) => {
            (e.states, snapshots.into())
        }
        _ => recover_producers(dir, &segments, snapshots, next_offset, clean, now_ms).await?,
    };
    let (epochs, epochs_unstored) = recover_epochs(dir, log_start, next_offset).await?;
    tracing::debug!(
        dir = %dir.display(),
        segments = segments.len(),
        log_start,
        next_offset,
        clean,
        producers = producers.len(),
        "log opened"
    );
    Ok(Recovered {
        segments,
        log_start,
        next_offset,
        max_timestamp,
        producers,
        snapshots,
        epochs,
        epochs_unstored,
    })
}

/// The leader-epoch cache, fitted to the recovered log: epochs starting past its end (the
/// crash took their batches) or wholly before its start go. A log from before epochs were kept
/// was written by a single node, which leads at epoch 0: its records are epoch 0's. Answers
/// whether the cache differs from the stored file.
async fn recover_epochs(
    dir: &Path,
    log_start: i64,
    next_offset: i64,
) -> Result<(EpochCache, bool), StorageError> {
    let stored = epochs::read(dir).await?;
    let mut cache = stored.clone().unwrap_or_default();
    if stored.is_none() && next_offset > log_start {
        cache.assign(0, log_start);
    }
    cache.truncate_from_end(next_offset);
    cache.truncate_from_start(log_start);
    let unstored = match &stored {
        Some(stored) => *stored != cache,
        None => !cache.entries().is_empty(),
    };
    Ok((cache, unstored))
}

/// Rebuilds the idempotent producers' state: the newest usable snapshot at or below the log's
/// end, then every batch stored from its offset on. Snapshots past the end (of batches a crash
/// took) are removed. Without a snapshot, the last two segments are walked: producers whose last
/// batch is older start over as unknown ones (any sequence accepted). After a clean shutdown
/// without a snapshot there were no producers to remember (a clean close writes one when there
/// are), so nothing is walked. After a crash the same state is usually rebuilt while the tail
/// is checked (`recover`), and this runs only when a snapshot lies past the recovered end.
async fn recover_producers(
    dir: &Path,
    segments: &[Rc<Segment>],
    snapshots: Vec<i64>,
    next_offset: i64,
    clean: bool,
    now_ms: i64,
) -> Result<(ProducerStates, VecDeque<i64>), StorageError> {
    let (stale, kept): (Vec<i64>, Vec<i64>) = snapshots.into_iter().partition(|&o| o > next_offset);
    for &offset in &stale {
        fileio::remove_file(&dir.join(producers::snapshot_name(offset))).await?;
    }
    if !stale.is_empty() {
        // The removal must outlive the next crash: a snapshot past the end coming back after
        // new batches filled its offsets would describe a history the log no longer has.
        fileio::sync_dir(dir).await?;
    }
    // A clean close writes a snapshot whenever the log has producers or had snapshots.
    if clean && kept.is_empty() {
        return Ok((ProducerStates::default(), kept.into()));
    }
    let bases: Vec<i64> = segments.iter().map(|s| s.base_offset).collect();
    let mut start = producer_start(dir, &kept, &bases).await?;
    for segment in segments.iter().filter(|s| s.next_offset.get() > start.from) {
        walk_producers(segment, start.from, &mut start.states, now_ms).await?;
    }
    Ok((start.states, kept.into()))
}

/// Where producer recovery starts: the newest readable snapshot and its state, or without one
/// the second-to-last segment of `bases` with no producers (those whose last batch is older
/// start over as unknown ones).
struct ProducerStart {
    from: i64,
    states: ProducerStates,
    /// The newest snapshot file, readable or not.
    newest_snapshot: Option<i64>,
}

/// `snapshots` are the offsets of the snapshot files in `dir`, ascending.
async fn producer_start(
    dir: &Path,
    snapshots: &[i64],
    bases: &[i64],
) -> Result<ProducerStart, StorageError> {
    let newest_snapshot = snapshots.last().copied();
    for &offset in snapshots.iter().rev() {
        let path = dir.join(producers::snapshot_name(offset));
        let bytes = fileio::read_file("read producer snapshot", &path).await?;
        match ProducerStates::decode(&bytes) {
            Ok((at, states)) if at == offset => {
                return Ok(ProducerStart {
                    from: at,
                    states,
                    newest_snapshot,
                })
            }
            Ok(_) | Err(_) => {
                tracing::warn!(path = %path.display(), "ignoring an unreadable producer snapshot");
            }
        }
    }
    Ok(ProducerStart {
        from: bases.len().checked_sub(2).map_or(0, |i| bases[i]),
        states: ProducerStates::default(),
        newest_snapshot,
    })
}

/// Records the producer batches of `segment` from `from` on.
async fn walk_producers(
    segment: &Rc<Segment>,
    from: i64,
    states: &mut ProducerStates,
    now_ms: i64,
) -> Result<(), StorageError> {
    let path = segment.log_path();
    let file = segment.file().await?;
    let end = segment.size.get();
    let walked = walk_batches(&file, &path, 0, end, |meta| {
        record_recovered(states, from, meta, now_ms);
        true
    })
    .await;
    if segment.sealed.get() {
        segment.release_file();
    }
    if let Err(error) = walked {
        // Not a reason to refuse the log (its data stays readable as far as it goes), but what
        // the walk learned so far may be missing producers' latest batches, and a state behind
        // the log would refuse their next ones. Producers seen before are forgotten (any
        // sequence accepted); later segments are still walked.
        tracing::warn!(
            segment = %path.display(),
            %error,
            "producer state walk failed; producers seen so far are forgotten"
        );
        *states = ProducerStates::default();
    }
    Ok(())
}

/// Records a batch found by recovery in the producers' state when it lies at or after `from`
/// (the snapshot's offset). Recovered producers count as active from now on, not from their
/// batches' own timestamps: expiring one on the first retention pass after a restart would
/// store its retries twice.
fn record_recovered(states: &mut ProducerStates, from: i64, meta: &BatchMeta, now_ms: i64) {
    if meta.base_offset >= from {
        states.record_stored(meta, now_ms.max(meta.max_timestamp));
    }
}

/// The offsets of the producer snapshots in a directory's `listing`, ascending.
fn snapshot_offsets(listing: &[(PathBuf, String)]) -> Vec<i64> {
    let mut offsets: Vec<i64> = listing
        .iter()
        .filter_map(|(_, name)| producers::snapshot_offset(name))
        .collect();
    offsets.sort_unstable();
    offsets
}

/// Producer state rebuilt while the tail is checked: the snapshot at `from` and every valid
/// batch from there on.
struct TailProducers<'a> {
    from: i64,
    states: &'a mut ProducerStates,
    now_ms: i64,
}

/// Base offsets of the `.log` files in a directory's `listing`, ascending. Leftover temporary
/// files, and segments whose deletion a crash interrupted, are removed.
pub(crate) async fn list_segments(listing: &[(PathBuf, String)]) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    for (path, name) in listing {
        let name = name.as_str();
        if name.ends_with(".tmp") || name.ends_with(crate::fileio::DELETED_SUFFIX) {
            fileio::remove_file(path).await?;
        } else if let Some(stem) = name.strip_suffix(".log") {
            match stem.parse::<i64>() {
                Ok(base) if stem.len() == 20 && base >= 0 => bases.push(base),
                _ => {
                    tracing::warn!(
                        path = %path.display(),
                        "ignoring a .log file whose name is not a base offset"
                    )
                }
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Loads both index files of a segment when they exist and look valid.
async fn load_indexes(
    segment: &Segment,
    size: u64,
    offsets: u64,
) -> Result<Option<(OffsetIndex, TimeIndex)>, StorageError> {
    let (Some(index), Some(time_index)) = (
        fileio::read_optional("read index", &segment.index_path()).await?,
        fileio::read_optional("read index", &segment.time_index_path()).await?,
    ) else {
        return Ok(None);
    };
    let index = OffsetIndex::decode(&index, size.max(1));
    let time_index = TimeIndex::decode(&time_index, offsets.max(1));
    match (index, time_index) {
        (Ok(index), Ok(time_index)) => Ok(Some((index, time_index))),
        (Err(stale), _) | (_, Err(stale)) => {
            tracing::debug!(
                segment = %segment.log_path().display(),
                reason = stale.0,
                "stale index, rebuilding"
            );
            Ok(None)
        }
    }
}

/// A closed segment: its size from the file, its indexes loaded, or rebuilt by checking it
/// batch by batch (a damaged tail is truncated, as for the active segment).
async fn open_closed(
    segment: &Rc<Segment>,
    next_base: i64,
    config: &LogConfig,
) -> Result<(), StorageError> {
    let size = fileio::file_size("stat segment", &segment.log_path()).await?;
    let offsets = (next_base - segment.base_offset) as u64;
    if let Some((index, time_index)) = load_indexes(segment, size, offsets).await? {
        segment.max_timestamp.set(time_index.last().map(|e| {
            (
                e.timestamp_ms,
                segment.base_offset + i64::from(e.relative_offset),
            )
        }));
        *segment.index.borrow_mut() = index;
        *segment.time_index.borrow_mut() = time_index;
        segment.size.set(size);
    } else {
        let file = segment.file().await?;
        let valid_end = check_and_truncate(segment, &file, size, config, None).await?;
        segment.size.set(valid_end);
        segment.write_indexes().await?;
    }
    segment.next_offset.set(next_base);
    segment.written.set(segment.size.get());
    segment.sealed.set(true);
    Ok(())
}

/// The tail (active) segment: trusted after a clean shutdown when its indexes load, otherwise
/// checked batch by batch and truncated at the first torn or corrupt batch.
async fn open_tail(
    segment: &Rc<Segment>,
    clean: bool,
    config: &LogConfig,
    producers: Option<TailProducers<'_>>,
) -> Result<(), StorageError> {
    let file = segment.file().await?;
    let size = file
        .file_size()
        .await
        .map_err(glommio_err("stat segment", &segment.log_path()))?;
    if clean && load_clean_tail(segment, &file, size).await? {
        return Ok(());
    }
    let valid_end = check_and_truncate(segment, &file, size, config, producers).await?;
    segment.written.set(valid_end);
    Ok(())
}

/// Checks a segment batch by batch, truncates it after its last whole, valid batch and syncs it:
/// the log counts what it recovered as durable, and the bytes written before a crash may not
/// have been synced yet.
async fn check_and_truncate(
    segment: &Rc<Segment>,
    file: &DmaFile,
    size: u64,
    config: &LogConfig,
    producers: Option<TailProducers<'_>>,
) -> Result<u64, StorageError> {
    let valid_end = check_tail(segment, file, size, config, producers).await?;
    let path = segment.log_path();
    if valid_end < size {
        file.truncate(valid_end)
            .await
            .map_err(glommio_err("truncate segment", &path))?;
    }
    file.fdatasync()
        .await
        .map_err(glommio_err("sync segment", &path))?;
    Ok(valid_end)
}

/// Loads the tail segment's indexes after a clean shutdown and walks the headers after the last
/// index entry to find its end. `false` when the indexes are unusable.
async fn load_clean_tail(
    segment: &Rc<Segment>,
    file: &DmaFile,
    size: u64,
) -> Result<bool, StorageError> {
    let Some((index, time_index)) = load_indexes(segment, size, u64::from(u32::MAX)).await? else {
        return Ok(false);
    };
    let path = segment.log_path();
    let from = index.last().map_or(0, |e| u64::from(e.position));
    let mut metas = Vec::new();
    walk_batches(file, &path, from, size, |b| {
        metas.push(*b);
        true
    })
    .await?;
    let end = metas.last().map_or(from, BatchMeta::end_position);
    if end != size {
        return Ok(false);
    }
    let last_offset = metas.last().map(|m| m.last_offset).or(index
        .last()
        .map(|e| segment.base_offset + i64::from(e.relative_offset)));
    let last_relative = last_offset.map_or(-1, |o| o - segment.base_offset);
    let time_index_fits = time_index
        .last()
        .is_none_or(|e| i64::from(e.relative_offset) <= last_relative);
    if !time_index_fits {
        return Ok(false);
    }
    segment.max_timestamp.set(time_index.last().map(|e| {
        (
            e.timestamp_ms,
            segment.base_offset + i64::from(e.relative_offset),
        )
    }));
    for meta in &metas {
        if segment
            .max_timestamp
            .get()
            .is_none_or(|(ts, _)| meta.max_timestamp > ts)
        {
            segment
                .max_timestamp
                .set(Some((meta.max_timestamp, meta.last_offset)));
        }
    }
    *segment.index.borrow_mut() = index;
    *segment.time_index.borrow_mut() = time_index;
    segment.resume_at(
        size,
        last_offset.map_or(segment.base_offset, |o| o + 1),
        size - from,
    );
    if size > 0 {
        let first = fileio::read_exact_at(file, &path, 0, HEADER_BYTES).await?;
        let header = BatchHeader::parse(&first).expect("a whole header was read");
        segment.first_append_ms.set(Some(header.max_timestamp()));
    }
    segment.written.set(size);
    Ok(true)
}

/// Checks the tail segment batch by batch from its start; returns the end of the last whole,
/// valid batch and records every valid batch in the segment (rebuilding its indexes) and in
/// `producers`, if given.
async fn check_tail(
    segment: &Rc<Segment>,
    file: &DmaFile,
    size: u64,
    config: &LogConfig,
    mut producers: Option<TailProducers<'_>>,
) -> Result<u64, StorageError> {
    let path = segment.log_path();
    let mut reader = ChunkReader {
        file,
        path: &path,
        size,
        start: 0,
        buf: Vec::new(),
    };
    let mut position = 0u64;
    let mut reason = None;
    while position < size {
        match next_valid_batch(&mut reader, position, segment.next_offset.get()).await? {
            Ok(meta) => {
                if position == 0 {
                    segment.first_append_ms.set(Some(meta.max_timestamp));
                }
                segment.record(&meta, config.index_interval_bytes);
                if let Some(p) = producers.as_mut() {
                    record_recovered(p.states, p.from, &meta, p.now_ms);
                }
                position = meta.end_position();
            }
            Err(why) => {
                reason = Some(why);
                break;
            }
        }
        glommio::yield_if_needed().await;
    }
    if let Some(reason) = reason {
        tracing::warn!(
            segment = %path.display(),
            dropped_bytes = size - position,
            kept_end_position = position,
            dropped_from_offset = segment.next_offset.get(),
            reason,
            "recovery truncated a torn or corrupt tail; offsets from dropped_from_offset on are \
             gone"
        );
    }
    Ok(position)
}

/// The batch at `position`, checked (bounds, CRC32C, expected base offset), or why it is not.
async fn next_valid_batch(
    reader: &mut ChunkReader<'_>,
    position: u64,
    expected_base: i64,
) -> Result<Result<BatchMeta, &'static str>, StorageError> {
    if position + HEADER_BYTES as u64 > reader.size {
        return Ok(Err("torn batch header"));
    }
    let header_bytes = reader.get(position, HEADER_BYTES).await?;
    let header = BatchHeader::parse(header_bytes).expect("a whole header was read");
    let Some(len) = header.total_bytes() else {
        return Ok(Err("impossible batch length (zero padding or garbage)"));
    };
    if position + len as u64 > reader.size {
        return Ok(Err("torn batch"));
    }
    let max = u32::try_from(reader.size).unwrap_or(u32::MAX);
    let bytes = reader.get(position, len).await?;
    let header = match batch::validate(bytes, max) {
        Ok(header) => header,
        Err(_) => return Ok(Err("batch fails validation (CRC32C, magic or counts)")),
    };
    if header.base_offset() != expected_base {
        return Ok(Err("batch base offset does not follow the previous batch"));
    }
    Ok(Ok(BatchMeta::from_header(&header, position, len as u64)))
}

/// Sequential reads of a segment in large chunks.
struct ChunkReader<'a> {
    file: &'a DmaFile,
    path: &'a PathBuf,
    size: u64,
    start: u64,
    buf: Vec<u8>,
}

impl ChunkReader<'_> {
    async fn get(&mut self, position: u64, len: usize) -> Result<&[u8], StorageError> {
        let end = position + len as u64;
        if position < self.start || end > self.start + self.buf.len() as u64 {
            let want = (len.max(RECOVERY_CHUNK_BYTES) as u64).min(self.size - position) as usize;
            self.buf = fileio::read_exact_at(self.file, self.path, position, want).await?;
            self.start = position;
        }
        let from = (position - self.start) as usize;
        Ok(&self.buf[from..from + len])
    }
}
