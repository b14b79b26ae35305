//! Length-prefixed frames.
//!
//! Wire format: `length: i32` (big-endian, the number of bytes that follow), then `length` bytes.
//! A negative length or one above the configured maximum is an error before any allocation, so a
//! peer cannot make the broker reserve memory it does not send.

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt};

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

    #[test]
    fn zero_length_frame_is_empty() {
        let got = read(&frame(b""), 100).expect("frame");
        assert_eq!(got.as_deref(), Some(&b""[..]));
    }
}
