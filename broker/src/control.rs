//! The control plane on shard 0: topic and config changes, through the metadata quorum.
//!
//! A change is checked here (names, counts, configs), then proposed to the metadata log as a
//! [`Command`]; every node applies the committed log alike ([`crate::quorum::image`]), and the
//! proposer answers with its own apply's outcome. `validate_only` applies the command to a
//! scratch copy of the image instead. Other shards reach the plane with
//! `router.call(ShardId(0), ShardRequest::Control(..))`; a node that is not the quorum's
//! leader proposes all the same (raft-rs forwards the proposal to the leader), so every broker
//! takes admin requests.
//!
//! The applier ([`apply_loop`]) turns each applied batch into this node's state: it opens the
//! logs of partitions this node now hosts, changes topic configs, publishes the new immutable
//! [`MetadataSnapshot`] to every shard, deletes the logs of topics that are gone (after they
//! are unpublished), and then answers the proposals the batch carried.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::future::{select, Either};
use futures::{SinkExt, StreamExt};
use kafka_protocol::error::ResponseError;

use crate::ids::{NodeId, PartitionId, ShardId};
use crate::metadata::{MetadataSnapshot, PartitionState, TopicMeta};
use crate::quorum::image::{
    Applied, Assignment, ClusterImage, Command, Election, IsrChange, Outcome, Proposal,
};
use crate::quorum::node::{AppliedBatch, Input};
use crate::shard::ShardCtx;
use crate::shard_msg::{ShardReply, ShardRequest};
use crate::topic_config;

/// The largest partition count of one topic.
pub const PARTITIONS_MAX: i32 = 10_000;

/// A change asked of the control plane.
#[derive(Clone, Debug)]
pub enum ControlRequest {
    CreateTopic {
        name: String,
        partitions: i32,
        /// `None`: `default.replication.factor`.
        replication_factor: Option<i16>,
        /// Replicas of each partition, leader first (CreateTopics' assignments).
        assignment: Option<Assignment>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        count: i32,
        assignment: Option<Assignment>,
        validate_only: bool,
    },
    /// Replaces the broker's run-time settings (Kafka names of dynamic broker settings).
    SetBrokerConfigs {
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    /// A partition leader's ISR change.
    AlterPartition(IsrChange),
    /// Leader elections (see `Command::ElectLeaders`).
    ElectLeaders {
        partitions: Option<Vec<(String, i32)>>,
        unclean: bool,
    },
    /// Replaces the topic's whole set of overrides (the handler computes it from the operations).
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
}

/// A Kafka error for one topic: the code and a message for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlError {
    pub error: ResponseError,
    pub message: String,
}

impl ControlError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> ControlError {
        ControlError {
            error,
            message: message.into(),
        }
    }

    pub fn code(&self) -> i16 {
        self.error.code()
    }
}

/// What a successful change returns.
#[derive(Clone, Debug)]
pub enum ControlDone {
    /// The topic as it now is (or would be, under `validate_only`).
    Topic(TopicMeta),
    BrokerConfigs,
    /// The partition as it now is.
    Partition(PartitionState),
    /// Each election asked for, and why it did not happen (`None`: it did).
    Elections(Vec<Election>),
}

pub type ControlReply = Result<ControlDone, ControlError>;

/// The longest a proposer waits for its change to be applied.
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(15);

/// Shard 0's way to the metadata quorum.
pub struct ControlPlane {
    inbox: mpsc::Sender<Input>,
    /// Proposals of this node waiting for their entry to be applied, by proposal id.
    waiters: RefCell<HashMap<u64, oneshot::Sender<Applied>>>,
    /// The image as the applier last published it (for `validate_only`).
    image: RefCell<Arc<ClusterImage>>,
}

impl ControlPlane {
    pub fn new(inbox: mpsc::Sender<Input>, image: Arc<ClusterImage>) -> ControlPlane {
        ControlPlane {
            inbox,
            waiters: RefCell::new(HashMap::new()),
            image: RefCell::new(image),
        }
    }

    /// Proposes `command` and waits until it is applied here: its outcome, or why not.
    pub async fn propose(&self, command: Command) -> Applied {
        let id = rand::random();
        let (done, applied) = oneshot::channel();
        let (refused_tx, refused) = oneshot::channel();
        self.waiters.borrow_mut().insert(id, done);
        let proposal = Proposal { id, command };
        let input = Input::Propose {
            proposal,
            refused: refused_tx,
        };
        if self.inbox.clone().send(input).await.is_err() {
            self.waiters.borrow_mut().remove(&id);
            return Err(stopping());
        }
        // The refusal's sender is dropped when Raft takes the proposal: then only the apply
        // (or the timeout) answers.
        let refused = std::pin::pin!(async {
            match refused.await {
                Ok(error) => error,
                Err(_) => futures::future::pending().await,
            }
        });
        let timeout = std::pin::pin!(glommio::timer::sleep(PROPOSAL_TIMEOUT));
        let outcome = select(applied, select(refused, timeout)).await;
        self.waiters.borrow_mut().remove(&id);
        match outcome {
            Either::Left((Ok(applied), _)) => applied,
            Either::Left((Err(_), _)) => Err(stopping()),
            Either::Right((Either::Left((error, _)), _)) => Err(error),
            Either::Right((Either::Right(_), _)) => Err(ControlError::new(
                ResponseError::RequestTimedOut,
                "the metadata quorum did not commit the change in time (is a majority of the \
                 controllers up?)",
            )),
        }
    }

    /// What `command` would do, applied to a copy of the current image.
    fn dry_run(&self, command: Command) -> Applied {
        let mut image = ClusterImage::clone(&self.image.borrow());
        image.apply(command)
    }
}

fn stopping() -> ControlError {
    ControlError::new(ResponseError::UnknownServerError, "the broker is stopping")
}

/// Sends `request` to the control plane on shard 0 (locally when this is shard 0).
pub async fn call(ctx: &ShardCtx, request: ControlRequest) -> ControlReply {
    match ctx
        .router
        .call(ShardId(0), ShardRequest::Control(request))
        .await
    {
        ShardReply::Control(reply) => reply,
        other => Err(ControlError::new(
            ResponseError::UnknownServerError,
            format!("control plane: {other:?}"),
        )),
    }
}

/// [`call`] for a topic change: the topic as it now is.
pub async fn call_topic(
    ctx: &ShardCtx,
    request: ControlRequest,
) -> Result<TopicMeta, ControlError> {
    match call(ctx, request).await? {
        ControlDone::Topic(meta) => Ok(meta),
        ControlDone::BrokerConfigs | ControlDone::Partition(_) | ControlDone::Elections(_) => {
            Err(ControlError::new(
                ResponseError::UnknownServerError,
                "a topic change answered as a broker change",
            ))
        }
    }
}

/// Kafka's topic-name rules: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ControlError> {
    let invalid = |why: &str| Err(ControlError::new(ResponseError::InvalidTopicException, why));
    if name.is_empty() || name.len() > 249 {
        return invalid("topic names have 1 to 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("topic name cannot be '.' or '..'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("topic names contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Runs a control request; called on shard 0.
pub async fn serve(ctx: &ShardCtx, request: ControlRequest) -> ControlReply {
    let Some(plane) = ctx.control.get() else {
        return Err(ControlError::new(
            ResponseError::NotController,
            "control requests go to shard 0",
        ));
    };
    let (command, validate_only) = checked_command(ctx, request)?;
    let outcome = match validate_only {
        true => plane.dry_run(command),
        false => plane.propose(command).await,
    }?;
    match outcome {
        Outcome::Topic(meta) => Ok(ControlDone::Topic(meta)),
        Outcome::Partition(state) => Ok(ControlDone::Partition(state)),
        Outcome::Elections(elections) => Ok(ControlDone::Elections(elections)),
        Outcome::Done | Outcome::Registered { .. } => Ok(ControlDone::BrokerConfigs),
    }
}

/// The command for `request`, after the checks that need no state: names, counts, configs.
fn checked_command(
    ctx: &ShardCtx,
    request: ControlRequest,
) -> Result<(Command, bool), ControlError> {
    Ok(match request {
        ControlRequest::CreateTopic {
            name,
            partitions,
            replication_factor,
            assignment,
            configs,
            validate_only,
        } => {
            validate_topic_name(&name)?;
            let partitions = assignment.as_ref().map_or(partitions, |a| a.len() as i32);
            check_partition_count(partitions)?;
            let replication_factor =
                replication_factor.unwrap_or(ctx.config.default_replication_factor);
            let command = Command::CreateTopic {
                name,
                id: uuid::Builder::from_random_bytes(rand::random()).into_uuid(),
                partitions,
                replication_factor,
                assignment,
                configs: validated_configs(&configs)?,
            };
            (command, validate_only)
        }
        ControlRequest::DeleteTopic { name } => (Command::DeleteTopic { name }, false),
        ControlRequest::AlterPartition(change) => (Command::AlterPartition(change), false),
        ControlRequest::ElectLeaders {
            partitions,
            unclean,
        } => (
            Command::ElectLeaders {
                partitions,
                unclean,
            },
            false,
        ),
        ControlRequest::CreatePartitions {
            name,
            count,
            assignment,
            validate_only,
        } => {
            check_partition_count(count)?;
            let command = Command::CreatePartitions {
                name,
                count,
                assignment,
            };
            (command, validate_only)
        }
        ControlRequest::SetTopicConfigs {
            name,
            configs,
            validate_only,
        } => {
            let configs = validated_configs(&configs)?;
            (Command::SetTopicConfigs { name, configs }, validate_only)
        }
        ControlRequest::SetBrokerConfigs {
            configs,
            validate_only,
        } => {
            let invalid =
                |message: String| ControlError::new(ResponseError::InvalidConfig, message);
            if let Some(name) = configs.keys().find(|n| !crate::settings::is_dynamic(n)) {
                return Err(invalid(format!(
                    "`{name}` cannot change at run time: set it with --config or --set and \
                     restart"
                )));
            }
            ctx.config
                .with_dynamic(&configs)
                .map_err(|e| invalid(e.to_string()))?;
            (Command::SetBrokerConfigs { configs }, validate_only)
        }
    })
}

fn check_partition_count(partitions: i32) -> Result<(), ControlError> {
    if !(1..=PARTITIONS_MAX).contains(&partitions) {
        let message = format!("partition count {partitions} is outside [1, {PARTITIONS_MAX}]");
        return Err(ControlError::new(ResponseError::InvalidPartitions, message));
    }
    Ok(())
}

fn validated_configs(
    configs: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ControlError> {
    topic_config::validate_all(configs)
        .map_err(|e| ControlError::new(ResponseError::InvalidConfig, e.to_string()))
}

/// The partitions of `topic` this node hosts (it is one of their replicas), by owning shard.
fn hosted_by_shard(
    snapshot: &MetadataSnapshot,
    meta: &TopicMeta,
    shard_count: usize,
) -> BTreeMap<ShardId, Vec<i32>> {
    let me = snapshot.broker.node_id.0;
    let mut by_shard: BTreeMap<ShardId, Vec<i32>> = BTreeMap::new();
    for (partition, state) in meta.partition_states.iter().enumerate() {
        if state.replicas.contains(&me) {
            let partition = PartitionId(partition as i32);
            by_shard
                .entry(crate::ids::shard_for(&meta.name, partition, shard_count))
                .or_default()
                .push(partition.0);
        }
    }
    by_shard
}

/// Topics whose partitions `shard` hosts at start: (topic, partitions, log config).
pub fn owned_at_start(
    snapshot: &MetadataSnapshot,
    shard: ShardId,
    shard_count: usize,
) -> Vec<(String, Vec<i32>, odradek_storage::LogConfig)> {
    let mut owned = Vec::new();
    for meta in snapshot.topics.values() {
        if let Some(partitions) = hosted_by_shard(snapshot, meta, shard_count).remove(&shard) {
            let config = topic_config::log_config(&snapshot.broker_config, &meta.configs);
            owned.push((meta.name.clone(), partitions, config));
        }
    }
    owned
}

/// The metadata snapshot of `image` for this node.
pub fn snapshot_of(
    ctx: &ShardCtx,
    old: &MetadataSnapshot,
    image: &ClusterImage,
    controller: Option<i32>,
) -> MetadataSnapshot {
    let broker_config = match ctx.config.with_dynamic(&image.broker_configs) {
        Ok(config) => Arc::new(config),
        Err(error) => {
            // Checked when proposed; a node with other static settings may still refuse one.
            tracing::error!(%error, "run-time broker settings not applied here");
            Arc::clone(&old.broker_config)
        }
    };
    MetadataSnapshot::of_image(
        // One past a possible interim snapshot (see `reconcile`).
        old.version + 2,
        old.broker.clone(),
        old.cluster_id.clone(),
        controller.map(NodeId),
        image,
        broker_config,
    )
}

/// The applier, on shard 0: each applied batch becomes this node's logs and snapshot, then
/// the batch's proposals are answered.
pub async fn apply_loop(ctx: Rc<ShardCtx>, mut batches: mpsc::UnboundedReceiver<AppliedBatch>) {
    while let Some(mut batch) = batches.next().await {
        // Batches queued meanwhile: only the last image matters; every outcome is answered.
        while let Ok(next) = batches.try_recv() {
            let mut outcomes = std::mem::take(&mut batch.outcomes);
            outcomes.extend(next.outcomes);
            batch = AppliedBatch { outcomes, ..next };
        }
        let old = ctx.metadata();
        let new = snapshot_of(&ctx, &old, &batch.image, batch.controller);
        let controller_changed = old.controller != new.controller;
        reconcile(&ctx, &old, new).await;
        let Some(plane) = ctx.control.get() else {
            continue;
        };
        *plane.image.borrow_mut() = batch.image;
        for (id, outcome) in batch.outcomes {
            if let Some(waiter) = plane.waiters.borrow_mut().remove(&id) {
                let _ = waiter.send(outcome);
            }
        }
        if controller_changed {
            // A proposal in flight to the old leader may be lost with it: its proposer is told
            // to retry now rather than wait out the timeout. (One that the old leader did
            // replicate still commits; the retry then finds the topic there, as in Kafka.)
            for (_, waiter) in plane.waiters.borrow_mut().drain() {
                let _ = waiter.send(Err(ControlError::new(
                    ResponseError::NotController,
                    "the active controller changed while the change was in flight; retry",
                )));
            }
        }
    }
}

/// Brings this node from `old` to `new`: topics gone (or replaced by a namesake) are
/// unpublished and their logs deleted; logs of partitions hosted now are opened before the
/// snapshot naming them is published; topic configs reach the shards' logs.
async fn reconcile(ctx: &ShardCtx, old: &MetadataSnapshot, new: MetadataSnapshot) {
    let gone: Vec<&TopicMeta> = old
        .topics
        .values()
        .filter(|t| new.topic(&t.name).map(|n| n.id) != Some(t.id))
        .collect();
    if !gone.is_empty() {
        let mut interim = old.clone();
        interim.version += 1;
        for meta in &gone {
            interim.topics.remove(&meta.name);
            interim.topic_names_by_id.remove(&meta.id);
        }
        publish(ctx, interim).await;
        for meta in &gone {
            delete_logs(ctx, old, meta).await;
        }
    }
    for meta in new.topics.values() {
        let before = old.topic(&meta.name).filter(|t| t.id == meta.id);
        let hosted_before = before.map(|t| hosted_by_shard(old, t, ctx.shard_count));
        let config = topic_config::log_config(&new.broker_config, &meta.configs);
        for (shard, partitions) in hosted_by_shard(&new, meta, ctx.shard_count) {
            let had = hosted_before.as_ref().and_then(|h| h.get(&shard));
            let partitions: Vec<i32> = partitions
                .into_iter()
                .filter(|p| !had.is_some_and(|had| had.contains(p)))
                .collect();
            if partitions.is_empty() {
                continue;
            }
            let request = ShardRequest::OpenPartitions {
                topic: meta.name.clone(),
                partitions,
                config: config.clone(),
            };
            report(ctx.router.call(shard, request).await, "open partition logs");
        }
        if before.is_some_and(|t| t.configs != meta.configs) {
            for shard in (0..ctx.shard_count).map(ShardId) {
                let request = ShardRequest::SetTopicConfig {
                    topic: meta.name.clone(),
                    config: config.clone(),
                };
                report(
                    ctx.router.call(shard, request).await,
                    "set the topic config",
                );
            }
            tracing::info!(topic = %meta.name, configs = ?meta.configs, "topic configs changed");
        }
    }
    let broker_configs_changed = old.broker_overrides != new.broker_overrides;
    publish(ctx, new).await;
    if broker_configs_changed {
        for shard in (0..ctx.shard_count).map(ShardId) {
            let request = ShardRequest::RefreshLogConfigs;
            report(
                ctx.router.call(shard, request).await,
                "apply the broker config",
            );
        }
        tracing::info!(configs = ?ctx.metadata().broker_overrides, "broker configs changed");
    }
}

async fn delete_logs(ctx: &ShardCtx, old: &MetadataSnapshot, meta: &TopicMeta) {
    for (shard, partitions) in hosted_by_shard(old, meta, ctx.shard_count) {
        let request = ShardRequest::DeletePartitions {
            topic: meta.name.clone(),
            partitions,
        };
        report(
            ctx.router.call(shard, request).await,
            "delete partition logs",
        );
    }
    tracing::info!(topic = %meta.name, "topic deleted");
}

fn report(reply: ShardReply, what: &str) {
    match reply {
        ShardReply::Done => {}
        ShardReply::Failed(reason) => tracing::error!(%reason, "cannot {what}"),
        other => tracing::error!(?other, "cannot {what}"),
    }
}

/// Publishes `snapshot` to every shard.
async fn publish(ctx: &ShardCtx, snapshot: MetadataSnapshot) {
    let snapshot = Arc::new(snapshot);
    for shard in (0..ctx.shard_count).map(ShardId) {
        let reply = ctx
            .router
            .call(shard, ShardRequest::PublishMetadata(Arc::clone(&snapshot)))
            .await;
        if !matches!(reply, ShardReply::Done) {
            tracing::warn!(%shard, ?reply, "metadata not published");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_name_rules() {
        for good in ["a", "orders.v1", "my_topic-2", &"x".repeat(249)] {
            assert!(validate_topic_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a b", "ü", "a/b", &"x".repeat(250)] {
            let err = validate_topic_name(bad).expect_err(bad);
            assert_eq!(err.error, ResponseError::InvalidTopicException);
        }
    }
}
