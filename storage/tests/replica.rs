//! `PartitionLog::append_replica`: a follower appends its leader's batches at the leader's
//! offsets and epochs, ends byte-identical to it, keeps its leader-epoch cache and idempotent
//! producers' state, and refuses batches that do not continue its log.

mod common;

use std::rc::Rc;

use common::*;
use odradek_storage::testing::{producer_batch, Producer};
use odradek_storage::{AppendError, BatchHeader, LeaderEpoch, LogConfig, Offset, PartitionLog};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4_096,
        ..LogConfig::default()
    }
}

fn from_producer(records: usize, seq: i32) -> bytes::Bytes {
    let producer = Producer {
        id: 7,
        epoch: 0,
        first_seq: seq,
    };
    producer_batch(records, 200, producer)
}

/// The log's bytes from `from` to its end, whole batches, read across segments.
async fn bytes_from(log: &PartitionLog, from: i64) -> Vec<u8> {
    let end = log.log_end_offset();
    let mut out = Vec::new();
    let mut next = from;
    while next < end.get() {
        let read = log.read(Offset(next), 1 << 20, end).await.expect("read");
        let bytes = bytes_of(&read).await;
        let mut at = 0;
        while let Some(header) = BatchHeader::parse(&bytes[at..]) {
            next = header.last_offset() + 1;
            at += header.total_bytes().expect("length");
        }
        assert!(at > 0, "a read at {next} returned no batch");
        out.extend_from_slice(&bytes[..at]);
    }
    out
}

/// Copies what `leader` holds past `follower`'s end, in reads of about `chunk` bytes, as a
/// follower's fetcher does.
async fn replicate(leader: &PartitionLog, follower: &Rc<PartitionLog>, chunk: usize) {
    let end = leader.log_end_offset();
    while follower.log_end_offset() < end {
        let from = follower.log_end_offset();
        let read = leader.read(from, chunk, end).await.expect("leader read");
        let receipt = follower
            .append_replica(bytes_of(&read).await, 0)
            .expect("replica append");
        receipt.durable().await.expect("durable");
    }
}

#[test]
fn given_a_leaders_batches_should_end_byte_identical_with_its_epochs_and_producers() {
    run(|| async {
        let (leader_dir, follower_dir) = (tempdir(), tempdir());
        let leader = open(leader_dir.path(), config(), &shard()).await;
        let follower = open(follower_dir.path(), config(), &shard()).await;
        for (i, epoch) in [0, 0, 0, 2, 2, 5].into_iter().enumerate() {
            let b = batch_of_size(900, i as i64, i as u8);
            leader.append(b, LeaderEpoch(epoch), 0).expect("append");
        }
        leader
            .append(from_producer(3, 0), LeaderEpoch(5), 0)
            .expect("producer batch")
            .durable()
            .await
            .expect("durable");
        replicate(&leader, &follower, 2_000).await;

        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        let want = bytes_from(&leader, 0).await;
        assert!(bytes_from(&follower, 0).await == want, "byte-identical");
        for epoch in 0..7 {
            assert_eq!(
                follower.end_offset_for_epoch(LeaderEpoch(epoch)),
                leader.end_offset_for_epoch(LeaderEpoch(epoch)),
                "epoch {epoch}"
            );
        }
        assert_eq!(follower.latest_epoch(), Some((LeaderEpoch(5), Offset(5))));

        // The producer's batch, retried at the follower once it leads: a duplicate, answered with
        // the offsets the old leader gave it; the next sequence goes on.
        let retry = follower
            .append(from_producer(3, 0), LeaderEpoch(6), 0)
            .expect("duplicate");
        assert_eq!(retry.base_offset, Offset(6));
        let next = follower
            .append(from_producer(1, 3), LeaderEpoch(6), 0)
            .expect("next sequence");
        assert_eq!(next.base_offset, Offset(9));
        next.durable().await.expect("durable");

        // All of it survives a restart of the follower.
        follower.close().await.expect("close");
        let follower = open(follower_dir.path(), config(), &shard()).await;
        assert_eq!(follower.log_end_offset(), Offset(10));
        assert!(bytes_from(&follower, 0).await[..want.len()] == want[..]);
        assert_eq!(follower.latest_epoch(), Some((LeaderEpoch(6), Offset(9))));
        follower.close().await.expect("close");
        leader.close().await.expect("close");
    });
}

#[test]
fn given_batches_that_do_not_continue_the_log_should_refuse_them_whole() {
    run(|| async {
        let (leader_dir, follower_dir) = (tempdir(), tempdir());
        let leader = open(leader_dir.path(), config(), &shard()).await;
        let follower = open(follower_dir.path(), config(), &shard()).await;
        for (i, epoch) in [1, 1, 3].into_iter().enumerate() {
            let b = batch(2, 100, i as i64, i as u8);
            leader.append(b, LeaderEpoch(epoch), 0).expect("append");
        }
        let end = leader.log_end_offset();
        let all = bytes_of(&leader.read(Offset(0), 1 << 20, end).await.expect("read")).await;
        let from_2 = bytes_of(&leader.read(Offset(2), 1 << 20, end).await.expect("read")).await;

        // A gap: the follower is empty and the leader's batches start at 2.
        let gap = follower.append_replica(from_2.clone(), 0);
        assert!(
            matches!(
                gap,
                Err(AppendError::NotContiguous {
                    expected: 0,
                    got: 2
                })
            ),
            "{:?}",
            gap.err()
        );
        follower.append_replica(all.clone(), 0).expect("append");
        // An overlap: the same batches again.
        let overlap = follower.append_replica(from_2, 0);
        assert!(
            matches!(
                overlap,
                Err(AppendError::NotContiguous {
                    expected: 6,
                    got: 2
                })
            ),
            "{:?}",
            overlap.err()
        );
        // An epoch older than one already written, at the right offset: refused.
        let mut old = batch(1, 100, 9, 9).to_vec();
        odradek_storage::batch::set_base_offset(&mut old, 6);
        odradek_storage::batch::set_partition_leader_epoch(&mut old, 2);
        let stale = follower.append_replica(old.into(), 0);
        assert!(
            matches!(
                stale,
                Err(AppendError::StaleLeaderEpoch {
                    asked: 2,
                    newest: 3
                })
            ),
            "{:?}",
            stale.err()
        );
        // A corrupt batch (a flipped byte under the CRC): refused, nothing appended.
        let mut corrupt = batch(1, 100, 9, 9).to_vec();
        odradek_storage::batch::set_base_offset(&mut corrupt, 6);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(matches!(
            follower.append_replica(corrupt.into(), 0),
            Err(AppendError::Invalid(_))
        ));
        assert_eq!(follower.log_end_offset(), Offset(6));
        follower.close().await.expect("close");
        leader.close().await.expect("close");
    });
}
