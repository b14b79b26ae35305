//! The coordinator's background work: replaying `__consumer_offsets` at start, creating it on
//! first use, the tick that expires sessions and ends rebalances, and offset expiry.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use odradek_storage::{now_ms, Chunk, Offset, PartitionLog};

use super::coordinator::{append, limits, tombstones, GROUPS_MAX};
use super::offsets::{self, OffsetKey};
use super::state::{Committed, Group, GroupState};
use super::OFFSETS_TOPIC;
use crate::control::{self, ControlRequest};
use crate::ids::TopicPartition;
use crate::shard::ShardCtx;

/// How often sessions and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(100);
/// How often offsets of long-empty groups are expired.
const EXPIRY_EVERY_TICKS: u32 = 600;
/// One replay read.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// At start, on every shard: replays this shard's partitions of `__consumer_offsets` (when the
/// topic exists), then serves its groups and starts the tick.
pub async fn start(ctx: &Rc<ShardCtx>) {
    let replayed = replay(ctx).await;
    ctx.groups.loaded.set(true);
    if replayed > 0 {
        tracing::info!(shard = %ctx.shard, commits = replayed, "committed offsets loaded");
    }
    glommio::spawn_local(tick_loop(Rc::clone(ctx))).detach();
}

/// Creates `__consumer_offsets` when missing, as Kafka does on the first FindCoordinator for a
/// group (so a broker that never sees a group has no such topic). True once it exists.
pub async fn ensure_offsets_topic(ctx: &ShardCtx) -> bool {
    if ctx.metadata().topic(OFFSETS_TOPIC).is_some() {
        return true;
    }
    // Compacted only: commits never go by age or size.
    let configs = [("cleanup.policy", "compact")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Kafka refuses until enough brokers registered; a fresh cluster's first group would then
    // wait for its last broker. Here the factor is capped at the brokers registered now.
    let live = ctx.metadata().live_brokers().count().max(1);
    let replication_factor = ctx.config.offsets_topic_replication_factor.min(live as i16);
    let request = ControlRequest::CreateTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: ctx.config.offsets_topic_num_partitions as i32,
        replication_factor: Some(replication_factor.max(1)),
        assignment: None,
        configs,
        validate_only: false,
    };
    if let Err(error) = control::call_topic(ctx, request).await {
        // Another request may have created it meanwhile.
        if ctx.metadata().topic(OFFSETS_TOPIC).is_none() {
            tracing::error!(error = %error.message, "cannot create {OFFSETS_TOPIC}");
            return false;
        }
    }
    true
}

/// Reads every commit of this shard's `__consumer_offsets` partitions into the group table.
pub(super) async fn replay(ctx: &ShardCtx) -> usize {
    let logs: Vec<(TopicPartition, Rc<PartitionLog>)> = ctx
        .partitions
        .borrow()
        .iter()
        .filter(|(tp, _)| tp.topic == OFFSETS_TOPIC)
        .map(|(tp, log)| (tp.clone(), Rc::clone(log)))
        .collect();
    let mut commits: HashMap<OffsetKey, Committed> = HashMap::new();
    for (tp, log) in logs {
        if let Err(error) = replay_log(&log, &mut commits).await {
            tracing::error!(partition = %tp, %error, "replaying committed offsets failed");
        }
    }
    let count = commits.len();
    let mut groups = ctx.groups.by_id.borrow_mut();
    let now = now_ms();
    for (key, value) in commits {
        if !groups.contains_key(&key.group) && groups.len() >= GROUPS_MAX {
            continue;
        }
        groups
            .entry(key.group.clone())
            .or_insert_with(|| Group::new(&key.group, now))
            .offsets
            .insert((key.topic, key.partition), value);
    }
    count
}

async fn replay_log(
    log: &PartitionLog,
    into: &mut HashMap<OffsetKey, Committed>,
) -> Result<(), String> {
    let end = log.written_end_offset();
    let mut position = log.log_start_offset().get();
    while position < end.get() {
        let outcome = log
            .read(Offset(position), REPLAY_READ_BYTES, end)
            .await
            .map_err(|e| e.to_string())?;
        let mut bytes = BytesMut::with_capacity(outcome.bytes);
        for chunk in outcome.chunks {
            match chunk {
                Chunk::Memory(b) => bytes.extend_from_slice(&b),
                Chunk::File(region) => {
                    bytes.extend_from_slice(&region.read().await.map_err(|e| e.to_string())?)
                }
            }
        }
        match offsets::apply_batches(bytes.freeze(), into)? {
            Some(next) if next > position => position = next,
            // No progress: nothing more can be read.
            _ => break,
        }
        glommio::executor().yield_if_needed().await;
    }
    Ok(())
}

/// Expires sessions and ends rebalances every [`TICK`]; expires old offsets now and then.
async fn tick_loop(ctx: Rc<ShardCtx>) {
    let mut ticks: u32 = 0;
    loop {
        glommio::timer::sleep(TICK).await;
        let now = now_ms();
        let limits = limits(&ctx);
        {
            let mut groups = ctx.groups.by_id.borrow_mut();
            for group in groups.values_mut() {
                group.tick(now, limits);
            }
            groups.retain(|_, g| {
                !(g.state == GroupState::Empty && g.is_empty() && g.offsets.is_empty())
            });
        }
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(EXPIRY_EVERY_TICKS) {
            expire_offsets(&ctx, now).await;
        }
    }
}

pub(super) async fn expire_offsets(ctx: &ShardCtx, now: i64) {
    let retention_ms = offsets_retention_ms(ctx);
    let expired: Vec<(String, Vec<(String, i32)>)> = {
        let mut groups = ctx.groups.by_id.borrow_mut();
        groups
            .values_mut()
            .map(|g| (g.id.clone(), g.expire_offsets(now, retention_ms)))
            .filter(|(_, keys)| !keys.is_empty())
            .collect()
    };
    for (group, keys) in expired {
        let count = keys.len();
        let code = append(ctx, &group, &tombstones(&group, keys)).await;
        tracing::info!(group = %group, partitions = count, code, "committed offsets expired");
    }
}

/// `offsets.retention.minutes` in milliseconds.
pub(super) fn offsets_retention_ms(ctx: &ShardCtx) -> i64 {
    i64::try_from(ctx.config.offsets_retention_minutes.saturating_mul(60_000)).unwrap_or(i64::MAX)
}
