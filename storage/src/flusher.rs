//! The flusher: one task per partition that moves appended batches onto the device.
//!
//! It takes everything pending (up to [`ROUND_BYTES_MAX`]), copies it into DMA buffers starting
//! at the aligned-down written position (the partial last block is kept in memory and rewritten
//! with more data next time), and issues large aligned writes, several in flight. While a round
//! is in flight new appends accumulate: that is the batching. After each round, when an appender
//! awaits durability (or a `flush.ms` tick is due), one `fdatasync` covers everything written so
//! far: that is the group commit.

use std::rc::{Rc, Weak};
use std::time::Duration;

use futures::channel::oneshot;
use glommio::io::DmaFile;

use crate::config::FlushPolicy;
use crate::engine::{Engine, Pending};
use crate::error::StorageError;
use crate::fileio::{self, glommio_err};
use crate::segment::Segment;

/// Device block: every write starts and ends on it.
pub(crate) const BLOCK_BYTES: u64 = 4096;
/// Bytes of one write call.
const WRITE_BYTES_MAX: usize = 1 << 20;
/// Bytes taken from the pending queue per round (so at most 8 writes are in flight).
const ROUND_BYTES_MAX: usize = 8 << 20;
/// How often the `flush.ms` timer re-reads the policy when it is not periodic.
const POLICY_POLL_MS: u64 = 100;

fn align_down(v: u64) -> u64 {
    v & !(BLOCK_BYTES - 1)
}

fn align_up(v: u64) -> u64 {
    align_down(v + BLOCK_BYTES - 1)
}

/// Starts the flusher (and the `flush.ms` timer) of a freshly opened log.
pub(crate) fn spawn(engine: &Rc<Engine>) {
    let (done_tx, done_rx) = oneshot::channel();
    engine.state.borrow_mut().flusher_done = Some(done_rx);
    let flusher = Flusher {
        engine: engine.clone(),
        current: None,
        file: None,
        tail: Vec::new(),
    };
    glommio::spawn_local(flusher.run(done_tx)).detach();
    glommio::spawn_local(interval_timer(Rc::downgrade(engine))).detach();
}

struct Flusher {
    engine: Rc<Engine>,
    /// The segment being written and its file.
    current: Option<Rc<Segment>>,
    file: Option<Rc<DmaFile>>,
    /// The bytes of the current segment from `align_down(written)` to `written`.
    tail: Vec<u8>,
}

impl Flusher {
    async fn run(mut self, done: oneshot::Sender<Result<(), StorageError>>) {
        let result = self.run_rounds().await;
        if let Err(error) = &result {
            self.engine.fail(error);
        }
        let _ = done.send(result);
    }

    async fn run_rounds(&mut self) -> Result<(), StorageError> {
        loop {
            if let Some((segment, batches)) = self.take_round() {
                self.switch_to(&segment).await?;
                self.write_round(&segment, &batches).await?;
                self.engine.on_written(&batches);
            }
            if self.engine.state.borrow().sync_wanted() {
                self.sync().await?;
            }
            let (idle, closing) = {
                let st = self.engine.state.borrow();
                (st.pending.is_empty(), st.closing)
            };
            if idle && closing {
                return self.finish().await;
            }
            if idle {
                self.engine.flusher_wakeup.wait().await;
            }
        }
    }

    /// Takes the pending batches of the oldest pending segment, up to the round bound.
    fn take_round(&self) -> Option<(Rc<Segment>, Vec<Pending>)> {
        let mut st = self.engine.state.borrow_mut();
        let segment = st.pending.front()?.segment.clone();
        let mut batches = Vec::new();
        let mut bytes = 0;
        while let Some(next) = st.pending.front() {
            if !Rc::ptr_eq(&next.segment, &segment)
                || (bytes > 0 && bytes + next.bytes.len() > ROUND_BYTES_MAX)
            {
                break;
            }
            bytes += next.bytes.len();
            batches.extend(st.pending.pop_front());
        }
        Some((segment, batches))
    }

    /// Makes `segment` the one being written, sealing the previous one (no batch goes to it
    /// any more: pending batches are in segment order).
    async fn switch_to(&mut self, segment: &Rc<Segment>) -> Result<(), StorageError> {
        if self
            .current
            .as_ref()
            .is_some_and(|c| Rc::ptr_eq(c, segment))
        {
            return Ok(());
        }
        if let Some(previous) = self.current.take() {
            previous.seal().await?;
            let written_end = self.engine.state.borrow().written_end;
            self.engine.on_durable(written_end);
        }
        let fresh = segment.written.get() == 0;
        let file = segment.file().await?;
        if fresh {
            fileio::sync_dir(&self.engine.dir).await?;
        }
        let written = segment.written.get();
        let tail_start = align_down(written);
        self.tail = if written > tail_start {
            fileio::read_exact_at(
                &file,
                &segment.log_path(),
                tail_start,
                (written - tail_start) as usize,
            )
            .await?
        } else {
            Vec::new()
        };
        self.file = Some(file);
        self.current = Some(segment.clone());
        Ok(())
    }

    /// Writes the batches after the segment's written end, in aligned 1 MiB writes in flight
    /// together.
    async fn write_round(
        &mut self,
        segment: &Segment,
        batches: &[Pending],
    ) -> Result<(), StorageError> {
        let file = self.file.clone().expect("switch_to opened the file");
        assert!(
            BLOCK_BYTES.is_multiple_of(file.alignment()),
            "the device block divides 4096"
        );
        let written = segment.written.get();
        let start = align_down(written);
        assert_eq!(
            written - start,
            self.tail.len() as u64,
            "the tail block matches the written end"
        );
        let data: u64 = batches.iter().map(|b| b.bytes.len() as u64).sum();
        let end = written + data;
        assert!(
            end <= segment.size.get(),
            "never write past the logical size"
        );
        let buffers = self.fill_buffers(&file, start, end, batches);
        self.tail = last_partial_block(&buffers, start, end);
        let path = segment.log_path();
        let mut writes = Vec::with_capacity(buffers.len());
        let mut at = start;
        for buffer in buffers {
            let len = buffer.len();
            writes.push(write_all_at(&file, &path, buffer, at));
            at += len as u64;
        }
        for result in futures::future::join_all(writes).await {
            result?;
        }
        segment.written.set(end);
        Ok(())
    }

    /// Copies the kept tail block and the batches into aligned DMA buffers, zero-padded to a
    /// block boundary at the end.
    fn fill_buffers(
        &self,
        file: &DmaFile,
        start: u64,
        end: u64,
        batches: &[Pending],
    ) -> Vec<glommio::io::DmaBuffer> {
        let total = (align_up(end) - start) as usize;
        let mut buffers = Vec::with_capacity(total.div_ceil(WRITE_BYTES_MAX));
        let mut sources =
            std::iter::once(&self.tail[..]).chain(batches.iter().map(|b| &b.bytes[..]));
        let mut source: &[u8] = &[];
        let mut left = total;
        while left > 0 {
            let size = left.min(WRITE_BYTES_MAX);
            let mut buffer = file.alloc_dma_buffer(size);
            let dst = buffer.as_bytes_mut();
            let mut filled = 0;
            while filled < size {
                if source.is_empty() {
                    match sources.next() {
                        Some(next) => source = next,
                        None => {
                            dst[filled..].fill(0);
                            break;
                        }
                    }
                    continue;
                }
                let n = source.len().min(size - filled);
                dst[filled..filled + n].copy_from_slice(&source[..n]);
                source = &source[n..];
                filled += n;
            }
            buffers.push(buffer);
            left -= size;
        }
        buffers
    }

    /// One fdatasync covering everything written so far (group commit).
    async fn sync(&mut self) -> Result<(), StorageError> {
        let covered = {
            let mut st = self.engine.state.borrow_mut();
            st.interval_sync_due = false;
            st.written_end
        };
        if let (Some(file), Some(segment)) = (&self.file, &self.current) {
            file.fdatasync()
                .await
                .map_err(glommio_err("sync segment", &segment.log_path()))?;
        }
        self.engine.on_durable(covered);
        Ok(())
    }

    /// Everything is written: seal the segment being written (truncate the padding, sync, store
    /// its indexes). The log is closing.
    async fn finish(&mut self) -> Result<(), StorageError> {
        if let Some(segment) = self.current.take() {
            segment.seal().await?;
        }
        let written_end = self.engine.state.borrow().written_end;
        self.engine.on_durable(written_end);
        self.file = None;
        Ok(())
    }
}

/// The bytes from the last block boundary at or below `end` to `end`, out of the buffers that
/// start at `start`.
fn last_partial_block(buffers: &[glommio::io::DmaBuffer], start: u64, end: u64) -> Vec<u8> {
    let tail_start = align_down(end);
    if tail_start == end {
        return Vec::new();
    }
    let last_start = start + ((buffers.len() - 1) * WRITE_BYTES_MAX) as u64;
    assert!(
        tail_start >= last_start,
        "the tail block lies in the last buffer"
    );
    let from = (tail_start - last_start) as usize;
    let to = (end - last_start) as usize;
    buffers[buffers.len() - 1].as_bytes()[from..to].to_vec()
}

async fn write_all_at(
    file: &DmaFile,
    path: &std::path::Path,
    buffer: glommio::io::DmaBuffer,
    at: u64,
) -> Result<(), StorageError> {
    assert!(
        at.is_multiple_of(BLOCK_BYTES) && (buffer.len() as u64).is_multiple_of(BLOCK_BYTES),
        "direct writes are aligned"
    );
    let len = buffer.len();
    let written = file
        .write_at(buffer, at)
        .await
        .map_err(glommio_err("write segment", path))?;
    if written != len {
        return Err(StorageError::Io {
            op: "write segment",
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short write: {written} of {len} bytes at {at}"),
            ),
        });
    }
    Ok(())
}

/// Raises a sync every `flush.ms` while the policy is periodic; ends when the log closes.
async fn interval_timer(engine: Weak<Engine>) {
    loop {
        let policy = match engine.upgrade() {
            Some(e) if !e.state.borrow().closing => e.state.borrow().config.flush,
            _ => return,
        };
        let sleep_ms = match policy {
            FlushPolicy::IntervalMs(ms) => ms.max(1),
            FlushPolicy::SyncBeforeAck => POLICY_POLL_MS,
        };
        glommio::timer::sleep(Duration::from_millis(sleep_ms)).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        if let FlushPolicy::IntervalMs(_) = policy {
            engine.state.borrow_mut().interval_sync_due = true;
            engine.flusher_wakeup.raise();
        }
    }
}
