//! Catch-up reads from segment files: read windows, read-ahead, and device reads per byte; and
//! that a log deleted and created again never serves the old bytes.

mod common;

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use odradek_storage::{Offset, PartitionLog, ShardStorage};

/// A log of `count` batches of 10 kB in one segment, all written, with no tail cache: every read
/// goes through the segment file.
async fn log_read_from_files(
    dir: &std::path::Path,
    count: i64,
) -> (Rc<ShardStorage>, Rc<PartitionLog>, Vec<Bytes>) {
    let shard = uncached_shard();
    let log = open(dir, small_segments(64 << 20), &shard).await;
    let batches: Vec<Bytes> = (0..count)
        .map(|i| batch_of_size(10_000, i, i as u8))
        .collect();
    let mut last = None;
    for b in &batches {
        last = Some(log.append(b.clone(), EPOCH_0, 0).expect("append"));
    }
    last.expect("appended").written().await.expect("written");
    (shard, log, batches)
}

/// Reads the log from offset `from` to its end in fetches of `fetch_bytes`, as a consumer
/// catching up does, checking every byte against `batches` (all of them, from offset 0);
/// `pause` between fetches.
async fn catch_up(
    log: &PartitionLog,
    batches: &[Bytes],
    from: i64,
    fetch_bytes: usize,
    pause: Duration,
) {
    let end = batches.len() as i64;
    let mut offset = from;
    while offset < end {
        let outcome = log
            .read(Offset(offset), fetch_bytes, Offset(end))
            .await
            .expect("read");
        let got = bytes_of(&outcome).await;
        let count = outcome.bytes / batches[0].len();
        let mut want = BytesMut::new();
        for (i, b) in batches[offset as usize..offset as usize + count]
            .iter()
            .enumerate()
        {
            want.extend_from_slice(&stored(b, offset + i as i64));
        }
        let want = want.freeze();
        let first_diff = got.iter().zip(want.iter()).position(|(a, b)| a != b);
        assert!(
            got == want,
            "batches from offset {offset} on differ: {} vs {} bytes, first at byte {first_diff:?}",
            got.len(),
            want.len()
        );
        offset += count as i64;
        glommio::timer::sleep(pause).await;
    }
}

/// Device reads of a catch-up over `count` batches of 10 kB (see [`catch_up`]).
async fn device_reads_catching_up(count: i64, fetch_bytes: usize, pause: Duration) -> u64 {
    let tmp = tempdir();
    let (shard, log, batches) = log_read_from_files(tmp.path(), count).await;
    let before = shard.device_reads();
    catch_up(&log, &batches, 0, fetch_bytes, pause).await;
    log.close().await.expect("close");
    shard.device_reads() - before
}

#[test]
fn given_a_consumer_catching_up_sequentially_should_read_the_device_once_per_window() {
    run(|| async {
        // 2 MB read in 100 kB fetches: a 4 MiB window serves all twenty after the first miss.
        assert_eq!(
            device_reads_catching_up(200, 100_000, Duration::ZERO).await,
            1
        );
    });
}

#[test]
fn given_a_consumer_past_the_middle_of_a_window_should_find_the_next_one_read_ahead() {
    run(|| async {
        let tmp = tempdir();
        let (shard, log, batches) = log_read_from_files(tmp.path(), 1_200).await;
        let waits = shard.read_waits();
        // A consumer's next fetch comes a little later; the read-ahead runs meanwhile.
        catch_up(&log, &batches, 0, 100_000, Duration::from_millis(2)).await;
        // 12 MB in 4 MiB windows: the first fetch waits, every later window was read ahead.
        assert_eq!(shard.read_waits() - waits, 1);
        log.close().await.expect("close");
    });
}

#[test]
fn given_fetches_as_large_as_a_window_should_still_read_each_byte_from_the_device_once() {
    run(|| async {
        // 20 MB in fetches of 4 MiB: almost every fetch spans two windows.
        let windows = 20_000_000u64.div_ceil(4 << 20);
        let reads = device_reads_catching_up(2_000, 4 << 20, Duration::from_millis(1)).await;
        assert_eq!(reads, windows);
    });
}

#[test]
fn given_a_consumer_following_the_written_end_should_read_its_bytes_from_the_device_about_once() {
    run(|| async {
        let tmp = tempdir();
        let shard = uncached_shard();
        let log = open(tmp.path(), small_segments(64 << 20), &shard).await;
        let mut batches = Vec::new();
        // Six rounds of 1 MB written, each read by a consumer at the end: the reads cross a
        // window boundary while that window is still being written.
        for round in 0..6i64 {
            let from = batches.len() as i64;
            let mut last = None;
            for i in 0..100 {
                let b = batch_of_size(10_000, from + i, i as u8);
                last = Some(log.append(b.clone(), EPOCH_0, 0).expect("append"));
                batches.push(b);
            }
            last.expect("appended").written().await.expect("written");
            catch_up(&log, &batches, round * 100, 100_000, Duration::ZERO).await;
        }
        // Each byte once, plus one whole read of the first window once it is complete (the
        // reader still needed its last 0.19 MB). Reading the window from its start at every
        // miss read 16.8 MB here.
        let written: usize = batches.iter().map(Bytes::len).sum();
        let bound = written as u64 + (4 << 20);
        assert!(
            shard.device_read_bytes() <= bound,
            "{} bytes read from the device for {written} written",
            shard.device_read_bytes()
        );
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_log_deleted_and_created_again_should_never_read_the_old_bytes() {
    run(|| async {
        let tmp = tempdir();
        let shard = uncached_shard();
        let first = open(tmp.path(), small_segments(64 << 20), &shard).await;
        first
            .append(batch_of_size(5_000, 0, 1), EPOCH_0, 0)
            .expect("append")
            .written()
            .await
            .expect("w");
        let old = bytes_of(
            &first
                .read(Offset(0), 10_000, Offset(1))
                .await
                .expect("read"),
        )
        .await;
        first.delete().await.expect("delete");

        // Same directory, same segment name, other bytes.
        let second = open(tmp.path(), small_segments(64 << 20), &shard).await;
        let fresh = batch_of_size(5_000, 0, 2);
        second
            .append(fresh.clone(), EPOCH_0, 0)
            .expect("append")
            .written()
            .await
            .expect("w");
        let got = bytes_of(
            &second
                .read(Offset(0), 10_000, Offset(1))
                .await
                .expect("read"),
        )
        .await;
        assert!(got != old, "the old log's bytes came back");
        assert!(got == stored(&fresh, 0), "the new log's batch reads back");
        second.close().await.expect("close");
    });
}
