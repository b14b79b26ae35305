//! Fetch and offsets through the real broker with librdkafka: ListOffsets (by timestamp,
//! earliest, latest), long polling woken by a produce, OFFSET_OUT_OF_RANGE, LogAppendTime and
//! KIP-74 fetch limits.

mod common;

use std::thread;
use std::time::Duration;

use common::{
    assign_all, consume_exactly, consumer, create_topic, flush, now_ms, producer, send, watermarks,
    Broker,
};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, Timestamp, TopicPartitionList};

/// 2024-01-01T00:00:00Z.
const BASE_TIMESTAMP_MS: i64 = 1_704_067_200_000;

#[test]
fn given_records_with_known_timestamps_when_offsets_for_times_and_watermarks_asked_should_return_kafka_offsets(
) {
    let broker = Broker::start();
    let topic = "times";
    create_topic(&broker.bootstrap(), topic, 2, &[]);

    // Partition 0: ten records, one batch each, timestamps 1000, 2000, ..., 10000 ms after base.
    let (producer, log) = producer(&broker.bootstrap(), &[("linger.ms", "0")]);
    for i in 0..10usize {
        let value = format!("t{i}");
        send(
            &producer,
            BaseRecord::with_opaque_to(topic, i)
                .partition(0)
                .payload(&value)
                .key("k")
                .timestamp(BASE_TIMESTAMP_MS + 1000 * (i as i64 + 1)),
        )
        .expect("queue");
        flush(&producer);
    }
    assert!(log.failed().is_empty(), "failed: {:?}", log.failed());
    assert_eq!(log.acked_count(), 10);

    let reader = consumer(&broker.bootstrap(), &[]);
    assert_eq!(
        watermarks(&reader, topic, 0),
        (0, 10),
        "partition 0 watermarks"
    );
    assert_eq!(
        watermarks(&reader, topic, 1),
        (0, 0),
        "empty partition 1 watermarks"
    );

    let cases: [(i64, i64); 5] = [
        // Earlier than everything: the first offset.
        (BASE_TIMESTAMP_MS, 0),
        // Exactly a record's timestamp: that record.
        (BASE_TIMESTAMP_MS + 1000, 0),
        (BASE_TIMESTAMP_MS + 4000, 3),
        // Between two records: the first record at or after it.
        (BASE_TIMESTAMP_MS + 4500, 4),
        (BASE_TIMESTAMP_MS + 10_000, 9),
    ];
    for (timestamp, want) in cases {
        let mut query = TopicPartitionList::new();
        query
            .add_partition_offset(topic, 0, Offset::Offset(timestamp))
            .expect("add partition");
        let answer = reader
            .offsets_for_times(query, common::CLIENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("offsets_for_times({timestamp}): {e}"));
        let element = answer
            .find_partition(topic, 0)
            .expect("partition 0 in the answer");
        assert_eq!(
            element.offset(),
            Offset::Offset(want),
            "offset for timestamp base+{}",
            timestamp - BASE_TIMESTAMP_MS
        );
    }

    // Later than every record: Kafka answers offset -1 (librdkafka shows it as End).
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset(topic, 0, Offset::Offset(BASE_TIMESTAMP_MS + 60_000))
        .expect("add partition");
    let answer = reader
        .offsets_for_times(query, common::CLIENT_TIMEOUT)
        .expect("offsets_for_times past the end");
    let element = answer
        .find_partition(topic, 0)
        .expect("partition 0 in the answer");
    assert_eq!(
        element.offset(),
        Offset::End,
        "timestamp after the last record"
    );

    // Reading from the offset found by timestamp returns that record.
    let mut from = TopicPartitionList::new();
    from.add_partition_offset(topic, 0, Offset::Offset(4))
        .expect("add partition");
    reader.assign(&from).expect("assign");
    let got = consume_exactly(&reader, 6, Duration::from_secs(30));
    let values: Vec<&[u8]> = got.iter().map(|m| m.payload().expect("payload")).collect();
    assert_eq!(values, [&b"t4"[..], b"t5", b"t6", b"t7", b"t8", b"t9"]);
}

#[test]
fn given_consumer_long_polling_an_empty_partition_when_a_record_is_produced_should_receive_it_before_max_wait(
) {
    let broker = Broker::start();
    let topic = "longpoll";
    create_topic(&broker.bootstrap(), topic, 1, &[]);

    // fetch.wait.max.ms is 60 s and we give up after 30 s: a fetch that the append does not wake
    // would return only after 60 s and fail here. 29 s of slack over the 1 s produce delay is no
    // timing assertion, only a check that the waiter is woken.
    let reader = consumer(
        &broker.bootstrap(),
        &[
            ("fetch.wait.max.ms", "60000"),
            ("socket.timeout.ms", "120000"),
        ],
    );
    assign_all(&reader, topic, 1, Offset::Beginning);
    // Let the consumer reach its first (waiting) fetch; nothing must arrive from an empty log.
    let early = common::drain_for(&reader, Duration::from_secs(2));
    assert!(
        early.is_empty(),
        "an empty partition returned {} records",
        early.len()
    );

    let bootstrap = broker.bootstrap();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_secs(1));
        let (producer, log) = producer(&bootstrap, &[]);
        send(
            &producer,
            BaseRecord::with_opaque_to(topic, 0)
                .key("k")
                .payload("wake up"),
        )
        .expect("queue");
        flush(&producer);
        assert_eq!(log.acked_count(), 1, "produce failed: {:?}", log.failed());
    });
    let got = consume_exactly(&reader, 1, Duration::from_secs(30));
    writer.join().expect("producer thread");
    assert_eq!(got[0].payload(), Some(&b"wake up"[..]));
    assert_eq!(got[0].offset(), 0);
}

#[test]
fn given_consumer_positioned_past_the_end_when_fetching_should_reset_by_offset_out_of_range() {
    let broker = Broker::start();
    let topic = "out-of-range";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    let (producer, log) = producer(&broker.bootstrap(), &[]);
    for id in 0..10usize {
        let value = format!("r{id}");
        send(
            &producer,
            BaseRecord::with_opaque_to(topic, id)
                .partition(0)
                .key("k")
                .payload(&value),
        )
        .expect("queue");
    }
    flush(&producer);
    assert_eq!(log.acked_count(), 10);

    // Fetching offset 1000 of a 10-record log must answer OFFSET_OUT_OF_RANGE; librdkafka then
    // resets to the earliest offset. An empty answer instead would leave the consumer waiting.
    let reader = consumer(&broker.bootstrap(), &[("auto.offset.reset", "earliest")]);
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(1000))
        .expect("add partition");
    reader.assign(&list).expect("assign");
    let got = consume_exactly(&reader, 10, Duration::from_secs(30));
    assert_eq!(got[0].offset(), 0, "reset to the earliest offset");
    assert_eq!(got[9].payload(), Some(&b"r9"[..]));

    // With auto.offset.reset=error the client reports the out-of-range error instead.
    let strict = consumer(&broker.bootstrap(), &[("auto.offset.reset", "error")]);
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(1000))
        .expect("add partition");
    strict.assign(&list).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let error = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no out-of-range error within 30 s"
        );
        match strict.poll(Duration::from_millis(200)) {
            Some(Err(error)) => break error,
            Some(Ok(message)) => panic!("got a record at offset {}", message.offset()),
            None => {}
        }
    };
    // librdkafka reports it as AUTO_OFFSET_RESET ("no offset to automatically reset to"),
    // which for an absolute start offset only an OFFSET_OUT_OF_RANGE answer causes.
    assert_eq!(
        error.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::AutoOffsetReset),
        "want the offset-out-of-range reset error, got {error}"
    );
}

#[test]
fn given_log_append_time_topic_when_records_produced_should_carry_the_broker_time() {
    let broker = Broker::start();
    let topic = "append-time";
    create_topic(
        &broker.bootstrap(),
        topic,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let before = now_ms();
    let (producer, log) = producer(&broker.bootstrap(), &[]);
    for id in 0..20usize {
        // The producer's own (old) timestamp must be replaced.
        send(
            &producer,
            BaseRecord::with_opaque_to(topic, id)
                .key("k")
                .payload("v")
                .timestamp(BASE_TIMESTAMP_MS),
        )
        .expect("queue");
    }
    flush(&producer);
    let after = now_ms();
    assert_eq!(log.acked_count(), 20, "failed: {:?}", log.failed());

    let reader = consumer(&broker.bootstrap(), &[]);
    assign_all(&reader, topic, 1, Offset::Beginning);
    let got = consume_exactly(&reader, 20, Duration::from_secs(30));
    for message in &got {
        match message.timestamp() {
            // The clock is the same machine's; 1 s either side only absorbs rounding.
            Timestamp::LogAppendTime(t) => assert!(
                (before - 1000..=after + 1000).contains(&t),
                "offset {}: log append time {t} outside [{before}, {after}]",
                message.offset()
            ),
            other => panic!(
                "offset {}: want LogAppendTime, got {other:?}",
                message.offset()
            ),
        }
    }
}

#[test]
fn given_batches_larger_than_the_fetch_limits_when_consumed_should_still_return_one_batch_per_fetch(
) {
    let broker = Broker::start();
    let topic = "big-batches";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    let (producer, log) = producer(
        &broker.bootstrap(),
        &[("linger.ms", "0"), ("compression.type", "none")],
    );
    let value = |id: usize| -> Vec<u8> {
        (0..100 * 1024)
            .map(|i| ((i * 31 + id * 7) % 251) as u8)
            .collect()
    };
    for id in 0..30usize {
        let payload = value(id);
        send(
            &producer,
            BaseRecord::with_opaque_to(topic, id)
                .partition(0)
                .key("k")
                .payload(&payload),
        )
        .expect("queue");
    }
    flush(&producer);
    assert_eq!(log.acked_count(), 30, "failed: {:?}", log.failed());

    // Limits far below one 100 KiB batch: KIP-74 says the first batch comes anyway.
    let reader = consumer(
        &broker.bootstrap(),
        &[
            ("message.max.bytes", "1000"),
            ("fetch.max.bytes", "1024"),
            ("max.partition.fetch.bytes", "1024"),
            ("receive.message.max.bytes", "10000000"),
        ],
    );
    assign_all(&reader, topic, 1, Offset::Beginning);
    let got = consume_exactly(&reader, 30, Duration::from_secs(60));
    for (id, message) in got.iter().enumerate() {
        assert_eq!(message.offset(), id as i64);
        assert_eq!(message.payload(), Some(&value(id)[..]), "record {id}");
    }
}
