//! The tail cache: recently appended batches kept in memory so that consumers at the head of the
//! log are served without a disk read.
//!
//! Each log keeps its cached batches in offset order ([`LogCache`]). Not-yet-written batches are
//! always there (they are the flusher's input too, and counted against the shard's write
//! buffer); once written, a batch joins the shard-wide FIFO ([`TailCache`]) and becomes
//! evictable, oldest first across all the shard's logs, when the cache passes its bound.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use bytes::Bytes;

/// One batch in memory.
#[derive(Clone, Debug)]
pub(crate) struct CachedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub bytes: Bytes,
}

/// The cached batches of one log, in offset order.
#[derive(Debug, Default)]
pub(crate) struct LogCache {
    batches: VecDeque<CachedBatch>,
}

impl LogCache {
    pub fn push(&mut self, batch: CachedBatch) {
        if let Some(last) = self.batches.back() {
            assert!(
                batch.base_offset > last.last_offset,
                "cached batches are in offset order"
            );
        }
        self.batches.push_back(batch);
    }

    /// The batches from the one containing `offset` on, or `None` when that batch is not cached.
    pub fn batches_from(&self, offset: i64) -> Option<impl Iterator<Item = &CachedBatch>> {
        let first = self.batches.front()?;
        if first.base_offset > offset {
            return None;
        }
        let at = self.batches.partition_point(|b| b.last_offset < offset);
        (at < self.batches.len()).then(|| self.batches.range(at..))
    }

    /// The cached batches holding offsets at or after `offset`.
    pub fn at_or_after(&self, offset: i64) -> impl Iterator<Item = &CachedBatch> {
        let at = self.batches.partition_point(|b| b.last_offset < offset);
        self.batches.range(at..)
    }

    /// Drops the oldest batch if it is the one starting at `base_offset` (it may already be gone).
    fn evict(&mut self, base_offset: i64) {
        if self
            .batches
            .front()
            .is_some_and(|b| b.base_offset == base_offset)
        {
            self.batches.pop_front();
        }
    }

    /// Drops batches wholly below `offset` (log start moved).
    pub fn drop_below(&mut self, offset: i64) {
        while self.batches.front().is_some_and(|b| b.last_offset < offset) {
            self.batches.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.batches.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.batches.len()
    }
}

struct Evictable {
    log: Weak<RefCell<LogCache>>,
    base_offset: i64,
    bytes: usize,
}

/// The shard-wide eviction order of written, cached batches.
pub(crate) struct TailCache {
    capacity_bytes: usize,
    cached_bytes: usize,
    fifo: VecDeque<Evictable>,
}

impl TailCache {
    pub fn new(capacity_bytes: usize) -> TailCache {
        TailCache {
            capacity_bytes,
            cached_bytes: 0,
            fifo: VecDeque::new(),
        }
    }

    /// A written batch becomes evictable; evicts oldest first while over capacity.
    pub fn written(&mut self, log: &Rc<RefCell<LogCache>>, base_offset: i64, bytes: usize) {
        self.fifo.push_back(Evictable {
            log: Rc::downgrade(log),
            base_offset,
            bytes,
        });
        self.cached_bytes += bytes;
        while self.cached_bytes > self.capacity_bytes {
            let Some(victim) = self.fifo.pop_front() else {
                break;
            };
            self.cached_bytes -= victim.bytes;
            if let Some(log) = victim.log.upgrade() {
                log.borrow_mut().evict(victim.base_offset);
            }
        }
    }

    pub fn cached_bytes(&self) -> usize {
        self.cached_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, last: i64, len: usize) -> CachedBatch {
        CachedBatch {
            base_offset: base,
            last_offset: last,
            bytes: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn finds_the_batch_containing_an_offset() {
        let mut cache = LogCache::default();
        cache.push(batch(10, 14, 1));
        cache.push(batch(15, 15, 1));
        cache.push(batch(16, 20, 1));
        assert!(cache.batches_from(9).is_none());
        let bases = |o| {
            cache
                .batches_from(o)
                .map(|it| it.map(|b| b.base_offset).collect::<Vec<_>>())
        };
        assert_eq!(bases(10), Some(vec![10, 15, 16]));
        assert_eq!(bases(12), Some(vec![10, 15, 16]));
        assert_eq!(bases(15), Some(vec![15, 16]));
        assert_eq!(bases(20), Some(vec![16]));
        assert_eq!(bases(21), None);
    }

    #[test]
    fn evicts_oldest_first_across_logs() {
        let a = Rc::new(RefCell::new(LogCache::default()));
        let b = Rc::new(RefCell::new(LogCache::default()));
        let mut tail = TailCache::new(250);
        for (i, log) in [&a, &b, &a, &b].into_iter().enumerate() {
            let base = i as i64 * 10;
            log.borrow_mut().push(batch(base, base + 9, 100));
            tail.written(log, base, 100);
        }
        // 400 bytes written into a 250-byte cache: the two oldest (a@0, b@10) are gone.
        assert_eq!(tail.cached_bytes(), 200);
        assert_eq!(a.borrow().len(), 1);
        assert_eq!(b.borrow().len(), 1);
        assert!(a.borrow().batches_from(20).is_some());
        assert!(b.borrow().batches_from(10).is_none());
    }
}
