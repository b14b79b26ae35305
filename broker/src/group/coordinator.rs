//! The coordinator of the groups whose `__consumer_offsets` partition this shard owns.
//!
//! The shard's groups live in its [`GroupTable`], on the shard context (the shard's own memory;
//! no locks). JoinGroup and SyncGroup answers are held as oneshots in the members until the
//! rebalance ends; a periodic tick (`housekeeping`) expires sessions and ends rebalances whose
//! time is up, so every wait is bounded. Commits are appended to the group's
//! `__consumer_offsets` partition and answered once an fdatasync covers them (acks=all), then
//! applied to the table. At start each shard replays its partitions of the topic (see
//! `housekeeping`); until then its groups answer COORDINATOR_LOAD_IN_PROGRESS.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use odradek_storage::{now_ms, PartitionLog};

use super::offsets::{self, OffsetKey};
use super::state::{Committed, Group, GroupState, JoinArgs, JoinResult, Limits, Step, SyncResult};
use super::{
    CommitItem, GroupDescription, GroupReply, GroupRequest, MemberDescription, TopicPartitions,
    OFFSETS_TOPIC,
};
use crate::data_path::Owner;
use crate::ids::TopicPartition;
use crate::shard::ShardCtx;

/// The most groups one shard coordinates.
pub const GROUPS_MAX: usize = 100_000;
/// The most committed partitions of one group.
pub const OFFSETS_PER_GROUP_MAX: usize = 100_000;
/// Kafka's `offset.metadata.max.bytes`.
pub const METADATA_BYTES_MAX: usize = 4096;
/// The most protocols (assignors) one member may offer, and their metadata's total size.
pub const PROTOCOLS_MAX: usize = 64;
pub const MEMBER_METADATA_BYTES_MAX: usize = 1 << 20;
/// Longest group id accepted (ids are stored as int16-prefixed strings).
pub const GROUP_ID_BYTES_MAX: usize = 1024;
/// Kafka's `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
pub const SESSION_TIMEOUT_MS_MIN: i64 = 6_000;
pub const SESSION_TIMEOUT_MS_MAX: i64 = 1_800_000;

/// The groups a shard coordinates, kept on its [`ShardCtx`].
#[derive(Default)]
pub struct GroupTable {
    /// By group id; at most [`GROUPS_MAX`].
    pub(super) by_id: RefCell<HashMap<String, Group>>,
    /// The `__consumer_offsets` partitions of this shard that this broker leads and whose
    /// commits are loaded into `by_id`, with the leader epoch they were loaded at. A group of a
    /// partition led but not (yet) loaded at its current epoch answers
    /// COORDINATOR_LOAD_IN_PROGRESS (see `housekeeping::load_leaderships`).
    pub(super) loaded: RefCell<HashMap<i32, i32>>,
    /// A load runs (one at a time).
    pub(super) loading: std::cell::Cell<bool>,
}

impl GroupTable {
    /// Whether the groups of offsets partition `partition`, led at `epoch`, are loaded.
    pub(super) fn is_loaded(&self, partition: i32, epoch: i32) -> bool {
        self.loaded.borrow().get(&partition) == Some(&epoch)
    }
}

pub(super) fn limits(ctx: &ShardCtx) -> Limits {
    Limits {
        initial_rebalance_delay_ms: ctx.config.group_initial_rebalance_delay_ms as i64,
    }
}

/// Group ids Kafka refuses, or that do not fit a record key.
pub fn valid_group_id(group: &str) -> bool {
    !group.is_empty() && group.len() <= GROUP_ID_BYTES_MAX
}

/// Runs `f` on `group`, created when missing (`None` if the shard holds too many groups).
fn with_group<R>(
    ctx: &ShardCtx,
    group: &str,
    create: bool,
    f: impl FnOnce(&mut Group) -> R,
) -> Option<R> {
    let mut groups = ctx.groups.by_id.borrow_mut();
    if !groups.contains_key(group) {
        if !create || groups.len() >= GROUPS_MAX {
            return None;
        }
        groups.insert(group.to_string(), Group::new(group, now_ms()));
    }
    groups.get_mut(group).map(f)
}

/// Serves a group request on this (the coordinator) shard.
pub async fn serve(ctx: &ShardCtx, request: GroupRequest) -> GroupReply {
    // Not the coordinator (another broker leads the group's offsets partition), or still
    // loading the committed offsets: the client asks FindCoordinator again, or retries.
    if let Some(group) = request.group() {
        if super::coordinates(ctx, group) && !super::loaded(ctx, group) {
            // Newly led (a new topic, a failover): load now rather than at the next tick.
            super::housekeeping::load_leaderships(ctx).await;
        }
    }
    let refused = match request.group() {
        Some(group) if !super::coordinates(ctx, group) => Some(ResponseError::NotCoordinator),
        Some(group) if !super::loaded(ctx, group) => Some(ResponseError::CoordinatorLoadInProgress),
        _ => None,
    };
    match request {
        GroupRequest::Join { group, args } => GroupReply::Join(match refused {
            Some(error) => JoinResult::error(error, &args.member_id),
            None => join(ctx, &group, args).await,
        }),
        GroupRequest::Sync {
            group,
            member_id,
            instance_id,
            generation,
            protocol,
            assignments,
        } => GroupReply::Sync(match refused {
            Some(error) => SyncResult::error(error),
            None => {
                let step = with_group(ctx, &group, false, |g| {
                    if !g.protocol_matches(protocol.0.as_deref(), protocol.1.as_deref()) {
                        let error = ResponseError::InconsistentGroupProtocol;
                        return Step::Now(SyncResult::error(error));
                    }
                    g.sync(
                        &member_id,
                        instance_id.as_deref(),
                        generation,
                        assignments,
                        now_ms(),
                    )
                });
                match step {
                    None => SyncResult::error(ResponseError::UnknownMemberId),
                    Some(Step::Now(result)) => result,
                    Some(Step::Wait(rx)) => rx
                        .await
                        .unwrap_or_else(|_| SyncResult::error(ResponseError::RebalanceInProgress)),
                }
            }
        }),
        GroupRequest::Heartbeat {
            group,
            member_id,
            instance_id,
            generation,
        } => GroupReply::Code(match refused {
            Some(error) => error.code(),
            None => with_group(ctx, &group, false, |g| {
                g.heartbeat(&member_id, instance_id.as_deref(), generation, now_ms())
            })
            .unwrap_or(ResponseError::UnknownMemberId.code()),
        }),
        GroupRequest::Leave { group, members } => {
            let limits = limits(ctx);
            let codes = members
                .iter()
                .map(|(id, instance)| match refused {
                    Some(error) => error.code(),
                    None => with_group(ctx, &group, false, |g| {
                        g.leave(id, instance.as_deref(), now_ms(), limits)
                    })
                    .unwrap_or(ResponseError::UnknownMemberId.code()),
                })
                .collect();
            GroupReply::Left(codes)
        }
        GroupRequest::Commit {
            group,
            member_id,
            instance_id,
            generation,
            topics,
        } => {
            let check = if let Some(error) = refused {
                error.code()
            } else {
                with_group(ctx, &group, true, |g| {
                    g.check_commit(&member_id, instance_id.as_deref(), generation)
                })
                .unwrap_or(ResponseError::CoordinatorNotAvailable.code())
            };
            GroupReply::Committed(commit(ctx, &group, check, topics).await)
        }
        GroupRequest::FetchOffsets { group, topics } => match refused {
            Some(error) => GroupReply::Offsets {
                error: error.code(),
                topics: Vec::new(),
            },
            None => fetch_offsets(ctx, &group, topics),
        },
        GroupRequest::List { states } => GroupReply::Listed(list(ctx, &states)),
        GroupRequest::Describe { group } => GroupReply::Described(match refused {
            Some(error) => GroupDescription {
                error: error.code(),
                ..GroupDescription::default()
            },
            None => describe(ctx, &group),
        }),
        GroupRequest::Delete { group } => GroupReply::Code(match refused {
            Some(error) => error.code(),
            None => delete_group(ctx, &group).await,
        }),
        GroupRequest::DeleteOffsets { group, topics } => match refused {
            Some(error) => GroupReply::OffsetsDeleted(error.code(), Vec::new()),
            None => delete_offsets(ctx, &group, topics).await,
        },
    }
}

async fn join(ctx: &ShardCtx, group: &str, args: JoinArgs) -> JoinResult {
    if !valid_group_id(group) {
        return JoinResult::error(ResponseError::InvalidGroupId, &args.member_id);
    }
    if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(&args.session_timeout_ms) {
        return JoinResult::error(ResponseError::InvalidSessionTimeout, &args.member_id);
    }
    // A member's metadata is kept while it is in the group: bounded per member.
    let metadata_bytes: usize = args.protocols.iter().map(|(n, m)| n.len() + m.len()).sum();
    if args.protocols.len() > PROTOCOLS_MAX || metadata_bytes > MEMBER_METADATA_BYTES_MAX {
        return JoinResult::error(ResponseError::InvalidRequest, &args.member_id);
    }
    let member_id = args.member_id.clone();
    let limits = limits(ctx);
    match with_group(ctx, group, true, |g| g.join(args, now_ms(), limits)) {
        None => JoinResult::error(ResponseError::CoordinatorNotAvailable, &member_id),
        Some(Step::Now(result)) => result,
        // The sender is dropped only when the member is removed without an answer.
        Some(Step::Wait(rx)) => rx
            .await
            .unwrap_or_else(|_| JoinResult::error(ResponseError::UnknownMemberId, &member_id)),
    }
}

/// The log of the `__consumer_offsets` partition of `group` (owned by this shard).
fn offsets_log(ctx: &ShardCtx, group: &str) -> Option<Rc<PartitionLog>> {
    let partition = super::partition_for(ctx, group);
    ctx.partition(&TopicPartition::new(OFFSETS_TOPIC, partition))
}

/// Appends `items` to the group's partition and waits until they are durable; 0 or an error code.
pub(super) async fn append(
    ctx: &ShardCtx,
    group: &str,
    items: &[(OffsetKey, Option<Committed>)],
) -> i16 {
    append_at(ctx, group, items).await.err().unwrap_or(0)
}

/// [`append`], answering the offset in `__consumer_offsets` where the items start (-1 for none).
async fn append_at(
    ctx: &ShardCtx,
    group: &str,
    items: &[(OffsetKey, Option<Committed>)],
) -> Result<i64, i16> {
    if items.is_empty() {
        return Ok(-1);
    }
    let Some(log) = offsets_log(ctx, group) else {
        return Err(ResponseError::CoordinatorNotAvailable.code());
    };
    let batch_bytes_max = log.config().max_message_bytes as usize;
    let Some(batch) = offsets::encode_batch(items, now_ms(), batch_bytes_max) else {
        return Err(ResponseError::UnknownServerError.code());
    };
    let partition = super::partition_for(ctx, group);
    let epoch = ctx
        .metadata
        .borrow()
        .leader_epoch(OFFSETS_TOPIC, crate::ids::PartitionId(partition));
    let receipt = match log.append(batch, epoch, now_ms()) {
        Ok(receipt) => receipt,
        Err(error) => {
            tracing::warn!(group, %error, "offset commit append failed");
            return Err(ResponseError::CoordinatorNotAvailable.code());
        }
    };
    if let Err(error) = receipt.durable().await {
        tracing::error!(group, %error, "offset commit not durable");
        return Err(ResponseError::KafkaStorageError.code());
    }
    // As Kafka's commits (acks=all): on every in-sync replica of the partition before the
    // answer, so a new coordinator after a failover has them.
    let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
    let replica = ctx.replica(&tp);
    let on = Owner {
        ctx,
        tp: &tp,
        log: &log,
        leader_epoch: epoch,
        replica: &replica,
    };
    let deadline = std::time::Instant::now() + COMMIT_REPLICATION_WAIT_MAX;
    if let Err(failed) =
        crate::replication::acks::replicated(&on, receipt.last_offset, deadline).await
    {
        tracing::warn!(group, why = ?failed.error_message, "offset commit not replicated");
        // Kafka's mapping of a commit's append errors.
        let error = match ResponseError::try_from_code(failed.error_code) {
            Some(ResponseError::NotLeaderOrFollower) => ResponseError::NotCoordinator,
            Some(ResponseError::RequestTimedOut) => ResponseError::RequestTimedOut,
            _ => ResponseError::CoordinatorNotAvailable,
        };
        return Err(error.code());
    }
    Ok(receipt.base_offset.get())
}

/// How long a commit waits for the ISR (Kafka's `offsets.commit.timeout.ms` default).
const COMMIT_REPLICATION_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

async fn commit(
    ctx: &ShardCtx,
    group: &str,
    check: i16,
    topics: Vec<(String, Vec<CommitItem>)>,
) -> Vec<Vec<i16>> {
    if check != 0 || !valid_group_id(group) {
        let code = if check != 0 {
            check
        } else {
            ResponseError::InvalidGroupId.code()
        };
        return topics.iter().map(|(_, p)| vec![code; p.len()]).collect();
    }
    let metadata = ctx.metadata();
    let now = now_ms();
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(topics.len());
    let mut items = Vec::new();
    for (topic, partitions) in &topics {
        let known = metadata.topic(topic).map(|t| t.partitions);
        let mut topic_codes = Vec::with_capacity(partitions.len());
        for (partition, offset, epoch, meta) in partitions {
            let meta = meta.clone().unwrap_or_default();
            let code = if known.is_none_or(|n| !(0..n).contains(partition)) {
                ResponseError::UnknownTopicOrPartition.code()
            } else if meta.len() > METADATA_BYTES_MAX {
                ResponseError::OffsetMetadataTooLarge.code()
            } else {
                items.push((
                    OffsetKey {
                        group: group.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    Some(Committed {
                        offset: *offset,
                        leader_epoch: *epoch,
                        metadata: meta,
                        commit_ms: now,
                        log_offset: -1,
                    }),
                ));
                0
            };
            topic_codes.push(code);
        }
        codes.push(topic_codes);
    }
    let room = with_group(ctx, group, false, |g| {
        g.offsets.len() + items.len() <= OFFSETS_PER_GROUP_MAX
    });
    let written = match room {
        Some(true) => append_at(ctx, group, &items).await,
        _ => Err(ResponseError::CoordinatorNotAvailable.code()),
    };
    if let Ok(log_offset) = written {
        // Commits of one group complete their appends in any order (one sync answers many);
        // the one later in the log wins, as it will when the log is read back at a restart.
        with_group(ctx, group, true, |g| {
            for (key, value) in items {
                let Some(value) = value else { continue };
                let value = Committed {
                    log_offset,
                    ..value
                };
                match g.offsets.entry((key.topic, key.partition)) {
                    Entry::Occupied(held) if held.get().log_offset > log_offset => {}
                    Entry::Occupied(mut held) => {
                        held.insert(value);
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(value);
                    }
                }
            }
        });
    }
    let written = written.err().unwrap_or(0);
    for code in codes.iter_mut().flatten() {
        if *code == 0 {
            *code = written;
        }
    }
    codes
}

fn fetch_offsets(ctx: &ShardCtx, group: &str, topics: Option<TopicPartitions>) -> GroupReply {
    let groups = ctx.groups.by_id.borrow();
    let committed = groups.get(group).map(|g| &g.offsets);
    let lookup = |topic: &str, partition: i32| {
        committed.and_then(|c| c.get(&(topic.to_string(), partition)).cloned())
    };
    let topics = match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let found = partitions
                    .iter()
                    .map(|p| (*p, lookup(&topic, *p)))
                    .collect();
                (topic, found)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<(i32, Option<Committed>)>> = BTreeMap::new();
            for ((topic, partition), value) in committed.into_iter().flatten() {
                by_topic
                    .entry(topic.clone())
                    .or_default()
                    .push((*partition, Some(value.clone())));
            }
            by_topic
                .into_iter()
                .map(|(topic, mut partitions)| {
                    partitions.sort_by_key(|(p, _)| *p);
                    (topic, partitions)
                })
                .collect()
        }
    };
    GroupReply::Offsets { error: 0, topics }
}

fn list(ctx: &ShardCtx, states: &[String]) -> Vec<(String, String, String)> {
    let groups = ctx.groups.by_id.borrow();
    groups
        .values()
        .filter(|g| g.state != GroupState::Dead)
        .filter(|g| {
            states.is_empty()
                || states
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(g.state.name()))
        })
        .map(|g| {
            (
                g.id.clone(),
                g.protocol_type.clone().unwrap_or_default(),
                g.state.name().to_string(),
            )
        })
        .collect()
}

fn describe(ctx: &ShardCtx, group: &str) -> GroupDescription {
    let groups = ctx.groups.by_id.borrow();
    let Some(g) = groups.get(group) else {
        return GroupDescription {
            state: GroupState::Dead.name().into(),
            ..GroupDescription::default()
        };
    };
    let protocol = g.protocol.clone().unwrap_or_default();
    let stable = g.state == GroupState::Stable;
    GroupDescription {
        error: 0,
        state: g.state.name().into(),
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        protocol: protocol.clone(),
        members: g
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata(&protocol),
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect(),
    }
}

async fn delete_group(ctx: &ShardCtx, group: &str) -> i16 {
    let state = with_group(ctx, group, false, |g| {
        (g.is_empty(), g.offsets.keys().cloned().collect::<Vec<_>>())
    });
    let Some((empty, keys)) = state else {
        return ResponseError::GroupIdNotFound.code();
    };
    if !empty {
        return ResponseError::NonEmptyGroup.code();
    }
    let code = append(ctx, group, &tombstones(group, keys)).await;
    if code == 0 {
        if let Some(mut g) = ctx.groups.by_id.borrow_mut().remove(group) {
            g.mark_dead();
        }
        tracing::info!(group, "group deleted");
    }
    code
}

pub(super) fn tombstones(
    group: &str,
    keys: Vec<(String, i32)>,
) -> Vec<(OffsetKey, Option<Committed>)> {
    keys.into_iter()
        .map(|(topic, partition)| {
            let key = OffsetKey {
                group: group.to_string(),
                topic,
                partition,
            };
            (key, None)
        })
        .collect()
}

async fn delete_offsets(ctx: &ShardCtx, group: &str, topics: TopicPartitions) -> GroupReply {
    let state = with_group(ctx, group, false, |g| (g.state, g.protocol.clone()));
    let Some((state, _)) = state else {
        return GroupReply::OffsetsDeleted(ResponseError::GroupIdNotFound.code(), Vec::new());
    };
    // Offsets of partitions a live member consumes stay (Kafka checks the subscription; an
    // active group is refused outright here).
    let busy = !matches!(state, GroupState::Empty | GroupState::Dead);
    let mut codes = Vec::with_capacity(topics.len());
    let mut keys = Vec::new();
    for (topic, partitions) in &topics {
        let code = if busy {
            ResponseError::GroupSubscribedToTopic.code()
        } else {
            0
        };
        if code == 0 {
            keys.extend(partitions.iter().map(|p| (topic.clone(), *p)));
        }
        codes.push(vec![code; partitions.len()]);
    }
    let written = append(ctx, group, &tombstones(group, keys.clone())).await;
    if written != 0 {
        return GroupReply::OffsetsDeleted(written, Vec::new());
    }
    with_group(ctx, group, false, |g| {
        for key in &keys {
            g.offsets.remove(key);
        }
    });
    GroupReply::OffsetsDeleted(0, codes)
}
