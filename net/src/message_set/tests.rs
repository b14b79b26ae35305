use super::*;

const BOUND: usize = 1 << 20;
const LEGACY_CODECS: [Compression; 4] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
];

fn message(offset: i64, timestamp: i64, key: Option<&'static str>, value: &str) -> LegacyMessage {
    LegacyMessage {
        offset,
        timestamp,
        log_append_time: false,
        key: key.map(|k| Bytes::from_static(k.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
    }
}

/// Three messages as a producer of `magic` sends them (offsets 0, 1, 2).
fn produced(magic: Magic) -> Vec<LegacyMessage> {
    let ts = |t: i64| if magic == Magic::V0 { -1 } else { t };
    vec![
        message(0, ts(1_700_000_000_000), Some("k0"), "v0"),
        message(1, ts(1_700_000_000_005), None, "v1"),
        LegacyMessage {
            value: None,
            ..message(2, ts(1_700_000_000_003), Some("k2"), "")
        },
    ]
}

/// A v2 batch of `records` (offsets from `base`), encoded by `kafka-protocol`.
fn v2_batch(base: i64, values: &[&str], control: bool, codec: Compression) -> Vec<u8> {
    let records: Vec<Record> = values
        .iter()
        .zip(0i64..)
        .map(|(value, i)| Record {
            transactional: false,
            control,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: base + i,
            sequence: NO_SEQUENCE.wrapping_add(i as i32),
            timestamp: 1_000 + i,
            key: Some(Bytes::from(format!("key{}", base + i))),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: [("h".into(), Some(Bytes::from_static(b"x")))]
                .into_iter()
                .collect(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: codec,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).expect("encode v2");
    out.to_vec()
}

/// `batch` marked LogAppendTime with `max_timestamp`, its CRC32C recomputed.
fn log_append_time(mut batch: Vec<u8>, max_timestamp: i64) -> Vec<u8> {
    batch[BATCH_ATTRIBUTES_AT + 1] |= LOG_APPEND_TIME_BIT as u8;
    batch[BATCH_MAX_TIMESTAMP_AT..BATCH_MAX_TIMESTAMP_AT + 8]
        .copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[BATCH_ATTRIBUTES_AT..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

fn decoded(set: Bytes) -> Vec<LegacyMessage> {
    decode_message_set(set, BOUND).expect("decode").messages
}

#[test]
fn a_v0_message_has_the_exact_bytes_of_the_spec() {
    let set = encode_message_set(
        Magic::V0,
        &[message(5, -1, Some("k"), "v")],
        Compression::None,
    )
    .expect("encode");
    // CRC-32 (IEEE) of `00 00 | 00 00 00 01 6b | 00 00 00 01 76`, computed apart from this code.
    let expected: &[u8] = &[
        0, 0, 0, 0, 0, 0, 0, 5, // offset
        0, 0, 0, 16, // message_size
        0x1f, 0xec, 0xd7, 0x0a, // crc
        0,    // magic
        0,    // attributes
        0, 0, 0, 1, b'k', // key
        0, 0, 0, 1, b'v', // value
    ];
    assert_eq!(&set[..], expected);
    assert_eq!(decoded(set), vec![message(5, -1, Some("k"), "v")]);
}

#[test]
fn a_v1_message_has_the_exact_bytes_of_the_spec() {
    let hello = message(7, 1_700_000_000_000, None, "hello");
    let set = encode_message_set(Magic::V1, std::slice::from_ref(&hello), Compression::None)
        .expect("encode");
    let mut expected = vec![
        0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 27, 0x8e, 0xe3, 0x0b, 0xba, 1, 0,
    ];
    expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    expected.extend_from_slice(&(-1i32).to_be_bytes());
    expected.extend_from_slice(&5i32.to_be_bytes());
    expected.extend_from_slice(b"hello");
    assert_eq!(&set[..], &expected[..]);
    assert_eq!(decoded(set), vec![hello]);
}

#[test]
fn sets_round_trip_for_each_magic_and_codec() {
    for magic in [Magic::V0, Magic::V1] {
        for codec in LEGACY_CODECS {
            let messages = produced(magic);
            let set = encode_message_set(magic, &messages, codec).expect("encode");
            let got = decode_message_set(set, BOUND).expect("decode");
            assert_eq!(got.messages, messages, "{magic:?} {codec:?}");
            assert_eq!(got.compression, codec, "{magic:?} {codec:?}");
        }
    }
}

#[test]
fn magic_1_inner_offsets_are_relative_to_the_wrapper() {
    let mut messages = produced(Magic::V1);
    for (m, offset) in messages.iter_mut().zip(40..) {
        m.offset = offset;
    }
    let set = encode_message_set(Magic::V1, &messages, Compression::Gzip).expect("encode");
    assert_eq!(
        &set[..8],
        &42i64.to_be_bytes(),
        "the wrapper has the last offset"
    );
    assert_eq!(decoded(set), messages);
}

#[test]
fn a_log_append_time_wrapper_gives_its_timestamp_to_inner_messages() {
    let mut messages = produced(Magic::V1);
    messages.iter_mut().for_each(|m| m.log_append_time = true);
    let set = encode_message_set(Magic::V1, &messages, Compression::Snappy).expect("encode");
    for got in decoded(set) {
        assert!(got.log_append_time);
        assert_eq!(got.timestamp, 1_700_000_000_005, "the wrapper's (largest)");
    }
}

/// Where each message of an uncompressed set ends.
fn message_ends(set: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while at < set.len() {
        let size = i32::from_be_bytes([set[at + 8], set[at + 9], set[at + 10], set[at + 11]]);
        at += LOG_OVERHEAD + size as usize;
        ends.push(at);
    }
    ends
}

#[test]
fn every_truncated_prefix_is_an_error() {
    for magic in [Magic::V0, Magic::V1] {
        for codec in LEGACY_CODECS {
            let set = encode_message_set(magic, &produced(magic), codec).expect("encode");
            let ends = message_ends(&set);
            for cut in 0..set.len() {
                let result = decode_message_set(set.slice(..cut), BOUND);
                match ends.iter().position(|end| *end == cut) {
                    // A cut between two messages leaves a shorter set that is whole.
                    Some(i) => assert_eq!(result.map(|s| s.messages.len()), Ok(i + 1)),
                    None => assert!(result.is_err(), "{magic:?} {codec:?} cut {cut}: {result:?}"),
                }
            }
        }
    }
}

#[test]
fn a_damaged_byte_fails_the_crc() {
    let set = encode_message_set(Magic::V1, &produced(Magic::V1), Compression::None)
        .expect("encode")
        .to_vec();
    // The first message: crc at 12..16, checked bytes from 16 to its end.
    let first_end = LOG_OVERHEAD + u32::from_be_bytes([set[8], set[9], set[10], set[11]]) as usize;
    for at in 16..first_end {
        let mut bad = set.clone();
        bad[at] ^= 0x01;
        let result = decode_message_set(Bytes::from(bad), BOUND);
        assert!(
            matches!(result, Err(MessageSetError::Crc { .. })),
            "byte {at}: {result:?}"
        );
    }
    assert_eq!(
        MessageSetError::Crc {
            stored: 0,
            computed: 1
        }
        .kafka_error(),
        ResponseError::CorruptMessage
    );
}

#[test]
fn lying_sizes_and_lengths_are_errors() {
    let set = encode_message_set(Magic::V0, &produced(Magic::V0), Compression::None)
        .expect("encode")
        .to_vec();
    let cases: [(&str, usize, &[u8]); 4] = [
        ("huge message size", 8, &i32::MAX.to_be_bytes()),
        ("negative message size", 8, &(-1i32).to_be_bytes()),
        ("message size below the minimum", 8, &13i32.to_be_bytes()),
        ("message size one short", 8, &15i32.to_be_bytes()),
    ];
    for (case, at, bytes) in cases {
        let mut bad = set.clone();
        bad[at..at + bytes.len()].copy_from_slice(bytes);
        assert!(
            decode_message_set(Bytes::from(bad), BOUND).is_err(),
            "{case}"
        );
    }
    // A key length that passes the message end, behind a correct CRC.
    let mut bad = encode_message_set(
        Magic::V0,
        &[message(0, -1, Some("k"), "v")],
        Compression::None,
    )
    .expect("encode")
    .to_vec();
    bad[18..22].copy_from_slice(&100i32.to_be_bytes());
    let crc = crc32fast::hash(&bad[16..]);
    bad[12..16].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        decode_message_set(Bytes::from(bad), BOUND),
        Err(MessageSetError::Truncated("key or value"))
    );
}

#[test]
fn refused_sets_get_the_error_codes_kafka_gives() {
    let empty = decode_message_set(Bytes::new(), BOUND);
    assert_eq!(empty, Err(MessageSetError::Empty));

    // A wrapper holding a wrapper.
    let inner =
        encode_message_set(Magic::V1, &produced(Magic::V1), Compression::Gzip).expect("inner");
    let mut wrapper = message(0, 1, None, "");
    wrapper.value = Some(Bytes::from(
        compression::compress(&inner, Compression::Gzip).expect("compress"),
    ));
    let mut nested = BytesMut::new();
    put_wrapper(&mut nested, Magic::V1, &wrapper, Compression::Gzip as i8).expect("put");
    let result = decode_message_set(nested.freeze(), BOUND);
    assert_eq!(result, Err(MessageSetError::Nested));
    assert_eq!(
        MessageSetError::Nested.kafka_error(),
        ResponseError::InvalidRecord
    );

    // zstd in magic 1, and an unknown codec.
    for (codec, expected) in [
        (4, MessageSetError::ZstdInLegacy),
        (5, MessageSetError::Codec(5)),
    ] {
        let mut set = BytesMut::new();
        put_wrapper(&mut set, Magic::V1, &message(0, 1, None, "x"), codec).expect("put");
        assert_eq!(decode_message_set(set.freeze(), BOUND), Err(expected));
    }
    assert_eq!(
        MessageSetError::ZstdInLegacy.kafka_error(),
        ResponseError::UnsupportedCompressionType
    );

    // A magic-0 message inside a magic-1 wrapper.
    let v0 = encode_message_set(Magic::V0, &produced(Magic::V0), Compression::None).expect("v0");
    let mut wrapper = message(2, 1, None, "");
    wrapper.value = Some(
        compression::compress(&v0, Compression::Lz4)
            .expect("lz4")
            .into(),
    );
    let mut mixed = BytesMut::new();
    put_wrapper(&mut mixed, Magic::V1, &wrapper, Compression::Lz4 as i8).expect("put");
    assert_eq!(
        decode_message_set(mixed.freeze(), BOUND),
        Err(MessageSetError::MagicMismatch { inner: 0, outer: 1 })
    );
}

#[test]
fn a_decompression_bomb_stops_at_the_bound() {
    let big = vec![message(0, 1, None, &"z".repeat(100_000))];
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
        let set = encode_message_set(Magic::V1, &big, codec).expect("encode");
        assert!(set.len() < 10_000, "{codec:?} compresses well");
        let result = decode_message_set(set.clone(), 50_000);
        assert_eq!(result, Err(MessageSetError::TooLarge { bytes_max: 50_000 }));
        assert_eq!(
            up_convert(set, 50_000).map(|_| ()),
            Err(MessageSetError::TooLarge { bytes_max: 50_000 })
        );
    }
    // The bound covers all wrappers of a set together.
    let mut two = encode_message_set(Magic::V1, &big, Compression::Gzip)
        .expect("encode")
        .to_vec();
    two.extend_from_within(..);
    assert!(decode_message_set(Bytes::from(two.clone()), 250_000).is_ok());
    assert!(decode_message_set(Bytes::from(two), 150_000).is_err());
}

#[test]
fn up_conversion_keeps_keys_values_timestamps_and_codec() {
    for magic in [Magic::V0, Magic::V1] {
        for codec in LEGACY_CODECS {
            let messages = produced(magic);
            let set = encode_message_set(magic, &messages, codec).expect("encode");
            let converted = up_convert(set, BOUND).expect("up-convert");
            let mut batch = converted.batch.clone();
            let got = RecordBatchDecoder::decode(&mut batch).expect("a v2 batch");
            assert!(batch.is_empty(), "one batch, nothing after it");
            assert_eq!(got.version, 2);
            assert_eq!(got.compression, codec, "{magic:?}");
            assert_eq!(got.records.len(), messages.len());
            for (record, (message, offset)) in got.records.iter().zip(messages.iter().zip(0..)) {
                assert_eq!(record.offset, offset);
                assert_eq!(record.timestamp, message.timestamp, "{magic:?} {codec:?}");
                assert_eq!(record.timestamp_type, TimestampType::Creation);
                assert_eq!(record.key, message.key);
                assert_eq!(record.value, message.value);
                assert_eq!(record.producer_id, NO_PRODUCER_ID);
                assert_eq!(record.sequence, NO_SEQUENCE.wrapping_add(offset as i32));
            }
            let base_sequence = (&converted.batch[53..57]).get_i32();
            assert_eq!(base_sequence, NO_SEQUENCE);
        }
    }
}

#[test]
fn up_conversion_passes_v2_batches_through() {
    let batch = Bytes::from(v2_batch(0, &["a", "b"], false, Compression::None));
    let converted = up_convert(batch.clone(), BOUND).expect("v2 as it is");
    assert_eq!(converted.batch, batch);
}

#[test]
fn down_conversion_gives_real_offsets_and_drops_what_legacy_cannot_carry() {
    let mut stored = v2_batch(10, &["a", "b"], false, Compression::None);
    stored.extend(v2_batch(12, &["commit"], true, Compression::None));
    stored.extend(log_append_time(
        v2_batch(13, &["c", "d"], false, Compression::Gzip),
        9_999,
    ));
    stored.extend(v2_batch(15, &["e"], false, Compression::Zstd));
    let partial = v2_batch(16, &["partial"], false, Compression::None);
    stored.extend_from_slice(&partial[..partial.len() - 1]);
    let stored = Bytes::from(stored);

    let v1 = down_convert(&stored, Magic::V1, 0, BOUND, BOUND).expect("down-convert");
    let got = decoded(v1);
    let offsets: Vec<i64> = got.iter().map(|m| m.offset).collect();
    assert_eq!(
        offsets,
        [10, 11, 13, 14, 15],
        "control and partial batches dropped"
    );
    let timestamps: Vec<i64> = got.iter().map(|m| m.timestamp).collect();
    assert_eq!(timestamps, [1_000, 1_001, 9_999, 9_999, 1_000]);
    assert!(got[2].log_append_time && !got[0].log_append_time);
    assert_eq!(got[3].key.as_deref(), Some(&b"key14"[..]));
    assert_eq!(got[3].value.as_deref(), Some(&b"d"[..]));

    let v0 = down_convert(&stored, Magic::V0, 11, BOUND, BOUND).expect("down-convert");
    let got = decoded(v0);
    let offsets: Vec<i64> = got.iter().map(|m| m.offset).collect();
    assert_eq!(
        offsets,
        [11, 13, 14, 15],
        "records below the fetch offset skipped"
    );
    assert!(got.iter().all(|m| m.timestamp == -1 && !m.log_append_time));
}

#[test]
fn down_conversion_stays_within_its_bytes_but_always_gives_one_message() {
    let stored = Bytes::from(v2_batch(
        0,
        &["aaaa", "bbbb", "cccc"],
        false,
        Compression::Snappy,
    ));
    let one_message = down_convert(&stored, Magic::V1, 0, BOUND, BOUND)
        .expect("all")
        .len()
        / 3;
    for (bytes_max, count) in [(0, 1), (one_message, 1), (2 * one_message, 2), (BOUND, 3)] {
        let set = down_convert(&stored, Magic::V1, 0, bytes_max, BOUND).expect("down-convert");
        assert_eq!(decoded(set).len(), count, "bytes_max {bytes_max}");
    }
}

#[test]
fn down_conversion_refuses_bombs_and_bad_batches_without_losing_good_ones() {
    let good = v2_batch(0, &["fine"], false, Compression::None);
    let bomb = v2_batch(1, &[&"x".repeat(200_000)], false, Compression::Gzip);
    assert!(bomb.len() < 10_000);
    let result = down_convert(&Bytes::from(bomb.clone()), Magic::V1, 0, BOUND, 100_000);
    assert_eq!(
        result,
        Err(MessageSetError::TooLarge { bytes_max: 100_000 })
    );
    // After a good batch, the bad one ends the set instead of failing it.
    let both = Bytes::from([good.clone(), bomb].concat());
    let set = down_convert(&both, Magic::V1, 0, BOUND, 100_000).expect("the good one");
    assert_eq!(decoded(set).len(), 1);

    // A record count far past what the bytes hold, behind a correct CRC32C.
    let mut lying = good.clone();
    lying[BATCH_RECORD_COUNT_AT..BATCH_RECORD_COUNT_AT + 4]
        .copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32c::crc32c(&lying[BATCH_ATTRIBUTES_AT..]);
    lying[17..21].copy_from_slice(&crc.to_be_bytes());
    let result = down_convert(&Bytes::from(lying), Magic::V1, 0, BOUND, BOUND);
    assert!(
        matches!(result, Err(MessageSetError::Batch(_))),
        "{result:?}"
    );

    // A damaged batch.
    let mut damaged = good;
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let result = down_convert(&Bytes::from(damaged), Magic::V0, 0, BOUND, BOUND);
    assert!(
        matches!(result, Err(MessageSetError::Batch(_))),
        "{result:?}"
    );
}

#[test]
fn every_truncated_stored_set_down_converts_to_its_whole_batches() {
    let first = v2_batch(0, &["a", "b"], false, Compression::None);
    let stored =
        Bytes::from([first.clone(), v2_batch(2, &["c"], false, Compression::Lz4)].concat());
    for cut in 0..stored.len() {
        let set = down_convert(&stored.slice(..cut), Magic::V1, 0, BOUND, BOUND).expect("ok");
        let expected = if cut < first.len() { 0 } else { 2 };
        let count = if set.is_empty() {
            0
        } else {
            decoded(set).len()
        };
        assert_eq!(count, expected, "cut {cut}");
    }
}
