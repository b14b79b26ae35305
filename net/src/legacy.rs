//! Produce v0–2 and Fetch v0–3: old clients may still send them because brokers advertise them
//! (librdkafka before 2.11.1 checks for Produce 0 and 2 and Fetch 2), but the codec does not
//! decode them. As Kafka 4 does, each partition is answered with UNSUPPORTED_VERSION, in a
//! well-formed response of the requested version, and the connection stays open. A body that
//! cannot be read is a [`NetError`], which closes the connection; no input panics.
//!
//! Produce request v0–2 is request v3 without its first field (`transactional_id`), so it is
//! decoded as v3 behind a null one. Response wire format (after the length and the v0 response
//! header, `correlation_id: i32`): `[topic: string, [index: i32, error_code: i16,
//! base_offset: i64, log_append_time_ms: i64 (v2)]], throttle_time_ms: i32 (v1+)`.
//!
//! Fetch request v0–3 is decoded here, by hand: `replica_id: i32, max_wait_ms: i32,
//! min_bytes: i32, max_bytes: i32 (v3), [topic: string, [partition: i32, fetch_offset: i64,
//! partition_max_bytes: i32]]`. Array counts are checked against the bytes left before anything
//! is allocated. Response: `throttle_time_ms: i32 (v1+), [topic: string, [partition: i32,
//! error_code: i16, high_watermark: i64 (-1), records: bytes (empty)]]`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader};
use kafka_protocol::protocol::Decodable;

use crate::error::{one_line, NetError};

/// The oldest Produce version the codec decodes.
pub const PRODUCE_VERSION_MIN: i16 = 3;

/// The oldest Fetch version the codec decodes.
pub const FETCH_VERSION_MIN: i16 = 4;

/// The fewest bytes a Fetch v0–3 topic takes: name length and partition count.
const FETCH_TOPIC_BYTES_MIN: usize = 2 + 4;

/// The bytes a Fetch v0–3 partition takes: partition, fetch_offset, partition_max_bytes.
const FETCH_PARTITION_BYTES: usize = 4 + 8 + 4;

/// The answer to a Produce v0–2 request: `None` for acks=0 (no response is sent).
pub fn produce_unsupported(header: &RequestHeader, body: Bytes) -> Result<Option<Bytes>, NetError> {
    let version = header.request_api_version;
    assert!(
        (0..PRODUCE_VERSION_MIN).contains(&version),
        "Produce v{version} is not legacy"
    );
    let mut v3 = BytesMut::with_capacity(body.len() + 2);
    v3.put_i16(-1); // a null transactional_id
    v3.extend_from_slice(&body);
    let mut buf = v3.freeze();
    let request = ProduceRequest::decode(&mut buf, 3).map_err(|e| NetError::Decode {
        what: "request body",
        api_key: ApiKey::Produce as i16,
        version,
        reason: one_line(e),
    })?;
    if request.acks == 0 {
        return Ok(None);
    }
    let topics: Vec<Topic> = request
        .topic_data
        .iter()
        .map(|topic| Topic {
            name: &topic.name.0,
            partitions: topic.partition_data.iter().map(|p| p.index).collect(),
        })
        .collect();
    let throttle = if version >= 1 {
        Throttle::Last
    } else {
        Throttle::Absent
    };
    let frame = encode(header.correlation_id, throttle, &topics, |out| {
        out.put_i64(-1); // base_offset
        if version >= 2 {
            out.put_i64(-1); // log_append_time_ms
        }
    })?;
    Ok(Some(frame))
}

/// The answer to a Fetch v0–3 request.
pub fn fetch_unsupported(header: &RequestHeader, body: Bytes) -> Result<Bytes, NetError> {
    let version = header.request_api_version;
    assert!(
        (0..FETCH_VERSION_MIN).contains(&version),
        "Fetch v{version} is not legacy"
    );
    let topics = decode_fetch(&body, version)?;
    let throttle = if version >= 1 {
        Throttle::First
    } else {
        Throttle::Absent
    };
    encode(header.correlation_id, throttle, &topics, |out| {
        out.put_i64(-1); // high_watermark
        out.put_i32(0); // records: an empty message set
    })
}

/// The topics of a Fetch v0–3 body; what else it asks for does not matter to the answer.
fn decode_fetch(body: &[u8], version: i16) -> Result<Vec<Topic<'_>>, NetError> {
    let mut reader = Reader {
        rest: body,
        api_key: ApiKey::Fetch,
        version,
    };
    // replica_id, max_wait_ms, min_bytes, and max_bytes from v3 on.
    reader.take(if version >= 3 { 16 } else { 12 })?;
    let topic_count = reader.count(FETCH_TOPIC_BYTES_MIN)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = reader.string()?;
        let partition_count = reader.count(FETCH_PARTITION_BYTES)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            partitions.push(reader.i32()?);
            reader.take(8 + 4)?; // fetch_offset, partition_max_bytes
        }
        topics.push(Topic { name, partitions });
    }
    Ok(topics)
}

/// A topic of a request answered with UNSUPPORTED_VERSION: its name and partition indexes.
struct Topic<'a> {
    name: &'a str,
    partitions: Vec<i32>,
}

/// Where a response carries `throttle_time_ms`: Produce v1+ last, Fetch v1+ first, v0 nowhere.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Throttle {
    Absent,
    First,
    Last,
}

/// One response frame: every partition of `topics` gets UNSUPPORTED_VERSION, followed by what
/// `after_error` writes (the API's remaining per-partition fields).
fn encode(
    correlation_id: i32,
    throttle: Throttle,
    topics: &[Topic],
    after_error: impl Fn(&mut BytesMut),
) -> Result<Bytes, NetError> {
    let mut out = BytesMut::new();
    out.put_i32(0); // the length, set below
    out.put_i32(correlation_id);
    if throttle == Throttle::First {
        out.put_i32(0);
    }
    out.put_i32(len_i32(topics.len())?);
    for topic in topics {
        let name = topic.name.as_bytes();
        out.put_i16(i16::try_from(name.len()).map_err(|_| too_large(name.len()))?);
        out.extend_from_slice(name);
        out.put_i32(len_i32(topic.partitions.len())?);
        for &index in &topic.partitions {
            out.put_i32(index);
            out.put_i16(ResponseError::UnsupportedVersion.code());
            after_error(&mut out);
        }
    }
    if throttle == Throttle::Last {
        out.put_i32(0);
    }
    let len = len_i32(out.len() - 4)?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out.freeze())
}

fn len_i32(len: usize) -> Result<i32, NetError> {
    i32::try_from(len).map_err(|_| too_large(len))
}

fn too_large(len: usize) -> NetError {
    NetError::ResponseTooLarge { len }
}

/// A cursor over a request body decoded by hand: a read past the end is an error, not a panic.
struct Reader<'a> {
    rest: &'a [u8],
    api_key: ApiKey,
    version: i16,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], NetError> {
        if len > self.rest.len() {
            let left = self.rest.len();
            return Err(self.error(format!("truncated: {len} bytes wanted, {left} left")));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn i32(&mut self) -> Result<i32, NetError> {
        Ok(self.take(4)?.get_i32())
    }

    /// An array count, refused unless that many elements of at least `element_bytes_min` each
    /// fit in what is left (so a lying count cannot size an allocation).
    fn count(&mut self, element_bytes_min: usize) -> Result<usize, NetError> {
        let count = self.i32()?;
        let left = self.rest.len();
        match usize::try_from(count) {
            Ok(n) if n <= left / element_bytes_min => Ok(n),
            _ => Err(self.error(format!("array count {count} with {left} bytes left"))),
        }
    }

    /// A non-nullable string.
    fn string(&mut self) -> Result<&'a str, NetError> {
        let len = self.take(2)?.get_i16();
        let Ok(len) = usize::try_from(len) else {
            return Err(self.error(format!("string length {len}")));
        };
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| self.error("a string that is not UTF-8".into()))
    }

    fn error(&self, reason: String) -> NetError {
        NetError::Decode {
            what: "request body",
            api_key: self.api_key as i16,
            version: self.version,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    /// A v0–2 body: the v3 encoding without its null transactional_id.
    fn legacy_body(acks: i16) -> Bytes {
        let partitions = vec![PartitionProduceData::default().with_index(4)];
        let topic = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("ab")))
            .with_partition_data(partitions);
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_topic_data(vec![topic]);
        let mut buf = BytesMut::new();
        request.encode(&mut buf, 3).expect("encode");
        assert_eq!(&buf[..2], &[0xff, 0xff], "null transactional id first");
        buf.freeze().slice(2..)
    }

    fn header(api_key: ApiKey, version: i16) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
    }

    /// `payload` behind its i32 length, as a response frame.
    fn framed(payload: Vec<u8>) -> Vec<u8> {
        let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
        frame.extend(payload);
        frame
    }

    /// A Fetch v0–3 body asking for `topics`, each with its partitions.
    fn fetch_body(version: i16, topics: &[(&str, &[i32])]) -> Bytes {
        let mut body = BytesMut::new();
        body.put_i32(-1); // replica_id
        body.put_i32(500); // max_wait_ms
        body.put_i32(1); // min_bytes
        if version >= 3 {
            body.put_i32(1 << 20); // max_bytes
        }
        body.put_i32(topics.len() as i32);
        for (name, partitions) in topics {
            body.put_i16(name.len() as i16);
            body.extend_from_slice(name.as_bytes());
            body.put_i32(partitions.len() as i32);
            for &partition in *partitions {
                body.put_i32(partition);
                body.put_i64(42); // fetch_offset
                body.put_i32(1 << 16); // partition_max_bytes
            }
        }
        body.freeze()
    }

    #[test]
    fn legacy_version_floors_are_the_codec_floors() {
        let produce = ApiKey::Produce.valid_versions().min;
        let fetch = ApiKey::Fetch.valid_versions().min;
        assert_eq!(produce, PRODUCE_VERSION_MIN);
        assert_eq!(fetch, FETCH_VERSION_MIN);
    }

    #[test]
    fn exact_bytes_v0_v1_v2() {
        let partition_v0 = [
            &4i32.to_be_bytes()[..],
            &35i16.to_be_bytes(),
            &(-1i64).to_be_bytes(),
        ]
        .concat();
        for version in 0..=2 {
            let got = produce_unsupported(&header(ApiKey::Produce, version), legacy_body(1))
                .expect("answer")
                .expect("acks=1 is answered");
            let mut payload = [
                &7i32.to_be_bytes()[..],
                &1i32.to_be_bytes(),
                &2i16.to_be_bytes(),
                b"ab",
            ]
            .concat();
            payload.extend_from_slice(&1i32.to_be_bytes());
            payload.extend_from_slice(&partition_v0);
            if version >= 2 {
                payload.extend_from_slice(&(-1i64).to_be_bytes());
            }
            if version >= 1 {
                payload.extend_from_slice(&0i32.to_be_bytes());
            }
            assert_eq!(&got[..], &framed(payload)[..], "v{version}");
        }
    }

    #[test]
    fn acks_zero_gets_no_answer_and_junk_is_an_error() {
        let produce_v2 = header(ApiKey::Produce, 2);
        assert!(produce_unsupported(&produce_v2, legacy_body(0))
            .expect("ok")
            .is_none());
        let body = legacy_body(1);
        for cut in 0..body.len() {
            assert!(
                produce_unsupported(&header(ApiKey::Produce, 1), body.slice(..cut)).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn fetch_exact_bytes_v0_to_v3() {
        let partition = |index: i32| {
            [
                &index.to_be_bytes()[..],
                &35i16.to_be_bytes(),
                &(-1i64).to_be_bytes(), // high_watermark
                &0i32.to_be_bytes(),    // records: empty
            ]
            .concat()
        };
        for version in 0..=3 {
            let body = fetch_body(version, &[("ab", &[4, 5])]);
            let got = fetch_unsupported(&header(ApiKey::Fetch, version), body).expect("answer");
            let mut payload = 7i32.to_be_bytes().to_vec();
            if version >= 1 {
                payload.extend_from_slice(&0i32.to_be_bytes()); // throttle_time_ms
            }
            payload.extend_from_slice(&1i32.to_be_bytes());
            payload.extend_from_slice(&2i16.to_be_bytes());
            payload.extend_from_slice(b"ab");
            payload.extend_from_slice(&2i32.to_be_bytes());
            payload.extend(partition(4));
            payload.extend(partition(5));
            assert_eq!(&got[..], &framed(payload)[..], "v{version}");
        }
    }

    #[test]
    fn fetch_without_topics_gets_an_empty_answer() {
        let got = fetch_unsupported(&header(ApiKey::Fetch, 0), fetch_body(0, &[])).expect("answer");
        let payload = [7i32.to_be_bytes(), 0i32.to_be_bytes()].concat();
        assert_eq!(&got[..], &framed(payload)[..]);
    }

    #[test]
    fn fetch_every_truncated_body_is_an_error() {
        for version in 0..=3 {
            let body = fetch_body(version, &[("ab", &[0, 1]), ("c", &[2])]);
            for cut in 0..body.len() {
                assert!(
                    fetch_unsupported(&header(ApiKey::Fetch, version), body.slice(..cut)).is_err(),
                    "v{version} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn fetch_lying_counts_and_bad_names_are_errors() {
        let body = fetch_body(2, &[("ab", &[0])]);
        let topic_count_at = 12;
        let name_len_at = topic_count_at + 4;
        let partition_count_at = name_len_at + 2 + 2;
        let cases: [(&str, usize, &[u8]); 6] = [
            ("huge topic count", topic_count_at, &i32::MAX.to_be_bytes()),
            (
                "negative topic count",
                topic_count_at,
                &(-1i32).to_be_bytes(),
            ),
            ("null topic name", name_len_at, &(-1i16).to_be_bytes()),
            (
                "topic name past the end",
                name_len_at,
                &300i16.to_be_bytes(),
            ),
            ("name not UTF-8", name_len_at + 2, &[0xc3, 0x28]),
            (
                "huge partition count",
                partition_count_at,
                &i32::MAX.to_be_bytes(),
            ),
        ];
        for (case, at, bytes) in cases {
            let mut bad = body.to_vec();
            bad[at..at + bytes.len()].copy_from_slice(bytes);
            let result = fetch_unsupported(&header(ApiKey::Fetch, 2), Bytes::from(bad));
            assert!(
                matches!(
                    result,
                    Err(NetError::Decode {
                        api_key: 1,
                        version: 2,
                        ..
                    })
                ),
                "{case}: {result:?}"
            );
        }
    }
}
