//! A follower's connection to its leader's client listener: one Kafka request at a time,
//! correlation ids checked, every exchange bounded by a timeout and by the broker's stop.

use std::time::Duration;

use futures::future::{select, Either};
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::net::TcpStream;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};
use odradek_net::client::{decode_response_with_header, encode_request};
use odradek_net::frame::FrameReader;
use odradek_net::Shutdown;

use crate::shard::ShardCtx;

/// The longest a connection attempt or an answer may take before the connection is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer read (a fetch answer is bounded by its request's max_bytes, below this).
const FRAME_BYTES_MAX: usize = 64 << 20;

const CLIENT_ID: &str = "odradek-replica-fetcher";

/// One connection to a leader, one request at a time.
pub struct Connection {
    reader: FrameReader<ReadHalf<TcpStream>>,
    writer: WriteHalf<TcpStream>,
    correlation_id: i32,
    /// A call in flight gives up when the broker stops.
    shutdown: Shutdown,
}

pub async fn connect(
    ctx: &ShardCtx,
    leader: i32,
    shutdown: &Shutdown,
) -> Result<Connection, String> {
    let endpoint = ctx
        .metadata()
        .endpoint_of(leader)
        .ok_or_else(|| format!("broker {leader} is not registered"))?;
    let addr = format!("{}:{}", endpoint.host, endpoint.port);
    let connecting = std::pin::pin!(TcpStream::connect(addr.as_str()));
    let timeout = std::pin::pin!(glommio::timer::sleep(CONNECT_TIMEOUT));
    let stream = match select(connecting, timeout).await {
        Either::Left((Ok(stream), _)) => stream,
        Either::Left((Err(e), _)) => return Err(format!("connect {addr}: {e}")),
        Either::Right(_) => return Err(format!("connect {addr}: timed out")),
    };
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.split();
    Ok(Connection {
        reader: FrameReader::new(reader),
        writer,
        correlation_id: 0,
        shutdown: shutdown.clone(),
    })
}

impl Connection {
    /// Sends `body` and reads its answer (bounded by [`ANSWER_TIMEOUT`]).
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp, String> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let id = self.correlation_id;
        let frame =
            encode_request(api_key, version, id, CLIENT_ID, body).map_err(|e| e.to_string())?;
        let exchange = async {
            self.writer
                .write_all(&frame)
                .await
                .map_err(|e| format!("send: {e}"))?;
            self.reader
                .next(FRAME_BYTES_MAX)
                .await
                .map_err(|e| format!("receive: {e}"))?
                .ok_or_else(|| "the leader closed the connection".to_string())
        };
        let exchange = std::pin::pin!(exchange);
        let shutdown = self.shutdown.clone();
        let timeout = std::pin::pin!(async {
            let sleep = std::pin::pin!(glommio::timer::sleep(ANSWER_TIMEOUT));
            let stop = std::pin::pin!(shutdown.wait());
            match select(sleep, stop).await {
                Either::Left(_) => "no answer in time",
                Either::Right(_) => "the broker is stopping",
            }
        });
        let frame = match select(exchange, timeout).await {
            Either::Left((result, _)) => result?,
            Either::Right((why, _)) => return Err(why.to_string()),
        };
        let (header, body) = decode_response_with_header::<Resp>(api_key, version, frame)
            .map_err(|e| e.to_string())?;
        if header.correlation_id != id {
            return Err(format!("answer {} to request {id}", header.correlation_id));
        }
        Ok(body)
    }
}
