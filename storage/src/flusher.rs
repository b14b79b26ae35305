//! The flusher: one task per partition that moves appended batches onto the device.
//!
//! Pending batches are copied into DMA buffers of [`WRITE_BYTES_MAX`] and written with aligned
//! writes, up to [`WRITES_IN_FLIGHT_MAX`] in flight at once (a pipeline, like a queue depth).
//! While writes are in flight, new appends accumulate and go out in the next whole-size writes:
//! that is the batching. Whole-size buffers are reused through a bounded per-shard pool. A
//! partial write (the data so far, its last block zero-padded) goes out only when the pipeline
//! is nearly idle, so light load still gets low latency. A padded write is a barrier: the next
//! write rewrites its last block with more data, so it waits for the padded one to complete
//! (overlapping direct writes have no order).
//!
//! Writes complete in any order; the written position advances over the completed prefix.
//!
//! Durability, when appenders wait for it (acks=all), comes from writes through an `O_DSYNC`
//! descriptor and from one `fdatasync` covering the plain writes before them (group commit); the
//! bookkeeping of which bytes are durable, and the `flush.ms` timer, are in `durability`. The
//! file is extended ahead of the writes by `preallocate`.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::{Either, LocalBoxFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use glommio::io::{DmaBuffer, DmaFile};

use crate::durability::{self, Durability};
use crate::engine::{Engine, Pending};
use crate::epochs;
use crate::error::StorageError;
use crate::fileio::{self, glommio_err, BLOCK_BYTES};
use crate::preallocate::Preallocation;
use crate::segment::Segment;

/// Bytes of one whole-size write.
const WRITE_BYTES_MAX: usize = 1 << 20;
/// Writes in flight at once (a queue depth).
const WRITES_IN_FLIGHT_MAX: usize = 16;
/// Partial writes go out only while fewer writes than this are in flight.
const PARTIAL_WRITES_IN_FLIGHT_MAX: usize = 2;
/// Whole-size write buffers a shard keeps for reuse.
const WRITE_BUFFERS_KEPT_MAX: usize = 2 * WRITES_IN_FLIGHT_MAX;
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
    glommio::spawn_local(Flusher::new(engine.clone()).run(done_tx)).detach();
    durability::start_interval_timer(engine);
}

/// A completion the flusher waits for.
enum Event {
    Wrote {
        seq: u64,
        buffer: Rc<DmaBuffer>,
        result: Result<(), StorageError>,
    },
    Synced {
        covered: i64,
        covered_bytes: u64,
        result: Result<(), StorageError>,
    },
}

/// A write in issue order.
struct WriteSlot {
    seq: u64,
    /// Written through the `O_DSYNC` descriptor: durable once complete.
    synced: bool,
    /// The logical position below which everything is on the device once this write and all
    /// before it completed.
    covers: u64,
    done: bool,
}

struct Flusher {
    engine: Rc<Engine>,
    /// The segment being written and its file.
    current: Option<Rc<Segment>>,
    file: Option<Rc<DmaFile>>,
    /// The same file opened with `O_DSYNC`, for writes appenders wait on for durability.
    dsync_file: Option<Rc<DmaFile>>,
    /// Which bytes of the current segment are durable.
    durability: Durability,
    /// Bytes taken but not yet in a whole-size write: the file's bytes from `carry_start`
    /// (block-aligned) to `carry_start + carry.len()`, the end of the taken batches.
    carry: Vec<u8>,
    carry_start: u64,
    /// The end of the data in issued writes.
    issued_end: u64,
    /// How far the file was extended ahead of the writes.
    preallocated: Preallocation,
    /// A padded write in flight: nothing overlapping its last block may be issued.
    barrier: Option<u64>,
    writes: VecDeque<WriteSlot>,
    next_seq: u64,
    /// Taken batches whose bytes are not all on the device yet, with their end positions.
    staged: VecDeque<(u64, Pending)>,
    sync_in_flight: bool,
    events: FuturesUnordered<LocalBoxFuture<'static, Event>>,
}

impl Flusher {
    fn new(engine: Rc<Engine>) -> Flusher {
        Flusher {
            engine,
            current: None,
            file: None,
            dsync_file: None,
            durability: Durability::default(),
            carry: Vec::new(),
            carry_start: 0,
            issued_end: 0,
            preallocated: Preallocation::default(),
            barrier: None,
            writes: VecDeque::new(),
            next_seq: 0,
            staged: VecDeque::new(),
            sync_in_flight: false,
            events: FuturesUnordered::new(),
        }
    }

    fn staged_end(&self) -> u64 {
        self.carry_start + self.carry.len() as u64
    }

    /// Taken bytes that no issued write covers.
    fn unissued(&self) -> bool {
        self.staged_end() > self.issued_end
    }

    async fn run(mut self, done: oneshot::Sender<Result<(), StorageError>>) {
        let mut result = self.run_loop().await;
        if let Err(error) = &result {
            let staged: Vec<Pending> = self.staged.drain(..).map(|(_, batch)| batch).collect();
            self.engine.fail(error, &staged);
            // Let in-flight I/O finish before the buffers and the file go away.
            while self.events.next().await.is_some() {}
        }
        if result.is_ok() {
            result = self.finish().await;
        }
        let _ = done.send(result);
    }

    async fn run_loop(&mut self) -> Result<(), StorageError> {
        loop {
            self.issue().await?;
            self.maybe_start_sync();
            if self.events.is_empty() {
                let (pending, closing) = {
                    let st = self.engine.state.borrow();
                    (!st.pending.is_empty(), st.closing)
                };
                if !pending && !self.unissued() {
                    // A cache changed by retention, with no write to carry it.
                    if self.store_epochs().await? {
                        continue;
                    }
                    if closing {
                        return Ok(());
                    }
                    self.engine.flusher_wakeup.wait().await;
                }
                continue;
            }
            let event = {
                let next = self.events.next();
                let wakeup = self.engine.flusher_wakeup.wait();
                futures::pin_mut!(next, wakeup);
                match futures::future::select(next, wakeup).await {
                    Either::Left((event, _)) => event,
                    Either::Right(((), _)) => None,
                }
            };
            if let Some(event) = event {
                self.handle(event)?;
            }
        }
    }

    /// Issues as many writes as the pipeline allows.
    async fn issue(&mut self) -> Result<(), StorageError> {
        while self.barrier.is_none() && self.writes.len() < WRITES_IN_FLIGHT_MAX {
            let front = self
                .engine
                .state
                .borrow()
                .pending
                .front()
                .map(|p| p.segment.clone());
            match front {
                Some(segment) if self.is_current(&segment) => {
                    self.extend_file(&segment).await;
                    // From here to the take nothing awaits: the stored cache covers every
                    // batch taken.
                    self.store_epochs().await?;
                    let pending_bytes = self.engine.state.borrow().pending_bytes;
                    let whole = self.carry.len() + pending_bytes >= WRITE_BYTES_MAX;
                    let partial_allowed = self.writes.len() < PARTIAL_WRITES_IN_FLIGHT_MAX;
                    if !whole && !partial_allowed {
                        return Ok(());
                    }
                    let taken = self.take(&segment, WRITE_BYTES_MAX);
                    let have = self.carry.len() + taken.iter().map(Bytes::len).sum::<usize>();
                    if have >= WRITE_BYTES_MAX {
                        self.issue_whole(&taken);
                    } else if partial_allowed {
                        self.issue_partial(&taken);
                    } else {
                        // The rest of the pending bytes belong to the next segment.
                        taken.iter().for_each(|b| self.carry.extend_from_slice(b));
                        return Ok(());
                    }
                }
                Some(segment) => {
                    if !self.ready_to_switch() {
                        return Ok(());
                    }
                    self.switch_to(&segment).await?;
                }
                None => {
                    if self.unissued() && self.writes.len() < PARTIAL_WRITES_IN_FLIGHT_MAX {
                        self.issue_partial(&[]);
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Stores the leader-epoch cache while an append (or retention) has changed it; answers
    /// whether it stored anything. Returns with the stored file current.
    async fn store_epochs(&mut self) -> Result<bool, StorageError> {
        let mut stored = false;
        loop {
            let bytes = {
                let mut st = self.engine.state.borrow_mut();
                if !st.epochs_unstored {
                    return Ok(stored);
                }
                st.epochs_unstored = false;
                st.epochs.encode()
            };
            epochs::store(&self.engine.dir, bytes).await?;
            stored = true;
        }
    }

    fn is_current(&self, segment: &Rc<Segment>) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| Rc::ptr_eq(c, segment))
    }

    /// Whether the segment being written is drained (all its bytes issued, nothing in flight), so
    /// that it can be sealed. Issues its last partial write when that is what is missing.
    fn ready_to_switch(&mut self) -> bool {
        if self.current.is_some() && self.unissued() && self.writes.is_empty() {
            self.issue_partial(&[]);
        }
        !self.unissued() && self.events.is_empty()
    }

    /// Makes `segment` the one being written, sealing the previous one (no batch goes to it
    /// any more: pending batches are in segment order).
    async fn switch_to(&mut self, segment: &Rc<Segment>) -> Result<(), StorageError> {
        if let Some(previous) = self.current.take() {
            previous.seal_in_background().await?;
            let written_end = self.engine.state.borrow().written_end;
            self.engine.on_durable(written_end);
        }
        let path = segment.log_path();
        let fresh = segment.written.get() == 0;
        let file = segment.file().await?;
        if fresh {
            fileio::sync_dir(&self.engine.dir).await?;
        }
        assert!(
            BLOCK_BYTES.is_multiple_of(file.alignment()),
            "the device block divides 4096"
        );
        let written = segment.written.get();
        self.carry_start = align_down(written);
        self.carry = if written > self.carry_start {
            let len = (written - self.carry_start) as usize;
            fileio::read_exact_at(&file, &path, self.carry_start, len).await?
        } else {
            Vec::new()
        };
        self.issued_end = written;
        // What the segment already holds is synced: recovery syncs the tail it checked, a clean
        // shutdown synced it, and a sealed segment was synced when it was sealed.
        self.durability = Durability::starting_at(written);
        self.dsync_file = Some(Rc::new(fileio::open_dma_dsync(&path).await?));
        let size = file
            .file_size()
            .await
            .map_err(glommio_err("stat segment", &path))?;
        self.preallocated = Preallocation::of_size(size);
        self.file = Some(file);
        self.current = Some(segment.clone());
        Ok(())
    }

    /// Makes room in the file for the next write (see `preallocate`).
    async fn extend_file(&mut self, segment: &Segment) {
        let file = self.file.clone().expect("switch_to opened the file");
        let needed = self.carry_start + 2 * WRITE_BYTES_MAX as u64;
        self.preallocated
            .make_room(&self.engine, segment, &file, self.carry_start, needed)
            .await;
    }

    /// Moves pending batches of `segment` into the staged list until the carry and the taken
    /// batches reach `want` bytes (at least one batch when any is pending). Returns them.
    fn take(&mut self, segment: &Rc<Segment>, want: usize) -> Vec<Bytes> {
        let mut taken = Vec::new();
        let mut have = self.carry.len();
        let mut end = self.staged_end();
        let mut st = self.engine.state.borrow_mut();
        while have < want
            && st
                .pending
                .front()
                .is_some_and(|p| Rc::ptr_eq(&p.segment, segment))
        {
            let batch = st.take_pending().expect("a pending batch");
            have += batch.bytes.len();
            end += batch.bytes.len() as u64;
            taken.push(batch.bytes.clone());
            self.staged.push_back((end, batch));
        }
        drop(st);
        assert!(
            end <= segment.size.get(),
            "never stage past the logical size"
        );
        taken
    }

    /// Issues one whole-size write: the carry, then pending batches; what is left of the last
    /// batch becomes the carry.
    fn issue_whole(&mut self, taken: &[Bytes]) {
        let mut buffer = self.write_buffer();
        let dst = buffer.as_bytes_mut();
        assert_eq!(dst.len(), WRITE_BYTES_MAX, "whole-size buffers");
        let mut filled = self.carry.len().min(WRITE_BYTES_MAX);
        dst[..filled].copy_from_slice(&self.carry[..filled]);
        let mut rest = self.carry.split_off(filled);
        for bytes in taken {
            let n = bytes.len().min(WRITE_BYTES_MAX - filled);
            dst[filled..filled + n].copy_from_slice(&bytes[..n]);
            filled += n;
            rest.extend_from_slice(&bytes[n..]);
        }
        assert_eq!(filled, WRITE_BYTES_MAX, "a whole write is full");
        let at = self.carry_start;
        self.carry = rest;
        self.carry_start += WRITE_BYTES_MAX as u64;
        self.issue_write(buffer, at, at + WRITE_BYTES_MAX as u64);
    }

    /// Writes the carry and `taken`, zero-padded to a block; keeps the partial last block as
    /// the new carry.
    fn issue_partial(&mut self, taken: &[Bytes]) {
        let len = self.carry.len() + taken.iter().map(Bytes::len).sum::<usize>();
        let end = self.carry_start + len as u64;
        let file = self.file.clone().expect("writes go to an open segment");
        let mut buffer = file.alloc_dma_buffer(align_up(len as u64) as usize);
        let dst = buffer.as_bytes_mut();
        let mut filled = 0;
        for bytes in std::iter::once(&self.carry[..]).chain(taken.iter().map(|b| &b[..])) {
            dst[filled..filled + bytes.len()].copy_from_slice(bytes);
            filled += bytes.len();
        }
        assert!(
            self.staged.back().is_none_or(|(e, _)| *e == end) || taken.is_empty(),
            "the taken batches end at the staged end"
        );
        dst[len..].fill(0);
        let keep_from = (align_down(end) - self.carry_start) as usize;
        self.carry = dst[keep_from..len].to_vec();
        let at = self.carry_start;
        self.carry_start = align_down(end);
        let seq = self.issue_write(buffer, at, end);
        if !self.carry.is_empty() {
            self.barrier = Some(seq);
        }
    }

    /// A whole-size buffer from the shard's pool, or a new one.
    fn write_buffer(&self) -> DmaBuffer {
        let kept = self.engine.shard.state.borrow_mut().write_buffers.pop();
        kept.unwrap_or_else(|| {
            self.file
                .as_ref()
                .expect("an open segment")
                .alloc_dma_buffer(WRITE_BYTES_MAX)
        })
    }

    fn issue_write(&mut self, buffer: DmaBuffer, at: u64, covers: u64) -> u64 {
        assert!(covers > self.issued_end, "writes move forward");
        let seq = self.next_seq;
        self.next_seq += 1;
        self.issued_end = covers;
        let synced = self.engine.state.borrow().durability_awaited();
        self.writes.push_back(WriteSlot {
            seq,
            synced,
            covers,
            done: false,
        });
        let file = if synced {
            self.engine.shard.state.borrow_mut().synced_writes += 1;
            self.dsync_file.clone()
        } else {
            self.file.clone()
        };
        let file = file.expect("writes go to an open segment");
        let path = self
            .current
            .as_ref()
            .expect("writes go to a segment")
            .log_path();
        let buffer = Rc::new(buffer);
        self.events.push(Box::pin(async move {
            let result = fileio::write_all_at(&file, &path, buffer.clone(), at).await;
            Event::Wrote {
                seq,
                buffer,
                result,
            }
        }));
        seq
    }

    fn maybe_start_sync(&mut self) {
        if self.sync_in_flight || !self.engine.state.borrow().sync_wanted() {
            return;
        }
        let covered = {
            let mut st = self.engine.state.borrow_mut();
            st.interval_sync_due = false;
            st.written_end
        };
        let Some((file, segment)) = self.file.clone().zip(self.current.clone()) else {
            // Everything written so far was synced when its segment was sealed.
            self.engine.on_durable(covered);
            return;
        };
        let covered_bytes = segment.written.get();
        self.sync_in_flight = true;
        self.engine.shard.state.borrow_mut().segment_syncs += 1;
        self.events.push(Box::pin(async move {
            let path = segment.log_path();
            let result = file
                .fdatasync()
                .await
                .map_err(glommio_err("sync segment", &path));
            Event::Synced {
                covered,
                covered_bytes,
                result,
            }
        }));
    }

    fn handle(&mut self, event: Event) -> Result<(), StorageError> {
        match event {
            Event::Wrote {
                seq,
                buffer,
                result,
            } => {
                self.keep_buffer(buffer);
                result?;
                self.complete_write(seq);
            }
            Event::Synced {
                covered,
                covered_bytes,
                result,
            } => {
                result?;
                self.sync_in_flight = false;
                // Segments switch only with no I/O in flight: this is the current one's sync.
                self.durability.synced(covered_bytes);
                self.engine.on_durable(covered);
                self.advance_durable();
            }
        }
        Ok(())
    }

    fn keep_buffer(&self, buffer: Rc<DmaBuffer>) {
        let Ok(buffer) = Rc::try_unwrap(buffer) else {
            return;
        };
        let mut shard = self.engine.shard.state.borrow_mut();
        if buffer.len() == WRITE_BYTES_MAX && shard.write_buffers.len() < WRITE_BUFFERS_KEPT_MAX {
            shard.write_buffers.push(buffer);
        }
    }

    /// Marks a write done and moves the written position over the completed prefix.
    fn complete_write(&mut self, seq: u64) {
        if self.barrier == Some(seq) {
            self.barrier = None;
        }
        let slot = self
            .writes
            .iter_mut()
            .find(|w| w.seq == seq)
            .expect("a write in flight");
        slot.done = true;
        let segment = self.current.clone().expect("writes go to a segment");
        while self.writes.front().is_some_and(|w| w.done) {
            let slot = self.writes.pop_front().expect("front");
            let start = segment.written.get();
            self.durability.joined(start, slot.synced);
            if slot.covers > start {
                segment.written.set(slot.covers);
            }
        }
        let written = segment.written.get();
        let mut now_written = Vec::new();
        while self.staged.front().is_some_and(|(end, _)| *end <= written) {
            now_written.extend(self.staged.pop_front().map(|(_, batch)| batch));
        }
        self.engine.on_written(&now_written);
        self.advance_durable();
    }

    /// Tells the engine when every written byte of the current segment is durable.
    fn advance_durable(&mut self) {
        let Some(segment) = self.current.as_ref() else {
            return;
        };
        if self.durability.all_durable(segment.written.get()) {
            let written_end = self.engine.state.borrow().written_end;
            self.engine.on_durable(written_end);
        }
    }

    /// The log is closing and everything is written: seal the segment being written (truncate
    /// the padding, sync, store its indexes).
    async fn finish(&mut self) -> Result<(), StorageError> {
        assert!(
            self.events.is_empty() && self.staged.is_empty(),
            "the flusher finishes drained"
        );
        if let Some(segment) = self.current.take() {
            segment.seal().await?;
        }
        let written_end = self.engine.state.borrow().written_end;
        self.engine.on_durable(written_end);
        self.file = None;
        self.dsync_file = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers() {
        assert_eq!(align_down(4095), 0);
        assert_eq!(align_down(4096), 4096);
    }
}
