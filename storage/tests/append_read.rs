//! Appends, milestones, rolls, validation and reads through the public API.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use odradek_storage::{
    AppendError, BatchError, BatchHeader, Chunk, FlushPolicy, LogConfig, Offset, ReadError,
    ShardStorage, ShardStorageConfig, TimestampType,
};

#[test]
fn given_batches_when_appended_should_assign_contiguous_offsets_and_reach_both_milestones() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        let mut receipts = Vec::new();
        for i in 0..10 {
            receipts.push(
                log.append(batch(5, 50, 1_000 + i, i as u8), EPOCH_0, 2_000)
                    .expect("append"),
            );
        }
        for (i, r) in receipts.iter().enumerate() {
            assert_eq!(r.base_offset, Offset(i as i64 * 5));
            assert_eq!(r.last_offset, Offset(i as i64 * 5 + 4));
            assert_eq!(r.log_append_time_ms, -1);
        }
        assert_eq!(log.log_end_offset(), Offset(50));
        for r in &receipts {
            r.durable().await.expect("durable");
            r.written().await.expect("written");
        }
        assert_eq!(log.written_end_offset(), Offset(50));
        assert_eq!(log.durable_end_offset(), Offset(50));
        assert_eq!(log.max_timestamp(), Some((1_009 + 4, Offset(49))));
        log.close().await.expect("close");
    });
}

#[test]
fn given_several_batches_in_one_append_should_store_each_at_its_own_offset() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        let (a, b) = (batch(3, 10, 1, 1), batch(2, 10, 2, 2));
        let mut both = BytesMut::from(&a[..]);
        both.extend_from_slice(&b);
        let r = log.append(both.freeze(), EPOCH_0, 0).expect("append");
        assert_eq!((r.base_offset, r.last_offset), (Offset(0), Offset(4)));
        r.written().await.expect("written");
        let out = log.read(Offset(3), 1 << 20, Offset(5)).await.expect("read");
        assert_eq!(bytes_of(&out).await, stored(&b, 3));
        log.close().await.expect("close");
    });
}

#[test]
fn given_invalid_batches_should_refuse_them_with_the_matching_error_and_append_nothing() {
    run(|| async {
        let tmp = tempdir();
        let config = LogConfig {
            max_message_bytes: 2_000,
            ..LogConfig::default()
        };
        let log = open(tmp.path(), config, &shard()).await;
        let good = batch(2, 10, 1, 1);
        let r = log.append(good.clone(), EPOCH_0, 0).expect("append");
        let expect_err = |result: Result<_, AppendError>| match result {
            Err(AppendError::Invalid(e)) => e,
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("an invalid batch was accepted"),
        };
        let mut bad_crc = BytesMut::from(&good[..]);
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        assert!(matches!(
            expect_err(log.append(bad_crc.freeze(), EPOCH_0, 0)),
            BatchError::Corrupt(_)
        ));
        let mut bad_magic = BytesMut::from(&good[..]);
        bad_magic[16] = 1;
        assert!(matches!(
            expect_err(log.append(bad_magic.freeze(), EPOCH_0, 0)),
            BatchError::Invalid(_)
        ));
        let big = batch(1, 3_000, 1, 1);
        assert!(matches!(
            expect_err(log.append(big, EPOCH_0, 0)),
            BatchError::TooLarge { .. }
        ));
        assert!(matches!(
            expect_err(log.append(good.slice(..good.len() - 3), EPOCH_0, 0)),
            BatchError::Corrupt(_)
        ));
        assert!(matches!(
            expect_err(log.append(Bytes::new(), EPOCH_0, 0)),
            BatchError::Invalid(_)
        ));
        // A valid batch followed by an invalid one: the whole set is refused.
        let mut mixed = BytesMut::from(&good[..]);
        mixed.extend_from_slice(&good[..good.len() - 1]);
        assert!(log.append(mixed.freeze(), EPOCH_0, 0).is_err());
        assert_eq!(log.log_end_offset(), Offset(2));
        let r2 = log
            .append(good.clone(), EPOCH_0, 0)
            .expect("append after refusals");
        assert_eq!(r2.base_offset, Offset(2));
        r.written().await.expect("written");
        r2.written().await.expect("written");
        let out = log.read(Offset(0), 1 << 20, Offset(4)).await.expect("read");
        let mut expected = BytesMut::from(&stored(&good, 0)[..]);
        expected.extend_from_slice(&stored(&good, 2));
        assert_eq!(bytes_of(&out).await, expected.freeze());
        log.close().await.expect("close");
    });
}

#[test]
fn given_log_append_time_should_stamp_the_broker_time() {
    run(|| async {
        let tmp = tempdir();
        let config = LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let log = open(tmp.path(), config, &shard()).await;
        let r = log
            .append(batch(2, 10, 5, 1), EPOCH_0, 77_000)
            .expect("append");
        assert_eq!(r.log_append_time_ms, 77_000);
        r.written().await.expect("written");
        let out = bytes_of(&log.read(Offset(0), 1 << 20, Offset(2)).await.expect("read")).await;
        let header = odradek_storage::batch::validate(&out, 1 << 20).expect("still a valid batch");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp(), 77_000);
        assert_eq!(log.max_timestamp(), Some((77_000, Offset(1))));
        log.close().await.expect("close");
    });
}

#[test]
fn given_small_segment_bytes_should_roll_and_read_across_segments() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), small_segments(4_096), &shard()).await;
        let batches: Vec<Bytes> = (0..20).map(|i| batch_of_size(1_000, i, i as u8)).collect();
        let mut last = None;
        for b in &batches {
            last = Some(log.append(b.clone(), EPOCH_0, 0).expect("append"));
        }
        last.expect("appended").durable().await.expect("durable");
        // 4 batches of ~1000 bytes fit 4096 bytes: 5 segments.
        assert_eq!(segment_files(tmp.path(), ".log").len(), 5);
        assert_eq!(
            segment_files(tmp.path(), ".log")[1],
            "00000000000000000004.log"
        );
        for (i, b) in batches.iter().enumerate() {
            let out = log
                .read(Offset(i as i64), 1, Offset(20))
                .await
                .expect("read");
            assert_eq!(bytes_of(&out).await, stored(b, i as i64));
        }
        // Closed segments were sealed: truncated to their logical size, indexes stored.
        let size = std::fs::metadata(partition_dir(tmp.path()).join("00000000000000000000.log"))
            .expect("stat")
            .len();
        let expected: usize = batches[..4].iter().map(Bytes::len).sum();
        assert_eq!(size, expected as u64);
        log.close().await.expect("close");
        assert_eq!(segment_files(tmp.path(), ".index").len(), 5);
        assert_eq!(segment_files(tmp.path(), ".timeindex").len(), 5);
    });
}

#[test]
fn given_an_old_active_segment_should_roll_by_segment_ms() {
    run(|| async {
        let tmp = tempdir();
        let config = LogConfig {
            segment_ms: 1_000,
            ..LogConfig::default()
        };
        let log = open(tmp.path(), config, &shard()).await;
        log.append(batch(1, 10, 0, 1), EPOCH_0, 10_000)
            .expect("append");
        log.append(batch(1, 10, 0, 1), EPOCH_0, 10_500)
            .expect("append");
        let r = log
            .append(batch(1, 10, 0, 1), EPOCH_0, 11_001)
            .expect("append");
        r.durable().await.expect("durable");
        assert_eq!(
            segment_files(tmp.path(), ".log"),
            vec!["00000000000000000000.log", "00000000000000000002.log"]
        );
        log.close().await.expect("close");
    });
}

#[test]
fn given_reads_should_follow_kafka_semantics() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        let batches: Vec<Bytes> = (0..4).map(|i| batch(5, 100, i, i as u8)).collect();
        for b in &batches {
            log.append(b.clone(), EPOCH_0, 0).expect("append");
        }
        log.append(batch(1, 10, 9, 9), EPOCH_0, 0)
            .expect("append")
            .written()
            .await
            .expect("written");
        // Mid-batch offset: the whole containing batch, from its base.
        let out = log
            .read(Offset(7), 1 << 20, Offset(10))
            .await
            .expect("read");
        assert_eq!(bytes_of(&out).await, stored(&batches[1], 5));
        // KIP-74: one batch even when it exceeds max_bytes.
        let out = log.read(Offset(0), 10, Offset(21)).await.expect("read");
        assert_eq!(out.bytes, batches[0].len());
        // max_bytes fits exactly two batches.
        let two = batches[0].len() + batches[1].len();
        let out = log.read(Offset(0), two, Offset(21)).await.expect("read");
        assert_eq!(out.bytes, two);
        // Never a batch at or past the upper bound.
        let out = log
            .read(Offset(0), 1 << 20, Offset(15))
            .await
            .expect("read");
        assert_eq!(
            out.bytes,
            batches[..3].iter().map(Bytes::len).sum::<usize>()
        );
        let out = log
            .read(Offset(0), 1 << 20, Offset(11))
            .await
            .expect("read");
        assert_eq!(
            out.bytes,
            batches[..3].iter().map(Bytes::len).sum::<usize>(),
            "batch 10..14 starts below 11"
        );
        // At the upper bound: empty. Outside the log: out of range.
        let out = log
            .read(Offset(15), 1 << 20, Offset(15))
            .await
            .expect("read");
        assert!(out.chunks.is_empty());
        let out = log
            .read(Offset(21), 1 << 20, Offset(21))
            .await
            .expect("read at the log end");
        assert!(out.chunks.is_empty());
        assert!(matches!(
            log.read(Offset(22), 1 << 20, Offset(21)).await,
            Err(ReadError::OffsetOutOfRange {
                requested: Offset(22),
                log_start: Offset(0),
                log_end: Offset(21)
            })
        ));
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_tiny_tail_cache_should_read_older_batches_from_files() {
    run(|| async {
        let tmp = tempdir();
        let shard = ShardStorage::new(ShardStorageConfig {
            tail_cache_bytes: 3_000,
            ..ShardStorageConfig::default()
        });
        let log = open(tmp.path(), small_segments(1 << 20), &shard).await;
        let batches: Vec<Bytes> = (0..30).map(|i| batch_of_size(1_000, i, i as u8)).collect();
        let mut last = None;
        for b in &batches {
            last = Some(log.append(b.clone(), EPOCH_0, 0).expect("append"));
        }
        last.expect("appended").written().await.expect("written");
        assert!(shard.cached_bytes() <= 3_000);
        let reads_before = shard.device_reads();
        let old = log.read(Offset(3), 2_500, Offset(30)).await.expect("read");
        assert!(
            shard.device_reads() > reads_before,
            "old batches come from the file"
        );
        let expected: BytesMut =
            batches[3..5]
                .iter()
                .enumerate()
                .fold(BytesMut::new(), |mut acc, (i, b)| {
                    acc.extend_from_slice(&stored(b, 3 + i as i64));
                    acc
                });
        assert_eq!(bytes_of(&old).await, expected.freeze());
        let recent = log
            .read(Offset(29), 1 << 20, Offset(30))
            .await
            .expect("read");
        assert!(
            matches!(recent.chunks[..], [Chunk::Memory(_)]),
            "the tail comes from memory"
        );
        assert_eq!(bytes_of(&recent).await, stored(&batches[29], 29));
        log.close().await.expect("close");
    });
}

#[test]
fn given_two_logs_on_one_shard_should_evict_the_oldest_first() {
    run(|| async {
        let tmp = tempdir();
        let shard = ShardStorage::new(ShardStorageConfig {
            tail_cache_bytes: 4_500,
            ..ShardStorageConfig::default()
        });
        let a = odradek_storage::PartitionLog::open(
            tmp.path().join("a-0"),
            LogConfig::default(),
            shard.clone(),
        )
        .await
        .expect("open");
        let b = odradek_storage::PartitionLog::open(
            tmp.path().join("b-0"),
            LogConfig::default(),
            shard.clone(),
        )
        .await
        .expect("open");
        for i in 0..3 {
            a.append(batch_of_size(1_000, i, 1), EPOCH_0, 0)
                .expect("append")
                .written()
                .await
                .expect("written");
            b.append(batch_of_size(1_000, i, 2), EPOCH_0, 0)
                .expect("append")
                .written()
                .await
                .expect("written");
        }
        // Six 1000-byte batches, room for four: a@0 and b@0 were evicted.
        // Whether a read had to go to the device (the tail cache had evicted its batch).
        let from_device = |before: u64| shard.device_reads() > before;
        let before = shard.device_reads();
        a.read(Offset(0), 1, Offset(3)).await.expect("read");
        assert!(from_device(before), "a@0 was evicted");
        let before = shard.device_reads();
        b.read(Offset(0), 1, Offset(3)).await.expect("read");
        assert!(from_device(before), "b@0 was evicted");
        let before = shard.device_reads();
        a.read(Offset(1), 1, Offset(3)).await.expect("read");
        b.read(Offset(1), 1, Offset(3)).await.expect("read");
        assert!(!from_device(before), "a@1 and b@1 are still cached");
        a.close().await.expect("close");
        b.close().await.expect("close");
    });
}

#[test]
fn given_a_full_write_buffer_should_refuse_with_backpressure_until_written() {
    run(|| async {
        let tmp = tempdir();
        let shard = ShardStorage::new(ShardStorageConfig {
            write_buffer_bytes: 10_000,
            ..ShardStorageConfig::default()
        });
        let log = open(tmp.path(), LogConfig::default(), &shard).await;
        let mut receipts = Vec::new();
        let refused = loop {
            match log.append(batch_of_size(3_000, 0, 1), EPOCH_0, 0) {
                Ok(r) => receipts.push(r),
                Err(e) => break e,
            }
            assert!(receipts.len() < 10, "the buffer must fill");
        };
        assert!(matches!(refused, AppendError::Backpressure));
        assert_eq!(receipts.len(), 3);
        receipts
            .last()
            .expect("some")
            .written()
            .await
            .expect("written");
        assert_eq!(shard.pending_bytes(), 0);
        log.append(batch_of_size(3_000, 0, 1), EPOCH_0, 0)
            .expect("room again")
            .written()
            .await
            .expect("written");
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_waiting_fetch_should_wake_when_data_is_written_and_allow_cancel() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        // A cancelled wait leaves nothing behind.
        {
            let wait = log.wait_for_data(Offset(0));
            futures::pin_mut!(wait);
            assert!(futures::poll!(wait.as_mut()).is_pending());
        }
        let waiter = {
            let log = log.clone();
            glommio::spawn_local(async move { log.wait_for_data(Offset(0)).await })
        };
        log.append(batch(1, 10, 0, 1), EPOCH_0, 0).expect("append");
        waiter.await;
        assert!(log.written_end_offset() > Offset(0));
        log.wait_for_data(Offset(0)).await;
        log.close().await.expect("close");
    });
}

#[test]
fn given_interval_flush_should_make_appends_durable_at_the_next_tick() {
    run(|| async {
        let tmp = tempdir();
        let config = LogConfig {
            flush: FlushPolicy::IntervalMs(20),
            ..LogConfig::default()
        };
        let log = open(tmp.path(), config, &shard()).await;
        let r = log.append(batch(1, 10, 0, 1), EPOCH_0, 0).expect("append");
        r.written().await.expect("written");
        r.durable().await.expect("durable at the tick");
        assert_eq!(log.durable_end_offset(), Offset(1));
        // Back to syncing before acks, then periodic again: both take effect.
        let mut config = log.config();
        config.flush = FlushPolicy::SyncBeforeAck;
        log.set_config(config.clone());
        log.append(batch(1, 10, 0, 1), EPOCH_0, 0)
            .expect("append")
            .durable()
            .await
            .expect("durable");
        config.flush = FlushPolicy::IntervalMs(10);
        log.set_config(config);
        log.append(batch(1, 10, 0, 1), EPOCH_0, 0)
            .expect("append")
            .durable()
            .await
            .expect("durable");
        assert_eq!(log.durable_end_offset(), Offset(3));
        log.close().await.expect("close");
    });
}

#[test]
fn given_appenders_waiting_for_durability_should_write_synced_and_need_no_fdatasync() {
    run(|| async {
        let tmp = tempdir();
        let shard = shard();
        let log = open(tmp.path(), small_segments(64 * 1024), &shard).await;
        // One appender at a time, each waiting: every write is synced, across segment rolls.
        for i in 0..40 {
            let r = log
                .append(batch(4, 2_000, i, 1), EPOCH_0, 0)
                .expect("append");
            r.durable().await.expect("durable");
            assert_eq!(log.durable_end_offset(), Offset(4 * (i + 1)));
        }
        assert!(segment_files(tmp.path(), ".log").len() > 1, "rolled");
        assert!(
            shard.synced_writes() >= 40,
            "{} synced writes",
            shard.synced_writes()
        );
        assert_eq!(shard.segment_syncs(), 0);
        log.close().await.expect("close");
    });
}

#[test]
fn given_plain_writes_before_a_durable_wait_should_sync_them_before_acknowledging() {
    run(|| async {
        let tmp = tempdir();
        let shard = shard();
        let log = open(tmp.path(), LogConfig::default(), &shard).await;
        // Written with nobody waiting for durability: a plain write.
        let plain = log.append(batch(3, 100, 0, 1), EPOCH_0, 0).expect("append");
        plain.written().await.expect("written");
        assert_eq!(log.durable_end_offset(), Offset(0));
        assert_eq!(shard.synced_writes(), 0);
        // The next write is synced, but the plain one before it is not durable: an fdatasync
        // must cover it before the wait resolves.
        let waited = log.append(batch(2, 100, 0, 2), EPOCH_0, 0).expect("append");
        waited.durable().await.expect("durable");
        assert_eq!(log.durable_end_offset(), Offset(5));
        assert_eq!(shard.segment_syncs(), 1);
        // Waits for both milestones registered before the flusher runs: its writes are synced,
        // everything before them is durable, and no further fdatasync is needed.
        let receipts: Vec<_> = (0..20)
            .map(|i| {
                log.append(batch(1, 5_000, i, 3), EPOCH_0, 0)
                    .expect("append")
            })
            .collect();
        let synced_before = shard.synced_writes();
        let waits = receipts.iter().enumerate().map(|(i, r)| async move {
            if i % 2 == 0 {
                r.written().await
            } else {
                r.durable().await
            }
        });
        for result in futures::future::join_all(waits).await {
            result.expect("milestone");
        }
        assert_eq!(log.durable_end_offset(), Offset(25));
        assert!(shard.synced_writes() > synced_before);
        assert_eq!(shard.segment_syncs(), 1);
        log.close().await.expect("close");
    });
}

#[test]
fn given_timestamps_should_find_the_first_batch_at_or_after() {
    run(|| async {
        let tmp = tempdir();
        let shard = uncached_shard();
        let log = open(tmp.path(), small_segments(8_192), &shard).await;
        // Batch i has timestamps 1000*i .. 1000*i + 2 (three records); one late batch is older.
        let mut last = None;
        for i in 0..40 {
            let ts = if i == 20 { 500 } else { 1_000 * i };
            last = Some(
                log.append(batch(3, 200, ts, 1), EPOCH_0, 0)
                    .expect("append"),
            );
        }
        last.expect("appended").written().await.expect("written");
        for (ts, expected) in [
            (0, 0),
            (1_002, 3),
            (1_003, 6),
            (19_002, 57),
            (19_003, 63),
            (39_002, 117),
        ] {
            let (offset, bytes) = log
                .batch_for_timestamp(ts)
                .await
                .expect("lookup")
                .expect("found");
            assert_eq!(offset, Offset(expected), "timestamp {ts}");
            assert_eq!(
                BatchHeader::parse(&bytes).expect("header").base_offset(),
                expected
            );
        }
        assert!(log
            .batch_for_timestamp(39_003)
            .await
            .expect("lookup")
            .is_none());
        assert_eq!(log.max_timestamp(), Some((39_002, Offset(119))));
        log.close().await.expect("close");
        let log = open(tmp.path(), small_segments(8_192), &shard).await;
        assert_eq!(log.max_timestamp(), Some((39_002, Offset(119))));
        let (offset, _) = log
            .batch_for_timestamp(25_000)
            .await
            .expect("lookup")
            .expect("found");
        assert_eq!(offset, Offset(75));
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_deleted_log_should_remove_its_directory() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), LogConfig::default(), &shard()).await;
        log.append(batch(1, 10, 0, 1), EPOCH_0, 0)
            .expect("append")
            .durable()
            .await
            .expect("durable");
        log.delete().await.expect("delete");
        assert!(!partition_dir(tmp.path()).exists());
        assert!(log.append(batch(1, 10, 0, 1), EPOCH_0, 0).is_err());
    });
}

#[test]
fn given_concurrent_appenders_should_store_every_batch_byte_identical() {
    run(|| async {
        let tmp = tempdir();
        let config = LogConfig {
            segment_bytes: 3 << 20,
            ..LogConfig::default()
        };
        let log = open(tmp.path(), config.clone(), &shard()).await;
        let appended = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let tasks: Vec<_> = (0..4u64)
            .map(|t| {
                let (log, appended) = (log.clone(), appended.clone());
                glommio::spawn_local(async move {
                    let mut seed = t * 7919 + 1;
                    let mut receipts = Vec::new();
                    for i in 0..150u64 {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let size = 100 + (seed >> 33) as usize % 40_000;
                        let b = batch(1 + (i % 3) as usize, size, i as i64, (seed >> 20) as u8);
                        let r = log.append(b.clone(), EPOCH_0, 0).expect("append");
                        appended.borrow_mut().push((r.base_offset, b));
                        receipts.push(r);
                        if seed % 5 == 0 {
                            glommio::yield_if_needed().await;
                            glommio::executor().yield_task_queue_now().await;
                        }
                    }
                    for r in &receipts {
                        if t % 2 == 0 {
                            r.durable().await.expect("durable");
                        } else {
                            r.written().await.expect("written");
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        let end = log.log_end_offset();
        assert_eq!(log.written_end_offset(), end);
        log.close().await.expect("close");
        drop(log);
        let shard = uncached_shard();
        let log = open(tmp.path(), config, &shard).await;
        assert_eq!(log.log_end_offset(), end);
        let appended = appended.borrow().clone();
        for (offset, b) in &appended {
            let out = log.read(*offset, 1, end).await.expect("read");
            assert_eq!(
                bytes_of(&out).await,
                stored(b, offset.get()),
                "batch at {offset}"
            );
        }
        log.close().await.expect("close");
    });
}
