//! Request bodies and response readers for the API versions older than the codec, written by
//! hand from Kafka 3.9's JSON message specs (the codec cannot encode these versions, and the
//! broker's own decoders are what is under test): Produce v0–2, Fetch v0–3, CreateTopics v0–1,
//! DeleteTopics v0, DescribeConfigs v0, ListOffsets v0, OffsetCommit v0–1, OffsetFetch v0.
//!
//! Every reader consumes the whole response body and panics, naming the API and version, at
//! anything it cannot read or at bytes left over: "decodable at that version" means exactly
//! that.

/// A request body under construction: Kafka's non-flexible encoding.
#[derive(Default)]
pub struct Body(pub Vec<u8>);

impl Body {
    pub fn i8(mut self, v: i8) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn string(self, s: &str) -> Self {
        let mut body = self.i16(s.len() as i16);
        body.0.extend_from_slice(s.as_bytes());
        body
    }

    pub fn null_string(self) -> Self {
        self.i16(-1)
    }
}

/// A response body being read; every read past the end panics with `what`.
pub struct Cursor<'a> {
    rest: &'a [u8],
    what: String,
}

impl<'a> Cursor<'a> {
    /// Reads `body` (a response frame after its correlation id) of `what` (API and version).
    pub fn new(body: &'a [u8], what: String) -> Self {
        Cursor { rest: body, what }
    }

    fn take(&mut self, len: usize) -> &'a [u8] {
        assert!(
            len <= self.rest.len(),
            "{}: response truncated ({len} bytes wanted, {} left)",
            self.what,
            self.rest.len()
        );
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        taken
    }

    pub fn i8(&mut self) -> i8 {
        i8::from_be_bytes(self.take(1).try_into().expect("1 byte"))
    }

    pub fn bool(&mut self) -> bool {
        self.i8() != 0
    }

    pub fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().expect("2 bytes"))
    }

    pub fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().expect("4 bytes"))
    }

    pub fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().expect("8 bytes"))
    }

    pub fn nullable_string(&mut self) -> Option<String> {
        let len = self.i16();
        if len == -1 {
            return None;
        }
        assert!(len >= 0, "{}: string length {len}", self.what);
        let bytes = self.take(len as usize);
        Some(String::from_utf8(bytes.to_vec()).expect("UTF-8 string"))
    }

    pub fn string(&mut self) -> String {
        let what = self.what.clone();
        self.nullable_string()
            .unwrap_or_else(|| panic!("{what}: a null string"))
    }

    pub fn bytes(&mut self) -> &'a [u8] {
        let len = self.i32();
        assert!(len >= 0, "{}: bytes length {len}", self.what);
        self.take(len as usize)
    }

    /// An array, each element read by `element`.
    pub fn array<T>(&mut self, mut element: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let count = self.i32();
        assert!(
            count >= 0 && count as usize <= self.rest.len(),
            "{}: array count {count} with {} bytes left",
            self.what,
            self.rest.len()
        );
        (0..count).map(|_| element(self)).collect()
    }

    /// Panics if anything is left.
    pub fn end(self) {
        assert!(
            self.rest.is_empty(),
            "{}: {} bytes after the response body",
            self.what,
            self.rest.len()
        );
    }
}

/// One partition of an old response: its topic, index, error code and the offsets it carries
/// (ListOffsets v0's old-style offsets, OffsetFetch's committed offset, Produce's base offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldPartition {
    pub topic: String,
    pub index: i32,
    pub error_code: i16,
    pub offsets: Vec<i64>,
    pub metadata: Option<String>,
}

/// One config of a DescribeConfigs v0 answer: name, value, read_only, is_default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldConfig {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub is_default: bool,
}

/// What an old response said, as far as the tests look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldAnswer {
    /// Per-partition answers (Produce, Fetch, ListOffsets, OffsetCommit, OffsetFetch).
    Partitions(Vec<OldPartition>),
    /// Per-topic (name, error code) answers (CreateTopics, DeleteTopics).
    Topics(Vec<(String, i16)>),
    /// Per-resource (error code, name, configs) answers (DescribeConfigs).
    Resources(Vec<(i16, String, Vec<OldConfig>)>),
}

/// Whether the test suite can read `key` at `version` by hand (a version older than the codec).
pub fn is_old(key: i16, version: i16) -> bool {
    matches!(
        (key, version),
        (0, 0..=2)
            | (1, 0..=3)
            | (19, 0..=1)
            | (20, 0)
            | (32, 0)
            | (2, 0)
            | (8, 0..=1)
            | (9, 0)
            | (23, 0..=1)
    )
}

/// A minimal valid request body for an old `key` at `version`, naming `topic` partition 0 and
/// `group` where the API has them. Produce and Fetch name no topic (an empty request): what
/// their old versions carry (legacy message sets) is `tests/message_sets.rs`'s business.
pub fn minimal_old_request(key: i16, version: i16, topic: &str, group: &str) -> Vec<u8> {
    let body = Body::default();
    let body = match key {
        0 => body.i16(1).i32(1000).i32(0), // acks, timeout_ms, no topics
        1 => {
            let body = body.i32(-1).i32(0).i32(0); // replica_id, max_wait_ms, min_bytes
            let body = if version >= 3 {
                body.i32(1 << 20)
            } else {
                body
            };
            body.i32(0) // no topics
        }
        2 => list_offsets_v0(topic, &[(0, -1, 1)]),
        8 => offset_commit(version, group, topic, &[(0, 0, None)]),
        9 => offset_fetch_v0(group, topic, &[0]),
        19 => create_topics(version, &[], false),
        20 => body.i32(0).i32(1000), // no topics, timeout_ms
        32 => describe_configs_v0(2, topic),
        23 => offset_for_leader_epoch_v0(topic, &[(0, 0)]),
        _ => panic!("API {key} v{version} is not an old version"),
    };
    body.0
}

/// OffsetForLeaderEpoch v0–1 (the same bytes): `topic` with (partition, leader epoch).
pub fn offset_for_leader_epoch_v0(topic: &str, partitions: &[(i32, i32)]) -> Body {
    let mut body = Body::default()
        .i32(1)
        .string(topic)
        .i32(partitions.len() as i32);
    for &(index, epoch) in partitions {
        body = body.i32(index).i32(epoch);
    }
    body
}

/// ListOffsets v0: replica_id -1, `topic` with (partition, timestamp, max_num_offsets).
pub fn list_offsets_v0(topic: &str, partitions: &[(i32, i64, i32)]) -> Body {
    let mut body = Body::default()
        .i32(-1)
        .i32(1)
        .string(topic)
        .i32(partitions.len() as i32);
    for &(index, timestamp, max) in partitions {
        body = body.i32(index).i64(timestamp).i32(max);
    }
    body
}

/// OffsetCommit v0 or v1 (generation -1, no member id, commit timestamp -1) for `topic` with
/// (partition, offset, metadata).
pub fn offset_commit(
    version: i16,
    group: &str,
    topic: &str,
    partitions: &[(i32, i64, Option<&str>)],
) -> Body {
    let mut body = Body::default().string(group);
    if version >= 1 {
        body = body.i32(-1).string("");
    }
    body = body.i32(1).string(topic).i32(partitions.len() as i32);
    for &(index, offset, metadata) in partitions {
        body = body.i32(index).i64(offset);
        if version >= 1 {
            body = body.i64(-1);
        }
        body = match metadata {
            Some(m) => body.string(m),
            None => body.null_string(),
        };
    }
    body
}

/// OffsetFetch v0 for `topic`'s `partitions`.
pub fn offset_fetch_v0(group: &str, topic: &str, partitions: &[i32]) -> Body {
    let mut body = Body::default()
        .string(group)
        .i32(1)
        .string(topic)
        .i32(partitions.len() as i32);
    for &index in partitions {
        body = body.i32(index);
    }
    body
}

/// A topic to create: name, partition count, config overrides.
pub type NewTopic<'a> = (&'a str, i32, &'a [(&'a str, &'a str)]);

/// CreateTopics v0 or v1 of `topics`, replication factor 1, no assignment.
pub fn create_topics(version: i16, topics: &[NewTopic], validate_only: bool) -> Body {
    let mut body = Body::default().i32(topics.len() as i32);
    for &(name, partitions, configs) in topics {
        body = body.string(name).i32(partitions).i16(1).i32(0);
        body = body.i32(configs.len() as i32);
        for &(key, value) in configs {
            body = body.string(key).string(value);
        }
    }
    body = body.i32(10_000);
    if version >= 1 {
        body = body.i8(i8::from(validate_only));
    }
    body
}

/// DeleteTopics v0 of `names`.
pub fn delete_topics_v0(names: &[&str]) -> Body {
    let mut body = Body::default().i32(names.len() as i32);
    for name in names {
        body = body.string(name);
    }
    body.i32(10_000)
}

/// DescribeConfigs v0 of one resource, every key.
pub fn describe_configs_v0(resource_type: i8, name: &str) -> Body {
    Body::default()
        .i32(1)
        .i8(resource_type)
        .string(name)
        .i32(-1)
}

/// Reads the body of an old response of `key` at `version` (after its correlation id), all of
/// it.
pub fn read_old_response(key: i16, version: i16, body: &[u8]) -> OldAnswer {
    let mut c = Cursor::new(body, format!("API {key} v{version}"));
    let answer = match key {
        0 => {
            let answer = partitions(&mut c, |c| {
                let offsets = vec![c.i64()]; // base_offset
                if version >= 2 {
                    c.i64(); // log_append_time_ms
                }
                (offsets, None)
            });
            if version >= 1 {
                c.i32(); // throttle_time_ms
            }
            answer
        }
        1 => {
            if version >= 1 {
                c.i32(); // throttle_time_ms
            }
            partitions(&mut c, |c| {
                let high_watermark = c.i64();
                c.bytes(); // records
                (vec![high_watermark], None)
            })
        }
        2 => partitions(&mut c, |c| (c.array(Cursor::i64), None)),
        8 => partitions(&mut c, |_| (Vec::new(), None)),
        9 => {
            let mut committed = Vec::new();
            c.array(|c| {
                let topic = c.string();
                c.array(|c| {
                    let index = c.i32();
                    let offset = c.i64();
                    let metadata = c.nullable_string();
                    let error_code = c.i16();
                    committed.push(OldPartition {
                        topic: topic.clone(),
                        index,
                        error_code,
                        offsets: vec![offset],
                        metadata,
                    });
                });
            });
            OldAnswer::Partitions(committed)
        }
        // OffsetForLeaderEpoch: the error code comes before the partition; offsets are the
        // leader epoch (v1) and the end offset.
        23 => {
            let mut all = Vec::new();
            c.array(|c| {
                let topic = c.string();
                c.array(|c| {
                    let error_code = c.i16();
                    let index = c.i32();
                    let mut offsets = Vec::new();
                    if version >= 1 {
                        offsets.push(i64::from(c.i32()));
                    }
                    offsets.push(c.i64());
                    all.push(OldPartition {
                        topic: topic.clone(),
                        index,
                        error_code,
                        offsets,
                        metadata: None,
                    });
                });
            });
            OldAnswer::Partitions(all)
        }
        19 => OldAnswer::Topics(c.array(|c| {
            let name = c.string();
            let error_code = c.i16();
            if version >= 1 {
                c.nullable_string(); // error_message
            }
            (name, error_code)
        })),
        20 => OldAnswer::Topics(c.array(|c| (c.string(), c.i16()))),
        32 => {
            c.i32(); // throttle_time_ms
            OldAnswer::Resources(c.array(|c| {
                let error_code = c.i16();
                c.nullable_string(); // error_message
                c.i8(); // resource_type
                let name = c.string();
                let configs = c.array(|c| {
                    let config = OldConfig {
                        name: c.string(),
                        value: c.nullable_string(),
                        read_only: c.bool(),
                        is_default: c.bool(),
                    };
                    c.bool(); // is_sensitive
                    config
                });
                (error_code, name, configs)
            }))
        }
        _ => panic!("API {key} v{version} is not an old version"),
    };
    c.end();
    answer
}

/// `[topic: string, [partition: i32, error_code: i16, …]]`, the rest of each partition read by
/// `rest` (its offsets and metadata).
fn partitions(
    c: &mut Cursor,
    mut rest: impl FnMut(&mut Cursor) -> (Vec<i64>, Option<String>),
) -> OldAnswer {
    let mut all = Vec::new();
    c.array(|c| {
        let topic = c.string();
        c.array(|c| {
            let index = c.i32();
            let error_code = c.i16();
            let (offsets, metadata) = rest(c);
            all.push(OldPartition {
                topic: topic.clone(),
                index,
                error_code,
                offsets,
                metadata,
            });
        });
    });
    OldAnswer::Partitions(all)
}
