//! Read windows: stretches of segment files recently read from disk, kept in memory so that a
//! consumer catching up sequentially costs one large device read per few fetches instead of a
//! header walk, an index jump and a region read for every fetch.
//!
//! Windows sit at fixed places: window *k* of a segment holds its bytes from `k * WINDOW_BYTES`
//! to the next multiple. A read that spans two windows gets a slice of each, so a reader going
//! through a segment gets every byte of its whole windows from the device once, whatever the
//! fetch sizes (windows read from wherever a fetch started overlapped, and fetches larger than
//! the overlap read most bytes twice). Where a window is not whole yet (at the written end of
//! the segment being written), a miss reads from the reader's position to the written end and
//! keeps that piece, so a reader following the written end reads each byte once; the one whole
//! read of that window, once it is complete and a reader still needs it, is the exception.
//!
//! Bytes of a segment below its written end never change (appends only add past it; recovery and
//! truncation happen before a log is live), so a window is never stale. Windows are keyed by a
//! `Weak<Segment>`: while the entry exists the segment's allocation cannot be reused, so a
//! deleted segment (retention, DeleteRecords, a topic deleted and created again under the same
//! name) can never be mistaken for a new one; its windows simply age out.
//!
//! Bounded: at most [`WINDOWS_PER_SHARD`] windows of at most [`WINDOW_BYTES`] each per shard
//! (plus the slices of them still held by responses being sent), evicted least recently used,
//! and at most as many read-aheads in flight.
//!
//! Read-ahead: once a reader is past the middle of a window, the window after it is read in the
//! background, so a consumer catching up does not wait for the device at every window boundary
//! (Kafka clients keep one fetch in flight per broker: each wait is time the consumer idles).

use std::collections::VecDeque;
use std::path::Path;
use std::rc::{Rc, Weak};

use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use glommio::io::DmaFile;

use crate::error::StorageError;
use crate::fileio;
use crate::segment::{ChunkSource, Segment};
use crate::ShardStorage;

/// Bytes of one window, and the spacing of window starts.
pub(crate) const WINDOW_BYTES: usize = 4 << 20;
/// Windows kept per shard.
pub(crate) const WINDOWS_PER_SHARD: usize = 16;

/// The start of the window holding `position`.
fn window_start(position: u64) -> u64 {
    position - position % WINDOW_BYTES as u64
}

/// A whole window (`start` a multiple of [`WINDOW_BYTES`]), or a piece of one from where a reader
/// missed to the written end.
struct Window {
    segment: Weak<Segment>,
    start: u64,
    bytes: Bytes,
}

impl Window {
    fn covers(&self, segment: &Weak<Segment>, position: u64, end: u64) -> bool {
        Weak::ptr_eq(&self.segment, segment)
            && self.start <= position
            && end <= self.start + self.bytes.len() as u64
    }
}

/// The windows of one shard, least recently used first.
#[derive(Default)]
pub(crate) struct Windows {
    entries: VecDeque<Window>,
    /// Windows being read ahead.
    reading: Vec<Reading>,
}

/// A read-ahead in flight.
struct Reading {
    segment: Weak<Segment>,
    start: u64,
    done: Shared<oneshot::Receiver<()>>,
}

impl Windows {
    /// A kept window or piece of `segment` holding the bytes from `position` to `end`, with its
    /// start.
    fn get(&mut self, segment: &Rc<Segment>, position: u64, end: u64) -> Option<(Bytes, u64)> {
        let key = Rc::downgrade(segment);
        let at = self
            .entries
            .iter()
            .position(|w| w.covers(&key, position, end))?;
        let window = self.entries.remove(at)?;
        let found = (window.bytes.clone(), window.start);
        self.entries.push_back(window);
        Some(found)
    }

    /// Whether the window of `segment` at `start` is kept or being read.
    fn has_or_reading(&self, segment: &Weak<Segment>, start: u64) -> bool {
        let same = |s: &Weak<Segment>, at: u64| Weak::ptr_eq(s, segment) && at == start;
        self.entries.iter().any(|w| same(&w.segment, w.start))
            || self.reading.iter().any(|r| same(&r.segment, r.start))
    }

    /// The read-ahead in flight of the window of `segment` at `start`, if any.
    fn pending(&self, segment: &Rc<Segment>, start: u64) -> Option<Shared<oneshot::Receiver<()>>> {
        let key = Rc::downgrade(segment);
        self.reading
            .iter()
            .find(|r| Weak::ptr_eq(&r.segment, &key) && r.start == start)
            .map(|r| r.done.clone())
    }

    /// Keeps a window or piece, unless one as long is kept at the same start (a read-ahead that
    /// finished after a reader's own read); a shorter one there is replaced.
    fn insert(&mut self, segment: &Rc<Segment>, start: u64, bytes: Bytes) {
        let key = Rc::downgrade(segment);
        let same = |w: &Window| Weak::ptr_eq(&w.segment, &key) && w.start == start;
        if self
            .entries
            .iter()
            .any(|w| same(w) && w.bytes.len() >= bytes.len())
        {
            return;
        }
        self.entries
            .retain(|w| w.segment.strong_count() > 0 && !same(w));
        while self.entries.len() >= WINDOWS_PER_SHARD {
            self.entries.pop_front();
        }
        self.entries.push_back(Window {
            segment: key,
            start,
            bytes,
        });
    }
}

/// Reads a segment through the shard's windows; a miss reads the whole window, or where it is not
/// whole yet the piece from the reader's position to the written end, and keeps it.
pub(crate) struct WindowSource<'a> {
    pub shard: &'a Rc<ShardStorage>,
    pub segment: &'a Rc<Segment>,
    pub file: &'a Rc<DmaFile>,
    pub path: &'a Path,
    /// The segment's written end when the read began.
    pub written: u64,
}

impl ChunkSource for WindowSource<'_> {
    async fn chunk(&self, position: u64, len: usize) -> Result<Bytes, StorageError> {
        let mut slices = self.slices(position, len).await?;
        if slices.len() == 1 {
            return Ok(slices.remove(0));
        }
        // A header walk across a window boundary: a few kilobytes are joined.
        let mut joined = Vec::with_capacity(len);
        slices.iter().for_each(|s| joined.extend_from_slice(s));
        Ok(Bytes::from(joined))
    }
}

impl WindowSource<'_> {
    /// `len` bytes at `position`, as slices of the windows holding them, in order.
    pub(crate) async fn slices(
        &self,
        position: u64,
        len: usize,
    ) -> Result<Vec<Bytes>, StorageError> {
        let end = position + len as u64;
        assert!(end <= self.written, "reads stay below the written end");
        let mut slices = Vec::new();
        let mut at = position;
        while at < end {
            let need_end = end.min(window_start(at) + WINDOW_BYTES as u64);
            let (bytes, start) = self.window(at, need_end).await?;
            slices.push(bytes.slice((at - start) as usize..(need_end - start) as usize));
            at = need_end;
        }
        self.read_ahead(end);
        Ok(slices)
    }

    /// Bytes from `position` to `need_end` (within one window), with the start of what holds
    /// them: a kept window or piece, a read-ahead's, or a read now: the whole window when it
    /// lies below the written end, else the piece from `position` to the written end.
    async fn window(&self, position: u64, need_end: u64) -> Result<(Bytes, u64), StorageError> {
        let start = window_start(position);
        // A read-ahead already on its way with these bytes: wait for it rather than read twice.
        let pending = self
            .shard
            .state
            .borrow()
            .windows
            .pending(self.segment, start);
        if let Some(done) = pending {
            let _ = done.await;
        }
        let hit = self
            .shard
            .state
            .borrow_mut()
            .windows
            .get(self.segment, position, need_end);
        if let Some(found) = hit {
            return Ok(found);
        }
        let whole_end = start + WINDOW_BYTES as u64;
        let (from, end) = if whole_end <= self.written {
            (start, whole_end)
        } else {
            (position, self.written)
        };
        {
            let mut state = self.shard.state.borrow_mut();
            state.device_reads += 1;
            state.device_read_bytes += end - from;
            state.read_waits += 1;
        }
        let read = fileio::read_exact_at(self.file, self.path, from, (end - from) as usize);
        let bytes = Bytes::from(read.await?);
        self.shard
            .state
            .borrow_mut()
            .windows
            .insert(self.segment, from, bytes.clone());
        Ok((bytes, from))
    }

    /// Starts reading the window after the one holding the reader's position `reached` (the
    /// end of its last read) once the reader is past the middle of its window, unless that
    /// window is kept, being read, or past the written end.
    fn read_ahead(&self, reached: u64) {
        let current = window_start(reached.saturating_sub(1));
        let next = current + WINDOW_BYTES as u64;
        if reached < current + WINDOW_BYTES as u64 / 2 || next >= self.written {
            return;
        }
        let key = Rc::downgrade(self.segment);
        let mut state = self.shard.state.borrow_mut();
        // Bounded like the windows themselves: with more readers than that, some wait for the
        // device as they would without read-ahead.
        if state.windows.reading.len() >= WINDOWS_PER_SHARD
            || state.windows.has_or_reading(&key, next)
        {
            return;
        }
        let want = (WINDOW_BYTES as u64).min(self.written - next) as usize;
        let (done_tx, done) = oneshot::channel();
        state.windows.reading.push(Reading {
            segment: key.clone(),
            start: next,
            done: done.shared(),
        });
        state.device_reads += 1;
        state.device_read_bytes += want as u64;
        drop(state);
        let (shard, segment, file) = (
            Rc::clone(self.shard),
            Rc::clone(self.segment),
            Rc::clone(self.file),
        );
        let path = self.path.to_path_buf();
        glommio::spawn_local(async move {
            let read = fileio::read_exact_at(&file, &path, next, want).await;
            let mut state = shard.state.borrow_mut();
            let windows = &mut state.windows;
            windows
                .reading
                .retain(|r| !(Weak::ptr_eq(&r.segment, &key) && r.start == next));
            match read {
                Ok(bytes) => windows.insert(&segment, next, Bytes::from(bytes)),
                // A reader that needs these bytes reads them itself and reports the error.
                Err(error) => tracing::debug!(%error, "read-ahead failed"),
            }
            drop(state);
            let _ = done_tx.send(());
        })
        .detach();
    }
}
