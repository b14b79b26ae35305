//! One run: bootstrap on a short-lived executor, then one executor per core running its share
//! of producers and consumers, while the main thread (not a reactor) prints a progress line
//! every second.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use glommio::{LocalExecutorBuilder, Placement};

use crate::args::Workload;
use crate::bootstrap::{self, Cluster};
use crate::consumer::{run_consumer, ConsumerCtx, ConsumerResult};
use crate::error::BenchError;
use crate::pacing::linger_note;
use crate::producer::{run_producer, ProducerCtx, ProducerResult};
use crate::report::{Progress, Report};
use crate::stats::{Clock, Intervals, LocalStats, Window};

/// How often executors move their interval counters to the shared one.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often the main thread checks whether the executors are done.
const EXIT_POLL: Duration = Duration::from_millis(20);
/// How long after an interval ends its line is printed: two flushes, so that every executor
/// has handed over that interval's events even if its flush timer fired late.
const LINE_LAG: Duration = Duration::from_millis(2 * FLUSH_EVERY.as_millis() as u64);

/// State shared across executors (atomics touched once per produce response, not per message).
pub struct Shared {
    /// Per partition: the highest acknowledged offset + 1 (where consumers may stop).
    pub acked_high: Vec<AtomicI64>,
    pub producers_left: AtomicUsize,
    /// When the last producer finished (ns on the run clock); 0 while some still run.
    pub producers_done_ns: AtomicU64,
    pub executors_left: AtomicUsize,
    /// Messages received by all consumers (for --messages with --producers 0).
    pub consumed: AtomicU64,
}

/// What one executor hands back.
#[derive(Default)]
pub struct ExecutorResult {
    pub total: Option<Window>,
    pub producers: Vec<ProducerResult>,
    pub consumers: Vec<ConsumerResult>,
    pub errors: Vec<String>,
}

pub fn run(workload: Workload) -> Result<Report, BenchError> {
    let workload = Arc::new(workload);
    let cluster = Arc::new(discover(&workload)?);
    let clock = Clock::new(workload.warmup, workload.duration);
    let shared = Arc::new(Shared {
        acked_high: cluster
            .start_offsets
            .iter()
            .map(|&o| AtomicI64::new(o))
            .collect(),
        producers_left: AtomicUsize::new(workload.producers),
        producers_done_ns: AtomicU64::new(0),
        executors_left: AtomicUsize::new(workload.cores),
        consumed: AtomicU64::new(0),
    });
    if workload.consumers > cluster.leaders.len() {
        eprintln!(
            "note: {} consumers for {} partitions: {} will idle",
            workload.consumers,
            cluster.leaders.len(),
            workload.consumers - cluster.leaders.len()
        );
    }
    let rate_per_producer = workload.rate_msgs_per_s / workload.producers.max(1) as f64;
    let w = &workload;
    if let Some(note) = linger_note(rate_per_producer, w.message_bytes, w.batch_bytes, w.linger) {
        eprintln!("{note}");
    }
    let intervals = Arc::new(Mutex::new(Intervals::new()));
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    let mut handles = Vec::with_capacity(workload.cores);
    for core in 0..workload.cores {
        let plan = ExecutorPlan {
            core,
            run_id,
            clock,
            workload: Arc::clone(&workload),
            cluster: Arc::clone(&cluster),
            shared: Arc::clone(&shared),
            intervals: Arc::clone(&intervals),
        };
        let placement = if workload.pin {
            Placement::Fixed(core)
        } else {
            Placement::Unbound
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("bench-{core}"))
            .spawn(move || plan.run())
            .map_err(|e| BenchError::Executor(e.to_string()))?;
        handles.push(handle);
    }
    let mut progress = Progress::new(clock, LINE_LAG);
    while shared.executors_left.load(Ordering::Acquire) > 0 {
        match progress.line_due() {
            // Short naps, so that the end of the run is noticed quickly.
            Err(wait) => std::thread::sleep(wait.min(EXIT_POLL)),
            Ok(index) => progress.line(&take_interval(&intervals, index)),
        }
    }
    let mut results = Vec::new();
    for handle in handles {
        match handle.join() {
            Ok(result) => results.push(result),
            Err(e) => return Err(BenchError::Executor(e.to_string())),
        }
    }
    let end_ns = clock.now_ns();
    match intervals.lock() {
        Ok(mut left) => progress.finish(end_ns, &mut left),
        Err(_) => progress.finish(end_ns, &mut Intervals::new()),
    }
    Ok(Report::build(&workload, &cluster, clock, results, progress))
}

fn take_interval(intervals: &Mutex<Intervals>, index: u64) -> Window {
    match intervals.lock() {
        Ok(mut all) => {
            let window = all.remove(&index).unwrap_or_default();
            // Events flushed after their line was printed are left out rather than kept.
            *all = all.split_off(&(index + 1));
            window
        }
        Err(_) => Window::default(),
    }
}

fn discover(workload: &Workload) -> Result<Cluster, BenchError> {
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .name("bench-bootstrap")
        .make()
        .map_err(|e| BenchError::Executor(e.to_string()))?;
    executor.run(bootstrap::discover(workload))
}

struct ExecutorPlan {
    core: usize,
    run_id: u32,
    clock: Clock,
    workload: Arc<Workload>,
    cluster: Arc<Cluster>,
    shared: Arc<Shared>,
    intervals: Arc<Mutex<Intervals>>,
}

impl ExecutorPlan {
    async fn run(self) -> ExecutorResult {
        // glommio's first timer can fire tens of milliseconds late (its issue #653): take that
        // hit here rather than in a producer's first fixed-rate wait.
        glommio::timer::sleep(Duration::from_millis(1)).await;
        let stats = Rc::new(RefCell::new(LocalStats::new(self.clock)));
        let flusher =
            glommio::spawn_local(flush_loop(Rc::clone(&stats), Arc::clone(&self.intervals)))
                .detach();
        let consumers = self.spawn_consumers(&stats);
        let producers = self.spawn_producers(&stats);
        let mut result = ExecutorResult::default();
        for handle in producers {
            match handle.await {
                Some(Ok(p)) => result.producers.push(p),
                Some(Err(e)) => result.errors.push(e.to_string()),
                None => result.errors.push("a producer task was cancelled".into()),
            }
        }
        for handle in consumers {
            match handle.await {
                Some(Ok(c)) => result.consumers.push(c),
                Some(Err(e)) => result.errors.push(e.to_string()),
                None => result.errors.push("a consumer task was cancelled".into()),
            }
        }
        flusher.cancel();
        let mut local = stats.borrow_mut();
        local.flush(&self.intervals);
        result.total = Some(std::mem::take(&mut local.total));
        self.shared.executors_left.fetch_sub(1, Ordering::AcqRel);
        result
    }

    fn spawn_producers(
        &self,
        stats: &Rc<RefCell<LocalStats>>,
    ) -> Vec<glommio::task::JoinHandle<Result<ProducerResult, BenchError>>> {
        let w = &self.workload;
        (0..w.producers)
            .filter(|i| i % w.cores == self.core)
            .map(|i| {
                let quota = w.messages.map(|n| {
                    let share = n / w.producers as u64;
                    share + u64::from((i as u64) < n % w.producers as u64)
                });
                let ctx = ProducerCtx {
                    id: i as u32,
                    run_id: self.run_id,
                    workload: Arc::clone(w),
                    cluster: Arc::clone(&self.cluster),
                    shared: Arc::clone(&self.shared),
                    stats: Rc::clone(stats),
                    quota,
                };
                let shared = Arc::clone(&self.shared);
                let clock = self.clock;
                glommio::spawn_local(async move {
                    let result = run_producer(ctx).await;
                    // Counted out whatever happened, so that consumers never wait for it.
                    if shared.producers_left.fetch_sub(1, Ordering::AcqRel) == 1 {
                        let _ = shared.producers_done_ns.compare_exchange(
                            0,
                            clock.now_ns().max(1),
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        );
                    }
                    result
                })
                .detach()
            })
            .collect()
    }

    fn spawn_consumers(
        &self,
        stats: &Rc<RefCell<LocalStats>>,
    ) -> Vec<glommio::task::JoinHandle<Result<ConsumerResult, BenchError>>> {
        let w = &self.workload;
        let partitions = self.cluster.leaders.len();
        (0..w.consumers)
            .filter(|i| i % w.cores == self.core)
            .filter_map(|i| {
                let assigned: Vec<i32> = (0..partitions)
                    .filter(|p| p % w.consumers == i)
                    .map(|p| p as i32)
                    .collect();
                if assigned.is_empty() {
                    return None; // More consumers than partitions: this one idles.
                }
                let ctx = ConsumerCtx {
                    run_id: self.run_id,
                    partitions: assigned,
                    workload: Arc::clone(w),
                    cluster: Arc::clone(&self.cluster),
                    shared: Arc::clone(&self.shared),
                    stats: Rc::clone(stats),
                };
                Some(glommio::spawn_local(run_consumer(ctx)).detach())
            })
            .collect()
    }
}

async fn flush_loop(stats: Rc<RefCell<LocalStats>>, intervals: Arc<Mutex<Intervals>>) {
    loop {
        glommio::timer::sleep(FLUSH_EVERY).await;
        stats.borrow_mut().flush(&intervals);
    }
}
