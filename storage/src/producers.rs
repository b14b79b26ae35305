//! Idempotent producers: per log, the epoch and the last few batches of every producer id, so a
//! retried batch is recognised and answered with its first offsets instead of being stored twice,
//! and a gap or a fenced epoch is refused.
//!
//! The rules are Kafka's (`ProducerStateManager`): a batch of a known producer and epoch must
//! continue its sequence (`last + 1`, wrapping after `i32::MAX`); a higher epoch starts again at
//! sequence 0; a lower epoch is fenced. A producer the log does not know (new, or expired) may
//! start at any sequence. A batch equal to one of the producer's last [`BATCHES_KEPT`] batches
//! (same epoch, first and last sequence) is a duplicate.
//!
//! The state survives restarts through snapshot files (`<offset, 20 digits>.snapshot`, this
//! crate's own format with a CRC32C) written at every segment roll and at a clean close, and a
//! walk of the batch headers stored after the newest usable snapshot.

use std::collections::{HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::segment::BatchMeta;
use crate::types::ProducerId;

/// Batches remembered per producer (Kafka's bound, which is also the most in flight that
/// idempotent producers allow per connection).
pub(crate) const BATCHES_KEPT: usize = 5;
/// Snapshot files kept per log.
pub(crate) const SNAPSHOTS_KEPT: usize = 2;
pub(crate) const SNAPSHOT_SUFFIX: &str = ".snapshot";

const SNAPSHOT_MAGIC: &[u8; 4] = b"ODPS";
const SNAPSHOT_VERSION: u16 = 1;

/// One stored batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProducerBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp as stored (the append time under LogAppendTime).
    pub timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    /// Oldest first, at most [`BATCHES_KEPT`].
    recent: VecDeque<ProducerBatch>,
    /// Wall clock of the last append, for expiry.
    last_append_ms: i64,
}

/// The producer fields of one batch header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub producer_id: ProducerId,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
}

impl Stamp {
    /// `None` for a batch without a producer id (not idempotent).
    pub fn of(header: &BatchHeader<'_>) -> Option<Stamp> {
        (header.producer_id() >= 0).then(|| Stamp {
            producer_id: ProducerId(header.producer_id()),
            epoch: header.producer_epoch(),
            first_seq: header.base_sequence(),
            last_seq: add_sequence(header.base_sequence(), header.last_offset_delta()),
        })
    }
}

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0. Never overflows, whatever
/// a damaged header holds (validated batches have `0 <= delta`).
fn add_sequence(seq: i32, delta: i32) -> i32 {
    let sum = i64::from(seq) + i64::from(delta);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

fn follows(last: i32, next: i32) -> bool {
    next == add_sequence(last, 1)
}

/// Why a batch's producer fields were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id}: sequence {got} does not follow {last} (epoch {epoch})")]
    OutOfOrder {
        producer_id: ProducerId,
        epoch: i16,
        last: i32,
        got: i32,
    },
    #[error("producer {producer_id}: a new epoch {epoch} must start at sequence 0, not {got}")]
    NewEpochNotAtZero {
        producer_id: ProducerId,
        epoch: i16,
        got: i32,
    },
    #[error("producer {producer_id}: epoch {got} is older than the current {current}")]
    StaleEpoch {
        producer_id: ProducerId,
        current: i16,
        got: i32,
    },
}

/// What a set of batches is, as far as their producers go.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// New batches: store them.
    Append,
    /// A retry of a stored batch: answer with its offsets, store nothing.
    Duplicate(ProducerBatch),
}

#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerStates {
    entries: HashMap<ProducerId, Entry>,
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Checks the producer fields of one append's batches in order, without changing anything.
    /// A duplicate anywhere makes the whole set the duplicate (Kafka's rule; producers send one
    /// batch per partition per request).
    pub fn check(&self, stamps: &[Stamp]) -> Result<Verdict, SequenceError> {
        // (producer, epoch, last sequence) of earlier batches of this same set.
        let mut seen: Vec<(ProducerId, i16, i32)> = Vec::new();
        for stamp in stamps {
            let earlier = seen.iter().rev().find(|s| s.0 == stamp.producer_id);
            let entry = self.entries.get(&stamp.producer_id);
            if earlier.is_none() {
                if let Some(dup) = entry.and_then(|e| e.duplicate_of(stamp)) {
                    return Ok(Verdict::Duplicate(dup));
                }
            }
            let current = earlier
                .map(|&(_, epoch, last)| (epoch, Some(last)))
                .or_else(|| entry.map(|e| (e.epoch, e.recent.back().map(|b| b.last_seq))));
            if let Some((epoch, last)) = current {
                check_one(stamp, epoch, last)?;
            }
            seen.push((stamp.producer_id, stamp.epoch, stamp.last_seq));
        }
        Ok(Verdict::Append)
    }

    /// Records a stored batch (offsets assigned) if it has a producer id; its producer counts as
    /// active at `active_ms`.
    pub fn record_stored(&mut self, meta: &BatchMeta, active_ms: i64) {
        if let Some(stamp) = &meta.stamp {
            let batch = ProducerBatch {
                first_seq: stamp.first_seq,
                last_seq: stamp.last_seq,
                base_offset: meta.base_offset,
                last_offset: meta.last_offset,
                timestamp: meta.max_timestamp,
            };
            self.record(stamp, batch, active_ms);
        }
    }

    /// Records a batch of `stamp`'s producer.
    fn record(&mut self, stamp: &Stamp, batch: ProducerBatch, now_ms: i64) {
        let entry = self.entries.entry(stamp.producer_id).or_insert(Entry {
            epoch: stamp.epoch,
            recent: VecDeque::new(),
            last_append_ms: now_ms,
        });
        if stamp.epoch != entry.epoch {
            entry.epoch = stamp.epoch;
            entry.recent.clear();
        }
        if entry.recent.len() == BATCHES_KEPT {
            entry.recent.pop_front();
        }
        entry.recent.push_back(batch);
        entry.last_append_ms = entry.last_append_ms.max(now_ms);
    }

    /// Forgets producers that have not appended since `cutoff_ms` (Kafka's
    /// `producer.id.expiration.ms`). Returns how many were forgotten.
    pub fn expire(&mut self, cutoff_ms: i64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.last_append_ms >= cutoff_ms);
        before - self.entries.len()
    }

    /// The snapshot file contents for the state as of `offset` (everything below it applied).
    pub fn encode(&self, offset: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + self.entries.len() * 64);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.entries.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.entries[&id];
            out.extend_from_slice(&id.0.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_append_ms.to_be_bytes());
            out.push(e.recent.len() as u8);
            for b in &e.recent {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a snapshot: its offset and state, or why it cannot be used.
    pub fn decode(bytes: &[u8]) -> Result<(i64, ProducerStates), &'static str> {
        let body_len = bytes.len().checked_sub(4).ok_or("shorter than a CRC")?;
        let (body, crc) = bytes.split_at(body_len);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().expect("4 bytes")) {
            return Err("CRC32C mismatch");
        }
        let mut r = Reader(body);
        if r.take(4)? != SNAPSHOT_MAGIC {
            return Err("not a producer snapshot");
        }
        if r.u16()? != SNAPSHOT_VERSION {
            return Err("unknown snapshot version");
        }
        let offset = r.i64()?;
        let count = r.u32()?;
        let mut entries = HashMap::new();
        for _ in 0..count {
            let id = ProducerId(r.i64()?);
            let epoch = r.i16()?;
            let last_append_ms = r.i64()?;
            let n = r.take(1)?[0] as usize;
            if n > BATCHES_KEPT {
                return Err("too many batches for one producer");
            }
            let mut recent = VecDeque::with_capacity(n);
            for _ in 0..n {
                recent.push_back(ProducerBatch {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    base_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            entries.insert(
                id,
                Entry {
                    epoch,
                    recent,
                    last_append_ms,
                },
            );
        }
        if !r.0.is_empty() {
            return Err("trailing bytes");
        }
        Ok((offset, ProducerStates { entries }))
    }
}

impl Entry {
    fn duplicate_of(&self, stamp: &Stamp) -> Option<ProducerBatch> {
        if stamp.epoch != self.epoch {
            return None;
        }
        self.recent
            .iter()
            .find(|b| b.first_seq == stamp.first_seq && b.last_seq == stamp.last_seq)
            .copied()
    }
}

/// One batch against its producer's current epoch and last sequence (`None`: no batch kept).
fn check_one(stamp: &Stamp, epoch: i16, last: Option<i32>) -> Result<(), SequenceError> {
    if stamp.epoch < epoch {
        return Err(SequenceError::StaleEpoch {
            producer_id: stamp.producer_id,
            current: epoch,
            got: i32::from(stamp.epoch),
        });
    }
    if stamp.epoch > epoch {
        if stamp.first_seq != 0 {
            return Err(SequenceError::NewEpochNotAtZero {
                producer_id: stamp.producer_id,
                epoch: stamp.epoch,
                got: stamp.first_seq,
            });
        }
        return Ok(());
    }
    match last {
        Some(last) if !follows(last, stamp.first_seq) => Err(SequenceError::OutOfOrder {
            producer_id: stamp.producer_id,
            epoch,
            last,
            got: stamp.first_seq,
        }),
        _ => Ok(()),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn i16(&mut self) -> Result<i16, &'static str> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i32(&mut self) -> Result<i32, &'static str> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i64(&mut self) -> Result<i64, &'static str> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
}

/// The snapshot file name for `offset`.
pub(crate) fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}{SNAPSHOT_SUFFIX}")
}

/// The offset a snapshot file name stands for.
pub(crate) fn snapshot_offset(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    (stem.len() == 20).then(|| stem.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(id: i64, epoch: i16, first: i32, count: i32) -> Stamp {
        Stamp {
            producer_id: ProducerId(id),
            epoch,
            first_seq: first,
            last_seq: add_sequence(first, count - 1),
        }
    }

    fn stored(states: &mut ProducerStates, s: Stamp, base: i64) -> ProducerBatch {
        let count = i64::from(s.last_seq.wrapping_sub(s.first_seq)) + 1;
        let batch = ProducerBatch {
            first_seq: s.first_seq,
            last_seq: s.last_seq,
            base_offset: base,
            last_offset: base + count - 1,
            timestamp: 7,
        };
        states.record(&s, batch, 1000);
        batch
    }

    #[test]
    fn a_new_producer_may_start_anywhere_then_must_follow() {
        let mut p = ProducerStates::default();
        assert_eq!(p.check(&[stamp(1, 0, 42, 3)]), Ok(Verdict::Append));
        stored(&mut p, stamp(1, 0, 42, 3), 0);
        assert_eq!(p.check(&[stamp(1, 0, 45, 1)]), Ok(Verdict::Append));
        assert!(matches!(
            p.check(&[stamp(1, 0, 46, 1)]),
            Err(SequenceError::OutOfOrder {
                last: 44,
                got: 46,
                ..
            })
        ));
        assert!(matches!(
            p.check(&[stamp(1, 0, 44, 1)]),
            Err(SequenceError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn a_retry_of_any_of_the_last_five_is_a_duplicate() {
        let mut p = ProducerStates::default();
        let mut kept = Vec::new();
        for i in 0..7 {
            kept.push(stored(&mut p, stamp(9, 2, i * 10, 10), i64::from(i) * 10));
        }
        for (i, batch) in kept.iter().enumerate() {
            let verdict = p.check(&[stamp(9, 2, i as i32 * 10, 10)]);
            if i < 2 {
                assert!(verdict.is_err(), "batch {i} is no longer remembered");
            } else {
                assert_eq!(verdict, Ok(Verdict::Duplicate(*batch)), "batch {i}");
            }
        }
        // Same first sequence, other length: not the same batch.
        assert!(p.check(&[stamp(9, 2, 60, 3)]).is_err());
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut p = ProducerStates::default();
        stored(&mut p, stamp(5, 3, 0, 4), 0);
        assert!(matches!(
            p.check(&[stamp(5, 2, 4, 1)]),
            Err(SequenceError::StaleEpoch { current: 3, .. })
        ));
        assert!(matches!(
            p.check(&[stamp(5, 4, 4, 1)]),
            Err(SequenceError::NewEpochNotAtZero { .. })
        ));
        assert_eq!(p.check(&[stamp(5, 4, 0, 1)]), Ok(Verdict::Append));
        stored(&mut p, stamp(5, 4, 0, 1), 4);
        // The old epoch's batches are no longer duplicates: they are fenced.
        assert!(p.check(&[stamp(5, 3, 0, 4)]).is_err());
    }

    #[test]
    fn sequences_wrap_after_the_largest_int() {
        let mut p = ProducerStates::default();
        let s = stamp(1, 0, i32::MAX - 1, 2);
        assert_eq!(s.last_seq, i32::MAX);
        stored(&mut p, s, 0);
        assert_eq!(p.check(&[stamp(1, 0, 0, 1)]), Ok(Verdict::Append));
        assert_eq!(add_sequence(i32::MAX - 1, 3), 1);
        // Damaged headers (recovery walks stored ones) must not overflow.
        assert_eq!(add_sequence(i32::MIN, -1), i32::MAX);
        assert_eq!(add_sequence(i32::MAX, i32::MAX), i32::MAX - 1);
    }

    #[test]
    fn batches_of_one_set_are_checked_against_each_other() {
        let p = ProducerStates::default();
        assert_eq!(
            p.check(&[stamp(1, 0, 0, 2), stamp(1, 0, 2, 2)]),
            Ok(Verdict::Append)
        );
        assert!(p.check(&[stamp(1, 0, 0, 2), stamp(1, 0, 3, 2)]).is_err());
    }

    #[test]
    fn expiry_forgets_idle_producers() {
        let mut p = ProducerStates::default();
        stored(&mut p, stamp(1, 0, 0, 1), 0);
        assert_eq!(p.expire(999), 0);
        assert_eq!(p.expire(1001), 1);
        // Forgotten: any sequence is accepted again.
        assert_eq!(p.check(&[stamp(1, 0, 77, 1)]), Ok(Verdict::Append));
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let mut p = ProducerStates::default();
        for id in 0..20i64 {
            for i in 0..(id as i32 % 7) {
                stored(
                    &mut p,
                    stamp(id, (id % 3) as i16, i * 2, 2),
                    i64::from(i) * 2,
                );
            }
        }
        let bytes = p.encode(1234);
        assert_eq!(ProducerStates::decode(&bytes), Ok((1234, p.clone())));
        for cut in 0..bytes.len() {
            assert!(
                ProducerStates::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert!(ProducerStates::decode(&flipped).is_err());
    }

    #[test]
    fn snapshot_names() {
        assert_eq!(snapshot_name(12), "00000000000000000012.snapshot");
        assert_eq!(snapshot_offset(&snapshot_name(12)), Some(12));
        assert_eq!(snapshot_offset("12.snapshot"), None);
        assert_eq!(snapshot_offset("00000000000000000012.log"), None);
    }
}
