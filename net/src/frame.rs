//! Length-prefixed frames.
//!
//! Wire format: `length: i32` (big-endian, the number of bytes that follow), then `length` bytes.
//! A negative length or one above the configured maximum is an error before any allocation, so a
//! peer cannot make the broker reserve memory it does not send.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::io::{AsyncRead, AsyncReadExt};

use crate::error::NetError;

/// Bytes a [`FrameReader`] asks the socket for at once; frames up to this size are read through
/// its buffer, larger ones straight into their own allocation after the at most this many bytes
/// already buffered (the copy stays small next to the frame).
const READ_CHUNK_BYTES: usize = 16 << 10;

/// Reads length-prefixed frames through a buffer: one read takes in whatever the socket holds,
/// often several small frames, instead of one read for each length prefix and another for each
/// body. With small requests (producers with `linger.ms=0`) the reads per frame were most of a
/// connection's syscalls.
///
/// Not cancel-safe: after a [`FrameReader::next`] is dropped unfinished, drop the reader too.
pub struct FrameReader<R> {
    reader: R,
    /// Received bytes not yet handed out are `buf[start..end]`; `buf` stays initialized.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(reader: R) -> FrameReader<R> {
        FrameReader {
            reader,
            buf: vec![0; READ_CHUNK_BYTES],
            start: 0,
            end: 0,
        }
    }

    /// The next frame's payload. `Ok(None)` when the peer closed the connection cleanly between
    /// frames.
    pub async fn next(&mut self, frame_bytes_max: usize) -> Result<Option<Bytes>, NetError> {
        while self.end - self.start < 4 {
            if self.fill().await? == 0 {
                let read = self.end - self.start;
                if read == 0 {
                    return Ok(None);
                }
                return Err(NetError::TruncatedFrame { read, expected: 4 });
            }
        }
        let mut prefix = [0u8; 4];
        prefix.copy_from_slice(&self.buf[self.start..self.start + 4]);
        let len = frame_length(i32::from_be_bytes(prefix), frame_bytes_max)?;
        self.start += 4;
        if len > self.buf.len() {
            return self.next_large(len).await.map(Some);
        }
        while self.end - self.start < len {
            if self.fill().await? == 0 {
                return Err(NetError::TruncatedFrame {
                    read: self.end - self.start,
                    expected: len,
                });
            }
        }
        let frame = Bytes::copy_from_slice(&self.buf[self.start..self.start + len]);
        self.start += len;
        Ok(Some(frame))
    }

    /// A frame larger than the buffer, in a buffer of the thread's [`FramePool`]: what is
    /// buffered is copied, the rest read in place.
    async fn next_large(&mut self, len: usize) -> Result<Bytes, NetError> {
        let pool = FramePool::for_this_thread();
        let mut payload = pool.take(len);
        let have = self.end - self.start;
        payload[..have].copy_from_slice(&self.buf[self.start..self.end]);
        (self.start, self.end) = (0, 0);
        let got = read_full(&mut self.reader, &mut payload[have..len]).await?;
        if have + got < len {
            return Err(NetError::TruncatedFrame {
                read: have + got,
                expected: len,
            });
        }
        Ok(pool.wrap(payload, len))
    }

    /// One read into the free end of the buffer (moving the unread bytes to its front first
    /// when they leave no room); the number of bytes read, 0 at end of stream.
    async fn fill(&mut self) -> Result<usize, NetError> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() || self.start > self.buf.len() / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let n = self
            .reader
            .read(&mut self.buf[self.end..])
            .await
            .map_err(|source| NetError::Io {
                op: "read frame",
                source,
            })?;
        self.end += n;
        Ok(n)
    }
}

/// Buffers of large frames, reused once every slice of a frame is dropped. A fresh buffer costs
/// a zeroing pass (or page faults) over every byte; at 2 GB/s of produce requests that was 2% of
/// the broker's CPU. A frame's buffer goes back to the pool it came from, whichever thread
/// drops its last slice (a produce request's batches are appended on their partitions'
/// shards). Bounded: at most `buffers_max` buffers of at most `buffer_bytes_max` capacity each.
#[derive(Clone)]
pub struct FramePool {
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    buffers_max: usize,
    buffer_bytes_max: usize,
}

/// Buffers a connection thread's pool keeps.
const THREAD_POOL_BUFFERS_MAX: usize = 8;
/// Frames larger than this get a buffer of their own in a connection thread, freed with them.
const THREAD_POOL_BUFFER_BYTES_MAX: usize = 8 << 20;
/// A spare is handed out for a frame only if it is at most this many times the frame's size,
/// so that a small frame whose slices live on (group metadata) does not hold a large buffer.
const SPARE_OVERSIZE_MAX: usize = 4;

thread_local! {
    static THREAD_POOL: FramePool =
        FramePool::new(THREAD_POOL_BUFFERS_MAX, THREAD_POOL_BUFFER_BYTES_MAX);
}

impl FramePool {
    pub fn new(buffers_max: usize, buffer_bytes_max: usize) -> FramePool {
        FramePool {
            spare: Arc::default(),
            buffers_max,
            buffer_bytes_max,
        }
    }

    /// The pool of the calling thread (a shard, or one of the tool's executors).
    pub fn for_this_thread() -> FramePool {
        THREAD_POOL.with(FramePool::clone)
    }

    /// A buffer of at least `len` initialized bytes: a spare one that fits, or a smaller spare
    /// grown to `len` (only the bytes no frame has used yet are zeroed), or a new one.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let spare = if len <= self.buffer_bytes_max {
            let mut spare = self.lock();
            let fits =
                |b: &Vec<u8>| (len..=len.saturating_mul(SPARE_OVERSIZE_MAX)).contains(&b.len());
            let at = spare
                .iter()
                .position(fits)
                .or_else(|| spare.iter().position(|b| b.len() < len));
            at.map(|i| spare.swap_remove(i))
        } else {
            None
        };
        let mut buf = spare.unwrap_or_default();
        if buf.len() < len {
            buf.reserve_exact(len - buf.len());
            buf.resize(len, 0);
        }
        buf
    }

    /// The first `len` bytes of `buf` as a frame whose buffer comes back here when its last
    /// slice is dropped.
    pub fn wrap(&self, buf: Vec<u8>, len: usize) -> Bytes {
        assert!(len <= buf.len(), "a frame fits its buffer");
        Bytes::from_owner(PooledFrame {
            buf,
            len,
            home: self.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A panic while holding the lock leaves only a list of buffers behind.
        self.spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One frame's buffer, going back to its pool when the last slice of the frame is dropped.
struct PooledFrame {
    buf: Vec<u8>,
    len: usize,
    home: FramePool,
}

impl AsRef<[u8]> for PooledFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PooledFrame {
    fn drop(&mut self) {
        if self.buf.capacity() > self.home.buffer_bytes_max {
            return;
        }
        let mut spare = self.home.lock();
        if spare.len() < self.home.buffers_max {
            spare.push(std::mem::take(&mut self.buf));
        }
    }
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
        futures::executor::block_on(FrameReader::new(bytes).next(max))
    }

    /// A stream handing out at most `step` bytes per read.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = self.step.min(buf.len()).min(self.data.len() - self.at);
            let at = self.at;
            buf[..n].copy_from_slice(&self.data[at..at + n]);
            self.at += n;
            std::task::Poll::Ready(Ok(n))
        }
    }

    /// Every frame of `data`, read `step` bytes at a time, until the end or an error.
    fn read_all(data: &[u8], step: usize, max: usize) -> (Vec<Bytes>, Option<NetError>) {
        let stream = Trickle {
            data: data.to_vec(),
            at: 0,
            step,
        };
        let mut frames = FrameReader::new(stream);
        let mut got = Vec::new();
        futures::executor::block_on(async {
            loop {
                match frames.next(max).await {
                    Ok(Some(frame)) => got.push(frame),
                    Ok(None) => return (got, None),
                    Err(e) => return (got, Some(e)),
                }
            }
        })
    }

    #[test]
    fn frames_of_every_size_come_out_whole_and_in_order_however_the_bytes_arrive() {
        let payloads: Vec<Vec<u8>> = [
            0usize,
            1,
            5,
            4096,
            READ_CHUNK_BYTES - 4,
            READ_CHUNK_BYTES,
            200_000,
            3,
            70_000,
        ]
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|b| (b * 31 + i) as u8).collect())
        .collect();
        let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        for step in [1, 3, 4, 7, 1000, 65_536, 100_000, usize::MAX] {
            let (got, error) = read_all(&stream, step, 1 << 20);
            assert!(error.is_none(), "step {step}: {error:?}");
            assert_eq!(got.len(), payloads.len(), "step {step}");
            for (g, p) in got.iter().zip(&payloads) {
                assert!(
                    g[..] == p[..],
                    "step {step}: a frame of {} bytes differs",
                    p.len()
                );
            }
        }
    }

    #[test]
    fn a_stream_cut_inside_any_frame_reads_the_whole_ones_then_fails() {
        let payloads: Vec<Vec<u8>> = vec![vec![1; 10], vec![2; 70_000], vec![3; 20]];
        let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        let ends: Vec<usize> = payloads
            .iter()
            .scan(0, |end, p| {
                *end += 4 + p.len();
                Some(*end)
            })
            .collect();
        for cut in (1..stream.len())
            .step_by(997)
            .chain(ends.iter().map(|e| e - 1))
        {
            let (got, error) = read_all(&stream[..cut], 4096, 1 << 20);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(got.len(), whole, "cut {cut}");
            let at_boundary = ends.contains(&cut);
            assert_eq!(error.is_none(), at_boundary, "cut {cut}: {error:?}");
        }
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

    #[test]
    fn large_frames_reuse_a_buffer_once_every_slice_is_dropped() {
        let big = vec![7u8; 3 * READ_CHUNK_BYTES];
        let data = [frame(&big), frame(&big), frame(&big)].concat();
        let mut frames = FrameReader::new(&data[..]);
        let mut next = || {
            futures::executor::block_on(frames.next(usize::MAX))
                .expect("a frame")
                .expect("not the end")
        };
        let first = next();
        let first_at = first.as_ptr();
        let kept = first.slice(10..20);
        drop(first);
        // A slice of the first frame is alive: its buffer is not handed out again.
        let second = next();
        assert_ne!(second.as_ptr(), first_at);
        assert_eq!(&second[..], &big[..]);
        drop(kept);
        let second_at = second.as_ptr();
        drop(second);
        let third = next();
        assert!([first_at, second_at].contains(&third.as_ptr()));
        assert_eq!(&third[..], &big[..]);
    }

    #[test]
    fn a_pool_hands_out_spares_that_fit_and_keeps_its_bounds() {
        let pool = FramePool::new(2, 1 << 20);
        let small = pool.wrap(pool.take(20_000), 20_000);
        let large = pool.wrap(pool.take(900_000), 900_000);
        let huge = pool.wrap(pool.take(2 << 20), 2 << 20);
        let large_at = large.as_ptr();
        drop((small, large, huge));
        assert_eq!(
            pool.lock().len(),
            2,
            "the buffer past the size bound is freed"
        );
        // A 100 kB frame does not take the 900 kB buffer (more than 4 times its size): it grows
        // the small one.
        let grown = pool.take(100_000);
        assert_ne!(grown.as_ptr(), large_at);
        assert_eq!(pool.lock().len(), 1);
        let reused = pool.take(300_000);
        assert_eq!(reused.as_ptr(), large_at);
        let third = pool.take(30_000);
        assert!(third.len() >= 30_000);
        for _ in 0..3 {
            drop(pool.wrap(pool.take(50_000), 50_000));
        }
        assert!(pool.lock().len() <= 2);
    }
}
