//! Kafka requests built by hand, below the client libraries: frames (request header v1), a
//! Produce v3 request, Fetch v0–4 requests, a record batch (magic 2) with its CRC32C, and readers
//! that tell an answer from a closed connection. For hostile-frame, pipelining, legacy-version
//! and connection-limit tests.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long a hostile connection may stay neither closed nor answered.
pub const VERDICT_TIMEOUT: Duration = Duration::from_secs(15);

pub const API_PRODUCE: i16 = 0;
pub const API_FETCH: i16 = 1;
pub const API_METADATA: i16 = 3;
pub const API_API_VERSIONS: i16 = 18;
pub const API_CREATE_TOPICS: i16 = 19;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const API_INIT_PRODUCER_ID: i16 = 22;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const INVALID_RECORD: i16 = 87;

/// A request header v1 (api key, version, correlation id, nullable client id) and a body,
/// framed with its 4-byte big-endian length.
pub fn frame(api_key: i16, api_version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let client_id = b"hostile";
    let mut payload = Vec::new();
    payload.extend_from_slice(&api_key.to_be_bytes());
    payload.extend_from_slice(&api_version.to_be_bytes());
    payload.extend_from_slice(&correlation_id.to_be_bytes());
    payload.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    payload.extend_from_slice(client_id);
    payload.extend_from_slice(body);
    with_length(&payload)
}

pub fn with_length(payload: &[u8]) -> Vec<u8> {
    let mut framed = (payload.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(payload);
    framed
}

/// What a hostile connection ended with.
#[derive(Debug)]
pub enum Verdict {
    /// EOF or reset before any complete response.
    Closed,
    /// A complete response frame (its bytes after the length).
    Answered(Vec<u8>),
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the broker");
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("set read timeout");
    // A broker that stops reading must fail the test, not block it.
    stream
        .set_write_timeout(Some(VERDICT_TIMEOUT))
        .expect("set write timeout");
    stream
}

/// Sends `bytes` and waits for the connection to be closed or for one complete response frame.
/// Panics if neither happens within [`VERDICT_TIMEOUT`].
pub fn send_and_judge(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Verdict {
    let mut stream = connect(addr);
    // The broker may close while we are still writing (e.g. after a bad length): that is a
    // verdict, not a test failure.
    if let Err(error) = stream.write_all(bytes) {
        assert!(
            matches!(
                error.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "unexpected write error: {error}"
        );
        return Verdict::Closed;
    }
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    read_any_verdict(&mut stream)
}

pub fn correlation_id_of(response: &[u8]) -> i32 {
    i32::from_be_bytes(
        response[..4]
            .try_into()
            .expect("a response has a correlation id"),
    )
}

/// Closed, or an answer that carries our correlation id (an error response).
pub fn assert_closed_or_error_response(case: &str, verdict: Verdict, correlation_id: i32) {
    match verdict {
        Verdict::Closed => {}
        Verdict::Answered(response) => assert_eq!(
            correlation_id_of(&response),
            correlation_id,
            "{case}: a response, but not to our request"
        ),
    }
}

pub fn assert_closed(case: &str, verdict: Verdict) {
    assert!(
        matches!(verdict, Verdict::Closed),
        "{case}: the connection must be closed, got {verdict:?}"
    );
}

/// Produce v3 (acks=1) for `topic` partition 0 carrying `records` as its record set.
pub fn produce_v3(topic: &str, correlation_id: i32, records: &[u8]) -> Vec<u8> {
    produce_v3_to(topic, 0, correlation_id, records)
}

/// Produce v3 (acks=1) for one partition of `topic` carrying `records` as its record set.
pub fn produce_v3_to(topic: &str, partition: i32, correlation_id: i32, records: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&5000i32.to_be_bytes()); // timeout_ms
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(records.len() as i32).to_be_bytes());
    body.extend_from_slice(records);
    frame(API_PRODUCE, 3, correlation_id, &body)
}

/// A record batch (magic 2) holding one record with a null key and `value`, with a correct
/// CRC32C. Layout: baseOffset, batchLength, partitionLeaderEpoch, magic, crc, then the CRC'd part:
/// attributes, lastOffsetDelta, baseTimestamp, maxTimestamp, producerId, producerEpoch,
/// baseSequence, records count, records.
pub fn record_batch(value: &[u8], timestamp_ms: i64) -> Vec<u8> {
    producer_record_batch(value, timestamp_ms, (-1, -1, -1))
}

/// [`record_batch`] carrying an idempotent producer's (id, epoch, base sequence).
pub fn producer_record_batch(
    value: &[u8],
    timestamp_ms: i64,
    producer: (i64, i16, i32),
) -> Vec<u8> {
    let mut record = vec![0u8, 0, 0, 1]; // attributes, timestampDelta 0, offsetDelta 0, key -1
    put_varint(&mut record, value.len() as i64); // value length
    record.extend_from_slice(value);
    record.push(0); // no headers
    let mut crc_part = Vec::new();
    crc_part.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression, CreateTime
    crc_part.extend_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta
    crc_part.extend_from_slice(&timestamp_ms.to_be_bytes()); // baseTimestamp
    crc_part.extend_from_slice(&timestamp_ms.to_be_bytes()); // maxTimestamp
    crc_part.extend_from_slice(&producer.0.to_be_bytes()); // producerId
    crc_part.extend_from_slice(&producer.1.to_be_bytes()); // producerEpoch
    crc_part.extend_from_slice(&producer.2.to_be_bytes()); // baseSequence
    crc_part.extend_from_slice(&1i32.to_be_bytes()); // records count
    put_varint(&mut crc_part, record.len() as i64); // record length
    crc_part.extend_from_slice(&record);
    let mut batch = Vec::new();
    batch.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
    batch.extend_from_slice(&((4 + 1 + 4 + crc_part.len()) as i32).to_be_bytes()); // batchLength
    batch.extend_from_slice(&0i32.to_be_bytes()); // partitionLeaderEpoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc32c::crc32c(&crc_part).to_be_bytes());
    batch.extend_from_slice(&crc_part);
    batch
}

/// Appends `v` as a zigzag varint.
fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// `batch` with its attributes replaced (e.g. 0x10 transactional, 0x20 control) and its CRC32C
/// recomputed.
pub fn with_attributes(mut batch: Vec<u8>, attributes: i16) -> Vec<u8> {
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// The single partition's (error code, base offset) in a Produce v3 response: after the
/// correlation id come topics[name, partitions[index, error_code, base_offset,
/// log_append_time]], throttle.
pub fn produce_v3_partition_result(response: &[u8], topic: &str) -> (i16, i64) {
    let rest = single_partition(response, 4, topic, "produce"); // after the correlation id
    (i16_at(rest, 0), i64_at(rest, 2))
}

/// Fetch of `version` (0–4) for partition 0 of `topic` from `offset`. Body: replica_id,
/// max_wait_ms, min_bytes, max_bytes (v3+), isolation_level (v4), then [topic, [partition,
/// fetch_offset, partition_max_bytes]].
pub fn fetch_request(
    version: i16,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
    correlation_id: i32,
) -> Vec<u8> {
    assert!(
        (0..=4).contains(&version),
        "Fetch v{version} is not built here"
    );
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica_id: a consumer
    body.extend_from_slice(&max_wait_ms.to_be_bytes());
    body.extend_from_slice(&min_bytes.to_be_bytes());
    if version >= 3 {
        body.extend_from_slice(&(1i32 << 20).to_be_bytes()); // max_bytes
    }
    if version >= 4 {
        body.push(0); // isolation_level: read uncommitted
    }
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&(1i32 << 20).to_be_bytes()); // partition_max_bytes
    frame(API_FETCH, version, correlation_id, &body)
}

/// Checks that `response` holds, from `at`, one topic named `topic` with one partition, and
/// returns the bytes after that partition's index (which is not checked).
fn single_partition<'a>(response: &'a [u8], mut at: usize, topic: &str, api: &str) -> &'a [u8] {
    assert_eq!(i32_at(response, at), 1, "one topic in the {api} response");
    at += 4;
    let name_len = i16_at(response, at) as usize;
    at += 2;
    assert_eq!(
        &response[at..at + name_len],
        topic.as_bytes(),
        "topic in the {api} response"
    );
    at += name_len;
    assert_eq!(
        i32_at(response, at),
        1,
        "one partition in the {api} response"
    );
    &response[at + 4 + 4..] // count, partition index
}

fn i16_at(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Sends one raw InitProducerId v0 (`transactional_id` null or given) and returns the
/// (error code, producer id, epoch) of the response: correlation id, throttle, error code,
/// producer id, epoch.
pub fn raw_init_producer_id(
    addr: SocketAddr,
    transactional_id: Option<&str>,
    correlation_id: i32,
) -> (i16, i64, i16) {
    let mut body = Vec::new();
    match transactional_id {
        None => body.extend_from_slice(&(-1i16).to_be_bytes()),
        Some(id) => {
            body.extend_from_slice(&(id.len() as i16).to_be_bytes());
            body.extend_from_slice(id.as_bytes());
        }
    }
    body.extend_from_slice(&60_000i32.to_be_bytes()); // transaction_timeout_ms
    let request = frame(API_INIT_PRODUCER_ID, 0, correlation_id, &body);
    let verdict = send_and_judge(addr, &request, false);
    let Verdict::Answered(response) = verdict else {
        panic!("InitProducerId v0 must be answered, got {verdict:?}");
    };
    assert_eq!(correlation_id_of(&response), correlation_id);
    assert_eq!(
        response.len(),
        4 + 4 + 2 + 8 + 2,
        "InitProducerId v0 response size"
    );
    (
        i16_at(&response, 8),
        i64_at(&response, 10),
        i16_at(&response, 18),
    )
}

/// Sends one raw Produce v3 and returns the partition's (error code, base offset).
pub fn raw_produce(
    addr: SocketAddr,
    topic: &str,
    correlation_id: i32,
    records: &[u8],
) -> (i16, i64) {
    let verdict = send_and_judge(addr, &produce_v3(topic, correlation_id, records), false);
    let Verdict::Answered(response) = verdict else {
        panic!("a well-formed Produce v3 request must be answered, got {verdict:?}");
    };
    assert_eq!(correlation_id_of(&response), correlation_id);
    produce_v3_partition_result(&response, topic)
}

/// Waits for one response frame carrying `correlation_id`, or the close of the connection.
pub fn read_verdict(stream: &mut TcpStream, correlation_id: i32) -> Verdict {
    let verdict = read_any_verdict(stream);
    if let Verdict::Answered(response) = &verdict {
        assert_eq!(correlation_id_of(response), correlation_id);
    }
    verdict
}

/// Waits for one complete response frame, or the close of the connection; panics if neither
/// happens within [`VERDICT_TIMEOUT`].
pub fn read_any_verdict(stream: &mut TcpStream) -> Verdict {
    match next_response(stream, &mut Vec::new()) {
        Some(response) => Verdict::Answered(response),
        None => Verdict::Closed,
    }
}

/// Reads the next response frame of a pipelined connection, keeping bytes that belong to later
/// frames in `pending`. None when the connection closes.
pub fn next_response(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    let deadline = Instant::now() + VERDICT_TIMEOUT;
    let mut chunk = [0u8; 65536];
    loop {
        if pending.len() >= 4 {
            let length = i32::from_be_bytes(pending[..4].try_into().expect("4 bytes"));
            assert!(
                length >= 4,
                "the broker sent a response frame of length {length}"
            );
            let end = 4 + length as usize;
            if pending.len() >= end {
                let response = pending[4..end].to_vec();
                pending.drain(..end);
                return Some(response);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no response within {VERDICT_TIMEOUT:?}"
        );
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read from the broker: {e}"),
        }
    }
}
