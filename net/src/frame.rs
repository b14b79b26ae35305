//! Length-prefixed frames.
//!
//! Wire format: `length: i32` (big-endian, the number of bytes that follow), then `length` bytes.
//! A negative length or one above the configured maximum is an error before any allocation, so a
//! peer cannot make the broker reserve memory it does not send.
//!
//! The broker reads through [`FrameBuffer`]: one buffer per connection, read in large windows, so
//! one `recv` usually brings the end of one frame and the start of the next (Kafka clients
//! pipeline) instead of two reads per frame, and buffer memory is zeroed once and reused rather
//! than allocated and zero-filled for every frame.

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt};

/// The least one read asks for: enough for many small requests or a good part of a large one.
const READ_WINDOW_MIN: usize = 64 * 1024;
/// The most one read asks for; a larger frame is read in several windows, so a peer that only
/// announces a large frame gets its memory zeroed as it sends, not all at once.
const READ_WINDOW_MAX: usize = 1 << 20;

/// Frames read from one stream through one reused buffer.
pub struct FrameBuffer<R> {
    reader: R,
    frame_bytes_max: usize,
    /// `buf[..filled]` is data read and not yet taken; the rest is zeroed room for reads.
    buf: BytesMut,
    filled: usize,
}

impl<R: AsyncRead + Unpin> FrameBuffer<R> {
    pub fn new(reader: R, frame_bytes_max: usize) -> FrameBuffer<R> {
        FrameBuffer {
            reader,
            frame_bytes_max,
            buf: BytesMut::new(),
            filled: 0,
        }
    }

    /// The next frame; `Ok(None)` when the peer closed the connection cleanly between frames.
    /// Cancel-safe: dropped while waiting, no data is lost and the next call goes on.
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, NetError> {
        if !self.fill(4).await? {
            if self.filled == 0 {
                return Ok(None);
            }
            return Err(NetError::TruncatedFrame {
                read: self.filled,
                expected: 4,
            });
        }
        let prefix = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let len = frame_length(prefix, self.frame_bytes_max)?;
        if !self.fill(4 + len).await? {
            return Err(NetError::TruncatedFrame {
                read: self.filled - 4,
                expected: len,
            });
        }
        self.buf.advance(4);
        self.filled -= 4 + len;
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Reads until at least `want` bytes are buffered; `false` when the stream ends first.
    async fn fill(&mut self, want: usize) -> Result<bool, NetError> {
        while self.filled < want {
            let window = (want - self.filled).clamp(READ_WINDOW_MIN, READ_WINDOW_MAX);
            let end = self.filled + window;
            if self.buf.len() < end {
                if self.buf.capacity() < end.max(want) {
                    // Room for the whole frame in one piece; only the data read so far moves.
                    self.buf.truncate(self.filled);
                    self.buf.reserve(end.max(want) - self.filled);
                }
                self.buf.resize(end, 0);
            }
            let room = &mut self.buf[self.filled..end];
            let n = self
                .reader
                .read(room)
                .await
                .map_err(|source| NetError::Io {
                    op: "read frame",
                    source,
                })?;
            if n == 0 {
                return Ok(false);
            }
            self.filled += n;
        }
        Ok(true)
    }
}

use crate::error::NetError;

/// Reads one frame. `Ok(None)` when the peer closed the connection cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    frame_bytes_max: usize,
) -> Result<Option<Bytes>, NetError> {
    let mut prefix = [0u8; 4];
    let got = read_full(reader, &mut prefix).await?;
    if got == 0 {
        return Ok(None);
    }
    if got < prefix.len() {
        return Err(NetError::TruncatedFrame {
            read: got,
            expected: prefix.len(),
        });
    }
    let len = frame_length(i32::from_be_bytes(prefix), frame_bytes_max)?;
    let mut payload = BytesMut::zeroed(len);
    let got = read_full(reader, &mut payload).await?;
    if got < len {
        return Err(NetError::TruncatedFrame {
            read: got,
            expected: len,
        });
    }
    Ok(Some(payload.freeze()))
}

/// Checks a frame's length prefix against the limit.
pub fn frame_length(len: i32, frame_bytes_max: usize) -> Result<usize, NetError> {
    let Ok(len_usize) = usize::try_from(len) else {
        return Err(NetError::NegativeFrameLength { len });
    };
    if len_usize > frame_bytes_max {
        return Err(NetError::FrameTooLarge {
            len,
            max_bytes: frame_bytes_max,
        });
    }
    Ok(len_usize)
}

/// Fills `buf` unless the stream ends first; returns the number of bytes read.
async fn read_full<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
) -> Result<usize, NetError> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader
            .read(&mut buf[filled..])
            .await
            .map_err(|source| NetError::Io {
                op: "read frame",
                source,
            })?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    fn read(bytes: &[u8], max: usize) -> Result<Option<Bytes>, NetError> {
        futures_lite::future::block_on(read_frame(&mut &bytes[..], max))
    }

    #[test]
    fn reads_a_whole_frame() {
        let got = read(&frame(b"hello"), 100).expect("frame");
        assert_eq!(got.as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn clean_eof_is_none() {
        assert!(read(&[], 100).expect("eof").is_none());
    }

    #[test]
    fn every_truncated_prefix_fails_cleanly() {
        let bytes = frame(b"hello world");
        for cut in 1..bytes.len() {
            let err = read(&bytes[..cut], 100).expect_err("truncated");
            assert!(
                matches!(err, NetError::TruncatedFrame { .. }),
                "cut {cut}: {err}"
            );
        }
    }

    #[test]
    fn negative_and_oversized_lengths_are_errors() {
        let err = read(&(-1i32).to_be_bytes(), 100).expect_err("negative");
        assert!(matches!(err, NetError::NegativeFrameLength { len: -1 }));
        let err = read(&(101i32).to_be_bytes(), 100).expect_err("too large");
        assert!(matches!(err, NetError::FrameTooLarge { len: 101, .. }));
        let err = read(&i32::MAX.to_be_bytes(), 100).expect_err("huge");
        assert!(matches!(err, NetError::FrameTooLarge { .. }));
    }

    fn buffered(bytes: &[u8], max: usize) -> Vec<Result<Option<Bytes>, String>> {
        futures_lite::future::block_on(async {
            let mut frames = FrameBuffer::new(bytes, max);
            let mut out = Vec::new();
            loop {
                let next = frames.next_frame().await.map_err(|e| e.to_string());
                let done = !matches!(next, Ok(Some(_)));
                out.push(next);
                if done {
                    return out;
                }
            }
        })
    }

    #[test]
    fn buffered_frames_come_out_whole_and_in_order() {
        let big = vec![7u8; 3 * READ_WINDOW_MAX + 5];
        let payloads: [&[u8]; 4] = [b"one", b"", &big, b"four"];
        let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        let got = buffered(&stream, big.len());
        assert_eq!(got.len(), payloads.len() + 1);
        for (got, want) in got.iter().zip(payloads) {
            assert_eq!(got.as_ref().expect("frame").as_deref(), Some(want));
        }
        assert_eq!(got.last(), Some(&Ok(None)), "clean end");
    }

    #[test]
    fn buffered_frames_fail_cleanly_on_every_truncation_and_bad_length() {
        let stream: Vec<u8> = [frame(b"first"), frame(b"second frame")].concat();
        let first_len = frame(b"first").len();
        for cut in 1..stream.len() {
            let got = buffered(&stream[..cut], 100);
            let last = got.last().expect("a result");
            if cut == first_len {
                assert_eq!(last, &Ok(None), "cut {cut} is between frames");
            } else {
                assert!(last.is_err(), "cut {cut}: {last:?}");
            }
        }
        let got = buffered(
            &[frame(b"ok"), (-1i32).to_be_bytes().to_vec()].concat(),
            100,
        );
        assert!(got[1].is_err());
        assert!(buffered(&frame(&[0u8; 101]), 100)[0].is_err());
    }

    #[test]
    fn zero_length_frame_is_empty() {
        let got = read(&frame(b""), 100).expect("frame");
        assert_eq!(got.as_deref(), Some(&b""[..]));
    }
}
