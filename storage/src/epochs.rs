//! The leader-epoch cache: for each leader epoch that wrote into the log, the offset of its
//! first batch, kept beside the segments in Kafka's `leader-epoch-checkpoint` text format.
//!
//! It answers OffsetForLeaderEpoch ("where does epoch E end in your log?"), by which a follower
//! or a consumer that followed an older leader finds the point where its log and the leader's
//! agree, and truncates to it.
//!
//! Crash safety comes from order: an append that starts a new epoch updates the cache in memory
//! at once, and the flusher stores the file (written whole, synced, renamed, directory synced)
//! before it issues a write holding any byte of that batch. So every batch on the device is
//! covered by the stored file; entries the file holds past the recovered end (the batch was torn
//! away by the crash) are dropped when the log opens.

use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::fileio;

/// The file's name, as in Kafka.
pub(crate) const EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// The format version on the file's first line.
const FORMAT_VERSION: u32 = 0;
/// Kafka's "no epoch" and "no offset" in an OffsetForLeaderEpoch answer.
pub(crate) const UNDEFINED: (i32, i64) = (-1, -1);

/// Epochs and their start offsets, both strictly ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// The newest epoch and its start offset.
    pub fn latest(&self) -> Option<(i32, i64)> {
        self.entries.last().copied()
    }

    /// Records that `epoch` wrote its first batch at `offset`. Entries it contradicts (an epoch
    /// at or above it, or a start at or past its start) go: an append at `offset` replaces what
    /// followed. Answers whether anything changed; negative epochs or offsets change nothing.
    pub fn assign(&mut self, epoch: i32, offset: i64) -> bool {
        if epoch < 0 || offset < 0 {
            return false;
        }
        if let Some((latest, start)) = self.latest() {
            if latest == epoch && start <= offset {
                return false;
            }
        }
        self.entries.retain(|&(e, s)| e < epoch && s < offset);
        self.entries.push((epoch, offset));
        true
    }

    /// The epoch that wrote `offset`: the newest one starting at or before it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        let after = self.entries.partition_point(|&(_, s)| s <= offset);
        after.checked_sub(1).map(|i| self.entries[i].0)
    }

    /// The log was cut at `end`: epochs that start at or past it go.
    pub fn truncate_from_end(&mut self, end: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, s)| s < end);
        self.entries.len() != before
    }

    /// The log now starts at `start`: the epoch holding it is moved to start there, those
    /// wholly before it go.
    pub fn truncate_from_start(&mut self, start: i64) -> bool {
        let holding = self.entries.partition_point(|&(_, s)| s <= start);
        let Some(first_kept) = holding.checked_sub(1) else {
            return false;
        };
        let changed = first_kept > 0 || self.entries[first_kept].1 != start;
        self.entries.drain(..first_kept);
        self.entries[0].1 = start;
        changed
    }

    /// Kafka's OffsetForLeaderEpoch answer for `epoch` in a log ending at `log_end`: the largest
    /// epoch at or below it that this log holds, and the offset where that epoch's records end
    /// (the start of the next epoch, or `log_end` for the newest). An epoch newer than every
    /// one here, or "no epoch" (-1), is [`UNDEFINED`]. An epoch older than every one here is
    /// answered with itself and the first epoch's start (everything before it is gone).
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        if epoch < 0 {
            return UNDEFINED;
        }
        if self.latest().is_some_and(|(latest, _)| latest == epoch) {
            return (epoch, log_end);
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= epoch);
        let Some(&(_, higher_start)) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1) {
            Some(floor) => (self.entries[floor].0, higher_start),
            None => (epoch, higher_start),
        }
    }

    /// Kafka's text format: the version, the entry count, then one `epoch offset` line each.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{FORMAT_VERSION}\n{}\n", self.entries.len());
        for (epoch, offset) in &self.entries {
            out.push_str(&format!("{epoch} {offset}\n"));
        }
        out.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<EpochCache, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        // Written whole and renamed into place, the file always ends a line; a cut one may not.
        if !text.ends_with('\n') {
            return Err("does not end with a line end".to_string());
        }
        let mut lines = text.lines();
        let version = lines.next().ok_or("empty")?;
        if version.trim() != FORMAT_VERSION.to_string() {
            return Err(format!("unknown version {version:?}"));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("no entry count")?;
        let mut cache = EpochCache::default();
        for i in 0..count {
            let line = lines
                .next()
                .ok_or(format!("{count} entries named, {i} found"))?;
            let mut fields = line.split_whitespace().map(str::parse::<i64>);
            let (Some(Ok(epoch)), Some(Ok(offset)), None) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("entry {i} is not `epoch offset`: {line:?}"));
            };
            let epoch = i32::try_from(epoch).map_err(|_| format!("epoch {epoch} out of range"))?;
            let ascending = cache.latest().is_none_or(|(e, s)| e < epoch && s < offset);
            if epoch < 0 || offset < 0 || !ascending {
                return Err(format!("entry {i} ({epoch} {offset}) is out of order"));
            }
            cache.entries.push((epoch, offset));
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err("lines after the last entry".to_string());
        }
        Ok(cache)
    }
}

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(EPOCH_FILE)
}

/// Reads the stored cache; `None` when there is no file (a log from before epochs were kept).
/// A file that cannot be read as one is an error: answering OffsetForLeaderEpoch from a guess
/// could make a follower keep records the leader does not have.
pub(crate) async fn read(dir: &Path) -> Result<Option<EpochCache>, StorageError> {
    let path = path(dir);
    let Some(bytes) = fileio::read_optional("read leader epochs", &path).await? else {
        return Ok(None);
    };
    EpochCache::decode(&bytes)
        .map(Some)
        .map_err(|reason| StorageError::Corrupt { path, reason })
}

/// Stores `bytes` (an encoded cache) crash-safely: the new file is synced, renamed over the old
/// one and the directory synced, so it is on the device before any write issued after it.
pub(crate) async fn store(dir: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
    fileio::write_file_atomic(&path(dir), bytes).await?;
    fileio::sync_dir(dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        EpochCache {
            entries: entries.to_vec(),
        }
    }

    #[test]
    fn assign_keeps_epochs_and_offsets_ascending() {
        let mut c = EpochCache::default();
        assert!(c.assign(0, 0));
        assert!(!c.assign(0, 5), "the same epoch later changes nothing");
        assert!(c.assign(2, 10));
        assert!(!c.assign(-1, 12), "no epoch");
        assert_eq!(c.entries(), &[(0, 0), (2, 10)]);
        // A follower that truncated and appends the leader's epoch 1 at 7 replaces epoch 2.
        assert!(c.assign(1, 7));
        assert_eq!(c.entries(), &[(0, 0), (1, 7)]);
        // The same epoch starting earlier moves its start.
        assert!(c.assign(1, 4));
        assert_eq!(c.entries(), &[(0, 0), (1, 4)]);
    }

    #[test]
    fn end_offset_for_answers_as_kafka_does() {
        let c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(
            c.end_offset_for(4, 30),
            (4, 30),
            "the newest ends at the log end"
        );
        assert_eq!(c.end_offset_for(3, 30), (3, 25));
        assert_eq!(
            c.end_offset_for(2, 30),
            (1, 10),
            "an epoch that never wrote: its floor"
        );
        assert_eq!(c.end_offset_for(1, 30), (1, 10));
        assert_eq!(
            c.end_offset_for(0, 30),
            (0, 0),
            "older than all: the first start"
        );
        assert_eq!(c.end_offset_for(5, 30), UNDEFINED, "newer than all");
        assert_eq!(c.end_offset_for(-1, 30), UNDEFINED);
        assert_eq!(EpochCache::default().end_offset_for(0, 0), UNDEFINED);
        let at: Vec<_> = [0, 9, 10, 24, 25, 99].map(|o| c.epoch_at(o)).to_vec();
        assert_eq!(at, [Some(1), Some(1), Some(3), Some(3), Some(4), Some(4)]);
        assert_eq!(cache(&[(2, 5)]).epoch_at(4), None);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert!(c.truncate_from_end(25));
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
        assert!(!c.truncate_from_end(26));
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries(), &[(3, 12)]);
        assert!(!c.truncate_from_start(12));
        assert!(
            !c.truncate_from_start(5),
            "a start before every epoch changes nothing"
        );
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(c.truncate_from_start(10));
        assert_eq!(c.entries(), &[(3, 10)]);
    }

    #[test]
    fn the_file_format_round_trips_and_refuses_damage() {
        let c = cache(&[(0, 0), (2, 17), (5, 900)]);
        let bytes = c.encode();
        assert_eq!(bytes, b"0\n3\n0 0\n2 17\n5 900\n");
        assert_eq!(EpochCache::decode(&bytes), Ok(c));
        assert_eq!(EpochCache::decode(b"0\n0\n"), Ok(EpochCache::default()));
        for bad in [
            &b""[..],
            b"1\n0\n",
            b"0\n",
            b"0\n2\n0 0\n",
            b"0\n1\n0\n",
            b"0\n1\n0 0 0\n",
            b"0\n2\n3 0\n2 5\n",
            b"0\n2\n0 5\n1 5\n",
            b"0\n1\n-1 0\n",
            b"0\n1\n0 0\n1 1\n",
            b"0\n1\n99999999999 0\n",
            b"\xff",
        ] {
            assert!(EpochCache::decode(bad).is_err(), "{bad:?}");
        }
        // No truncated prefix passes for a file.
        for cut in 0..bytes.len() {
            if let Ok(decoded) = EpochCache::decode(&bytes[..cut]) {
                panic!("prefix {cut} decoded as {decoded:?}");
            }
        }
    }
}
