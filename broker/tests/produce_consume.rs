//! Produce and consume through the real broker with librdkafka: every compression codec,
//! ordering, keys, headers and timestamps, acks 0/1/all, a consumer tailing live writes, and a
//! record near the size limit.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::thread;
use std::time::Duration;

use common::{
    assign_all, consume_exactly, consumer, create_topic, flush, producer, send, watermarks, Broker,
};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, Timestamp, TopicPartitionList};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const RECORDS_PER_CODEC: usize = 20_000;
const PARTITIONS: i32 = 6;
const KEYS: usize = 600;
/// CreateTime of record `seq` is `BASE_TIMESTAMP_MS + seq` (2024-01-01T00:00:00Z + seq ms).
const BASE_TIMESTAMP_MS: i64 = 1_704_067_200_000;

/// What record number `seq` (0-based, global across codecs) must look like.
struct Expected {
    key: String,
    value: Vec<u8>,
    timestamp_ms: i64,
}

fn expected(seq: usize) -> Expected {
    let key = format!("key-{:04}", seq % KEYS);
    // Repetitive text so every codec actually compresses, plus the sequence number so no two
    // values are equal.
    let value = format!(
        "value {seq:08} of {key}; {}",
        "odradek ".repeat(seq % 17 + 3)
    )
    .into_bytes();
    Expected {
        key,
        value,
        timestamp_ms: BASE_TIMESTAMP_MS + seq as i64,
    }
}

fn expected_headers(seq: usize, codec: &str) -> Vec<(String, Option<Vec<u8>>)> {
    vec![
        ("seq".to_string(), Some(seq.to_string().into_bytes())),
        ("codec".to_string(), Some(codec.as_bytes().to_vec())),
        ("empty".to_string(), Some(Vec::new())),
        ("null".to_string(), None),
        // A repeated header key is legal in Kafka and must keep its order.
        ("seq".to_string(), Some(format!("again-{seq}").into_bytes())),
    ]
}

fn headers_of(message: &OwnedMessage) -> Vec<(String, Option<Vec<u8>>)> {
    match message.headers() {
        None => Vec::new(),
        Some(headers) => headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
            .collect(),
    }
}

fn seq_of(message: &OwnedMessage) -> usize {
    let headers = message.headers().unwrap_or_else(|| {
        panic!(
            "record at {}/{} has no headers",
            message.partition(),
            message.offset()
        )
    });
    let seq = headers.get(0);
    assert_eq!(
        seq.key,
        "seq",
        "first header of {}/{}",
        message.partition(),
        message.offset()
    );
    std::str::from_utf8(seq.value.expect("seq header has a value"))
        .expect("seq header is UTF-8")
        .parse()
        .expect("seq header is a number")
}

#[test]
fn given_six_partition_topic_when_100k_keyed_records_with_headers_produced_under_every_codec_should_consume_all_intact_and_in_order(
) {
    let mut broker = Broker::start();
    let topic = "codecs";
    create_topic(&broker.bootstrap(), topic, PARTITIONS, &[]);

    // Produce codec after codec with acks=all; each producer is flushed before the next one
    // starts, so within a partition the global sequence number must only grow.
    let mut delivered: HashMap<usize, (i32, i64)> = HashMap::new();
    for (codec_index, codec) in CODECS.iter().enumerate() {
        let (producer, log) = producer(
            &broker.bootstrap(),
            &[
                ("compression.type", codec),
                ("linger.ms", "20"),
                ("batch.num.messages", "2000"),
            ],
        );
        for i in 0..RECORDS_PER_CODEC {
            let seq = codec_index * RECORDS_PER_CODEC + i;
            let record = expected(seq);
            let mut headers = OwnedHeaders::new();
            for (key, value) in expected_headers(seq, codec) {
                headers = headers.insert(Header {
                    key: &key,
                    value: value.as_deref(),
                });
            }
            send(
                &producer,
                BaseRecord::with_opaque_to(topic, seq)
                    .key(&record.key)
                    .payload(&record.value)
                    .headers(headers)
                    .timestamp(record.timestamp_ms),
            )
            .unwrap_or_else(|e| panic!("queue record {seq} ({codec}): {e}"));
        }
        flush(&producer);
        let failed = log.failed();
        assert!(
            failed.is_empty(),
            "{codec}: {} of {RECORDS_PER_CODEC} records failed, first: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        let acked = log.acked();
        assert_eq!(
            acked.len(),
            RECORDS_PER_CODEC,
            "{codec}: every record acknowledged"
        );
        for ack in acked {
            delivered.insert(ack.id, (ack.partition, ack.offset));
        }
    }
    let total = CODECS.len() * RECORDS_PER_CODEC;
    assert_eq!(delivered.len(), total);

    // The high watermarks add up to what was produced.
    let reader = consumer(&broker.bootstrap(), &[]);
    let mut high_sum = 0;
    for partition in 0..PARTITIONS {
        let (low, high) = watermarks(&reader, topic, partition);
        assert_eq!(low, 0, "partition {partition} log start offset");
        high_sum += high;
    }
    assert_eq!(high_sum, total as i64, "sum of high watermarks");

    assign_all(&reader, topic, PARTITIONS, Offset::Beginning);
    let messages = consume_exactly(&reader, total, Duration::from_secs(180));

    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut last_seq_of_partition: HashMap<i32, usize> = HashMap::new();
    let mut last_seq_of_key: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut partition_of_key: HashMap<Vec<u8>, i32> = HashMap::new();
    let mut seen = vec![false; total];
    for message in &messages {
        let partition = message.partition();
        let offset = message.offset();
        let where_ = format!("{topic}/{partition}@{offset}");
        assert_eq!(message.topic(), topic);

        // Offsets in a partition are contiguous from 0: no gap, no repeat.
        let expected_offset = next_offset.entry(partition).or_insert(0);
        assert_eq!(
            offset, *expected_offset,
            "{where_}: offsets must be contiguous"
        );
        *expected_offset += 1;

        let seq = seq_of(message);
        assert!(seq < total, "{where_}: seq {seq} out of range");
        assert!(!seen[seq], "{where_}: seq {seq} delivered twice");
        seen[seq] = true;
        assert_eq!(
            delivered[&seq],
            (partition, offset),
            "{where_}: record {seq} is not where its delivery report put it"
        );

        let want = expected(seq);
        let codec = CODECS[seq / RECORDS_PER_CODEC];
        assert_eq!(
            message.key(),
            Some(want.key.as_bytes()),
            "{where_}: key of {seq}"
        );
        assert_eq!(
            message.payload(),
            Some(&want.value[..]),
            "{where_}: value of {seq}"
        );
        assert_eq!(
            headers_of(message),
            expected_headers(seq, codec),
            "{where_}: headers of {seq}"
        );
        assert_eq!(
            message.timestamp(),
            Timestamp::CreateTime(want.timestamp_ms),
            "{where_}: timestamp of {seq}"
        );

        if let Some(previous) = last_seq_of_partition.insert(partition, seq) {
            assert!(
                previous < seq,
                "{where_}: partition order broken: {previous} then {seq}"
            );
        }
        let key = want.key.into_bytes();
        if let Some(previous) = last_seq_of_key.insert(key.clone(), seq) {
            assert!(
                previous < seq,
                "{where_}: key order broken: {previous} then {seq}"
            );
        }
        let first_partition = *partition_of_key.entry(key).or_insert(partition);
        assert_eq!(
            first_partition, partition,
            "{where_}: one key, one partition"
        );
    }
    assert!(seen.iter().all(|s| *s), "every record consumed");
    assert_eq!(
        next_offset.len(),
        PARTITIONS as usize,
        "600 keys must land on all {PARTITIONS} partitions"
    );

    // Starting in the middle of a (compressed) batch: the broker returns the batch that contains
    // the offset and the client skips to it.
    let by_position: HashMap<(i32, i64), usize> =
        delivered.iter().map(|(seq, at)| (*at, *seq)).collect();
    for partition in 0..PARTITIONS {
        let middle = next_offset[&partition] / 2 + 1;
        let from_middle = consumer(&broker.bootstrap(), &[]);
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(middle))
            .expect("add partition");
        from_middle.assign(&list).expect("assign");
        let first = consume_exactly(&from_middle, 1, Duration::from_secs(30));
        assert_eq!(
            first[0].offset(),
            middle,
            "partition {partition}: first record read"
        );
        assert_eq!(seq_of(&first[0]), by_position[&(partition, middle)]);
    }

    // After a clean restart every compressed batch reads back the same.
    broker.stop();
    broker.restart();
    let reader = consumer(&broker.bootstrap(), &[]);
    assign_all(&reader, topic, PARTITIONS, Offset::Beginning);
    let again = consume_exactly(&reader, total, Duration::from_secs(180));
    let distinct: std::collections::HashSet<usize> = again.iter().map(seq_of).collect();
    assert_eq!(distinct.len(), total, "every record once after a restart");
    for message in &again {
        let seq = seq_of(message);
        assert_eq!(
            delivered[&seq],
            (message.partition(), message.offset()),
            "record {seq} moved after a restart"
        );
        assert_eq!(
            message.payload(),
            Some(&expected(seq).value[..]),
            "record {seq} after a restart"
        );
    }
}

#[test]
fn given_acks_zero_and_acks_one_producers_when_records_sent_should_store_them_all() {
    let broker = Broker::start();
    let topic = "acks";
    create_topic(&broker.bootstrap(), topic, 2, &[]);
    for (acks, first) in [("0", 0usize), ("1", 1000)] {
        let (producer, log) = producer(&broker.bootstrap(), &[("acks", acks)]);
        for id in first..first + 1000 {
            let value = format!("acks={acks} #{id}");
            send(
                &producer,
                BaseRecord::with_opaque_to(topic, id)
                    .partition((id % 2) as i32)
                    .key("k")
                    .payload(&value),
            )
            .expect("queue");
        }
        flush(&producer);
        assert!(
            log.failed().is_empty(),
            "acks={acks}: {:?}",
            &log.failed()[..1]
        );
        assert_eq!(
            log.acked_count(),
            1000,
            "acks={acks}: every record reported"
        );
        if acks == "1" {
            // acks=1 reports real offsets; both partitions already hold 500 acks=0 records.
            assert!(
                log.acked().iter().all(|a| a.offset >= 500),
                "acks=1 offsets follow acks=0"
            );
        }
    }
    let reader = consumer(&broker.bootstrap(), &[]);
    assign_all(&reader, topic, 2, Offset::Beginning);
    let got = consume_exactly(&reader, 2000, Duration::from_secs(60));
    let mut values: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8(m.payload().expect("payload").to_vec()).expect("UTF-8"))
        .collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), 2000, "every acks=0 and acks=1 record, once");
}

#[test]
fn given_consumer_tailing_six_partitions_while_a_producer_writes_should_receive_every_record_in_order(
) {
    const RECORDS: usize = 30_000;
    let broker = Broker::start();
    let topic = "tailing";
    create_topic(&broker.bootstrap(), topic, PARTITIONS, &[]);

    // The consumer is at the head of every partition before the first record exists, so it
    // reads what the producer writes as it lands (tail reads woken by appends).
    let reader = consumer(&broker.bootstrap(), &[("fetch.wait.max.ms", "500")]);
    assign_all(&reader, topic, PARTITIONS, Offset::Beginning);
    let early = common::drain_for(&reader, Duration::from_millis(500));
    assert!(early.is_empty());

    let bootstrap = broker.bootstrap();
    let writer = thread::spawn(move || {
        let (producer, log) = producer(
            &bootstrap,
            &[("linger.ms", "1"), ("compression.type", "lz4")],
        );
        for seq in 0..RECORDS {
            let record = expected(seq);
            let mut headers = OwnedHeaders::new();
            headers = headers.insert(Header {
                key: "seq",
                value: Some(seq.to_string().as_bytes()),
            });
            send(
                &producer,
                BaseRecord::with_opaque_to(topic, seq)
                    .key(&record.key)
                    .payload(&record.value)
                    .headers(headers),
            )
            .expect("queue");
            if seq % 1000 == 999 {
                // Let the consumer catch up now and then: tail reads, not one big catch-up.
                thread::sleep(Duration::from_millis(20));
            }
        }
        flush(&producer);
        assert!(log.failed().is_empty(), "failed: {:?}", &log.failed()[..1]);
        log.acked()
    });
    let got = consume_exactly(&reader, RECORDS, Duration::from_secs(180));
    let acked = writer.join().expect("producer thread");
    assert_eq!(acked.len(), RECORDS);
    let delivered: HashMap<usize, (i32, i64)> = acked
        .iter()
        .map(|a| (a.id, (a.partition, a.offset)))
        .collect();

    let mut next_offset: HashMap<i32, i64> = HashMap::new();
    let mut last_seq_of_key: HashMap<String, usize> = HashMap::new();
    for message in &got {
        let seq = seq_of(message);
        let expected_offset = next_offset.entry(message.partition()).or_insert(0);
        assert_eq!(
            message.offset(),
            *expected_offset,
            "contiguous offsets while tailing"
        );
        *expected_offset += 1;
        assert_eq!(delivered[&seq], (message.partition(), message.offset()));
        let want = expected(seq);
        assert_eq!(message.payload(), Some(&want.value[..]), "record {seq}");
        if let Some(previous) = last_seq_of_key.insert(want.key, seq) {
            assert!(
                previous < seq,
                "key order broken while tailing: {previous} then {seq}"
            );
        }
    }
    let extra = common::drain_for(&reader, Duration::from_secs(1));
    assert!(
        extra.is_empty(),
        "{} records more than produced",
        extra.len()
    );
}

#[test]
fn given_a_record_near_the_one_mib_default_limit_when_produced_should_round_trip_intact() {
    let broker = Broker::start();
    let topic = "large";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    // librdkafka's own limit (1000000) is below the broker's: raise it so the broker decides.
    let (producer, log) = producer(
        &broker.bootstrap(),
        &[
            ("compression.type", "none"),
            ("message.max.bytes", "2000000"),
        ],
    );
    // 1 MiB (max.message.bytes' default) less room for the batch and record headers.
    let big: Vec<u8> = (0..(1024 * 1024 - 512))
        .map(|i: usize| (i * 7 % 253) as u8)
        .collect();
    send(
        &producer,
        BaseRecord::with_opaque_to(topic, 0)
            .key("big")
            .payload(&big),
    )
    .expect("queue");
    flush(&producer);
    assert_eq!(
        log.acked_count(),
        1,
        "a record just under 1 MiB: {:?}",
        log.failed()
    );

    let reader = consumer(&broker.bootstrap(), &[]);
    assign_all(&reader, topic, 1, Offset::Beginning);
    let got = consume_exactly(&reader, 1, Duration::from_secs(30));
    assert_eq!(got[0].payload().map(<[u8]>::len), Some(big.len()));
    assert!(
        got[0].payload() == Some(&big[..]),
        "the large record came back changed"
    );
}

/// Transactions are not served: a transactional producer must fail at once with a fatal error
/// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED from FindCoordinator), not wait out its timeout on a
/// retriable one.
#[test]
fn given_a_transactional_producer_when_it_initialises_should_fail_at_once_with_a_fatal_error() {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::Producer;

    let broker = Broker::start();
    let (producer, _) = producer(&broker.bootstrap(), &[("transactional.id", "odradek-txn")]);
    let started = std::time::Instant::now();
    let error = producer
        .init_transactions(Duration::from_secs(60))
        .expect_err("transactions are not supported");
    eprintln!("init_transactions: {error:?} after {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the refusal must be immediate, not a timeout: {error:?}"
    );
    match &error {
        KafkaError::Transaction(e) => {
            assert_eq!(
                e.code(),
                RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
                "{error:?}"
            );
            assert!(e.is_fatal(), "{error:?}");
        }
        other => panic!("expected a transaction error, got {other:?}"),
    }
}

#[test]
fn given_hundreds_of_megabytes_in_flight_on_one_connection_when_the_write_buffer_fills_should_store_every_record_once_in_order(
) {
    // librdkafka's 0041_fetch_max_bytes: a non-idempotent producer pipelines ~200 MB of 500 KB
    // records. Refusing the appends that found the shard's 64 MiB write buffer full made
    // librdkafka resend them after later ones: the log came out of order.
    const RECORDS: usize = 400;
    const VALUE_BYTES: usize = 500 * 1024;
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), "inflight", 1, &[]);
    let (producer, log) = producer(
        &broker.bootstrap(),
        &[
            ("enable.idempotence", "false"),
            ("acks", "all"),
            ("linger.ms", "100"),
            ("batch.size", "1000000"),
            ("message.max.bytes", "1000000"),
            ("request.timeout.ms", "30000"),
        ],
    );
    for seq in 0..RECORDS {
        let mut value = vec![b'x'; VALUE_BYTES];
        value[..8].copy_from_slice(&(seq as u64).to_be_bytes());
        send(
            &producer,
            BaseRecord::with_opaque_to("inflight", seq)
                .key("k")
                .payload(&value),
        )
        .expect("queue");
    }
    flush(&producer);
    assert_eq!(log.acked_count(), RECORDS, "failed: {:?}", log.failed());

    let reader = consumer(&broker.bootstrap(), &[("fetch.max.bytes", "52428800")]);
    assign_all(&reader, "inflight", 1, Offset::Beginning);
    let got = consume_exactly(&reader, RECORDS, Duration::from_secs(120));
    let order: Vec<u64> = got
        .iter()
        .map(|m| {
            let payload = m.payload().expect("a value");
            u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"))
        })
        .collect();
    let sent: Vec<u64> = (0..RECORDS as u64).collect();
    assert_eq!(
        order, sent,
        "records stored out of the order they were sent in"
    );
}
