//! Raw Kafka requests that real clients rarely send this way: damaged record batches in a
//! well-formed Produce, an idempotent producer's retries, gaps and fenced epochs, deep
//! pipelining over partitions of every shard, more connections than `max.connections` allows,
//! and Fetch versions older than the codec.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{
    assert_round_trip, assign_all, connect, consume_exactly, consumer, correlation_id_of,
    create_topic, fetch_request, frame, next_response, produce_v3_partition_result, produce_v3_to,
    producer_record_batch, raw_init_producer_id, raw_produce, read_verdict, record_batch,
    with_attributes, Broker, Verdict, API_API_VERSIONS, CORRUPT_MESSAGE, INVALID_PRODUCER_EPOCH,
    INVALID_RECORD, OUT_OF_ORDER_SEQUENCE_NUMBER, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
};
use rdkafka::message::Message;
use rdkafka::Offset;

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
fn given_an_idempotent_producer_when_it_retries_skips_or_uses_an_old_epoch_should_dedupe_or_refuse()
{
    let mut broker = Broker::start();
    let topic = "idempotent-raw";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    let addr = broker.addr();

    let (error, id, epoch) = raw_init_producer_id(addr, None, 1);
    assert_eq!((error, epoch), (0, 0), "a fresh producer id at epoch 0");
    assert!(id >= 0);
    let (_, other, _) = raw_init_producer_id(addr, None, 2);
    assert_ne!(other, id, "every InitProducerId gets its own id");
    let (error, _, _) = raw_init_producer_id(addr, Some("txn"), 3);
    assert_eq!(
        error, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        "no transactions yet"
    );

    let ts = 1_700_000_000_000;
    let batch = |seq: i32, epoch: i16| producer_record_batch(b"once", ts, (id, epoch, seq));
    assert_eq!(raw_produce(addr, topic, 10, &batch(0, 0)), (0, 0));
    assert_eq!(raw_produce(addr, topic, 11, &batch(1, 0)), (0, 1));
    // The retry of a stored batch gets its first offset back and is not stored again.
    assert_eq!(
        raw_produce(addr, topic, 12, &batch(0, 0)),
        (0, 0),
        "a retry"
    );
    assert_eq!(
        raw_produce(addr, topic, 13, &batch(1, 0)),
        (0, 1),
        "a retry"
    );
    let (error, _) = raw_produce(addr, topic, 14, &batch(5, 0));
    assert_eq!(error, OUT_OF_ORDER_SEQUENCE_NUMBER, "a gap");
    assert_eq!(
        raw_produce(addr, topic, 15, &batch(0, 1)),
        (0, 2),
        "a new epoch"
    );
    let (error, _) = raw_produce(addr, topic, 16, &batch(2, 0));
    assert_eq!(error, INVALID_PRODUCER_EPOCH, "the old epoch is fenced");
    // Transactional and control batches: transactions are not served.
    let (error, _) = raw_produce(addr, topic, 17, &with_attributes(batch(1, 1), 0x10));
    assert_eq!(
        error, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        "a transactional batch"
    );
    let (error, _) = raw_produce(addr, topic, 18, &with_attributes(batch(1, 1), 0x20));
    assert_eq!(error, INVALID_RECORD, "a control batch from a client");

    // After kill -9 the partition still knows the producer: retries stay duplicates.
    broker.kill9();
    broker.restart();
    let addr = broker.addr();
    assert_eq!(
        raw_produce(addr, topic, 20, &batch(0, 1)),
        (0, 2),
        "a retry after a crash"
    );
    assert_eq!(raw_produce(addr, topic, 21, &batch(1, 1)), (0, 3));
    let reader = consumer(&broker.bootstrap(), &[]);
    assert_eq!(
        common::watermarks(&reader, topic, 0),
        (0, 4),
        "each batch stored once"
    );
    let (_, after_restart, _) = raw_init_producer_id(addr, None, 22);
    assert!(after_restart > other, "ids are not reused after a restart");
}

#[test]
fn given_an_idle_producer_past_producer_id_expiration_ms_should_be_forgotten() {
    let broker = Broker::start_with(&[
        ("producer.id.expiration.ms", "1"),
        ("log.retention.check.interval.ms", "100"),
    ]);
    let topic = "idempotent-expiry";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    let addr = broker.addr();
    let (_, id, _) = raw_init_producer_id(addr, None, 1);
    let batch = |seq: i32| producer_record_batch(b"x", 1_700_000_000_000, (id, 0, seq));
    assert_eq!(raw_produce(addr, topic, 2, &batch(0)), (0, 0));
    std::thread::sleep(Duration::from_millis(1000));
    // Forgotten by a retention pass: any sequence is accepted again, as from a new producer
    // (remembered, this would be OUT_OF_ORDER_SEQUENCE_NUMBER).
    assert_eq!(raw_produce(addr, topic, 3, &batch(7)), (0, 1));
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
    assert_round_trip(&mut broker, topic, 0);
}

#[test]
fn given_pipelined_requests_over_many_partitions_when_sent_without_waiting_should_answer_in_request_order(
) {
    const REQUESTS: i32 = 120;
    const PARTITIONS: i32 = 4;
    let broker = Broker::start();
    let topic = "pipelined";
    create_topic(&broker.bootstrap(), topic, PARTITIONS, &[]);

    // Produce requests for partitions on every shard, interleaved with ApiVersions (answered
    // on the connection's own shard at once): all written before any response is read.
    let mut bytes = Vec::new();
    for correlation_id in 0..REQUESTS {
        if correlation_id % 3 == 2 {
            bytes.extend_from_slice(&frame(API_API_VERSIONS, 0, correlation_id, &[]));
        } else {
            let partition = correlation_id % PARTITIONS;
            let value = format!("p{partition}-c{correlation_id}");
            let batch = record_batch(value.as_bytes(), 1_700_000_000_000);
            bytes.extend_from_slice(&produce_v3_to(topic, partition, correlation_id, &batch));
        }
    }
    let mut stream = connect(broker.addr());
    stream
        .write_all(&bytes)
        .expect("write the pipelined requests");

    let mut next_offset = [0i64; PARTITIONS as usize];
    let mut pending = Vec::new();
    for correlation_id in 0..REQUESTS {
        let response = next_response(&mut stream, &mut pending)
            .unwrap_or_else(|| panic!("the connection closed before response {correlation_id}"));
        assert_eq!(
            correlation_id_of(&response),
            correlation_id,
            "responses must come back in request order"
        );
        if correlation_id % 3 != 2 {
            let partition = correlation_id % PARTITIONS;
            let (error_code, base_offset) = produce_v3_partition_result(&response, topic);
            assert_eq!(
                error_code, 0,
                "produce {correlation_id} to partition {partition}"
            );
            assert_eq!(
                base_offset, next_offset[partition as usize],
                "offsets of partition {partition} follow request order"
            );
            next_offset[partition as usize] += 1;
        }
    }
}

#[test]
fn given_an_empty_partition_when_fetched_with_min_bytes_zero_should_answer_without_waiting() {
    let broker = Broker::start();
    let topic = "min-bytes-zero";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    let mut stream = connect(broker.addr());
    // A 20 s wait would outlast read_verdict's own 15 s bound: answering at once is the only way
    // through (Kafka: min_bytes 0 means "whatever is there, now").
    stream
        .write_all(&fetch_request(4, topic, 0, 20_000, 0, 41))
        .expect("send fetch");
    match read_verdict(&mut stream, 41) {
        Verdict::Answered(_) => {}
        Verdict::Closed => panic!("the broker closed the connection instead of answering"),
    }
}
