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
//! (plus the slices of them still held by responses being sent), evicted least recently used.

use std::collections::VecDeque;
use std::path::Path;
use std::rc::{Rc, Weak};

use bytes::Bytes;
use glommio::io::DmaFile;

use crate::error::StorageError;
use crate::fileio;
use crate::segment::{ChunkSource, Segment};
use crate::ShardStorage;

/// Bytes read from the device when a read misses every window.
pub(crate) const WINDOW_BYTES: usize = 4 << 20;
/// Windows kept per shard.
pub(crate) const WINDOWS_PER_SHARD: usize = 16;

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
}

impl Windows {
    /// `len` bytes at `position` of `segment`, when a window holds them all.
    fn get(&mut self, segment: &Rc<Segment>, position: u64, len: usize) -> Option<Bytes> {
        let key = Rc::downgrade(segment);
        let at = self
            .entries
            .iter()
            .position(|w| w.covers(&key, position, len))?;
        let window = self.entries.remove(at)?;
        let from = (position - window.start) as usize;
        let bytes = window.bytes.slice(from..from + len);
        self.entries.push_back(window);
        Some(bytes)
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
    pub shard: &'a ShardStorage,
    pub segment: &'a Rc<Segment>,
    pub file: &'a DmaFile,
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
        let hit = self
            .shard
            .state
            .borrow_mut()
            .windows
            .get(self.segment, position, len);
        if let Some(bytes) = hit {
            return Ok(bytes);
        }
        self.shard.state.borrow_mut().device_reads += 1;
        if len > WINDOW_BYTES {
            let bytes = fileio::read_exact_at(self.file, self.path, position, len).await?;
            return Ok(Bytes::from(bytes));
        }
        let want = (WINDOW_BYTES as u64).min(self.written - position) as usize;
        let bytes = Bytes::from(fileio::read_exact_at(self.file, self.path, position, want).await?);
        let part = bytes.slice(..len);
        let mut state = self.shard.state.borrow_mut();
        state.windows.insert(self.segment, position, bytes);
        Ok(part)
    }
}
