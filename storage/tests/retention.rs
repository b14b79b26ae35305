//! Retention by time and size, DeleteRecords, and the log-start checkpoint across restarts.

mod common;

use common::*;
use odradek_storage::{LogConfig, Offset, ReadError};

/// Segments of four ~1000-byte batches (one offset each).
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4_096,
        retention_ms: -1,
        retention_bytes: -1,
        ..LogConfig::default()
    }
}

async fn fill(
    log: &std::rc::Rc<odradek_storage::PartitionLog>,
    count: i64,
    timestamp: impl Fn(i64) -> i64,
) {
    let mut last = None;
    for i in 0..count {
        last = Some(
            log.append(batch_of_size(1_000, timestamp(i), 1), EPOCH_0, 0)
                .expect("append"),
        );
    }
    last.expect("appended").durable().await.expect("durable");
}

#[test]
fn given_retention_bytes_should_delete_the_oldest_closed_segments() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), config(), &shard()).await;
        fill(&log, 20, |i| i).await;
        let before = log.size_bytes();
        let mut cfg = config();
        cfg.retention_bytes = 8_500;
        log.set_config(cfg);
        let outcome = log.enforce_retention(100).await.expect("retention");
        // 5 segments of ~4000 bytes: a segment goes while the rest stays >= 8500, leaving 3.
        assert_eq!(outcome.segments_deleted, 2);
        assert_eq!(outcome.log_start_offset, Offset(8));
        assert_eq!(log.log_start_offset(), Offset(8));
        assert_eq!(before - log.size_bytes(), outcome.bytes_deleted);
        assert!(!partition_dir(tmp.path())
            .join("00000000000000000000.log")
            .exists());
        assert!(!partition_dir(tmp.path())
            .join("00000000000000000000.index")
            .exists());
        assert!(matches!(
            log.read(Offset(7), 1, Offset(20)).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        let out = log.read(Offset(8), 1, Offset(20)).await.expect("read");
        assert_eq!(bytes_of(&out).await.len(), out.bytes);
        // Appends go on while and after retention runs.
        log.append(batch(1, 10, 0, 1), EPOCH_0, 0)
            .expect("append")
            .durable()
            .await
            .expect("durable");
        log.close().await.expect("close");
        let log = open(tmp.path(), config(), &shard()).await;
        assert_eq!(log.log_start_offset(), Offset(8));
        assert_eq!(log.log_end_offset(), Offset(21));
        log.close().await.expect("close");
    });
}

#[test]
fn given_retention_ms_should_delete_closed_segments_older_than_it_but_never_the_active_one() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), config(), &shard()).await;
        // Offsets 0..12 are old (timestamps ~1000), 12..16 new.
        fill(&log, 16, |i| if i < 12 { 1_000 + i } else { 100_000 + i }).await;
        let mut cfg = config();
        cfg.retention_ms = 10_000;
        log.set_config(cfg.clone());
        let outcome = log.enforce_retention(105_000).await.expect("retention");
        assert_eq!(outcome.segments_deleted, 3);
        assert_eq!(log.log_start_offset(), Offset(12));
        // Everything expired: still the active segment stays.
        let outcome = log.enforce_retention(10_000_000).await.expect("retention");
        assert_eq!(outcome.segments_deleted, 0);
        assert_eq!(log.log_end_offset(), Offset(16));
        // A compact-only log keeps every segment, however old or large.
        fill(&log, 8, |i| 1_000 + i).await;
        let mut compacted = cfg.clone();
        compacted.cleanup_delete = false;
        compacted.retention_bytes = 0;
        log.set_config(compacted);
        assert_eq!(
            log.enforce_retention(i64::MAX)
                .await
                .expect("retention")
                .segments_deleted,
            0
        );
        assert_eq!(log.log_start_offset(), Offset(12));
        // -1 disables time retention.
        cfg.retention_ms = -1;
        log.set_config(cfg);
        assert_eq!(
            log.enforce_retention(i64::MAX)
                .await
                .expect("retention")
                .segments_deleted,
            0
        );
        log.close().await.expect("close");
    });
}

#[test]
fn given_delete_records_should_move_the_log_start_and_survive_restart() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), config(), &shard()).await;
        fill(&log, 20, |i| i).await;
        assert_eq!(
            log.delete_records_before(Offset(9)).await.expect("delete"),
            Offset(9)
        );
        assert_eq!(log.log_start_offset(), Offset(9));
        // Segments [0,4) and [4,8) are wholly below 9; [8,12) holds 9.
        assert!(!partition_dir(tmp.path())
            .join("00000000000000000004.log")
            .exists());
        assert!(partition_dir(tmp.path())
            .join("00000000000000000008.log")
            .exists());
        assert!(matches!(
            log.read(Offset(8), 1, Offset(20)).await,
            Err(ReadError::OffsetOutOfRange { .. })
        ));
        let out = log.read(Offset(9), 1, Offset(20)).await.expect("read");
        assert!(out.bytes > 0);
        // Never past the log end; never backwards.
        assert_eq!(
            log.delete_records_before(Offset(5)).await.expect("delete"),
            Offset(9)
        );
        assert_eq!(
            log.delete_records_before(Offset(500))
                .await
                .expect("delete"),
            Offset(20)
        );
        log.close().await.expect("close");
        let log = open(tmp.path(), config(), &shard()).await;
        assert_eq!(log.log_start_offset(), Offset(20));
        let r = log.append(batch(1, 10, 0, 1), EPOCH_0, 0).expect("append");
        assert_eq!(r.log_start_offset, Offset(20));
        assert_eq!(r.base_offset, Offset(20));
        log.close().await.expect("close");
    });
}
