//! Read windows: stretches of segment files recently read from disk, kept in memory so that a
//! consumer catching up sequentially costs one large device read per few fetches instead of a
//! header walk, an index jump and a region read for every fetch.
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

/// Bytes read from the device when a read misses every window.
pub(crate) const WINDOW_BYTES: usize = 4 << 20;
/// Windows kept per shard.
pub(crate) const WINDOWS_PER_SHARD: usize = 16;
/// How far a read-ahead window reaches back into the one before it: a fetch region (1 MiB by
/// default in Kafka clients) that straddles the end of a window still fits the next one whole.
const READ_AHEAD_OVERLAP: u64 = 1 << 20;

struct Window {
    segment: Weak<Segment>,
    start: u64,
    bytes: Bytes,
}

impl Window {
    fn covers(&self, segment: &Weak<Segment>, position: u64, len: usize) -> bool {
        Weak::ptr_eq(&self.segment, segment)
            && self.start <= position
            && position + len as u64 <= self.start + self.bytes.len() as u64
    }
}

/// The windows of one shard, least recently used first.
#[derive(Default)]
pub(crate) struct Windows {
    entries: VecDeque<Window>,
    /// Windows being read ahead: (segment, start, bytes, done when the window is kept).
    reading: Vec<Reading>,
}

/// A read-ahead in flight.
struct Reading {
    segment: Weak<Segment>,
    start: u64,
    len: u64,
    done: Shared<oneshot::Receiver<()>>,
}

impl Windows {
    /// `len` bytes at `position` of `segment`, when a window holds them all, with that window's
    /// end.
    fn get(&mut self, segment: &Rc<Segment>, position: u64, len: usize) -> Option<(Bytes, u64)> {
        let key = Rc::downgrade(segment);
        let at = self
            .entries
            .iter()
            .position(|w| w.covers(&key, position, len))?;
        let window = self.entries.remove(at)?;
        let from = (position - window.start) as usize;
        let bytes = window.bytes.slice(from..from + len);
        let end = window.start + window.bytes.len() as u64;
        self.entries.push_back(window);
        Some((bytes, end))
    }

    /// Whether a window of `segment` starts at `start`, or is being read there.
    fn has_or_reading(&self, segment: &Weak<Segment>, start: u64) -> bool {
        let same = |s: &Weak<Segment>, at: u64| Weak::ptr_eq(s, segment) && at == start;
        self.entries.iter().any(|w| same(&w.segment, w.start))
            || self.reading.iter().any(|r| same(&r.segment, r.start))
    }

    /// The read-ahead in flight that will hold `len` bytes at `position` of `segment`, if any.
    fn pending(
        &self,
        segment: &Rc<Segment>,
        position: u64,
        len: usize,
    ) -> Option<Shared<oneshot::Receiver<()>>> {
        let key = Rc::downgrade(segment);
        self.reading
            .iter()
            .find(|r| {
                Weak::ptr_eq(&r.segment, &key)
                    && r.start <= position
                    && position + len as u64 <= r.start + r.len
            })
            .map(|r| r.done.clone())
    }

    fn insert(&mut self, segment: &Rc<Segment>, start: u64, bytes: Bytes) {
        self.entries.retain(|w| w.segment.strong_count() > 0);
        while self.entries.len() >= WINDOWS_PER_SHARD {
            self.entries.pop_front();
        }
        let segment = Rc::downgrade(segment);
        self.entries.push_back(Window {
            segment,
            start,
            bytes,
        });
    }
}

/// Reads a segment through the shard's windows; a miss reads [`WINDOW_BYTES`] (never past the
/// written end) and keeps them.
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
        assert!(
            position + len as u64 <= self.written,
            "reads stay below the written end"
        );
        // A read-ahead already on its way with these bytes: wait for it rather than read twice.
        let pending = self
            .shard
            .state
            .borrow()
            .windows
            .pending(self.segment, position, len);
        if let Some(done) = pending {
            let _ = done.await;
        }
        let hit = self
            .shard
            .state
            .borrow_mut()
            .windows
            .get(self.segment, position, len);
        if let Some((bytes, window_end)) = hit {
            self.read_ahead(position + len as u64, window_end);
            return Ok(bytes);
        }
        {
            let mut state = self.shard.state.borrow_mut();
            state.device_reads += 1;
            state.read_waits += 1;
        }
        if len > WINDOW_BYTES {
            let bytes = fileio::read_exact_at(self.file, self.path, position, len).await?;
            return Ok(Bytes::from(bytes));
        }
        let want = (WINDOW_BYTES as u64).min(self.written - position) as usize;
        let bytes = Bytes::from(fileio::read_exact_at(self.file, self.path, position, want).await?);
        let part = bytes.slice(..len);
        self.shard
            .state
            .borrow_mut()
            .windows
            .insert(self.segment, position, bytes);
        self.read_ahead(position + len as u64, position + want as u64);
        Ok(part)
    }
}

impl WindowSource<'_> {
    /// Starts reading the window that follows one ending at `window_end` (overlapping its last
    /// [`READ_AHEAD_OVERLAP`] bytes) when the reader, now at `reached`, is past the middle of it
    /// and that window is neither kept nor being read.
    fn read_ahead(&self, reached: u64, window_end: u64) {
        let half = WINDOW_BYTES as u64 / 2;
        if reached + half < window_end || window_end >= self.written {
            return;
        }
        let next = window_end - READ_AHEAD_OVERLAP.min(window_end);
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
            len: want as u64,
            done: done.shared(),
        });
        state.device_reads += 1;
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
