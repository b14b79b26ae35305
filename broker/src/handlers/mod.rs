//! One file per Kafka API, and THE table of every API this broker serves.
//!
//! Every handler file has the same shape: `API_KEY`, `VERSIONS` (the advertised range),
//! `RUNS_ON` (where its work runs, see [`RunsOn`]) and `handle(ctx, request) -> response`, given
//! the [`RequestContext`] and the decoded body (parse → apply → encode: decoding and encoding
//! happen here). [`API_TABLE`] is the one list of them: ApiVersions is built from it and
//! [`dispatch`] serves from it, so an API is served exactly where it is advertised. Adding an API
//! is its file, its `mod` line and one line in the table.
//!
//! Layout (the API each file serves; all run on the connection's shard, and hop to owning shards
//! or to shard 0 where `RUNS_ON` says):
//! - [`api_versions`], [`metadata`] (auto-create: shard 0), [`describe_cluster`],
//!   [`describe_quorum`]
//! - [`create_topics`], [`delete_topics`], [`create_partitions`], [`elect_leaders`] (shard 0)
//! - [`describe_configs`], [`incremental_alter_configs`], [`alter_configs`] (alter: shard 0)
//! - [`produce`], [`fetch`], [`list_offsets`], [`delete_records`], [`offset_for_leader_epoch`]
//!   (owning shards), [`init_producer_id`]
//! - [`find_coordinator`], [`join_group`], [`sync_group`], [`heartbeat`], [`leave_group`],
//!   [`offset_commit`], [`offset_fetch`], [`describe_groups`], [`delete_groups`],
//!   [`offset_delete`] (the group's coordinator shard), [`list_groups`] (every shard)

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Encodable;
use odradek_net::legacy_apis::{
    self, CreateTopicsOld, DeleteTopicsOld, DescribeConfigsOld, FetchOld, ListOffsetsOld,
    OffsetCommitOld, OffsetFetchOld, OffsetForLeaderEpochOld, OldVersions, ProduceOld,
};
use odradek_net::segmented::Shared;
use odradek_net::{decode_body, encode_response, encode_response_sharing, NetError};

use crate::session::RequestContext;

pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_quorum;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
mod util;

#[cfg(test)]
pub(crate) mod admin_tests;

/// Where a handler's work runs. Every request is decoded and answered on the connection's shard;
/// this says where it goes in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunsOn {
    /// The connection's shard, from the metadata snapshot and shared state.
    Connection,
    /// The shards owning the partitions it names, one message per owner (`data_path`).
    PartitionOwners,
    /// The shard coordinating the group (the owner of its `__consumer_offsets` partition).
    GroupCoordinator,
    /// Shard 0's control plane, which serializes topic and config changes.
    ControlPlane,
    /// Every shard, answers gathered.
    EveryShard,
}

/// One response frame in pieces (see `odradek_net::segmented`), or none (acks=0).
type Reply = Result<Option<Vec<Bytes>>, NetError>;

/// Serves one request of an API: checks the version, decodes, runs the handler, encodes.
type Serve = fn(RequestContext, Bytes) -> Pin<Box<dyn Future<Output = Reply>>>;

/// One served API: its advertised versions, where it runs, and how it is served.
#[derive(Clone, Copy)]
pub struct ApiEntry {
    pub key: ApiKey,
    /// Advertised (inclusive): Kafka 3.9's range where the broker serves the API fully. Versions
    /// below what the codec decodes are decoded and encoded by `odradek_net::legacy_apis`.
    pub versions: (i16, i16),
    pub runs_on: RunsOn,
    /// The oldest version of the entry's `legacy_apis` decoder, if it has one (checked against
    /// the advertised range by the tests).
    #[cfg(test)]
    old_versions_from: Option<i16>,
    serve: Serve,
}

#[cfg(test)]
impl ApiEntry {
    /// The oldest version anything here decodes: the codec's oldest, or the oldest of the
    /// entry's `legacy_apis` decoder. Nothing older may be advertised.
    pub fn decodes_from(&self) -> i16 {
        self.old_versions_from
            .unwrap_or(self.key.valid_versions().min)
    }
}

impl std::fmt::Debug for ApiEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiEntry")
            .field("key", &self.key)
            .field("versions", &self.versions)
            .field("runs_on", &self.runs_on)
            .finish_non_exhaustive()
    }
}

/// A handler's answer: the response (none: acks=0 produce gets no response) and the record data
/// it holds for sending by reference (see `odradek_net::segmented`). Handlers that always answer
/// and hold no record data return the response itself.
pub struct Answer<R> {
    pub response: Option<R>,
    pub shared: Vec<Shared>,
}

impl<R> Answer<R> {
    /// No response at all (acks=0).
    pub fn none() -> Answer<R> {
        Answer {
            response: None,
            shared: Vec::new(),
        }
    }

    /// `response`, whose record data `shared` lists.
    pub fn sharing(response: R, shared: Vec<Shared>) -> Answer<R> {
        Answer {
            response: Some(response),
            shared,
        }
    }
}

/// What a handler returns: a response, or an [`Answer`].
pub trait IntoAnswer {
    type Response;
    fn into_answer(self) -> Answer<Self::Response>;
}

impl<R: Encodable> IntoAnswer for R {
    type Response = R;
    fn into_answer(self) -> Answer<R> {
        Answer {
            response: Some(self),
            shared: Vec::new(),
        }
    }
}

impl<R> IntoAnswer for Answer<R> {
    type Response = R;
    fn into_answer(self) -> Answer<R> {
        self
    }
}

/// The table entry of a handler module: `entry!(module)`, `entry!(module, old OldDecoder)` for an
/// API whose oldest versions `odradek_net::legacy_apis` decodes, or `entry!(custom module)` for
/// one whose module serves raw bodies itself (`module::serve`).
macro_rules! entry {
    (custom $module:ident) => {
        ApiEntry {
            key: $module::API_KEY,
            versions: $module::VERSIONS,
            runs_on: $module::RUNS_ON,
            #[cfg(test)]
            old_versions_from: Some($module::VERSIONS.0),
            serve: |ctx, body| Box::pin($module::serve(ctx, body)),
        }
    };
    ($module:ident $(, old $old:ty)?) => {
        ApiEntry {
            key: $module::API_KEY,
            versions: $module::VERSIONS,
            runs_on: $module::RUNS_ON,
            #[cfg(test)]
            old_versions_from: first(&[$(<$old as OldVersions>::VERSIONS.0)?]),
            serve: |ctx, body| {
                Box::pin(async move {
                    let key = $module::API_KEY;
                    let version = ctx.version();
                    advertised(key, $module::VERSIONS, version)?;
                    $(
                        if version < key.valid_versions().min {
                            let (request, asked) = legacy_apis::decode::<$old>(&ctx.header, body)?;
                            let answer = $module::handle(&ctx, request).await.into_answer();
                            return encode_old::<$old>(&ctx.header, answer, &asked);
                        }
                    )?
                    let request = decode_body(key, version, body)?;
                    let answer = $module::handle(&ctx, request).await.into_answer();
                    encode_answer(key, &ctx.header, answer)
                })
            },
        }
    };
}

/// [`API_TABLE`], the one list of served APIs. Each module is declared above as well (so that
/// rustfmt reaches its file); one declared but not listed leaves its `handle` unused, which the
/// build refuses (`-D warnings`).
macro_rules! api_table {
    ($($module:ident $(, $tag:ident $($old:ty)?)?;)*) => {
        /// Every API this broker serves, in the order ApiVersions lists them.
        pub const API_TABLE: &[ApiEntry] = &[$(api_table!(@entry $module $(, $tag $($old)?)?)),*];
    };
    (@entry $module:ident) => { entry!($module) };
    (@entry $module:ident, old $old:ty) => { entry!($module, old $old) };
    (@entry $module:ident, custom) => { entry!(custom $module) };
}

api_table! {
    produce, old ProduceOld;
    fetch, old FetchOld;
    list_offsets, old ListOffsetsOld;
    metadata;
    api_versions, custom;
    create_topics, old CreateTopicsOld;
    delete_topics, old DeleteTopicsOld;
    delete_records;
    offset_for_leader_epoch, old OffsetForLeaderEpochOld;
    describe_configs, old DescribeConfigsOld;
    create_partitions;
    elect_leaders;
    incremental_alter_configs;
    alter_configs;
    describe_cluster;
    describe_quorum;
    find_coordinator;
    join_group;
    sync_group;
    heartbeat;
    leave_group;
    offset_commit, old OffsetCommitOld;
    offset_fetch, old OffsetFetchOld;
    list_groups;
    describe_groups;
    delete_groups;
    offset_delete;
    init_producer_id;
}

/// The table entry of `key`, if served.
pub fn entry(key: ApiKey) -> Option<&'static ApiEntry> {
    API_TABLE.iter().find(|e| e.key == key)
}

/// Serves one request of a connection from the table; an API key it does not list, or a version
/// it does not advertise, closes the connection (Kafka does the same).
pub async fn dispatch(ctx: RequestContext, key: ApiKey, body: Bytes) -> Reply {
    let Some(entry) = entry(key) else {
        return Err(NetError::UnknownApiKey {
            api_key: key as i16,
        });
    };
    (entry.serve)(ctx, body).await
}

/// The one element of `versions`, if any (an entry's old decoder is optional).
#[cfg(test)]
const fn first(versions: &[i16]) -> Option<i16> {
    match versions {
        [oldest] => Some(*oldest),
        _ => None,
    }
}

/// `Err(UnsupportedVersion)` unless `version` is in the advertised range.
fn advertised(key: ApiKey, (min, max): (i16, i16), version: i16) -> Result<(), NetError> {
    if (min..=max).contains(&version) {
        return Ok(());
    }
    Err(NetError::UnsupportedVersion {
        api_key: key as i16,
        version,
    })
}

/// The answer encoded at the request's version: one frame, with record data passed on by
/// reference where the answer holds some.
fn encode_answer<R: Encodable>(key: ApiKey, header: &RequestHeader, answer: Answer<R>) -> Reply {
    let Some(response) = answer.response else {
        return Ok(None);
    };
    if answer.shared.is_empty() {
        return Ok(Some(vec![encode_response(key, header, &response)?]));
    }
    Ok(Some(encode_response_sharing(
        key,
        header,
        &response,
        &answer.shared,
    )?))
}

/// The answer to a version older than the codec, encoded by hand. Record data it holds is in the
/// response itself (old fetches are down-converted into one piece per partition), so what
/// `shared` lists is written with it.
fn encode_old<A: OldVersions>(
    header: &RequestHeader,
    answer: Answer<A::Response>,
    asked: &A::Asked,
) -> Reply {
    match answer.response {
        Some(response) => Ok(Some(vec![legacy_apis::encode::<A>(
            header, &response, asked,
        )?])),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_no_duplicates_and_sane_ranges() {
        for (i, entry) in API_TABLE.iter().enumerate() {
            assert!(entry.versions.0 <= entry.versions.1, "{:?}", entry.key);
            assert!(
                entry.versions.0 >= entry.decodes_from(),
                "{:?} advertises v{} but nothing decodes below v{}",
                entry.key,
                entry.versions.0,
                entry.decodes_from()
            );
            assert!(
                entry.versions.1 <= entry.key.valid_versions().max,
                "{:?} beyond the codec",
                entry.key
            );
            assert!(
                API_TABLE[i + 1..].iter().all(|e| e.key != entry.key),
                "{:?} twice",
                entry.key
            );
        }
    }

    /// Every advertised version of every key reaches its entry's decoder (an empty body is
    /// answered, or refused as undecodable: never as an unknown key or unsupported version), and
    /// the versions just outside the range are refused as unsupported.
    #[test]
    fn every_advertised_key_and_version_dispatches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        odradek_storage::testing::run(move || async move {
            let ctx = admin_tests::one_shard_ctx(config).await;
            for entry in API_TABLE {
                let (min, max) = entry.versions;
                for version in min - 1..=max + 1 {
                    let header = RequestHeader::default()
                        .with_request_api_key(entry.key as i16)
                        .with_request_api_version(version);
                    let context = admin_tests::request_context(&ctx, header);
                    let served = dispatch(context, entry.key, Bytes::new()).await;
                    let what = format!("{:?} v{version}", entry.key);
                    let unsupported = matches!(served, Err(NetError::UnsupportedVersion { .. }));
                    let advertised = (min..=max).contains(&version);
                    if entry.key == ApiKey::ApiVersions {
                        assert!(served.is_ok(), "{what} is always answered");
                    } else if advertised {
                        let reached = matches!(served, Ok(_) | Err(NetError::Decode { .. }));
                        assert!(reached, "{what} did not reach its decoder: {served:?}");
                    } else {
                        assert!(unsupported, "{what} is not advertised: {served:?}");
                    }
                }
            }
        });
    }

    #[test]
    fn old_librdkafka_finds_the_versions_it_checks() {
        let has = |key: ApiKey, v: i16| {
            entry(key).is_some_and(|e| e.versions.0 <= v && v <= e.versions.1)
        };
        for v in [0, 2, 3, 7] {
            assert!(has(ApiKey::Produce, v), "Produce {v}");
        }
        for v in [2, 4, 10] {
            assert!(has(ApiKey::Fetch, v), "Fetch {v}");
        }
        assert!(has(ApiKey::ListOffsets, 1));
        // Debian's sarama 1.22 and kafka-python pinned to 0.9/0.10.
        assert!(has(ApiKey::OffsetCommit, 1) && has(ApiKey::OffsetCommit, 0));
        assert!(has(ApiKey::CreateTopics, 0) && has(ApiKey::DescribeConfigs, 0));
        assert!(has(ApiKey::ListOffsets, 0) && has(ApiKey::OffsetFetch, 0));
    }

    /// Kafka 3.9's advertised ranges (its JSON message specs at the 3.9 branch, stable versions
    /// only) for the APIs in the table.
    const KAFKA_3_9: &[(ApiKey, (i16, i16))] = &[
        (ApiKey::Produce, (0, 11)),
        (ApiKey::Fetch, (0, 17)),
        (ApiKey::ListOffsets, (0, 9)),
        (ApiKey::Metadata, (0, 12)),
        (ApiKey::OffsetCommit, (0, 9)),
        (ApiKey::OffsetFetch, (0, 9)),
        (ApiKey::FindCoordinator, (0, 6)),
        (ApiKey::JoinGroup, (0, 9)),
        (ApiKey::Heartbeat, (0, 4)),
        (ApiKey::LeaveGroup, (0, 5)),
        (ApiKey::SyncGroup, (0, 5)),
        (ApiKey::DescribeGroups, (0, 5)),
        (ApiKey::ListGroups, (0, 5)),
        (ApiKey::ApiVersions, (0, 4)),
        (ApiKey::CreateTopics, (0, 7)),
        (ApiKey::DeleteTopics, (0, 6)),
        (ApiKey::DeleteRecords, (0, 2)),
        (ApiKey::OffsetForLeaderEpoch, (0, 4)),
        (ApiKey::InitProducerId, (0, 5)),
        (ApiKey::DescribeConfigs, (0, 4)),
        (ApiKey::AlterConfigs, (0, 2)),
        (ApiKey::CreatePartitions, (0, 3)),
        (ApiKey::ElectLeaders, (0, 2)),
        (ApiKey::DeleteGroups, (0, 2)),
        (ApiKey::IncrementalAlterConfigs, (0, 1)),
        (ApiKey::OffsetDelete, (0, 0)),
        (ApiKey::DescribeCluster, (0, 1)),
        (ApiKey::DescribeQuorum, (0, 2)),
    ];

    /// Where the table stops short of Kafka 3.9 (newest versions not served yet); everything
    /// else must match it exactly.
    const SHORT_OF_KAFKA_3_9: &[(ApiKey, i16)] = &[
        (ApiKey::Fetch, 16),          // v17: replica directory id (KIP-853)
        (ApiKey::FindCoordinator, 4), // v5: TRANSACTION_ABORTABLE; v6: share groups
        (ApiKey::ApiVersions, 3),     // v4: SupportedFeatures min version 0
        (ApiKey::InitProducerId, 4),  // v5: TRANSACTION_ABORTABLE
    ];

    #[test]
    fn table_matches_kafka_3_9_but_where_listed() {
        assert_eq!(
            API_TABLE.len(),
            KAFKA_3_9.len(),
            "an API without a Kafka 3.9 range"
        );
        for &(key, (min, max)) in KAFKA_3_9 {
            let entry = entry(key).unwrap_or_else(|| panic!("{key:?} not served"));
            let short = SHORT_OF_KAFKA_3_9.iter().find(|(k, _)| *k == key);
            let expected = (min, short.map_or(max, |&(_, our_max)| our_max));
            assert_eq!(entry.versions, expected, "{key:?}");
        }
    }
}
