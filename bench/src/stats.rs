//! Counters and latency histograms: per executor, flushed into a shared interval a few times a
//! second (never on the per-message path), merged at the end into the results.
//!
//! Two windows per executor: `interval` feeds the progress line; `total` holds what counts for
//! the results: latencies of messages sent after the warm-up, and rates of acks and receipts
//! between the end of the warm-up and the end of the run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Largest latency we record, in microseconds (an hour); larger values saturate.
const LATENCY_US_MAX: u64 = 3_600_000_000;

/// The run's clock: one monotonic origin shared by every thread, so that a timestamp written
/// by a producer on one executor means the same to a consumer on another.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub origin: Instant,
    pub warmup_end_ns: u64,
    /// The end of the measured window; `u64::MAX` with --messages (ends when producers do).
    pub deadline_ns: u64,
}

impl Clock {
    pub fn new(warmup: Duration, duration: Option<Duration>) -> Clock {
        let warmup_end_ns = nanos(warmup);
        let deadline_ns = duration.map_or(u64::MAX, |d| warmup_end_ns.saturating_add(nanos(d)));
        Clock {
            origin: Instant::now(),
            warmup_end_ns,
            deadline_ns,
        }
    }

    pub fn now_ns(&self) -> u64 {
        nanos(self.origin.elapsed())
    }

    fn counts(&self, event_ns: u64) -> bool {
        event_ns >= self.warmup_end_ns && event_ns <= self.deadline_ns
    }
}

pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// Counters and histograms over some stretch of time.
#[derive(Clone, Debug)]
pub struct Window {
    pub publish_msgs: u64,
    pub publish_bytes: u64,
    pub consume_msgs: u64,
    pub consume_bytes: u64,
    pub publish_errors: u64,
    pub publish_us: Histogram<u64>,
    pub e2e_us: Histogram<u64>,
    /// The last counted acknowledgement and receipt (for rates with --messages).
    pub publish_last_ns: u64,
    pub consume_last_ns: u64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            publish_msgs: 0,
            publish_bytes: 0,
            consume_msgs: 0,
            consume_bytes: 0,
            publish_errors: 0,
            publish_us: new_histogram(),
            e2e_us: new_histogram(),
            publish_last_ns: 0,
            consume_last_ns: 0,
        }
    }
}

impl Window {
    pub fn add(&mut self, other: &Window) {
        self.publish_msgs += other.publish_msgs;
        self.publish_bytes += other.publish_bytes;
        self.consume_msgs += other.consume_msgs;
        self.consume_bytes += other.consume_bytes;
        self.publish_errors += other.publish_errors;
        // Same bounds on both sides: adding cannot fail.
        self.publish_us.add(&other.publish_us).expect("same bounds");
        self.e2e_us.add(&other.e2e_us).expect("same bounds");
        self.publish_last_ns = self.publish_last_ns.max(other.publish_last_ns);
        self.consume_last_ns = self.consume_last_ns.max(other.consume_last_ns);
    }

    pub fn reset(&mut self) {
        self.publish_msgs = 0;
        self.publish_bytes = 0;
        self.consume_msgs = 0;
        self.consume_bytes = 0;
        self.publish_errors = 0;
        self.publish_us.reset();
        self.e2e_us.reset();
        self.publish_last_ns = 0;
        self.consume_last_ns = 0;
    }
}

/// The statistics of one executor.
pub struct LocalStats {
    pub clock: Clock,
    pub interval: Window,
    pub total: Window,
}

impl LocalStats {
    pub fn new(clock: Clock) -> LocalStats {
        LocalStats {
            clock,
            interval: Window::default(),
            total: Window::default(),
        }
    }

    /// A produce request acknowledged at `ack_ns`: its messages were sent at `send_ns`.
    pub fn on_ack(&mut self, ack_ns: u64, bytes: u64, send_ns: &[u64]) {
        let msgs = send_ns.len() as u64;
        self.interval.publish_msgs += msgs;
        self.interval.publish_bytes += bytes;
        let counts = self.clock.counts(ack_ns);
        if counts {
            self.total.publish_msgs += msgs;
            self.total.publish_bytes += bytes;
            self.total.publish_last_ns = ack_ns;
        }
        for &sent in send_ns {
            let latency_us = ack_ns.saturating_sub(sent) / 1_000;
            self.interval
                .publish_us
                .saturating_record(latency_us.max(1));
            if sent >= self.clock.warmup_end_ns {
                self.total.publish_us.saturating_record(latency_us.max(1));
            }
        }
    }

    /// Messages sent without acknowledgement (acks=0): counted when written.
    pub fn on_unacked_send(&mut self, sent_ns: u64, msgs: u64, bytes: u64) {
        self.interval.publish_msgs += msgs;
        self.interval.publish_bytes += bytes;
        if self.clock.counts(sent_ns) {
            self.total.publish_msgs += msgs;
            self.total.publish_bytes += bytes;
            self.total.publish_last_ns = sent_ns;
        }
    }

    pub fn on_publish_error(&mut self, msgs: u64) {
        self.interval.publish_errors += msgs;
        self.total.publish_errors += msgs;
    }

    /// One message received at `receipt_ns`, sent at `send_ns` (if it carries our header).
    pub fn on_receive(&mut self, receipt_ns: u64, bytes: u64, send_ns: Option<u64>) {
        self.interval.consume_msgs += 1;
        self.interval.consume_bytes += bytes;
        if self.clock.counts(receipt_ns) {
            self.total.consume_msgs += 1;
            self.total.consume_bytes += bytes;
            self.total.consume_last_ns = receipt_ns;
        }
        if let Some(sent) = send_ns {
            let latency_us = (receipt_ns.saturating_sub(sent) / 1_000).max(1);
            self.interval.e2e_us.saturating_record(latency_us);
            if sent >= self.clock.warmup_end_ns {
                self.total.e2e_us.saturating_record(latency_us);
            }
        }
    }

    /// Moves the interval into the shared one (a lock a few times a second, per executor).
    pub fn flush(&mut self, shared: &Arc<Mutex<Window>>) {
        if let Ok(mut global) = shared.lock() {
            global.add(&self.interval);
        }
        self.interval.reset();
    }
}
