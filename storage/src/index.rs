//! The sparse offset index and the time index of one segment, kept in memory and stored in
//! Kafka's file formats.
//!
//! `.index`: 8-byte entries, relative offset (u32 BE) then position (u32 BE). An entry names the
//! last offset of a batch and that batch's position, so the batch holding any offset at or past
//! the entry's offset starts at or after the entry's position.
//!
//! `.timeindex`: 12-byte entries, timestamp (i64 BE) then relative offset (u32 BE). Timestamps
//! only grow: an entry `(t, o)` says no batch up to offset `o` has a timestamp above `t`.

/// Bytes of one offset-index entry.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Bytes of one time-index entry.
pub const TIME_ENTRY_BYTES: usize = 12;

/// Why an index file is not usable (it is then rebuilt from the segment).
#[derive(Debug, PartialEq, Eq)]
pub struct StaleIndex(pub &'static str);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Sparse map from relative offset to file position, in ascending order of both.
#[derive(Debug, Default)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn append(&mut self, relative_offset: u32, position: u32) {
        if let Some(last) = self.entries.last() {
            assert!(
                relative_offset > last.relative_offset,
                "offset index must grow"
            );
            assert!(position > last.position, "offset index positions must grow");
        }
        self.entries.push(OffsetEntry {
            relative_offset,
            position,
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// The position to start scanning from for `relative_offset`: the entry with the largest
    /// offset at or below it, or position 0. O(log n).
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let after = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        after.checked_sub(1).map_or(0, |i| self.entries[i].position)
    }

    /// The furthest indexed batch start at or below `position_max` such that every batch before
    /// it holds only offsets below `relative_offset_max` (its entry's offset is at most that).
    pub fn furthest_within(&self, position_max: u64, relative_offset_max: i64) -> Option<u32> {
        let by_position = self
            .entries
            .partition_point(|e| u64::from(e.position) <= position_max);
        let by_offset = self
            .entries
            .partition_point(|e| i64::from(e.relative_offset) <= relative_offset_max);
        by_position
            .min(by_offset)
            .checked_sub(1)
            .map(|i| self.entries[i].position)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Parses an index file of a segment of `segment_bytes` bytes, refusing a stale one.
    pub fn decode(bytes: &[u8], segment_bytes: u64) -> Result<OffsetIndex, StaleIndex> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES) {
            return Err(StaleIndex("size is not a multiple of the entry size"));
        }
        let mut index = OffsetIndex::default();
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
            let relative_offset = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let position = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if u64::from(position) >= segment_bytes {
                return Err(StaleIndex("entry points past the end of the segment"));
            }
            if let Some(last) = index.entries.last() {
                if relative_offset <= last.relative_offset || position <= last.position {
                    return Err(StaleIndex("entries are not ascending"));
                }
            }
            index.entries.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        Ok(index)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

/// Sparse map from max timestamp so far to the relative offset holding it.
#[derive(Debug, Default)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Appends an entry when `timestamp_ms` is newer than the last one (timestamps only grow).
    pub fn maybe_append(&mut self, timestamp_ms: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(last) if timestamp_ms <= last.timestamp_ms => {}
            Some(last) if relative_offset < last.relative_offset => {}
            _ => self.entries.push(TimeEntry {
                timestamp_ms,
                relative_offset,
            }),
        }
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// The relative offset after which to look for the first batch with a max timestamp at or
    /// above `timestamp_ms`: every batch up to the returned offset is older. `None`: from the
    /// start.
    pub fn older_than(&self, timestamp_ms: i64) -> Option<u32> {
        let older = self
            .entries
            .partition_point(|e| e.timestamp_ms < timestamp_ms);
        older
            .checked_sub(1)
            .map(|i| self.entries[i].relative_offset)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp_ms.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// Parses a time-index file of a segment holding relative offsets below `offsets_in_segment`.
    pub fn decode(bytes: &[u8], offsets_in_segment: u64) -> Result<TimeIndex, StaleIndex> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_BYTES) {
            return Err(StaleIndex("size is not a multiple of the entry size"));
        }
        let mut index = TimeIndex::default();
        for chunk in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let timestamp_ms = i64::from_be_bytes(ts);
            let relative_offset = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            if u64::from(relative_offset) >= offsets_in_segment {
                return Err(StaleIndex("entry points past the end of the segment"));
            }
            if let Some(last) = index.entries.last() {
                if timestamp_ms <= last.timestamp_ms || relative_offset < last.relative_offset {
                    return Err(StaleIndex("entries are not ascending"));
                }
            }
            index.entries.push(TimeEntry {
                timestamp_ms,
                relative_offset,
            });
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets() -> OffsetIndex {
        let mut index = OffsetIndex::default();
        index.append(9, 4100);
        index.append(19, 8300);
        index.append(29, 12400);
        index
    }

    #[test]
    fn lookup_finds_the_entry_at_or_below() {
        let index = offsets();
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(8), 0);
        assert_eq!(index.lookup(9), 4100);
        assert_eq!(index.lookup(18), 4100);
        assert_eq!(index.lookup(19), 8300);
        assert_eq!(index.lookup(1000), 12400);
        assert_eq!(OffsetIndex::default().lookup(5), 0);
    }

    #[test]
    fn offset_index_round_trips_and_refuses_stale_files() {
        let index = offsets();
        let bytes = index.encode();
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[..8], &[0, 0, 0, 9, 0, 0, 0x10, 0x04]);
        let back = OffsetIndex::decode(&bytes, 20_000).expect("valid");
        assert_eq!(back.entries, index.entries);
        assert!(OffsetIndex::decode(&bytes[..23], 20_000).is_err());
        assert!(
            OffsetIndex::decode(&bytes, 12_400).is_err(),
            "entry past the file"
        );
        let mut zeros = vec![0u8; 16];
        zeros[..8].copy_from_slice(&bytes[..8]);
        assert!(
            OffsetIndex::decode(&zeros, 20_000).is_err(),
            "not ascending"
        );
    }

    #[test]
    fn entries_are_counted() {
        assert_eq!(offsets().len(), 3);
        assert!(OffsetIndex::default().is_empty());
    }

    #[test]
    fn furthest_within_respects_both_bounds() {
        let index = offsets();
        assert_eq!(index.furthest_within(100_000, 1_000), Some(12400));
        assert_eq!(index.furthest_within(12_399, 1_000), Some(8300));
        assert_eq!(index.furthest_within(100_000, 28), Some(8300));
        assert_eq!(index.furthest_within(100_000, 19), Some(8300));
        assert_eq!(index.furthest_within(4_099, 1_000), None);
        assert_eq!(index.furthest_within(100_000, -5), None);
    }

    #[test]
    fn time_index_keeps_only_growing_timestamps() {
        let mut index = TimeIndex::default();
        index.maybe_append(100, 0);
        index.maybe_append(90, 5);
        index.maybe_append(200, 10);
        assert_eq!(index.entries.len(), 2);
        assert_eq!(index.older_than(50), None);
        assert_eq!(index.older_than(100), None);
        assert_eq!(index.older_than(101), Some(0));
        assert_eq!(index.older_than(500), Some(10));
        let back = TimeIndex::decode(&index.encode(), 11).expect("valid");
        assert_eq!(back.entries, index.entries);
        assert!(TimeIndex::decode(&index.encode(), 10).is_err());
        assert_eq!(index.last().map(|e| e.relative_offset), Some(10));
    }
}
