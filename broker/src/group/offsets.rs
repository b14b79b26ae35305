//! Committed offsets as records of `__consumer_offsets`, in Kafka's own layout so that Kafka's
//! tools can read them:
//!
//! ```text
//! key   (version 1): int16 version=1, string group, string topic, int32 partition
//! value (version 3): int16 version=3, int64 offset, int32 leader_epoch, string metadata,
//!                    int64 commit_timestamp
//! ```
//!
//! Strings are int16-length-prefixed UTF-8. A record without a value (a tombstone) deletes the
//! commit. Keys of version 2 are group metadata, which this broker does not store (groups start
//! Empty after a restart; their members rejoin), and are skipped on replay.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use odradek_net::codec::{encode_records, plain_record};
use odradek_storage::BatchHeader;

use super::state::Committed;

/// A commit's key: group, topic, partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 3;

fn put_string(buf: &mut BytesMut, s: &str) {
    // Group ids, topic names and metadata are bounded well below i16::MAX by the handlers.
    let len = s.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&s.as_bytes()[..len]);
}

fn get_string(buf: &mut Bytes) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    if len < 0 {
        return Some(String::new());
    }
    let len = len as usize;
    if buf.remaining() < len {
        return None;
    }
    String::from_utf8(buf.split_to(len).to_vec()).ok()
}

pub fn encode_key(key: &OffsetKey) -> Bytes {
    let mut buf = BytesMut::with_capacity(10 + key.group.len() + key.topic.len());
    buf.put_i16(KEY_VERSION);
    put_string(&mut buf, &key.group);
    put_string(&mut buf, &key.topic);
    buf.put_i32(key.partition);
    buf.freeze()
}

pub fn encode_value(value: &Committed) -> Bytes {
    let mut buf = BytesMut::with_capacity(26 + value.metadata.len());
    buf.put_i16(VALUE_VERSION);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    put_string(&mut buf, &value.metadata);
    buf.put_i64(value.commit_ms);
    buf.freeze()
}

/// The key of an offset commit (versions 0 and 1 share the layout); `None` for other keys.
pub fn decode_key(mut buf: Bytes) -> Option<OffsetKey> {
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if !(0..=1).contains(&version) {
        return None;
    }
    let group = get_string(&mut buf)?;
    let topic = get_string(&mut buf)?;
    if buf.remaining() < 4 {
        return None;
    }
    Some(OffsetKey {
        group,
        topic,
        partition: buf.get_i32(),
    })
}

/// A commit value of version 0–3.
pub fn decode_value(mut buf: Bytes) -> Option<Committed> {
    if buf.remaining() < 10 {
        return None;
    }
    let version = buf.get_i16();
    let offset = buf.get_i64();
    let leader_epoch = if version >= 3 {
        if buf.remaining() < 4 {
            return None;
        }
        buf.get_i32()
    } else {
        -1
    };
    let metadata = get_string(&mut buf)?;
    if buf.remaining() < 8 {
        return None;
    }
    let commit_ms = buf.get_i64();
    Some(Committed {
        offset,
        leader_epoch,
        metadata,
        commit_ms,
        log_offset: -1,
    })
}

/// Bytes a record adds to a batch besides its key and value, at most (length, attributes,
/// timestamp and offset deltas, key and value lengths, header count).
const RECORD_FRAMING_BYTES_MAX: usize = 32;
/// A record batch's header.
const BATCH_HEADER_BYTES: usize = 61;

/// Record batches of commits (`None` value: a tombstone), back to back, each at most
/// `batch_bytes_max` (the log's `max.message.bytes`) unless one record alone is larger; so a
/// request committing or expiring thousands of partitions is stored whatever its size.
pub fn encode_batch(
    items: &[(OffsetKey, Option<Committed>)],
    now_ms: i64,
    batch_bytes_max: usize,
) -> Option<Bytes> {
    let mut batches = BytesMut::new();
    let mut records: Vec<Record> = Vec::new();
    let mut bytes = BATCH_HEADER_BYTES;
    for (key, value) in items {
        let key = encode_key(key);
        let value = value.as_ref().map(encode_value);
        let size = key.len() + value.as_ref().map_or(0, Bytes::len) + RECORD_FRAMING_BYTES_MAX;
        if !records.is_empty() && bytes + size > batch_bytes_max {
            batches.extend_from_slice(&encode_records(&records, Compression::None)?);
            records.clear();
            bytes = BATCH_HEADER_BYTES;
        }
        let offset = records.len() as i64;
        records.push(plain_record(offset, now_ms, 0, Some(key), value));
        bytes += size;
    }
    if !records.is_empty() {
        batches.extend_from_slice(&encode_records(&records, Compression::None)?);
    }
    Some(batches.freeze())
}

/// Applies every commit and tombstone in `batches` (whole batches, back to back) to `into`.
/// A batch that does not decode (anything but this broker's own commits could be there) is
/// skipped with a warning. Returns the offset after the last batch seen, if any.
pub fn apply_batches(
    batches: Bytes,
    into: &mut HashMap<OffsetKey, Committed>,
) -> Result<Option<i64>, String> {
    let mut rest = batches;
    let mut next = None;
    while !rest.is_empty() {
        let header = BatchHeader::parse(&rest).ok_or("truncated batch header")?;
        let total = header.total_bytes().ok_or("batch length too small")?;
        if total > rest.len() {
            return Err("truncated batch".into());
        }
        next = Some(header.last_offset() + 1);
        let mut batch = rest.split_to(total);
        match RecordBatchDecoder::decode(&mut batch) {
            Ok(set) => apply_records(set.records, into),
            Err(error) => tracing::warn!(%error, "skipping a batch of __consumer_offsets"),
        }
    }
    Ok(next)
}

fn apply_records(records: Vec<Record>, into: &mut HashMap<OffsetKey, Committed>) {
    for record in records {
        if record.control {
            continue;
        }
        let Some(key) = record.key.and_then(decode_key) else {
            continue;
        };
        match record.value.and_then(decode_value) {
            Some(value) => {
                let log_offset = record.offset;
                into.insert(
                    key,
                    Committed {
                        log_offset,
                        ..value
                    },
                );
            }
            None => {
                into.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> OffsetKey {
        OffsetKey {
            group: "g".into(),
            topic: "orders".into(),
            partition: 3,
        }
    }

    fn value() -> Committed {
        Committed {
            offset: 42,
            leader_epoch: 0,
            metadata: "m".into(),
            commit_ms: 1_700_000_000_000,
            log_offset: -1,
        }
    }

    #[test]
    fn key_and_value_have_kafkas_layout() {
        let k = encode_key(&key());
        assert_eq!(
            &k[..],
            &[0, 1, 0, 1, b'g', 0, 6, b'o', b'r', b'd', b'e', b'r', b's', 0, 0, 0, 3]
        );
        let v = encode_value(&value());
        assert_eq!(&v[..2], &[0, 3]);
        assert_eq!(v.len(), 2 + 8 + 4 + 2 + 1 + 8);
        assert_eq!(decode_key(k), Some(key()));
        assert_eq!(decode_value(v), Some(value()));
    }

    #[test]
    fn every_truncated_key_and_value_is_refused() {
        let k = encode_key(&key());
        let v = encode_value(&value());
        for n in 0..k.len() {
            assert_eq!(decode_key(k.slice(..n)), None, "{n}");
        }
        for n in 0..v.len() {
            assert_eq!(decode_value(v.slice(..n)), None, "{n}");
        }
    }

    #[test]
    fn a_batch_replays_commits_and_tombstones() {
        let mut other = key();
        other.partition = 4;
        let batch = encode_batch(
            &[
                (key(), Some(value())),
                (other.clone(), Some(value())),
                (other.clone(), None),
            ],
            1,
            1 << 20,
        )
        .expect("encode");
        let mut map = HashMap::new();
        let next = apply_batches(batch, &mut map).expect("decode");
        assert_eq!(next, Some(3));
        assert_eq!(map.len(), 1);
        // Replayed commits remember where they are in the log (record 0 of this batch).
        let replayed = Committed {
            log_offset: 0,
            ..value()
        };
        assert_eq!(map.get(&key()), Some(&replayed));
    }

    #[test]
    fn a_batch_that_does_not_decode_is_skipped() {
        let good = encode_batch(&[(key(), Some(value()))], 1, 1 << 20).expect("encode");
        let mut bad = BytesMut::from(&good[..]);
        // Corrupt the records (past the 61-byte header): the batch no longer decodes.
        let len = bad.len();
        bad[len - 3] = 0x7f;
        bad[61] = 0x7f;
        let mut both = BytesMut::new();
        both.extend_from_slice(&bad);
        both.extend_from_slice(&good);
        let mut map = HashMap::new();
        let next = apply_batches(both.freeze(), &mut map).expect("the good batch decodes");
        assert_eq!(map.get(&key()).map(|c| c.offset), Some(value().offset));
        assert_eq!(next, Some(1));
    }

    #[test]
    fn many_commits_go_out_in_batches_within_the_message_limit() {
        let big = Committed {
            metadata: "m".repeat(4096),
            ..value()
        };
        let items: Vec<(OffsetKey, Option<Committed>)> = (0..100)
            .map(|p| {
                (
                    OffsetKey {
                        partition: p,
                        ..key()
                    },
                    Some(big.clone()),
                )
            })
            .collect();
        let limit = 64 << 10;
        let batches = encode_batch(&items, 1, limit).expect("encode");
        let mut rest = &batches[..];
        let mut counts = Vec::new();
        while !rest.is_empty() {
            let total = BatchHeader::parse(rest)
                .and_then(|h| h.total_bytes())
                .expect("a batch header");
            // What the log checks at append: CRC, magic, and the size limit.
            let header = odradek_storage::batch::validate(&rest[..total], limit as u32)
                .expect("a batch within the limit");
            counts.push(header.record_count());
            rest = &rest[total..];
        }
        assert!(
            counts.len() > 1 && counts.iter().all(|&n| n > 1),
            "{counts:?}"
        );
        assert_eq!(counts.iter().sum::<i32>(), 100);
        let mut map = HashMap::new();
        apply_batches(batches, &mut map).expect("decode");
        assert_eq!(map.len(), 100);
        // A record larger than the limit still goes out, alone.
        let alone = encode_batch(&items[..2], 1, 1_000).expect("encode");
        let first = BatchHeader::parse(&alone).expect("a batch header");
        assert_eq!(first.record_count(), 1);
    }
}
