//! Counters and latency histograms: per executor, flushed into the shared [`Intervals`] a few
//! times a second (never on the per-message path), merged at the end into the results.
//!
//! Two kinds of window per executor: the current interval feeds the progress line; `total`
//! holds what counts for the results: latencies of messages sent after the warm-up, and rates
//! of acks and receipts between the end of the warm-up and the end of the run.
//!
//! An event goes into the interval of the second in which it happened (by its own timestamp),
//! not the one in which it happened to be flushed: otherwise every line would be shifted by the
//! flush phase, and the last one, a few milliseconds long, would hold up to a whole flush
//! period of messages and show a rate several times the real one.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Largest latency we record, in microseconds (an hour); larger values saturate.
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// The length of a progress interval: interval `i` is `[i, i + 1)` seconds on the run clock.
pub const INTERVAL_NS: u64 = 1_000_000_000;

/// Windows by interval index, filled by every executor's flushes, emptied by the progress loop.
pub type Intervals = BTreeMap<u64, Window>;

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
    /// Produce request round trips (written → answer read), one sample per request: the broker
    /// and the network without the client's own queueing, which publish latency includes.
    pub request_us: Histogram<u64>,
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
            request_us: new_histogram(),
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
        self.request_us.add(&other.request_us).expect("same bounds");
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
        self.request_us.reset();
        self.publish_last_ns = 0;
        self.consume_last_ns = 0;
    }
}

/// The statistics of one executor.
pub struct LocalStats {
    pub clock: Clock,
    /// The interval being filled, and its index.
    interval: Window,
    interval_index: u64,
    /// Intervals that ended since the last flush (one or two: flushes are far more frequent).
    ended: Vec<(u64, Window)>,
    pub total: Window,
}

impl LocalStats {
    pub fn new(clock: Clock) -> LocalStats {
        LocalStats {
            clock,
            interval: Window::default(),
            interval_index: 0,
            ended: Vec::new(),
            total: Window::default(),
        }
    }

    /// The interval window of an event at `event_ns`. Events reach one executor in time order,
    /// bar a few microseconds between tasks: a late one joins the current interval.
    fn interval_at(&mut self, event_ns: u64) -> &mut Window {
        let index = event_ns / INTERVAL_NS;
        if index > self.interval_index {
            let ended = std::mem::take(&mut self.interval);
            self.ended.push((self.interval_index, ended));
            self.interval_index = index;
        }
        &mut self.interval
    }

    /// A produce request acknowledged at `ack_ns`: its messages were sent at `send_ns`.
    pub fn on_ack(&mut self, ack_ns: u64, bytes: u64, send_ns: &[u64]) {
        let msgs = send_ns.len() as u64;
        let interval = self.interval_at(ack_ns);
        interval.publish_msgs += msgs;
        interval.publish_bytes += bytes;
        for &sent in send_ns {
            let latency_us = ack_ns.saturating_sub(sent) / 1_000;
            interval.publish_us.saturating_record(latency_us.max(1));
        }
        let counts = self.clock.counts(ack_ns);
        if counts {
            self.total.publish_msgs += msgs;
            self.total.publish_bytes += bytes;
            self.total.publish_last_ns = ack_ns;
        }
        for &sent in send_ns.iter().filter(|&&s| s >= self.clock.warmup_end_ns) {
            let latency_us = ack_ns.saturating_sub(sent) / 1_000;
            self.total.publish_us.saturating_record(latency_us.max(1));
        }
    }

    /// A produce request handed to the socket at `written_ns` whose answer was read at
    /// `answered_ns` (counted when written within the measured window).
    pub fn on_request_answered(&mut self, written_ns: u64, answered_ns: u64) {
        if self.clock.counts(written_ns) {
            let us = answered_ns.saturating_sub(written_ns) / 1_000;
            self.total.request_us.saturating_record(us.max(1));
        }
    }

    /// Messages sent without acknowledgement (acks=0): counted when written.
    pub fn on_unacked_send(&mut self, sent_ns: u64, msgs: u64, bytes: u64) {
        let interval = self.interval_at(sent_ns);
        interval.publish_msgs += msgs;
        interval.publish_bytes += bytes;
        if self.clock.counts(sent_ns) {
            self.total.publish_msgs += msgs;
            self.total.publish_bytes += bytes;
            self.total.publish_last_ns = sent_ns;
        }
    }

    pub fn on_publish_error(&mut self, error_ns: u64, msgs: u64) {
        self.interval_at(error_ns).publish_errors += msgs;
        self.total.publish_errors += msgs;
    }

    /// One message received at `receipt_ns`, sent at `send_ns` (if it carries our header).
    pub fn on_receive(&mut self, receipt_ns: u64, bytes: u64, send_ns: Option<u64>) {
        let latency_us = send_ns.map(|sent| (receipt_ns.saturating_sub(sent) / 1_000).max(1));
        let interval = self.interval_at(receipt_ns);
        interval.consume_msgs += 1;
        interval.consume_bytes += bytes;
        if let Some(latency_us) = latency_us {
            interval.e2e_us.saturating_record(latency_us);
        }
        if self.clock.counts(receipt_ns) {
            self.total.consume_msgs += 1;
            self.total.consume_bytes += bytes;
            self.total.consume_last_ns = receipt_ns;
        }
        if let (Some(sent), Some(latency_us)) = (send_ns, latency_us) {
            if sent >= self.clock.warmup_end_ns {
                self.total.e2e_us.saturating_record(latency_us);
            }
        }
    }

    /// Adds the ended intervals and the current one so far to the shared ones (a lock a few
    /// times a second, per executor).
    pub fn flush(&mut self, shared: &Mutex<Intervals>) {
        if let Ok(mut global) = shared.lock() {
            for (index, window) in self.ended.drain(..) {
                global.entry(index).or_default().add(&window);
            }
            global
                .entry(self.interval_index)
                .or_default()
                .add(&self.interval);
        }
        self.ended.clear();
        self.interval.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> Clock {
        Clock::new(Duration::from_secs(1), Some(Duration::from_secs(2)))
    }

    #[test]
    fn events_are_counted_in_the_interval_in_which_they_happened_not_when_flushed() {
        let mut stats = LocalStats::new(clock());
        let shared = Mutex::new(Intervals::new());
        stats.on_ack(900_000_000, 1_000, &[800_000_000; 10]);
        stats.on_ack(1_050_000_000, 300, &[1_000_000_000; 3]);
        stats.on_receive(2_999_000_000, 100, None);
        stats.flush(&shared);
        stats.on_ack(3_001_000_000, 700, &[2_990_000_000; 7]);
        stats.flush(&shared);
        let global = shared.lock().expect("not poisoned");
        let msgs: Vec<(u64, u64, u64)> = global
            .iter()
            .map(|(&i, w)| (i, w.publish_msgs, w.consume_msgs))
            .collect();
        assert_eq!(msgs, vec![(0, 10, 0), (1, 3, 0), (2, 0, 1), (3, 7, 0)]);
        assert_eq!(global[&0].publish_us.len(), 10);
    }

    #[test]
    fn request_round_trips_count_only_requests_written_in_the_measured_window() {
        let mut stats = LocalStats::new(clock()); // Warm-up ends at 1 s, the deadline at 3 s.
        stats.on_request_answered(900_000_000, 1_100_000_000);
        stats.on_request_answered(1_000_000_000, 1_000_250_000);
        stats.on_request_answered(2_999_000_000, 3_004_000_000);
        stats.on_request_answered(3_001_000_000, 3_002_000_000);
        let h = &stats.total.request_us;
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 250);
        assert!(h.equivalent(h.max(), 5_000), "{}", h.max());
    }
}
