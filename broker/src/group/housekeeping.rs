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

/// At start, on every shard: loads the commits of the `__consumer_offsets` partitions this
/// broker leads on the shard, then starts the tick (which loads them again at every change of
/// leadership).
pub async fn start(ctx: &Rc<ShardCtx>) {
    let loaded = load_leaderships(ctx).await;
    if loaded > 0 {
        tracing::info!(shard = %ctx.shard, commits = loaded, "committed offsets loaded");
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

/// Brings the group table in line with the leadership of this shard's `__consumer_offsets`
/// partitions: the groups of a partition this broker no longer leads go (their members find
/// the new coordinator); the commits of one it has come to lead, at start or after a failover,
/// are read from its log (everything this replica holds: as the new leader its log is the
/// partition's). Until a partition is loaded at its current epoch, its groups answer
/// COORDINATOR_LOAD_IN_PROGRESS.
/// Answers how many commits it loaded.
pub(super) async fn load_leaderships(ctx: &ShardCtx) -> usize {
    if ctx.groups.loading.replace(true) {
        return 0;
    }
    let loaded = load_leaderships_now(ctx).await;
    ctx.groups.loading.set(false);
    loaded
}

async fn load_leaderships_now(ctx: &ShardCtx) -> usize {
    let metadata = ctx.metadata();
    let me = metadata.broker.node_id.0;
    let logs: Vec<(TopicPartition, Rc<PartitionLog>)> = ctx
        .partitions
        .borrow()
        .iter()
        .filter(|(tp, _)| tp.topic == OFFSETS_TOPIC)
        .map(|(tp, log)| (tp.clone(), Rc::clone(log)))
        .collect();
    let mut loaded = 0;
    for (tp, log) in logs {
        let partition = tp.partition.0;
        let leads_at = metadata
            .partition(OFFSETS_TOPIC, tp.partition)
            .filter(|state| state.leader == me)
            .map(|state| state.leader_epoch);
        let loaded_at = ctx.groups.loaded.borrow().get(&partition).copied();
        if leads_at == loaded_at {
            continue;
        }
        ctx.groups.loaded.borrow_mut().remove(&partition);
        ctx.groups
            .by_id
            .borrow_mut()
            .retain(|group, _| super::partition_for(ctx, group) != partition);
        let Some(epoch) = leads_at else {
            continue;
        };
        let mut commits: HashMap<OffsetKey, Committed> = HashMap::new();
        if let Err(error) = replay_log(&log, &mut commits).await {
            // Tried again at the next tick.
            tracing::error!(partition = %tp, %error, "replaying committed offsets failed");
            continue;
        }
        let count = commits.len();
        let now = now_ms();
        let mut groups = ctx.groups.by_id.borrow_mut();
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
        ctx.groups.loaded.borrow_mut().insert(partition, epoch);
        loaded += count;
        if count > 0 {
            let commits = count;
            tracing::debug!(partition = %tp, leader_epoch = epoch, commits, "offsets loaded");
        }
    }
    loaded
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
        load_leaderships(&ctx).await;
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
