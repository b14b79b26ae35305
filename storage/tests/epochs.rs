//! The leader-epoch cache: every batch stamped with the epoch that appended it, the
//! `leader-epoch-checkpoint` on the device before the batches it covers, and the answers of
//! OffsetForLeaderEpoch across clean and unclean restarts, retention and old directories.

mod common;

use std::rc::Rc;

use common::*;
use odradek_storage::{AppendError, BatchHeader, LeaderEpoch, LogConfig, Offset, PartitionLog};

const CHECKPOINT: &str = "leader-epoch-checkpoint";

/// Appends one single-record batch of ~1000 bytes per epoch in `epochs`, in order, and waits
/// until the last is durable.
async fn append_under(log: &Rc<PartitionLog>, epochs: &[i32]) {
    let mut last = None;
    for &epoch in epochs {
        last = Some(
            log.append(batch_of_size(1_000, 0, 1), LeaderEpoch(epoch), 0)
                .expect("append"),
        );
    }
    last.expect("appended").durable().await.expect("durable");
}

fn checkpoint(dir: &std::path::Path) -> String {
    std::fs::read_to_string(partition_dir(dir).join(CHECKPOINT)).expect("checkpoint")
}

fn end_for(log: &PartitionLog, epoch: i32) -> Option<(i32, i64)> {
    log.end_offset_for_epoch(LeaderEpoch(epoch))
        .map(|(e, o)| (e.0, o.get()))
}

/// The epochs stamped in the batches from offset 0 to the log end.
async fn stamped(log: &PartitionLog) -> Vec<i32> {
    let end = log.log_end_offset();
    let out = log.read(Offset(0), 1 << 20, end).await.expect("read");
    let bytes = bytes_of(&out).await;
    let mut rest = &bytes[..];
    let mut epochs = Vec::new();
    while let Some(header) = BatchHeader::parse(rest) {
        epochs.push(header.partition_leader_epoch());
        rest = &rest[header.total_bytes().expect("length")..];
    }
    epochs
}

#[test]
fn given_appends_under_several_epochs_should_stamp_them_and_answer_where_each_ends() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        assert_eq!(end_for(&log, 0), None, "an empty log knows no epoch");
        append_under(&log, &[0, 0, 0, 2, 2, 5]).await;
        assert_eq!(stamped(&log).await, vec![0, 0, 0, 2, 2, 5]);
        assert_eq!(checkpoint(tmp.path()), "0\n3\n0 0\n2 3\n5 5\n");
        let answers =
            |log: &PartitionLog| [0, 1, 2, 3, 5, 6].map(|epoch| end_for(log, epoch)).to_vec();
        let expected = vec![
            Some((0, 3)),
            Some((0, 3)),
            Some((2, 5)),
            Some((2, 5)),
            Some((5, 6)),
            None,
        ];
        assert_eq!(answers(&log), expected);
        assert_eq!(log.latest_epoch(), Some((LeaderEpoch(5), Offset(5))));

        // An append from an older leader is refused whole.
        let stale = log.append(batch_of_size(1_000, 0, 1), LeaderEpoch(4), 0);
        assert!(
            matches!(
                stale,
                Err(AppendError::StaleLeaderEpoch {
                    asked: 4,
                    newest: 5
                })
            ),
            "{:?}",
            stale.map(|r| r.base_offset)
        );
        assert_eq!(log.log_end_offset(), Offset(6));

        log.close().await.expect("close");
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        assert_eq!(answers(&log), expected, "after a clean restart");
        assert_eq!(stamped(&log).await, vec![0, 0, 0, 2, 2, 5]);
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_new_epoch_should_store_the_checkpoint_before_its_batch_is_written() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        append_under(&log, &[1]).await;
        assert_eq!(checkpoint(tmp.path()), "0\n1\n1 0\n");
        // The checkpoint cannot be stored (its temporary file's name is taken by a directory):
        // the batch of the new epoch must then never reach the device.
        let blocker = partition_dir(tmp.path()).join(format!("{CHECKPOINT}.tmp"));
        std::fs::create_dir(&blocker).expect("blocker");
        let r = log
            .append(batch_of_size(1_000, 0, 1), LeaderEpoch(4), 0)
            .expect("append");
        assert!(r.written().await.is_err(), "written without its checkpoint");
        drop(r);
        drop(log);
        std::fs::remove_dir(&blocker).expect("unblock");
        // Reopened as after a crash: only epoch 1's batch is there, and epoch 4 is unknown.
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        assert_eq!(log.log_end_offset(), Offset(1));
        assert_eq!(end_for(&log, 4), None);
        assert_eq!(end_for(&log, 1), Some((1, 1)));
        // Once stored, the checkpoint is on the device by the time the batch is written.
        let r = log
            .append(batch_of_size(1_000, 0, 1), LeaderEpoch(4), 0)
            .expect("append");
        r.written().await.expect("written");
        assert_eq!(checkpoint(tmp.path()), "0\n2\n1 0\n4 1\n");
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_crash_that_tore_a_new_epochs_batch_should_forget_that_epoch() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        append_under(&log, &[0, 0, 3]).await;
        log.close().await.expect("close");
        // The checkpoint names epoch 3 at offset 2, but the crash took that batch.
        let segment = partition_dir(tmp.path()).join("00000000000000000000.log");
        let bytes = std::fs::read(&segment).expect("segment");
        let two = 2 * batch_of_size(1_000, 0, 1).len();
        std::fs::write(&segment, &bytes[..two + 30]).expect("cut");
        std::fs::remove_file(partition_dir(tmp.path()).join(".clean")).expect("marker");
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        assert_eq!(log.log_end_offset(), Offset(2));
        assert_eq!(end_for(&log, 3), None, "epoch 3 holds no batch any more");
        assert_eq!(end_for(&log, 0), Some((0, 2)));
        // Epoch 3 writes again at the new end, and the file says so.
        append_under(&log, &[3]).await;
        assert_eq!(end_for(&log, 0), Some((0, 2)));
        assert_eq!(checkpoint(tmp.path()), "0\n2\n0 0\n3 2\n");
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_log_without_a_checkpoint_should_count_its_records_as_epoch_0() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        append_under(&log, &[0, 0]).await;
        log.close().await.expect("close");
        std::fs::remove_file(partition_dir(tmp.path()).join(CHECKPOINT)).expect("remove");
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        assert_eq!(end_for(&log, 0), Some((0, 2)));
        log.close().await.expect("close");
        assert_eq!(checkpoint(tmp.path()), "0\n1\n0 0\n", "stored again");

        // A damaged file is an error, not a guess.
        std::fs::write(partition_dir(tmp.path()).join(CHECKPOINT), "0\n2\n0 0\n").expect("w");
        let opened = PartitionLog::open(partition_dir(tmp.path()), LogConfig::default(), shard());
        let error = opened.await.err().expect("a damaged checkpoint is refused");
        assert!(error.to_string().contains(CHECKPOINT), "{error}");
    });
}

#[test]
fn given_retention_should_move_the_oldest_epoch_to_the_new_log_start() {
    run(|| async {
        let tmp = tempdir();
        let config = LogConfig {
            segment_bytes: 4_096,
            retention_ms: -1,
            retention_bytes: -1,
            ..LogConfig::default()
        };
        let log = open(tmp.path(), config.clone(), &shard()).await;
        // Segments of four batches: epoch 0 in the first two, epoch 1 from offset 6.
        append_under(&log, &[0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]).await;
        log.set_config(LogConfig {
            retention_bytes: 5_000,
            ..config.clone()
        });
        let outcome = log.enforce_retention(0).await.expect("retention");
        assert_eq!(outcome.log_start_offset, Offset(8));
        assert_eq!(
            end_for(&log, 0),
            Some((0, 8)),
            "epoch 0 is gone from the log"
        );
        assert_eq!(end_for(&log, 1), Some((1, 14)));
        log.close().await.expect("close");
        assert_eq!(checkpoint(tmp.path()), "0\n1\n1 8\n");
    });
}
