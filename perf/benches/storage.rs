//! Criterion benches of the storage hot paths: appends (1 KiB and 16 KiB batches, written to the
//! device), CRC validation, offset-index lookup, and reads of a cached and of an uncached range.
//!
//! The log lives on a glommio executor thread; each measurement is a command sent to it, run
//! there, and timed there (so the channel hop is not measured). Files go to a temporary directory
//! under `$ODRADEK_BENCH_DIR` (default `/tmp`), which must support O_DIRECT.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use glommio::LocalExecutorBuilder;
use odradek_storage::index::OffsetIndex;
use odradek_storage::testing::batch_of_size;
use odradek_storage::{
    Chunk, LeaderEpoch, LogConfig, Offset, PartitionLog, ShardStorage, ShardStorageConfig,
};

/// What the executor thread is asked to do `iters` times; it answers with the time taken.
enum Command {
    Append { batch: Bytes, iters: u64 },
    ReadCached { iters: u64 },
    ReadUncached { iters: u64 },
}

struct Harness {
    commands: mpsc::Sender<(Command, mpsc::Sender<Duration>)>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start() -> Harness {
        let base = std::env::var("ODRADEK_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from("/tmp"));
        let dir = tempfile::Builder::new()
            .prefix("odradek-bench-")
            .tempdir_in(base)
            .expect("bench dir");
        let path = dir.path().to_path_buf();
        let (tx, rx) = mpsc::channel::<(Command, mpsc::Sender<Duration>)>();
        LocalExecutorBuilder::default()
            .name("storage-bench")
            .spawn(move || async move { serve(path, rx).await })
            .expect("executor");
        Harness {
            commands: tx,
            _dir: dir,
        }
    }

    fn time(&self, command: Command) -> Duration {
        let (tx, rx) = mpsc::channel();
        self.commands.send((command, tx)).expect("executor alive");
        rx.recv().expect("executor answers")
    }
}

const READ_BATCHES: i64 = 256;

async fn serve(dir: PathBuf, commands: mpsc::Receiver<(Command, mpsc::Sender<Duration>)>) {
    let config = LogConfig {
        segment_bytes: 256 << 20,
        ..LogConfig::default()
    };
    // Each log has its own shard, so the appends cannot evict the hot log's cached batches.
    let appending = ShardStorage::new(ShardStorageConfig::default());
    let cached = ShardStorage::new(ShardStorageConfig::default());
    let uncached = ShardStorage::new(ShardStorageConfig {
        tail_cache_bytes: 0,
        ..ShardStorageConfig::default()
    });
    let appends = PartitionLog::open(dir.join("append-0"), config.clone(), appending)
        .await
        .expect("open");
    let hot = filled(dir.join("hot-0"), &config, &cached).await;
    let cold = filled(dir.join("cold-0"), &config, &uncached).await;
    // Blocking between commands is fine: this executor runs nothing else, and every command
    // waits for its own writes before it answers.
    while let Ok((command, reply)) = commands.recv() {
        let took = match command {
            Command::Append { batch, iters } => append(&appends, batch, iters).await,
            Command::ReadCached { iters } => read(&hot, iters).await,
            Command::ReadUncached { iters } => read(&cold, iters).await,
        };
        let _ = reply.send(took);
    }
}

async fn filled(dir: PathBuf, config: &LogConfig, shard: &Rc<ShardStorage>) -> Rc<PartitionLog> {
    let log = PartitionLog::open(dir, config.clone(), shard.clone())
        .await
        .expect("open");
    let mut last = None;
    for i in 0..READ_BATCHES {
        last = Some(
            log.append(batch_of_size(16 << 10, i, 1), LeaderEpoch::SINGLE_NODE, 0)
                .expect("append"),
        );
    }
    last.expect("appended").written().await.expect("written");
    log
}

/// `iters` appends of one batch each, until all are on the device.
async fn append(log: &Rc<PartitionLog>, batch: Bytes, iters: u64) -> Duration {
    let start = Instant::now();
    let mut last = None;
    for _ in 0..iters {
        let receipt = loop {
            match log.append(batch.clone(), LeaderEpoch::SINGLE_NODE, 0) {
                Ok(r) => break r,
                Err(odradek_storage::AppendError::Backpressure) => {
                    if let Some(r) = &last {
                        let r: &odradek_storage::AppendReceipt = r;
                        r.written().await.expect("written");
                    }
                    glommio::yield_if_needed().await;
                }
                Err(e) => panic!("append: {e}"),
            }
        };
        last = Some(receipt);
    }
    if let Some(r) = last {
        r.written().await.expect("written");
    }
    start.elapsed()
}

/// `iters` reads of 1 MiB from a rotating offset, the bytes brought into memory.
async fn read(log: &Rc<PartitionLog>, iters: u64) -> Duration {
    let start = Instant::now();
    let end = log.log_end_offset();
    for i in 0..iters {
        let offset = Offset((i as i64 * 7) % (READ_BATCHES - 64));
        let outcome = log.read(offset, 1 << 20, end).await.expect("read");
        let mut bytes = 0;
        for chunk in &outcome.chunks {
            bytes += match chunk {
                Chunk::Memory(b) => b.len(),
                Chunk::File(region) => region.read().await.expect("region").len(),
            };
        }
        assert!(bytes >= 1 << 19, "a read brings most of 1 MiB");
    }
    start.elapsed()
}

fn appends(c: &mut Criterion, harness: &Harness) {
    let mut group = c.benchmark_group("append");
    for (name, size) in [("1KiB", 1 << 10), ("16KiB", 16 << 10)] {
        let batch = batch_of_size(size, 0, 7);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                harness.time(Command::Append {
                    batch: batch.clone(),
                    iters,
                })
            })
        });
    }
    group.finish();
}

fn reads(c: &mut Criterion, harness: &Harness) {
    let mut group = c.benchmark_group("read_1MiB");
    group.throughput(Throughput::Bytes(1 << 20));
    group.bench_function("cached", |b| {
        b.iter_custom(|iters| harness.time(Command::ReadCached { iters }))
    });
    group.bench_function("uncached", |b| {
        b.iter_custom(|iters| harness.time(Command::ReadUncached { iters }))
    });
    group.finish();
}

fn crc(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    for (name, size) in [("1KiB", 1 << 10), ("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        let batch = batch_of_size(size, 0, 7);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                odradek_storage::batch::validate(std::hint::black_box(&batch), 2 << 20)
                    .expect("valid")
            })
        });
    }
    group.finish();
}

fn index_lookup(c: &mut Criterion) {
    // A full 1 GiB segment at the default interval: 262,144 entries.
    let mut index = OffsetIndex::default();
    for i in 1..=262_144u32 {
        index.append(i * 4, i * 4096);
    }
    let mut probe = 0u32;
    c.bench_function("index_lookup_256k_entries", |b| {
        b.iter_batched(
            || {
                probe = probe.wrapping_mul(1_103_515_245).wrapping_add(12_345) % (262_144 * 4);
                probe
            },
            |p| index.lookup(std::hint::black_box(p)),
            BatchSize::SmallInput,
        )
    });
}

fn storage(c: &mut Criterion) {
    crc(c);
    index_lookup(c);
    let harness = Harness::start();
    appends(c, &harness);
    reads(c, &harness);
}

criterion_group!(benches, storage);
criterion_main!(benches);
