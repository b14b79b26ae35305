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
            .append(
                producer_batch(2, 300, from(id, 0, first_seq + 2 * i)),
                EPOCH_0,
                0,
            )
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
        .append(producer_batch(2, 300, from(id, 0, first_seq)), EPOCH_0, 0)
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
        let gap = log.append(producer_batch(2, 300, from(7, 0, 9)), EPOCH_0, 0);
        assert!(matches!(
            gap,
            Err(AppendError::Sequence(SequenceError::OutOfOrder {
                last: 5,
                got: 9,
                ..
            }))
        ));
        // A new epoch starts at 0; the old one is fenced from then on.
        log.append(producer_batch(1, 10, from(7, 1, 0)), EPOCH_0, 0)
            .expect("new epoch");
        let fenced = log.append(producer_batch(2, 300, from(7, 0, 6)), EPOCH_0, 0);
        assert!(matches!(
            fenced,
            Err(AppendError::Sequence(SequenceError::StaleEpoch { .. }))
        ));
        // Another producer is independent, and a batch without a producer id is never checked.
        produce(&log, 8, 100, 1).await;
        log.append(batch(1, 10, 0, 1), EPOCH_0, 0)
            .expect("plain batch");
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
            // Let the roll snapshots (written one after another) land before the "crash".
            glommio::timer::sleep(std::time::Duration::from_millis(1000)).await;
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
        let gap = log.append(producer_batch(2, 300, from(2, 0, 41)), EPOCH_0, 0);
        assert!(gap.is_err(), "the sequence is known after recovery");
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_crash_that_took_batches_a_snapshot_covered_recovery_should_follow_the_log() {
    run(|| async {
        let tmp = tempdir();
        let segment = partition_dir(tmp.path()).join(format!("{:020}.log", 0));
        let config = LogConfig::default();
        let kept_len = {
            let log = open(tmp.path(), config.clone(), &shard()).await;
            produce(&log, 4, 0, 3).await;
            log.close().await.expect("close");
            std::fs::metadata(&segment).expect("segment").len()
        };
        {
            // Three more batches (sequences 6..11), then a clean close: its snapshot covers them.
            let log = open(tmp.path(), config.clone(), &shard()).await;
            produce(&log, 4, 6, 3).await;
            log.close().await.expect("close");
        }
        // A crash that lost those three batches after all (the device dropped them): the
        // snapshot at offset 12 describes a history the log no longer has.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .expect("open");
        file.set_len(kept_len).expect("truncate");
        unclean(tmp.path());
        let log = open(tmp.path(), config, &shard()).await;
        assert_eq!(log.log_end_offset(), Offset(6));
        assert!(
            !partition_dir(tmp.path())
                .join(format!("{:020}.snapshot", 12))
                .exists(),
            "the snapshot past the end is removed"
        );
        retry_is_duplicate(&log, 4, 4, 4).await;
        // Sequence 6 is new again for this log: stored at offset 6, not taken for a retry of
        // the lost batch.
        let receipt = log
            .append(producer_batch(2, 300, from(4, 0, 6)), EPOCH_0, 0)
            .expect("the next batch after the recovered ones");
        assert_eq!(receipt.base_offset, Offset(6));
        receipt.durable().await.expect("durable");
        assert_eq!(log.log_end_offset(), Offset(8));
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_retry_before_the_original_is_durable_its_answer_should_wait_for_the_original() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), config(), &shard()).await;
        let original = log
            .append(producer_batch(2, 300, from(5, 0, 0)), EPOCH_0, 0)
            .expect("append");
        let retry = log
            .append(producer_batch(2, 300, from(5, 0, 0)), EPOCH_0, 0)
            .expect("retry");
        assert_eq!(retry.base_offset, original.base_offset);
        retry.durable().await.expect("durable");
        assert!(
            log.durable_end_offset() >= Offset(2),
            "the retry was acknowledged before the batch it stands for was durable"
        );
        original.durable().await.expect("durable");
        assert_eq!(log.log_end_offset(), Offset(2));
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_crash_after_a_clean_restart_the_close_snapshot_and_the_batches_after_it_should_rebuild_producers(
) {
    run(|| async {
        let tmp = tempdir();
        let config = LogConfig::default(); // One segment: the clean close's snapshot is inside it.
        let first = {
            let log = open(tmp.path(), config.clone(), &shard()).await;
            let first = produce(&log, 7, 0, 3).await;
            log.close().await.expect("close");
            first
        };
        let second = {
            let log = open(tmp.path(), config.clone(), &shard()).await;
            let second = produce(&log, 7, 6, 3).await;
            produce(&log, 8, 0, 2).await;
            drop(log);
            glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
            second
        };
        unclean(tmp.path());
        let log = open(tmp.path(), config, &shard()).await;
        assert_eq!(log.log_end_offset(), Offset(16));
        assert_eq!(log.producer_count(), 2);
        // Producer 7's last five batches span the snapshot (offset 6) and the batches after it.
        retry_is_duplicate(&log, 7, 2, first[1]).await;
        retry_is_duplicate(&log, 7, 10, second[2]).await;
        retry_is_duplicate(&log, 8, 2, 14).await;
        let gap = log.append(producer_batch(2, 300, from(7, 0, 14)), EPOCH_0, 0);
        assert!(gap.is_err(), "producer 7's next sequence is 12");
        let next = log
            .append(producer_batch(2, 300, from(7, 0, 12)), EPOCH_0, 0)
            .expect("the next batch");
        assert_eq!(next.base_offset, Offset(16));
        next.durable().await.expect("durable");
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_crash_before_any_snapshot_landed_the_last_two_segments_should_rebuild_producers() {
    run(|| async {
        let tmp = tempdir();
        let bases = {
            let log = open(tmp.path(), config(), &shard()).await;
            let bases = produce(&log, 3, 0, 8).await;
            glommio::timer::sleep(std::time::Duration::from_millis(500)).await;
            drop(log);
            glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
            bases
        };
        unclean(tmp.path());
        let dir = partition_dir(tmp.path());
        let mut logs = 0;
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("snapshot") => std::fs::remove_file(&path).expect("remove snapshot"),
                Some("log") => logs += 1,
                _ => {}
            }
        }
        assert_eq!(logs, 2, "the batches span two segments");
        let log = open(tmp.path(), config(), &shard()).await;
        assert_eq!(log.producer_count(), 1);
        // The fourth batch lies in the first segment and is one of the last five.
        retry_is_duplicate(&log, 3, 6, bases[3]).await;
        retry_is_duplicate(&log, 3, 14, bases[7]).await;
        let gap = log.append(producer_batch(2, 300, from(3, 0, 18)), EPOCH_0, 0);
        assert!(gap.is_err(), "the next sequence is 16");
        log.close().await.expect("close");
    });
}
