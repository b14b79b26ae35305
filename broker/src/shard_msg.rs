//! What one shard asks another: [`ShardRequest`] and [`ShardReply`], and [`serve`], which runs a
//! request on the shard that receives it. Everything in these enums is `Send` (it crosses
//! threads over the mesh); data-path variants (produce, fetch, …) are added here too.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use odradek_storage::{LogConfig, PartitionLog};

use crate::control::{self, ControlReply, ControlRequest};
use crate::data_path::{self, DataReply, DataRequest};
use crate::group::{self, GroupReply, GroupRequest};
use crate::ids::TopicPartition;
use crate::metadata::MetadataSnapshot;
use crate::shard::ShardCtx;

/// A request to one shard.
#[derive(Debug)]
pub enum ShardRequest {
    /// Open (creating when missing) these partitions of `topic`, owned by the receiving shard.
    OpenPartitions {
        topic: String,
        partitions: Vec<i32>,
        config: LogConfig,
    },
    /// Close and remove these partitions of `topic` (DeleteTopics).
    DeletePartitions { topic: String, partitions: Vec<i32> },
    /// New settings for every partition of `topic` the receiving shard owns.
    SetTopicConfig { topic: String, config: LogConfig },
    /// Recompute the log settings of every partition the receiver owns from its snapshot
    /// (after a broker-wide default changed).
    RefreshLogConfigs,
    /// Replace the shard's metadata snapshot.
    PublishMetadata(Arc<MetadataSnapshot>),
    /// A topic change for the control plane (shard 0 only).
    Control(ControlRequest),
    /// Produce, Fetch, ListOffsets, DeleteRecords work for partitions the receiver owns.
    Data(DataRequest),
    /// Consumer-group work for the coordinator of the group (the receiver).
    Group(GroupRequest),
}

/// The answer to a [`ShardRequest`].
#[derive(Debug)]
pub enum ShardReply {
    Done,
    Failed(String),
    Control(ControlReply),
    Data(DataReply),
    Group(GroupReply),
    /// The shard could not be reached (it is stopping).
    Unreachable,
}

/// Runs `request` on this shard.
pub async fn serve(ctx: &ShardCtx, request: ShardRequest) -> ShardReply {
    match request {
        ShardRequest::OpenPartitions {
            topic,
            partitions,
            config,
        } => open_partitions(ctx, &topic, &partitions, &config).await,
        ShardRequest::DeletePartitions { topic, partitions } => {
            delete_partitions(ctx, &topic, &partitions).await
        }
        ShardRequest::SetTopicConfig { topic, config } => {
            for (tp, log) in ctx.partitions.borrow().iter() {
                if tp.topic == topic {
                    log.set_config(config.clone());
                }
            }
            ShardReply::Done
        }
        ShardRequest::RefreshLogConfigs => {
            refresh_log_configs(ctx);
            ShardReply::Done
        }
        ShardRequest::PublishMetadata(snapshot) => {
            let mut current = ctx.metadata.borrow_mut();
            // Changes are serialized on shard 0, so versions only grow; never step back.
            if snapshot.version > current.version {
                *current = snapshot;
            }
            drop(current);
            // Leaders and ISRs may have changed: waits on a high watermark look again.
            for replica in ctx.replicas.borrow().values() {
                replica.wake();
            }
            ctx.isr_wakeup.wake();
            ctx.fetcher_wakeup.wake();
            ShardReply::Done
        }
        ShardRequest::Data(request) => ShardReply::Data(data_path::serve(ctx, request).await),
        ShardRequest::Group(request) => ShardReply::Group(group::serve(ctx, request).await),
        ShardRequest::Control(request) => {
            // Boxed: control changes call other shards (and this one) through the router.
            let change: Pin<Box<dyn Future<Output = ControlReply> + '_>> =
                Box::pin(control::serve(ctx, request));
            ShardReply::Control(change.await)
        }
    }
}

fn refresh_log_configs(ctx: &ShardCtx) {
    let snapshot = ctx.metadata();
    for (tp, log) in ctx.partitions.borrow().iter() {
        if let Some(meta) = snapshot.topic(&tp.topic) {
            log.set_config(crate::topic_config::log_config(
                &snapshot.broker_config,
                &meta.configs,
            ));
        }
    }
}

/// Opens partitions of `topic` on this shard (skipping those already open).
pub async fn open_partitions(
    ctx: &ShardCtx,
    topic: &str,
    partitions: &[i32],
    config: &LogConfig,
) -> ShardReply {
    for &partition in partitions {
        let tp = TopicPartition::new(topic, partition);
        if ctx.partitions.borrow().contains_key(&tp) {
            continue;
        }
        let dir = ctx.config.data_dir.join(tp.dir_name());
        match PartitionLog::open(dir, config.clone(), ctx.storage.clone()).await {
            Ok(log) => {
                ctx.partitions.borrow_mut().insert(tp, log);
            }
            Err(error) => return ShardReply::Failed(format!("open {tp}: {error}")),
        }
    }
    ShardReply::Done
}

async fn delete_partitions(ctx: &ShardCtx, topic: &str, partitions: &[i32]) -> ShardReply {
    let mut failures = Vec::new();
    for &partition in partitions {
        let tp = TopicPartition::new(topic, partition);
        ctx.replicas.borrow_mut().remove(&tp);
        let Some(log) = ctx.partitions.borrow_mut().remove(&tp) else {
            continue;
        };
        if let Err(error) = log.delete().await {
            failures.push(format!("delete {tp}: {error}"));
        }
    }
    if failures.is_empty() {
        ShardReply::Done
    } else {
        ShardReply::Failed(failures.join("; "))
    }
}
