//! A property test: random appends, reads, rolls (small segments), retention passes,
//! DeleteRecords and restarts; every synced batch still in the log reads back byte-identical at
//! its offset.

mod common;

use bytes::Bytes;
use common::*;
use odradek_storage::{LogConfig, Offset, ReadError, ShardStorage, ShardStorageConfig};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append {
        records: usize,
        value_bytes: usize,
    },
    /// Appends without waiting in between, reads the first one back while the rest may be
    /// pending, then waits for durability of the last.
    Burst {
        count: usize,
        value_bytes: usize,
    },
    Read {
        pick: usize,
        max_bytes: usize,
    },
    Retention {
        keep_bytes: i64,
    },
    DeleteRecords {
        pick: usize,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..4, 10usize..1_500)
            .prop_map(|(records, value_bytes)| Op::Append { records, value_bytes }),
        2 => (2usize..12, 10usize..3_000)
            .prop_map(|(count, value_bytes)| Op::Burst { count, value_bytes }),
        4 => (any::<usize>(), 1usize..6_000)
            .prop_map(|(pick, max_bytes)| Op::Read { pick, max_bytes }),
        1 => (4_000i64..20_000).prop_map(|keep_bytes| Op::Retention { keep_bytes }),
        1 => any::<usize>().prop_map(|pick| Op::DeleteRecords { pick }),
        1 => Just(Op::Reopen),
    ]
}

/// The model: every batch appended, as stored (base offset patched), in offset order.
struct Model {
    batches: Vec<(i64, i64, Bytes)>,
    next: i64,
}

impl Model {
    fn containing(&self, offset: i64) -> Option<&(i64, i64, Bytes)> {
        self.batches
            .iter()
            .find(|(base, last, _)| *base <= offset && offset <= *last)
    }
}

fn config(cache_bytes: usize) -> (LogConfig, ShardStorageConfig) {
    let log = LogConfig {
        segment_bytes: 4_096,
        index_interval_bytes: 512,
        retention_ms: -1,
        ..LogConfig::default()
    };
    (
        log,
        ShardStorageConfig {
            tail_cache_bytes: cache_bytes,
            ..ShardStorageConfig::default()
        },
    )
}

async fn check_all(log: &odradek_storage::PartitionLog, model: &Model) {
    let start = log.log_start_offset().get();
    for (base, last, bytes) in &model.batches {
        if *last < start {
            continue;
        }
        let out = log
            .read(Offset((*base).max(start)), 1, Offset(model.next))
            .await
            .expect("read");
        assert_eq!(&bytes_of(&out).await, bytes, "batch at {base}");
    }
}

fn run_ops(ops: Vec<Op>, cache_bytes: usize) {
    run(move || async move {
        let tmp = tempdir();
        let (log_config, shard_config) = config(cache_bytes);
        let mut shard = ShardStorage::new(shard_config.clone());
        let mut log = open(tmp.path(), log_config.clone(), &shard).await;
        let mut model = Model {
            batches: Vec::new(),
            next: 0,
        };
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append {
                    records,
                    value_bytes,
                } => {
                    let b = batch(records, value_bytes, i as i64, i as u8);
                    let r = log.append(b.clone(), EPOCH_0, 0).expect("append");
                    assert_eq!(r.base_offset, Offset(model.next));
                    r.durable().await.expect("durable");
                    model
                        .batches
                        .push((model.next, r.last_offset.get(), stored(&b, model.next)));
                    model.next = r.last_offset.get() + 1;
                }
                Op::Burst { count, value_bytes } => {
                    let mut receipts = Vec::new();
                    for j in 0..count {
                        let b = batch(1 + j % 3, value_bytes + j * 7, i as i64, j as u8);
                        let r = log.append(b.clone(), EPOCH_0, 0).expect("append");
                        model.batches.push((
                            model.next,
                            r.last_offset.get(),
                            stored(&b, model.next),
                        ));
                        model.next = r.last_offset.get() + 1;
                        receipts.push(r);
                    }
                    let first = receipts[0].base_offset;
                    let out = log
                        .read(first, 1, log.log_end_offset())
                        .await
                        .expect("read pending");
                    assert_eq!(
                        &bytes_of(&out).await,
                        &model.containing(first.get()).expect("modelled").2
                    );
                    receipts
                        .last()
                        .expect("some")
                        .durable()
                        .await
                        .expect("durable");
                    for r in &receipts {
                        r.durable().await.expect("durable");
                    }
                }
                Op::Read { pick, max_bytes } => {
                    let start = log.log_start_offset().get();
                    if model.next == start {
                        continue;
                    }
                    let offset = start + (pick as i64).rem_euclid(model.next - start);
                    let out = log
                        .read(Offset(offset), max_bytes, Offset(model.next))
                        .await
                        .expect("read");
                    let got = bytes_of(&out).await;
                    let (_, _, first) = model.containing(offset).expect("modelled");
                    assert!(
                        got.starts_with(first),
                        "read at {offset} starts with its batch"
                    );
                    assert!(
                        got.len() <= max_bytes.max(first.len()),
                        "max_bytes honoured beyond the first batch"
                    );
                }
                Op::Retention { keep_bytes } => {
                    let mut c = log.config();
                    c.retention_bytes = keep_bytes;
                    log.set_config(c);
                    let before = log.log_start_offset();
                    let outcome = log.enforce_retention(0).await.expect("retention");
                    assert_eq!(outcome.log_start_offset, log.log_start_offset());
                    assert!(
                        before <= outcome.log_start_offset
                            && outcome.log_start_offset <= Offset(model.next)
                    );
                }
                Op::DeleteRecords { pick } => {
                    let target = (pick as i64).rem_euclid(model.next + 1);
                    let before = log.log_start_offset();
                    let now = log
                        .delete_records_before(Offset(target))
                        .await
                        .expect("delete records");
                    assert_eq!(now, before.max(Offset(target)));
                    if target > before.get() && target < model.next {
                        let below = log.read(Offset(target - 1), 1, Offset(model.next)).await;
                        assert!(matches!(below, Err(ReadError::OffsetOutOfRange { .. })));
                    }
                }
                Op::Reopen => {
                    let start = log.log_start_offset();
                    log.close().await.expect("close");
                    drop(log);
                    shard = ShardStorage::new(shard_config.clone());
                    log = open(tmp.path(), log_config.clone(), &shard).await;
                    assert_eq!(log.log_end_offset(), Offset(model.next));
                    assert_eq!(log.log_start_offset(), start);
                }
            }
        }
        check_all(&log, &model).await;
        log.close().await.expect("close");
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_synced_batch_reads_back_byte_identical(
        ops in proptest::collection::vec(op(), 1..60),
        tiny_cache in any::<bool>(),
    ) {
        run_ops(ops, if tiny_cache { 2_000 } else { 1 << 20 });
    }
}
