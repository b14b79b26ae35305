//! `PartitionLog::truncate_to`: a follower's log cut back to the point where it agrees with its
//! leader, at a batch boundary, across segments, with the leader epochs and idempotent
//! producers' state rebuilt from what remains.

mod common;

use std::rc::Rc;

use common::*;
use odradek_storage::testing::{producer_batch, Producer};
use odradek_storage::{LeaderEpoch, LogConfig, Offset, PartitionLog};

/// Segments of four ~1000-byte batches.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4_096,
        ..LogConfig::default()
    }
}

/// A batch of `records` records from producer 9, epoch 0, starting at sequence `seq`.
fn from_producer(records: usize, seq: i32) -> bytes::Bytes {
    let producer = Producer {
        id: 9,
        epoch: 0,
        first_seq: seq,
    };
    producer_batch(records, 300, producer)
}

/// Appends `(epoch, batch)` in order and waits until the last is durable.
async fn fill(log: &Rc<PartitionLog>, batches: Vec<(i32, bytes::Bytes)>) {
    let mut last = None;
    for (epoch, b) in batches {
        last = Some(log.append(b, LeaderEpoch(epoch), 0).expect("append"));
    }
    last.expect("appended").durable().await.expect("durable");
}

/// The bytes of the whole batches of `bytes` (a log read from offset 0) below `offset`.
fn below(bytes: &[u8], offset: i64) -> &[u8] {
    let mut at = 0;
    while let Some(header) = odradek_storage::BatchHeader::parse(&bytes[at..]) {
        if header.base_offset() >= offset {
            break;
        }
        at += header.total_bytes().expect("length");
    }
    &bytes[..at]
}

/// Asserts equal bytes without printing them.
fn same(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: {} bytes, {} wanted",
        got.len(),
        want.len()
    );
}

/// Every batch of the log, read segment by segment.
async fn all_bytes(log: &PartitionLog) -> Vec<u8> {
    let end = log.log_end_offset();
    let mut out = Vec::new();
    let mut next = 0;
    while next < end.get() {
        let read = log.read(Offset(next), 1 << 20, end).await.expect("read");
        let bytes = bytes_of(&read).await;
        let mut at = 0;
        while let Some(header) = odradek_storage::BatchHeader::parse(&bytes[at..]) {
            next = header.last_offset() + 1;
            at += header.total_bytes().expect("length");
        }
        assert!(at > 0, "a read at {next} returned no batch");
        out.extend_from_slice(&bytes[..at]);
    }
    out
}

#[test]
fn given_a_diverged_tail_should_cut_it_and_keep_the_agreed_prefix_byte_identical() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), config(), &shard()).await;
        // Epoch 1: offsets 0..5 (5 batches, two segments); epoch 3: 5..11, the diverged tail,
        // its last batch three records long (offsets 8..11).
        let mut batches: Vec<_> = (0..5).map(|i| (1, batch_of_size(1_000, i, 1))).collect();
        batches.extend((0..3).map(|i| (3, batch_of_size(1_000, i, 2))));
        batches.push((3, batch(3, 300, 0, 3)));
        fill(&log, batches).await;
        assert_eq!(log.log_end_offset(), Offset(11));
        let before = all_bytes(&log).await;

        // A cut inside the three-record batch takes it whole.
        let log = log.truncate_to(Offset(9)).await.expect("truncate");
        assert_eq!(log.log_end_offset(), Offset(8));
        same(&all_bytes(&log).await, below(&before, 8), "cut at 9");

        // To where the leader's epoch 1 ended: epoch 3 is gone from the cache too.
        let log = log.truncate_to(Offset(5)).await.expect("truncate");
        assert_eq!(log.log_end_offset(), Offset(5));
        same(&all_bytes(&log).await, below(&before, 5), "cut at 5");
        assert_eq!(log.latest_epoch(), Some((LeaderEpoch(1), Offset(0))));
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(3)),
            None,
            "newer than any"
        );
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(1)),
            Some((LeaderEpoch(1), Offset(5)))
        );
        assert_eq!(
            segment_files(tmp.path(), ".log"),
            vec!["00000000000000000000.log", "00000000000000000004.log"]
        );

        // Past the end: nothing changes. Then the log goes on at the cut, and it all survives
        // a restart.
        let log = log.truncate_to(Offset(50)).await.expect("truncate");
        assert_eq!(log.log_end_offset(), Offset(5));
        fill(&log, vec![(4, batch_of_size(1_000, 9, 9))]).await;
        let grown = all_bytes(&log).await;
        same(below(&grown, 5), below(&before, 5), "after an append");
        log.close().await.expect("close");
        let log = open(tmp.path(), config(), &shard()).await;
        assert_eq!(log.log_end_offset(), Offset(6));
        same(&all_bytes(&log).await, &grown, "after a restart");
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(1)),
            Some((LeaderEpoch(1), Offset(5)))
        );

        // To the start: an empty log that starts where it did.
        let log = log.truncate_to(Offset(0)).await.expect("truncate");
        assert_eq!(log.log_end_offset(), Offset(0));
        assert_eq!(log.latest_epoch(), None);
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_cut_producer_batch_should_accept_it_again_rather_than_call_it_a_duplicate() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), config(), &shard()).await;
        fill(
            &log,
            vec![
                (0, from_producer(2, 0)),
                (0, from_producer(2, 2)),
                (0, from_producer(2, 4)),
            ],
        )
        .await;
        let log = log.truncate_to(Offset(4)).await.expect("truncate");
        assert_eq!(log.log_end_offset(), Offset(4));
        // The new leader's copy of sequence 4..6 comes again: appended, not a duplicate of the
        // batch that was cut.
        let again = log
            .append(from_producer(2, 4), LeaderEpoch(1), 0)
            .expect("append");
        assert_eq!(again.base_offset, Offset(4));
        // What survived the cut is still known: its retry is a duplicate.
        let retry = log
            .append(from_producer(2, 2), LeaderEpoch(1), 0)
            .expect("duplicate");
        assert_eq!(retry.base_offset, Offset(2));
        assert_eq!(log.log_end_offset(), Offset(6));
        log.close().await.expect("close");
    });
}

#[test]
fn given_a_leader_whose_log_starts_past_this_end_should_start_over_there() {
    run(|| async {
        let tmp = tempdir();
        let log = open(tmp.path(), config(), &shard()).await;
        fill(
            &log,
            (0..6).map(|i| (2, batch_of_size(1_000, i, 1))).collect(),
        )
        .await;
        assert_eq!(log.log_end_offset(), Offset(6));

        let log = log.restart_at(Offset(40)).await.expect("restart");
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (Offset(40), Offset(40))
        );
        assert_eq!(log.latest_epoch(), None, "no epoch is left");
        assert_eq!(segment_files(tmp.path(), ".log"), Vec::<String>::new());
        // The leader's batches from its start continue it.
        let mut from_leader = batch(3, 100, 0, 7).to_vec();
        odradek_storage::batch::set_base_offset(&mut from_leader, 40);
        odradek_storage::batch::set_partition_leader_epoch(&mut from_leader, 5);
        log.append_replica(from_leader.into(), 0)
            .expect("append at the new start")
            .durable()
            .await
            .expect("durable");
        log.close().await.expect("close");
        let log = open(tmp.path(), config(), &shard()).await;
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (Offset(40), Offset(43))
        );
        assert_eq!(log.latest_epoch(), Some((LeaderEpoch(5), Offset(40))));
        assert_eq!(
            segment_files(tmp.path(), ".log"),
            vec!["00000000000000000040.log"]
        );
        log.close().await.expect("close");
    });
}
