//! The schedule of a producer at a fixed `--rate`: when each message is due, and when the
//! producer next has a request to send.
//!
//! A message's latency is measured from its due time, not from when the producer got round to
//! writing it into a batch; so a message may be generated late, at no cost to its latency, as
//! long as it is in the batch before that batch goes out. The producer therefore wakes only
//! when a request must leave (a batch lingered long enough, or the message that fills one is
//! due), rather than once per message: at 50,000 msgs/s with `--linger-ms 5` that is 200 timer
//! wake-ups a second instead of 50,000, and the CPU (system time) they cost is left to the
//! broker that the tool is measuring.

use std::time::Duration;

/// One producer's share of the rate.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    pub start_ns: u64,
    /// Time between two consecutive messages.
    pub interval_ns: f64,
    pub linger_ns: u64,
    pub message_bytes: usize,
}

/// What one connection holds towards its next request.
#[derive(Clone, Copy, Debug)]
pub struct Buffered {
    /// The due time of its oldest message, if it holds any.
    pub oldest_ns: Option<u64>,
    pub bytes: usize,
    /// At this many bytes the request goes out without waiting for the linger.
    pub full_bytes: usize,
}

impl Pacing {
    /// When message `index` (from 0) is due.
    pub fn due_ns(&self, index: u64) -> u64 {
        self.start_ns + (index as f64 * self.interval_ns) as u64
    }

    /// How many messages are due at `now_ns` (message 0 is due at the start).
    pub fn due_by(&self, now_ns: u64) -> u64 {
        if now_ns < self.start_ns {
            return 0;
        }
        ((now_ns - self.start_ns) as f64 / self.interval_ns) as u64 + 1
    }

    /// The earliest time at which a request may have to go out, `generated` messages having
    /// been put in batches: when a connection's oldest message has lingered enough, when the
    /// next message is due plus the linger, or when the message that could fill a connection's
    /// batch (if every next message went to it) is due. Never later than any of them.
    pub fn next_send_ns(&self, generated: u64, conns: impl Iterator<Item = Buffered>) -> u64 {
        assert!(self.message_bytes > 0, "messages have a size");
        let mut wake_ns = self.due_ns(generated).saturating_add(self.linger_ns);
        for conn in conns {
            if let Some(oldest_ns) = conn.oldest_ns {
                wake_ns = wake_ns.min(oldest_ns.saturating_add(self.linger_ns));
            }
            let missing_bytes = conn.full_bytes.saturating_sub(conn.bytes).max(1);
            let missing_msgs = missing_bytes.div_ceil(self.message_bytes) as u64;
            wake_ns = wake_ns.min(self.due_ns(generated + missing_msgs - 1));
        }
        wake_ns
    }
}

/// A note for the operator when, at this rate, a batch cannot fill before its linger ends:
/// every request then leaves on the linger, and publish latency includes up to that wait.
pub fn linger_note(
    rate_per_producer: f64,
    message_bytes: usize,
    batch_bytes: usize,
    linger: Duration,
) -> Option<String> {
    if rate_per_producer <= 0.0 || linger.is_zero() {
        return None;
    }
    let fill_ms = (batch_bytes / message_bytes.max(1)) as f64 / rate_per_producer * 1e3;
    (fill_ms > linger.as_secs_f64() * 1e3).then(|| {
        format!(
            "note: at {rate_per_producer:.0} msgs/s per producer a batch of {batch_bytes} bytes \
             takes {fill_ms:.1} ms to fill: requests leave when the {} ms linger ends, and \
             publish latency includes that wait (--linger-ms 0 measures the broker alone)",
            linger.as_millis()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    /// Messages of 1 KiB from 1 ms on the run clock.
    fn pacing(interval_ns: f64, linger_ns: u64) -> Pacing {
        Pacing {
            start_ns: 1_000_000,
            interval_ns,
            linger_ns,
            message_bytes: KIB,
        }
    }

    /// A connection holding nothing, whose request is full at 384 KiB (six partitions of 64 KiB).
    const EMPTY: Buffered = Buffered {
        oldest_ns: None,
        bytes: 0,
        full_bytes: 384 * KIB,
    };

    /// A connection like [`EMPTY`] holding `msgs` messages, the oldest due at `oldest_ns`.
    fn holding(oldest_ns: u64, msgs: usize) -> Buffered {
        Buffered {
            oldest_ns: Some(oldest_ns),
            bytes: msgs * KIB,
            ..EMPTY
        }
    }

    #[test]
    fn a_batch_that_cannot_fill_wakes_the_producer_when_its_linger_ends_not_per_message() {
        let p = pacing(50_000.0, 5_000_000);
        // One message, due at the start, is in a batch: nothing leaves before 5 ms later.
        let wake = p.next_send_ns(1, [holding(1_000_000, 1)].into_iter());
        assert_eq!(wake, 6_000_000);
    }

    #[test]
    fn a_batch_that_fills_before_its_linger_wakes_the_producer_when_the_last_message_is_due() {
        // 1,000,000 msgs/s: 384 messages fill the request in 384 us, well within 5 ms.
        let p = pacing(1_000.0, 5_000_000);
        assert_eq!(p.next_send_ns(0, [EMPTY].into_iter()), 1_000_000 + 383_000);
        let wake = p.next_send_ns(100, [holding(1_000_000, 100)].into_iter());
        assert_eq!(wake, p.due_ns(383));
    }

    #[test]
    fn without_linger_every_message_leaves_when_it_is_due() {
        let p = pacing(50_000.0, 0);
        assert_eq!(p.next_send_ns(3, [EMPTY].into_iter()), p.due_ns(3));
    }

    #[test]
    fn messages_are_due_from_the_start_one_interval_apart() {
        let p = pacing(50_000.0, 0);
        assert_eq!(p.due_by(999_999), 0);
        assert_eq!(p.due_by(1_000_000), 1);
        assert_eq!(p.due_by(1_049_999), 1);
        assert_eq!(p.due_by(1_050_000), 2);
        assert_eq!(p.due_ns(2), 1_100_000);
    }

    #[test]
    fn the_linger_note_appears_only_when_a_batch_cannot_fill_within_the_linger() {
        let five_ms = Duration::from_millis(5);
        // 10,000 msgs/s of 1 KiB fill 64 KiB in 6.4 ms.
        assert!(linger_note(10_000.0, KIB, 64 * KIB, five_ms).is_some());
        assert!(linger_note(100_000.0, KIB, 64 * KIB, five_ms).is_none());
        assert!(linger_note(10_000.0, KIB, 64 * KIB, Duration::ZERO).is_none());
        assert!(linger_note(0.0, KIB, 64 * KIB, five_ms).is_none());
    }
}
