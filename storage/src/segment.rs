//! One segment: a `.log` file of batches back to back, its in-memory indexes, and the file
//! names of the three files.
//!
//! A segment's state is shared (`Rc`) between the log, the flusher and in-flight reads, and only
//! ever touched from its shard, so its fields are `Cell`s and `RefCell`s that are never borrowed
//! across an `.await`.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::DmaFile;

use crate::batch::{BatchHeader, HEADER_BYTES};
use crate::error::StorageError;
use crate::fileio::{self, glommio_err};
use crate::index::{OffsetIndex, TimeIndex};
use crate::producers::Stamp;

/// Bytes read at once when walking batch headers through a segment file.
const SCAN_CHUNK_BYTES: usize = 16 << 10;

/// The name stem of a segment: its base offset as 20 zero-padded digits.
pub(crate) fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// What the engine remembers of one stored batch while walking a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub base_offset: i64,
    pub last_offset: i64,
    pub position: u64,
    pub len: u64,
    pub max_timestamp: i64,
    pub base_timestamp: i64,
    /// The idempotent producer's fields, when the batch has a producer id.
    pub stamp: Option<Stamp>,
}

impl BatchMeta {
    pub fn from_header(header: &BatchHeader<'_>, position: u64, len: u64) -> BatchMeta {
        BatchMeta {
            base_offset: header.base_offset(),
            last_offset: header.last_offset(),
            position,
            len,
            max_timestamp: header.max_timestamp(),
            base_timestamp: header.base_timestamp(),
            stamp: Stamp::of(header),
        }
    }

    pub fn end_position(&self) -> u64 {
        self.position + self.len
    }
}

pub(crate) struct Segment {
    pub base_offset: i64,
    dir: PathBuf,
    /// Logical bytes: every batch assigned to this segment, written or not.
    pub size: Cell<u64>,
    /// Bytes known to be on the device.
    pub written: Cell<u64>,
    /// One past the last offset assigned to this segment.
    pub next_offset: Cell<i64>,
    /// When the first batch was appended (wall clock ms), for `segment.ms`.
    pub first_append_ms: Cell<Option<i64>>,
    /// The segment's largest timestamp and the last offset of the batch carrying it.
    pub max_timestamp: Cell<Option<(i64, i64)>>,
    pub index: RefCell<OffsetIndex>,
    pub time_index: RefCell<TimeIndex>,
    bytes_since_index_entry: Cell<u64>,
    /// Set once no more batches go to this segment and its file is truncated, synced and its
    /// indexes are stored.
    pub sealed: Cell<bool>,
    file: RefCell<Option<Rc<DmaFile>>>,
    /// The background task storing the indexes of a rolled segment.
    index_writer: RefCell<Option<glommio::task::JoinHandle<()>>>,
}

impl Segment {
    pub fn new(dir: &Path, base_offset: i64) -> Segment {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            size: Cell::new(0),
            written: Cell::new(0),
            next_offset: Cell::new(base_offset),
            first_append_ms: Cell::new(None),
            max_timestamp: Cell::new(None),
            index: RefCell::new(OffsetIndex::default()),
            time_index: RefCell::new(TimeIndex::default()),
            bytes_since_index_entry: Cell::new(0),
            sealed: Cell::new(false),
            file: RefCell::new(None),
            index_writer: RefCell::new(None),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.log", file_stem(self.base_offset)))
    }

    pub fn index_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.index", file_stem(self.base_offset)))
    }

    pub fn time_index_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.timeindex", file_stem(self.base_offset)))
    }

    pub fn relative(&self, offset: i64) -> u32 {
        let rel = offset - self.base_offset;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&rel),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        rel as u32
    }

    /// Records a batch placed at the segment's end: size, offsets, max timestamp, index entries.
    pub fn record(&self, meta: &BatchMeta, index_interval_bytes: u32) {
        assert_eq!(meta.position, self.size.get(), "batches sit back to back");
        assert_eq!(
            meta.base_offset,
            self.next_offset.get(),
            "offsets are contiguous within a segment"
        );
        assert!(
            meta.end_position() <= u64::from(u32::MAX),
            "segment positions fit the index"
        );
        if self
            .max_timestamp
            .get()
            .is_none_or(|(ts, _)| meta.max_timestamp > ts)
        {
            self.max_timestamp
                .set(Some((meta.max_timestamp, meta.last_offset)));
        }
        let since = self.bytes_since_index_entry.get();
        if since >= u64::from(index_interval_bytes) && meta.position > 0 {
            self.index
                .borrow_mut()
                .append(self.relative(meta.last_offset), meta.position as u32);
            self.append_time_entry();
            self.bytes_since_index_entry.set(0);
        }
        self.bytes_since_index_entry
            .set(self.bytes_since_index_entry.get() + meta.len);
        self.size.set(meta.end_position());
        self.next_offset.set(meta.last_offset + 1);
    }

    /// Resumes appending to a recovered segment of `size` bytes whose next offset is
    /// `next_offset`, `bytes_since_index_entry` bytes after its last index entry.
    pub fn resume_at(&self, size: u64, next_offset: i64, bytes_since_index_entry: u64) {
        self.size.set(size);
        self.next_offset.set(next_offset);
        self.bytes_since_index_entry.set(bytes_since_index_entry);
    }

    /// Adds the segment's max timestamp so far to the time index (when it grew).
    pub fn append_time_entry(&self) {
        if let Some((ts, offset)) = self.max_timestamp.get() {
            self.time_index
                .borrow_mut()
                .maybe_append(ts, self.relative(offset));
        }
    }

    /// The open file, opened (read and write) on first use.
    pub async fn file(&self) -> Result<Rc<DmaFile>, StorageError> {
        if let Some(file) = self.file.borrow().as_ref() {
            return Ok(file.clone());
        }
        let file = Rc::new(fileio::open_dma_rw(&self.log_path()).await?);
        let mut slot = self.file.borrow_mut();
        Ok(slot.get_or_insert(file).clone())
    }

    /// Drops the file handle (the descriptor closes when the last in-flight user lets go).
    pub fn release_file(&self) {
        self.file.borrow_mut().take();
    }

    /// Stores both indexes (atomically, synced), finishing the time index with the max timestamp.
    pub async fn write_indexes(&self) -> Result<(), StorageError> {
        self.append_time_entry();
        let index = self.index.borrow().encode();
        let time_index = self.time_index.borrow().encode();
        fileio::write_file_atomic(&self.index_path(), index).await?;
        fileio::write_file_atomic(&self.time_index_path(), time_index).await
    }

    /// Truncates the file to its logical size (dropping O_DIRECT padding and preallocated
    /// space), syncs it and stores its indexes. Called once no more batches go to the segment
    /// and all are written.
    pub async fn seal(&self) -> Result<(), StorageError> {
        self.finish_data().await?;
        self.write_indexes().await?;
        self.sealed.set(true);
        Ok(())
    }

    /// Seals a segment that was just rolled away from: its data is finished (truncated, synced)
    /// before returning, and its indexes are stored by a background task, so the writes of the
    /// next segment do not wait for them. A failed index write is only logged: a missing or
    /// stale index is rebuilt at the next open.
    pub async fn seal_in_background(self: &Rc<Self>) -> Result<(), StorageError> {
        self.finish_data().await?;
        let segment = self.clone();
        let task = glommio::spawn_local(async move {
            if let Err(error) = segment.write_indexes().await {
                tracing::warn!(
                    segment = %segment.log_path().display(),
                    %error,
                    "storing the indexes failed"
                );
            }
            segment.sealed.set(true);
        })
        .detach();
        *self.index_writer.borrow_mut() = Some(task);
        Ok(())
    }

    /// Waits for a background index write started by [`Segment::seal_in_background`].
    pub async fn indexes_stored(&self) {
        let task = self.index_writer.borrow_mut().take();
        if let Some(task) = task {
            task.await;
        }
    }

    async fn finish_data(&self) -> Result<(), StorageError> {
        assert_eq!(
            self.written.get(),
            self.size.get(),
            "a segment is sealed once fully written"
        );
        let path = self.log_path();
        let file = self.file().await?;
        file.truncate(self.size.get())
            .await
            .map_err(glommio_err("truncate segment", &path))?;
        file.fdatasync()
            .await
            .map_err(glommio_err("sync segment", &path))
    }

    /// Removes the segment's files (after it left the segment list).
    pub async fn remove_files(&self) -> Result<(), StorageError> {
        self.release_file();
        fileio::remove_gradually(&self.log_path()).await?;
        fileio::remove_file(&self.index_path()).await?;
        fileio::remove_file(&self.time_index_path()).await
    }
}

/// Where a header walk gets its bytes: straight from the file, or through the shard's read
/// windows ([`crate::readwin`]).
pub(crate) trait ChunkSource {
    /// Exactly `len` bytes at `position`, all below the segment's written end.
    async fn chunk(&self, position: u64, len: usize) -> Result<bytes::Bytes, StorageError>;
}

/// Reads a segment file directly.
pub(crate) struct FileSource<'a> {
    pub file: &'a DmaFile,
    pub path: &'a Path,
}

impl ChunkSource for FileSource<'_> {
    async fn chunk(&self, position: u64, len: usize) -> Result<bytes::Bytes, StorageError> {
        let bytes = fileio::read_exact_at(self.file, self.path, position, len).await?;
        Ok(bytes::Bytes::from(bytes))
    }
}

/// Walks batch headers from `position` up to `end` straight from the file (see [`walk_from`]).
pub(crate) async fn walk_batches(
    file: &DmaFile,
    path: &Path,
    position: u64,
    end: u64,
    visit: impl FnMut(&BatchMeta) -> bool,
) -> Result<(), StorageError> {
    walk_from(&FileSource { file, path }, path, position, end, visit).await
}

/// Walks batch headers from `position` up to `end`, calling `visit` for each batch wholly below
/// `end` until it returns `false`. Batches are trusted (they were checked before they were
/// written, or by recovery); a header that makes no sense ends the walk with an error.
pub(crate) async fn walk_from(
    source: &impl ChunkSource,
    path: &Path,
    mut position: u64,
    end: u64,
    mut visit: impl FnMut(&BatchMeta) -> bool,
) -> Result<(), StorageError> {
    while position + HEADER_BYTES as u64 <= end {
        let want = SCAN_CHUNK_BYTES.min((end - position) as usize);
        let chunk = source.chunk(position, want).await?;
        let mut at = 0usize;
        while let Some(header) = BatchHeader::parse(&chunk[at..]) {
            let len = header
                .total_bytes()
                .ok_or_else(|| corrupt(path, position))? as u64;
            let meta = BatchMeta::from_header(&header, position, len);
            if meta.end_position() > end {
                // The batch is not wholly written yet (or `end` cuts it): the walk ends before it.
                return Ok(());
            }
            if !visit(&meta) {
                return Ok(());
            }
            position += len;
            at += len as usize;
            if at >= chunk.len() {
                break;
            }
        }
        glommio::yield_if_needed().await;
    }
    Ok(())
}

fn corrupt(path: &Path, position: u64) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("bad batch header at position {position}"),
    }
}
