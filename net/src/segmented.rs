//! Responses that carry record batches without copying them.
//!
//! A Fetch response is mostly record batches the shard already holds as `Bytes` (tail-cache
//! entries, read windows). Encoding it into one buffer would copy every fetched byte once more.
//! [`SegmentedBuf`] is a `ByteBufMut` for the codec that is told beforehand which `Bytes` the
//! response holds: when the codec writes exactly one of them (`put_slice` over the same memory),
//! the buffer keeps a reference-counted handle as a separate piece instead of copying it. The
//! result is the response as a list of pieces, written to the socket in order.
//!
//! The codec back-patches only small fixed-size fields ("gaps", e.g. lengths in record-batch
//! encoding), never inside a shared piece; such a patch must land in the piece being built, and
//! an assertion says so.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Pieces smaller than this are copied: a separate write costs more than the copy.
const SHARE_BYTES_MIN: usize = 16 * 1024;

/// A response being encoded: finished pieces, then the piece being built.
pub struct SegmentedBuf<'a> {
    pieces: Vec<Bytes>,
    pieces_len: usize,
    current: BytesMut,
    shared: &'a [Bytes],
}

impl<'a> SegmentedBuf<'a> {
    /// A buffer that takes any of `shared` by reference when the codec writes it whole.
    pub fn new(shared: &'a [Bytes], inline_capacity: usize) -> SegmentedBuf<'a> {
        SegmentedBuf {
            pieces: Vec::new(),
            pieces_len: 0,
            current: BytesMut::with_capacity(inline_capacity),
            shared,
        }
    }

    /// The encoded response, in order.
    pub fn into_pieces(mut self) -> Vec<Bytes> {
        self.finish_current();
        self.pieces
    }

    /// Bytes encoded so far.
    pub fn len(&self) -> usize {
        self.pieces_len + self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn finish_current(&mut self) {
        if !self.current.is_empty() {
            let piece = self.current.split().freeze();
            self.pieces_len += piece.len();
            self.pieces.push(piece);
        }
    }

    fn shared_piece(&self, src: &[u8]) -> Option<Bytes> {
        if src.len() < SHARE_BYTES_MIN {
            return None;
        }
        self.shared
            .iter()
            .find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
            .cloned()
    }
}

// SAFETY: every method forwards to the `BytesMut` being built, which upholds `BufMut`'s contract;
// `put_slice` either forwards too or appends a finished piece, which leaves `current` valid.
unsafe impl BufMut for SegmentedBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut()`, which is `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.shared_piece(src) {
            Some(piece) => {
                self.finish_current();
                self.pieces_len += piece.len();
                self.pieces.push(piece);
            }
            None => self.current.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for SegmentedBuf<'_> {
    fn offset(&self) -> usize {
        self.len()
    }

    fn seek(&mut self, offset: usize) {
        assert!(offset >= self.pieces_len, "seek back into a finished piece");
        self.current.resize(offset - self.pieces_len, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        assert!(
            r.start >= self.pieces_len,
            "a back-patch must land in the piece being built"
        );
        let base = self.pieces_len;
        &mut self.current[r.start - base..r.end - base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_bytes_becomes_its_own_piece_and_the_rest_is_copied() {
        let big = Bytes::from(vec![7u8; SHARE_BYTES_MIN]);
        let unregistered = vec![9u8; SHARE_BYTES_MIN];
        let shared = [big.clone()];
        let mut buf = SegmentedBuf::new(&shared, 64);
        buf.put_i32(1);
        buf.put_slice(&big);
        buf.put_slice(&unregistered);
        buf.put_u8(2);
        assert_eq!(buf.len(), 4 + big.len() + unregistered.len() + 1);
        let pieces = buf.into_pieces();
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[1].as_ptr(), big.as_ptr(), "shared, not copied");
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        let mut expected = 1i32.to_be_bytes().to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(&unregistered);
        expected.push(2);
        assert_eq!(joined, expected);
    }

    #[test]
    fn small_registered_bytes_are_copied() {
        let small = Bytes::from_static(b"tiny");
        let shared = [small.clone()];
        let mut buf = SegmentedBuf::new(&shared, 16);
        buf.put_slice(&small);
        assert_eq!(buf.into_pieces().len(), 1);
    }
}
