//! A leader's side: follower fetches, and the ISR changes they lead to.
//!
//! A follower's fetch offset is its log end: the leader records it (the follower's progress),
//! which may move the high watermark, and answers with its batches up to its own written end.
//! Each shard runs one [`run`] task that, woken by a follower reaching the high watermark and
//! every quarter of `replica.lag.time.max.ms`, proposes the ISR changes of the partitions this
//! broker leads on the shard: followers that caught up join, followers that did not catch up
//! within `replica.lag.time.max.ms` leave. One change per partition is in flight at a time; it
//! names the leader and partition epochs it was computed from, so the controller refuses it if
//! either moved on.

use std::rc::Rc;
use std::time::Duration;

use futures::future::{select, Either};
use kafka_protocol::error::ResponseError;
use odradek_net::Shutdown;
use odradek_storage::now_ms;

use crate::control::{self, ControlDone, ControlRequest};
use crate::data_path::{FetchItem, Owner};
use crate::ids::TopicPartition;
use crate::metadata::PartitionState;
use crate::partition_ops::{self, FetchResult};
use crate::quorum::image::IsrChange;
use crate::shard::ShardCtx;

/// Fetch work for follower `replica` of the partition `on`.
pub async fn follower_fetch(on: Owner<'_>, replica: i32, item: FetchItem) -> FetchResult {
    let (follows, in_isr) = {
        let metadata = on.ctx.metadata.borrow();
        match metadata.partition(&on.tp.topic, on.tp.partition) {
            Some(state) => (
                state.replicas.contains(&replica),
                state.isr.contains(&replica),
            ),
            None => (false, false),
        }
    };
    if !follows {
        return FetchResult::failed(ResponseError::NotLeaderOrFollower);
    }
    let leader_end = on.log.log_end_offset();
    // An offset past the log end is not progress: the read answers OFFSET_OUT_OF_RANGE and the
    // follower truncates.
    if item.offset <= leader_end {
        on.replica
            .record_fetch(replica, item.offset.get(), leader_end.get(), now_ms());
    }
    let hw = on.high_watermark();
    if !in_isr && item.offset >= hw {
        on.ctx.isr_wakeup.wake();
    }
    let written = on.log.written_end_offset();
    partition_ops::fetch(on.log, item.offset, item.max_bytes, written, hw).await
}

/// Proposes this shard's ISR changes until `shutdown` (see the module comment).
pub async fn run(ctx: Rc<ShardCtx>, shutdown: Shutdown) {
    let lag_max = ctx.config.replica_lag_time_max_ms;
    let every = Duration::from_millis((lag_max / 4).clamp(50, 5_000));
    loop {
        let woken = std::pin::pin!(ctx.isr_wakeup.wait());
        let tick = std::pin::pin!(glommio::timer::sleep(every));
        let stop = std::pin::pin!(shutdown.wait());
        if let Either::Right(_) = select(select(woken, tick), stop).await {
            return;
        }
        for (tp, isr, state) in changes(&ctx, lag_max) {
            let replica = ctx.replica(&tp);
            replica.isr_change_pending.set(true);
            let ctx = Rc::clone(&ctx);
            glommio::spawn_local(async move {
                propose(&ctx, &tp, &state, isr).await;
                replica.isr_change_pending.set(false);
            })
            .detach();
        }
    }
}

/// The ISR changes due on this shard: (partition, its new ISR, the state it changes).
fn changes(ctx: &ShardCtx, lag_max_ms: u64) -> Vec<(TopicPartition, Vec<i32>, PartitionState)> {
    let metadata = ctx.metadata();
    let me = metadata.broker.node_id.0;
    let now = now_ms();
    let mut changes = Vec::new();
    let partitions: Vec<_> = ctx
        .partitions
        .borrow()
        .iter()
        .map(|(tp, log)| (tp.clone(), Rc::clone(log)))
        .collect();
    for (tp, log) in partitions {
        let Some(state) = metadata.partition(&tp.topic, tp.partition) else {
            continue;
        };
        if state.leader != me || state.replicas.len() < 2 {
            continue;
        }
        let replica = ctx.replica(&tp);
        replica.follow_metadata(state, now);
        if replica.isr_change_pending.get() {
            continue;
        }
        let hw = replica.high_watermark(&log, state, me).get();
        let leaving = replica.lagging(state, me, now, lag_max_ms);
        let live = |r: &i32| metadata.brokers.get(r).is_some_and(|b| !b.fenced);
        let joining: Vec<i32> = state
            .replicas
            .iter()
            .copied()
            .filter(|r| !state.isr.contains(r) && live(r))
            .filter(|&r| replica.follower_log_end(r).is_some_and(|end| end >= hw))
            .collect();
        if leaving.is_empty() && joining.is_empty() {
            continue;
        }
        // In replica order, the preferred leader first.
        let isr: Vec<i32> = state
            .replicas
            .iter()
            .copied()
            .filter(|r| (state.isr.contains(r) && !leaving.contains(r)) || joining.contains(r))
            .collect();
        changes.push((tp, isr, state.clone()));
    }
    changes
}

async fn propose(ctx: &ShardCtx, tp: &TopicPartition, state: &PartitionState, isr: Vec<i32>) {
    let request = ControlRequest::AlterPartition(IsrChange {
        topic: tp.topic.clone(),
        partition: tp.partition.0,
        leader: state.leader,
        leader_epoch: state.leader_epoch,
        partition_epoch: state.partition_epoch,
        isr: isr.clone(),
    });
    match control::call(ctx, request).await {
        Ok(ControlDone::Partition(now)) => tracing::info!(
            partition = %tp,
            from = ?state.isr,
            to = ?now.isr,
            partition_epoch = now.partition_epoch,
            "ISR changed"
        ),
        Ok(other) => tracing::warn!(partition = %tp, ?other, "an ISR change answered oddly"),
        // Refused as stale: the next round works from the newer state.
        Err(error) => tracing::info!(
            partition = %tp, from = ?state.isr, to = ?isr, %error.message, "ISR change refused"
        ),
    }
}
