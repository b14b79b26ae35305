//! Fetch sessions (KIP-227) with raw Fetch v12 requests (librdkafka sends none; the Java client
//! and franz-go do): a session over many partitions, incremental fetches that carry and return
//! only what changed, and the session errors.

mod common;

use bytes::{Bytes, BytesMut};
use common::{
    create_topic, frame, next_response, now_ms, produce_v3_partition_result, produce_v3_to,
    record_batch, send_and_judge, Broker, Verdict,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const PARTITIONS: i32 = 100;
const FETCH_VERSION: i16 = 12;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

fn fetch(session_id: i32, epoch: i32, partitions: &[(i32, i64)]) -> FetchRequest {
    let topic = FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_static_str("sessions")))
        .with_partitions(
            partitions
                .iter()
                .map(|&(p, offset)| {
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20)
                })
                .collect(),
        );
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(50 << 20)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(if partitions.is_empty() {
            vec![]
        } else {
            vec![topic]
        })
}

/// Sends a Fetch v12 and returns the decoded answer and the size of its frame.
fn send(
    stream: &mut std::net::TcpStream,
    correlation_id: i32,
    request: &FetchRequest,
) -> (FetchResponse, usize) {
    use std::io::Write;
    let mut body = BytesMut::new();
    body.extend_from_slice(&[0]); // request header v2: no tagged fields
    request.encode(&mut body, FETCH_VERSION).expect("encode");
    stream
        .write_all(&frame(1, FETCH_VERSION, correlation_id, &body))
        .expect("send");
    let response = next_response(stream, &mut Vec::new()).expect("an answer");
    // Response header v1: correlation id and no tagged fields.
    let mut rest = Bytes::copy_from_slice(&response[5..]);
    let answer = FetchResponse::decode(&mut rest, FETCH_VERSION).expect("decode");
    (answer, response.len())
}

fn partitions_answered(response: &FetchResponse) -> Vec<i32> {
    response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
        .collect()
}

#[test]
fn given_a_session_over_many_partitions_when_fetching_incrementally_should_answer_only_what_changed(
) {
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), "sessions", PARTITIONS, &[]);
    let mut stream = common::connect(broker.addr());
    let all: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();

    // A full fetch opening a session: every partition answered, a session id handed out.
    let (full, full_bytes) = send(&mut stream, 1, &fetch(0, 0, &all));
    assert_eq!(full.error_code, 0);
    let id = full.session_id;
    assert!(id > 0, "a session was created");
    assert_eq!(partitions_answered(&full).len(), PARTITIONS as usize);

    // Nothing changed: the incremental answer carries no partition at all.
    let (idle, idle_bytes) = send(&mut stream, 2, &fetch(id, 1, &[]));
    assert_eq!((idle.error_code, idle.session_id), (0, id));
    assert!(partitions_answered(&idle).is_empty(), "{idle:?}");
    eprintln!(
        "fetch session with {PARTITIONS} idle partitions: full answer {full_bytes} bytes, \
         incremental {idle_bytes} bytes"
    );

    // A record on partition 7: only it comes back, with the record.
    let produce = produce_v3_to("sessions", 7, 3, &record_batch(b"news", now_ms()));
    let Verdict::Answered(produced) = send_and_judge(broker.addr(), &produce, false) else {
        panic!("the produce must be answered");
    };
    assert_eq!(produce_v3_partition_result(&produced, "sessions"), (0, 0));
    let (news, _) = send(&mut stream, 4, &fetch(id, 2, &[]));
    assert_eq!(partitions_answered(&news), vec![7]);
    let records = news.responses[0].partitions[0]
        .records
        .as_ref()
        .expect("records");
    assert!(!records.is_empty());

    // The client moves partition 7 past the record: nothing new again.
    let (quiet, _) = send(&mut stream, 5, &fetch(id, 3, &[(7, 1)]));
    assert!(partitions_answered(&quiet).is_empty(), "{quiet:?}");

    // A reused epoch and an unknown session are refused at the top level.
    let (stale, _) = send(&mut stream, 6, &fetch(id, 3, &[]));
    assert_eq!(stale.error_code, INVALID_FETCH_SESSION_EPOCH);
    let (unknown, _) = send(&mut stream, 7, &fetch(id + 1_000_000, 1, &[]));
    assert_eq!(unknown.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // Closing the session: a full answer without a session, then the id is gone.
    let (closed, _) = send(&mut stream, 8, &fetch(id, -1, &all[..3]));
    assert_eq!(
        (closed.session_id, partitions_answered(&closed).len()),
        (0, 3)
    );
    let (gone, _) = send(&mut stream, 9, &fetch(id, 4, &[]));
    assert_eq!(gone.error_code, FETCH_SESSION_ID_NOT_FOUND);
}
