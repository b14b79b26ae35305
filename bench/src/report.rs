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
use crate::stats::{Clock, Window};

const MB: f64 = 1e6;

/// One second of the run, as printed on the progress line.
#[derive(Clone, Debug, Serialize)]
pub struct IntervalPoint {
    pub t_s: f64,
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

/// Prints the per-second progress line and keeps the series.
pub struct Progress {
    clock: Clock,
    last_ns: u64,
    next_line_ns: u64,
    pub points: Vec<IntervalPoint>,
}

impl Progress {
    pub fn new(clock: Clock) -> Progress {
        Progress {
            clock,
            last_ns: 0,
            next_line_ns: 1_000_000_000,
            points: Vec::new(),
        }
    }

    /// Whether the next line is due; if not, how long until it is.
    pub fn line_due(&mut self) -> Result<(), Duration> {
        let now = self.clock.now_ns();
        if now < self.next_line_ns {
            return Err(Duration::from_nanos(self.next_line_ns - now));
        }
        self.next_line_ns = self.next_line_ns.max(now) + 1_000_000_000;
        Ok(())
    }

    pub fn line(&mut self, window: &Window) {
        let now = self.clock.now_ns();
        let seconds = (now.saturating_sub(self.last_ns)) as f64 / 1e9;
        self.last_ns = now;
        let empty = window.publish_msgs == 0 && window.consume_msgs == 0;
        if seconds <= 0.0 || (empty && seconds < 0.5) {
            return;
        }
        let point = IntervalPoint {
            t_s: now as f64 / 1e9,
            warmup: now < self.clock.warmup_end_ns,
            publish_msgs_per_s: window.publish_msgs as f64 / seconds,
            publish_mb_per_s: window.publish_bytes as f64 / MB / seconds,
            consume_msgs_per_s: window.consume_msgs as f64 / seconds,
            consume_mb_per_s: window.consume_bytes as f64 / MB / seconds,
            publish_p50_us: window.publish_us.value_at_quantile(0.5),
            publish_p99_us: window.publish_us.value_at_quantile(0.99),
            e2e_p50_us: window.e2e_us.value_at_quantile(0.5),
            e2e_p99_us: window.e2e_us.value_at_quantile(0.99),
        };
        let errors = if window.publish_errors > 0 {
            format!(" | {} publish errors", window.publish_errors)
        } else {
            String::new()
        };
        eprintln!(
            "[{:6.1}s{}] pub {:>9.0} msg/s {:>8.2} MB/s p50 {} p99 {} | con {:>9.0} msg/s {:>8.2} MB/s e2e p50 {} p99 {}{}",
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
    pub publish_msgs_per_s: f64,
    pub publish_mb_per_s: f64,
    pub consume_msgs_per_s: f64,
    pub consume_mb_per_s: f64,
    pub publish_latency_us: Percentiles,
    pub e2e_latency_us: Percentiles,
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
            publish_msgs_per_s: per_s(total.publish_msgs, measured_publish_s),
            publish_mb_per_s: per_s(total.publish_bytes, measured_publish_s) / MB,
            consume_msgs_per_s: per_s(total.consume_msgs, measured_consume_s),
            consume_mb_per_s: per_s(total.consume_bytes, measured_consume_s) / MB,
            publish_latency_us: Percentiles::of(&total.publish_us),
            e2e_latency_us: Percentiles::of(&total.e2e_us),
            verify,
            errors,
            consumers_drain_timed_out: results
                .iter()
                .flat_map(|r| r.consumers.iter())
                .any(|c| c.drain_timed_out),
            intervals: progress.points,
        }
    }

    /// Whether the run should exit with success.
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty() && !matches!(&self.verify, Some(v) if !v.passed)
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
        println!("publish latency: {}", self.publish_latency_us.line());
        println!("end-to-end latency: {}", self.e2e_latency_us.line());
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
                    "producer {} partition {partition}: read up to seq {read} of {acked} acknowledged",
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
