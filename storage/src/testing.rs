//! Builders of valid record batches (magic 2) for tests and benchmarks, so that neither needs
//! the Kafka codec, and [`run`], the executor every glommio test body runs on. Not for
//! production paths: the broker receives batches from producers.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::HEADER_BYTES;

fn put_varint(out: &mut BytesMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// One record (v2 layout): length, attributes, timestamp delta, offset delta, null key, value,
/// no headers.
fn put_record(out: &mut BytesMut, offset_delta: i32, timestamp_delta: i64, value: &[u8]) {
    let mut body = BytesMut::with_capacity(value.len() + 16);
    body.put_u8(0);
    put_varint(&mut body, timestamp_delta);
    put_varint(&mut body, i64::from(offset_delta));
    put_varint(&mut body, -1);
    put_varint(&mut body, value.len() as i64);
    body.put_slice(value);
    put_varint(&mut body, 0);
    put_varint(out, body.len() as i64);
    out.put_slice(&body);
}

/// A valid batch of `record_count` records whose values are `value_bytes` bytes of `fill`, with
/// base offset 0, timestamps `timestamp_ms`, `timestamp_ms + 1`, ... and a correct CRC32C.
pub fn batch(record_count: usize, value_bytes: usize, timestamp_ms: i64, fill: u8) -> Bytes {
    build(
        record_count,
        value_bytes,
        timestamp_ms,
        fill,
        Producer::NONE,
    )
}

/// The producer fields of a batch: id, epoch and the first record's sequence.
#[derive(Clone, Copy, Debug)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub first_seq: i32,
}

impl Producer {
    /// A batch of no idempotent producer.
    pub const NONE: Producer = Producer {
        id: -1,
        epoch: -1,
        first_seq: -1,
    };
}

/// [`batch`] from an idempotent producer.
pub fn producer_batch(record_count: usize, value_bytes: usize, producer: Producer) -> Bytes {
    build(record_count, value_bytes, 1_000, 1, producer)
}

fn build(
    record_count: usize,
    value_bytes: usize,
    timestamp_ms: i64,
    fill: u8,
    producer: Producer,
) -> Bytes {
    assert!(record_count > 0, "a batch holds at least one record");
    let value = vec![fill; value_bytes];
    let mut records = BytesMut::new();
    for i in 0..record_count {
        put_record(&mut records, i as i32, i as i64, &value);
    }
    let last_delta = record_count as i32 - 1;
    let mut out = BytesMut::with_capacity(HEADER_BYTES + records.len());
    out.put_i64(0);
    out.put_i32((HEADER_BYTES - 12 + records.len()) as i32);
    out.put_i32(0);
    out.put_i8(2);
    out.put_u32(0);
    out.put_i16(0);
    out.put_i32(last_delta);
    out.put_i64(timestamp_ms);
    out.put_i64(timestamp_ms + i64::from(last_delta));
    out.put_i64(producer.id);
    out.put_i16(producer.epoch);
    out.put_i32(producer.first_seq);
    out.put_i32(record_count as i32);
    out.put_slice(&records);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

/// A batch of about `total_bytes` bytes (one record padded to fit).
pub fn batch_of_size(total_bytes: usize, timestamp_ms: i64, fill: u8) -> Bytes {
    let overhead = HEADER_BYTES + 12;
    batch(1, total_bytes.saturating_sub(overhead), timestamp_ms, fill)
}

/// How often [`run`]'s timer fires.
const KEEP_AWAKE_PERIOD: std::time::Duration = std::time::Duration::from_millis(10);

/// Runs an async test body on a fresh glommio executor that always has a timer armed.
///
/// glommio 0.9 parks an executor with no timer in an unbounded io_uring wait; a wake-up from
/// another thread (a blocking-pool result, a channel) can be lost there, and a test then sleeps
/// forever (seen once in CI). A timer bounds every park, so a lost wake-up costs at most one
/// period. The broker's shards always have timers (their stop polls); test executors need this.
pub fn run<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            glommio::spawn_local(async {
                loop {
                    glommio::timer::sleep(KEEP_AWAKE_PERIOD).await;
                }
            })
            .detach();
            body().await;
        })
        .expect("a test executor starts")
        .join()
        .expect("the test body completes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{split_batches, validate};

    #[test]
    fn built_batches_validate() {
        for count in [1, 2, 50] {
            let b = batch(count, 10, 1_000, 7);
            let header = validate(&b, 1 << 20).expect("valid");
            assert_eq!(header.record_count(), count as i32);
            assert_eq!(header.last_offset_delta(), count as i32 - 1);
        }
        let b = batch_of_size(16 << 10, 5, 1);
        assert!((b.len() as i64 - (16 << 10) as i64).abs() < 8);
        let mut two = BytesMut::new();
        two.put_slice(&batch(3, 5, 0, 1));
        two.put_slice(&batch(2, 5, 0, 2));
        assert_eq!(split_batches(&two, 1 << 20).expect("valid").len(), 2);
    }
}
