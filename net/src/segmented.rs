//! Responses that carry record batches without copying them.
//!
//! A Fetch response is mostly record batches the shard already holds as `Bytes` (tail-cache
//! entries, read windows). Encoding it into one buffer would copy every fetched byte once more.
//! [`SegmentedBuf`] is a `ByteBufMut` for the codec that is told beforehand which record data the
//! response holds ([`Shared`]): when the codec writes exactly one of them (`put_slice` over the
//! same memory), the buffer keeps reference-counted handles as separate pieces instead of
//! copying. The result is the response as a list of pieces, written to the socket in order.
//!
//! A partition's records are often several `Bytes` (one per cached batch), while the codec takes
//! one. For those the response holds a *stand-in* ([`Shared::joined`]): a slice of the right
//! length of a static region nobody reads, whose address identifies it. When the codec writes the
//! stand-in, the buffer writes the real pieces in its place. A stand-in the buffer was not told
//! about would put zeros on the wire, so the buffer refuses it: [`SegmentedBuf::into_pieces`]
//! returns `None` and the caller fails the response instead of sending it.
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

/// The longest stand-in, and how many distinct ones a response may hold. Longer or more record
/// data is joined into one buffer instead (one copy).
const STAND_IN_BYTES_MAX: usize = 64 << 20;
const STAND_INS_MAX: usize = 64 << 10;

/// Address space only: zero-initialised static memory is never touched, so it takes no RAM.
static STAND_IN_REGION: [u8; STAND_IN_BYTES_MAX + STAND_INS_MAX] =
    [0; STAND_IN_BYTES_MAX + STAND_INS_MAX];

/// Whether `src` is a stand-in (see [`Shared::joined`]) rather than record data: what an encoder
/// that copies record data must refuse.
pub fn is_stand_in(src: &[u8]) -> bool {
    STAND_IN_REGION.as_ptr_range().contains(&src.as_ptr())
}

/// Record data a response holds, and the pieces that go to the socket for it.
#[derive(Clone, Debug)]
pub struct Shared {
    /// What the response holds and the codec writes with one `put_slice`.
    encoded: Bytes,
    /// What is written in its place, in order; the same length in all.
    pieces: Vec<Bytes>,
}

impl Shared {
    /// Record data that is one `Bytes`: the response holds it as it is.
    pub fn whole(bytes: Bytes) -> Shared {
        Shared {
            encoded: bytes.clone(),
            pieces: vec![bytes],
        }
    }

    /// Record data in several pieces: returns what the response should hold in their place (a
    /// stand-in, the `slot`-th of this response, or the pieces joined when no stand-in fits)
    /// and the entry that tells the buffer about it. Slots must be distinct within a response.
    pub fn joined(pieces: Vec<Bytes>, slot: usize) -> (Bytes, Shared) {
        if let [only] = pieces.as_slice() {
            return (only.clone(), Shared::whole(only.clone()));
        }
        let len: usize = pieces.iter().map(Bytes::len).sum();
        if len == 0 || len > STAND_IN_BYTES_MAX || slot >= STAND_INS_MAX {
            let mut joined = BytesMut::with_capacity(len);
            pieces.iter().for_each(|p| joined.extend_from_slice(p));
            let joined = joined.freeze();
            return (joined.clone(), Shared::whole(joined));
        }
        let stand_in = Bytes::from_static(&STAND_IN_REGION[slot..slot + len]);
        let shared = Shared {
            encoded: stand_in.clone(),
            pieces,
        };
        (stand_in, shared)
    }

    fn len(&self) -> usize {
        self.encoded.len()
    }
}

/// A response being encoded: finished pieces, then the piece being built.
pub struct SegmentedBuf<'a> {
    pieces: Vec<Bytes>,
    pieces_len: usize,
    current: BytesMut,
    shared: &'a [Shared],
    /// The codec wrote a stand-in this buffer was not told about.
    unknown_stand_in: bool,
}

impl<'a> SegmentedBuf<'a> {
    /// A buffer that writes any of `shared` by reference when the codec writes it whole.
    pub fn new(shared: &'a [Shared], inline_capacity: usize) -> SegmentedBuf<'a> {
        SegmentedBuf {
            pieces: Vec::new(),
            pieces_len: 0,
            current: BytesMut::with_capacity(inline_capacity),
            shared,
            unknown_stand_in: false,
        }
    }

    /// The bytes of [`Shared`] entries a response holds: what the rest of it takes.
    pub fn shared_len(shared: &[Shared]) -> usize {
        shared.iter().map(Shared::len).sum()
    }

    /// The encoded response, in order; `None` when the codec wrote a stand-in that was not
    /// registered (the response would carry zeros instead of records).
    pub fn into_pieces(mut self) -> Option<Vec<Bytes>> {
        if self.unknown_stand_in {
            return None;
        }
        self.finish_current();
        Some(self.pieces)
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

    fn registered(&self, src: &[u8]) -> Option<&'a Shared> {
        let shared = self.shared;
        shared
            .iter()
            .find(|s| s.encoded.as_ptr() == src.as_ptr() && s.encoded.len() == src.len())
    }

    /// Writes one piece of record data: by reference when it is large enough, else copied.
    fn put_piece(&mut self, piece: &Bytes) {
        if piece.len() < SHARE_BYTES_MIN {
            self.current.extend_from_slice(piece);
            return;
        }
        self.finish_current();
        self.pieces_len += piece.len();
        self.pieces.push(piece.clone());
    }
}

// SAFETY: every method forwards to the `BytesMut` being built, which upholds `BufMut`'s contract;
// `put_slice` either forwards too or appends finished pieces, which leaves `current` valid.
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
        if let Some(shared) = self.registered(src) {
            shared.pieces.iter().for_each(|piece| self.put_piece(piece));
            return;
        }
        if is_stand_in(src) && !src.is_empty() {
            self.unknown_stand_in = true;
        }
        self.current.extend_from_slice(src);
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

    fn joined(pieces: &[Bytes]) -> Vec<u8> {
        pieces.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn a_registered_bytes_becomes_its_own_piece_and_the_rest_is_copied() {
        let big = Bytes::from(vec![7u8; SHARE_BYTES_MIN]);
        let unregistered = vec![9u8; SHARE_BYTES_MIN];
        let shared = [Shared::whole(big.clone())];
        let mut buf = SegmentedBuf::new(&shared, 64);
        buf.put_i32(1);
        buf.put_slice(&big);
        buf.put_slice(&unregistered);
        buf.put_u8(2);
        assert_eq!(buf.len(), 4 + big.len() + unregistered.len() + 1);
        let pieces = buf.into_pieces().expect("pieces");
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[1].as_ptr(), big.as_ptr(), "shared, not copied");
        let mut expected = 1i32.to_be_bytes().to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(&unregistered);
        expected.push(2);
        assert_eq!(joined(&pieces), expected);
    }

    #[test]
    fn small_registered_bytes_are_copied() {
        let small = Bytes::from_static(b"tiny");
        let shared = [Shared::whole(small.clone())];
        let mut buf = SegmentedBuf::new(&shared, 16);
        buf.put_slice(&small);
        assert_eq!(buf.into_pieces().expect("pieces").len(), 1);
    }

    #[test]
    fn a_stand_in_is_replaced_by_its_pieces_large_ones_by_reference() {
        let big = Bytes::from(vec![1u8; SHARE_BYTES_MIN]);
        let small = Bytes::from_static(b"header");
        let other = Bytes::from(vec![2u8; SHARE_BYTES_MIN + 3]);
        let (first, first_shared) = Shared::joined(vec![small.clone(), big.clone()], 0);
        let (second, second_shared) = Shared::joined(vec![other.clone(), small.clone()], 1);
        assert_eq!(first.len(), small.len() + big.len());
        assert_ne!(first.as_ptr(), big.as_ptr());
        let shared = [first_shared, second_shared];
        let mut buf = SegmentedBuf::new(&shared, 64);
        buf.put_u8(9);
        buf.put_slice(&first);
        buf.put_slice(&second);
        let pieces = buf.into_pieces().expect("pieces");
        let mut expected = vec![9u8];
        for piece in [&small, &big, &other, &small] {
            expected.extend_from_slice(piece);
        }
        assert_eq!(joined(&pieces), expected);
        assert!(pieces.iter().any(|p| p.as_ptr() == big.as_ptr()));
        assert!(pieces.iter().any(|p| p.as_ptr() == other.as_ptr()));
    }

    #[test]
    fn one_piece_is_held_as_it_is_and_an_unknown_stand_in_fails_the_response() {
        let only = Bytes::from(vec![3u8; 40]);
        let (held, _) = Shared::joined(vec![only.clone()], 0);
        assert_eq!(held.as_ptr(), only.as_ptr());
        let (stand_in, _) = Shared::joined(vec![only.clone(), only.clone()], 0);
        let mut buf = SegmentedBuf::new(&[], 64);
        buf.put_slice(&stand_in);
        assert!(
            buf.into_pieces().is_none(),
            "zeros must never reach the wire"
        );
    }

    #[test]
    fn too_many_or_too_long_pieces_are_joined() {
        let piece = Bytes::from_static(b"ab");
        let (held, shared) = Shared::joined(vec![piece.clone(), piece.clone()], STAND_INS_MAX);
        assert_eq!(&held[..], b"abab");
        let mut buf = SegmentedBuf::new(std::slice::from_ref(&shared), 8);
        buf.put_slice(&held);
        assert_eq!(joined(&buf.into_pieces().expect("pieces")), b"abab");
    }
}
