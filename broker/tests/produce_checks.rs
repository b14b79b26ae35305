//! Kafka's append-time checks, with raw Produce requests where real clients would not send the
//! input (and with librdkafka to read the results back): a batch header whose max timestamp is
//! -1 (sarama 1.22 writes that), CreateTime bounds (KIP-937), keys on compacted topics, one batch
//! per partition, and zstd on Produce versions before 7.

mod common;

use std::time::Duration;

use common::{
    consumer, create_topic, flush, now_ms, producer, raw_produce, record_batch, send,
    with_attributes, Broker, INVALID_RECORD,
};
use rdkafka::consumer::Consumer;
use rdkafka::producer::BaseRecord;
use rdkafka::types::RDKafkaErrorCode;
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
fn given_a_batch_with_some_keyless_records_on_a_compacted_topic_should_name_them_kip_467() {
    let broker = Broker::start();
    create_topic(
        &broker.bootstrap(),
        "compacted-batch",
        1,
        &[("cleanup.policy", "compact")],
    );
    // One batch of 10 (a long linger, one flush): records 3 and 7 have no key.
    let (producer, log) = producer(
        &broker.bootstrap(),
        &[("linger.ms", "1000"), ("acks", "1"), ("retries", "0")],
    );
    for i in 0..10usize {
        let value = format!("v{i}");
        let key = format!("k{i}");
        let record = BaseRecord::with_opaque_to("compacted-batch", i)
            .partition(0)
            .payload(&value);
        let record = if i == 3 || i == 7 {
            record
        } else {
            record.key(&key)
        };
        send(&producer, record).expect("queue a record");
    }
    flush(&producer);
    let mut failed: Vec<(usize, RDKafkaErrorCode)> = log
        .failed()
        .into_iter()
        .map(|(i, e)| (i, e.rdkafka_error_code().expect("a broker error")))
        .collect();
    failed.sort_by_key(|(i, _)| *i);
    let want: Vec<(usize, RDKafkaErrorCode)> = (0..10)
        .map(|i| {
            let code = if i == 3 || i == 7 {
                RDKafkaErrorCode::InvalidRecord
            } else {
                RDKafkaErrorCode::InvalidDifferentRecord
            };
            (i, code)
        })
        .collect();
    assert_eq!(
        failed, want,
        "the keyless records fail as invalid, the rest as failed beside them"
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

#[test]
fn given_a_batch_whose_largest_timestamp_is_not_last_when_max_timestamp_listed_should_name_that_record(
) {
    // librdkafka's 0081_admin: ListOffsets MAX_TIMESTAMP (-3, KIP-734) is the record with the
    // largest timestamp, not the batch's last offset.
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, TopicName};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    let broker = Broker::start();
    create_topic(&broker.bootstrap(), "max-ts", 1, &[]);
    let base = 1_700_000_000_000;
    let records: Vec<Record> = [0, 2, 1]
        .iter()
        .enumerate()
        .map(|(offset, step)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            // The codec starts a new batch where `sequence - offset` changes: keep it constant.
            sequence: offset as i32,
            timestamp_type: TimestampType::Creation,
            offset: offset as i64,
            timestamp: base + step,
            key: Some(bytes::Bytes::from_static(b"k")),
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut batch = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut batch, records.iter(), &options).expect("encode");
    assert_eq!(raw_produce(broker.addr(), "max-ts", 1, &batch), (0, 0));

    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("max-ts")))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-3)])]);
    let mut body = bytes::BytesMut::new();
    body.extend_from_slice(&[0]); // request header v2: no tagged fields
    request.encode(&mut body, 7).expect("encode ListOffsets v7");
    let framed = common::frame(2, 7, 9, &body);
    let common::Verdict::Answered(response) = common::send_and_judge(broker.addr(), &framed, false)
    else {
        panic!("ListOffsets v7 must be answered");
    };
    // Response header v1: correlation id, no tagged fields.
    let mut rest = bytes::Bytes::copy_from_slice(&response[5..]);
    let answer = ListOffsetsResponse::decode(&mut rest, 7).expect("decode ListOffsets v7");
    let partition = &answer.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(
        (partition.timestamp, partition.offset),
        (base + 2, 1),
        "the record holding the largest timestamp"
    );
}

#[test]
fn given_a_topic_with_compression_type_gzip_when_a_producer_sends_uncompressed_should_store_gzip_and_read_back(
) {
    // librdkafka's 0081_admin sets compression.type on topics: Kafka stores with that codec.
    let broker = Broker::start();
    create_topic(
        &broker.bootstrap(),
        "gzipped",
        1,
        &[("compression.type", "gzip")],
    );
    let (producer, log) = common::producer(
        &broker.bootstrap(),
        &[("compression.type", "none"), ("linger.ms", "50")],
    );
    for i in 0..100usize {
        let value = format!("value {i} {}", "x".repeat(100));
        let key = format!("key {i}");
        common::send(
            &producer,
            rdkafka::producer::BaseRecord::with_opaque_to("gzipped", i)
                .key(&key)
                .payload(&value),
        )
        .expect("queue");
    }
    common::flush(&producer);
    assert_eq!(log.acked_count(), 100, "failed: {:?}", log.failed());

    let reader = consumer(&broker.bootstrap(), &[]);
    common::assign_all(&reader, "gzipped", 1, Offset::Beginning);
    let got = common::consume_exactly(&reader, 100, Duration::from_secs(30));
    for (i, message) in got.iter().enumerate() {
        use rdkafka::message::Message;
        assert_eq!(message.offset(), i as i64);
        assert_eq!(message.key(), Some(format!("key {i}").as_bytes()));
    }
    // Deprecated since Kafka 3.0 and accepted there (librdkafka's 0092_mixed_msgver sets it).
    create_topic(
        &broker.bootstrap(),
        "old-format",
        1,
        &[("message.format.version", "0.10.2")],
    );
    let segment = &common::segment_files(&broker.partition_dir("gzipped", 0))[0];
    let stored = std::fs::read(segment).expect("read the segment");
    let attributes = i16::from_be_bytes([stored[21], stored[22]]);
    assert_eq!(attributes & 0x7, 1, "the first stored batch is gzip");
}
