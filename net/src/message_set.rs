//! Kafka's legacy message formats (magic 0 and 1), and their conversion to and from record
//! batches (magic 2), the only format this broker stores.
//!
//! Produce v0–2 carries legacy message sets and Fetch v0–3 must answer with them. As Kafka's
//! `LogValidator` does, a produced set is *up-converted* into one v2 batch before it is appended
//! ([`up_convert`]), and stored batches are *down-converted* for old consumers
//! ([`down_convert`]). Both directions go through `kafka-protocol`'s v2 encoder and decoder; only
//! the legacy format itself is read and written here.
//!
//! Wire format (big-endian). A message set is messages back to back, each
//! `offset: i64, message_size: i32, message`, where `message` is
//! ```text
//! crc: u32 (CRC-32 IEEE of everything after it) | magic: i8 | attributes: i8
//! | timestamp: i64 (magic 1 only) | key: i32 length (-1 null) + bytes | value: the same
//! ```
//! `attributes` bits 0–2 are the codec (0 none, 1 gzip, 2 snappy, 3 lz4), bit 3 (magic 1) the
//! timestamp type (1: LogAppendTime). A compressed message is a *wrapper*: its value is a whole
//! message set, compressed. The inner messages are uncompressed and of the wrapper's magic; in
//! magic 1 their offsets are relative (0, 1, …) and the wrapper carries the absolute offset of
//! the last one, in magic 0 they are absolute.
//!
//! Bounds, because all of this is client input (or stored client input): every length is checked
//! against the bytes that are there before anything is sliced; a wrapper inside a wrapper is
//! refused (Kafka allows one level); decompression stops at a caller's `decompressed_bytes_max`
//! (see [`compression`]); a v2 batch's record count is checked against its decompressed size
//! before `kafka-protocol` reserves room for that many records. Nothing here panics on input.

mod compression;
#[cfg(test)]
mod tests;

use std::cell::Cell;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
    NO_TIMESTAMP,
};

/// `offset: i64` and `message_size: i32`, before each message (and each v2 batch).
const LOG_OVERHEAD: usize = 12;
/// The smallest message of magic 0: crc, magic, attributes, key length, value length.
const MESSAGE_BYTES_MIN_V0: usize = 4 + 1 + 1 + 4 + 4;
/// Magic 1 adds the timestamp.
const MESSAGE_BYTES_MIN_V1: usize = MESSAGE_BYTES_MIN_V0 + 8;
const CODEC_MASK: i8 = 0x07;
const LOG_APPEND_TIME_BIT: i8 = 0x08;

/// The v2 batch header, as far as down-conversion reads it in place.
const BATCH_HEADER_BYTES: usize = 61;
const BATCH_MAGIC_AT: usize = 16;
const BATCH_ATTRIBUTES_AT: usize = 21;
const BATCH_LAST_OFFSET_DELTA_AT: usize = 23;
const BATCH_MAX_TIMESTAMP_AT: usize = 35;
const BATCH_RECORD_COUNT_AT: usize = 57;
const BATCH_CONTROL_BIT: i16 = 0x20;
/// The smallest v2 record: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count, one byte each.
const RECORD_BYTES_MIN: usize = 7;

/// A legacy message format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// Kafka 0.8: no timestamps. Fetch v0–1 answers with it.
    V0 = 0,
    /// Kafka 0.10: a timestamp per message. Fetch v2–3 answers with it.
    V1 = 1,
}

impl Magic {
    /// The format a Fetch of `version` (0–3) is answered in.
    pub fn for_fetch_version(version: i16) -> Magic {
        if version <= 1 {
            Magic::V0
        } else {
            Magic::V1
        }
    }

    fn of(byte: i8) -> Result<Magic, MessageSetError> {
        match byte {
            0 => Ok(Magic::V0),
            1 => Ok(Magic::V1),
            other => Err(MessageSetError::Magic(other)),
        }
    }

    fn message_bytes_min(self) -> usize {
        match self {
            Magic::V0 => MESSAGE_BYTES_MIN_V0,
            Magic::V1 => MESSAGE_BYTES_MIN_V1,
        }
    }
}

/// One message as a consumer sees it: wrappers opened, offsets absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyMessage {
    pub offset: i64,
    /// -1 in magic 0, which has none.
    pub timestamp: i64,
    /// Magic 1's timestamp-type bit (for an inner message, its wrapper's).
    pub log_append_time: bool,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// A legacy set, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedSet {
    pub messages: Vec<LegacyMessage>,
    /// The codec of the last compressed wrapper, or none: what Kafka re-applies when it
    /// up-converts (`compression.type=producer`).
    pub compression: Compression,
    /// Bytes that came out of decompression, all wrappers together.
    pub decompressed_bytes: usize,
}

/// A produced set as the one v2 batch that is appended in its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpConverted {
    /// One record batch (magic 2): base offset 0, no producer id, CreateTime.
    pub batch: Bytes,
    /// See [`DecodedSet::decompressed_bytes`]; callers charge it to a per-request budget.
    pub decompressed_bytes: usize,
}

/// Why a message set (or a stored batch being down-converted) cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageSetError {
    #[error("message set cut short: {0}")]
    Truncated(&'static str),
    #[error("impossible message size {size}")]
    BadSize { size: i32 },
    #[error("impossible length {len} of a key or value")]
    BadLength { len: i32 },
    #[error("{len} bytes after the value, inside the message")]
    TrailingBytes { len: usize },
    #[error("CRC mismatch: the message says {stored:#010x}, its bytes give {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("unknown magic {0}")]
    Magic(i8),
    #[error("unknown compression codec {0}")]
    Codec(i8),
    #[error("zstd is not allowed in a message of magic 0 or 1")]
    ZstdInLegacy,
    #[error("a compressed message inside a compressed message")]
    Nested,
    #[error("an inner message of magic {inner} in a wrapper of magic {outer}")]
    MagicMismatch { inner: i8, outer: i8 },
    #[error("a compressed message without inner messages")]
    EmptyWrapper,
    #[error("no messages")]
    Empty,
    #[error("cannot decompress: {0}")]
    Decompress(String),
    #[error("more than {bytes_max} bytes once decompressed")]
    TooLarge { bytes_max: usize },
    #[error("stored batch cannot be read: {0}")]
    Batch(String),
    #[error("cannot encode: {0}")]
    Encode(String),
}

impl MessageSetError {
    /// The error code Kafka answers a Produce partition with for this: CORRUPT_MESSAGE for bytes
    /// that do not parse or check, INVALID_RECORD for well-formed sets Kafka refuses,
    /// UNSUPPORTED_COMPRESSION_TYPE for zstd, MESSAGE_TOO_LARGE past the decompression bound.
    pub fn kafka_error(&self) -> ResponseError {
        use MessageSetError as E;
        match self {
            E::Truncated(_)
            | E::BadSize { .. }
            | E::BadLength { .. }
            | E::TrailingBytes { .. }
            | E::Crc { .. }
            | E::Magic(_)
            | E::Codec(_)
            | E::Decompress(_)
            | E::Batch(_) => ResponseError::CorruptMessage,
            E::ZstdInLegacy => ResponseError::UnsupportedCompressionType,
            E::Nested | E::MagicMismatch { .. } | E::EmptyWrapper | E::Empty | E::Encode(_) => {
                ResponseError::InvalidRecord
            }
            E::TooLarge { .. } => ResponseError::MessageTooLarge,
        }
    }
}

/// The `records` of a Produce v0–2 partition as one v2 batch, as Kafka's `LogValidator` builds
/// it: every message (wrappers opened) becomes a record with its key, value and timestamp
/// (-1 for magic 0, under CreateTime, as Kafka leaves it; a LogAppendTime topic stamps the
/// batch on append), offsets 0, 1, … (the log assigns the real ones), and the codec of the last
/// compressed wrapper is applied again. Records that already are v2 batches are returned as
/// they are: Kafka accepts them in Produce v0–2 too (its request check starts at v3).
pub fn up_convert(
    records: Bytes,
    decompressed_bytes_max: usize,
) -> Result<UpConverted, MessageSetError> {
    if records.get(BATCH_MAGIC_AT) == Some(&2) {
        return Ok(UpConverted {
            batch: records,
            decompressed_bytes: 0,
        });
    }
    let set = decode_message_set(records, decompressed_bytes_max)?;
    let converted: Vec<Record> = set
        .messages
        .into_iter()
        .zip(0i64..)
        .map(|(message, offset)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder splits batches where `offset - sequence` changes; this keeps it
            // constant and the batch's base sequence at NO_SEQUENCE.
            sequence: NO_SEQUENCE.wrapping_add(offset as i32),
            timestamp: message.timestamp,
            key: message.key,
            value: message.value,
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: set.compression,
    };
    RecordBatchEncoder::encode(&mut batch, &converted, &options)
        .map_err(|e| MessageSetError::Encode(crate::error::one_line(e)))?;
    let batch = batch.freeze();
    let length = batch.get(8..LOG_OVERHEAD).map(|b| {
        let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        usize::try_from(len).unwrap_or(0) + LOG_OVERHEAD
    });
    if length != Some(batch.len()) {
        return Err(MessageSetError::Encode(
            "the messages did not make one record batch".into(),
        ));
    }
    Ok(UpConverted {
        batch,
        decompressed_bytes: set.decompressed_bytes,
    })
}

/// Stored batches (magic 2, back to back as a fetch reads them) as a legacy set of `magic`, for
/// a Fetch v0–3: each record becomes a message with its real offset, key, value and timestamp
/// (the batch's max timestamp under LogAppendTime, none in magic 0); headers are dropped, as
/// legacy formats have none; control batches (transaction markers) are skipped; records below
/// `fetch_offset` (the start of the batch it falls in) are skipped, as Kafka does.
///
/// Messages are added while the set stays within `bytes_max`, and the first always is, so a
/// consumer is never stalled; a trailing partial batch is dropped. A batch that cannot be read
/// ends the set there, or is the error when nothing came before it (the consumer then sees the
/// error code for the offset that is bad, instead of the messages before it going missing).
///
/// The output is uncompressed, where Kafka keeps each batch's codec. Re-compressing would cost
/// a second pass over every converted byte on the shard that serves the fetch, for old
/// consumers only, and would bring back the magic-0 LZ4 framing quirk (see [`compression`]);
/// every legacy consumer reads uncompressed sets, and zstd batches (which Kafka cannot serve to
/// Fetch v0–9 at all) can be served too.
pub fn down_convert(
    batches: &Bytes,
    magic: Magic,
    fetch_offset: i64,
    bytes_max: usize,
    decompressed_bytes_max: usize,
) -> Result<Bytes, MessageSetError> {
    let mut out = BytesMut::new();
    let mut rest = batches.clone();
    let budget = Cell::new(decompressed_bytes_max);
    while let Some(batch) = next_whole_batch(&mut rest) {
        let records = match batch_records(batch, fetch_offset, &budget) {
            Ok(records) => records,
            Err(_) if !out.is_empty() => break,
            Err(error) => return Err(error),
        };
        for message in records {
            let before = out.len();
            put_message(&mut out, magic, &message, message.offset)?;
            if before > 0 && out.len() > bytes_max {
                out.truncate(before);
                return Ok(out.freeze());
            }
        }
    }
    Ok(out.freeze())
}

/// The next whole batch of `rest`, or `None` at the end or before a partial one.
fn next_whole_batch(rest: &mut Bytes) -> Option<Bytes> {
    let length = rest.get(8..LOG_OVERHEAD)?;
    let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
    let total = usize::try_from(length).ok()? + LOG_OVERHEAD;
    if total > rest.len() {
        return None;
    }
    Some(rest.split_to(total))
}

/// The messages of one stored batch at or past `fetch_offset`, or none for a control batch.
fn batch_records(
    batch: Bytes,
    fetch_offset: i64,
    budget: &Cell<usize>,
) -> Result<Vec<LegacyMessage>, MessageSetError> {
    if batch.len() < BATCH_HEADER_BYTES {
        return Err(MessageSetError::Batch("shorter than a batch header".into()));
    }
    if batch[BATCH_MAGIC_AT] != 2 {
        return Err(MessageSetError::Magic(batch[BATCH_MAGIC_AT] as i8));
    }
    let attributes = (&batch[BATCH_ATTRIBUTES_AT..]).get_i16();
    let base_offset = (&batch[..]).get_i64();
    let last_offset =
        base_offset.saturating_add(i64::from((&batch[BATCH_LAST_OFFSET_DELTA_AT..]).get_i32()));
    if attributes & BATCH_CONTROL_BIT != 0 || last_offset < fetch_offset {
        return Ok(Vec::new());
    }
    let log_append_time = attributes & i16::from(LOG_APPEND_TIME_BIT) != 0;
    let max_timestamp = (&batch[BATCH_MAX_TIMESTAMP_AT..]).get_i64();
    let record_count = (&batch[BATCH_RECORD_COUNT_AT..]).get_i32();
    let record_count = usize::try_from(record_count).unwrap_or(usize::MAX);
    let inflate = |data: &mut Bytes, codec: Compression| {
        let inflated = compression::decompress(data, codec, budget.get())?;
        budget.set(budget.get() - inflated.len());
        // The decoder reserves room for `record_count` records before it reads one.
        if record_count > inflated.len() / RECORD_BYTES_MIN {
            return Err(MessageSetError::Batch(format!(
                "{record_count} records in {} bytes",
                inflated.len()
            )));
        }
        Ok(Bytes::from(inflated))
    };
    let set = RecordBatchDecoder::decode_with_custom_compression(
        &mut batch.clone(),
        Some(|data: &mut Bytes, codec| inflate(data, codec).map_err(anyhow::Error::new)),
    )
    .map_err(|e| match e.downcast::<MessageSetError>() {
        Ok(error) => error,
        Err(e) => MessageSetError::Batch(crate::error::one_line(e)),
    })?;
    Ok(set
        .records
        .into_iter()
        .filter(|r| r.offset >= fetch_offset)
        .map(|r| LegacyMessage {
            offset: r.offset,
            timestamp: if log_append_time {
                max_timestamp
            } else {
                r.timestamp
            },
            log_append_time,
            key: r.key,
            value: r.value,
        })
        .collect())
}

/// Reads a legacy set whole: every message checked, wrappers opened (one level), inner offsets
/// made absolute. At most `decompressed_bytes_max` bytes come out of all wrappers together.
pub fn decode_message_set(
    mut set: Bytes,
    decompressed_bytes_max: usize,
) -> Result<DecodedSet, MessageSetError> {
    let mut decoded = DecodedSet {
        messages: Vec::new(),
        compression: Compression::None,
        decompressed_bytes: 0,
    };
    while !set.is_empty() {
        let outer = next_message(&mut set)?;
        let codec = codec_of(outer.attributes)?;
        if codec == Compression::None {
            let log_append_time = outer.log_append_time();
            decoded.messages.push(outer.into_message(log_append_time));
            continue;
        }
        let left = decompressed_bytes_max - decoded.decompressed_bytes;
        let inner = open_wrapper(&outer, codec, left)?;
        decoded.decompressed_bytes += inner.decompressed_bytes;
        decoded.messages.extend(inner.messages);
        decoded.compression = codec;
    }
    if decoded.messages.is_empty() {
        return Err(MessageSetError::Empty);
    }
    Ok(decoded)
}

/// The inner messages of a wrapper, with absolute offsets and the wrapper's timestamp type.
fn open_wrapper(
    wrapper: &RawMessage,
    codec: Compression,
    bytes_max: usize,
) -> Result<DecodedSet, MessageSetError> {
    let value = wrapper
        .value
        .as_ref()
        .ok_or(MessageSetError::EmptyWrapper)?;
    let inflated = compression::decompress(value, codec, bytes_max)?;
    let decompressed_bytes = inflated.len();
    let mut rest = Bytes::from(inflated);
    let mut inner = Vec::new();
    while !rest.is_empty() {
        let message = next_message(&mut rest)?;
        if codec_of(message.attributes)? != Compression::None {
            return Err(MessageSetError::Nested);
        }
        if message.magic != wrapper.magic {
            return Err(MessageSetError::MagicMismatch {
                inner: message.magic as i8,
                outer: wrapper.magic as i8,
            });
        }
        inner.push(message);
    }
    let Some(last) = inner.last() else {
        return Err(MessageSetError::EmptyWrapper);
    };
    // Magic 1: the wrapper holds the last inner message's absolute offset (KIP-31).
    let base = match wrapper.magic {
        Magic::V0 => 0,
        Magic::V1 => wrapper.offset.wrapping_sub(last.offset),
    };
    let log_append_time = wrapper.log_append_time();
    let messages = inner
        .into_iter()
        .map(|m| {
            let mut message = m.into_message(log_append_time);
            message.offset = base.wrapping_add(message.offset);
            if log_append_time {
                message.timestamp = wrapper.timestamp;
            }
            message
        })
        .collect();
    Ok(DecodedSet {
        messages,
        compression: codec,
        decompressed_bytes,
    })
}

/// One message as it is on the wire, before wrappers are opened.
struct RawMessage {
    offset: i64,
    magic: Magic,
    attributes: i8,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

impl RawMessage {
    fn log_append_time(&self) -> bool {
        self.magic == Magic::V1 && self.attributes & LOG_APPEND_TIME_BIT != 0
    }

    fn into_message(self, log_append_time: bool) -> LegacyMessage {
        LegacyMessage {
            offset: self.offset,
            timestamp: self.timestamp,
            log_append_time,
            key: self.key,
            value: self.value,
        }
    }
}

fn codec_of(attributes: i8) -> Result<Compression, MessageSetError> {
    match attributes & CODEC_MASK {
        0 => Ok(Compression::None),
        1 => Ok(Compression::Gzip),
        2 => Ok(Compression::Snappy),
        3 => Ok(Compression::Lz4),
        4 => Err(MessageSetError::ZstdInLegacy),
        other => Err(MessageSetError::Codec(other)),
    }
}

/// Takes the next `offset, message_size, message` off `set`, checked.
fn next_message(set: &mut Bytes) -> Result<RawMessage, MessageSetError> {
    if set.len() < LOG_OVERHEAD {
        return Err(MessageSetError::Truncated("offset and message size"));
    }
    let offset = set.get_i64();
    let size = set.get_i32();
    let len = usize::try_from(size)
        .ok()
        .filter(|len| *len >= MESSAGE_BYTES_MIN_V0)
        .ok_or(MessageSetError::BadSize { size })?;
    if len > set.len() {
        return Err(MessageSetError::Truncated("message"));
    }
    let mut message = set.split_to(len);
    let stored = message.get_u32();
    let computed = crc32fast::hash(&message);
    if stored != computed {
        return Err(MessageSetError::Crc { stored, computed });
    }
    let magic = Magic::of(message.get_i8())?;
    if len < magic.message_bytes_min() {
        return Err(MessageSetError::BadSize { size });
    }
    let attributes = message.get_i8();
    let timestamp = match magic {
        Magic::V0 => NO_TIMESTAMP,
        Magic::V1 => message.get_i64(),
    };
    let key = bytes_field(&mut message)?;
    let value = bytes_field(&mut message)?;
    if !message.is_empty() {
        return Err(MessageSetError::TrailingBytes { len: message.len() });
    }
    Ok(RawMessage {
        offset,
        magic,
        attributes,
        timestamp,
        key,
        value,
    })
}

/// A nullable `i32 length, bytes` field.
fn bytes_field(message: &mut Bytes) -> Result<Option<Bytes>, MessageSetError> {
    if message.len() < 4 {
        return Err(MessageSetError::Truncated("key or value length"));
    }
    let len = message.get_i32();
    if len == -1 {
        return Ok(None);
    }
    let n = usize::try_from(len).map_err(|_| MessageSetError::BadLength { len })?;
    if n > message.len() {
        return Err(MessageSetError::Truncated("key or value"));
    }
    Ok(Some(message.split_to(n)))
}

/// Writes `messages` as a legacy set of `magic`: each one as it is when `compression` is none,
/// otherwise all of them inside one wrapper of that codec (inner offsets relative in magic 1),
/// whose offset is the last message's and whose timestamp is the largest.
pub fn encode_message_set(
    magic: Magic,
    messages: &[LegacyMessage],
    compression: Compression,
) -> Result<Bytes, MessageSetError> {
    let mut out = BytesMut::new();
    if compression == Compression::None {
        for message in messages {
            put_message(&mut out, magic, message, message.offset)?;
        }
        return Ok(out.freeze());
    }
    if compression == Compression::Zstd {
        return Err(MessageSetError::ZstdInLegacy);
    }
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return Err(MessageSetError::Empty);
    };
    let mut inner = BytesMut::new();
    for message in messages {
        let offset = match magic {
            Magic::V0 => message.offset,
            Magic::V1 => message.offset.wrapping_sub(first.offset),
        };
        put_message(&mut inner, magic, message, offset)?;
    }
    let wrapper = LegacyMessage {
        offset: last.offset,
        timestamp: messages.iter().map(|m| m.timestamp).max().unwrap_or(-1),
        log_append_time: first.log_append_time,
        key: None,
        value: Some(compression::compress(&inner, compression)?.into()),
    };
    put_wrapper(&mut out, magic, &wrapper, compression as i8)?;
    Ok(out.freeze())
}

/// Appends one uncompressed message at `offset`.
fn put_message(
    out: &mut BytesMut,
    magic: Magic,
    message: &LegacyMessage,
    offset: i64,
) -> Result<(), MessageSetError> {
    let positioned = LegacyMessage {
        offset,
        ..message.clone()
    };
    put_wrapper(out, magic, &positioned, 0)
}

/// Appends one message whose attributes carry `codec`.
fn put_wrapper(
    out: &mut BytesMut,
    magic: Magic,
    message: &LegacyMessage,
    codec: i8,
) -> Result<(), MessageSetError> {
    let start = out.len();
    out.put_i64(message.offset);
    out.put_i32(0); // message_size, set below
    out.put_u32(0); // crc, set below
    out.put_i8(magic as i8);
    let mut attributes = codec;
    if magic == Magic::V1 && message.log_append_time {
        attributes |= LOG_APPEND_TIME_BIT;
    }
    out.put_i8(attributes);
    if magic == Magic::V1 {
        out.put_i64(message.timestamp);
    }
    for field in [&message.key, &message.value] {
        match field {
            None => out.put_i32(-1),
            Some(bytes) => {
                out.put_i32(i32_len(bytes.len())?);
                out.extend_from_slice(bytes);
            }
        }
    }
    let size = i32_len(out.len() - start - LOG_OVERHEAD)?;
    out[start + 8..start + LOG_OVERHEAD].copy_from_slice(&size.to_be_bytes());
    let crc = crc32fast::hash(&out[start + LOG_OVERHEAD + 4..]);
    out[start + LOG_OVERHEAD..start + LOG_OVERHEAD + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

fn i32_len(len: usize) -> Result<i32, MessageSetError> {
    i32::try_from(len).map_err(|_| MessageSetError::Encode(format!("{len} bytes in one field")))
}
