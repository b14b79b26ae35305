//! The header every message value starts with, so that consumers can measure end-to-end
//! latency and check sequence numbers without any side channel.
//!
//! Wire format (big-endian), [`HEADER_BYTES`] bytes, then the payload filler:
//! `magic: u32` (`ODRB`), `run_id: u32`, `send_ns: u64` (nanoseconds since the run's clock
//! origin, the *intended* send time at a fixed rate), `producer: u32`, `seq: u64` (per producer
//! and partition, from 0), `reserved: u32`.

use bytes::{Buf, BufMut};

pub const HEADER_BYTES: usize = 32;
const MAGIC: u32 = u32::from_be_bytes(*b"ODRB");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    pub run_id: u32,
    pub send_ns: u64,
    pub producer: u32,
    pub seq: u64,
}

impl MessageHeader {
    /// Writes the header over the first [`HEADER_BYTES`] of `value`.
    pub fn write(&self, value: &mut [u8]) {
        assert!(
            value.len() >= HEADER_BYTES,
            "message value shorter than its header"
        );
        let mut out = &mut value[..HEADER_BYTES];
        out.put_u32(MAGIC);
        out.put_u32(self.run_id);
        out.put_u64(self.send_ns);
        out.put_u32(self.producer);
        out.put_u64(self.seq);
        out.put_u32(0);
    }

    /// Reads a header written by this run; `None` for foreign or short values.
    pub fn read(value: &[u8], run_id: u32) -> Option<MessageHeader> {
        if value.len() < HEADER_BYTES {
            return None;
        }
        let mut input = &value[..HEADER_BYTES];
        if input.get_u32() != MAGIC || input.get_u32() != run_id {
            return None;
        }
        Some(MessageHeader {
            run_id,
            send_ns: input.get_u64(),
            producer: input.get_u32(),
            seq: input.get_u64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_values() {
        let header = MessageHeader {
            run_id: 7,
            send_ns: 123_456_789,
            producer: 3,
            seq: 42,
        };
        let mut value = vec![b'x'; 40];
        header.write(&mut value);
        assert_eq!(MessageHeader::read(&value, 7), Some(header));
        assert_eq!(MessageHeader::read(&value, 8), None, "another run");
        assert_eq!(MessageHeader::read(&value[..31], 7), None, "short");
        assert_eq!(&value[32..], b"xxxxxxxx");
    }
}
