//! The record-batch (magic 2) header, read in place, and the checks a batch passes before it is
//! written.
//!
//! Layout (big-endian), offsets from the start of the batch:
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
//! 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32 | 61 records
//! ```
//! `batchLength` counts the bytes after itself; the CRC32C covers `attributes` to the end.

/// Bytes of the header, up to and including `recordCount`.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batchLength`'s count starts (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;

/// Why a batch is refused; each maps to the Kafka error a producer expects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// `CORRUPT_MESSAGE`: truncated, bad length or CRC mismatch.
    #[error("corrupt batch: {0}")]
    Corrupt(&'static str),
    /// `MESSAGE_TOO_LARGE`: larger than `max.message.bytes`.
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: u32 },
    /// `INVALID_RECORD` / `UNSUPPORTED_FOR_MESSAGE_FORMAT`: magic other than 2, no records, bad
    /// count.
    #[error("invalid batch: {0}")]
    Invalid(&'static str),
    /// `INVALID_RECORD` with per-record errors (KIP-467): records without a key on a compacted
    /// topic, by their index in the batch (the rest of the batch is refused with them).
    #[error("{} of the records have no key, and the topic is compacted", indexes.len())]
    KeylessRecords { indexes: Vec<i32> },
    /// `INVALID_TIMESTAMP`: a CreateTime record outside `message.timestamp.before.max.ms` /
    /// `after.max.ms` of the broker's clock.
    #[error("record timestamp {timestamp_ms} is {reason} the broker's clock allows")]
    InvalidTimestamp {
        timestamp_ms: i64,
        reason: &'static str,
    },
}

/// A view of one batch's header over its bytes (`bytes.len() >= HEADER_BYTES`).
#[derive(Clone, Copy, Debug)]
pub struct BatchHeader<'a> {
    bytes: &'a [u8],
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl<'a> BatchHeader<'a> {
    /// A view over `bytes`, or `None` when fewer than [`HEADER_BYTES`] are there.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() >= HEADER_BYTES).then_some(BatchHeader { bytes })
    }

    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, 0)
    }
    /// `batchLength`: bytes after the length field.
    pub fn batch_length(&self) -> i32 {
        be_i32(self.bytes, 8)
    }
    /// Bytes of the whole batch, length prefix included; `None` when the length is impossible.
    pub fn total_bytes(&self) -> Option<usize> {
        let len = self.batch_length();
        let min = (HEADER_BYTES - LOG_OVERHEAD) as i32;
        (len >= min).then(|| len as usize + LOG_OVERHEAD)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, PARTITION_LEADER_EPOCH_OFFSET)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC_OFFSET] as i8
    }
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, CRC_OFFSET) as u32
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, ATTRIBUTES_OFFSET)
    }
    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes() & 0x7) as u8
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & 0x8 != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & 0x20 != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, 23)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, 27)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, 35)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, 43)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, 51)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, 53)
    }
    pub fn record_count(&self) -> i32 {
        be_i32(self.bytes, 57)
    }
    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
}

/// Checks one whole batch (exactly `bytes`): length, magic, record count, size limit and CRC32C.
/// Returns its header on success.
pub fn validate(bytes: &[u8], max_message_bytes: u32) -> Result<BatchHeader<'_>, BatchError> {
    let header = BatchHeader::parse(bytes).ok_or(BatchError::Corrupt("shorter than a header"))?;
    let total = header
        .total_bytes()
        .ok_or(BatchError::Corrupt("batch length too small"))?;
    if total != bytes.len() {
        return Err(BatchError::Corrupt("batch length does not match its bytes"));
    }
    if header.magic() != 2 {
        return Err(BatchError::Invalid("magic is not 2"));
    }
    if total > max_message_bytes as usize {
        return Err(BatchError::TooLarge {
            size: total,
            max: max_message_bytes,
        });
    }
    if header.record_count() <= 0 {
        return Err(BatchError::Invalid("record count must be positive"));
    }
    if header.last_offset_delta() < 0 || header.last_offset_delta() < header.record_count() - 1 {
        return Err(BatchError::Invalid(
            "last offset delta does not cover the record count",
        ));
    }
    if crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]) != header.crc() {
        return Err(BatchError::Corrupt("CRC32C mismatch"));
    }
    Ok(header)
}

/// Splits a produce request's `records` field into whole batches, validating each. Either every
/// batch is valid or the whole set is refused.
pub fn split_batches(
    mut bytes: &[u8],
    max_message_bytes: u32,
) -> Result<Vec<std::ops::Range<usize>>, BatchError> {
    let mut ranges = Vec::new();
    let mut at = 0;
    while !bytes.is_empty() {
        let header =
            BatchHeader::parse(bytes).ok_or(BatchError::Corrupt("truncated batch header"))?;
        let total = header
            .total_bytes()
            .ok_or(BatchError::Corrupt("batch length too small"))?;
        if total > bytes.len() {
            if total > max_message_bytes as usize {
                return Err(BatchError::TooLarge {
                    size: total,
                    max: max_message_bytes,
                });
            }
            return Err(BatchError::Corrupt("truncated batch"));
        }
        validate(&bytes[..total], max_message_bytes)?;
        ranges.push(at..at + total);
        at += total;
        bytes = &bytes[total..];
    }
    if ranges.is_empty() {
        return Err(BatchError::Invalid("no batches"));
    }
    Ok(ranges)
}

/// Rewrites `baseOffset` in place.
pub fn set_base_offset(bytes: &mut [u8], offset: i64) {
    bytes[0..8].copy_from_slice(&offset.to_be_bytes());
}

/// Stamps the epoch of the leader that appends the batch (outside the CRC, as the base offset).
pub fn set_partition_leader_epoch(bytes: &mut [u8], epoch: i32) {
    let at = PARTITION_LEADER_EPOCH_OFFSET;
    bytes[at..at + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Rewrites `maxTimestamp` for LogAppendTime, sets the timestamp-type bit and recomputes the CRC.
pub fn set_log_append_time(bytes: &mut [u8], timestamp_ms: i64) {
    let attributes = be_i16(bytes, ATTRIBUTES_OFFSET) | 0x8;
    bytes[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    set_max_timestamp(bytes, timestamp_ms);
}

/// One record of an uncompressed batch, read in place. Record headers are skipped.
/// What one pass over an uncompressed batch's records finds: Kafka checks every record on
/// append, and sets the header's max timestamp from them (some clients, e.g. sarama 1.22, write
/// -1 there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSummary {
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// The offset delta of the first record holding `max_timestamp`.
    pub max_timestamp_delta: i32,
    /// Some record has a null key.
    pub keyless: bool,
}

/// The indexes of the records of an uncompressed batch that have no key (none for a
/// compressed one, or where the records cannot be read: [`summarize_records`] says why).
pub fn keyless_records(bytes: &[u8]) -> Vec<i32> {
    records(bytes)
        .map_while(Result::ok)
        .zip(0..)
        .filter_map(|(record, index)| record.key.is_none().then_some(index))
        .collect()
}

/// Walks the records of an uncompressed batch (`None` for a compressed one, whose records are
/// not readable in place). Counts and offset deltas must match the header.
pub fn summarize_records(
    bytes: &[u8],
    header: &BatchHeader<'_>,
) -> Option<Result<RecordSummary, BatchError>> {
    if header.compression() != 0 {
        return None;
    }
    let base = header.base_timestamp();
    let mut summary = RecordSummary {
        min_timestamp: i64::MAX,
        max_timestamp: i64::MIN,
        max_timestamp_delta: 0,
        keyless: false,
    };
    let mut count = 0i32;
    for record in records(bytes) {
        let record = match record {
            Ok(record) => record,
            Err(error) => return Some(Err(error)),
        };
        if record.offset_delta != count {
            return Some(Err(BatchError::Invalid(
                "record offset deltas are not consecutive from 0",
            )));
        }
        count += 1;
        let timestamp = base.saturating_add(record.timestamp_delta);
        summary.min_timestamp = summary.min_timestamp.min(timestamp);
        if timestamp > summary.max_timestamp {
            summary.max_timestamp = timestamp;
            summary.max_timestamp_delta = record.offset_delta;
        }
        summary.keyless |= record.key.is_none();
    }
    if count != header.record_count() {
        return Some(Err(BatchError::Invalid(
            "the record count does not match the records",
        )));
    }
    Some(Ok(summary))
}

/// Rewrites the header's max timestamp and the CRC32C that covers it.
pub fn set_max_timestamp(bytes: &mut [u8], timestamp_ms: i64) {
    bytes[35..43].copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]);
    bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// The records of one whole uncompressed batch (`bytes` starts at its header), in order. A
/// record that does not parse ends the iteration with an error; nothing is copied.
pub fn records(bytes: &[u8]) -> Records<'_> {
    Records {
        rest: bytes.get(HEADER_BYTES..).unwrap_or_default(),
    }
}

/// Iterator returned by [`records`].
pub struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let record = next_record(&mut self.rest);
        if record.is_err() {
            self.rest = &[];
        }
        Some(record)
    }
}

/// Record layout: length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
/// key (length varint, -1 for null), value (likewise), then headers, which `length` covers.
fn next_record<'a>(rest: &mut &'a [u8]) -> Result<RecordView<'a>, BatchError> {
    let corrupt = || BatchError::Corrupt("malformed record");
    let len = usize::try_from(varint(rest).ok_or_else(corrupt)?).map_err(|_| corrupt())?;
    let mut body = rest.get(..len).ok_or_else(corrupt)?;
    *rest = &rest[len..];
    body = body.get(1..).ok_or_else(corrupt)?; // attributes, unused
    let timestamp_delta = varlong(&mut body).ok_or_else(corrupt)?;
    let offset_delta = varint(&mut body).ok_or_else(corrupt)?;
    let key = nullable_bytes(&mut body).ok_or_else(corrupt)?;
    let value = nullable_bytes(&mut body).ok_or_else(corrupt)?;
    Ok(RecordView {
        offset_delta,
        timestamp_delta,
        key,
        value,
    })
}

/// A zigzag varlong (at most 10 bytes), advancing `input` past it.
fn varlong(input: &mut &[u8]) -> Option<i64> {
    let mut raw = 0u64;
    for (i, &byte) in input.iter().take(10).enumerate() {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

fn varint(input: &mut &[u8]) -> Option<i32> {
    varlong(input).and_then(|v| i32::try_from(v).ok())
}

/// Length-prefixed bytes; length -1 is null.
fn nullable_bytes<'a>(input: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    let len = varint(input)?;
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let bytes = input.get(..len)?;
    *input = &input[len..];
    Some(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn encode(records: &[Record]) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode");
        buf.to_vec()
    }

    fn record(
        offset: i64,
        timestamp: i64,
        key: Option<&'static [u8]>,
        value: Option<&'static [u8]>,
    ) -> Record {
        let mut headers = kafka_protocol::indexmap::IndexMap::new();
        headers.insert(
            kafka_protocol::protocol::StrBytes::from_static_str("h"),
            Some(bytes::Bytes::from_static(b"header value")),
        );
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            // As an idempotent producer sends it (one batch: sequence - offset is the same for
            // all).
            producer_id: 42,
            producer_epoch: 0,
            sequence: offset as i32,
            partition_leader_epoch: 3,
            timestamp_type: TimestampType::Creation,
            offset,
            timestamp,
            key: key.map(bytes::Bytes::from_static),
            value: value.map(bytes::Bytes::from_static),
            headers,
        }
    }

    #[test]
    fn given_records_out_of_time_order_when_summarized_should_find_the_largest_and_its_delta() {
        let bytes = encode(&[
            record(0, 1_000, Some(b"a"), Some(b"x")),
            record(1, 3_000, None, Some(b"y")),
            record(2, 2_000, Some(b"c"), None),
        ]);
        let header = BatchHeader::parse(&bytes).expect("header");
        let summary = summarize_records(&bytes, &header)
            .expect("uncompressed")
            .expect("valid");
        assert_eq!(
            summary,
            RecordSummary {
                min_timestamp: 1_000,
                max_timestamp: 3_000,
                max_timestamp_delta: 1,
                keyless: true,
            }
        );
        let mut fixed = bytes.clone();
        set_max_timestamp(&mut fixed, -1);
        assert_eq!(
            BatchHeader::parse(&fixed).expect("header").max_timestamp(),
            -1
        );
        validate(&fixed, u32::MAX).expect("the CRC follows the rewrite");
    }

    #[test]
    fn given_some_records_without_keys_when_listed_should_give_their_indexes() {
        let bytes = encode(&[
            record(0, 1_000, None, Some(b"x")),
            record(1, 1_000, Some(b"b"), Some(b"y")),
            record(2, 1_000, None, None),
            record(3, 1_000, Some(b""), None),
        ]);
        assert_eq!(keyless_records(&bytes), vec![0, 2], "an empty key is a key");
    }

    #[test]
    fn records_are_read_in_place_with_keys_values_and_deltas() {
        let long_value: &'static [u8] = Box::leak(vec![7u8; 300].into_boxed_slice());
        let batch = encode(&[
            record(0, 1_000, Some(b"k0"), Some(b"v0")),
            record(1, 1_000_000_000_000, None, Some(long_value)),
            record(2, 999, Some(b""), None),
        ]);
        validate(&batch, u32::MAX).expect("valid batch");
        let read: Vec<RecordView> = records(&batch).collect::<Result<_, _>>().expect("parses");
        assert_eq!(read.len(), 3);
        // The encoder bases the deltas on the smallest timestamp, 999.
        assert_eq!((read[0].offset_delta, read[0].timestamp_delta), (0, 1));
        assert_eq!(
            (read[0].key, read[0].value),
            (Some(&b"k0"[..]), Some(&b"v0"[..]))
        );
        assert_eq!(read[1].timestamp_delta, 1_000_000_000_000 - 999);
        assert_eq!((read[1].key, read[1].value), (None, Some(long_value)));
        assert_eq!((read[2].offset_delta, read[2].timestamp_delta), (2, 0));
        assert_eq!((read[2].key, read[2].value), (Some(&b""[..]), None));
    }

    #[test]
    fn every_truncation_of_a_record_is_an_error_not_a_panic() {
        let batch = encode(&[record(0, 5, Some(b"key"), Some(b"value"))]);
        for cut in HEADER_BYTES + 1..batch.len() {
            let read: Vec<_> = records(&batch[..cut]).collect();
            assert_eq!(read.len(), 1, "cut at {cut}");
            assert!(read[0].is_err(), "cut at {cut}");
        }
        // Record lengths (zigzag varints) of 63, past the batch's end, and of -64.
        for length in [0x7e, 0x7f] {
            let mut lying = batch.clone();
            lying[HEADER_BYTES] = length;
            assert!(records(&lying).next().expect("one item").is_err());
        }
    }
}
