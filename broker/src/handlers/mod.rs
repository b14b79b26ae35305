//! One file per Kafka API, and THE table of every API this broker serves.
//!
//! Every handler file has the same shape: `API_KEY`, `VERSIONS` (the advertised range), and
//! `handle(ctx, header, request) -> response` (parse → apply → encode: decoding and encoding
//! happen here, in [`dispatch`]). ApiVersions is built from [`API_TABLE`]; an API key without a
//! handler file is never advertised.
//!
//! Layout (the API each file serves; all run on the connection's shard, and hop to owning shards
//! or to shard 0 where noted):
//! - [`api_versions`], [`metadata`] (auto-create: shard 0), [`describe_cluster`]
//! - [`create_topics`], [`delete_topics`], [`create_partitions`] (shard 0)
//! - [`describe_configs`], [`incremental_alter_configs`], [`alter_configs`] (alter: shard 0)
//! - [`produce`], [`fetch`], [`list_offsets`], [`delete_records`] (owning shards),
//!   [`init_producer_id`]
//! - [`find_coordinator`], [`join_group`], [`sync_group`], [`heartbeat`], [`leave_group`],
//!   [`offset_commit`], [`offset_fetch`], [`describe_groups`], [`delete_groups`],
//!   [`offset_delete`] (the group's coordinator shard), [`list_groups`] (every shard)

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use odradek_net::legacy_apis::{
    self, CreateTopicsOld, DeleteTopicsOld, DescribeConfigsOld, FetchOld, ListOffsetsOld,
    OffsetCommitOld, OffsetFetchOld, ProduceOld,
};
use odradek_net::{decode_body, encode_response, encode_response_sharing, NetError, Request};

use crate::shard::ShardCtx;

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
pub mod produce;
pub mod sync_group;
mod util;

#[cfg(test)]
pub(crate) mod admin_tests;

/// One served API and the version range advertised for it.
#[derive(Clone, Copy, Debug)]
pub struct ApiEntry {
    pub key: ApiKey,
    /// Advertised (inclusive): Kafka 3.9's range where the broker serves the API fully. Versions
    /// below what the codec decodes are decoded and encoded by `odradek_net::legacy_apis`.
    pub versions: (i16, i16),
}

/// Every API this broker serves.
pub const API_TABLE: &[ApiEntry] = &[
    ApiEntry {
        key: produce::API_KEY,
        versions: produce::VERSIONS,
    },
    ApiEntry {
        key: fetch::API_KEY,
        versions: fetch::VERSIONS,
    },
    ApiEntry {
        key: list_offsets::API_KEY,
        versions: list_offsets::VERSIONS,
    },
    ApiEntry {
        key: metadata::API_KEY,
        versions: metadata::VERSIONS,
    },
    ApiEntry {
        key: api_versions::API_KEY,
        versions: api_versions::VERSIONS,
    },
    ApiEntry {
        key: create_topics::API_KEY,
        versions: create_topics::VERSIONS,
    },
    ApiEntry {
        key: delete_topics::API_KEY,
        versions: delete_topics::VERSIONS,
    },
    ApiEntry {
        key: delete_records::API_KEY,
        versions: delete_records::VERSIONS,
    },
    ApiEntry {
        key: describe_configs::API_KEY,
        versions: describe_configs::VERSIONS,
    },
    ApiEntry {
        key: create_partitions::API_KEY,
        versions: create_partitions::VERSIONS,
    },
    ApiEntry {
        key: incremental_alter_configs::API_KEY,
        versions: incremental_alter_configs::VERSIONS,
    },
    ApiEntry {
        key: alter_configs::API_KEY,
        versions: alter_configs::VERSIONS,
    },
    ApiEntry {
        key: describe_cluster::API_KEY,
        versions: describe_cluster::VERSIONS,
    },
    ApiEntry {
        key: find_coordinator::API_KEY,
        versions: find_coordinator::VERSIONS,
    },
    ApiEntry {
        key: join_group::API_KEY,
        versions: join_group::VERSIONS,
    },
    ApiEntry {
        key: sync_group::API_KEY,
        versions: sync_group::VERSIONS,
    },
    ApiEntry {
        key: heartbeat::API_KEY,
        versions: heartbeat::VERSIONS,
    },
    ApiEntry {
        key: leave_group::API_KEY,
        versions: leave_group::VERSIONS,
    },
    ApiEntry {
        key: offset_commit::API_KEY,
        versions: offset_commit::VERSIONS,
    },
    ApiEntry {
        key: offset_fetch::API_KEY,
        versions: offset_fetch::VERSIONS,
    },
    ApiEntry {
        key: list_groups::API_KEY,
        versions: list_groups::VERSIONS,
    },
    ApiEntry {
        key: describe_groups::API_KEY,
        versions: describe_groups::VERSIONS,
    },
    ApiEntry {
        key: delete_groups::API_KEY,
        versions: delete_groups::VERSIONS,
    },
    ApiEntry {
        key: offset_delete::API_KEY,
        versions: offset_delete::VERSIONS,
    },
    ApiEntry {
        key: init_producer_id::API_KEY,
        versions: init_producer_id::VERSIONS,
    },
];

/// The table entry of `key`, if served.
pub fn entry(key: ApiKey) -> Option<&'static ApiEntry> {
    API_TABLE.iter().find(|e| e.key == key)
}

/// One response frame in pieces (see `odradek_net::segmented`), or none (acks=0).
type Reply = Result<Option<Vec<Bytes>>, NetError>;

/// Decodes the body at the request's version, runs the handler, encodes its response.
macro_rules! serve {
    ($api:ident, $ctx:expr, $request:expr) => {{
        let request = $request;
        let version = request.header.request_api_version;
        let body = decode_body(request.api_key, version, request.body)?;
        let response = $api::handle($ctx, &request.header, body).await;
        Ok(Some(vec![encode_response(
            request.api_key,
            &request.header,
            &response,
        )?]))
    }};
}

/// Like `serve!`, for a version older than the codec: decoded and encoded by `$old` (see
/// `odradek_net::legacy_apis`), served by the same handler.
macro_rules! serve_old {
    ($api:ident, $old:ty, $ctx:expr, $request:expr) => {{
        let request = $request;
        let (body, asked) = legacy_apis::decode::<$old>(&request.header, request.body)?;
        let response = $api::handle($ctx, &request.header, body).await;
        let frame = legacy_apis::encode::<$old>(&request.header, &response, &asked)?;
        Ok(Some(vec![frame]))
    }};
}

/// Serves one request of a connection.
pub async fn dispatch(ctx: &Rc<ShardCtx>, request: Request) -> Reply {
    let key = request.api_key;
    let version = request.header.request_api_version;
    if key == ApiKey::ApiVersions {
        return api_versions::respond(request).map(|frame| Some(vec![frame]));
    }
    let Some(entry) = entry(key) else {
        return Err(NetError::UnknownApiKey {
            api_key: key as i16,
        });
    };
    let (min, max) = entry.versions;
    let unsupported = NetError::UnsupportedVersion {
        api_key: key as i16,
        version,
    };
    if version < min || version > max {
        return Err(unsupported);
    }
    if version < key.valid_versions().min {
        // Advertised for old clients but older than the codec: decoded and encoded by hand,
        // served by the same handlers as newer versions (which convert the message sets of
        // Produce 0–2 and Fetch 0–3 to and from record batches).
        return match key {
            ApiKey::Produce => {
                let (body, ()) = legacy_apis::decode::<ProduceOld>(&request.header, request.body)?;
                match produce::handle(ctx, &request.header, body).await {
                    Some(response) => {
                        let frame =
                            legacy_apis::encode::<ProduceOld>(&request.header, &response, &())?;
                        Ok(Some(vec![frame]))
                    }
                    None => Ok(None),
                }
            }
            ApiKey::Fetch => {
                let (body, ()) = legacy_apis::decode::<FetchOld>(&request.header, request.body)?;
                // Down-converted record data is one piece per partition, held by the response
                // itself, so what `shared` lists is in the response already.
                let (response, _shared) = fetch::handle(ctx, &request.header, body).await;
                let frame = legacy_apis::encode::<FetchOld>(&request.header, &response, &())?;
                Ok(Some(vec![frame]))
            }
            ApiKey::CreateTopics => serve_old!(create_topics, CreateTopicsOld, ctx, request),
            ApiKey::DeleteTopics => serve_old!(delete_topics, DeleteTopicsOld, ctx, request),
            ApiKey::DescribeConfigs => {
                serve_old!(describe_configs, DescribeConfigsOld, ctx, request)
            }
            ApiKey::ListOffsets => serve_old!(list_offsets, ListOffsetsOld, ctx, request),
            ApiKey::OffsetCommit => serve_old!(offset_commit, OffsetCommitOld, ctx, request),
            ApiKey::OffsetFetch => serve_old!(offset_fetch, OffsetFetchOld, ctx, request),
            _ => Err(unsupported),
        };
    }
    match key {
        ApiKey::Produce => {
            let body = decode_body(key, version, request.body)?;
            match produce::handle(ctx, &request.header, body).await {
                Some(response) => Ok(Some(vec![encode_response(
                    key,
                    &request.header,
                    &response,
                )?])),
                None => Ok(None),
            }
        }
        ApiKey::Fetch => {
            // The record batches go to the socket as they are, not copied into the frame.
            let body = decode_body(key, version, request.body)?;
            let (response, shared) = fetch::handle(ctx, &request.header, body).await;
            let pieces = encode_response_sharing(key, &request.header, &response, &shared)?;
            Ok(Some(pieces))
        }
        ApiKey::ListOffsets => serve!(list_offsets, ctx, request),
        ApiKey::Metadata => serve!(metadata, ctx, request),
        ApiKey::CreateTopics => serve!(create_topics, ctx, request),
        ApiKey::DeleteTopics => serve!(delete_topics, ctx, request),
        ApiKey::DeleteRecords => serve!(delete_records, ctx, request),
        ApiKey::DescribeConfigs => serve!(describe_configs, ctx, request),
        ApiKey::CreatePartitions => serve!(create_partitions, ctx, request),
        ApiKey::IncrementalAlterConfigs => serve!(incremental_alter_configs, ctx, request),
        ApiKey::AlterConfigs => serve!(alter_configs, ctx, request),
        ApiKey::DescribeCluster => serve!(describe_cluster, ctx, request),
        ApiKey::FindCoordinator => serve!(find_coordinator, ctx, request),
        ApiKey::JoinGroup => serve!(join_group, ctx, request),
        ApiKey::SyncGroup => serve!(sync_group, ctx, request),
        ApiKey::Heartbeat => serve!(heartbeat, ctx, request),
        ApiKey::LeaveGroup => serve!(leave_group, ctx, request),
        ApiKey::OffsetCommit => serve!(offset_commit, ctx, request),
        ApiKey::OffsetFetch => serve!(offset_fetch, ctx, request),
        ApiKey::ListGroups => serve!(list_groups, ctx, request),
        ApiKey::DescribeGroups => serve!(describe_groups, ctx, request),
        ApiKey::DeleteGroups => serve!(delete_groups, ctx, request),
        ApiKey::OffsetDelete => serve!(offset_delete, ctx, request),
        ApiKey::InitProducerId => serve!(init_producer_id, ctx, request),
        _ => Err(NetError::UnknownApiKey {
            api_key: key as i16,
        }),
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
        (ApiKey::InitProducerId, (0, 5)),
        (ApiKey::DescribeConfigs, (0, 4)),
        (ApiKey::AlterConfigs, (0, 2)),
        (ApiKey::CreatePartitions, (0, 3)),
        (ApiKey::DeleteGroups, (0, 2)),
        (ApiKey::IncrementalAlterConfigs, (0, 1)),
        (ApiKey::OffsetDelete, (0, 0)),
        (ApiKey::DescribeCluster, (0, 1)),
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
