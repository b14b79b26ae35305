//! Cutting the end of a closed log back to an offset: a follower whose log diverged from its
//! new leader's (it led, wrote batches that never reached the others, and was replaced) drops
//! what lies past the point where the two agree, found with OffsetForLeaderEpoch, before it
//! fetches again.
//!
//! It works on a closed directory, so no flusher, cache or reader sees the cut happen, and the
//! log is opened again after it: recovery then rebuilds what depends on the end (indexes of the
//! cut segment, producer state, the leader-epoch cache) from the bytes that remain.
//!
//! Crash safety: the clean marker goes first (so the next open checks the tail whatever
//! happens), then segments past the cut from the newest down, then the cut itself. A crash in
//! between leaves a shorter but whole log, a prefix of the old one, that is cut again once it
//! is open.
//!
//! [`empty_closed`] is the other way a follower starts over: its leader's log now starts past
//! this log's end (retention or DeleteRecords ran there meanwhile), so nothing here can be
//! continued; the log is emptied and starts at the leader's start, as Kafka's follower does.

use std::path::Path;

use crate::error::StorageError;
use crate::fileio::{self, glommio_err};
use crate::recovery::{self, CLEAN_MARKER};
use crate::segment::{walk_batches, Segment};
use crate::{epochs, producers, retention};

/// Cuts the closed log in `dir` so that it ends before `end`, at a batch boundary: a batch
/// holding `end` goes whole (Kafka does the same), so the log may end below `end`. A log that
/// ends at or below `end` is left as it is. Answers whether anything was cut.
pub(crate) async fn truncate_closed(dir: &Path, end: i64) -> Result<bool, StorageError> {
    let listing = fileio::create_and_list_dir(dir).await?;
    let bases = recovery::list_segments(&listing).await?;
    let Some(holding) = bases.iter().rposition(|&base| base <= end) else {
        // Every segment starts past `end`: the log keeps its first one, emptied, so that it
        // still starts where it did.
        return match bases.first() {
            Some(&first) => cut_from(dir, &bases, 0, first, 0).await,
            None => Ok(false),
        };
    };
    let segment = Segment::new(dir, bases[holding]);
    let path = segment.log_path();
    let file = fileio::open_dma_read(&path).await?;
    let size = file
        .file_size()
        .await
        .map_err(glommio_err("stat segment", &path))?;
    let mut cut_at = None;
    walk_batches(&file, &path, 0, size, |meta| {
        if meta.last_offset >= end {
            cut_at = Some(meta.position);
            return false;
        }
        true
    })
    .await?;
    let _ = file.close().await;
    let later = bases.len() > holding + 1;
    match cut_at {
        Some(position) => cut_from(dir, &bases, holding, bases[holding], position).await,
        None if later => cut_from(dir, &bases, holding + 1, bases[holding + 1], 0).await,
        None => Ok(false),
    }
}

/// Removes the clean marker, the segments after `bases[keep]`, and cuts `bases[keep]`
/// (based at `base`) to `position` bytes, dropping its indexes for recovery to rebuild.
async fn cut_from(
    dir: &Path,
    bases: &[i64],
    keep: usize,
    base: i64,
    position: u64,
) -> Result<bool, StorageError> {
    fileio::remove_if_present(&dir.join(CLEAN_MARKER)).await?;
    fileio::sync_dir(dir).await?;
    for &later in bases[keep + 1..].iter().rev() {
        let segment = Segment::new(dir, later);
        fileio::remove_if_present(&segment.index_path()).await?;
        fileio::remove_if_present(&segment.time_index_path()).await?;
        fileio::remove_file(&segment.log_path()).await?;
    }
    let segment = Segment::new(dir, base);
    fileio::remove_if_present(&segment.index_path()).await?;
    fileio::remove_if_present(&segment.time_index_path()).await?;
    let path = segment.log_path();
    let file = fileio::open_dma_rw(&path).await?;
    let cut = async {
        file.truncate(position)
            .await
            .map_err(glommio_err("truncate segment", &path))?;
        file.fdatasync()
            .await
            .map_err(glommio_err("sync segment", &path))
    }
    .await;
    let _ = file.close().await;
    cut?;
    fileio::sync_dir(dir).await?;
    tracing::info!(
        dir = %dir.display(),
        segment = base,
        position,
        segments_removed = bases.len() - keep - 1,
        "log truncated"
    );
    Ok(true)
}

/// Empties the closed log in `dir` so that it starts, and ends, at `start`: every segment, its
/// indexes, the producer snapshots and the leader epochs go (newest segment first, so a crash
/// leaves a prefix of the old log), then the log-start checkpoint says `start`, from which the
/// next open begins an empty log there.
pub(crate) async fn empty_closed(dir: &Path, start: i64) -> Result<(), StorageError> {
    let listing = fileio::create_and_list_dir(dir).await?;
    let bases = recovery::list_segments(&listing).await?;
    fileio::remove_if_present(&dir.join(CLEAN_MARKER)).await?;
    fileio::sync_dir(dir).await?;
    for &base in bases.iter().rev() {
        let segment = Segment::new(dir, base);
        fileio::remove_if_present(&segment.index_path()).await?;
        fileio::remove_if_present(&segment.time_index_path()).await?;
        fileio::remove_file(&segment.log_path()).await?;
    }
    for (path, name) in &listing {
        if producers::snapshot_offset(name).is_some() {
            fileio::remove_if_present(path).await?;
        }
    }
    fileio::remove_if_present(&epochs::path(dir)).await?;
    let checkpoint = retention::checkpoint_path(dir);
    fileio::write_file_atomic(&checkpoint, retention::encode_checkpoint(start)).await?;
    fileio::sync_dir(dir).await?;
    let segments_removed = bases.len();
    tracing::info!(dir = %dir.display(), start, segments_removed, "log emptied to start over");
    Ok(())
}
