//! The per-connection loop.
//!
//! A reader reads frames, decodes each request header and spawns the request on the shard as its
//! own task, so requests of one connection run concurrently (Kafka clients pipeline). The task
//! handles go through a bounded local channel, which bounds the requests in flight, to a writer
//! that awaits them in order and writes their responses: responses go back in request order. A
//! request may have no response (acks=0 produce). Any malformed input closes this connection
//! only, with one log line.
//!
//! The service keeps its own state per connection (a session: who the peer is, later what it
//! authenticated as), made when the connection opens and handed to every request. A request the
//! service says must finish first (a SASL handshake changes how the next request is read) holds
//! back the reading of later ones until it is done.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures::FutureExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::task::JoinHandle;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use nix::errno::Errno;
use nix::sys::socket::{sendmsg, MsgFlags};

use crate::error::NetError;
use crate::frame::FrameReader;
use crate::header::decode_request_header;
use crate::shutdown::Shutdown;

/// One request whose header is decoded; the body is still encoded.
#[derive(Clone, Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// What the connection loop knows of a connection when it opens.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The remote address (`None` where the socket could not say).
    pub addr: Option<SocketAddr>,
    /// The name of the listener it arrived on (`PLAINTEXT`, later `CONTROLLER`, `SASL_SSL`, …).
    pub listener: Rc<str>,
}

/// What serves requests: the broker's handler table.
#[allow(async_fn_in_trait)] // Shard-local: the futures are never sent across threads.
pub trait Service: 'static {
    /// The service's state of one connection, shared by its requests.
    type Session: 'static;

    /// The session of a connection that just opened.
    fn open(&self, peer: Peer) -> Self::Session;

    /// Whether `request` must finish before the connection reads the next one (a request that
    /// changes how later ones are read or allowed, as SASL's handshake does). Requests are
    /// otherwise served concurrently.
    fn must_finish_first(&self, _session: &Self::Session, _request: &Request) -> bool {
        false
    }

    /// `Ok(Some(pieces))`: one length-prefixed response frame, in pieces written in order (record
    /// batches stay separate pieces instead of being copied); `Ok(None)`: no response (acks=0);
    /// `Err`: close the connection (for input the protocol cannot answer).
    async fn call(
        self: Rc<Self>,
        session: Rc<Self::Session>,
        request: Request,
    ) -> Result<Option<Vec<Bytes>>, NetError>;
}

/// Bounds of one connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// `socket.request.max.bytes`: the largest request frame.
    pub frame_bytes_max: usize,
    /// `queued.max.requests`: requests of this connection decoded and not yet answered.
    pub in_flight_max: usize,
}

type Reply = Result<Option<Vec<Bytes>>, NetError>;

/// Serves one connection until the peer closes it, an error, or `shutdown` (then the requests
/// already read are answered first). Logs why it closed.
pub async fn serve_connection<T, S>(
    stream: T,
    peer: Peer,
    service: Rc<S>,
    limits: ConnLimits,
    shutdown: Shutdown,
) where
    T: AsyncRead + AsyncWrite + AsRawFd + Unpin + 'static,
    S: Service,
{
    assert!(limits.in_flight_max > 0, "in_flight_max must be positive");
    let fd = stream.as_raw_fd();
    let (reader, writer) = stream.split();
    let (tx, rx) = local_channel::new_bounded(limits.in_flight_max);
    let name = peer
        .addr
        .map_or_else(|| "unknown".to_string(), |a| a.to_string());
    let session = Rc::new(service.open(peer));
    let read = std::pin::pin!(read_loop(reader, service, session, limits, tx, shutdown));
    let write = std::pin::pin!(write_loop(writer, fd, rx));
    let result = match select(read, write).await {
        // The reader is done (EOF, shutdown or bad input): answer what was read, then close.
        Either::Left((read_result, write)) => {
            let write_result = write.await;
            read_result.and(write_result)
        }
        Either::Right((write_result, _read)) => write_result,
    };
    log_close(&name, result);
}

fn log_close(peer: &str, result: Result<(), NetError>) {
    match result {
        Ok(()) => tracing::debug!(peer, "connection closed"),
        Err(NetError::Io { op, source }) => tracing::debug!(peer, op, %source, "connection closed"),
        Err(error) => tracing::warn!(peer, %error, "closing connection"),
    }
}

async fn read_loop<R, S>(
    reader: R,
    service: Rc<S>,
    session: Rc<S::Session>,
    limits: ConnLimits,
    tx: LocalSender<JoinHandle<Reply>>,
    shutdown: Shutdown,
) -> Result<(), NetError>
where
    R: AsyncRead + Unpin,
    S: Service,
{
    let mut frames = FrameReader::new(reader);
    loop {
        let next = std::pin::pin!(frames.next(limits.frame_bytes_max));
        let stop = std::pin::pin!(shutdown.wait());
        let frame = match select(next, stop).await {
            Either::Left((frame, _)) => frame?,
            Either::Right(((), _)) => return Ok(()),
        };
        let Some(frame) = frame else { return Ok(()) };
        let decoded = decode_request_header(frame)?;
        let request = Request {
            api_key: decoded.api_key,
            header: decoded.header,
            body: decoded.body,
        };
        let first = service.must_finish_first(&session, &request);
        let call = Rc::clone(&service).call(Rc::clone(&session), request);
        let (task, finished) = if first {
            let (done, finished) = futures::channel::oneshot::channel::<()>();
            let call = async move {
                let reply = call.await;
                let _ = done.send(());
                reply
            };
            (glommio::spawn_local(call).detach(), Some(finished))
        } else {
            (glommio::spawn_local(call).detach(), None)
        };
        if tx.send(task).await.is_err() {
            return Ok(()); // The writer is gone: the connection is closing.
        }
        if let Some(finished) = finished {
            // Cancelled (the shard is stopping) reads as finished: the writer stops too.
            let _ = finished.await;
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    fd: RawFd,
    rx: LocalReceiver<JoinHandle<Reply>>,
) -> Result<(), NetError> {
    let mut next = None;
    loop {
        let task = match next.take() {
            Some(task) => task,
            None => match rx.recv().await {
                Some(task) => task,
                None => break,
            },
        };
        // `None` from a handle: the task was cancelled (the shard is stopping).
        let Some(reply) = task.await else {
            return Ok(());
        };
        let mut frames: Vec<Bytes> = reply?.unwrap_or_default();
        next = gather_ready(&rx, &mut frames)?;
        write_frames(&mut writer, fd, frames).await?;
    }
    writer.close().await.map_err(|source| NetError::Io {
        op: "close",
        source,
    })
}

/// Responses gathered into one write at most (several small answers, one syscall).
const COALESCE_BYTES_MAX: usize = 64 * 1024;
const COALESCE_FRAMES_MAX: usize = 64;
/// Pieces at least this large are passed to the socket as they are rather than copied into a
/// gathered buffer.
const WRITE_ALONE_BYTES_MIN: usize = 16 * 1024;

/// Appends the responses that are already complete, in order, without waiting; returns the
/// first queued request that is still running (the caller awaits it next).
fn gather_ready(
    rx: &LocalReceiver<JoinHandle<Reply>>,
    frames: &mut Vec<Bytes>,
) -> Result<Option<JoinHandle<Reply>>, NetError> {
    let mut bytes: usize = frames.iter().map(Bytes::len).sum();
    while bytes < COALESCE_BYTES_MAX && frames.len() < COALESCE_FRAMES_MAX {
        let Some(Some(mut task)) = rx.recv().now_or_never() else {
            return Ok(None);
        };
        match (&mut task).now_or_never() {
            Some(Some(reply)) => {
                if let Some(pieces) = reply? {
                    bytes += pieces.iter().map(Bytes::len).sum::<usize>();
                    frames.extend(pieces);
                }
            }
            // Cancelled: nothing more will be answered; send what is ready.
            Some(None) => return Ok(None),
            None => return Ok(Some(task)),
        }
    }
    Ok(None)
}

/// Writes response pieces in order: small ones gathered into one buffer, large ones (record
/// batches passed on by reference) as they are, never copied (see [`write_pieces`]).
async fn write_frames<W: AsyncWrite + Unpin>(
    writer: &mut W,
    fd: RawFd,
    frames: Vec<Bytes>,
) -> Result<(), NetError> {
    write_pieces(writer, fd, &gather_small(frames)).await
}

/// Writes `pieces` in order, all of them handed to the socket together, up to [`IOVECS_MAX`]
/// per `sendmsg` on `fd` (the socket under `writer`); when the socket is full, through
/// `writer`, which waits for room.
pub async fn write_pieces<W: AsyncWrite + Unpin>(
    writer: &mut W,
    fd: RawFd,
    pieces: &[Bytes],
) -> Result<(), NetError> {
    let mut at = (0, 0); // (piece, offset in it)
    while at.0 < pieces.len() {
        let iov: Vec<IoSlice<'_>> = pieces[at.0..]
            .iter()
            .take(IOVECS_MAX)
            .enumerate()
            .map(|(k, p)| IoSlice::new(if k == 0 { &p[at.1..] } else { p }))
            .collect();
        // The stream's fd may be in blocking mode: MSG_DONTWAIT keeps the shard from waiting.
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        let sent = match sendmsg::<()>(fd, &iov, &[], flags, None) {
            Ok(sent) => sent,
            Err(Errno::EINTR) => continue,
            // The socket buffer is full: the stream's own write waits until it takes more.
            Err(Errno::EAGAIN) => writer
                .write(&pieces[at.0][at.1..])
                .await
                .map_err(|source| NetError::Io { op: "send", source })?,
            Err(errno) => {
                return Err(NetError::Io {
                    op: "send",
                    source: errno.into(),
                })
            }
        };
        if sent == 0 {
            return Err(NetError::Io {
                op: "send",
                source: std::io::ErrorKind::WriteZero.into(),
            });
        }
        at = advance(pieces, at, sent);
    }
    Ok(())
}

/// Pieces gathered into one `sendmsg`: Linux takes up to 1024 (`UIO_MAXIOV`).
const IOVECS_MAX: usize = 64;

/// Runs of small pieces copied into one buffer each; large pieces kept as they are.
fn gather_small(frames: Vec<Bytes>) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(frames.len());
    let mut gathered = BytesMut::new();
    for piece in frames {
        if piece.len() < WRITE_ALONE_BYTES_MIN {
            gathered.extend_from_slice(&piece);
            continue;
        }
        if !gathered.is_empty() {
            out.push(gathered.split().freeze());
        }
        out.push(piece);
    }
    if !gathered.is_empty() {
        out.push(gathered.freeze());
    }
    out
}

/// The position `sent` bytes after `at` in `pieces`.
fn advance(pieces: &[Bytes], mut at: (usize, usize), mut sent: usize) -> (usize, usize) {
    while sent > 0 {
        let left = pieces[at.0].len() - at.1;
        if sent < left {
            return (at.0, at.1 + sent);
        }
        sent -= left;
        at = (at.0 + 1, 0);
    }
    // Skip empty pieces so the loop never hands the socket an empty first slice.
    while at.0 < pieces.len() && pieces[at.0].len() == at.1 {
        at = (at.0 + 1, 0);
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    use glommio::net::{TcpListener, TcpStream};
    use kafka_protocol::protocol::Encodable;
    use std::time::Duration;

    const REQUESTS: i32 = 20;

    /// Answers with the correlation id; later requests finish first; Produce gets no answer.
    struct SlowEcho;

    impl Service for SlowEcho {
        type Session = ();

        fn open(&self, _peer: Peer) {}

        async fn call(self: Rc<Self>, _: Rc<()>, request: Request) -> Reply {
            let id = request.header.correlation_id;
            let delay_ms = u64::try_from(REQUESTS - id).unwrap_or(0) * 2;
            glommio::timer::sleep(Duration::from_millis(delay_ms)).await;
            if request.api_key == ApiKey::Produce {
                return Ok(None);
            }
            let mut frame = BytesMut::new();
            frame.put_i32(4);
            frame.put_i32(id);
            Ok(Some(vec![frame.freeze()]))
        }
    }

    fn request_frame(api_key: ApiKey, correlation_id: i32) -> Vec<u8> {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(1)
            .with_correlation_id(correlation_id);
        let mut payload = BytesMut::new();
        header
            .encode(&mut payload, api_key.request_header_version(1))
            .expect("encode");
        let mut out = (payload.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&payload);
        out
    }

    async fn serve_one(listener: TcpListener, service: impl Service) {
        let stream = listener.accept().await.expect("accept");
        let limits = ConnLimits {
            frame_bytes_max: 1024,
            in_flight_max: 4,
        };
        let peer = Peer {
            addr: stream.peer_addr().ok(),
            listener: Rc::from("TEST"),
        };
        serve_connection(stream, peer, Rc::new(service), limits, Shutdown::new()).await;
    }

    #[test]
    fn advance_moves_across_pieces() {
        let pieces = [Bytes::from_static(b"abc"), Bytes::from_static(b"de")];
        assert_eq!(advance(&pieces, (0, 0), 2), (0, 2));
        assert_eq!(advance(&pieces, (0, 2), 1), (1, 0));
        assert_eq!(advance(&pieces, (0, 1), 3), (1, 1));
        assert_eq!(advance(&pieces, (1, 1), 1), (2, 0));
    }

    #[test]
    fn small_pieces_are_gathered_and_large_ones_kept() {
        let big = Bytes::from(vec![1u8; WRITE_ALONE_BYTES_MIN]);
        let out = gather_small(vec![
            Bytes::from_static(b"a"),
            Bytes::from_static(b"b"),
            big.clone(),
            Bytes::from_static(b"c"),
        ]);
        assert_eq!(out.len(), 3);
        assert_eq!(&out[0][..], b"ab");
        assert_eq!(out[1].as_ptr(), big.as_ptr());
        assert_eq!(&out[2][..], b"c");
    }

    /// Answers every request with a response of many large pieces.
    struct Pieces;

    const PIECE_BYTES: usize = 256 * 1024;
    const PIECES: usize = 100;

    impl Service for Pieces {
        type Session = ();

        fn open(&self, _peer: Peer) {}

        async fn call(self: Rc<Self>, _: Rc<()>, request: Request) -> Reply {
            let mut head = BytesMut::new();
            head.put_i32((4 + PIECE_BYTES * PIECES) as i32);
            head.put_i32(request.header.correlation_id);
            let mut pieces = vec![head.freeze()];
            for k in 0..PIECES {
                pieces.push(Bytes::from(vec![k as u8; PIECE_BYTES]));
            }
            Ok(Some(pieces))
        }
    }

    #[test]
    fn a_response_larger_than_the_socket_buffer_arrives_whole_and_in_order() {
        odradek_storage::testing::run(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = glommio::spawn_local(serve_one(listener, Pieces));
            let mut client = TcpStream::connect(addr).await.expect("connect");
            for id in 0..2 {
                client
                    .write_all(&request_frame(ApiKey::Metadata, id))
                    .await
                    .expect("write");
            }
            // Let the server fill the socket buffer before reading anything.
            glommio::timer::sleep(Duration::from_millis(50)).await;
            for id in 0..2 {
                let mut head = [0u8; 8];
                client.read_exact(&mut head).await.expect("head");
                assert_eq!(
                    i32::from_be_bytes(head[4..8].try_into().expect("4 bytes")),
                    id
                );
                let mut body = vec![0u8; PIECE_BYTES * PIECES];
                client.read_exact(&mut body).await.expect("body");
                for (k, chunk) in body.chunks(PIECE_BYTES).enumerate() {
                    assert!(chunk.iter().all(|&b| b == k as u8), "piece {k} of {id}");
                }
            }
            drop(client);
            server.await;
        });
    }

    #[test]
    fn responses_go_back_in_request_order_and_bad_frames_close() {
        odradek_storage::testing::run(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = glommio::spawn_local(serve_one(listener, SlowEcho));
            let mut client = TcpStream::connect(addr).await.expect("connect");
            let mut expected = Vec::new();
            for id in 0..REQUESTS {
                let key = if id % 5 == 0 {
                    ApiKey::Produce
                } else {
                    ApiKey::Metadata
                };
                if key != ApiKey::Produce {
                    expected.push(id);
                }
                client
                    .write_all(&request_frame(key, id))
                    .await
                    .expect("write");
            }
            let mut got = Vec::new();
            for _ in 0..expected.len() {
                let mut frame = [0u8; 8];
                client.read_exact(&mut frame).await.expect("response");
                got.push(i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]));
            }
            assert_eq!(got, expected);
            client
                .write_all(&(-1i32).to_be_bytes())
                .await
                .expect("write");
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.expect("closed");
            assert!(rest.is_empty());
            server.await;
        });
    }

    /// Logs when each request starts and ends; SaslHandshake requests must finish first. The
    /// log is the session's, and the session knows the listener it came from.
    struct Gate;

    impl Service for Gate {
        type Session = (Rc<str>, std::cell::RefCell<Vec<String>>);

        fn open(&self, peer: Peer) -> Self::Session {
            assert!(peer.addr.is_some(), "a TCP peer has an address");
            (peer.listener, Default::default())
        }

        fn must_finish_first(&self, _: &Self::Session, request: &Request) -> bool {
            request.api_key == ApiKey::SaslHandshake
        }

        async fn call(self: Rc<Self>, session: Rc<Self::Session>, request: Request) -> Reply {
            let id = request.header.correlation_id;
            session.1.borrow_mut().push(format!("start {id}"));
            // The first request is slow: a later one that is not held back starts meanwhile.
            let delay_ms = if id == 0 { 40 } else { 1 };
            glommio::timer::sleep(Duration::from_millis(delay_ms)).await;
            session.1.borrow_mut().push(format!("end {id}"));
            let mut frame = BytesMut::new();
            frame.put_i32(4);
            frame.put_i32(id);
            if id == 1 {
                let log = session.1.borrow().join(", ");
                frame.put_slice(log.as_bytes());
                let len = frame.len() as i32 - 4;
                frame[..4].copy_from_slice(&len.to_be_bytes());
            }
            Ok(Some(vec![frame.freeze()]))
        }
    }

    /// The log the service had when request 1 ended, after sending request 0 as `first`.
    fn log_after(first: ApiKey) -> String {
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let written = std::sync::Arc::clone(&out);
        odradek_storage::testing::run(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = glommio::spawn_local(serve_one(listener, Gate));
            let mut client = TcpStream::connect(addr).await.expect("connect");
            let mut both = request_frame(first, 0);
            both.extend(request_frame(ApiKey::Metadata, 1));
            client.write_all(&both).await.expect("write");
            let mut head = [0u8; 8];
            client.read_exact(&mut head).await.expect("response 0");
            client.read_exact(&mut head).await.expect("response 1");
            let len = i32::from_be_bytes(head[..4].try_into().expect("4 bytes")) as usize;
            let mut log = vec![0u8; len - 4];
            client.read_exact(&mut log).await.expect("log");
            drop(client);
            server.await;
            *written.lock().expect("lock") = String::from_utf8(log).expect("utf-8");
        });
        let log = out.lock().expect("lock").clone();
        log
    }

    #[test]
    fn given_a_request_that_must_finish_first_when_another_follows_should_start_it_after() {
        assert_eq!(
            log_after(ApiKey::SaslHandshake),
            "start 0, end 0, start 1, end 1"
        );
        // Without the hold, the second request starts while the first still runs.
        assert_eq!(log_after(ApiKey::ApiVersions), "start 0, start 1, end 1");
    }
}
