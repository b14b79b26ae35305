//! Every setting, one entry each (the entry's shape is documented on `settings!`). Kafka's names
//! and, unless an entry says otherwise, Kafka's defaults; a new setting is one entry here, and a
//! line in README's table (a test compares the two).

use std::path::PathBuf;

use odradek_storage::{FlushPolicy, TimestampType};

use super::settings;
use super::{
    Bool, Cleanup, CleanupPolicy, CompressionType, FirstDir, Fraction, Int, Listener, ListenerName,
    ListenerNames, ListenerProtocol, Listeners, Maybe, NamedListener, OneOf, ProcessRoles,
    ProtocolMap, Text, Version, Voter, Voters, TIMESTAMP_TYPES,
};

const MINUTE_MS: i128 = 60 * 1000;
const HOUR_MS: i128 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS as i64;

/// Kafka settings an operator's `server.properties` may hold that have no meaning here: accepted
/// with a warning.
pub const IGNORED: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
    "controller.quorum.bootstrap.servers",
];

/// `listeners`' default: one PLAINTEXT listener on loopback (Kafka's, `PLAINTEXT://:9092`, is
/// every interface's; a laptop's broker should not be reachable from the network unasked).
fn default_listeners() -> Vec<NamedListener> {
    vec![NamedListener {
        name: NamedListener::PLAINTEXT.into(),
        listener: Listener::new("127.0.0.1", 9092),
    }]
}

/// `flush.ms`: Kafka's default, `Long.MAX_VALUE`, means no time-based flush; here that (and 0)
/// is the safe policy, a sync before each acks=all answer.
fn flush_policy(interval_ms: i64) -> FlushPolicy {
    if interval_ms == 0 || interval_ms == i64::MAX {
        FlushPolicy::SyncBeforeAck
    } else {
        FlushPolicy::IntervalMs(interval_ms as u64)
    }
}

settings! {
    node_id: i32 {
        name: "node.id",
        aliases: ["broker.id"],
        scope: Static,
        kind: Int(0, i32::MAX),
        default: 0,
        doc: "This broker's id.",
    },
    process_roles: ProcessRoles {
        name: "process.roles",
        scope: Static,
        kind: OneOf { names: ProcessRoles::NAMES, any_case: false },
        default: ProcessRoles::Combined,
        doc: "What this node is in a KRaft cluster: broker,controller (a voter and a broker), \
              controller (a voter only) or broker (follows the voters' log).",
    },
    controller_quorum_voters: Vec<Voter> {
        name: "controller.quorum.voters",
        scope: Static,
        kind: Voters,
        default: Vec::new(),
        doc: "The metadata quorum (ID@HOST:PORT,…); empty or this node alone: a one-voter \
              quorum of itself.",
    },
    broker_rack: Option<String> {
        name: "broker.rack",
        scope: Static,
        kind: Maybe(Text),
        default: None,
        doc: "The rack (or zone) this broker is in, given to clients in Metadata and \
              DescribeCluster.",
    },
    broker_heartbeat_interval_ms: u64 {
        name: "broker.heartbeat.interval.ms",
        scope: Static,
        kind: Int(1, i32::MAX as u64),
        default: 2000,
        doc: "How often a broker tells the controller it is alive.",
    },
    broker_session_timeout_ms: u64 {
        name: "broker.session.timeout.ms",
        scope: Static,
        kind: Int(1, i32::MAX as u64),
        default: 9000,
        doc: "A broker not heard from for this long is fenced (no longer a leader or replica \
              that counts); more than broker.heartbeat.interval.ms.",
    },
    metadata_log_max_record_bytes_between_snapshots: u64 {
        name: "metadata.log.max.record.bytes.between.snapshots",
        scope: Static,
        kind: Int(1, i64::MAX as u64),
        default: 20 * 1024 * 1024,
        doc: "Metadata log bytes applied since the last snapshot before the next one is taken \
              and the log before it dropped.",
    },
    listeners: Vec<NamedListener> {
        name: "listeners",
        scope: Static,
        kind: Listeners,
        default: default_listeners(),
        doc: "NAME://HOST:PORT, comma-separated: where every shard accepts Kafka connections (the \
              listener inter.broker.listener.name names, else the first that is no controller \
              listener) and the controller listener (port 0: any free port).",
    },
    advertised_listeners: Vec<NamedListener> {
        name: "advertised.listeners",
        scope: Static,
        kind: Listeners,
        default: Vec::new(),
        doc: "The address clients are told to use: the entry named as the client listener (else \
              the first that is no controller listener); unset: the client listener, with the \
              bound port.",
    },
    inter_broker_listener_name: String {
        name: "inter.broker.listener.name",
        scope: Static,
        kind: ListenerName,
        default: NamedListener::PLAINTEXT.into(),
        doc: "The listener clients and other brokers connect to.",
    },
    controller_listener_names: Vec<String> {
        name: "controller.listener.names",
        scope: Static,
        kind: ListenerNames,
        default: vec!["CONTROLLER".into()],
        doc: "The listeners the metadata quorum speaks on (the first is this node's controller \
              listener).",
    },
    listener_security_protocol_map: Vec<ListenerProtocol> {
        name: "listener.security.protocol.map",
        scope: Static,
        kind: ProtocolMap,
        default: ProtocolMap::kafka_default(),
        doc: "NAME:PROTOCOL for each listener; every listener must be PLAINTEXT for now (TLS and \
              SASL are not built yet).",
    },
    data_dir: PathBuf {
        name: "log.dirs",
        aliases: ["log.dir"],
        scope: Static,
        kind: FirstDir,
        default: PathBuf::from("./odradek-data"),
        doc: "The data directory (one).",
    },
    num_partitions: u32 {
        name: "num.partitions",
        scope: Static,
        kind: Int(1, 100_000),
        default: 1,
        doc: "Partitions of auto-created topics and of CreateTopics asking for -1.",
    },
    default_replication_factor: i16 {
        name: "default.replication.factor",
        scope: Static,
        kind: Int(1, i16::MAX),
        default: 1,
        doc: "Replication factor of auto-created topics and of CreateTopics asking for -1; more \
              than the live brokers: INVALID_REPLICATION_FACTOR.",
    },
    min_insync_replicas: u32 {
        name: "min.insync.replicas",
        topic: "min.insync.replicas",
        scope: Dynamic,
        kind: Int(1, i16::MAX as u32),
        default: 1,
        doc: "In-sync replicas an acks=all produce needs: fewer before the append is \
              NOT_ENOUGH_REPLICAS, fewer by the time it is replicated \
              NOT_ENOUGH_REPLICAS_AFTER_APPEND.",
    },
    replica_lag_time_max_ms: u64 {
        name: "replica.lag.time.max.ms",
        scope: Static,
        kind: Int(1, i32::MAX as u64),
        default: 30_000,
        doc: "A follower that has not caught up with its leader's log end for this long leaves \
              the ISR.",
    },
    auto_leader_rebalance_enable: bool {
        name: "auto.leader.rebalance.enable",
        scope: Static,
        kind: Bool,
        default: true,
        doc: "The controller moves leadership back to each partition's preferred replica (its \
              first) where a broker leads too few of its preferred partitions.",
    },
    leader_imbalance_check_interval_seconds: u64 {
        name: "leader.imbalance.check.interval.seconds",
        scope: Static,
        kind: Int(1, 86_400 * 365),
        default: 300,
        doc: "How often the controller checks the leaders' balance.",
    },
    leader_imbalance_per_broker_percentage: u32 {
        name: "leader.imbalance.per.broker.percentage",
        scope: Static,
        kind: Int(0, 100),
        default: 10,
        doc: "The share of a broker's preferred partitions others may lead before the \
              controller elects it again.",
    },
    auto_create_topics_enable: bool {
        name: "auto.create.topics.enable",
        scope: Static,
        kind: Bool,
        default: true,
        doc: "Create unknown topics asked for in Metadata.",
    },
    log_segment_bytes: u64 {
        name: "log.segment.bytes",
        topic: "segment.bytes",
        scope: Dynamic,
        kind: Int(1024, i32::MAX as u64),
        default: 1 << 30,
        doc: "Roll a segment when it would pass this size.",
        log: |log, value| log.segment_bytes = *value,
    },
    log_roll_ms: u64 {
        name: "log.roll.ms",
        units: [("log.roll.hours", HOUR_MS)],
        topic: "segment.ms",
        scope: Dynamic,
        kind: Int(1, i64::MAX as u64),
        default: 7 * DAY_MS as u64,
        doc: "Roll a segment when its first record is this old.",
        log: |log, value| log.segment_ms = *value,
    },
    log_retention_ms: i64 {
        name: "log.retention.ms",
        units: [("log.retention.minutes", MINUTE_MS), ("log.retention.hours", HOUR_MS)],
        topic: "retention.ms",
        scope: Dynamic,
        kind: Int(-1, i64::MAX),
        default: 7 * DAY_MS,
        doc: "Delete closed segments whose newest record is older than this; -1 keeps them.",
        log: |log, value| log.retention_ms = *value,
    },
    log_retention_bytes: i64 {
        name: "log.retention.bytes",
        topic: "retention.bytes",
        scope: Dynamic,
        kind: Int(-1, i64::MAX),
        default: -1,
        doc: "Delete closed segments while a partition is larger; -1 = no limit.",
        log: |log, value| log.retention_bytes = *value,
    },
    log_retention_check_interval_ms: u64 {
        name: "log.retention.check.interval.ms",
        scope: Static,
        kind: Int(1, i64::MAX as u64),
        default: 300_000,
        doc: "How often each shard runs retention.",
    },
    producer_id_expiration_ms: u64 {
        name: "producer.id.expiration.ms",
        scope: Static,
        kind: Int(1, i64::MAX as u64),
        default: DAY_MS as u64,
        doc: "Forget an idempotent producer that has not produced to a partition for this long \
              (checked with retention).",
    },
    log_index_interval_bytes: u32 {
        name: "log.index.interval.bytes",
        topic: "index.interval.bytes",
        scope: Dynamic,
        kind: Int(0, i32::MAX as u32),
        default: 4096,
        doc: "Bytes of log between two offset-index entries.",
        log: |log, value| log.index_interval_bytes = *value,
    },
    message_max_bytes: u32 {
        name: "message.max.bytes",
        topic: "max.message.bytes",
        scope: Dynamic,
        kind: Int(0, i32::MAX as u32),
        // Kafka's: 1 MiB of records and the 12 bytes of a batch's offset and length.
        default: (1 << 20) + 12,
        doc: "The largest record batch accepted.",
        log: |log, value| log.max_message_bytes = *value,
    },
    log_flush_interval_ms: i64 {
        name: "log.flush.interval.ms",
        topic: "flush.ms",
        scope: Dynamic,
        kind: Int(0, i64::MAX),
        default: i64::MAX,
        doc: "Sync every N ms instead of before each acks=all answer (the default, \
              9223372036854775807, and 0: before each answer).",
        log: |log, value| log.flush = flush_policy(*value),
    },
    log_message_timestamp_type: TimestampType {
        name: "log.message.timestamp.type",
        topic: "message.timestamp.type",
        scope: Dynamic,
        kind: OneOf { names: TIMESTAMP_TYPES, any_case: false },
        default: TimestampType::CreateTime,
        doc: "Which time a record's timestamp is: its producer's (CreateTime) or the broker's \
              at the append (LogAppendTime).",
        log: |log, value| log.timestamp_type = *value,
    },
    compression_type: CompressionType {
        name: "compression.type",
        topic: "compression.type",
        scope: Dynamic,
        kind: OneOf { names: CompressionType::NAMES, any_case: true },
        default: CompressionType::Producer,
        doc: "The codec batches are stored with: producer (as sent), uncompressed, gzip, snappy, \
              lz4 or zstd (recompressed on the way in).",
        log: |log, value| log.compression = value.codec(),
    },
    log_message_format_version: String {
        name: "log.message.format.version",
        topic: "message.format.version",
        scope: Dynamic,
        kind: Version,
        default: "3.0-IV1".into(),
        doc: "Deprecated since Kafka 3.0 and ignored, as there: batches are stored in format v2.",
    },
    log_message_downconversion_enable: bool {
        name: "log.message.downconversion.enable",
        topic: "message.downconversion.enable",
        scope: Dynamic,
        kind: Bool,
        default: true,
        doc: "Serve Fetch v0-3 (message formats v0/v1) by converting stored batches down; false \
              answers UNSUPPORTED_VERSION.",
    },
    log_message_timestamp_before_max_ms: i64 {
        name: "log.message.timestamp.before.max.ms",
        topic: "message.timestamp.before.max.ms",
        scope: Dynamic,
        kind: Int(0, i64::MAX),
        default: i64::MAX,
        doc: "How far before the broker's clock a CreateTime record may be (INVALID_TIMESTAMP \
              past it; KIP-937).",
        log: |log, value| log.timestamp_before_max_ms = *value,
    },
    log_message_timestamp_after_max_ms: i64 {
        name: "log.message.timestamp.after.max.ms",
        topic: "message.timestamp.after.max.ms",
        scope: Dynamic,
        kind: Int(0, i64::MAX),
        default: i64::MAX,
        doc: "How far after the broker's clock a CreateTime record may be (INVALID_TIMESTAMP \
              past it; KIP-937).",
        log: |log, value| log.timestamp_after_max_ms = *value,
    },
    log_cleanup_policy: CleanupPolicy {
        name: "log.cleanup.policy",
        topic: "cleanup.policy",
        scope: Dynamic,
        kind: Cleanup,
        default: CleanupPolicy::Delete,
        doc: "delete, compact or both. Compacted topics need a key on every record; compact \
              alone keeps every segment (compaction itself is not built yet).",
        log: |log, value| {
            log.cleanup_delete = value.deletes();
            log.keys_required = value.compacts();
        },
    },
    max_incremental_fetch_session_cache_slots: usize {
        name: "max.incremental.fetch.session.cache.slots",
        scope: Static,
        kind: Int(0, 1_000_000),
        default: 1000,
        doc: "Fetch sessions (KIP-227) kept, split over the shards; 0 answers every fetch in full.",
    },
    socket_request_max_bytes: usize {
        name: "socket.request.max.bytes",
        scope: Static,
        kind: Int(1024, i32::MAX as usize),
        default: 100 << 20,
        doc: "The largest request frame; a larger one closes the connection.",
    },
    max_connections: usize {
        name: "max.connections",
        scope: Static,
        kind: Int(1, 1_000_000),
        default: 10_000,
        doc: "Connections per shard.",
    },
    queued_max_requests: usize {
        name: "queued.max.requests",
        scope: Static,
        kind: Int(1, 100_000),
        default: 500,
        doc: "Requests in flight per connection.",
    },
    tail_cache_bytes: usize {
        name: "odradek.tail.cache.bytes",
        scope: Static,
        kind: Int(0, 1 << 40),
        default: 256 << 20,
        doc: "Odradek's own: recently appended batches each shard keeps in memory for consumers \
              at the tail (0: none); Kafka leaves this to the page cache.",
    },
    group_initial_rebalance_delay_ms: u64 {
        name: "group.initial.rebalance.delay.ms",
        scope: Static,
        kind: Int(0, i32::MAX as u64),
        default: 3000,
        doc: "Delay of a new consumer group's first rebalance.",
    },
    offsets_topic_num_partitions: u32 {
        name: "offsets.topic.num.partitions",
        scope: Static,
        kind: Int(1, 10_000),
        default: 50,
        doc: "Partitions of __consumer_offsets.",
    },
    offsets_topic_replication_factor: i16 {
        name: "offsets.topic.replication.factor",
        scope: Static,
        kind: Int(1, i16::MAX),
        default: 3,
        doc: "Replication factor of __consumer_offsets, capped at the brokers registered when \
              the topic is created.",
    },
    offsets_retention_minutes: u64 {
        name: "offsets.retention.minutes",
        scope: Static,
        kind: Int(1, 100 * 365 * 24 * 60),
        default: 7 * 24 * 60,
        doc: "Committed offsets of an empty group expire after this.",
    },
    // Compaction's settings: validated, stored and described as Kafka does, so that tools and
    // clients that set them work, but without effect (and without a broker setting) until
    // compaction is built.
    log_cleaner_delete_retention_ms: i64 {
        name: "log.cleaner.delete.retention.ms",
        topic: "delete.retention.ms",
        scope: TopicOnly,
        kind: Int(0, i64::MAX),
        default: DAY_MS,
        doc: "Compaction (not built yet; stored without effect): how long delete markers are \
              kept.",
    },
    log_cleaner_min_compaction_lag_ms: i64 {
        name: "log.cleaner.min.compaction.lag.ms",
        topic: "min.compaction.lag.ms",
        scope: TopicOnly,
        kind: Int(0, i64::MAX),
        default: 0,
        doc: "Compaction (not built yet; stored without effect): the least time a record stays \
              uncompacted.",
    },
    log_cleaner_max_compaction_lag_ms: i64 {
        name: "log.cleaner.max.compaction.lag.ms",
        topic: "max.compaction.lag.ms",
        scope: TopicOnly,
        kind: Int(1, i64::MAX),
        default: i64::MAX,
        doc: "Compaction (not built yet; stored without effect): the most time a record stays \
              uncompacted.",
    },
    log_cleaner_min_cleanable_ratio: f64 {
        name: "log.cleaner.min.cleanable.ratio",
        topic: "min.cleanable.dirty.ratio",
        scope: TopicOnly,
        kind: Fraction,
        default: 0.5,
        doc: "Compaction (not built yet; stored without effect): the dirty share of a log that \
              makes it eligible.",
    },
    ;
    derived {
        /// The client (Kafka API) listener every shard binds: the `listeners` entry named by
        /// `inter.broker.listener.name`, else the first that is no controller listener;
        /// `--listen` replaces its address.
        listen: Listener = Listener::new("127.0.0.1", 9092),
        /// This node's controller listener: the `listeners` entry named first in
        /// `controller.listener.names`, if there is one.
        controller_listen: Option<Listener> = None,
        /// The address clients are told: the `advertised.listeners` entry named as the client
        /// listener, else its first that is no controller listener; `--advertise` replaces it.
        advertise: Option<Listener> = None,
    }
}
