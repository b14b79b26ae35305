//! Hostile bytes over raw TCP: each bad connection is closed (or answered with an error), and the
//! broker keeps serving everyone else.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{assign_all, consume_exactly, consumer, create_topic, flush, producer, send, Broker};
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::Offset;

/// The broker's frame limit in these tests.
const REQUEST_MAX_BYTES: i32 = 1024 * 1024;
/// How long a hostile connection may stay neither closed nor answered.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(15);

const API_PRODUCE: i16 = 0;
const API_METADATA: i16 = 3;
const API_API_VERSIONS: i16 = 18;
const API_CREATE_TOPICS: i16 = 19;
const UNSUPPORTED_VERSION: i16 = 35;
const CORRUPT_MESSAGE: i16 = 2;

/// A request header v1 (api key, version, correlation id, nullable client id) and a body,
/// framed with its 4-byte big-endian length.
fn frame(api_key: i16, api_version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
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

fn with_length(payload: &[u8]) -> Vec<u8> {
    let mut framed = (payload.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(payload);
    framed
}

/// What a hostile connection ended with.
#[derive(Debug)]
enum Verdict {
    /// EOF or reset before any complete response.
    Closed,
    /// A complete response frame (its bytes after the length).
    Answered(Vec<u8>),
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the broker");
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("set read timeout");
    stream
}

/// Sends `bytes` and waits for the connection to be closed or for one complete response frame.
/// Panics if neither happens within [`VERDICT_TIMEOUT`].
fn send_and_judge(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Verdict {
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

fn correlation_id_of(response: &[u8]) -> i32 {
    i32::from_be_bytes(
        response[..4]
            .try_into()
            .expect("a response has a correlation id"),
    )
}

/// Closed, or an answer that carries our correlation id (an error response).
fn assert_closed_or_error_response(case: &str, verdict: Verdict, correlation_id: i32) {
    match verdict {
        Verdict::Closed => {}
        Verdict::Answered(response) => assert_eq!(
            correlation_id_of(&response),
            correlation_id,
            "{case}: a response, but not to our request"
        ),
    }
}

fn assert_closed(case: &str, verdict: Verdict) {
    assert!(
        matches!(verdict, Verdict::Closed),
        "{case}: the connection must be closed, got {verdict:?}"
    );
}

/// Produces and consumes one record with librdkafka: the broker still serves real clients.
fn assert_normal_service(broker: &mut Broker, topic: &str, round: usize) {
    broker.assert_alive();
    let (producer, log) = producer(&broker.bootstrap(), &[]);
    let value = format!("after hostile round {round}");
    send(
        &producer,
        BaseRecord::with_opaque_to(topic, round)
            .key("k")
            .payload(&value),
    )
    .expect("queue");
    flush(&producer);
    assert_eq!(
        log.acked_count(),
        1,
        "produce after hostile frames failed: {:?}",
        log.failed()
    );
    let reader = consumer(&broker.bootstrap(), &[]);
    assign_all(&reader, topic, 1, Offset::Beginning);
    let got = consume_exactly(&reader, round + 1, Duration::from_secs(30));
    assert_eq!(got[round].payload(), Some(value.as_bytes()));
    broker.assert_alive();
}

#[test]
fn given_valid_raw_api_versions_request_when_sent_should_get_matching_response() {
    // Proves the raw framing used by the hostile cases is right: a correct request is answered.
    let broker = Broker::start();
    let verdict = send_and_judge(broker.addr(), &frame(API_API_VERSIONS, 0, 4242, &[]), false);
    let Verdict::Answered(response) = verdict else {
        panic!("ApiVersions v0 got no response: {verdict:?}");
    };
    assert_eq!(correlation_id_of(&response), 4242);
    let error_code = i16::from_be_bytes(response[4..6].try_into().expect("error code"));
    assert_eq!(error_code, 0, "ApiVersions v0 error code");
}

#[test]
fn given_hostile_frames_when_sent_on_raw_connections_should_close_them_and_keep_serving_clients() {
    let mut broker =
        Broker::start_with(&[("socket.request.max.bytes", &REQUEST_MAX_BYTES.to_string())]);
    let topic = "survivor";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    let addr = broker.addr();
    let mut round = 0;
    assert_normal_service(&mut broker, topic, round);

    // 1. Not Kafka at all: an HTTP request (its first 4 bytes read as a ~1.2 GB length).
    let verdict = send_and_judge(addr, b"GET / HTTP/1.1\r\nHost: odradek\r\n\r\n", false);
    assert_closed("http garbage", verdict);

    // 2. Random garbage of every kind (a fixed seed keeps failures reproducible).
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0x00d7_adec);
    for attempt in 0..20 {
        let len = rand::Rng::gen_range(&mut rng, 1..600);
        let bytes: Vec<u8> = (0..len).map(|_| rand::Rng::gen::<u8>(&mut rng)).collect();
        // Whatever it is, the broker must close or answer it; it must not hang or crash.
        let _ = send_and_judge(addr, &bytes, true);
        assert!(
            broker.is_alive(),
            "the broker died on random garbage #{attempt}: {bytes:02x?}"
        );
    }

    // 3. Negative length.
    let mut bytes = (-5i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 32]);
    assert_closed("negative length", send_and_judge(addr, &bytes, false));

    // 4. Length i32::MIN and zero length.
    assert_closed(
        "i32::MIN length",
        send_and_judge(addr, &i32::MIN.to_be_bytes(), false),
    );
    assert_closed(
        "zero length",
        send_and_judge(addr, &0i32.to_be_bytes(), false),
    );

    // 5. Huge length: over socket.request.max.bytes; the broker must not wait for (or buffer)
    //    the body it announced.
    let mut bytes = (REQUEST_MAX_BYTES + 1).to_be_bytes().to_vec();
    bytes.extend_from_slice(&frame(API_API_VERSIONS, 0, 1, &[])[4..]);
    assert_closed(
        "length over socket.request.max.bytes",
        send_and_judge(addr, &bytes, false),
    );
    assert_closed(
        "i32::MAX length",
        send_and_judge(addr, &i32::MAX.to_be_bytes(), false),
    );

    round += 1;
    assert_normal_service(&mut broker, topic, round);

    // 6. Truncated headers: a frame too short for a request header.
    //    Without a whole correlation id there is nobody to answer: the connection must close.
    for payload in [&[0u8][..], &[0, 18], &[0, 18, 0], &[0, 18, 0, 3, 0, 0]] {
        let verdict = send_and_judge(addr, &with_length(payload), false);
        assert_closed(&format!("truncated header {payload:?}"), verdict);
    }
    //    The correlation id is there but the client id length is cut.
    let verdict = send_and_judge(addr, &with_length(&[0, 18, 0, 3, 0, 0, 0, 9, 0]), false);
    assert_closed_or_error_response("client id length cut", verdict, 9);
    //    A client id whose length runs past the frame.
    let mut payload = Vec::new();
    payload.extend_from_slice(&API_API_VERSIONS.to_be_bytes());
    payload.extend_from_slice(&0i16.to_be_bytes());
    payload.extend_from_slice(&77i32.to_be_bytes());
    payload.extend_from_slice(&500i16.to_be_bytes());
    payload.extend_from_slice(b"short");
    let verdict = send_and_judge(addr, &with_length(&payload), false);
    assert_closed_or_error_response("client id past the frame", verdict, 77);
    //    A frame whose announced body never comes (the client hangs up mid-frame).
    let mut bytes = 100i32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0, 18, 0, 0]);
    assert_closed("body cut by the peer", send_and_judge(addr, &bytes, true));

    // 7. Unknown API keys.
    for key in [9999i16, -1, i16::MAX, 200] {
        let verdict = send_and_judge(addr, &frame(key, 0, 31, &[]), false);
        assert_closed_or_error_response(&format!("unknown api key {key}"), verdict, 31);
    }

    round += 1;
    assert_normal_service(&mut broker, topic, round);

    // 8. Unsupported versions. ApiVersions must answer UNSUPPORTED_VERSION (clients downgrade
    //    from that answer); other APIs may close or answer with an error.
    //    Shaped as a newer client sends it: request header v2 (tagged fields after the client
    //    id) and a v3-like body (client software name and version, tagged fields).
    let body = [&[0u8][..], &[13], b"odradek-test", &[4], b"1.0", &[0]].concat();
    let verdict = send_and_judge(addr, &frame(API_API_VERSIONS, 127, 55, &body), false);
    let Verdict::Answered(response) = verdict else {
        panic!("ApiVersions v127 must be answered with UNSUPPORTED_VERSION, got {verdict:?}");
    };
    assert_eq!(correlation_id_of(&response), 55);
    let error_code = i16::from_be_bytes(response[4..6].try_into().expect("error code"));
    assert_eq!(
        error_code, UNSUPPORTED_VERSION,
        "ApiVersions v127 error code"
    );
    for (key, version) in [
        (API_PRODUCE, 99),
        (API_METADATA, 99),
        (API_METADATA, -1),
        (API_CREATE_TOPICS, 300),
    ] {
        let verdict = send_and_judge(addr, &frame(key, version, 56, &[1, 2, 3]), false);
        assert_closed_or_error_response(&format!("api {key} version {version}"), verdict, 56);
    }

    // 9. Junk bodies for known keys and versions.
    let junk: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    let junk_cases: [(i16, i16); 8] = [
        (API_PRODUCE, 3),
        (API_PRODUCE, 9),
        (1, 4),  // Fetch v4
        (1, 12), // Fetch v12 (flexible)
        (API_METADATA, 1),
        (API_METADATA, 9),
        (API_CREATE_TOPICS, 5),
        (2, 1), // ListOffsets v1
    ];
    for (key, version) in junk_cases {
        let verdict = send_and_judge(addr, &frame(key, version, 77, &junk), false);
        assert_closed_or_error_response(
            &format!("junk body for api {key} v{version}"),
            verdict,
            77,
        );
        //  An all-0xff body: huge compact lengths and -1 everywhere.
        let verdict = send_and_judge(addr, &frame(key, version, 78, &[0xff; 48]), false);
        assert_closed_or_error_response(
            &format!("0xff body for api {key} v{version}"),
            verdict,
            78,
        );
    }
    //  A Produce v3 request whose record set is junk: never stored (checked at the end).
    let verdict = send_and_judge(addr, &produce_v3(topic, 91, &junk), false);
    assert_closed_or_error_response("produce v3 with a junk record set", verdict, 91);

    // 10. A good request after a bad one on the same connection is not required to work, but a
    //     fresh connection must be served right away.
    let verdict = send_and_judge(addr, &frame(API_API_VERSIONS, 0, 99, &[]), false);
    let Verdict::Answered(response) = verdict else {
        panic!("ApiVersions after the hostile frames got no response: {verdict:?}");
    };
    assert_eq!(correlation_id_of(&response), 99);

    round += 1;
    assert_normal_service(&mut broker, topic, round);

    // Nothing hostile was stored: the topic holds exactly the normal-service records.
    let reader = consumer(&broker.bootstrap(), &[]);
    assert_eq!(common::watermarks(&reader, topic, 0), (0, round as i64 + 1));
}

/// Produce v3 (acks=1) for `topic` partition 0 carrying `records` as its record set.
fn produce_v3(topic: &str, correlation_id: i32, records: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&5000i32.to_be_bytes()); // timeout_ms
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&0i32.to_be_bytes()); // partition 0
    body.extend_from_slice(&(records.len() as i32).to_be_bytes());
    body.extend_from_slice(records);
    frame(API_PRODUCE, 3, correlation_id, &body)
}

/// A record batch (magic 2) holding one record with a null key and `value`, with a correct
/// CRC32C. Layout: baseOffset, batchLength, partitionLeaderEpoch, magic, crc, then the CRC'd part:
/// attributes, lastOffsetDelta, baseTimestamp, maxTimestamp, producerId, producerEpoch,
/// baseSequence, records count, records.
fn record_batch(value: &[u8], timestamp_ms: i64) -> Vec<u8> {
    assert!(value.len() < 60, "one-byte varints only");
    let mut record = vec![0u8, 0, 0, 1]; // attributes, timestampDelta 0, offsetDelta 0, key -1
    record.push((value.len() as u8) << 1); // value length (zigzag varint)
    record.extend_from_slice(value);
    record.push(0); // no headers
    let mut crc_part = Vec::new();
    crc_part.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression, CreateTime
    crc_part.extend_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta
    crc_part.extend_from_slice(&timestamp_ms.to_be_bytes()); // baseTimestamp
    crc_part.extend_from_slice(&timestamp_ms.to_be_bytes()); // maxTimestamp
    crc_part.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
    crc_part.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
    crc_part.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
    crc_part.extend_from_slice(&1i32.to_be_bytes()); // records count
    crc_part.push((record.len() as u8) << 1); // record length (zigzag varint)
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

/// The single partition's (error code, base offset) in a Produce v3 response: after the
/// correlation id come topics[name, partitions[index, error_code, base_offset,
/// log_append_time]], throttle.
fn produce_v3_partition_result(response: &[u8], topic: &str) -> (i16, i64) {
    let mut at = 4; // correlation id
    let topics = i32::from_be_bytes(response[at..at + 4].try_into().expect("topic count"));
    assert_eq!(topics, 1, "one topic in the produce response");
    at += 4;
    let name_len =
        i16::from_be_bytes(response[at..at + 2].try_into().expect("name length")) as usize;
    at += 2;
    assert_eq!(
        &response[at..at + name_len],
        topic.as_bytes(),
        "topic in the produce response"
    );
    at += name_len;
    let partitions = i32::from_be_bytes(response[at..at + 4].try_into().expect("partition count"));
    assert_eq!(partitions, 1, "one partition in the produce response");
    at += 4 + 4; // count, partition index
    let error_code = i16::from_be_bytes(response[at..at + 2].try_into().expect("error code"));
    let base_offset =
        i64::from_be_bytes(response[at + 2..at + 10].try_into().expect("base offset"));
    (error_code, base_offset)
}

/// Sends one raw Produce v3 and returns the partition's (error code, base offset).
fn raw_produce(addr: SocketAddr, topic: &str, correlation_id: i32, records: &[u8]) -> (i16, i64) {
    let verdict = send_and_judge(addr, &produce_v3(topic, correlation_id, records), false);
    let Verdict::Answered(response) = verdict else {
        panic!("a well-formed Produce v3 request must be answered, got {verdict:?}");
    };
    assert_eq!(correlation_id_of(&response), correlation_id);
    produce_v3_partition_result(&response, topic)
}

#[test]
fn given_raw_produce_with_damaged_batch_when_sent_should_answer_corrupt_message_and_store_nothing()
{
    let broker = Broker::start();
    let topic = "raw";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    let addr = broker.addr();

    // A correct batch is stored at offset 0: proves the raw encoding used below is right.
    let good = record_batch(b"hello", 1_700_000_000_000);
    assert_eq!(raw_produce(addr, topic, 1, &good), (0, 0), "a valid batch");

    // A wrong CRC: CORRUPT_MESSAGE (Kafka checks the CRC before reading the batch).
    let mut bad_crc = record_batch(b"crc", 1_700_000_000_001);
    bad_crc[40] ^= 0x01; // inside the CRC'd part
    let (error_code, _) = raw_produce(addr, topic, 2, &bad_crc);
    assert_eq!(error_code, CORRUPT_MESSAGE, "a batch with a wrong CRC");

    // A batch length that runs past the record set: refused (any error code).
    let mut too_long = record_batch(b"long", 1_700_000_000_002);
    too_long[8..12].copy_from_slice(&1000i32.to_be_bytes());
    let (error_code, _) = raw_produce(addr, topic, 3, &too_long);
    assert_ne!(
        error_code, 0,
        "a batch whose length runs past the record set"
    );

    // Magic 1 (an old message format): refused (any error code).
    let mut old_magic = record_batch(b"old", 1_700_000_000_003);
    old_magic[16] = 1;
    let (error_code, _) = raw_produce(addr, topic, 4, &old_magic);
    assert_ne!(error_code, 0, "a batch with magic 1");

    // Only the good record is there, and a real client reads it.
    let reader = consumer(&broker.bootstrap(), &[]);
    assert_eq!(common::watermarks(&reader, topic, 0), (0, 1));
    assign_all(&reader, topic, 1, Offset::Beginning);
    let got = consume_exactly(&reader, 1, Duration::from_secs(30));
    assert_eq!(got[0].payload(), Some(&b"hello"[..]));
    assert_eq!(got[0].key(), None);
    assert_eq!(
        got[0].timestamp(),
        rdkafka::Timestamp::CreateTime(1_700_000_000_000)
    );
}

#[test]
fn given_more_connections_than_max_connections_when_opened_should_refuse_the_excess_and_recover() {
    const PER_SHARD: usize = 4;
    const SHARDS: usize = 2;
    const OPENED: usize = 24;
    let mut broker = Broker::start_with(&[("max.connections", &PER_SHARD.to_string())]);
    let addr = broker.addr();

    // Open them all first, then ask each for ApiVersions.
    let mut streams: Vec<TcpStream> = (0..OPENED).map(|_| connect(addr)).collect();
    let mut answered = 0;
    let mut closed = 0;
    for (i, stream) in streams.iter_mut().enumerate() {
        let correlation_id = 1000 + i as i32;
        if stream
            .write_all(&frame(API_API_VERSIONS, 0, correlation_id, &[]))
            .is_err()
        {
            closed += 1;
            continue;
        }
        match read_verdict(stream, correlation_id) {
            Verdict::Closed => closed += 1,
            Verdict::Answered(_) => answered += 1,
        }
    }
    eprintln!("{OPENED} connections: {answered} answered, {closed} refused");
    assert!(answered >= 1, "no connection was served at all");
    assert!(
        answered <= PER_SHARD * SHARDS,
        "{answered} connections served with max.connections={PER_SHARD} on {SHARDS} shards"
    );
    assert_eq!(
        answered + closed,
        OPENED,
        "every connection is served or closed"
    );

    // Once they are gone, the slots are free again.
    drop(streams);
    std::thread::sleep(Duration::from_millis(500));
    let topic = "after-limit";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    assert_normal_service(&mut broker, topic, 0);
}

/// Waits for one response frame carrying `correlation_id`, or the close of the connection.
fn read_verdict(stream: &mut TcpStream, correlation_id: i32) -> Verdict {
    let verdict = read_any_verdict(stream);
    if let Verdict::Answered(response) = &verdict {
        assert_eq!(correlation_id_of(response), correlation_id);
    }
    verdict
}

/// Waits for one complete response frame, or the close of the connection; panics if neither
/// happens within [`VERDICT_TIMEOUT`].
fn read_any_verdict(stream: &mut TcpStream) -> Verdict {
    let deadline = Instant::now() + VERDICT_TIMEOUT;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if received.len() >= 4 {
            let length = i32::from_be_bytes(received[..4].try_into().expect("4 bytes"));
            assert!(
                length >= 4,
                "the broker sent a response frame of length {length}"
            );
            let length = length as usize;
            if received.len() >= 4 + length {
                return Verdict::Answered(received[4..4 + length].to_vec());
            }
        }
        assert!(
            Instant::now() < deadline,
            "the connection was neither closed nor answered within {VERDICT_TIMEOUT:?} \
             (got {} bytes)",
            received.len()
        );
        match stream.read(&mut chunk) {
            Ok(0) => return Verdict::Closed,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Verdict::Closed,
            Err(e) => panic!("read from the broker: {e}"),
        }
    }
}
