//! The per-connection loop.
//!
//! A reader reads frames, decodes each request header and spawns the request on the shard as its
//! own task, so requests of one connection run concurrently (Kafka clients pipeline). The task
//! handles go through a bounded local channel, which bounds the requests in flight, to a writer
//! that awaits them in order and writes their responses: responses go back in request order. A
//! request may have no response (acks=0 produce). Any malformed input closes this connection
//! only, with one log line.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures::FutureExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::task::JoinHandle;
use kafka_protocol::messages::{ApiKey, RequestHeader};

use crate::error::NetError;
use crate::frame::read_frame;
use crate::header::decode_request_header;
use crate::shutdown::Shutdown;

/// One request whose header is decoded; the body is still encoded.
#[derive(Clone, Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// What serves requests: the broker's handler table.
#[allow(async_fn_in_trait)] // Shard-local: the futures are never sent across threads.
pub trait Service: 'static {
    /// `Ok(Some(pieces))`: one length-prefixed response frame, in pieces written in order (record
    /// batches stay separate pieces instead of being copied); `Ok(None)`: no response (acks=0);
    /// `Err`: close the connection (for input the protocol cannot answer).
    async fn call(self: Rc<Self>, request: Request) -> Result<Option<Vec<Bytes>>, NetError>;
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
    peer: &str,
    service: Rc<S>,
    limits: ConnLimits,
    shutdown: Shutdown,
) where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    S: Service,
{
    assert!(limits.in_flight_max > 0, "in_flight_max must be positive");
    let (reader, writer) = stream.split();
    let (tx, rx) = local_channel::new_bounded(limits.in_flight_max);
    let read = std::pin::pin!(read_loop(reader, service, limits, tx, shutdown));
    let write = std::pin::pin!(write_loop(writer, rx));
    let result = match select(read, write).await {
        // The reader is done (EOF, shutdown or bad input): answer what was read, then close.
        Either::Left((read_result, write)) => {
            let write_result = write.await;
            read_result.and(write_result)
        }
        Either::Right((write_result, _read)) => write_result,
    };
    log_close(peer, result);
}

fn log_close(peer: &str, result: Result<(), NetError>) {
    match result {
        Ok(()) => tracing::debug!(peer, "connection closed"),
        Err(NetError::Io { op, source }) => tracing::debug!(peer, op, %source, "connection closed"),
        Err(error) => tracing::warn!(peer, %error, "closing connection"),
    }
}

async fn read_loop<R, S>(
    mut reader: R,
    service: Rc<S>,
    limits: ConnLimits,
    tx: LocalSender<JoinHandle<Reply>>,
    shutdown: Shutdown,
) -> Result<(), NetError>
where
    R: AsyncRead + Unpin,
    S: Service,
{
    loop {
        let next = std::pin::pin!(read_frame(&mut reader, limits.frame_bytes_max));
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
        let task = glommio::spawn_local(Rc::clone(&service).call(request)).detach();
        if tx.send(task).await.is_err() {
            return Ok(()); // The writer is gone: the connection is closing.
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
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
        write_frames(&mut writer, frames).await?;
    }
    writer.close().await.map_err(|source| NetError::Io {
        op: "close",
        source,
    })
}

/// Responses gathered into one write at most (several small answers, one syscall).
const COALESCE_BYTES_MAX: usize = 64 * 1024;
const COALESCE_FRAMES_MAX: usize = 64;
/// Pieces at least this large are written on their own rather than copied into a gathered write.
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

/// Writes response pieces in order: small ones gathered into one write, large ones (record
/// batches passed on by reference) each written as they are, never copied.
async fn write_frames<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frames: Vec<Bytes>,
) -> Result<(), NetError> {
    let io = |source| NetError::Io {
        op: "write response",
        source,
    };
    let mut gathered = BytesMut::new();
    for piece in frames {
        if piece.len() < WRITE_ALONE_BYTES_MIN {
            gathered.extend_from_slice(&piece);
            continue;
        }
        if !gathered.is_empty() {
            writer.write_all(&gathered.split()).await.map_err(io)?;
        }
        writer.write_all(&piece).await.map_err(io)?;
    }
    if !gathered.is_empty() {
        writer.write_all(&gathered).await.map_err(io)?;
    }
    Ok(())
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
        async fn call(self: Rc<Self>, request: Request) -> Result<Option<Vec<Bytes>>, NetError> {
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

    async fn serve_one(listener: TcpListener) {
        let stream = listener.accept().await.expect("accept");
        let limits = ConnLimits {
            frame_bytes_max: 1024,
            in_flight_max: 4,
        };
        serve_connection(stream, "test", Rc::new(SlowEcho), limits, Shutdown::new()).await;
    }

    #[test]
    fn responses_go_back_in_request_order_and_bad_frames_close() {
        let handle = glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr");
                let server = glommio::spawn_local(serve_one(listener));
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
            })
            .expect("executor");
        handle.join().expect("test");
    }
}
