//! A minimal Kafka client connection on glommio: connect with a timeout, encode a request
//! through the `kafka-protocol` codec, read and decode its response with a timeout.
//!
//! Request wire format: `length: i32`, the request header (its version follows from the API key
//! and version), the body. Response: `length: i32`, `correlation_id: i32` (plus tagged fields in
//! header v1), the body.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{select, Either};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use odradek_net::frame::FramePool;
use odradek_net::FrameReader;

use crate::error::BenchError;

/// The largest response frame we accept: a fetch asks for at most 64 MiB.
pub const RESPONSE_BYTES_MAX: usize = 128 << 20;
pub const CLIENT_ID: &str = "odradek-bench";

/// Runs `future` for at most `limit`; `None` when the time ran out.
pub async fn with_timeout<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    let future = std::pin::pin!(future);
    let timer = std::pin::pin!(glommio::timer::Timer::new(limit));
    match select(future, timer).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(_) => None,
    }
}

/// Opens a TCP connection with Nagle off.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, BenchError> {
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(|e| BenchError::Connect {
            addr,
            reason: e.to_string(),
        })?;
    stream.set_nodelay(true).map_err(|e| BenchError::Connect {
        addr,
        reason: e.to_string(),
    })?;
    Ok(stream)
}

/// Encodes one request as a length-prefixed frame (through `odradek_net::client`).
pub fn encode_request<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, BenchError> {
    odradek_net::client::encode_request(api_key, version, correlation_id, CLIENT_ID, body).map_err(
        |e| BenchError::Protocol {
            what: "encoding a request",
            reason: e.to_string(),
        },
    )
}

/// Decodes a response frame (without its length prefix): checks the correlation id.
pub fn decode_response<T: Decodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    frame: Bytes,
) -> Result<T, BenchError> {
    let protocol = |reason: String| BenchError::Protocol {
        what: "decoding a response",
        reason,
    };
    let (header, body) =
        odradek_net::client::decode_response_with_header::<T>(api_key, version, frame)
            .map_err(|e| protocol(e.to_string()))?;
    if header.correlation_id != correlation_id {
        return Err(protocol(format!(
            "{api_key:?}: correlation id {} where {correlation_id} was expected",
            header.correlation_id
        )));
    }
    Ok(body)
}

/// Reads one response frame within `timeout`.
pub async fn read_response_frame<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    addr: SocketAddr,
    what: &'static str,
    timeout: Duration,
) -> Result<Bytes, BenchError> {
    match with_timeout(timeout, reader.next(RESPONSE_BYTES_MAX)).await {
        None => Err(BenchError::Timeout {
            what,
            addr,
            timeout_ms: timeout.as_millis(),
        }),
        Some(Err(odradek_net::NetError::FrameTooLarge { len, .. })) => Err(BenchError::Protocol {
            what,
            reason: format!(
                "{addr} answered a frame of {len} bytes: is it a Kafka broker? \
                 (limit {RESPONSE_BYTES_MAX})"
            ),
        }),
        Some(Err(e)) => Err(BenchError::Io {
            op: what,
            addr,
            reason: e.to_string(),
        }),
        Some(Ok(None)) => Err(BenchError::Io {
            op: what,
            addr,
            reason: "the broker closed the connection".into(),
        }),
        Some(Ok(Some(frame))) => Ok(frame),
    }
}

/// Reads response frames into buffers reused once every slice of a frame is dropped: a consumer
/// reading megabytes per fetch would otherwise fault in or zero fresh memory for every response.
pub struct PooledFrameReader {
    pool: FramePool,
}

/// Frame buffers a reader keeps for reuse (one is read while the previous one is processed).
const SPARE_FRAMES_MAX: usize = 2;

impl Default for PooledFrameReader {
    fn default() -> PooledFrameReader {
        PooledFrameReader {
            pool: FramePool::new(SPARE_FRAMES_MAX, RESPONSE_BYTES_MAX),
        }
    }
}

impl PooledFrameReader {
    /// Reads one frame within `timeout`.
    pub async fn read<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        addr: SocketAddr,
        what: &'static str,
        timeout: Duration,
    ) -> Result<Bytes, BenchError> {
        let io = |e: std::io::Error| BenchError::Io {
            op: what,
            addr,
            reason: if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "the broker closed the connection".into()
            } else {
                e.to_string()
            },
        };
        let read = async {
            let mut prefix = [0u8; 4];
            reader.read_exact(&mut prefix).await.map_err(io)?;
            let len = i32::from_be_bytes(prefix);
            let len = usize::try_from(len)
                .ok()
                .filter(|&n| n <= RESPONSE_BYTES_MAX)
                .ok_or_else(|| BenchError::Protocol {
                    what,
                    reason: format!(
                        "{addr} answered a frame of {len} bytes: is it a Kafka broker? \
                 (limit {RESPONSE_BYTES_MAX})"
                    ),
                })?;
            let mut buf = self.pool.take(len);
            reader.read_exact(&mut buf[..len]).await.map_err(io)?;
            Ok(self.pool.wrap(buf, len))
        };
        match with_timeout(timeout, read).await {
            Some(result) => result,
            None => Err(BenchError::Timeout {
                what,
                addr,
                timeout_ms: timeout.as_millis(),
            }),
        }
    }
}

/// Writes a whole frame within `timeout` (a broker that stops reading must not hang us).
pub async fn write_frame<W: futures::io::AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &[u8],
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), BenchError> {
    send_within(timeout, addr, writer.write_all(frame)).await
}

/// Sends one request given as pieces (a vectored send, see `odradek_net::write_pieces`), within
/// `timeout`; `fd` is the socket under `writer`.
pub async fn write_pieces<W: futures::io::AsyncWrite + Unpin>(
    writer: &mut W,
    fd: std::os::fd::RawFd,
    pieces: &[Bytes],
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), BenchError> {
    send_within(timeout, addr, odradek_net::write_pieces(writer, fd, pieces)).await
}

async fn send_within<E: std::fmt::Display>(
    timeout: Duration,
    addr: SocketAddr,
    send: impl Future<Output = Result<(), E>>,
) -> Result<(), BenchError> {
    match with_timeout(timeout, send).await {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(BenchError::Io {
            op: "sending a request",
            addr,
            reason: e.to_string(),
        }),
        None => Err(BenchError::Timeout {
            what: "sending a request",
            addr,
            timeout_ms: timeout.as_millis(),
        }),
    }
}

/// A connection used one request at a time (bootstrap and admin requests).
pub struct Conn {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    correlation_id: i32,
    timeout: Duration,
    frames: PooledFrameReader,
}

impl Conn {
    pub async fn open(addr: SocketAddr, timeout: Duration) -> Result<Conn, BenchError> {
        Ok(Conn {
            stream: connect(addr, timeout).await?,
            addr,
            correlation_id: 0,
            timeout,
            frames: PooledFrameReader::default(),
        })
    }

    /// Sends `request` and waits for its response.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
        what: &'static str,
    ) -> Result<Resp, BenchError> {
        let correlation_id = self.send(api_key, version, request).await?;
        self.receive(api_key, version, correlation_id, what).await
    }

    /// Sends `request`; returns its correlation id. Responses come back in request order.
    pub async fn send<Req: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<i32, BenchError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(api_key, version, self.correlation_id, request)?;
        write_frame(&mut self.stream, &frame, self.addr, self.timeout).await?;
        Ok(self.correlation_id)
    }

    /// Reads the response to the request sent with `correlation_id`, the oldest unanswered.
    pub async fn receive<Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        what: &'static str,
    ) -> Result<Resp, BenchError> {
        let response = self
            .frames
            .read(&mut self.stream, self.addr, what, self.timeout)
            .await?;
        decode_response(api_key, version, correlation_id, response)
    }
}
