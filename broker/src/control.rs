//! The control plane on shard 0: the topic registry and every change to it.
//!
//! Each change runs under one lock (changes are serialized), asks the owning shards to open or
//! delete their partition logs, writes the registry file (off the reactor), then publishes a new
//! immutable [`MetadataSnapshot`] to every shard. Other shards reach it with
//! `router.call(ShardId(0), ShardRequest::Control(..))`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use glommio::sync::Semaphore;
use kafka_protocol::error::ResponseError;

use crate::ids::{PartitionId, ShardId};
use crate::metadata::{MetadataSnapshot, TopicMeta};
use crate::registry::{self, Registry};
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
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        count: i32,
        validate_only: bool,
    },
    /// Replaces the broker's run-time settings (Kafka names of dynamic broker settings).
    SetBrokerConfigs {
        configs: BTreeMap<String, String>,
        validate_only: bool,
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
}

pub type ControlReply = Result<ControlDone, ControlError>;

/// Shard 0's registry state.
pub struct ControlPlane {
    data_dir: PathBuf,
    /// One change at a time.
    lock: Semaphore,
}

impl ControlPlane {
    pub fn new(data_dir: PathBuf) -> ControlPlane {
        ControlPlane {
            data_dir,
            lock: Semaphore::new(1),
        }
    }
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
        ControlDone::BrokerConfigs => Err(ControlError::new(
            ResponseError::UnknownServerError,
            "a topic change answered as a broker change",
        )),
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
    let Some(plane) = &ctx.control else {
        return Err(ControlError::new(
            ResponseError::NotController,
            "control requests go to shard 0",
        ));
    };
    let Ok(_permit) = plane.lock.acquire_permit(1).await else {
        return Err(ControlError::new(
            ResponseError::UnknownServerError,
            "the broker is stopping",
        ));
    };
    match request {
        ControlRequest::CreateTopic {
            name,
            partitions,
            configs,
            validate_only,
        } => create_topic(ctx, plane, name, partitions, configs, validate_only)
            .await
            .map(ControlDone::Topic),
        ControlRequest::DeleteTopic { name } => {
            delete_topic(ctx, plane, name).await.map(ControlDone::Topic)
        }
        ControlRequest::CreatePartitions {
            name,
            count,
            validate_only,
        } => create_partitions(ctx, plane, name, count, validate_only)
            .await
            .map(ControlDone::Topic),
        ControlRequest::SetTopicConfigs {
            name,
            configs,
            validate_only,
        } => set_topic_configs(ctx, plane, name, configs, validate_only)
            .await
            .map(ControlDone::Topic),
        ControlRequest::SetBrokerConfigs {
            configs,
            validate_only,
        } => set_broker_configs(ctx, plane, configs, validate_only)
            .await
            .map(|()| ControlDone::BrokerConfigs),
    }
}

async fn create_topic(
    ctx: &ShardCtx,
    plane: &ControlPlane,
    name: String,
    partitions: i32,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<TopicMeta, ControlError> {
    validate_topic_name(&name)?;
    let snapshot = ctx.metadata();
    if snapshot.topic(&name).is_some() {
        return Err(ControlError::new(
            ResponseError::TopicAlreadyExists,
            format!("topic '{name}' already exists"),
        ));
    }
    check_partition_count(partitions)?;
    let configs = validated_configs(&configs)?;
    let meta = TopicMeta {
        name: name.clone(),
        id: uuid::Builder::from_random_bytes(rand::random()).into_uuid(),
        partitions,
        configs,
    };
    if validate_only {
        return Ok(meta);
    }
    open_partitions(ctx, &meta, 0..partitions).await?;
    let mut topics = snapshot.topics.clone();
    topics.insert(name.clone(), meta.clone());
    commit(ctx, plane, snapshot.with_topics(topics)).await?;
    tracing::info!(topic = %name, partitions, id = %meta.id, "topic created");
    Ok(meta)
}

async fn delete_topic(
    ctx: &ShardCtx,
    plane: &ControlPlane,
    name: String,
) -> Result<TopicMeta, ControlError> {
    let snapshot = ctx.metadata();
    let Some(meta) = snapshot.topic(&name).cloned() else {
        return Err(unknown_topic(&name));
    };
    let mut topics = snapshot.topics.clone();
    topics.remove(&name);
    // Unpublish first so no new request reaches the logs, then delete them.
    commit(ctx, plane, snapshot.with_topics(topics)).await?;
    for (shard, partitions) in owners(ctx, &name, 0..meta.partitions) {
        let request = ShardRequest::DeletePartitions {
            topic: name.clone(),
            partitions,
        };
        if let ShardReply::Failed(reason) = ctx.router.call(shard, request).await {
            tracing::warn!(topic = %name, %shard, %reason, "deleting partition logs failed");
        }
    }
    tracing::info!(topic = %name, "topic deleted");
    Ok(meta)
}

async fn create_partitions(
    ctx: &ShardCtx,
    plane: &ControlPlane,
    name: String,
    count: i32,
    validate_only: bool,
) -> Result<TopicMeta, ControlError> {
    let snapshot = ctx.metadata();
    let Some(old) = snapshot.topic(&name).cloned() else {
        return Err(unknown_topic(&name));
    };
    if count <= old.partitions {
        let message = format!(
            "topic '{name}' has {} partitions; the new count must be larger",
            old.partitions
        );
        return Err(ControlError::new(ResponseError::InvalidPartitions, message));
    }
    check_partition_count(count)?;
    let meta = TopicMeta {
        partitions: count,
        ..old.clone()
    };
    if validate_only {
        return Ok(meta);
    }
    open_partitions(ctx, &meta, old.partitions..count).await?;
    let mut topics = snapshot.topics.clone();
    topics.insert(name.clone(), meta.clone());
    commit(ctx, plane, snapshot.with_topics(topics)).await?;
    tracing::info!(topic = %name, from = old.partitions, to = count, "partitions added");
    Ok(meta)
}

async fn set_topic_configs(
    ctx: &ShardCtx,
    plane: &ControlPlane,
    name: String,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<TopicMeta, ControlError> {
    let snapshot = ctx.metadata();
    let Some(old) = snapshot.topic(&name).cloned() else {
        return Err(unknown_topic(&name));
    };
    let meta = TopicMeta {
        configs: validated_configs(&configs)?,
        ..old
    };
    if validate_only {
        return Ok(meta);
    }
    let log_config = topic_config::log_config(&snapshot.broker_config, &meta.configs);
    for shard in (0..ctx.shard_count).map(ShardId) {
        let request = ShardRequest::SetTopicConfig {
            topic: name.clone(),
            config: log_config.clone(),
        };
        expect_done(
            ctx.router.call(shard, request).await,
            "set the topic config",
        )?;
    }
    let mut topics = snapshot.topics.clone();
    topics.insert(name.clone(), meta.clone());
    commit(ctx, plane, snapshot.with_topics(topics)).await?;
    tracing::info!(topic = %name, configs = ?meta.configs, "topic configs changed");
    Ok(meta)
}

fn unknown_topic(name: &str) -> ControlError {
    ControlError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("topic '{name}' does not exist"),
    )
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

/// The partitions in `range` of `topic`, grouped by owning shard.
fn owners(ctx: &ShardCtx, topic: &str, range: std::ops::Range<i32>) -> BTreeMap<ShardId, Vec<i32>> {
    let mut by_shard: BTreeMap<ShardId, Vec<i32>> = BTreeMap::new();
    for partition in range {
        by_shard
            .entry(ctx.owner_of(topic, PartitionId(partition)))
            .or_default()
            .push(partition);
    }
    by_shard
}

async fn open_partitions(
    ctx: &ShardCtx,
    meta: &TopicMeta,
    range: std::ops::Range<i32>,
) -> Result<(), ControlError> {
    let config = topic_config::log_config(&ctx.metadata().broker_config, &meta.configs);
    for (shard, partitions) in owners(ctx, &meta.name, range) {
        let request = ShardRequest::OpenPartitions {
            topic: meta.name.clone(),
            partitions,
            config: config.clone(),
        };
        expect_done(ctx.router.call(shard, request).await, "open partition logs")?;
    }
    Ok(())
}

fn expect_done(reply: ShardReply, what: &str) -> Result<(), ControlError> {
    match reply {
        ShardReply::Done => Ok(()),
        ShardReply::Failed(reason) => {
            tracing::error!(%reason, "cannot {what}");
            Err(ControlError::new(
                ResponseError::KafkaStorageError,
                format!("cannot {what}: {reason}"),
            ))
        }
        other => Err(ControlError::new(
            ResponseError::UnknownServerError,
            format!("cannot {what}: {other:?}"),
        )),
    }
}

/// Writes the registry as of `snapshot`, then publishes `snapshot` to every shard.
async fn commit(
    ctx: &ShardCtx,
    plane: &ControlPlane,
    snapshot: MetadataSnapshot,
) -> Result<(), ControlError> {
    let bytes = registry::encode(&Registry {
        cluster_id: snapshot.cluster_id.clone(),
        topics: snapshot.topics.clone(),
        broker_configs: snapshot.broker_overrides.clone(),
    });
    let data_dir = plane.data_dir.clone();
    let stored = glommio::executor()
        .spawn_blocking(move || registry::store_blocking(&data_dir, &bytes))
        .await;
    if let Err(error) = stored {
        tracing::error!(%error, "cannot write the topic registry");
        return Err(ControlError::new(
            ResponseError::KafkaStorageError,
            error.to_string(),
        ));
    }
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
    Ok(())
}

/// Run-time broker settings: only the broker-wide defaults of topic configs may change.
async fn set_broker_configs(
    ctx: &ShardCtx,
    plane: &ControlPlane,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ControlError> {
    let invalid = |message: String| ControlError::new(ResponseError::InvalidConfig, message);
    if let Some(name) = configs.keys().find(|n| !crate::settings::is_dynamic(n)) {
        return Err(invalid(format!(
            "`{name}` cannot change at run time: set it with --config or --set and restart"
        )));
    }
    let effective = ctx
        .config
        .with_dynamic(&configs)
        .map_err(|e| invalid(e.to_string()))?;
    if validate_only {
        return Ok(());
    }
    let snapshot = ctx.metadata();
    commit(
        ctx,
        plane,
        snapshot.with_broker_config(configs.clone(), Arc::new(effective)),
    )
    .await?;
    for shard in (0..ctx.shard_count).map(ShardId) {
        expect_done(
            ctx.router
                .call(shard, ShardRequest::RefreshLogConfigs)
                .await,
            "apply the broker config",
        )?;
    }
    tracing::info!(?configs, "broker configs changed");
    Ok(())
}

/// Topics of the registry whose partitions `shard` owns: (topic, partitions, log config).
pub fn owned_at_start(
    snapshot: &MetadataSnapshot,
    shard: ShardId,
    shard_count: usize,
) -> Vec<(String, Vec<i32>, odradek_storage::LogConfig)> {
    let mut owned = Vec::new();
    for meta in snapshot.topics.values() {
        let partitions: Vec<i32> = (0..meta.partitions)
            .filter(|p| crate::ids::shard_for(&meta.name, PartitionId(*p), shard_count) == shard)
            .collect();
        if !partitions.is_empty() {
            owned.push((
                meta.name.clone(),
                partitions,
                topic_config::log_config(&snapshot.broker_config, &meta.configs),
            ));
        }
    }
    owned
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
