//! Idempotent producers: retries answered with the first offsets, gaps and fenced epochs
//! refused, and the state surviving clean and unclean restarts and segment rolls.

mod common;

use std::path::Path;
use std::rc::Rc;

use common::*;
use odradek_storage::testing::{producer_batch, Producer};
use odradek_storage::{AppendError, LogConfig, Offset, PartitionLog, SequenceError};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4_096,
        ..LogConfig::default()
    }
}

fn from(id: i64, epoch: i16, first_seq: i32) -> Producer {
    Producer {
        id,
        epoch,
        first_seq,
    }
}

/// Appends `count` batches of two records (about 700 bytes each) for producer `id`, epoch 0,
/// starting at sequence `first_seq`; returns the base offset of each.
async fn produce(log: &Rc<PartitionLog>, id: i64, first_seq: i32, count: i32) -> Vec<i64> {
    let mut bases = Vec::new();
    let mut last = None;
    for i in 0..count {
        let receipt = log
            .append(producer_batch(2, 300, from(id, 0, first_seq + 2 * i)), 0)
            .expect("append");
        bases.push(receipt.base_offset.get());
        last = Some(receipt);
    }
    last.expect("appended").durable().await.expect("durable");
    bases
}

/// Sends again the batch of producer `id` that started at `first_seq`: the log must answer
/// with `base` and store nothing.
async fn retry_is_duplicate(log: &Rc<PartitionLog>, id: i64, first_seq: i32, base: i64) {
    let end = log.log_end_offset();
    let receipt = log
        .append(producer_batch(2, 300, from(id, 0, first_seq)), 0)
        .expect("a retry is answered");
    assert_eq!(
        receipt.base_offset,
        Offset(base),
        "the first offsets of the batch"
    );
    assert_eq!(receipt.last_offset, Offset(base + 1));
    receipt.durable().await.expect("durable");
    assert_eq!(log.log_end_offset(), end, "nothing stored twice");
}

fn unclean(dir: &Path) {
    let _ = std::fs::remove_file(partition_dir(dir).join(".clean"));
}

#[test]
fn given_a_retry_gap_or_old_epoch_the_log_should_dedupe_or_refuse() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), config(), &shard()).await;
        let bases = produce(&log, 7, 0, 3).await;
        assert_eq!(bases, vec![0, 2, 4]);
        retry_is_duplicate(&log, 7, 2, 2).await;
        let gap = log.append(producer_batch(2, 300, from(7, 0, 9)), 0);
        assert!(matches!(
            gap,
            Err(AppendError::Sequence(SequenceError::OutOfOrder {
                last: 5,
                got: 9,
                ..
            }))
        ));
        // A new epoch starts at 0; the old one is fenced from then on.
        log.append(producer_batch(1, 10, from(7, 1, 0)), 0)
            .expect("new epoch");
        let fenced = log.append(producer_batch(2, 300, from(7, 0, 6)), 0);
        assert!(matches!(
            fenced,
            Err(AppendError::Sequence(SequenceError::StaleEpoch { .. }))
        ));
        // Another producer is independent, and a batch without a producer id is never checked.
        produce(&log, 8, 100, 1).await;
        log.append(batch(1, 10, 0, 1), 0).expect("plain batch");
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_clean_restart_retries_should_still_be_duplicates() {
    run(|| async {
        let tmp = tempdir();
        let bases = {
            let log = open(tmp.path(), config(), &shard()).await;
            let bases = produce(&log, 3, 0, 4).await;
            log.close().await.expect("close");
            bases
        };
        let log = open(tmp.path(), config(), &shard()).await;
        assert_eq!(log.producer_count(), 1);
        retry_is_duplicate(&log, 3, 6, bases[3]).await;
        retry_is_duplicate(&log, 3, 0, bases[0]).await;
        produce(&log, 3, 8, 1).await;
        log.close().await.expect("close");
    });
}

#[test]
fn given_an_unclean_restart_after_rolls_retries_should_still_be_duplicates() {
    run(|| async {
        let tmp = tempdir();
        // Producer 1 writes only into the first segments; producer 2 keeps writing after them,
        // so producer 1's batches sit in segments recovery does not walk without a snapshot.
        let (early, late) = {
            let log = open(tmp.path(), config(), &shard()).await;
            let early = produce(&log, 1, 0, 5).await;
            let late = produce(&log, 2, 0, 20).await;
            // Let the roll snapshots land before the "crash".
            glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
            drop(log);
            glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
            (early, late)
        };
        unclean(tmp.path());
        let snapshots = std::fs::read_dir(partition_dir(tmp.path()))
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".snapshot"))
            })
            .count();
        assert!(
            (1..=2).contains(&snapshots),
            "roll snapshots are written and pruned: {snapshots}"
        );
        let log = open(tmp.path(), config(), &shard()).await;
        assert_eq!(log.producer_count(), 2);
        retry_is_duplicate(&log, 1, 8, early[4]).await;
        retry_is_duplicate(&log, 2, 38, late[19]).await;
        let gap = log.append(producer_batch(2, 300, from(2, 0, 41)), 0);
        assert!(gap.is_err(), "the sequence is known after recovery");
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_snapshot_past_the_recovered_end_it_should_be_removed_and_the_log_walked() {
    run(|| async {
        let tmp = tempdir();
        let bases = {
            let log = open(tmp.path(), config(), &shard()).await;
            let bases = produce(&log, 4, 0, 3).await;
            log.close().await.expect("close");
            bases
        };
        // A snapshot from a future the crash took away: it claims state this log never had.
        let dir = partition_dir(tmp.path());
        let stale = dir.join(format!("{:020}.snapshot", 1_000));
        std::fs::copy(dir.join(format!("{:020}.snapshot", 6)), &stale).expect("copy");
        unclean(tmp.path());
        let log = open(tmp.path(), config(), &shard()).await;
        assert!(!stale.exists(), "removed at recovery");
        retry_is_duplicate(&log, 4, 4, bases[2]).await;
        log.close().await.expect("close");
    });
}
