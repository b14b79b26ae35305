//! Preallocation: the flusher extends a segment file ahead of its writes (`fallocate`).
//!
//! A direct write past the end of the file is serialized and waited for inside the submitting
//! syscall on ext4 and XFS, which would stall the reactor; writes inside the file's size run in
//! parallel. So the file is kept [`PREALLOCATE_BYTES`] ahead of the writes, less on a filling
//! device. Past the logical end the file holds zeros until written; sealing truncates them, and
//! recovery drops them as a torn tail.

use glommio::io::DmaFile;

use crate::engine::Engine;
use crate::segment::Segment;

/// The file is extended ahead of the writes by up to this much.
const PREALLOCATE_BYTES: u64 = 64 << 20;
/// On a filling device a partition extends its file by at most this share of the free space,
/// so that the space every partition claims ahead never fails appends while room is left.
const PREALLOCATE_FREE_SHARE: u64 = 64;

/// How far past the next write a file is extended, given the device's free bytes (unknown:
/// the most).
fn preallocate_ahead(free: Option<u64>) -> u64 {
    free.map_or(PREALLOCATE_BYTES, |free| {
        (free / PREALLOCATE_FREE_SHARE).min(PREALLOCATE_BYTES)
    })
}

/// The size the segment being written was extended to.
#[derive(Debug, Default)]
pub(crate) struct Preallocation {
    allocated: u64,
}

impl Preallocation {
    /// A file that already holds `size` bytes (written or preallocated before).
    pub(crate) fn of_size(size: u64) -> Preallocation {
        Preallocation { allocated: size }
    }

    /// Makes sure `file` (of `segment`) holds at least `needed` bytes, extending it ahead of the
    /// write at `from` when it does not. Never fails: where the filesystem cannot preallocate
    /// (or the device is full), writes extend the file as they go (slower), and fail with the
    /// device's error when it is full.
    pub(crate) async fn make_room(
        &mut self,
        engine: &Engine,
        segment: &Segment,
        file: &DmaFile,
        from: u64,
        needed: u64,
    ) {
        if needed <= self.allocated {
            return;
        }
        let segment_bytes = engine.state.borrow().config.segment_bytes;
        // A blocking syscall, but one that reads the superblock's counters, once per extension
        // (64 MiB of appends while the device has room); glommio has no asynchronous statvfs.
        let free = nix::sys::statvfs::statvfs(&engine.dir)
            .map(|st| st.blocks_available() * st.fragment_size())
            .ok();
        let mut target = (from + preallocate_ahead(free))
            .min(segment_bytes.max(needed))
            .max(needed);
        let mut result = file.pre_allocate(target, false).await;
        if result.is_err() && target > needed {
            target = needed;
            result = file.pre_allocate(target, false).await;
        }
        match result {
            Ok(()) => self.allocated = target,
            Err(error) => {
                let segment = segment.log_path();
                tracing::debug!(segment = %segment.display(), %error, "cannot preallocate");
                self.allocated = u64::MAX;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preallocation_shrinks_with_the_free_space() {
        assert_eq!(preallocate_ahead(None), PREALLOCATE_BYTES);
        assert_eq!(preallocate_ahead(Some(1 << 40)), PREALLOCATE_BYTES);
        // 272 MB free: 4.25 MB ahead, so six partitions claim 25 MB rather than 384 MiB.
        assert_eq!(preallocate_ahead(Some(272_000_000)), 4_250_000);
        assert_eq!(preallocate_ahead(Some(0)), 0);
    }
}
