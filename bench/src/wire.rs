//! Produce requests written by hand, for the producers' hot path: each message is encoded once,
//! straight into its partition's record batch, and a request goes out in vectored sends of its
//! pieces. The codec path (build `Record`s, encode a batch, encode the request around it) copied
//! every value twice more: 5% of all CPU samples in a 2-core run, a sixth of the tool's CPU per
//! GB. The tests hold requests and uncompressed batches byte-for-byte equal to the codec's, and
//! decode compressed ones back.
//!
//! A [`BatchBuilder`] keeps [`PREFIX_ROOM`] bytes in front of its records. [`BatchBuilder::finish`]
//! writes the batch header (magic 2, 61 bytes) and, in front of it, the request's per-partition
//! prefix (`index: i32`, then the records' length), so that the partition entry is one slice.
//!
//! Produce request, versions 3–12 (9+ are flexible: compact lengths, tagged fields):
//! `length: i32`, header (`api_key: i16`, `api_version: i16`, `correlation_id: i32`,
//! `client_id: i16 length + bytes`, tagged fields from 9), `transactional_id` (null), `acks: i16`,
//! `timeout_ms: i32`, one topic (`name`, then its partition entries), tagged fields from 9.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self as codecs, Compressor};
use kafka_protocol::records::Compression;

use crate::error::BenchError;

/// Produce's API key.
const PRODUCE_API_KEY: i16 = 0;
/// The first flexible Produce version.
const FLEXIBLE_FROM: i16 = 9;
/// Record batch header (magic 2) and the offsets of the fields written after the records.
const BATCH_HEADER_BYTES: usize = 61;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
/// Bytes a batch's length field does not count (base offset, the length itself).
const LOG_OVERHEAD: usize = 12;
/// Room before the records: partition index (4), records length (at most a 5-byte varint),
/// batch header.
pub const PREFIX_ROOM: usize = 4 + 5 + BATCH_HEADER_BYTES;

/// The records of one partition's next batch, encoded as they are appended.
pub struct BatchBuilder {
    buf: BytesMut,
    count: u32,
    value_bytes: usize,
    /// Bytes of records to make room for at the first append (not before: a producer may have
    /// a builder for each of thousands of partitions).
    capacity: usize,
}

impl BatchBuilder {
    /// An empty batch that makes room for `capacity` bytes of records when its first record
    /// comes.
    pub fn new(capacity: usize) -> BatchBuilder {
        BatchBuilder {
            buf: BytesMut::new(),
            count: 0,
            value_bytes: 0,
            capacity,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the values appended so far.
    pub fn value_bytes(&self) -> usize {
        self.value_bytes
    }

    /// Appends a record with `key` (no headers, the batch's timestamp) whose value is `value`,
    /// then lets `fill` write over the value in place.
    pub fn push(&mut self, key: Option<&[u8]>, value: &[u8], fill: impl FnOnce(&mut [u8])) {
        if self.count == 0 {
            self.buf.reserve(PREFIX_ROOM + self.capacity);
            self.buf.put_bytes(0, PREFIX_ROOM);
        }
        let offset_delta = i64::from(self.count);
        let key_len = key.map_or(-1, |k| k.len() as i64);
        let value_len = value.len() as i64;
        // attributes, timestamp delta (0), offset delta, key, value, header count (0)
        let body_len = 1
            + 1
            + varint_len(offset_delta)
            + varint_len(key_len)
            + key.map_or(0, <[u8]>::len)
            + varint_len(value_len)
            + value.len()
            + 1;
        put_varint(&mut self.buf, body_len as i64);
        self.buf.put_u8(0);
        put_varint(&mut self.buf, 0);
        put_varint(&mut self.buf, offset_delta);
        put_varint(&mut self.buf, key_len);
        if let Some(key) = key {
            self.buf.put_slice(key);
        }
        put_varint(&mut self.buf, value_len);
        let start = self.buf.len();
        self.buf.put_slice(value);
        fill(&mut self.buf[start..]);
        put_varint(&mut self.buf, 0);
        self.count += 1;
        self.value_bytes += value.len();
    }

    /// The partition entry of a produce request (`version`) carrying these records as one
    /// batch stamped `timestamp_ms`, compressed with `compression`; the builder starts over.
    pub fn finish(
        &mut self,
        partition: i32,
        version: i16,
        timestamp_ms: i64,
        compression: Compression,
    ) -> Result<Bytes, BenchError> {
        assert!(self.count > 0, "a batch has records");
        let full = std::mem::replace(self, BatchBuilder::new(self.capacity));
        let mut buf = match compression {
            Compression::None => full.buf,
            codec => compress(codec, &full.buf[PREFIX_ROOM..])?,
        };
        let batch_at = PREFIX_ROOM - BATCH_HEADER_BYTES;
        let batch_bytes = buf.len() - batch_at;
        let last_delta = full.count as i32 - 1;
        let mut header = &mut buf[batch_at..PREFIX_ROOM];
        header.put_i64(0); // base offset: the broker assigns it
        header.put_i32((batch_bytes - LOG_OVERHEAD) as i32);
        header.put_i32(-1); // partition leader epoch
        header.put_i8(2); // magic
        header.put_u32(0); // CRC, below
        header.put_i16(codec_id(compression)); // create time, not transactional
        header.put_i32(last_delta);
        header.put_i64(timestamp_ms);
        header.put_i64(timestamp_ms);
        header.put_i64(-1); // producer id
        header.put_i16(-1); // producer epoch
        header.put_i32(-1); // base sequence
        header.put_i32(full.count as i32);
        let crc = crc32c::crc32c(&buf[batch_at + ATTRIBUTES_AT..]);
        buf[batch_at + CRC_AT..batch_at + ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());

        let flexible = version >= FLEXIBLE_FROM;
        let mut prefix = BytesMut::with_capacity(9);
        prefix.put_i32(partition);
        if flexible {
            put_uvarint(&mut prefix, batch_bytes as u64 + 1);
            buf.put_u8(0); // the partition entry's tagged fields
        } else {
            prefix.put_i32(batch_bytes as i32);
        }
        let start = batch_at - prefix.len();
        buf[start..batch_at].copy_from_slice(&prefix);
        Ok(buf.freeze().slice(start..))
    }
}

/// The records compressed, behind [`PREFIX_ROOM`] bytes of room.
fn compress(codec: Compression, records: &[u8]) -> Result<BytesMut, BenchError> {
    let mut out = BytesMut::with_capacity(PREFIX_ROOM + records.len() / 2);
    out.put_bytes(0, PREFIX_ROOM);
    let fill = |tmp: &mut BytesMut| {
        tmp.put_slice(records);
        Ok(())
    };
    let done = match codec {
        Compression::None => {
            out.put_slice(records);
            Ok(())
        }
        Compression::Gzip => codecs::Gzip::compress(&mut out, fill),
        Compression::Snappy => codecs::Snappy::compress(&mut out, fill),
        Compression::Lz4 => codecs::Lz4::compress(&mut out, fill),
        Compression::Zstd => codecs::Zstd::compress(&mut out, fill),
    };
    done.map_err(|e| BenchError::Protocol {
        what: "compressing a record batch",
        reason: e.to_string(),
    })?;
    Ok(out)
}

fn codec_id(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// What a produce request says besides its partition entries.
pub struct ProduceHead<'a> {
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: &'a str,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topic: &'a str,
}

impl ProduceHead<'_> {
    /// The request's pieces in order: what comes before `entries`, the entries, what comes
    /// after them.
    pub fn frame(&self, entries: Vec<Bytes>) -> Vec<Bytes> {
        let flexible = self.version >= FLEXIBLE_FROM;
        // The topic's and the request's tagged fields.
        let tail: &'static [u8] = if flexible { &[0, 0] } else { &[] };
        let mut head = BytesMut::with_capacity(64 + self.client_id.len() + self.topic.len());
        head.put_i32(0); // the length, below
        head.put_i16(PRODUCE_API_KEY);
        head.put_i16(self.version);
        head.put_i32(self.correlation_id);
        head.put_i16(self.client_id.len() as i16);
        head.put_slice(self.client_id.as_bytes());
        if flexible {
            head.put_u8(0); // header tagged fields
            put_uvarint(&mut head, 0); // null transactional id
        } else {
            head.put_i16(-1);
        }
        head.put_i16(self.acks);
        head.put_i32(self.timeout_ms);
        if flexible {
            put_uvarint(&mut head, 2); // one topic
            put_uvarint(&mut head, self.topic.len() as u64 + 1);
            head.put_slice(self.topic.as_bytes());
            put_uvarint(&mut head, entries.len() as u64 + 1);
        } else {
            head.put_i32(1);
            head.put_i16(self.topic.len() as i16);
            head.put_slice(self.topic.as_bytes());
            head.put_i32(entries.len() as i32);
        }
        let len = head.len() - 4 + entries.iter().map(Bytes::len).sum::<usize>() + tail.len();
        head[..4].copy_from_slice(&(len as i32).to_be_bytes());
        let mut pieces = Vec::with_capacity(entries.len() + 2);
        pieces.push(head.freeze());
        pieces.extend(entries);
        if !tail.is_empty() {
            pieces.push(Bytes::from_static(tail));
        }
        pieces
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn varint_len(v: i64) -> usize {
    let bits = 64 - zigzag(v).leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

fn put_varint(buf: &mut BytesMut, v: i64) {
    put_uvarint(buf, zigzag(v));
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ApiKey, ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{Record, RecordBatchDecoder};
    use odradek_net::codec::{encode_records, plain_record};

    const TIMESTAMP_MS: i64 = 1_790_000_000_123;

    /// Keys and values of every size class a varint length changes at.
    fn messages() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
        [0usize, 1, 63, 64, 127, 128, 1024, 20_000]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let key = (i % 3 != 0).then(|| vec![b'k'; n % 200]);
                (key, (0..n).map(|b| (b * 7 + i) as u8).collect())
            })
            .collect()
    }

    fn builder_with(messages: &[(Option<Vec<u8>>, Vec<u8>)]) -> BatchBuilder {
        let mut b = BatchBuilder::new(1024);
        for (key, value) in messages {
            b.push(key.as_deref(), value, |_| {});
        }
        b
    }

    /// The same records through kafka-protocol's encoder.
    fn codec_batch(messages: &[(Option<Vec<u8>>, Vec<u8>)], compression: Compression) -> Bytes {
        let records: Vec<Record> = messages
            .iter()
            .enumerate()
            .map(|(i, (key, value))| {
                let key = key.clone().map(Bytes::from);
                let value = Some(Bytes::from(value.clone()));
                plain_record(i as i64, TIMESTAMP_MS, -1, key, value)
            })
            .collect();
        encode_records(&records, compression).expect("encodes")
    }

    fn codec_frame(version: i16, entries: Vec<(i32, Bytes)>) -> Bytes {
        let partitions = entries
            .into_iter()
            .map(|(index, batch)| {
                PartitionProduceData::default()
                    .with_index(index)
                    .with_records(Some(batch))
            })
            .collect();
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("bench-topic")))
                .with_partition_data(partitions)]);
        odradek_net::client::encode_request(ApiKey::Produce, version, 7, "odradek-bench", &request)
            .expect("encodes")
    }

    fn head(version: i16) -> ProduceHead<'static> {
        ProduceHead {
            version,
            correlation_id: 7,
            client_id: "odradek-bench",
            acks: -1,
            timeout_ms: 30_000,
            topic: "bench-topic",
        }
    }

    #[test]
    fn varints_match_their_lengths() {
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            i32::MAX as i64,
            i64::MIN,
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "varint of {v}");
        }
    }

    #[test]
    fn an_uncompressed_batch_is_byte_for_byte_the_codecs() {
        let messages = messages();
        let entry = builder_with(&messages)
            .finish(3, 8, TIMESTAMP_MS, Compression::None)
            .expect("finishes");
        // v8: index (4), length (4), then the batch.
        assert_eq!(&entry[..4], &3i32.to_be_bytes());
        assert_eq!(entry.slice(8..), codec_batch(&messages, Compression::None));
    }

    #[test]
    fn compressed_batches_decode_to_the_same_records() {
        let messages = messages();
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let entry = builder_with(&messages)
                .finish(0, 8, TIMESTAMP_MS, codec)
                .expect("finishes");
            let mut batch = entry.slice(8..);
            let header = odradek_storage::batch::validate(&batch, u32::MAX).expect("valid batch");
            assert_eq!(header.compression() as i16, codec_id(codec));
            let decoded = RecordBatchDecoder::decode(&mut batch).expect("decodes");
            assert_eq!(decoded.records.len(), messages.len(), "{codec:?}");
            for (i, (record, (key, value))) in decoded.records.iter().zip(&messages).enumerate() {
                assert_eq!(record.offset, i as i64);
                assert_eq!(record.timestamp, TIMESTAMP_MS);
                assert_eq!(record.key.as_deref(), key.as_deref());
                assert_eq!(record.value.as_deref(), Some(&value[..]));
            }
        }
    }

    #[test]
    fn requests_are_byte_for_byte_the_codecs_in_every_version() {
        let messages = messages();
        for version in 3..=12 {
            let mut entries = Vec::new();
            let mut codec_entries = Vec::new();
            for partition in [0, 5, 2] {
                let some = &messages[..(partition as usize + 2)];
                entries.push(
                    builder_with(some)
                        .finish(partition, version, TIMESTAMP_MS, Compression::None)
                        .expect("finishes"),
                );
                codec_entries.push((partition, codec_batch(some, Compression::None)));
            }
            let ours: Vec<u8> = head(version).frame(entries).concat();
            assert_eq!(
                Bytes::from(ours),
                codec_frame(version, codec_entries),
                "version {version}"
            );
        }
    }

    #[test]
    fn the_builder_starts_over_after_finish() {
        let mut b = builder_with(&messages());
        b.finish(0, 9, TIMESTAMP_MS, Compression::None)
            .expect("finishes");
        assert!(b.is_empty());
        assert_eq!(b.value_bytes(), 0);
        b.push(None, b"one", |v| v[0] = b'O');
        let entry = b
            .finish(0, 9, TIMESTAMP_MS, Compression::None)
            .expect("finishes");
        let mut batch = entry.slice(5..entry.len() - 1); // index, 1-byte length, tagged fields
        let decoded = RecordBatchDecoder::decode(&mut batch)
            .expect("decodes")
            .records;
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].value.as_deref(), Some(&b"One"[..]));
    }
}
