//! One partition's replication state on its owning shard: as leader, where each follower's log
//! ends and when it last caught up, and the high watermark they allow; as follower, the leader's
//! high watermark as last fetched.
//!
//! The state is kept per leader epoch: when the metadata names a new leader or epoch, the
//! followers' progress starts afresh (Kafka resets it on every leadership change too) while the
//! high watermark is kept as a floor: a new leader never shows consumers less than it knew was
//! committed, and never more until its in-sync followers have fetched.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use odradek_storage::{Offset, PartitionLog};

use crate::metadata::PartitionState;

use super::Notify;

/// Where one follower stands, as its fetches tell the leader.
#[derive(Clone, Copy, Debug)]
struct Progress {
    /// Its log end (the offset it fetches from: it holds everything below, synced).
    log_end: i64,
    /// The last time its log end reached the leader's (Kafka's lastCaughtUpTimeMs).
    caught_up_ms: i64,
    /// The leader's log end at its previous fetch, and that fetch's time.
    leader_end_at_last_fetch: i64,
    last_fetch_ms: i64,
}

/// One partition's replication state (see the module comment).
#[derive(Default)]
pub struct Replica {
    /// The leader epoch and leader this state is for.
    epoch: Cell<i32>,
    leader: Cell<i32>,
    /// When this state began (followers count as caught up then: each gets
    /// `replica.lag.time.max.ms` to fetch before it may leave the ISR).
    since_ms: Cell<i64>,
    /// Never moves back while the leadership lasts (see the module comment).
    high_watermark: Cell<i64>,
    followers: RefCell<BTreeMap<i32, Progress>>,
    /// Woken when a follower moves forward (acks=all producers and consumers wait on it).
    progress: Notify,
    /// An ISR change of this partition is being proposed: no second one meanwhile.
    pub isr_change_pending: Cell<bool>,
}

impl Replica {
    /// Starts the state afresh when `state` names another leader or epoch than it is for.
    pub fn follow_metadata(&self, state: &PartitionState, now_ms: i64) {
        if self.epoch.get() == state.leader_epoch && self.leader.get() == state.leader {
            return;
        }
        self.epoch.set(state.leader_epoch);
        self.leader.set(state.leader);
        self.since_ms.set(now_ms);
        self.followers.borrow_mut().clear();
        self.isr_change_pending.set(false);
        self.wake();
    }

    /// The high watermark: the smallest log end over the ISR, this leader's written end for
    /// itself, a follower whose log end it has not heard yet at the floor; never below the
    /// floor, never past this log's end.
    pub fn high_watermark(&self, log: &PartitionLog, state: &PartitionState, me: i32) -> Offset {
        let floor = self.high_watermark.get();
        let log_end = log.log_end_offset().get();
        if state.leader != me {
            return Offset(floor.min(log_end));
        }
        let followers = self.followers.borrow();
        let mut hw = log.written_end_offset().get();
        for replica in state.isr.iter().filter(|&&r| r != me) {
            hw = hw.min(followers.get(replica).map_or(floor, |p| p.log_end));
        }
        let hw = hw.max(floor).min(log_end);
        self.high_watermark.set(hw);
        Offset(hw)
    }

    /// A follower's high watermark from its leader's fetch answer (never past its own log).
    pub fn set_follower_high_watermark(&self, leader_hw: i64, log_end: i64) {
        let hw = leader_hw.min(log_end).max(0);
        self.high_watermark.set(hw);
    }

    /// A fetch from follower `replica` at `fetch_offset` when this leader's log ended at
    /// `leader_end`: its progress, and whether that woke anyone.
    pub fn record_fetch(&self, replica: i32, fetch_offset: i64, leader_end: i64, now_ms: i64) {
        let mut followers = self.followers.borrow_mut();
        let since = self.since_ms.get();
        let progress = followers.entry(replica).or_insert(Progress {
            log_end: -1,
            caught_up_ms: since,
            leader_end_at_last_fetch: -1,
            last_fetch_ms: since,
        });
        // Kafka's rule: caught up now if it reached the log end; caught up at its previous
        // fetch if it reached where the log ended then.
        if fetch_offset >= leader_end {
            progress.caught_up_ms = progress.caught_up_ms.max(now_ms);
        } else if fetch_offset >= progress.leader_end_at_last_fetch {
            progress.caught_up_ms = progress.caught_up_ms.max(progress.last_fetch_ms);
        }
        let moved = fetch_offset != progress.log_end;
        progress.log_end = fetch_offset;
        progress.leader_end_at_last_fetch = leader_end;
        progress.last_fetch_ms = now_ms;
        drop(followers);
        if moved {
            self.wake();
        }
    }

    /// Where `replica`'s log ends as its last fetch said, if it fetched this leadership.
    pub fn follower_log_end(&self, replica: i32) -> Option<i64> {
        self.followers.borrow().get(&replica).map(|p| p.log_end)
    }

    /// ISR members (but the leader) that have not caught up within `lag_max_ms` of `now_ms`.
    pub fn lagging(
        &self,
        state: &PartitionState,
        me: i32,
        now_ms: i64,
        lag_max_ms: u64,
    ) -> Vec<i32> {
        let followers = self.followers.borrow();
        let since = self.since_ms.get();
        state
            .isr
            .iter()
            .copied()
            .filter(|&r| r != me)
            .filter(|r| {
                let caught_up = followers.get(r).map_or(since, |p| p.caught_up_ms);
                now_ms.saturating_sub(caught_up) > lag_max_ms as i64
            })
            .collect()
    }

    /// Resolves when the high watermark may have moved past `offset`: at an append past it when
    /// the log ends there, else at a follower's progress or a leadership change (data written
    /// but not yet replicated does not wake it again and again).
    pub async fn high_watermark_moved(&self, log: &PartitionLog, offset: Offset) {
        if log.written_end_offset() > offset {
            self.changed().await
        } else {
            log.wait_for_data(offset).await
        }
    }

    /// Resolves at the next follower progress or leadership change.
    pub async fn changed(&self) {
        self.progress.wait().await
    }

    /// Wakes every wait on this partition's high watermark (the metadata changed).
    pub fn wake(&self) {
        self.progress.wake();
    }
}
