//! A follower's side: on each shard, one fetch loop per leader broker, for the partitions the
//! shard owns that this broker follows under that leader.
//!
//! A loop holds one connection to the leader's client listener and, round after round:
//! - for each partition whose leader epoch is new to it, asks the leader where its own newest
//!   epoch ends (OffsetForLeaderEpoch) and truncates its log to the point where the two agree,
//!   before fetching it (a follower that led once may hold records nobody else has);
//! - sends one Fetch with this broker's id as the replica id, every partition at its log end;
//! - appends each partition's batches with `append_replica` (the leader's offsets and epochs),
//!   waits until they are synced (written, for a topic with `flush.ms`), and takes the leader's
//!   high watermark (up to its own log end).
//!
//! Its next fetch offset is what tells the leader the records are on this replica, so a record
//! counts as replicated here only once it is synced. A loop ends when no partition of this
//! shard follows its leader any more; the supervisor ([`run`]) starts loops for new leaders.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{select, Either};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use odradek_net::Shutdown;
use odradek_storage::{now_ms, BatchHeader, FlushPolicy, LeaderEpoch, Offset, PartitionLog};

use super::connection::{connect, Connection};
use crate::ids::TopicPartition;
use crate::shard::ShardCtx;

/// The Fetch version followers send (names topics by name; `replica_id` in the body).
const FETCH_VERSION: i16 = 12;
/// The OffsetForLeaderEpoch and ListOffsets versions followers send.
const EPOCH_VERSION: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 5;
/// How long the leader may hold a fetch with nothing new (Kafka's replica.fetch.wait.max.ms).
const FETCH_WAIT_MAX_MS: i32 = 500;
/// Bytes per partition and per response (Kafka's replica.fetch.max.bytes and
/// replica.fetch.response.max.bytes).
const PARTITION_BYTES_MAX: i32 = 1 << 20;
const RESPONSE_BYTES_MAX: i32 = 10 << 20;
/// The pause after a failure (connection, leader not ready) before the next round.
const BACKOFF: Duration = Duration::from_millis(200);
/// How often the supervisor looks for leaders to follow, besides metadata changes.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

/// Starts and restarts this shard's fetch loops until `shutdown`.
pub async fn run(ctx: Rc<ShardCtx>, shutdown: Shutdown) {
    // Per leader: whether its loop has ended, and its task.
    let mut loops: HashMap<i32, (Rc<Cell<bool>>, glommio::task::JoinHandle<()>)> = HashMap::new();
    loop {
        loops.retain(|_, (ended, _)| !ended.get());
        for leader in leaders_followed(&ctx) {
            if loops.contains_key(&leader) {
                continue;
            }
            let ended = Rc::new(Cell::new(false));
            let task = fetch_from(Rc::clone(&ctx), leader, shutdown.clone());
            let task = glommio::spawn_local({
                let ended = Rc::clone(&ended);
                async move {
                    task.await;
                    ended.set(true);
                }
            });
            loops.insert(leader, (ended, task.detach()));
        }
        let changed = std::pin::pin!(ctx.fetcher_wakeup.wait());
        let tick = std::pin::pin!(glommio::timer::sleep(SUPERVISE_EVERY));
        let stop = std::pin::pin!(shutdown.wait());
        if let Either::Right(_) = select(select(changed, tick), stop).await {
            break;
        }
    }
    for (_, (_, handle)) in loops.drain() {
        handle.await;
    }
}

/// One partition this shard follows: its log, and the leader and leader epoch it follows.
struct Followed {
    tp: TopicPartition,
    log: Rc<PartitionLog>,
    leader: i32,
    epoch: i32,
}

/// Whether the metadata still has this broker follow `p`'s leader at `p`'s epoch. Checked
/// after every wait and right before every change to a log: an answer that arrives once this
/// broker leads the partition itself (a connection that outlived a network partition can
/// deliver the old leader's records late) must not touch the log it now leads.
fn still_follows(ctx: &ShardCtx, p: &Followed) -> bool {
    let metadata = ctx.metadata.borrow();
    metadata
        .partition(&p.tp.topic, p.tp.partition)
        .is_some_and(|s| s.leader == p.leader && s.leader_epoch == p.epoch)
}

/// The leaders of the partitions this shard owns and this broker follows.
fn leaders_followed(ctx: &ShardCtx) -> Vec<i32> {
    let metadata = ctx.metadata();
    let me = metadata.broker.node_id.0;
    let mut leaders: Vec<i32> = ctx
        .partitions
        .borrow()
        .keys()
        .filter_map(|tp| metadata.partition(&tp.topic, tp.partition))
        .filter(|p| p.leader >= 0 && p.leader != me && p.replicas.contains(&me))
        .map(|p| p.leader)
        .collect();
    leaders.sort_unstable();
    leaders.dedup();
    leaders
}

/// The partitions this shard follows under `leader`, in a stable order.
fn followed(ctx: &ShardCtx, leader: i32) -> Vec<Followed> {
    let metadata = ctx.metadata();
    let me = metadata.broker.node_id.0;
    let mut followed: Vec<Followed> = ctx
        .partitions
        .borrow()
        .iter()
        .filter_map(|(tp, log)| {
            let state = metadata.partition(&tp.topic, tp.partition)?;
            (state.leader == leader && state.replicas.contains(&me)).then(|| Followed {
                tp: tp.clone(),
                log: Rc::clone(log),
                leader,
                epoch: state.leader_epoch,
            })
        })
        .collect();
    followed.sort_by(|a, b| a.tp.cmp(&b.tp));
    followed
}

/// Follows `leader` until no partition of this shard does or `shutdown`.
async fn fetch_from(ctx: Rc<ShardCtx>, leader: i32, shutdown: Shutdown) {
    let me = ctx.metadata().broker.node_id.0;
    tracing::info!(shard = %ctx.shard, leader, "following a leader");
    let mut conn: Option<Connection> = None;
    // Per partition: the leader epoch whose truncation is done.
    let mut agreed: HashMap<TopicPartition, i32> = HashMap::new();
    while !shutdown.is_triggered() {
        let partitions = followed(&ctx, leader);
        if partitions.is_empty() {
            break;
        }
        agreed.retain(|tp, _| partitions.iter().any(|p| &p.tp == tp));
        if conn.is_none() {
            conn = match connect(&ctx, leader, &shutdown).await {
                Ok(c) => Some(c),
                Err(error) => {
                    tracing::debug!(leader, %error, "cannot reach the leader");
                    pause(&shutdown).await;
                    continue;
                }
            };
        }
        let c = conn.as_mut().expect("connected above");
        let result = round(&ctx, c, me, &partitions, &mut agreed).await;
        if let Err(error) = result {
            tracing::info!(leader, %error, "replica fetch failed; reconnecting");
            conn = None;
            pause(&shutdown).await;
        }
    }
    tracing::info!(shard = %ctx.shard, leader, "no longer following the leader");
}

async fn pause(shutdown: &Shutdown) {
    let sleep = std::pin::pin!(glommio::timer::sleep(BACKOFF));
    let stop = std::pin::pin!(shutdown.wait());
    select(sleep, stop).await;
}

/// One round: truncations where the epoch is new, then one fetch.
async fn round(
    ctx: &ShardCtx,
    conn: &mut Connection,
    me: i32,
    partitions: &[Followed],
    agreed: &mut HashMap<TopicPartition, i32>,
) -> Result<(), String> {
    let unsure: Vec<&Followed> = partitions
        .iter()
        .filter(|p| agreed.get(&p.tp) != Some(&p.epoch))
        .collect();
    if !unsure.is_empty() {
        truncate_where_diverged(ctx, conn, me, &unsure, agreed).await?;
    }
    let ready: Vec<&Followed> = partitions
        .iter()
        .filter(|p| agreed.get(&p.tp) == Some(&p.epoch))
        .collect();
    if ready.is_empty() {
        glommio::timer::sleep(BACKOFF).await;
        return Ok(());
    }
    fetch_once(ctx, conn, me, &ready, agreed).await
}

/// Asks the leader where each partition's newest local epoch ends and truncates the log to the
/// point both agree on (Kafka's KIP-101/KIP-279 rule).
async fn truncate_where_diverged(
    ctx: &ShardCtx,
    conn: &mut Connection,
    me: i32,
    unsure: &[&Followed],
    agreed: &mut HashMap<TopicPartition, i32>,
) -> Result<(), String> {
    let mut asked = Vec::new();
    for p in unsure {
        match p.log.latest_epoch() {
            // Nothing written: nothing can have diverged.
            None => {
                agreed.insert(p.tp.clone(), p.epoch);
            }
            Some((epoch, _)) => asked.push((*p, epoch)),
        }
    }
    if asked.is_empty() {
        return Ok(());
    }
    let mut by_topic: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    for (p, epoch) in &asked {
        by_topic.entry(&p.tp.topic).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(p.tp.partition.0)
                .with_current_leader_epoch(p.epoch)
                .with_leader_epoch(epoch.0),
        );
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(me))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response: OffsetForLeaderEpochResponse = conn
        .call(ApiKey::OffsetForLeaderEpoch, EPOCH_VERSION, &request)
        .await?;
    for topic in response.topics {
        for answer in topic.partitions {
            let tp = TopicPartition::new(topic.topic.to_string(), answer.partition);
            let Some((p, _)) = asked.iter().find(|(p, _)| p.tp == tp) else {
                continue;
            };
            if !still_follows(ctx, p) {
                continue;
            }
            if answer.error_code != 0 {
                let error = ResponseError::try_from_code(answer.error_code);
                let why = "the leader cannot say where epochs end yet";
                tracing::debug!(partition = %tp, ?error, why);
                continue;
            }
            let target = agreed_end(&p.log, answer.leader_epoch, answer.end_offset);
            if target < p.log.log_end_offset() {
                tracing::info!(
                    partition = %tp,
                    from = %p.log.log_end_offset(),
                    to = %target,
                    leader_epoch = answer.leader_epoch,
                    "truncating a diverged follower log"
                );
                let log = Rc::clone(&p.log);
                let log = log
                    .truncate_to(target)
                    .await
                    .map_err(|e| format!("truncate {tp}: {e}"))?;
                ctx.partitions.borrow_mut().insert(tp.clone(), log);
            }
            agreed.insert(tp, p.epoch);
        }
    }
    Ok(())
}

/// Where this log agrees with a leader that answered `(leader_epoch, end_offset)` for this
/// log's newest epoch: the end of the leader's largest epoch at or below it, but no further
/// than this log's own end of that epoch; the log start when the leader knows no such epoch.
fn agreed_end(log: &PartitionLog, leader_epoch: i32, end_offset: i64) -> Offset {
    if leader_epoch < 0 || end_offset < 0 {
        return log.log_start_offset();
    }
    let own_end = log
        .end_offset_for_epoch(LeaderEpoch(leader_epoch))
        .map_or(log.log_start_offset(), |(_, end)| end);
    Offset(end_offset.min(own_end.get())).min(log.log_end_offset())
}

/// One Fetch for `ready` and its batches appended.
async fn fetch_once(
    ctx: &ShardCtx,
    conn: &mut Connection,
    me: i32,
    ready: &[&Followed],
    agreed: &mut HashMap<TopicPartition, i32>,
) -> Result<(), String> {
    let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for p in ready {
        let last_fetched = p.log.latest_epoch().map_or(-1, |(e, _)| e.0);
        by_topic.entry(&p.tp.topic).or_default().push(
            FetchPartition::default()
                .with_partition(p.tp.partition.0)
                .with_current_leader_epoch(p.epoch)
                .with_fetch_offset(p.log.log_end_offset().get())
                .with_last_fetched_epoch(last_fetched)
                .with_log_start_offset(p.log.log_start_offset().get())
                .with_partition_max_bytes(PARTITION_BYTES_MAX),
        );
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(FETCH_WAIT_MAX_MS)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_BYTES_MAX)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response: FetchResponse = conn.call(ApiKey::Fetch, FETCH_VERSION, &request).await?;
    if response.error_code != 0 {
        return Err(format!("fetch refused with error {}", response.error_code));
    }
    let mut appended = Vec::new();
    let mut backoff = false;
    for topic in response.responses {
        for data in topic.partitions {
            let tp = TopicPartition::new(topic.topic.to_string(), data.partition_index);
            let Some(p) = ready.iter().find(|p| p.tp == tp) else {
                continue;
            };
            // Truncation replaced the log since `ready` was taken: the next round has it.
            let Some(log) = ctx.partition(&tp).filter(|l| Rc::ptr_eq(l, &p.log)) else {
                continue;
            };
            if !still_follows(ctx, p) {
                continue;
            }
            match ResponseError::try_from_code(data.error_code) {
                None => {}
                Some(ResponseError::OffsetOutOfRange) => {
                    let end = log.log_end_offset();
                    // As Kafka's follower: the leader's log start, asked with ListOffsets.
                    let leader_start = earliest_offset(conn, me, &tp, p.epoch).await?;
                    if !still_follows(ctx, p) {
                        continue;
                    }
                    if end.get() < leader_start {
                        // The leader no longer holds what would continue this log.
                        tracing::warn!(
                            partition = %tp,
                            log_end = %end,
                            leader_log_start = leader_start,
                            "the leader's log starts past this follower's end; starting over there"
                        );
                        let start = Offset(leader_start);
                        let log = Rc::clone(&log)
                            .restart_at(start)
                            .await
                            .map_err(|e| format!("restart {tp} at {start}: {e}"))?;
                        ctx.partitions.borrow_mut().insert(tp.clone(), log);
                    } else {
                        tracing::warn!(
                            partition = %tp,
                            fetch_offset = %end,
                            leader_log_start = leader_start,
                            "follower offset out of the leader's range; asking where epochs end"
                        );
                        agreed.remove(&tp);
                    }
                    backoff = true;
                    continue;
                }
                Some(error) => {
                    // Not the leader (yet) at this epoch, or a fenced epoch: the metadata will
                    // catch up; anything else is retried too.
                    tracing::debug!(partition = %tp, ?error, "replica fetch refused");
                    backoff = true;
                    continue;
                }
            }
            let records = whole_batches(data.records.unwrap_or_default());
            if records.is_empty() {
                follow_log_start(&tp, &log, data.log_start_offset).await;
                ctx.replica(&tp)
                    .set_follower_high_watermark(data.high_watermark, log.log_end_offset().get());
                continue;
            }
            let log = starting_at_first_batch(ctx, &tp, log, &records).await?;
            if !still_follows(ctx, p) {
                continue;
            }
            match log.append_replica(records, now_ms()) {
                Ok(receipt) => {
                    // After the append: a log that started over at a batch's base reaches the
                    // leader's start only now.
                    follow_log_start(&tp, &log, data.log_start_offset).await;
                    appended.push((tp, log, receipt, data.high_watermark));
                }
                Err(error) => {
                    tracing::warn!(partition = %tp, %error, "cannot append the leader's batches");
                    agreed.remove(&tp);
                    backoff = true;
                }
            }
        }
    }
    for (tp, log, receipt, leader_hw) in appended {
        let stored = match log.config().flush {
            FlushPolicy::SyncBeforeAck => receipt.durable().await,
            FlushPolicy::IntervalMs(_) => receipt.written().await,
        };
        if let Err(error) = stored {
            // The log has failed; the shard's stop check takes the broker down.
            tracing::error!(partition = %tp, %error, "replica append failed on the device");
            continue;
        }
        ctx.replica(&tp)
            .set_follower_high_watermark(leader_hw, log.log_end_offset().get());
    }
    if backoff {
        glommio::timer::sleep(BACKOFF).await;
    }
    Ok(())
}

/// An empty log that started over at the leader's log start, where that start is inside a
/// batch: the leader answers with the whole batch, which begins before this log does. Kafka's
/// follower then starts at the batch's base instead, and so does this one.
async fn starting_at_first_batch(
    ctx: &ShardCtx,
    tp: &TopicPartition,
    log: Rc<PartitionLog>,
    records: &Bytes,
) -> Result<Rc<PartitionLog>, String> {
    let Some(first) = BatchHeader::parse(records) else {
        return Ok(log);
    };
    let (start, end) = (log.log_start_offset().get(), log.log_end_offset().get());
    let inside = first.base_offset() < end && first.last_offset() >= end;
    if start != end || !inside {
        return Ok(log);
    }
    let base = Offset(first.base_offset());
    let log = log
        .restart_at(base)
        .await
        .map_err(|e| format!("restart {tp} at {base}: {e}"))?;
    ctx.partitions
        .borrow_mut()
        .insert(tp.clone(), Rc::clone(&log));
    Ok(log)
}

/// The leader's log start for `tp` (ListOffsets, earliest).
async fn earliest_offset(
    conn: &mut Connection,
    me: i32,
    tp: &TopicPartition,
    epoch: i32,
) -> Result<i64, String> {
    const EARLIEST: i64 = -2;
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(me))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(&tp.topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(tp.partition.0)
                .with_current_leader_epoch(epoch)
                .with_timestamp(EARLIEST)])]);
    let response: ListOffsetsResponse = conn
        .call(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request)
        .await?;
    let answer = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| format!("no ListOffsets answer for {tp}"))?;
    match answer.error_code {
        0 => Ok(answer.offset),
        code => Err(format!("ListOffsets for {tp}: error {code}")),
    }
}

/// Moves this log's start up to the leader's (DeleteRecords there, or its retention), as far
/// as this log reaches, so that a new leader does not serve again what was deleted.
async fn follow_log_start(tp: &TopicPartition, log: &PartitionLog, leader_start: i64) {
    let target = leader_start.min(log.log_end_offset().get());
    if target <= log.log_start_offset().get() {
        return;
    }
    if let Err(error) = log.delete_records_before(Offset(target)).await {
        tracing::warn!(partition = %tp, %error, "cannot move the log start to the leader's");
    }
}

/// The whole batches at the front of `records` (a response may end inside one).
fn whole_batches(records: Bytes) -> Bytes {
    let mut at = 0;
    while let Some(header) = BatchHeader::parse(&records[at..]) {
        match header.total_bytes() {
            Some(len) if at + len <= records.len() => at += len,
            _ => break,
        }
    }
    records.slice(..at)
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}
