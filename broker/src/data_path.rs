//! The data path between shards: what a connection's shard asks the owners of partitions for
//! Produce, Fetch, ListOffsets and DeleteRecords, and [`scatter`], which groups a request's
//! partitions by owning shard, sends one message to each owner and puts the answers back in the
//! request's order.
//!
//! Order matters for Produce: a connection's requests reach an owner in the order they were sent
//! (one mesh channel per shard pair is FIFO, tasks are spawned in arrival order) and
//! [`partition_ops::produce`] appends, or joins the shard's line for write-buffer room, before
//! its first await, so batches from one connection land in the log in the order the client sent
//! them.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{join_all, select_all};
use kafka_protocol::error::ResponseError;
use odradek_storage::PartitionLog;

use crate::ids::{ShardId, TopicPartition};
use crate::partition_ops::{self, FetchResult, ListOffsetResult, ProduceResult};
use crate::shard::ShardCtx;
use crate::shard_msg::{ShardReply, ShardRequest};

/// A data-path request to the owner of every partition it names.
#[derive(Debug)]
pub enum DataRequest {
    Produce {
        acks: i16,
        /// How long an append may wait for room in the write buffer.
        timeout: Duration,
        items: Vec<(TopicPartition, Bytes)>,
    },
    /// `(partition, fetch offset, max bytes)`.
    Fetch {
        items: Vec<(TopicPartition, (i64, usize))>,
    },
    /// Resolves when any partition has data at or past its offset, or after `timeout`.
    WaitForData {
        items: Vec<(TopicPartition, i64)>,
        timeout: Duration,
    },
    /// `(partition, timestamp or sentinel)`.
    ListOffsets { items: Vec<(TopicPartition, i64)> },
    /// `(partition, delete before this offset; -1 = high watermark)`.
    DeleteRecords { items: Vec<(TopicPartition, i64)> },
}

/// The owner's answers, one per item, in the order of the request's items.
#[derive(Debug)]
pub enum DataReply {
    Produced(Vec<ProduceResult>),
    Fetched(Vec<FetchResult>),
    DataReady,
    Listed(Vec<ListOffsetResult>),
    /// `(error code, low watermark)`.
    Deleted(Vec<(i16, i64)>),
}

const UNKNOWN: ResponseError = ResponseError::UnknownTopicOrPartition;

/// Runs a data-path request on the shard that owns its partitions.
pub async fn serve(ctx: &ShardCtx, request: DataRequest) -> DataReply {
    match request {
        DataRequest::Produce {
            acks,
            timeout,
            items,
        } => {
            // join_all polls every future once, in order, before any completes: the appends
            // happen in item order.
            let work = items.into_iter().map(|(tp, records)| {
                let log = ctx.partition(&tp);
                async move {
                    match log {
                        Some(log) => partition_ops::produce(&log, records, acks, timeout).await,
                        None => ProduceResult::failed(UNKNOWN, format!("{tp} is not hosted here")),
                    }
                }
            });
            DataReply::Produced(join_all(work).await)
        }
        DataRequest::Fetch { items } => {
            let work = items.into_iter().map(|(tp, (offset, max_bytes))| {
                let log = ctx.partition(&tp);
                async move {
                    match log {
                        Some(log) => partition_ops::fetch(&log, offset, max_bytes).await,
                        None => FetchResult {
                            error_code: UNKNOWN.code(),
                            ..FetchResult::default()
                        },
                    }
                }
            });
            DataReply::Fetched(join_all(work).await)
        }
        DataRequest::WaitForData { items, timeout } => {
            let waits = items
                .into_iter()
                .filter_map(|(tp, offset)| ctx.partition(&tp).map(|log| (log, offset)))
                .collect::<Vec<(Rc<PartitionLog>, i64)>>();
            partition_ops::wait_for_any(waits, timeout).await;
            DataReply::DataReady
        }
        DataRequest::ListOffsets { items } => {
            let work = items.into_iter().map(|(tp, timestamp)| {
                let log = ctx.partition(&tp);
                async move {
                    match log {
                        Some(log) => partition_ops::list_offset(&log, timestamp).await,
                        None => ListOffsetResult {
                            error_code: UNKNOWN.code(),
                            timestamp: -1,
                            offset: -1,
                        },
                    }
                }
            });
            DataReply::Listed(join_all(work).await)
        }
        DataRequest::DeleteRecords { items } => {
            let work = items.into_iter().map(|(tp, offset)| {
                let log = ctx.partition(&tp);
                async move {
                    match log {
                        Some(log) => partition_ops::delete_records(&log, offset).await,
                        None => (UNKNOWN.code(), -1),
                    }
                }
            });
            DataReply::Deleted(join_all(work).await)
        }
    }
}

/// Sends each owning shard its share of `items` (built into a request by `build`), and returns
/// one answer per item in `items`' order. `unpack` takes the answers out of the owner's reply;
/// where an owner cannot answer (it is stopping), every one of its items gets `unreachable()`.
pub async fn scatter<T, R>(
    ctx: &ShardCtx,
    items: Vec<(TopicPartition, T)>,
    build: impl Fn(Vec<(TopicPartition, T)>) -> DataRequest,
    unpack: impl Fn(DataReply) -> Option<Vec<R>>,
    unreachable: impl Fn() -> R,
) -> Vec<R> {
    let count = items.len();
    // Per owner: the indexes of its items in `items`, and the items.
    type Share<T> = (Vec<usize>, Vec<(TopicPartition, T)>);
    let mut groups: BTreeMap<ShardId, Share<T>> = BTreeMap::new();
    for (index, (tp, item)) in items.into_iter().enumerate() {
        let group = groups
            .entry(ctx.owner_of(&tp.topic, tp.partition))
            .or_default();
        group.0.push(index);
        group.1.push((tp, item));
    }
    let calls = groups.into_iter().map(|(shard, (indexes, items))| {
        let request = ShardRequest::Data(build(items));
        async move { (indexes, ctx.router.call(shard, request).await) }
    });
    let mut slots: Vec<Option<R>> = (0..count).map(|_| None).collect();
    for (indexes, reply) in join_all(calls).await {
        let answers = match reply {
            ShardReply::Data(reply) => unpack(reply).filter(|a| a.len() == indexes.len()),
            _ => None,
        };
        match answers {
            Some(answers) => {
                for (index, answer) in indexes.into_iter().zip(answers) {
                    slots[index] = Some(answer);
                }
            }
            None => tracing::warn!(count = indexes.len(), "an owning shard did not answer"),
        }
    }
    slots
        .into_iter()
        .map(|slot| slot.unwrap_or_else(&unreachable))
        .collect()
}

/// Asks the owner of every partition in `items` to wait for an append past its offset, and
/// returns as soon as any owner reports one, or after `timeout`.
pub async fn wait_for_any_owner(
    ctx: &ShardCtx,
    items: Vec<(TopicPartition, i64)>,
    timeout: Duration,
) {
    let mut groups: BTreeMap<ShardId, Vec<(TopicPartition, i64)>> = BTreeMap::new();
    for (tp, offset) in items {
        groups
            .entry(ctx.owner_of(&tp.topic, tp.partition))
            .or_default()
            .push((tp, offset));
    }
    if groups.is_empty() {
        glommio::timer::sleep(timeout).await;
        return;
    }
    // Each owner stops waiting at `timeout` by itself, so the first answer comes by then.
    let waits = groups.into_iter().map(|(shard, items)| {
        let request = ShardRequest::Data(DataRequest::WaitForData { items, timeout });
        Box::pin(ctx.router.call(shard, request))
    });
    let _ = select_all(waits).await;
}

/// Resolves each `(topic, partition, value)` against the metadata, sends the ones that exist to
/// their owners (see [`scatter`]) and returns one answer per item, in order; an unknown topic or
/// partition gets `failed(UNKNOWN_TOPIC_OR_PARTITION)` without leaving this shard.
pub async fn for_known_partitions<T, R>(
    ctx: &ShardCtx,
    items: Vec<(String, i32, T)>,
    build: impl Fn(Vec<(TopicPartition, T)>) -> DataRequest,
    unpack: impl Fn(DataReply) -> Option<Vec<R>>,
    failed: impl Fn(ResponseError) -> R,
) -> Vec<R> {
    let metadata = ctx.metadata();
    let exists = |topic: &str, partition: i32| {
        metadata
            .topic(topic)
            .is_some_and(|t| (0..t.partitions).contains(&partition))
    };
    let known: Vec<bool> = items.iter().map(|(t, p, _)| exists(t, *p)).collect();
    let routed = items
        .into_iter()
        .filter(|(t, p, _)| exists(t, *p))
        .map(|(topic, partition, value)| (TopicPartition::new(topic, partition), value))
        .collect();
    let unreachable = || failed(ResponseError::NotLeaderOrFollower);
    let mut answers = scatter(ctx, routed, build, unpack, unreachable)
        .await
        .into_iter();
    known
        .into_iter()
        .map(|known| match known {
            true => answers
                .next()
                .unwrap_or_else(|| failed(ResponseError::UnknownServerError)),
            false => failed(UNKNOWN),
        })
        .collect()
}
