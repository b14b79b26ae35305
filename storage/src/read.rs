//! The read side: fetch reads (memory first, then segment files) and timestamp lookups.

use std::rc::Rc;

use bytes::Bytes;

use crate::batch::BatchHeader;
use crate::engine::Engine;
use crate::error::{ReadError, StorageError};
use crate::fileio;
use crate::log::{Chunk, FileRegion, ReadOutcome};
use crate::readwin::WindowSource;
use crate::segment::{walk_batches, walk_from, BatchMeta, Segment};
use crate::types::Offset;

pub(crate) async fn read(
    engine: &Engine,
    offset: i64,
    max_bytes: usize,
    upper_bound: i64,
) -> Result<ReadOutcome, ReadError> {
    let (segment, upper_bound) = {
        let st = engine.state.borrow();
        if offset < st.log_start || offset > st.next_offset {
            return Err(ReadError::OffsetOutOfRange {
                requested: Offset(offset),
                log_start: Offset(st.log_start),
                log_end: Offset(st.next_offset),
            });
        }
        let upper_bound = upper_bound.min(st.next_offset);
        if offset >= upper_bound {
            return Ok(ReadOutcome::default());
        }
        if let Some(outcome) = read_cached(engine, offset, max_bytes, upper_bound) {
            return Ok(outcome);
        }
        (st.segment_for(offset), upper_bound)
    };
    let Some(segment) = segment else {
        return Ok(ReadOutcome::default());
    };
    Ok(read_segment(&engine.shard, &segment, offset, max_bytes, upper_bound).await?)
}

/// Serves the read from the tail cache when the batch holding `offset` is there.
fn read_cached(
    engine: &Engine,
    offset: i64,
    max_bytes: usize,
    upper_bound: i64,
) -> Option<ReadOutcome> {
    let cache = engine.cache.borrow();
    let batches = cache.batches_from(offset)?;
    let mut outcome = ReadOutcome::default();
    for batch in batches {
        if batch.base_offset >= upper_bound
            || (outcome.bytes > 0 && outcome.bytes + batch.bytes.len() > max_bytes)
        {
            break;
        }
        outcome.bytes += batch.bytes.len();
        outcome.chunks.push(Chunk::Memory(batch.bytes.clone()));
    }
    Some(outcome)
}

/// Whole written batches of `segment` from the one holding `offset`.
///
/// The region's start is found through the index and a short header walk; its end jumps to the
/// furthest indexed batch start that fits, then walks the few headers after it. The walks and
/// the region itself are read through the shard's read windows, so a sequential reader mostly
/// finds them in memory; a region larger than a window is left to the caller as a file region.
async fn read_segment(
    shard: &Rc<crate::ShardStorage>,
    segment: &Rc<Segment>,
    offset: i64,
    max_bytes: usize,
    upper_bound: i64,
) -> Result<ReadOutcome, StorageError> {
    let written = segment.written.get();
    let from = u64::from(segment.index.borrow().lookup(segment.relative(offset)));
    let file = segment.file().await?;
    let path = segment.log_path();
    let source = WindowSource {
        shard,
        segment,
        file: &file,
        path: &path,
        written,
    };
    let mut first: Option<BatchMeta> = None;
    walk_from(&source, &path, from, written, |b| {
        if b.last_offset < offset {
            return true;
        }
        first = Some(*b);
        false
    })
    .await?;
    let Some(first) = first.filter(|b| b.base_offset < upper_bound) else {
        return Ok(ReadOutcome::default());
    };
    // KIP-74: the first batch goes out whole even when it is larger than max_bytes.
    let limit = (first.position + (max_bytes as u64).max(first.len)).min(written);
    let jump = segment
        .index
        .borrow()
        .furthest_within(limit, upper_bound - segment.base_offset);
    let mut end = jump.map_or(0, u64::from).max(first.end_position());
    walk_from(&source, &path, end, written, |b| {
        if b.base_offset >= upper_bound || b.end_position() > limit {
            return false;
        }
        end = b.end_position();
        true
    })
    .await?;
    let len = end - first.position;
    assert!(len <= u64::from(u32::MAX), "a read region fits a segment");
    let chunks = if len as usize <= crate::readwin::WINDOW_BYTES {
        let slices = source.slices(first.position, len as usize).await?;
        slices.into_iter().map(Chunk::Memory).collect()
    } else {
        vec![Chunk::File(FileRegion {
            path,
            position: first.position,
            len: len as u32,
        })]
    };
    Ok(ReadOutcome {
        chunks,
        bytes: len as usize,
    })
}

/// The first batch whose max timestamp is at or above `timestamp_ms`.
pub(crate) async fn batch_for_timestamp(
    engine: &Engine,
    timestamp_ms: i64,
) -> Result<Option<(Offset, Bytes)>, StorageError> {
    let candidates: Vec<Rc<Segment>> = {
        let st = engine.state.borrow();
        st.segments
            .iter()
            .filter(|s| {
                s.max_timestamp
                    .get()
                    .is_some_and(|(ts, _)| ts >= timestamp_ms)
            })
            .cloned()
            .collect()
    };
    // Only the first candidate can hold the answer, unless its newest batches are not written yet
    // and sit only in memory; the cache covers those.
    let Some(segment) = candidates.first() else {
        return Ok(None);
    };
    let start = match segment.time_index.borrow().older_than(timestamp_ms) {
        Some(rel) => segment.index.borrow().lookup(rel),
        None => 0,
    };
    let file = segment.file().await?;
    let path = segment.log_path();
    let mut found: Option<BatchMeta> = None;
    walk_batches(&file, &path, u64::from(start), segment.written.get(), |b| {
        if b.max_timestamp >= timestamp_ms {
            found = Some(*b);
            return false;
        }
        true
    })
    .await?;
    if let Some(b) = found {
        let bytes = fileio::read_exact_at(&file, &path, b.position, b.len as usize).await?;
        return Ok(Some((Offset(b.base_offset), Bytes::from(bytes))));
    }
    Ok(first_cached_at_or_after(
        engine,
        segment.base_offset,
        timestamp_ms,
    ))
}

fn first_cached_at_or_after(
    engine: &Engine,
    from_offset: i64,
    timestamp_ms: i64,
) -> Option<(Offset, Bytes)> {
    let cache = engine.cache.borrow();
    let found = cache.at_or_after(from_offset).find_map(|b| {
        let header = BatchHeader::parse(&b.bytes)?;
        (header.max_timestamp() >= timestamp_ms).then(|| (Offset(b.base_offset), b.bytes.clone()))
    });
    found
}
