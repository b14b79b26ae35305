//! Hostile bytes over raw TCP: each bad connection is closed (or answered with an error), and the
//! broker keeps serving everyone else.

mod common;

use common::{
    assert_closed, assert_closed_or_error_response, assert_round_trip, consumer, correlation_id_of,
    create_topic, frame, produce_v3, send_and_judge, with_length, Broker, Verdict,
    API_API_VERSIONS, API_CREATE_TOPICS, API_METADATA, API_PRODUCE, UNSUPPORTED_VERSION,
};

/// The broker's frame limit in these tests.
const REQUEST_MAX_BYTES: i32 = 1024 * 1024;

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
    assert_round_trip(&mut broker, topic, round);

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
    assert_round_trip(&mut broker, topic, round);

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
    assert_round_trip(&mut broker, topic, round);

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
    let junk_cases: [(i16, i16); 12] = [
        (API_CREATE_TOPICS, 0), // older than the codec: decoded by hand
        (8, 1),                 // OffsetCommit v1, the same
        (2, 0),                 // ListOffsets v0, the same
        (32, 0),                // DescribeConfigs v0, the same
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
    assert_round_trip(&mut broker, topic, round);

    // Nothing hostile was stored: the topic holds exactly the normal-service records.
    let reader = consumer(&broker.bootstrap(), &[]);
    assert_eq!(common::watermarks(&reader, topic, 0), (0, round as i64 + 1));
}
