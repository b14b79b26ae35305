//! What the operator sees: the progress line every second on stderr, the summary on stdout,
//! the JSON file, and the --verify verdict. MB means 10^6 bytes everywhere.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::args::{Keys, Workload};
use crate::bootstrap::Cluster;
use crate::consumer::PartitionCheck;
use crate::run::ExecutorResult;
use crate::stats::{nanos, Clock, Intervals, Window, INTERVAL_NS};

const MB: f64 = 1e6;

/// One interval of the run, as printed on the progress line: a second, or less for the last.
#[derive(Clone, Debug, Serialize)]
pub struct IntervalPoint {
    /// When the interval ends (seconds on the run clock).
    pub t_s: f64,
    /// How long it is: 1 but for the last interval, which ends with the run.
    pub duration_s: f64,
    /// Whether most of it lies within the warm-up.
    pub warmup: bool,
    pub publish_msgs_per_s: f64,
    pub publish_mb_per_s: f64,
    pub consume_msgs_per_s: f64,
    pub consume_mb_per_s: f64,
    pub publish_p50_us: u64,
    pub publish_p99_us: u64,
    pub e2e_p50_us: u64,
    pub e2e_p99_us: u64,
}

impl IntervalPoint {
    /// The point of `window`, the events in `[start_ns, end_ns)`: rates over that true span.
    fn new(clock: &Clock, start_ns: u64, end_ns: u64, window: &Window) -> IntervalPoint {
        assert!(start_ns < end_ns, "an interval ends after it starts");
        let seconds = (end_ns - start_ns) as f64 / 1e9;
        let middle_ns = start_ns + (end_ns - start_ns) / 2;
        IntervalPoint {
            t_s: end_ns as f64 / 1e9,
            duration_s: seconds,
            warmup: middle_ns < clock.warmup_end_ns,
            publish_msgs_per_s: window.publish_msgs as f64 / seconds,
            publish_mb_per_s: window.publish_bytes as f64 / MB / seconds,
            consume_msgs_per_s: window.consume_msgs as f64 / seconds,
            consume_mb_per_s: window.consume_bytes as f64 / MB / seconds,
            publish_p50_us: window.publish_us.value_at_quantile(0.5),
            publish_p99_us: window.publish_us.value_at_quantile(0.99),
            e2e_p50_us: window.e2e_us.value_at_quantile(0.5),
            e2e_p99_us: window.e2e_us.value_at_quantile(0.99),
        }
    }
}

/// Prints the progress line of each interval and keeps the series.
pub struct Progress {
    clock: Clock,
    /// How long after an interval ends its line is due (time for every executor to flush it).
    lag: Duration,
    next_index: u64,
    pub points: Vec<IntervalPoint>,
}

impl Progress {
    pub fn new(clock: Clock, lag: Duration) -> Progress {
        Progress {
            clock,
            lag,
            next_index: 0,
            points: Vec::new(),
        }
    }

    /// The index of the interval whose line is due; if none is, how long until one is.
    pub fn line_due(&self) -> Result<u64, Duration> {
        let due_ns = (self.next_index + 1) * INTERVAL_NS + nanos(self.lag);
        let now = self.clock.now_ns();
        if now < due_ns {
            return Err(Duration::from_nanos(due_ns - now));
        }
        Ok(self.next_index)
    }

    /// The line of the next interval (a whole one), with its events in `window`.
    pub fn line(&mut self, window: &Window) {
        let start_ns = self.next_index * INTERVAL_NS;
        self.push(start_ns, start_ns + INTERVAL_NS, window);
    }

    /// The lines of the intervals left when the run ended at `end_ns`, the last one shorter.
    pub fn finish(&mut self, end_ns: u64, intervals: &mut Intervals) {
        while self.next_index * INTERVAL_NS < end_ns {
            let start_ns = self.next_index * INTERVAL_NS;
            let window = intervals.remove(&self.next_index).unwrap_or_default();
            self.push(start_ns, end_ns.min(start_ns + INTERVAL_NS), &window);
        }
    }

    fn push(&mut self, start_ns: u64, end_ns: u64, window: &Window) {
        self.next_index += 1;
        let empty = window.publish_msgs == 0 && window.consume_msgs == 0;
        if empty && end_ns - start_ns < INTERVAL_NS / 2 {
            return; // The run ended just after a line: nothing to say about the rest.
        }
        let point = IntervalPoint::new(&self.clock, start_ns, end_ns, window);
        let errors = if window.publish_errors > 0 {
            format!(" | {} publish errors", window.publish_errors)
        } else {
            String::new()
        };
        let short = if point.duration_s < 1.0 {
            format!(" over {:.3}s", point.duration_s)
        } else {
            String::new()
        };
        eprintln!(
            "[{:6.1}s{}] pub {:>9.0} msg/s {:>8.2} MB/s p50 {} p99 {} | \
             con {:>9.0} msg/s {:>8.2} MB/s e2e p50 {} p99 {}{}{}",
            point.t_s,
            if point.warmup { " warmup" } else { "" },
            point.publish_msgs_per_s,
            point.publish_mb_per_s,
            ms(point.publish_p50_us),
            ms(point.publish_p99_us),
            point.consume_msgs_per_s,
            point.consume_mb_per_s,
            ms(point.e2e_p50_us),
            ms(point.e2e_p99_us),
            short,
            errors
        );
        self.points.push(point);
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}ms", us as f64 / 1e3)
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p75: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p75: h.value_at_quantile(0.75),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {} p75 {} p95 {} p99 {} p99.9 {} p99.99 {} max {} us ({} samples)",
            self.p50, self.p75, self.p95, self.p99, self.p999, self.p9999, self.max, self.count
        )
    }
}

/// The --verify outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub passed: bool,
    pub messages_acked: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub gaps: u64,
    pub publish_failures: u64,
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkloadSummary {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: usize,
    pub message_size: usize,
    pub producers: usize,
    pub consumers: usize,
    pub cores: usize,
    pub acks: String,
    pub batch_size: usize,
    pub linger_ms: u128,
    pub compression: String,
    pub keys: String,
    pub rate_msgs_per_s: f64,
    pub duration_s: Option<f64>,
    pub messages: Option<u64>,
    pub warmup_s: f64,
    pub max_in_flight: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub workload: WorkloadSummary,
    pub measured_publish_s: f64,
    pub measured_consume_s: f64,
    pub publish_msgs: u64,
    pub publish_bytes: u64,
    pub consume_msgs: u64,
    pub consume_bytes: u64,
    pub publish_errors: u64,
    /// The first failed produce of each producer that had one, with the broker's error.
    pub publish_failures: Vec<String>,
    /// A produce was refused with an error that is not retriable.
    pub publish_refused: bool,
    pub publish_msgs_per_s: f64,
    pub publish_mb_per_s: f64,
    pub consume_msgs_per_s: f64,
    pub consume_mb_per_s: f64,
    pub publish_latency_us: Percentiles,
    pub e2e_latency_us: Percentiles,
    /// Produce request round trips, per request (see `Window::request_us`).
    pub request_latency_us: Percentiles,
    pub verify: Option<Verdict>,
    pub errors: Vec<String>,
    pub consumers_drain_timed_out: bool,
    pub intervals: Vec<IntervalPoint>,
}

impl Report {
    pub fn build(
        workload: &Workload,
        cluster: &Cluster,
        clock: Clock,
        results: Vec<ExecutorResult>,
        progress: Progress,
    ) -> Report {
        let mut total = Window::default();
        let mut errors = Vec::new();
        for r in &results {
            if let Some(t) = &r.total {
                total.add(t);
            }
            errors.extend(r.errors.iter().cloned());
        }
        let window_s = |last_ns: u64| {
            let end = clock.deadline_ns.min(last_ns.max(clock.warmup_end_ns));
            (end - clock.warmup_end_ns) as f64 / 1e9
        };
        // A run cut short by an error is measured up to its last event.
        let open_ended = clock.deadline_ns == u64::MAX || !errors.is_empty();
        let measured_publish_s = window_s(if open_ended {
            total.publish_last_ns
        } else {
            clock.deadline_ns
        });
        let measured_consume_s = window_s(if open_ended {
            total.consume_last_ns
        } else {
            clock.deadline_ns
        });
        let per_s = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        let verify = workload
            .verify
            .then(|| verdict(&results, cluster.leaders.len(), &errors));
        Report {
            workload: summary(workload, cluster),
            measured_publish_s,
            measured_consume_s,
            publish_msgs: total.publish_msgs,
            publish_bytes: total.publish_bytes,
            consume_msgs: total.consume_msgs,
            consume_bytes: total.consume_bytes,
            publish_errors: total.publish_errors,
            publish_failures: results
                .iter()
                .flat_map(|r| r.producers.iter())
                .filter_map(|p| Some(format!("producer {}: {}", p.id, p.first_failure.as_ref()?)))
                .collect(),
            publish_refused: results
                .iter()
                .flat_map(|r| r.producers.iter())
                .any(|p| p.refused),
            publish_msgs_per_s: per_s(total.publish_msgs, measured_publish_s),
            publish_mb_per_s: per_s(total.publish_bytes, measured_publish_s) / MB,
            consume_msgs_per_s: per_s(total.consume_msgs, measured_consume_s),
            consume_mb_per_s: per_s(total.consume_bytes, measured_consume_s) / MB,
            publish_latency_us: Percentiles::of(&total.publish_us),
            e2e_latency_us: Percentiles::of(&total.e2e_us),
            request_latency_us: Percentiles::of(&total.request_us),
            verify,
            errors,
            consumers_drain_timed_out: results
                .iter()
                .flat_map(|r| r.consumers.iter())
                .any(|c| c.drain_timed_out),
            intervals: progress.points,
        }
    }

    /// Whether the run should exit with success: no task failed, no produce was refused with an
    /// error that is not retriable, and --verify (if asked) passed.
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty()
            && !self.publish_refused
            && !matches!(&self.verify, Some(v) if !v.passed)
    }

    pub fn print(&self) {
        println!(
            "publish: {:.0} msg/s, {:.2} MB/s ({} messages in {:.1} s, {} errors)",
            self.publish_msgs_per_s,
            self.publish_mb_per_s,
            self.publish_msgs,
            self.measured_publish_s,
            self.publish_errors
        );
        println!(
            "consume: {:.0} msg/s, {:.2} MB/s ({} messages in {:.1} s)",
            self.consume_msgs_per_s,
            self.consume_mb_per_s,
            self.consume_msgs,
            self.measured_consume_s
        );
        for failure in &self.publish_failures {
            println!("publish failed: {failure}");
        }
        println!("publish latency: {}", self.publish_latency_us.line());
        println!("end-to-end latency: {}", self.e2e_latency_us.line());
        if self.request_latency_us.count > 0 {
            println!(
                "produce request round trip: {}",
                self.request_latency_us.line()
            );
        }
        if self.consumers_drain_timed_out {
            println!("note: consumers had not caught up when --drain-timeout expired");
        }
        for error in &self.errors {
            println!("error: {error}");
        }
        if let Some(v) = &self.verify {
            if v.passed {
                println!(
                    "verify: PASSED ({} acknowledged messages read back once each, in order)",
                    v.messages_acked
                );
            } else {
                println!(
                    "verify: FAILED: {} lost, {} duplicates, {} gaps, {} publish failures{}{}",
                    v.lost,
                    v.duplicates,
                    v.gaps,
                    v.publish_failures,
                    if v.problems.is_empty() { "" } else { ": " },
                    v.problems.join("; ")
                );
            }
        }
    }
}

fn summary(w: &Workload, cluster: &Cluster) -> WorkloadSummary {
    WorkloadSummary {
        bootstrap: w.bootstrap_text.clone(),
        topic: w.topic.clone(),
        partitions: cluster.leaders.len(),
        message_size: w.message_bytes,
        producers: w.producers,
        consumers: w.consumers,
        cores: w.cores,
        acks: match w.acks {
            -1 => "all".into(),
            n => n.to_string(),
        },
        batch_size: w.batch_bytes,
        linger_ms: w.linger.as_millis(),
        compression: format!("{:?}", w.compression).to_lowercase(),
        keys: match w.keys {
            Keys::None => "none".into(),
            Keys::RoundRobin => "round-robin".into(),
            Keys::Random(n) => format!("random:{n}"),
        },
        rate_msgs_per_s: w.rate_msgs_per_s,
        duration_s: w.duration.map(|d| d.as_secs_f64()),
        messages: w.messages,
        warmup_s: w.warmup.as_secs_f64(),
        max_in_flight: w.in_flight_max,
    }
}

/// Compares what producers had acknowledged with what consumers read.
fn verdict(results: &[ExecutorResult], partitions: usize, errors: &[String]) -> Verdict {
    let mut checks: BTreeMap<i32, PartitionCheck> = BTreeMap::new();
    for c in results.iter().flat_map(|r| r.consumers.iter()) {
        for (p, check) in &c.checks {
            checks.insert(*p, check.clone());
        }
    }
    let mut v = Verdict {
        passed: false,
        messages_acked: 0,
        lost: 0,
        duplicates: checks.values().map(|c| c.duplicates).sum(),
        gaps: checks.values().map(|c| c.gaps).sum(),
        publish_failures: 0,
        problems: Vec::new(),
    };
    let empty = PartitionCheck::default();
    for p in results.iter().flat_map(|r| r.producers.iter()) {
        v.publish_failures += p.failed_msgs;
        if let Some(failure) = &p.first_failure {
            v.problems.push(format!("producer {}: {failure}", p.id));
        }
        for partition in 0..partitions {
            let acked = p.acked_seqs.get(partition).copied().unwrap_or(0);
            v.messages_acked += acked;
            let check = checks.get(&(partition as i32)).unwrap_or(&empty);
            let read = check.next_seq.get(&p.id).copied().unwrap_or(0);
            if read < acked {
                v.lost += acked - read;
                v.problems.push(format!(
                    "producer {} partition {partition}: read up to seq {read} of {acked} \
                     acknowledged",
                    p.id
                ));
            }
        }
    }
    if !errors.is_empty() {
        v.problems.push(format!("{} task errors", errors.len()));
    }
    v.problems.truncate(10);
    v.passed = v.lost == 0
        && v.duplicates == 0
        && v.gaps == 0
        && v.publish_failures == 0
        && errors.is_empty();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_of(publish_msgs: u64) -> Window {
        Window {
            publish_msgs,
            ..Window::default()
        }
    }

    #[test]
    fn the_last_interval_is_as_long_as_it_was_and_its_rate_is_over_that() {
        let clock = Clock::new(Duration::ZERO, Some(Duration::from_secs(2)));
        let mut progress = Progress::new(clock, Duration::ZERO);
        progress.line(&window_of(302_000));
        progress.line(&window_of(302_000));
        // 4 ms after the deadline, the acks of the requests in flight then.
        let mut left = Intervals::new();
        left.insert(2, window_of(1_208));
        progress.finish(2_004_000_000, &mut left);
        let last = progress.points.last().expect("three points");
        assert_eq!(progress.points.len(), 3);
        assert!((last.duration_s - 0.004).abs() < 1e-9, "{last:?}");
        assert!(
            (last.publish_msgs_per_s - 302_000.0).abs() < 1.0,
            "{last:?}"
        );
        assert!((last.t_s - 2.004).abs() < 1e-9, "{last:?}");
    }

    #[test]
    fn an_empty_sliver_at_the_end_is_left_out() {
        let clock = Clock::new(Duration::ZERO, Some(Duration::from_secs(1)));
        let mut progress = Progress::new(clock, Duration::ZERO);
        progress.line(&window_of(10));
        progress.finish(1_003_000_000, &mut Intervals::new());
        assert_eq!(progress.points.len(), 1);
    }

    #[test]
    fn an_interval_is_warmup_when_it_lies_mostly_within_the_warmup() {
        let clock = Clock::new(Duration::from_millis(1_500), Some(Duration::from_secs(2)));
        let mut progress = Progress::new(clock, Duration::ZERO);
        for _ in 0..3 {
            progress.line(&window_of(1));
        }
        let warmup: Vec<bool> = progress.points.iter().map(|p| p.warmup).collect();
        // [0, 1) lies within the warm-up, [1, 2) half in, [2, 3) after.
        assert_eq!(warmup, vec![true, false, false]);
        let clock = Clock::new(Duration::from_secs(1), Some(Duration::from_secs(1)));
        let mut progress = Progress::new(clock, Duration::ZERO);
        progress.line(&window_of(1));
        progress.line(&window_of(1));
        assert!(progress.points[0].warmup, "0-1 s is all warm-up");
        assert!(!progress.points[1].warmup, "1-2 s is all measured");
    }
}
