//! Kafka's append-time checks, with raw Produce requests where real clients would not send the
//! input (and with librdkafka to read the results back): a batch header whose max timestamp is
//! -1 (sarama 1.22 writes that), CreateTime bounds (KIP-937), keys on compacted topics, one batch
//! per partition, and zstd on Produce versions before 7.

mod common;

use std::time::Duration;

use common::{
    consumer, create_topic, now_ms, raw_produce, record_batch, with_attributes, Broker,
    INVALID_RECORD,
};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

const INVALID_TIMESTAMP: i16 = 32;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;

/// `batch` with its header's max timestamp replaced and its CRC32C recomputed.
fn with_max_timestamp(mut batch: Vec<u8>, max_timestamp_ms: i64) -> Vec<u8> {
    batch[35..43].copy_from_slice(&max_timestamp_ms.to_be_bytes());
    let attributes = i16::from_be_bytes([batch[21], batch[22]]);
    with_attributes(batch, attributes)
}

#[test]
fn given_a_batch_whose_header_max_timestamp_is_minus_one_when_looked_up_by_time_should_be_found() {
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), "sarama-time", 1, &[]);
    let ts = 1_700_000_000_000;
    let batch = with_max_timestamp(record_batch(b"old client", ts), -1);
    assert_eq!(raw_produce(broker.addr(), "sarama-time", 1, &batch), (0, 0));

    let reader = consumer(&broker.bootstrap(), &[]);
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("sarama-time", 0, Offset::Offset(ts - 1))
        .expect("query");
    let found = reader
        .offsets_for_times(query, Duration::from_secs(30))
        .expect("ListOffsets by timestamp");
    assert_eq!(
        found.elements()[0].offset(),
        Offset::Offset(0),
        "the record's own timestamp counts, not the header's -1"
    );
}

#[test]
fn given_timestamp_bounds_when_records_are_too_old_or_too_new_should_refuse_them() {
    let broker = Broker::start();
    create_topic(
        &broker.bootstrap(),
        "bounded",
        1,
        &[
            ("message.timestamp.before.max.ms", "3600000"),
            ("message.timestamp.after.max.ms", "60000"),
        ],
    );
    let addr = broker.addr();
    let now = now_ms();
    let (error, _) = raw_produce(addr, "bounded", 1, &record_batch(b"future", now + 600_000));
    assert_eq!(error, INVALID_TIMESTAMP, "ten minutes ahead of the clock");
    let (error, _) = raw_produce(addr, "bounded", 2, &record_batch(b"past", now - 7_200_000));
    assert_eq!(error, INVALID_TIMESTAMP, "two hours behind the clock");
    assert_eq!(
        raw_produce(addr, "bounded", 3, &record_batch(b"now", now)),
        (0, 0),
        "within the bounds"
    );
}

#[test]
fn given_a_compacted_topic_when_a_record_has_no_key_should_refuse_it() {
    let broker = Broker::start();
    create_topic(
        &broker.bootstrap(),
        "compacted",
        1,
        &[("cleanup.policy", "compact")],
    );
    let (error, _) = raw_produce(broker.addr(), "compacted", 1, &record_batch(b"v", now_ms()));
    assert_eq!(
        error, INVALID_RECORD,
        "compaction needs a key on every record"
    );
}

#[test]
fn given_two_batches_for_one_partition_or_zstd_before_v7_should_refuse_them() {
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), "shapes", 1, &[]);
    let addr = broker.addr();
    let mut two = record_batch(b"one", now_ms());
    two.extend_from_slice(&record_batch(b"two", now_ms()));
    let (error, _) = raw_produce(addr, "shapes", 1, &two);
    assert_eq!(error, INVALID_RECORD, "two batches in one partition");

    let zstd = with_attributes(record_batch(b"z", now_ms()), 4);
    let (error, _) = raw_produce(addr, "shapes", 2, &zstd);
    assert_eq!(error, UNSUPPORTED_COMPRESSION_TYPE, "zstd in Produce v3");

    assert_eq!(
        raw_produce(addr, "shapes", 3, &record_batch(b"fine", now_ms())),
        (0, 0),
        "nothing of the refused requests was stored"
    );
}
