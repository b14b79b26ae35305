//! Produce v0–2 and Fetch v0–3 against the real binary: legacy message sets (magic 0 and 1,
//! plain and in a gzip wrapper) are stored as record batches, read back by a current client
//! (librdkafka) with their keys, values and timestamps, and served to old consumers converted
//! down, with real offsets. Message sets here are written and read by this file's own code,
//! from Kafka's format description, not by the broker's.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::{
    assign_all, connect, consume_exactly, consumer, correlation_id_of, create_topic, frame,
    next_response, record_batch, Body, Broker, Cursor, CLIENT_TIMEOUT,
};
use rdkafka::message::Message;
use rdkafka::Offset;

const PRODUCE: i16 = 0;
const FETCH: i16 = 1;
const CORRUPT_MESSAGE: i16 = 2;
const UNSUPPORTED_VERSION: i16 = 35;

/// One legacy message: key, value, timestamp (ignored in magic 0).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Message0 {
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

fn message(offset: i64, timestamp: i64, key: &str, value: &str) -> Message0 {
    Message0 {
        offset,
        timestamp,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
    }
}

/// `offset: i64, size: i32, crc: u32, magic, attributes, [timestamp: i64], key, value`.
fn put_message(out: &mut Vec<u8>, magic: i8, attributes: i8, m: &Message0) {
    let mut body = vec![magic as u8, attributes as u8];
    if magic == 1 {
        body.extend(m.timestamp.to_be_bytes());
    }
    for field in [&m.key, &m.value] {
        match field {
            None => body.extend((-1i32).to_be_bytes()),
            Some(bytes) => {
                body.extend((bytes.len() as i32).to_be_bytes());
                body.extend(bytes);
            }
        }
    }
    out.extend(m.offset.to_be_bytes());
    out.extend(((body.len() + 4) as i32).to_be_bytes());
    out.extend(crc32fast::hash(&body).to_be_bytes());
    out.extend(body);
}

/// A plain message set of `magic` (offsets as the producer writes them: 0, 1, …).
fn plain_set(magic: i8, messages: &[Message0]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        put_message(&mut out, magic, 0, m);
    }
    out
}

/// A gzip wrapper of magic 1 around `messages`: inner offsets relative, the wrapper's offset
/// that of the last, its timestamp the largest.
fn gzip_set_v1(messages: &[Message0]) -> Vec<u8> {
    let inner: Vec<Message0> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| Message0 {
            offset: i as i64,
            ..m.clone()
        })
        .collect();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&plain_set(1, &inner))
        .expect("gzip a set");
    let wrapper = Message0 {
        offset: inner.len() as i64 - 1,
        timestamp: messages.iter().map(|m| m.timestamp).max().unwrap_or(-1),
        key: None,
        value: Some(encoder.finish().expect("gzip")),
    };
    let mut out = Vec::new();
    put_message(&mut out, 1, 1, &wrapper);
    out
}

/// Reads a set that must be plain (down-converted sets are), checking every CRC and magic.
fn read_set(mut set: &[u8], magic: i8) -> Vec<Message0> {
    let mut messages = Vec::new();
    while !set.is_empty() {
        let offset = i64::from_be_bytes(set[..8].try_into().expect("offset"));
        let size = i32::from_be_bytes(set[8..12].try_into().expect("size")) as usize;
        let body = &set[12..12 + size];
        set = &set[12 + size..];
        let crc = u32::from_be_bytes(body[..4].try_into().expect("crc"));
        assert_eq!(crc, crc32fast::hash(&body[4..]), "CRC of offset {offset}");
        let mut c = Cursor::new(&body[4..], format!("message at {offset}"));
        assert_eq!(c.i8(), magic, "magic of offset {offset}");
        assert_eq!(c.i8() & 0x07, 0, "down-converted sets are uncompressed");
        let timestamp = if magic == 1 { c.i64() } else { -1 };
        let mut field = || {
            let len = c.i32();
            (len >= 0).then(|| (0..len).map(|_| c.i8() as u8).collect::<Vec<u8>>())
        };
        let key = field();
        let value = field();
        c.end();
        messages.push(Message0 {
            offset,
            timestamp,
            key,
            value,
        });
    }
    messages
}

/// One connection sending hand-written requests.
struct Old {
    stream: TcpStream,
    pending: Vec<u8>,
    correlation_id: i32,
}

impl Old {
    fn open(broker: &Broker) -> Old {
        Old {
            stream: connect(broker.addr()),
            pending: Vec::new(),
            correlation_id: 0,
        }
    }

    fn ask(&mut self, key: i16, version: i16, body: Body) -> Vec<u8> {
        self.correlation_id += 1;
        let what = format!("API {key} v{version}");
        self.stream
            .write_all(&frame(key, version, self.correlation_id, &body.0))
            .unwrap_or_else(|e| panic!("{what}: write: {e}"));
        let response = next_response(&mut self.stream, &mut self.pending)
            .unwrap_or_else(|| panic!("{what}: the broker closed the connection"));
        assert_eq!(correlation_id_of(&response), self.correlation_id, "{what}");
        response[4..].to_vec()
    }

    /// Produce `set` to partition 0 of `topic` at `version` (acks 1); (error code, base offset).
    fn produce(&mut self, version: i16, topic: &str, set: &[u8]) -> (i16, i64) {
        let mut body = Body::default()
            .i16(1)
            .i32(10_000)
            .i32(1)
            .string(topic)
            .i32(1)
            .i32(0)
            .i32(set.len() as i32);
        body.0.extend_from_slice(set);
        let response = self.ask(PRODUCE, version, body);
        let mut c = Cursor::new(&response, format!("Produce v{version}"));
        assert_eq!(c.i32(), 1, "one topic");
        assert_eq!(c.string(), topic);
        assert_eq!(c.i32(), 1, "one partition");
        assert_eq!(c.i32(), 0, "partition 0");
        let answer = (c.i16(), c.i64());
        if version >= 2 {
            c.i64(); // log_append_time_ms
        }
        if version >= 1 {
            c.i32(); // throttle_time_ms
        }
        c.end();
        answer
    }

    /// Fetch partition 0 of `topic` from `offset` at `version`; (error code, high watermark,
    /// the message set).
    fn fetch(&mut self, version: i16, topic: &str, offset: i64, max: i32) -> (i16, i64, Vec<u8>) {
        let mut body = Body::default().i32(-1).i32(100).i32(0);
        if version >= 3 {
            body = body.i32(max);
        }
        body = body.i32(1).string(topic).i32(1).i32(0).i64(offset).i32(max);
        let response = self.ask(FETCH, version, body);
        let mut c = Cursor::new(&response, format!("Fetch v{version}"));
        if version >= 1 {
            c.i32(); // throttle_time_ms
        }
        assert_eq!(c.i32(), 1, "one topic");
        assert_eq!(c.string(), topic);
        assert_eq!(c.i32(), 1, "one partition");
        assert_eq!(c.i32(), 0, "partition 0");
        let error_code = c.i16();
        let high_watermark = c.i64();
        let set = c.bytes().to_vec();
        c.end();
        (error_code, high_watermark, set)
    }
}

#[test]
fn given_legacy_message_sets_when_produced_should_be_read_by_current_and_old_consumers() {
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), "old", 1, &[]);
    let mut old = Old::open(&broker);

    // Produce v0: magic 0, no timestamps. Produce v1: magic 1 with timestamps. Produce v2: a
    // gzip wrapper of magic 1 (the form old Java clients and sarama send compressed data in).
    let v0: Vec<Message0> = (0..3)
        .map(|i| message(i, -1, &format!("k{i}"), &format!("zero-{i}")))
        .collect();
    let v1 = [
        message(0, 1_700_000_000_001, "k3", "one-3"),
        message(1, 1_700_000_000_002, "k4", "one-4"),
    ];
    let gzipped: Vec<Message0> = (0..3)
        .map(|i| message(i, 1_700_000_000_010 + i, &format!("k{}", 5 + i), "gz"))
        .collect();
    assert_eq!(old.produce(0, "old", &plain_set(0, &v0)), (0, 0));
    assert_eq!(old.produce(1, "old", &plain_set(1, &v1)), (0, 3));
    assert_eq!(old.produce(2, "old", &gzip_set_v1(&gzipped)), (0, 5));
    // A v2 batch in Produce v2 is taken as it is, as Kafka takes it.
    let batch = record_batch(b"batch-8", 1_700_000_000_020);
    assert_eq!(old.produce(2, "old", &batch), (0, 8));

    // A current client reads them as record batches: keys, values, timestamps, offsets.
    let reader = consumer(&broker.bootstrap(), &[]);
    assign_all(&reader, "old", 1, Offset::Beginning);
    let got = consume_exactly(&reader, 9, CLIENT_TIMEOUT);
    let values: Vec<(i64, Option<Vec<u8>>)> = got
        .iter()
        .map(|m| (m.offset(), m.payload().map(<[u8]>::to_vec)))
        .collect();
    let mut want: Vec<(i64, Option<Vec<u8>>)> = v0
        .iter()
        .chain(&v1)
        .chain(&gzipped)
        .zip(0..)
        .map(|(m, offset)| (offset, m.value.clone()))
        .collect();
    want.push((8, Some(b"batch-8".to_vec())));
    assert_eq!(values, want);
    assert_eq!(got[3].key(), Some(&b"k3"[..]));
    assert_eq!(got[4].timestamp().to_millis(), Some(1_700_000_000_002));
    assert_eq!(got[7].timestamp().to_millis(), Some(1_700_000_000_012));

    // Old consumers get message sets of their format, with the log's offsets.
    let batch_8 = Message0 {
        key: None, // `record_batch` writes a null key
        ..message(8, 1_700_000_000_020, "", "batch-8")
    };
    let all: Vec<Message0> = v0
        .iter()
        .chain(&v1)
        .chain(&gzipped)
        .cloned()
        .chain([batch_8])
        .zip(0..)
        .map(|(m, offset)| Message0 { offset, ..m })
        .collect();
    for version in 0..=3 {
        let magic = if version <= 1 { 0 } else { 1 };
        let (error, high_watermark, set) = old.fetch(version, "old", 0, 1 << 20);
        assert_eq!((error, high_watermark), (0, 9), "Fetch v{version}");
        let read = read_set(&set, magic);
        let want: Vec<Message0> = all
            .iter()
            .map(|m| Message0 {
                timestamp: if magic == 0 { -1 } else { m.timestamp },
                ..m.clone()
            })
            .collect();
        assert_eq!(read, want, "Fetch v{version}");

        // From the middle of the gzip batch: only what is at or past the fetch offset.
        let (error, _, set) = old.fetch(version, "old", 6, 1 << 20);
        assert_eq!(error, 0);
        let offsets: Vec<i64> = read_set(&set, magic).iter().map(|m| m.offset).collect();
        assert_eq!(offsets, vec![6, 7, 8], "Fetch v{version} from 6");

        // A small partition_max_bytes still gives one whole message (a consumer never stalls).
        let (error, _, set) = old.fetch(version, "old", 0, 10);
        assert_eq!(error, 0);
        let offsets: Vec<i64> = read_set(&set, magic).iter().map(|m| m.offset).collect();
        assert_eq!(offsets, vec![0], "Fetch v{version} with 10 bytes");

        // At the end: an empty set, not an error.
        assert_eq!(old.fetch(version, "old", 9, 1 << 20), (0, 9, Vec::new()));
    }
}

#[test]
fn given_bad_or_refused_message_sets_when_produced_should_get_kafka_errors_and_keep_the_connection()
{
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), "bad", 1, &[]);
    create_topic(
        &broker.bootstrap(),
        "no-down",
        1,
        &[("message.downconversion.enable", "false")],
    );
    let mut old = Old::open(&broker);

    let good = plain_set(1, &[message(0, 1_700_000_000_000, "k", "v")]);
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert_eq!(old.produce(1, "bad", &bad_crc).0, CORRUPT_MESSAGE);
    let truncated = &good[..good.len() - 3];
    assert_eq!(old.produce(1, "bad", truncated).0, CORRUPT_MESSAGE);
    // After offset, size and CRC: the magic byte; the CRC made right again.
    let mut magic_7 = good.clone();
    magic_7[16] = 7;
    let crc = crc32fast::hash(&magic_7[16..]);
    magic_7[12..16].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(old.produce(0, "bad", &magic_7).0, CORRUPT_MESSAGE);
    // Nothing of those was stored; the connection still serves.
    assert_eq!(old.produce(1, "bad", &good), (0, 0));
    assert_eq!(old.fetch(1, "bad", 0, 1 << 20).1, 1);

    // A topic that forbids down-conversion: old consumers get UNSUPPORTED_VERSION, the
    // producer and current consumers are served.
    assert_eq!(old.produce(2, "no-down", &good), (0, 0));
    for version in 0..=3 {
        let (error, _, set) = old.fetch(version, "no-down", 0, 1 << 20);
        assert_eq!((error, set.len()), (UNSUPPORTED_VERSION, 0), "v{version}");
    }
    let reader = consumer(&broker.bootstrap(), &[]);
    assign_all(&reader, "no-down", 1, Offset::Beginning);
    let got = consume_exactly(&reader, 1, CLIENT_TIMEOUT);
    assert_eq!(got[0].payload(), Some(&b"v"[..]));
}
