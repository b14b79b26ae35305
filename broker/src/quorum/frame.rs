//! The framing of every file of the quorum: one protobuf message of raft-rs's (`eraftpb`) per
//! frame, checked on its own so a reader can stop at the first frame that is not whole.
//!
//! ```text
//! offset  bytes  field
//! 0       4      length of the payload, u32 little-endian (at most the file's bound)
//! 4       4      CRC32C of the payload, u32 little-endian
//! 8       len    payload: the message, protobuf-encoded
//! ```

use protobuf::Message;

/// Bytes before the payload.
pub const HEADER_BYTES: usize = 8;

/// Why [`encode`] refused a message.
#[derive(Debug)]
pub enum EncodeError {
    TooLarge { bytes: usize },
    Protobuf(protobuf::ProtobufError),
}

/// Why [`decode`] found no whole frame at the start of its input.
#[derive(Debug, PartialEq, Eq)]
pub enum Torn {
    /// Fewer bytes than the header, or than the header declares.
    Short,
    /// A declared length over the bound: a torn or corrupt header.
    TooLarge(usize),
    /// The payload does not match its checksum.
    Crc,
    /// The payload matches its checksum but is not a message of the expected type.
    Decode,
}

impl Torn {
    pub fn reason(&self) -> &'static str {
        match self {
            Torn::Short => "a frame cut short",
            Torn::TooLarge(_) => "a frame length over the bound",
            Torn::Crc => "a frame whose CRC32C does not match",
            Torn::Decode => "a frame that does not decode",
        }
    }
}

/// Appends `message`, framed, to `out`; refuses a payload over `bytes_max`.
pub fn encode<M: Message>(
    message: &M,
    bytes_max: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let payload = message.write_to_bytes().map_err(EncodeError::Protobuf)?;
    if payload.len() > bytes_max {
        return Err(EncodeError::TooLarge {
            bytes: payload.len(),
        });
    }
    let len = u32::try_from(payload.len()).map_err(|_| EncodeError::TooLarge {
        bytes: payload.len(),
    })?;
    out.reserve(HEADER_BYTES + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// The message framed at the start of `bytes`, and the frame's length.
pub fn decode<M: Message>(bytes: &[u8], bytes_max: usize) -> Result<(M, usize), Torn> {
    let header: [u8; HEADER_BYTES] = bytes
        .get(..HEADER_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or(Torn::Short)?;
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if len > bytes_max {
        return Err(Torn::TooLarge(len));
    }
    let payload = bytes
        .get(HEADER_BYTES..HEADER_BYTES + len)
        .ok_or(Torn::Short)?;
    if crc32c::crc32c(payload) != u32::from_le_bytes([c0, c1, c2, c3]) {
        return Err(Torn::Crc);
    }
    let message = M::parse_from_bytes(payload).map_err(|_| Torn::Decode)?;
    Ok((message, HEADER_BYTES + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::Entry;

    fn entry(index: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term: 3,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_frame_round_trips_with_its_exact_header() {
        let message = entry(7, b"abc");
        let mut out = Vec::new();
        encode(&message, 1024, &mut out).expect("encode");
        let payload = message.write_to_bytes().expect("protobuf");
        assert_eq!(out[..4], (payload.len() as u32).to_le_bytes());
        assert_eq!(out[4..8], crc32c::crc32c(&payload).to_le_bytes());
        assert_eq!(out[8..], payload[..]);
        let (decoded, len) = decode::<Entry>(&out, 1024).expect("decode");
        assert_eq!((decoded, len), (message, out.len()));
    }

    #[test]
    fn every_truncated_prefix_is_short() {
        let mut out = Vec::new();
        encode(&entry(1, b"payload"), 1024, &mut out).expect("encode");
        for cut in 0..out.len() {
            assert_eq!(
                decode::<Entry>(&out[..cut], 1024).err(),
                Some(Torn::Short),
                "{cut}"
            );
        }
    }

    #[test]
    fn every_flipped_payload_byte_fails_the_checksum() {
        let mut out = Vec::new();
        encode(&entry(1, b"payload"), 1024, &mut out).expect("encode");
        for i in HEADER_BYTES..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x40;
            assert_eq!(decode::<Entry>(&bad, 1024).err(), Some(Torn::Crc), "{i}");
        }
    }

    #[test]
    fn a_message_over_the_bound_is_refused_both_ways() {
        let mut out = Vec::new();
        let big = entry(1, &[0; 100]);
        assert!(matches!(
            encode(&big, 50, &mut out),
            Err(EncodeError::TooLarge { .. })
        ));
        encode(&big, 1024, &mut out).expect("encode");
        assert!(matches!(decode::<Entry>(&out, 50), Err(Torn::TooLarge(_))));
    }
}
