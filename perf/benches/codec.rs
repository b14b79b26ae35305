//! The Kafka codec on the hot paths: decoding a Produce request, encoding a Fetch response into
//! one buffer (a copy of every record byte) and into pieces that keep the record batches by
//! reference (what the broker sends), and the batch checks a produce goes through.
//!
//! `cargo bench -p odradek-perf --bench codec`

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use odradek_net::segmented::Shared;
use odradek_net::{decode_body, encode_response, encode_response_sharing};
use odradek_storage::batch::split_batches;
use odradek_storage::testing::batch;

const PARTITIONS: i32 = 6;

/// One partition's records: `batches` batches of 1 KiB records, back to back, about 1 MiB.
fn records(batches: usize) -> Bytes {
    let mut out = BytesMut::new();
    let per_batch = 1024 / batches.max(1);
    for i in 0..batches {
        out.extend_from_slice(&batch(per_batch.max(1), 1000, i as i64, 7));
    }
    out.freeze()
}

fn produce_request_body(version: i16, partition_records: &Bytes) -> Bytes {
    let partitions = (0..PARTITIONS)
        .map(|index| {
            PartitionProduceData::default()
                .with_index(index)
                .with_records(Some(partition_records.clone()))
        })
        .collect();
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("bench")))
        .with_partition_data(partitions);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic]);
    let mut body = BytesMut::new();
    request.encode(&mut body, version).expect("encode");
    body.freeze()
}

fn fetch_response(partition_records: &Bytes) -> FetchResponse {
    let partitions = (0..PARTITIONS)
        .map(|index| {
            PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(1_000_000)
                .with_records(Some(partition_records.clone()))
        })
        .collect();
    let topic = FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench")))
        .with_partitions(partitions);
    FetchResponse::default().with_responses(vec![topic])
}

fn produce_decode(c: &mut Criterion) {
    let records = records(1);
    // Records stay slices of the frame: the time is per request, whatever their size.
    let mut group = c.benchmark_group("produce request decode (6 x 1 MiB)");
    for version in [3i16, 9, 11] {
        let body = produce_request_body(version, &records);
        group.bench_with_input(BenchmarkId::from_parameter(version), &body, |b, body| {
            b.iter(|| {
                let request: ProduceRequest =
                    decode_body(ApiKey::Produce, version, body.clone()).expect("decode");
                black_box(request)
            })
        });
    }
    group.finish();
}

fn batch_checks(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce batch checks (split + CRC32C)");
    for batches in [1usize, 64] {
        let records = records(batches);
        group.throughput(Throughput::Bytes(records.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batches), &records, |b, r| {
            b.iter(|| black_box(split_batches(r, 2 << 20).expect("valid")))
        });
    }
    group.finish();
}

fn fetch_encode(c: &mut Criterion) {
    let records = records(1);
    let response = fetch_response(&records);
    let shared = vec![Shared::whole(records.clone())];
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(12)
        .with_correlation_id(1);
    let mut group = c.benchmark_group("fetch response encode v12 (6 x 1 MiB)");
    group.throughput(Throughput::Bytes(records.len() as u64 * PARTITIONS as u64));
    group.bench_function("one buffer (copies records)", |b| {
        b.iter(|| black_box(encode_response(ApiKey::Fetch, &header, &response).expect("encode")))
    });
    group.bench_function("pieces (records by reference)", |b| {
        b.iter(|| {
            black_box(
                encode_response_sharing(ApiKey::Fetch, &header, &response, &shared)
                    .expect("encode"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, produce_decode, batch_checks, fetch_encode);
criterion_main!(benches);
