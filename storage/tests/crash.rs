//! Crash recovery: a segment cut at every byte of its last batch, a flipped byte, O_DIRECT zero
//! padding, and missing or stale indexes. Recovery keeps exactly the whole batches before the
//! damage and the log accepts appends afterwards.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use odradek_storage::{LogConfig, Offset};

const SEGMENT: &str = "00000000000000000000.log";

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Batches of a few sizes; each holds `i + 1` records, so offsets are not one per batch. The last
/// one is small, as every cut inside it is tried.
fn batches() -> Vec<Bytes> {
    let mut batches: Vec<Bytes> = (0..5)
        .map(|i| batch(i + 1, 20 + 17 * i, 1_000 + i as i64, i as u8))
        .collect();
    batches.push(batch(2, 20, 2_000, 0x77));
    batches
}

/// Base offsets of `batches`, stored back to back from offset 0.
fn bases(batches: &[Bytes]) -> Vec<i64> {
    let mut next = 0;
    batches
        .iter()
        .map(|b| {
            let base = next;
            next += i64::from(
                odradek_storage::BatchHeader::parse(b)
                    .expect("header")
                    .record_count(),
            );
            base
        })
        .collect()
}

/// Writes the batches to a fresh log in `dir` and closes it; returns the segment's bytes.
async fn write_clean_log(dir: &Path, batches: &[Bytes]) -> Vec<u8> {
    let log = open(dir, config(), &shard()).await;
    let mut last = None;
    for b in batches {
        last = Some(log.append(b.clone(), EPOCH_0, 0).expect("append"));
    }
    last.expect("appended").durable().await.expect("durable");
    log.close().await.expect("close");
    std::fs::read(partition_dir(dir).join(SEGMENT)).expect("segment")
}

/// Replaces the segment with `bytes` and removes the clean marker, as after a crash.
fn crash_with(dir: &Path, bytes: &[u8]) {
    std::fs::write(partition_dir(dir).join(SEGMENT), bytes).expect("write segment");
    let _ = std::fs::remove_file(partition_dir(dir).join(".clean"));
}

/// Reopens and checks that exactly `batches[..kept]` are there and that appends work.
async fn check_recovered(dir: &Path, batches: &[Bytes], kept: usize) {
    let bases = bases(batches);
    let end = bases.get(kept).copied().unwrap_or(bases[kept - 1] + 2);
    let log = open(dir, config(), &shard()).await;
    assert_eq!(log.log_end_offset(), Offset(end), "kept {kept} batches");
    for (i, b) in batches[..kept].iter().enumerate() {
        let out = log
            .read(Offset(bases[i]), 1, Offset(end))
            .await
            .expect("read");
        assert_eq!(bytes_of(&out).await, stored(b, bases[i]), "batch {i}");
    }
    let extra = batch(2, 33, 5_000, 0xee);
    let r = log
        .append(extra.clone(), EPOCH_0, 0)
        .expect("append after recovery");
    assert_eq!(r.base_offset, Offset(end));
    r.durable().await.expect("durable");
    let out = log
        .read(Offset(end), 1 << 20, Offset(end + 2))
        .await
        .expect("read");
    assert_eq!(bytes_of(&out).await, stored(&extra, end));
    log.close().await.expect("close");
    drop(log);
    // And the appended batch survives a clean restart, readable from the file.
    let log = open(dir, config(), &shard()).await;
    let out = log
        .read(Offset(end), 1 << 20, Offset(end + 2))
        .await
        .expect("read");
    assert_eq!(bytes_of(&out).await, stored(&extra, end));
    log.close().await.expect("close");
}

#[test]
fn given_a_cut_at_every_byte_of_the_last_batch_should_keep_the_whole_batches_before_it() {
    run(|| async {
        let batches = batches();
        let tmp = tempdir();
        let original = write_clean_log(tmp.path(), &batches).await;
        let last_start = original.len() - batches.last().expect("some").len();
        for cut in last_start..original.len() {
            // A crashed log: the cut segment alone, no indexes, no clean marker.
            let tmp = tempdir();
            std::fs::create_dir_all(partition_dir(tmp.path())).expect("dir");
            crash_with(tmp.path(), &original[..cut]);
            check_recovered(tmp.path(), &batches, batches.len() - 1).await;
        }
    });
}

#[test]
fn given_zero_padding_after_the_last_batch_should_truncate_it() {
    run(|| async {
        let batches = batches();
        let tmp = tempdir();
        let mut bytes = write_clean_log(tmp.path(), &batches).await;
        let whole = bytes.len();
        bytes.resize(whole.next_multiple_of(4096) + 4096, 0);
        crash_with(tmp.path(), &bytes);
        check_recovered(tmp.path(), &batches, batches.len()).await;
        assert_eq!(
            std::fs::metadata(partition_dir(tmp.path()).join(SEGMENT))
                .expect("stat")
                .len() as usize,
            { whole + batch(2, 33, 5_000, 0xee).len() }
        );
    });
}

#[test]
fn given_a_flipped_byte_in_a_middle_batch_should_keep_only_the_batches_before_it() {
    run(|| async {
        let batches = batches();
        let damaged = 3;
        let start: usize = batches[..damaged].iter().map(Bytes::len).sum();
        for at in [
            start + 30,
            start + batches[damaged].len() / 2,
            start + batches[damaged].len() - 1,
        ] {
            let tmp = tempdir();
            let mut bytes = write_clean_log(tmp.path(), &batches).await;
            bytes[at] ^= 0x5a;
            crash_with(tmp.path(), &bytes);
            check_recovered(tmp.path(), &batches, damaged).await;
        }
    });
}

#[test]
fn given_missing_or_stale_indexes_should_rebuild_them() {
    run(|| async {
        let tmp = tempdir();
        let config = LogConfig {
            segment_bytes: 2_048,
            index_interval_bytes: 256,
            ..LogConfig::default()
        };
        let batches: Vec<Bytes> = (0..30).map(|i| batch_of_size(300, i, i as u8)).collect();
        let log = open(tmp.path(), config.clone(), &shard()).await;
        let mut last = None;
        for b in &batches {
            last = Some(log.append(b.clone(), EPOCH_0, 0).expect("append"));
        }
        last.expect("appended").durable().await.expect("durable");
        log.close().await.expect("close");
        drop(log);
        let dir = partition_dir(tmp.path());
        std::fs::remove_file(dir.join("00000000000000000000.index")).expect("remove");
        std::fs::write(dir.join("00000000000000000006.timeindex"), [1u8; 13]).expect("write");
        std::fs::write(dir.join("00000000000000000012.index"), [0u8; 64]).expect("write");
        for clean in [true, false] {
            if !clean {
                std::fs::remove_file(dir.join(".clean")).expect("marker");
                std::fs::remove_file(dir.join("00000000000000000024.index")).expect("remove");
            }
            let log = open(tmp.path(), config.clone(), &shard()).await;
            assert_eq!(log.log_end_offset(), Offset(30));
            for (i, b) in batches.iter().enumerate() {
                let out = log
                    .read(Offset(i as i64), 1, Offset(30))
                    .await
                    .expect("read");
                assert_eq!(bytes_of(&out).await, stored(b, i as i64), "batch {i}");
            }
            let (offset, _) = log
                .batch_for_timestamp(17)
                .await
                .expect("lookup")
                .expect("found");
            assert_eq!(offset, Offset(17));
            log.close().await.expect("close");
        }
        let index = std::fs::read(dir.join("00000000000000000000.index")).expect("rebuilt");
        assert!(!index.is_empty() && index.len().is_multiple_of(8));
    });
}

#[test]
fn given_a_log_abandoned_mid_flight_should_recover_every_durable_batch() {
    let tmp = tempdir();
    let dir = tmp.path().to_path_buf();
    let batches: Vec<Bytes> = (0..200)
        .map(|i| batch_of_size(5_000 + i * 37, i as i64, i as u8))
        .collect();
    let durable = {
        let (dir, batches) = (dir.clone(), batches.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        run(move || async move {
            let log = open(&dir, config(), &shard()).await;
            let mut last = None;
            for b in &batches[..150] {
                last = Some(log.append(b.clone(), EPOCH_0, 0).expect("append"));
            }
            last.expect("appended").durable().await.expect("durable");
            // More appends in flight, then the process "dies": the executor ends with the flusher
            // mid-way, no close, no clean marker, the preallocated tail of the file still there.
            for b in &batches[150..] {
                std::mem::forget(log.append(b.clone(), EPOCH_0, 0).expect("append"));
            }
            tx.send(log.durable_end_offset()).expect("send");
            std::mem::forget(log);
        });
        rx.recv().expect("durable end")
    };
    assert!(durable >= Offset(150));
    let segment = std::fs::metadata(partition_dir(&dir).join(SEGMENT))
        .expect("stat")
        .len();
    let logical: usize = batches.iter().map(Bytes::len).sum();
    assert!(
        segment > logical as u64,
        "the crash left the preallocated zeros for recovery to cut"
    );
    run(move || async move {
        let log = open(&dir, config(), &shard()).await;
        let end = log.log_end_offset();
        assert!(
            end >= durable,
            "every durable batch is back: {end} >= {durable}"
        );
        for (i, b) in batches.iter().enumerate().take(end.get() as usize) {
            let out = log.read(Offset(i as i64), 1, end).await.expect("read");
            assert_eq!(bytes_of(&out).await, stored(b, i as i64), "batch {i}");
        }
        let r = log
            .append(batch(1, 10, 0, 1), EPOCH_0, 0)
            .expect("append after recovery");
        assert_eq!(r.base_offset, end);
        r.durable().await.expect("durable");
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_clean_marker_but_a_cut_segment_should_not_trust_the_stale_indexes() {
    run(|| async {
        let batches = batches();
        let boundary: usize = batches[..3].iter().map(Bytes::len).sum();
        for cut in [boundary, boundary + 10] {
            let tmp = tempdir();
            let bytes = write_clean_log(tmp.path(), &batches).await;
            assert!(partition_dir(tmp.path()).join(".clean").exists());
            std::fs::write(partition_dir(tmp.path()).join(SEGMENT), &bytes[..cut]).expect("cut");
            check_recovered(tmp.path(), &batches, 3).await;
        }
    });
}

#[test]
fn given_a_deletion_cut_short_by_a_crash_should_remove_the_leftover_and_keep_the_log() {
    run(|| async {
        let batches = batches();
        let tmp = tempdir();
        let bytes = write_clean_log(tmp.path(), &batches).await;
        // A retention pass had renamed an older segment aside and shrunk it part of the way.
        let leftover = partition_dir(tmp.path()).join("00000000000000000000.log.deleted");
        std::fs::write(&leftover, &bytes[..bytes.len() / 2]).expect("leftover");
        crash_with(tmp.path(), &bytes);
        check_recovered(tmp.path(), &batches, batches.len()).await;
        assert!(
            !leftover.exists(),
            "the half-deleted segment is removed at open"
        );
    });
}

#[test]
fn given_a_relative_directory_should_recover_and_append_as_with_an_absolute_one() {
    run(|| async {
        let batches = batches();
        let tmp = tempdir();
        // The same directory, named from the working directory: glommio opens directories with
        // `openat(-1, …)`, which refuses a relative path (see `fileio::sync_dir`), and recovery
        // creates, lists, reads and removes files in it through glommio and its thread pool.
        let cwd = std::env::current_dir().expect("working directory");
        let up: std::path::PathBuf = cwd.components().skip(1).map(|_| "..").collect();
        let relative = up.join(tmp.path().strip_prefix("/").expect("an absolute tempdir"));
        assert!(relative.is_relative());
        let bytes = write_clean_log(&relative, &batches).await;
        crash_with(tmp.path(), &bytes[..bytes.len() - 1]);
        check_recovered(&relative, &batches, batches.len() - 1).await;
    });
}
