//! Durability bookkeeping for the flusher: which written bytes of a segment are durable, and the
//! `flush.ms` timer that asks for a sync.
//!
//! Every write a partition issues while one of its appenders waits for durability (acks=all
//! under the default flush policy) goes through a second descriptor opened with `O_DSYNC`,
//! acks=1 batches in the same write included, so it is durable when it completes and the durable
//! position follows the written one. Writes issued while no appender of the partition waits are
//! plain. When an appender awaits durability that plain writes stand in the way of (or a
//! `flush.ms` tick is due), one `fdatasync` covers everything written so far: that is the group
//! commit. At most one sync is in flight; appends that arrive during it are covered by the next
//! one. Only a whole durable prefix counts ([`Durability`]).
//!
//! Synced writes are for latency: an appender waits only for its own write, instead of for its
//! write, then the end of the sync in flight, then a sync of its own (each sync also waits in
//! io_uring's worker pool, as `fsync` cannot be issued without blocking). They are not used for
//! everything because a synced write costs its own metadata write: all writes synced took a
//! fifth off acks=1 throughput (BENCHMARKS.md, "2026-11-21 (small hours)").

use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::config::FlushPolicy;
use crate::engine::Engine;

/// Which bytes of the segment being written are durable, from synced writes and `fdatasync`s.
/// Only a whole durable prefix counts: a synced write after plain ones makes nothing durable until
/// a sync covers the plain ones.
#[derive(Default, Debug)]
pub(crate) struct Durability {
    /// Below this position every byte is durable.
    through: u64,
    /// Where the trailing run of synced writes in the written prefix starts.
    synced_run_start: Option<u64>,
}

impl Durability {
    /// A segment whose first `written` bytes are already durable (recovery synced them, or a
    /// clean shutdown did).
    pub(crate) fn starting_at(written: u64) -> Durability {
        Durability {
            through: written,
            synced_run_start: None,
        }
    }

    /// A completed write joined the written prefix, which ended at `start` before it.
    pub(crate) fn joined(&mut self, start: u64, synced: bool) {
        if !synced {
            self.synced_run_start = None;
        } else if self.synced_run_start.is_none() {
            self.synced_run_start = Some(start);
        }
    }

    /// An `fdatasync` completed that started when the written prefix ended at `covered`.
    pub(crate) fn synced(&mut self, covered: u64) {
        self.through = self.through.max(covered);
    }

    /// Whether every byte of the written prefix, which ends at `written`, is durable.
    pub(crate) fn all_durable(&mut self, written: u64) -> bool {
        if self
            .synced_run_start
            .is_some_and(|start| self.through >= start)
        {
            self.through = self.through.max(written);
        }
        self.through >= written
    }
}

/// Starts the `flush.ms` timer when the policy is periodic and none runs.
pub(crate) fn start_interval_timer(engine: &Rc<Engine>) {
    {
        let mut st = engine.state.borrow_mut();
        if !matches!(st.config.flush, FlushPolicy::IntervalMs(_)) || st.interval_timer_running {
            return;
        }
        st.interval_timer_running = true;
    }
    glommio::spawn_local(interval_timer(Rc::downgrade(engine))).detach();
}

/// Raises a sync every `flush.ms` while the policy is periodic; ends when it no longer is or the
/// log closes.
async fn interval_timer(engine: Weak<Engine>) {
    loop {
        let period_ms = match engine.upgrade() {
            Some(e) => {
                let mut st = e.state.borrow_mut();
                match st.config.flush {
                    FlushPolicy::IntervalMs(ms) if !st.closing => ms.max(1),
                    _ => {
                        st.interval_timer_running = false;
                        return;
                    }
                }
            }
            None => return,
        };
        glommio::timer::sleep(Duration::from_millis(period_ms)).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        engine.state.borrow_mut().interval_sync_due = true;
        engine.flusher_wakeup.raise();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_writes_alone_make_the_written_prefix_durable() {
        let mut d = Durability::starting_at(4096);
        assert!(d.all_durable(4096));
        d.joined(4096, true);
        d.joined(10_000, true);
        assert!(d.all_durable(20_000));
    }

    #[test]
    fn a_synced_write_after_a_plain_one_waits_for_a_sync_of_the_plain_one() {
        let mut d = Durability::default();
        d.joined(0, false);
        d.joined(10_000, true);
        assert!(!d.all_durable(20_000), "the plain bytes are not synced");
        // A sync that started before the plain write completed covers less than it.
        d.synced(4_000);
        assert!(!d.all_durable(20_000));
        d.synced(10_000);
        assert!(
            d.all_durable(20_000),
            "plain bytes synced, the rest written synced"
        );
    }

    #[test]
    fn a_plain_write_after_synced_ones_ends_their_run() {
        let mut d = Durability::default();
        d.joined(0, true);
        assert!(d.all_durable(10_000));
        d.joined(10_000, false);
        d.joined(20_000, true);
        assert!(!d.all_durable(30_000));
        // A sync covering up to the plain write's end closes the synced run after it.
        d.synced(20_000);
        assert!(d.all_durable(30_000));
        // Then a plain write again: not durable until a sync covers it.
        d.joined(30_000, false);
        assert!(!d.all_durable(40_000));
        d.synced(40_000);
        assert!(d.all_durable(40_000));
    }
}
