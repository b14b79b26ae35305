//! Retention (`retention.ms`, `retention.bytes`), DeleteRecords, and the log-start checkpoint.
//!
//! Only whole closed, sealed segments are deleted, never the active one. A segment first leaves
//! the segment list (so appends and new reads no longer see it) and its files are removed after,
//! asynchronously: appends never wait for a deletion.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::engine::{Engine, State};
use crate::error::StorageError;
use crate::fileio;
use crate::log::RetentionOutcome;
use crate::segment::Segment;
use crate::types::Offset;

/// The file holding the log start offset: 8 bytes BE then their CRC32C (4 bytes BE).
pub(crate) const CHECKPOINT_FILE: &str = "log-start-offset";

pub(crate) fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

pub(crate) fn encode_checkpoint(log_start: i64) -> Vec<u8> {
    let mut out = log_start.to_be_bytes().to_vec();
    out.extend_from_slice(&crc32c::crc32c(&out).to_be_bytes());
    out
}

/// Reads the log-start checkpoint at open. A corrupt one is ignored with a warning: the first
/// segment's base offset is then the log start.
pub(crate) async fn read_checkpoint(dir: &Path) -> Result<Option<i64>, StorageError> {
    let path = checkpoint_path(dir);
    let Some(bytes) = fileio::read_optional("read checkpoint", &path).await? else {
        return Ok(None);
    };
    if bytes.len() == 12 && crc32c::crc32c(&bytes[..8]).to_be_bytes() == bytes[8..12] {
        let mut v = [0u8; 8];
        v.copy_from_slice(&bytes[..8]);
        return Ok(Some(i64::from_be_bytes(v)));
    }
    tracing::warn!(path = %path.display(), "ignoring a corrupt log-start checkpoint");
    Ok(None)
}

/// Stores the current log start offset (serialized with other checkpoint writes).
async fn write_checkpoint(engine: &Engine) -> Result<(), StorageError> {
    let path = checkpoint_path(&engine.dir);
    let _permit = engine
        .checkpoint_lock
        .acquire_permit(1)
        .await
        .map_err(|e| StorageError::Io {
            op: "lock checkpoint",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let log_start = engine.state.borrow().log_start;
    fileio::write_file_atomic(&path, encode_checkpoint(log_start)).await
}

/// Why the oldest closed segment goes, if it does.
fn deletable(st: &State, total_bytes: u64, now_ms: Option<i64>) -> bool {
    if st.segments.len() < 2 || !st.segments[0].sealed.get() {
        return false;
    }
    let oldest = &st.segments[0];
    if oldest.next_offset.get() <= st.log_start {
        return true;
    }
    let Some(now_ms) = now_ms else { return false };
    if !st.config.cleanup_delete {
        return false;
    }
    let retention_ms = st.config.retention_ms;
    let by_time = retention_ms >= 0
        && oldest
            .max_timestamp
            .get()
            .is_none_or(|(ts, _)| ts < now_ms.saturating_sub(retention_ms));
    let retention_bytes = st.config.retention_bytes;
    let by_size = retention_bytes >= 0 && total_bytes - oldest.size.get() >= retention_bytes as u64;
    by_time || by_size
}

/// Detaches the closed segments to delete and moves the log start past them.
fn detach(engine: &Engine, now_ms: Option<i64>) -> Vec<Rc<Segment>> {
    let mut st = engine.state.borrow_mut();
    let mut total: u64 = st.segments.iter().map(|s| s.size.get()).sum();
    let mut victims = Vec::new();
    while deletable(&st, total, now_ms) {
        let victim = st.segments.remove(0);
        total -= victim.size.get();
        victims.push(victim);
    }
    let first_base = st.segments[0].base_offset;
    if first_base > st.log_start {
        st.log_start = first_base;
    }
    let log_start = st.log_start;
    // The epochs before the new start go (the flusher stores the cache; until then recovery
    // fits the stored one to the log).
    if st.epochs.truncate_from_start(log_start) {
        st.epochs_unstored = true;
        engine.flusher_wakeup.raise();
    }
    drop(st);
    engine.cache.borrow_mut().drop_below(log_start);
    victims
}

async fn remove_all(engine: &Engine, victims: &[Rc<Segment>]) -> Result<u64, StorageError> {
    let mut bytes = 0;
    for victim in victims {
        bytes += victim.size.get();
        victim.remove_files().await?;
        tracing::debug!(
            dir = %engine.dir.display(),
            base_offset = victim.base_offset,
            "segment deleted"
        );
    }
    Ok(bytes)
}

/// Lets the background index writes of rolled segments finish, so that those segments count.
async fn settle_rolled(engine: &Engine) {
    let segments: Vec<Rc<Segment>> = engine.state.borrow().segments.clone();
    for segment in segments {
        segment.indexes_stored().await;
    }
}

/// One retention pass.
pub(crate) async fn enforce(
    engine: &Engine,
    now_ms: i64,
) -> Result<RetentionOutcome, StorageError> {
    settle_rolled(engine).await;
    let before = engine.state.borrow().log_start;
    let victims = detach(engine, Some(now_ms));
    let log_start = engine.state.borrow().log_start;
    if log_start != before {
        write_checkpoint(engine).await?;
    }
    let bytes_deleted = remove_all(engine, &victims).await?;
    if !victims.is_empty() {
        tracing::info!(
            dir = %engine.dir.display(),
            segments = victims.len(),
            bytes_deleted,
            log_start,
            "retention deleted segments"
        );
    }
    Ok(RetentionOutcome {
        segments_deleted: victims.len(),
        bytes_deleted,
        log_start_offset: Offset(log_start),
    })
}

/// DeleteRecords: moves the log start to `offset` (at most the log end) and deletes the closed
/// segments wholly below it.
pub(crate) async fn delete_records_before(
    engine: &Engine,
    offset: i64,
) -> Result<Offset, StorageError> {
    let moved = {
        let mut st = engine.state.borrow_mut();
        let target = offset.min(st.next_offset);
        let moved = target > st.log_start;
        if moved {
            st.log_start = target;
        }
        moved
    };
    settle_rolled(engine).await;
    let victims = detach(engine, None);
    if moved || !victims.is_empty() {
        write_checkpoint(engine).await?;
    }
    remove_all(engine, &victims).await?;
    Ok(Offset(engine.state.borrow().log_start))
}
