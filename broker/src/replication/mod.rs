//! Kafka's ISR replication, on the shard that owns each partition.
//!
//! - [`acks`]: what an acks=all answer waits for.
//! - [`state`]: a partition's replication state: followers' progress and the high watermark on
//!   its leader, the leader's high watermark on a follower.
//! - [`fetcher`]: a follower's side: per shard and leader, one connection that fetches with the
//!   follower's replica id, truncates a diverged log first (OffsetForLeaderEpoch), and appends
//!   the leader's batches at the leader's offsets and epochs.
//! - [`isr`]: a leader's side of ISR changes: followers that caught up join, followers that lag
//!   past `replica.lag.time.max.ms` leave, each change proposed to the controller (AlterPartition
//!   in the metadata log), fenced by leader and partition epoch.
//!
//! A follower acknowledges a record (its next fetch offset passes it) only once the record is
//! synced on it when the topic syncs before acknowledging (`flush.ms` unset, the default), so an
//! acks=all answer means the record is synced on every in-sync replica, not only written.

pub mod acks;
mod connection;
pub mod fetcher;
pub mod isr;
pub mod state;

use std::cell::RefCell;

use futures::channel::oneshot;

pub use state::Replica;

/// Wakes the tasks waiting on it (all of them, once).
#[derive(Default)]
pub struct Notify {
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
}

impl Notify {
    /// Resolves at the next [`Notify::wake`] after this call.
    pub async fn wait(&self) {
        let (wake, woken) = oneshot::channel();
        {
            let mut waiters = self.waiters.borrow_mut();
            waiters.retain(|w| !w.is_canceled());
            waiters.push(wake);
        }
        let _ = woken.await;
    }

    pub fn wake(&self) {
        for waiter in self.waiters.borrow_mut().drain(..) {
            let _ = waiter.send(());
        }
    }
}
