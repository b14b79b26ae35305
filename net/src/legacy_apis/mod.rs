//! Versions Kafka 3.9 serves but the codec (generated from Kafka 4's specs) no longer knows:
//! Produce v0–2, Fetch v0–3, CreateTopics v0–1, DeleteTopics v0, DescribeConfigs v0,
//! ListOffsets v0, OffsetCommit v0–1, OffsetFetch v0, OffsetForLeaderEpoch v0–1. Old clients
//! still send them (Debian's sarama 1.22 and kafka-go 0.2.1 produce and fetch with v0–2 and
//! legacy message sets; sarama sends DescribeConfigs v0, CreateTopics v0 and OffsetCommit v1;
//! kafka-python pinned to an old `api_version` sends ListOffsets v0 and OffsetCommit v0–1;
//! brokers before Kafka 2.1 ask OffsetForLeaderEpoch v0–1).
//!
//! Each old version is decoded into the codec's own (version-independent) request struct, so
//! the broker runs the same handler for it as for newer versions, and the handler's response
//! struct is encoded at the old version, with only the fields that version has. Where an old
//! version's bytes are exactly those of a version the codec knows (OffsetFetch v0 is v1 both
//! ways, DeleteTopics v0 asks as v1 does, OffsetCommit v0–1 answer as v2 does), the codec does
//! that part. Each API's wire format is written in its
//! file's doc comment, taken from Kafka 3.9's JSON message specs.
//!
//! Bodies that cannot be read are a [`NetError`] (which closes the connection); no input panics
//! and no array count sizes an allocation before the bytes for it are there ([`wire`]).
//!
//! Layout:
//! - [`wire`]: the bounded [`wire::Reader`] and the frame [`wire::Writer`].
//! - one file per API: [`produce`], [`fetch`], [`create_topics`], [`delete_topics`],
//!   [`describe_configs`], [`list_offsets`], [`offset_commit`], [`offset_fetch`],
//!   [`offset_for_leader_epoch`].

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::error::{one_line, NetError};

pub mod create_topics;
pub mod delete_topics;
pub mod describe_configs;
pub mod fetch;
pub mod list_offsets;
pub mod offset_commit;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod wire;

pub use create_topics::CreateTopicsOld;
pub use delete_topics::DeleteTopicsOld;
pub use describe_configs::DescribeConfigsOld;
pub use fetch::FetchOld;
pub use list_offsets::ListOffsetsOld;
pub use offset_commit::OffsetCommitOld;
pub use offset_fetch::OffsetFetchOld;
pub use offset_for_leader_epoch::OffsetForLeaderEpochOld;
pub use produce::ProduceOld;

use wire::{Reader, Writer};

/// The old versions of one API, below the codec's oldest.
pub trait OldVersions {
    const API_KEY: ApiKey;
    /// The versions served here (inclusive); the next one is the codec's oldest.
    const VERSIONS: (i16, i16);
    /// The codec's request struct that the old body is decoded into.
    type Request;
    /// The codec's response struct that the handler answers with.
    type Response;
    /// What the old answer needs from the request that the codec's struct has no field for
    /// (ListOffsets v0's `max_num_offsets`); `()` for the rest.
    type Asked;

    fn decode(reader: &mut Reader) -> Result<(Self::Request, Self::Asked), NetError>;

    /// Writes the response body (after the response header) at `writer.version()`.
    fn encode(
        writer: &mut Writer,
        response: &Self::Response,
        asked: &Self::Asked,
    ) -> Result<(), NetError>;
}

/// Decodes the body of a request whose version `A` serves.
pub fn decode<A: OldVersions>(
    header: &RequestHeader,
    body: Bytes,
) -> Result<(A::Request, A::Asked), NetError> {
    let version = header.request_api_version;
    assert!(
        (A::VERSIONS.0..=A::VERSIONS.1).contains(&version),
        "{:?} v{version} is not an old version",
        A::API_KEY
    );
    A::decode(&mut Reader::new(A::API_KEY, version, body))
}

/// Encodes `response` as the answer to `header`, as one length-prefixed frame.
pub fn encode<A: OldVersions>(
    header: &RequestHeader,
    response: &A::Response,
    asked: &A::Asked,
) -> Result<Bytes, NetError> {
    let version = header.request_api_version;
    assert!(
        (A::VERSIONS.0..=A::VERSIONS.1).contains(&version),
        "{:?} v{version} is not an old version",
        A::API_KEY
    );
    let mut writer = Writer::new(A::API_KEY, version, header.correlation_id);
    A::encode(&mut writer, response, asked)?;
    writer.finish()
}

/// The rest of the body decoded by the codec at `same_wire_version`, a version whose bytes are
/// exactly those of the old one (errors still name the old version).
fn decode_as<T: Decodable>(r: &mut Reader, same_wire_version: i16) -> Result<T, NetError> {
    let mut rest = r.take_rest();
    T::decode(&mut rest, same_wire_version).map_err(|e| r.error(one_line(e)))
}

/// `body` encoded by the codec at `same_wire_version`, a version whose bytes are exactly those
/// of the old one.
fn encode_as<T: Encodable>(
    w: &mut Writer,
    body: &T,
    same_wire_version: i16,
) -> Result<(), NetError> {
    body.encode(w.buf(), same_wire_version)
        .map_err(|e| w.error_reason(one_line(e)))
}

/// The codec's oldest version of `api_key`: where the versions served here end.
pub fn codec_version_min(api_key: ApiKey) -> i16 {
    api_key.valid_versions().min
}

#[cfg(test)]
pub(crate) mod test_support {
    //! What every API's tests check: exact bytes, every truncated prefix, lying counts.

    use super::*;

    pub fn header<A: OldVersions>(version: i16) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(A::API_KEY as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
    }

    pub fn decoded<A: OldVersions>(version: i16, body: &[u8]) -> (A::Request, A::Asked) {
        decode::<A>(&header::<A>(version), Bytes::copy_from_slice(body)).expect("decodes")
    }

    /// `body` cut anywhere before its end is an error.
    pub fn every_prefix_fails<A: OldVersions>(version: i16, body: &[u8]) {
        for cut in 0..body.len() {
            let result = decode::<A>(&header::<A>(version), Bytes::copy_from_slice(&body[..cut]));
            assert!(result.is_err(), "{:?} v{version} cut at {cut}", A::API_KEY);
        }
    }

    /// `body` with the array count at `at` replaced by one the bytes left cannot hold is
    /// refused by the count check (before any element is read or allocated).
    pub fn lying_count_fails<A: OldVersions>(version: i16, body: &[u8], at: usize) {
        for count in [i32::MAX, 1 << 20, -2] {
            let mut bad = body.to_vec();
            bad[at..at + 4].copy_from_slice(&count.to_be_bytes());
            let result = decode::<A>(&header::<A>(version), Bytes::from(bad));
            let error = match result {
                Err(error) => error.to_string(),
                Ok(_) => panic!("{:?} v{version}: count {count} at {at} decoded", A::API_KEY),
            };
            assert!(
                error.contains(&format!("array count {count}")),
                "{:?} v{version}: count {count} at {at}: {error}",
                A::API_KEY
            );
        }
    }

    /// The response frame for `response`, without its length prefix and correlation id
    /// (which are checked here).
    pub fn encoded_body<A: OldVersions>(
        version: i16,
        response: &A::Response,
        asked: &A::Asked,
    ) -> Vec<u8> {
        let frame = encode::<A>(&header::<A>(version), response, asked).expect("encodes");
        let len = i32::from_be_bytes(frame[..4].try_into().expect("length"));
        assert_eq!(len as usize, frame.len() - 4, "length prefix");
        assert_eq!(&frame[4..8], &7i32.to_be_bytes(), "correlation id");
        frame[8..].to_vec()
    }

    /// Big-endian bytes of a Kafka `string`.
    pub fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as i16).to_be_bytes().to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// The codec floor of `A::API_KEY` follows `A::VERSIONS`.
    pub fn floor_matches_codec<A: OldVersions>() {
        assert_eq!(A::VERSIONS.0, 0, "{:?}", A::API_KEY);
        assert_eq!(
            A::VERSIONS.1 + 1,
            codec_version_min(A::API_KEY),
            "{:?}: the codec's oldest version moved",
            A::API_KEY
        );
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::header;
    use super::*;
    use proptest::prelude::*;

    fn decode_all_versions<A: OldVersions>(body: &Bytes) {
        for version in A::VERSIONS.0..=A::VERSIONS.1 {
            let _ = decode::<A>(&header::<A>(version), body.clone());
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_old_decoders(
            bytes in proptest::collection::vec(any::<u8>(), 0..256)
        ) {
            let body = Bytes::from(bytes);
            decode_all_versions::<CreateTopicsOld>(&body);
            decode_all_versions::<DeleteTopicsOld>(&body);
            decode_all_versions::<DescribeConfigsOld>(&body);
            decode_all_versions::<ListOffsetsOld>(&body);
            decode_all_versions::<OffsetCommitOld>(&body);
            decode_all_versions::<OffsetFetchOld>(&body);
            decode_all_versions::<ProduceOld>(&body);
            decode_all_versions::<FetchOld>(&body);
        }
    }
}
