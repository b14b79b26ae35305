//! Append throughput of 16 KiB batches to one partition from one shard.
//!
//! ```text
//! cargo run --release -p odradek-storage --example append_throughput -- \
//!     DIR SECONDS WAIT APPENDERS WINDOW
//! ```
//! `WAIT` is `written` (acks=1: on the device, no sync) or `durable` (acks=all: group commit).
//! Each of `APPENDERS` tasks keeps up to `WINDOW` appends in flight, awaiting the oldest one's
//! milestone when its window is full. Prints MiB/s of batches on the device (and synced).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::LocalExecutorBuilder;
use odradek_storage::testing::batch_of_size;
use odradek_storage::{
    AppendError, AppendReceipt, LeaderEpoch, LogConfig, PartitionLog, ShardStorage,
    ShardStorageConfig,
};

struct Args {
    dir: PathBuf,
    seconds: u64,
    durable: bool,
    appenders: usize,
    window: usize,
}

fn args() -> Args {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let get = |i: usize, default: &str| a.get(i).cloned().unwrap_or_else(|| default.to_string());
    Args {
        dir: PathBuf::from(get(0, "/tmp/odradek-append-bench")),
        seconds: get(1, "15").parse().expect("SECONDS is a number"),
        durable: match get(2, "written").as_str() {
            "written" => false,
            "durable" => true,
            other => panic!("WAIT is written or durable, not {other}"),
        },
        appenders: get(3, "8").parse().expect("APPENDERS is a number"),
        window: get(4, "1").parse().expect("WINDOW is a number"),
    }
}

async fn settle(receipt: AppendReceipt, durable: bool) {
    let done = if durable {
        receipt.durable().await
    } else {
        receipt.written().await
    };
    done.expect("append milestone");
}

async fn appender(log: Rc<PartitionLog>, until: Instant, durable: bool, window: usize) -> u64 {
    let batch = batch_of_size(16 << 10, 0, 0x42);
    let mut in_flight: VecDeque<AppendReceipt> = VecDeque::with_capacity(window);
    let mut bytes = 0u64;
    while Instant::now() < until {
        if in_flight.len() >= window {
            settle(in_flight.pop_front().expect("full window"), durable).await;
        }
        match log.append(batch.clone(), LeaderEpoch::SINGLE_NODE, 0) {
            Ok(receipt) => {
                bytes += batch.len() as u64;
                in_flight.push_back(receipt);
            }
            Err(AppendError::Backpressure) => match in_flight.pop_front() {
                Some(oldest) => settle(oldest, durable).await,
                None => glommio::timer::sleep(Duration::from_micros(100)).await,
            },
            Err(e) => panic!("append: {e}"),
        }
    }
    for receipt in in_flight {
        settle(receipt, durable).await;
    }
    bytes
}

fn main() {
    let args = args();
    let _ = std::fs::remove_dir_all(&args.dir);
    LocalExecutorBuilder::default()
        .spawn(move || async move {
            let shard = ShardStorage::new(ShardStorageConfig::default());
            let config = LogConfig {
                segment_bytes: 1 << 30,
                ..LogConfig::default()
            };
            let log = PartitionLog::open(args.dir.join("bench-0"), config, shard)
                .await
                .expect("open");
            let start = Instant::now();
            let until = start + Duration::from_secs(args.seconds);
            let tasks: Vec<_> = (0..args.appenders)
                .map(|_| {
                    glommio::spawn_local(appender(log.clone(), until, args.durable, args.window))
                })
                .collect();
            let mut bytes = 0;
            for t in tasks {
                bytes += t.await;
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "wait={} appenders={} window={} bytes={} seconds={:.2} MiB/s={:.1}",
                if args.durable { "durable" } else { "written" },
                args.appenders,
                args.window,
                bytes,
                secs,
                bytes as f64 / secs / (1 << 20) as f64
            );
            log.delete().await.expect("delete");
        })
        .expect("executor")
        .join()
        .expect("bench");
}
