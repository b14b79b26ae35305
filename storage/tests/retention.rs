//! Retention by time and size, DeleteRecords, and the log-start checkpoint across restarts.

mod common;

use common::*;
use odradek_storage::{LogConfig, Offset, ReadError, ShardStorage, ShardStorageConfig};

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
            log.append(batch_of_size(1_000, timestamp(i), 1), 0)
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
        log.append(batch(1, 10, 0, 1), 0)
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
        let r = log.append(batch(1, 10, 0, 1), 0).expect("append");
        assert_eq!(r.log_start_offset, Offset(20));
        assert_eq!(r.base_offset, Offset(20));
        log.close().await.expect("close");
    });
}

/// Segments of ~64 kB, 256 kB kept: retention retires a segment every few appends.
fn recycling_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        retention_ms: -1,
        retention_bytes: 256 << 10,
        ..LogConfig::default()
    }
}

fn uncached_shard() -> std::rc::Rc<ShardStorage> {
    ShardStorage::new(ShardStorageConfig {
        tail_cache_bytes: 0,
        ..ShardStorageConfig::default()
    })
}

/// Batches of distinct sizes and bytes, one offset each.
fn distinct_batches(count: usize) -> Vec<bytes::Bytes> {
    (0..count)
        .map(|i| batch_of_size(5_000 + (i * 37) % 3_000, i as i64, i as u8))
        .collect()
}

/// Reads every batch from the log start to `end` from the files and compares it with what was
/// appended at that offset.
async fn assert_reads_back(log: &odradek_storage::PartitionLog, batches: &[bytes::Bytes]) {
    let end = log.log_end_offset();
    let start = log.log_start_offset().get();
    assert!(start > 0, "retention ran");
    for i in start..end.get() {
        let out = log.read(Offset(i), 1, end).await.expect("read");
        assert_eq!(
            bytes_of(&out).await,
            stored(&batches[i as usize], i),
            "batch {i}"
        );
    }
}

#[test]
fn given_retired_segments_should_write_new_segments_over_their_files_and_read_back_every_batch() {
    run(|| async {
        let tmp = tempdir();
        let batches = distinct_batches(400);
        let shard = uncached_shard();
        let log = open(tmp.path(), recycling_config(), &shard).await;
        for round in batches.chunks(40) {
            let mut last = None;
            for b in round {
                last = Some(log.append(b.clone(), 0).expect("append"));
            }
            last.expect("appended").durable().await.expect("durable");
            log.enforce_retention(0).await.expect("retention");
        }
        assert!(shard.segments_recycled() > 0, "no segment was recycled");
        assert_reads_back(&log, &batches).await;
        log.close().await.expect("close");
        drop(log);
        let log = open(tmp.path(), recycling_config(), &uncached_shard()).await;
        assert_eq!(log.log_end_offset(), Offset(400));
        assert_reads_back(&log, &batches).await;
        let spares = std::fs::read_dir(partition_dir(tmp.path()))
            .expect("list")
            .filter(|e| {
                let name = e.as_ref().expect("entry").file_name();
                name.to_string_lossy().ends_with(".spare")
            })
            .count();
        assert_eq!(spares, 0, "recovery removes spare files");
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_crash_while_writing_a_recycled_segment_should_recover_the_durable_batches_and_no_old_ones(
) {
    let tmp = tempdir();
    let dir = tmp.path().to_path_buf();
    // Whole device blocks: every batch ends on a block, so no zero padding separates the last
    // written batch from the retired segment's batches after it, which start at the same
    // positions and are valid batches of older offsets.
    let size = (8_192..8_200)
        .find(|&n| batch_of_size(n, 0, 0).len() == 8_192)
        .expect("a size asked for that makes an 8 KiB batch");
    let batches: Vec<bytes::Bytes> = (0..262)
        .map(|i| batch_of_size(size, i as i64, i as u8))
        .collect();
    let durable = {
        let (dir, batches) = (dir.clone(), batches.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        run(move || async move {
            let shard = uncached_shard();
            let log = open(&dir, recycling_config(), &shard).await;
            for round in batches[..250].chunks(25) {
                let mut last = None;
                for b in round {
                    last = Some(log.append(b.clone(), 0).expect("append"));
                }
                last.expect("appended").durable().await.expect("durable");
                log.enforce_retention(0).await.expect("retention");
            }
            // Eight batches fill a segment: 256.. go to a new one, a spare written over.
            let recycled = shard.segments_recycled();
            let mut last = None;
            for b in &batches[250..258] {
                last = Some(log.append(b.clone(), 0).expect("append"));
            }
            last.expect("appended").durable().await.expect("durable");
            assert_eq!(
                shard.segments_recycled(),
                recycled + 1,
                "the active segment is a spare"
            );
            // Past its written end lie the retired segment's batches. More appends in flight,
            // then the process "dies".
            tx.send(abandon(log, &batches[258..])).expect("send");
        });
        rx.recv().expect("durable end")
    };
    assert!(durable >= Offset(258));
    run(move || async move {
        let log = open(&dir, recycling_config(), &uncached_shard()).await;
        let end = log.log_end_offset();
        assert!(
            end >= durable && end <= Offset(262),
            "every durable batch is back and nothing else: {durable} <= {end} <= 262"
        );
        assert_reads_back(&log, &batches[..end.get() as usize]).await;
        assert_appends_after_recovery(log).await;
    });
}
