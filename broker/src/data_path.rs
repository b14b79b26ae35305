//! The data path between shards: the partition work a connection's shard asks of the owners of
//! partitions for Produce, Fetch, ListOffsets, DeleteRecords and OffsetForLeaderEpoch, one
//! [`PartitionOp`] per kind, and [`scatter`], which groups a request's partitions by owning
//! shard, sends one message to each owner and puts the answers back in the request's order.
//!
//! An operation is a type: its per-request parameters are its fields (acks, later the replica
//! id of a follower fetch or an isolation level), what it asks of one partition is its `Item`,
//! what the owner answers its `Answer`. The mesh carries them as [`DataRequest`] and
//! [`DataReply`], one variant per operation.
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
use odradek_storage::{LeaderEpoch, Offset, PartitionLog};

use crate::ids::{PartitionId, ShardId, TopicPartition};
use crate::partition_ops::ListOffsetResult;
use crate::partition_ops::{self, DeleteRecordsResult, EpochEndResult, FetchResult};
use crate::partition_ops::{Acks, ProduceResult};
use crate::replication::Replica;
use crate::shard::ShardCtx;
use crate::shard_msg::{ShardReply, ShardRequest};

/// One kind of partition work, run on the shard owning each partition.
#[allow(async_fn_in_trait)] // Run on the owner's executor: the future never crosses threads.
pub trait PartitionOp: Clone + Send + Sized + 'static {
    /// What the request asks of one partition.
    type Item: Send + 'static;
    /// What the owner answers for one partition.
    type Answer: Send + 'static;

    /// The work for one partition, on its owner.
    async fn run(&self, on: Owner<'_>, item: Self::Item) -> Self::Answer;

    /// The leader epoch `item` names, which the owner checks before it runs the work (Kafka's
    /// FENCED_LEADER_EPOCH and UNKNOWN_LEADER_EPOCH); `None`: not checked.
    fn leader_epoch_asked(_item: &Self::Item) -> Option<LeaderEpoch> {
        None
    }

    /// The answer for a partition the work never reached (`why` says where it stopped).
    fn failed(error: ResponseError, why: String) -> Self::Answer;

    /// The mesh message carrying this work for `items` to their owner.
    fn into_request(self, items: Vec<(TopicPartition, Self::Item)>) -> DataRequest;

    /// The owner's answers out of its reply; `None` for a reply to another operation.
    fn answers(reply: DataReply) -> Option<Vec<Self::Answer>>;
}

/// One partition on its owning shard, as an operation sees it.
#[derive(Clone, Copy)]
pub struct Owner<'a> {
    pub ctx: &'a ShardCtx,
    pub tp: &'a TopicPartition,
    pub log: &'a Rc<PartitionLog>,
    /// The epoch of the partition's leader.
    pub leader_epoch: LeaderEpoch,
    pub replica: &'a Replica,
}

impl Owner<'_> {
    /// The partition's high watermark as of the current metadata: the end of what every
    /// in-sync replica holds (see `replication::state`).
    pub fn high_watermark(&self) -> Offset {
        let metadata = self.ctx.metadata.borrow();
        match metadata.partition(&self.tp.topic, self.tp.partition) {
            Some(state) => self
                .replica
                .high_watermark(self.log, state, metadata.broker.node_id.0),
            None => self.log.written_end_offset(),
        }
    }

    /// The partition's in-sync replicas, and how many acks=all needs (`min.insync.replicas`:
    /// the topic's, else the broker's), as of the current metadata.
    pub fn isr_and_min(&self) -> (usize, usize) {
        let metadata = self.ctx.metadata.borrow();
        let broker_min = metadata.broker_config.min_insync_replicas as usize;
        let Some(topic) = metadata.topic(&self.tp.topic) else {
            return (1, 1);
        };
        let min = topic
            .configs
            .get("min.insync.replicas")
            .and_then(|v| v.parse().ok())
            .unwrap_or(broker_min);
        let isr = metadata
            .partition(&self.tp.topic, self.tp.partition)
            .map_or(1, |p| p.isr.len());
        (isr, min)
    }

    /// Whether this broker still leads the partition at the epoch the work started under.
    pub fn still_leads(&self) -> bool {
        let metadata = self.ctx.metadata.borrow();
        metadata
            .partition(&self.tp.topic, self.tp.partition)
            .is_none_or(|p| {
                p.leader == metadata.broker.node_id.0 && p.leader_epoch == self.leader_epoch.0
            })
    }
}

/// An operation and the partitions it is for, as the owner receives them.
#[derive(Debug)]
pub struct Work<O: PartitionOp> {
    pub op: O,
    pub items: Vec<(TopicPartition, O::Item)>,
}

/// A data-path request to the owner of every partition it names.
#[derive(Debug)]
pub enum DataRequest {
    Produce(Work<Produce>),
    Fetch(Work<Fetch>),
    ListOffsets(Work<ListOffsets>),
    DeleteRecords(Work<DeleteRecords>),
    EpochEnds(Work<EpochEnds>),
    /// Resolves when any partition has data at or past its offset (`committed`: when its
    /// high watermark may have passed it), or after `timeout`.
    WaitForData {
        items: Vec<(TopicPartition, Offset)>,
        timeout: Duration,
        committed: bool,
    },
}

/// The owner's answers, one per item, in the order of the request's items.
#[derive(Debug)]
pub enum DataReply {
    Produced(Vec<ProduceResult>),
    Fetched(Vec<FetchResult>),
    Listed(Vec<ListOffsetResult>),
    Deleted(Vec<DeleteRecordsResult>),
    EpochEnded(Vec<EpochEndResult>),
    DataReady,
}

/// Append one batch per partition and wait for the milestone `acks` asks for.
#[derive(Clone, Copy, Debug)]
pub struct Produce {
    pub acks: Acks,
    /// How long an append may wait for room in the write buffer.
    pub timeout: Duration,
}

/// Read whole batches from an offset.
#[derive(Clone, Copy, Debug)]
pub struct Fetch {
    /// The follower fetching (its node id), or `None` for a consumer.
    pub replica: Option<i32>,
}

/// One partition of a fetch.
#[derive(Clone, Copy, Debug)]
pub struct FetchItem {
    pub offset: Offset,
    pub max_bytes: usize,
    /// The leader epoch the fetcher knows (Fetch v9+), checked against the partition's.
    pub current_leader_epoch: Option<LeaderEpoch>,
}

/// Find an offset by timestamp or sentinel.
#[derive(Clone, Copy, Debug)]
pub struct ListOffsets;

/// One partition of a ListOffsets request.
#[derive(Clone, Copy, Debug)]
pub struct ListOffsetsItem {
    /// A timestamp, or one of the sentinels in `partition_ops` (latest, earliest, …).
    pub timestamp: i64,
    /// The leader epoch the client knows (v4+), checked against the partition's.
    pub current_leader_epoch: Option<LeaderEpoch>,
}

/// Find where a leader epoch's records end (OffsetForLeaderEpoch).
#[derive(Clone, Copy, Debug)]
pub struct EpochEnds;

/// One partition of an OffsetForLeaderEpoch request.
#[derive(Clone, Copy, Debug)]
pub struct EpochEndItem {
    /// The epoch whose end is asked for; `None`: Kafka's "no epoch" (-1).
    pub epoch: Option<LeaderEpoch>,
    /// The leader epoch the asker knows (v2+), checked against the partition's.
    pub current_leader_epoch: Option<LeaderEpoch>,
}

/// Move log start offsets forward.
#[derive(Clone, Copy, Debug)]
pub struct DeleteRecords;

/// Where a DeleteRecords request moves a partition's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteBefore {
    /// To the high watermark (the request's offset -1): everything.
    HighWatermark,
    Offset(Offset),
}

/// The two mesh methods of a [`PartitionOp`]: its work travels as `DataRequest::$request` and
/// its answers come back as `DataReply::$reply`.
macro_rules! carried_as {
    ($request:ident, $reply:ident) => {
        fn into_request(self, items: Vec<(TopicPartition, Self::Item)>) -> DataRequest {
            DataRequest::$request(Work { op: self, items })
        }

        fn answers(reply: DataReply) -> Option<Vec<Self::Answer>> {
            match reply {
                DataReply::$reply(answers) => Some(answers),
                _ => None,
            }
        }
    };
}

impl PartitionOp for Produce {
    type Item = Bytes;
    type Answer = ProduceResult;
    carried_as!(Produce, Produced);

    async fn run(&self, on: Owner<'_>, records: Bytes) -> ProduceResult {
        partition_ops::produce(on, records, self.acks, self.timeout).await
    }

    fn failed(error: ResponseError, why: String) -> ProduceResult {
        ProduceResult::failed(error, why)
    }
}

impl PartitionOp for Fetch {
    type Item = FetchItem;
    type Answer = FetchResult;
    carried_as!(Fetch, Fetched);

    async fn run(&self, on: Owner<'_>, item: FetchItem) -> FetchResult {
        match self.replica {
            None => {
                let hw = on.high_watermark();
                partition_ops::fetch(on.log, item.offset, item.max_bytes, hw, hw).await
            }
            Some(replica) => crate::replication::isr::follower_fetch(on, replica, item).await,
        }
    }

    fn leader_epoch_asked(item: &FetchItem) -> Option<LeaderEpoch> {
        item.current_leader_epoch
    }

    fn failed(error: ResponseError, _why: String) -> FetchResult {
        FetchResult::failed(error)
    }
}

impl PartitionOp for ListOffsets {
    type Item = ListOffsetsItem;
    type Answer = ListOffsetResult;
    carried_as!(ListOffsets, Listed);

    async fn run(&self, on: Owner<'_>, item: ListOffsetsItem) -> ListOffsetResult {
        let hw = on.high_watermark();
        partition_ops::list_offset(on.log, item.timestamp, on.leader_epoch, hw).await
    }

    fn leader_epoch_asked(item: &ListOffsetsItem) -> Option<LeaderEpoch> {
        item.current_leader_epoch
    }

    fn failed(error: ResponseError, _why: String) -> ListOffsetResult {
        ListOffsetResult::failed(error)
    }
}

impl PartitionOp for DeleteRecords {
    type Item = DeleteBefore;
    type Answer = DeleteRecordsResult;
    carried_as!(DeleteRecords, Deleted);

    async fn run(&self, on: Owner<'_>, before: DeleteBefore) -> DeleteRecordsResult {
        partition_ops::delete_records(on.log, before, on.high_watermark()).await
    }

    fn failed(error: ResponseError, _why: String) -> DeleteRecordsResult {
        DeleteRecordsResult::failed(error)
    }
}

impl PartitionOp for EpochEnds {
    type Item = EpochEndItem;
    type Answer = EpochEndResult;
    carried_as!(EpochEnds, EpochEnded);

    async fn run(&self, on: Owner<'_>, item: EpochEndItem) -> EpochEndResult {
        partition_ops::epoch_end(on.log, item.epoch)
    }

    fn leader_epoch_asked(item: &EpochEndItem) -> Option<LeaderEpoch> {
        item.current_leader_epoch
    }

    fn failed(error: ResponseError, _why: String) -> EpochEndResult {
        EpochEndResult::failed(error)
    }
}

impl<O: PartitionOp> Work<O> {
    /// Runs the work for every item on this shard (their owner): one answer per item, in order.
    async fn run(self, ctx: &ShardCtx) -> Vec<O::Answer> {
        let op = &self.op;
        let now = odradek_storage::now_ms();
        // join_all polls every future once, in order, before any completes: the appends of a
        // produce happen in item order.
        let work = self.items.into_iter().map(|(tp, item)| {
            let log = ctx.partition(&tp);
            let replica = ctx.replica(&tp);
            // Borrowed, not cloned: no atomic on the data path (the borrow ends before any await).
            let leader_epoch = {
                let metadata = ctx.metadata.borrow();
                let state = metadata.partition(&tp.topic, tp.partition);
                if let Some(state) = state {
                    replica.follow_metadata(state, now);
                }
                state.map_or(LeaderEpoch::SINGLE_NODE, |p| LeaderEpoch(p.leader_epoch))
            };
            async move {
                let asked = O::leader_epoch_asked(&item);
                match log {
                    Some(log) => match partition_ops::check_leader_epoch(leader_epoch, asked) {
                        Ok(()) => {
                            let on = Owner {
                                ctx,
                                tp: &tp,
                                log: &log,
                                leader_epoch,
                                replica: &replica,
                            };
                            op.run(on, item).await
                        }
                        Err(error) => O::failed(error, format!("{tp} is at epoch {leader_epoch}")),
                    },
                    None => O::failed(UNKNOWN, format!("{tp} is not hosted here")),
                }
            }
        });
        join_all(work).await
    }
}

const UNKNOWN: ResponseError = ResponseError::UnknownTopicOrPartition;

/// Runs a data-path request on the shard that owns its partitions.
pub async fn serve(ctx: &ShardCtx, request: DataRequest) -> DataReply {
    match request {
        DataRequest::Produce(work) => DataReply::Produced(work.run(ctx).await),
        DataRequest::Fetch(work) => DataReply::Fetched(work.run(ctx).await),
        DataRequest::ListOffsets(work) => DataReply::Listed(work.run(ctx).await),
        DataRequest::DeleteRecords(work) => DataReply::Deleted(work.run(ctx).await),
        DataRequest::EpochEnds(work) => DataReply::EpochEnded(work.run(ctx).await),
        DataRequest::WaitForData {
            items,
            timeout,
            committed,
        } => {
            let waits = items
                .into_iter()
                .filter_map(|(tp, offset)| Some((ctx.partition(&tp)?, ctx.replica(&tp), offset)))
                .collect::<Vec<(Rc<PartitionLog>, Rc<Replica>, Offset)>>();
            partition_ops::wait_for_any(waits, committed, timeout).await;
            DataReply::DataReady
        }
    }
}

/// Sends each owning shard its share of `items` as `op`, and returns one answer per item in
/// `items`' order. Items for partitions another broker leads, and every item of an owner that
/// cannot answer (it is stopping), get NOT_LEADER_OR_FOLLOWER, which clients retry after
/// refreshing metadata.
pub async fn scatter<O: PartitionOp>(
    ctx: &ShardCtx,
    op: O,
    items: Vec<(TopicPartition, O::Item)>,
) -> Vec<O::Answer> {
    let count = items.len();
    let metadata = ctx.metadata();
    let mut slots: Vec<Option<O::Answer>> = (0..count).map(|_| None).collect();
    // Per owner: the indexes of its items in `items`, and the items.
    type Share<T> = (Vec<usize>, Vec<(TopicPartition, T)>);
    let mut groups: BTreeMap<ShardId, Share<O::Item>> = BTreeMap::new();
    for (index, (tp, item)) in items.into_iter().enumerate() {
        // Another broker leads it, or none does: the client refreshes its metadata and goes
        // to the leader. (A partition the metadata does not know is the owner's to refuse.)
        let led_elsewhere = metadata
            .partition(&tp.topic, tp.partition)
            .is_some_and(|p| p.leader != metadata.broker.node_id.0);
        if led_elsewhere {
            let why = "this broker does not lead the partition".to_string();
            slots[index] = Some(O::failed(ResponseError::NotLeaderOrFollower, why));
            continue;
        }
        let group = groups
            .entry(ctx.owner_of(&tp.topic, tp.partition))
            .or_default();
        group.0.push(index);
        group.1.push((tp, item));
    }
    let calls = groups.into_iter().map(|(shard, (indexes, items))| {
        let request = ShardRequest::Data(op.clone().into_request(items));
        async move { (shard, indexes, ctx.router.call(shard, request).await) }
    });
    for (shard, indexes, reply) in join_all(calls).await {
        let answers = match reply {
            ShardReply::Data(reply) => O::answers(reply),
            _ => None,
        };
        let Some(answers) = answers else {
            tracing::warn!(%shard, count = indexes.len(), "an owning shard did not answer");
            for index in indexes {
                let why = format!("{shard} did not answer");
                slots[index] = Some(O::failed(ResponseError::NotLeaderOrFollower, why));
            }
            continue;
        };
        assert_eq!(
            answers.len(),
            indexes.len(),
            "{shard} answers every item it is sent"
        );
        for (index, answer) in indexes.into_iter().zip(answers) {
            slots[index] = Some(answer);
        }
    }
    slots
        .into_iter()
        .map(|slot| slot.expect("every item went to exactly one owner"))
        .collect()
}

/// Asks the owner of every partition in `items` to wait for an append past its offset, and
/// returns as soon as any owner reports one, or after `timeout`.
pub async fn wait_for_any_owner(
    ctx: &ShardCtx,
    items: Vec<(TopicPartition, Offset)>,
    timeout: Duration,
    committed: bool,
) {
    let mut groups: BTreeMap<ShardId, Vec<(TopicPartition, Offset)>> = BTreeMap::new();
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
        let request = ShardRequest::Data(DataRequest::WaitForData {
            items,
            timeout,
            committed,
        });
        Box::pin(ctx.router.call(shard, request))
    });
    let _ = select_all(waits).await;
}

/// Resolves each `(topic, partition, item)` against the metadata, sends the ones that exist to
/// their owners as `op` (see [`scatter`]) and returns one answer per item, in order; an unknown
/// topic or partition gets UNKNOWN_TOPIC_OR_PARTITION without leaving this shard.
pub async fn for_known_partitions<O: PartitionOp>(
    ctx: &ShardCtx,
    op: O,
    items: Vec<(String, i32, O::Item)>,
) -> Vec<O::Answer> {
    let metadata = ctx.metadata();
    let mut refusals = Vec::with_capacity(items.len());
    let mut routed = Vec::with_capacity(items.len());
    for (topic, partition, item) in items {
        let refusal = match metadata.partition(&topic, PartitionId(partition)) {
            None => Some((UNKNOWN, "no such topic or partition")),
            Some(_) => None,
        };
        if refusal.is_none() {
            routed.push((TopicPartition::new(topic, partition), item));
        }
        refusals.push(refusal);
    }
    let mut answers = scatter(ctx, op, routed).await.into_iter();
    let merged: Vec<O::Answer> = refusals
        .into_iter()
        .map(|refusal| match refusal {
            None => answers.next().expect("one answer per routed item"),
            Some((error, why)) => O::failed(error, why.into()),
        })
        .collect();
    assert!(answers.next().is_none(), "no answer left over");
    merged
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    use crate::config::BrokerConfig;
    use crate::handlers::admin_tests::{call, one_shard_ctx};

    const UNKNOWN_LEADER_EPOCH: i16 = 75;
    const FENCED_LEADER_EPOCH: i16 = 74;

    fn list_offsets(epoch: i32) -> ListOffsetsRequest {
        let partition = ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_current_leader_epoch(epoch)
            .with_timestamp(-1);
        ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("epochs")))
            .with_partitions(vec![partition])])
    }

    fn fetch(epoch: i32) -> FetchRequest {
        let partition = FetchPartition::default()
            .with_partition(0)
            .with_current_leader_epoch(epoch)
            .with_partition_max_bytes(1 << 20);
        FetchRequest::default()
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("epochs")))
                .with_partitions(vec![partition])])
    }

    /// A single node leads every partition at epoch 0: requests naming another epoch are told
    /// so, as Kafka's leaders answer clients that lag behind or run ahead of them.
    #[test]
    fn given_a_leader_epoch_when_it_is_not_the_partitions_should_refuse_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        };
        odradek_storage::testing::run(move || async move {
            let ctx = one_shard_ctx(config).await;
            let topic = CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("epochs")))
                .with_num_partitions(1)
                .with_replication_factor(-1);
            let request = CreateTopicsRequest::default().with_topics(vec![topic]);
            let created: CreateTopicsResponse = call(&ctx, ApiKey::CreateTopics, 7, &request).await;
            assert_eq!(created.topics[0].error_code, 0);
            for (epoch, code, answered_epoch) in
                [(-1, 0, 0), (0, 0, 0), (1, UNKNOWN_LEADER_EPOCH, -1)]
            {
                let listed: ListOffsetsResponse =
                    call(&ctx, ApiKey::ListOffsets, 9, &list_offsets(epoch)).await;
                let p = &listed.topics[0].partitions[0];
                assert_eq!(p.error_code, code, "ListOffsets, epoch {epoch}");
                assert_eq!(p.leader_epoch, answered_epoch, "ListOffsets, epoch {epoch}");
                let fetched: FetchResponse = call(&ctx, ApiKey::Fetch, 12, &fetch(epoch)).await;
                let p = &fetched.responses[0].partitions[0];
                assert_eq!(p.error_code, code, "Fetch, epoch {epoch}");
            }
            assert_eq!(
                super::partition_ops::check_leader_epoch(
                    super::LeaderEpoch(3),
                    Some(super::LeaderEpoch(2))
                ),
                Err(super::ResponseError::FencedLeaderEpoch)
            );
            assert_eq!(
                super::ResponseError::FencedLeaderEpoch.code(),
                FENCED_LEADER_EPOCH
            );
        });
    }
}
