//! Bounded decompression of record data, for the legacy message sets (magic 0/1) and for the
//! v2 batches that are down-converted to them.
//!
//! The decompressors of `kafka-protocol` inflate whatever they are given (its raw-snappy path
//! even allocates the length a stream declares before reading it), so a small hostile wrapper
//! could make a shard allocate gigabytes. Every function here takes `bytes_max` and stops with
//! [`MessageSetError::TooLarge`] as soon as the output would pass it; output grows as it is
//! produced, never by a declared size. Compression (of the batches this broker builds) is left
//! to `kafka-protocol`'s compressors, which the v2 encoder uses anyway.
//!
//! Formats, as Kafka and its clients write them:
//! - gzip: RFC 1952, possibly several members (Java's `GZIPInputStream` reads them all).
//! - snappy: xerial's framing (`\x82SNAPPY\0`, two i32 versions, then blocks of `i32 length,
//!   raw snappy block`), which Kafka writes for every magic; or one raw snappy block, which
//!   older Go clients (sarama, kafka-go) send and Kafka accepts (xerial falls back to it).
//! - lz4: the LZ4 frame format. Kafka before 0.10 (KAFKA-3160) computed the frame descriptor's
//!   header checksum over the wrong bytes, and magic-0 writers (old Java clients, librdkafka)
//!   still do so; Kafka skips that check for magic 0. Here the checksum is recomputed before
//!   the frame is decoded, for every magic, as librdkafka does: the message CRC already covers
//!   these bytes, so nothing is lost by not trusting the descriptor's own.
//! - zstd: only inside v2 batches (Kafka refuses it in legacy messages).

use std::io::Read;

use kafka_protocol::records::Compression;

use super::MessageSetError;

/// The frame magic of LZ4 (little-endian `0x184D2204`).
const LZ4_FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];

/// xerial's stream header starts with these 8 bytes, then two i32 versions.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;

/// Inflates `input`, compressed with `compression`, into at most `bytes_max` bytes.
pub(crate) fn decompress(
    input: &[u8],
    compression: Compression,
    bytes_max: usize,
) -> Result<Vec<u8>, MessageSetError> {
    match compression {
        Compression::None => {
            if input.len() > bytes_max {
                return Err(MessageSetError::TooLarge { bytes_max });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(input), bytes_max),
        Compression::Snappy => snappy(input, bytes_max),
        Compression::Lz4 => {
            let frame = lz4_with_header_checksum(input);
            let mut decoder = lz4::Decoder::new(frame.as_slice()).map_err(decompress_error)?;
            let out = read_bounded(&mut decoder, bytes_max)?;
            // The decoder stops quietly where its input ends; only this says the frame ended.
            decoder.finish().1.map_err(decompress_error)?;
            Ok(out)
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(input).map_err(decompress_error)?;
            read_bounded(decoder, bytes_max)
        }
    }
}

/// Reads `reader` to its end, refusing more than `bytes_max` bytes.
fn read_bounded(reader: impl Read, bytes_max: usize) -> Result<Vec<u8>, MessageSetError> {
    let limit = u64::try_from(bytes_max)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut out = Vec::new();
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(decompress_error)?;
    if out.len() > bytes_max {
        return Err(MessageSetError::TooLarge { bytes_max });
    }
    Ok(out)
}

fn decompress_error(error: impl std::fmt::Display) -> MessageSetError {
    MessageSetError::Decompress(crate::error::one_line(error))
}

/// xerial-framed or raw snappy. Each block's declared length is checked against what is left
/// of `bytes_max` before its output is allocated.
fn snappy(input: &[u8], bytes_max: usize) -> Result<Vec<u8>, MessageSetError> {
    let mut out = Vec::new();
    if input.len() < XERIAL_HEADER_BYTES || !input.starts_with(XERIAL_MAGIC) {
        snappy_block(input, &mut out, bytes_max)?;
        return Ok(out);
    }
    let mut rest = &input[XERIAL_HEADER_BYTES..];
    while !rest.is_empty() {
        let Some((len, after)) = rest.split_first_chunk::<4>() else {
            return Err(MessageSetError::Decompress(
                "snappy block length cut short".into(),
            ));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > after.len() {
            return Err(MessageSetError::Decompress("snappy block cut short".into()));
        }
        let (block, after) = after.split_at(len);
        snappy_block(block, &mut out, bytes_max)?;
        rest = after;
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, which may hold at most `bytes_max` bytes.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, bytes_max: usize) -> Result<(), MessageSetError> {
    let len = snap::raw::decompress_len(block).map_err(decompress_error)?;
    let start = out.len();
    if len > bytes_max - start {
        return Err(MessageSetError::TooLarge { bytes_max });
    }
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(decompress_error)?;
    out.truncate(start + written);
    Ok(())
}

/// `frame` with its descriptor's header checksum set to the right value (see the module docs).
/// Anything that does not look like an LZ4 frame is returned unchanged for the decoder to refuse.
fn lz4_with_header_checksum(frame: &[u8]) -> Vec<u8> {
    let mut fixed = frame.to_vec();
    let Some(&flags) = frame.get(4) else {
        return fixed;
    };
    if !frame.starts_with(&LZ4_FRAME_MAGIC) {
        return fixed;
    }
    let content_size_bytes = if flags & 0x08 != 0 { 8 } else { 0 };
    let dictionary_id_bytes = if flags & 0x01 != 0 { 4 } else { 0 };
    // FLG and BD, then the optional fields: at most 14 bytes.
    let descriptor_end = 4 + 2 + content_size_bytes + dictionary_id_bytes;
    if let Some(checksum) = fixed.get_mut(descriptor_end) {
        *checksum = (xxh32_short(&frame[4..descriptor_end], 0) >> 8) as u8;
    }
    fixed
}

const XXH_PRIME32_1: u32 = 0x9E37_79B1;
const XXH_PRIME32_2: u32 = 0x85EB_CA77;
const XXH_PRIME32_3: u32 = 0xC2B2_AE3D;
const XXH_PRIME32_4: u32 = 0x27D4_EB2F;
const XXH_PRIME32_5: u32 = 0x1656_67B1;

/// XXH32 (the hash the LZ4 frame format checksums with) of fewer than 16 bytes: the only
/// inputs it gets here are frame descriptors (at most 14 bytes), so the four-lane loop that
/// longer inputs need is left out, and an assertion keeps it that way.
pub(crate) fn xxh32_short(input: &[u8], seed: u32) -> u32 {
    assert!(input.len() < 16, "xxh32_short got {} bytes", input.len());
    let mut hash = seed
        .wrapping_add(XXH_PRIME32_5)
        .wrapping_add(input.len() as u32);
    let mut words = input.chunks_exact(4);
    for word in &mut words {
        let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        hash = hash.wrapping_add(word.wrapping_mul(XXH_PRIME32_3));
        hash = hash.rotate_left(17).wrapping_mul(XXH_PRIME32_4);
    }
    for &byte in words.remainder() {
        hash = hash.wrapping_add(u32::from(byte).wrapping_mul(XXH_PRIME32_5));
        hash = hash.rotate_left(11).wrapping_mul(XXH_PRIME32_1);
    }
    hash ^= hash >> 15;
    hash = hash.wrapping_mul(XXH_PRIME32_2);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(XXH_PRIME32_3);
    hash ^ (hash >> 16)
}

/// `data` compressed with `compression` by `kafka-protocol`'s compressors (the ones its v2
/// encoder uses): xerial-framed snappy, an LZ4 frame with a correct header checksum.
pub(crate) fn compress(data: &[u8], compression: Compression) -> Result<Vec<u8>, MessageSetError> {
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
    let mut out = bytes::BytesMut::new();
    let write = |buf: &mut bytes::BytesMut| {
        buf.extend_from_slice(data);
        Ok(())
    };
    let done = match compression {
        Compression::None => {
            out.extend_from_slice(data);
            Ok(())
        }
        Compression::Gzip => Gzip::compress(&mut out, write),
        Compression::Snappy => Snappy::compress(&mut out, write),
        Compression::Lz4 => Lz4::compress(&mut out, write),
        Compression::Zstd => Zstd::compress(&mut out, write),
    };
    done.map_err(|e| MessageSetError::Encode(crate::error::one_line(e)))?;
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn xxh32_matches_known_values() {
        // Reference values of XXH32 with seed 0.
        assert_eq!(xxh32_short(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32_short(b"a", 0), 0x550D_7456);
        assert_eq!(xxh32_short(b"abc", 0), 0x32D1_53FF);
    }

    #[test]
    fn lz4_frames_from_the_compressor_already_carry_the_checksum_we_compute() {
        let frame = compress(b"hello lz4 hello lz4", Compression::Lz4).expect("compress");
        assert_eq!(lz4_with_header_checksum(&frame), frame);
    }

    #[test]
    fn every_codec_round_trips_and_a_bound_is_kept() {
        let data = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".repeat(50);
        for codec in CODECS {
            let packed = compress(&data, codec).expect("compress");
            assert_eq!(
                decompress(&packed, codec, data.len()).expect("inflate"),
                data,
                "{codec:?}"
            );
            assert_eq!(
                decompress(&packed, codec, data.len() - 1),
                Err(MessageSetError::TooLarge {
                    bytes_max: data.len() - 1
                }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn raw_snappy_is_read_and_a_lying_length_allocates_nothing() {
        let data = b"raw snappy as sarama sends it".repeat(10);
        let raw = snap::raw::Encoder::new()
            .compress_vec(&data)
            .expect("snappy");
        assert_eq!(
            decompress(&raw, Compression::Snappy, 1 << 20).expect("raw"),
            data
        );
        // A varint that declares ~4 GiB of output.
        let lying = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert_eq!(
            decompress(&lying, Compression::Snappy, 1 << 20),
            Err(MessageSetError::TooLarge { bytes_max: 1 << 20 })
        );
    }

    #[test]
    fn lz4_with_a_wrong_header_checksum_is_read() {
        let data = b"KAFKA-3160".repeat(20);
        let mut frame = compress(&data, Compression::Lz4).expect("compress");
        // No content size, no dictionary id: the checksum follows FLG and BD.
        assert_eq!(frame[4] & 0x09, 0, "flags {:#x}", frame[4]);
        frame[6] ^= 0x5a;
        assert_eq!(
            decompress(&frame, Compression::Lz4, 1 << 20).expect("inflate"),
            data
        );
    }

    #[test]
    fn every_truncated_stream_is_an_error() {
        let data = b"truncate me, truncate me, truncate me".repeat(40);
        for codec in CODECS.into_iter().skip(1) {
            let packed = compress(&data, codec).expect("compress");
            for cut in 1..packed.len() {
                let result = decompress(&packed[..cut], codec, 1 << 20);
                if codec == Compression::Snappy && cut == XERIAL_HEADER_BYTES {
                    // A xerial header and no blocks yet is a whole, empty stream.
                    assert_eq!(result, Ok(Vec::new()));
                    continue;
                }
                assert!(result.is_err(), "{codec:?} cut {cut} of {}", packed.len());
            }
        }
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        for codec in CODECS.into_iter().skip(1) {
            for garbage in [&b"\x01"[..], b"not compressed at all, really not"] {
                let result = decompress(garbage, codec, 1 << 20);
                assert!(result.is_err(), "{codec:?} {garbage:?}: {result:?}");
            }
            // Nothing may inflate to something (some decoders read it as an empty stream).
            let result = decompress(b"", codec, 1 << 20);
            assert!(
                result.as_ref().map_or(true, Vec::is_empty),
                "{codec:?}: {result:?}"
            );
        }
    }
}
