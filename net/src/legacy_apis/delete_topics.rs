//! DeleteTopics v0 (the codec starts at v1).
//!
//! Request: `topic_names: [string], timeout_ms: i32`: exactly v1's bytes, so the codec decodes
//! it at v1. Response: `responses: [name: string, error_code: i16]` (v1 puts the throttle time
//! first; v0 has none).

use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse};

use super::wire::{Reader, Writer};
use super::{decode_as, OldVersions};
use crate::error::NetError;

/// DeleteTopics v0.
pub struct DeleteTopicsOld;

impl OldVersions for DeleteTopicsOld {
    const API_KEY: ApiKey = ApiKey::DeleteTopics;
    const VERSIONS: (i16, i16) = (0, 0);
    type Request = DeleteTopicsRequest;
    type Response = DeleteTopicsResponse;
    type Asked = ();

    fn decode(r: &mut Reader) -> Result<(DeleteTopicsRequest, ()), NetError> {
        Ok((decode_as(r, 1)?, ()))
    }

    fn encode(w: &mut Writer, response: &DeleteTopicsResponse, _: &()) -> Result<(), NetError> {
        w.array(&response.responses, |w, result| {
            // Names are nullable from v6 only (deletion by topic id); the handler always names
            // the topic below v6.
            let Some(name) = &result.name else {
                return Err(w.error_reason("a topic result without a name".into()));
            };
            w.string(name)?;
            w.i16(result.error_code);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn body() -> Vec<u8> {
        let mut b = 2i32.to_be_bytes().to_vec();
        b.extend(string("ab"));
        b.extend(string("c"));
        b.extend(3000i32.to_be_bytes());
        b
    }

    fn name(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    #[test]
    fn floor_is_the_codec_floor() {
        floor_matches_codec::<DeleteTopicsOld>();
    }

    #[test]
    fn decodes_v0_into_the_codec_struct() {
        let (request, ()) = decoded::<DeleteTopicsOld>(0, &body());
        let expected = DeleteTopicsRequest::default()
            .with_topic_names(vec![name("ab"), name("c")])
            .with_timeout_ms(3000);
        assert_eq!(request, expected);
    }

    #[test]
    fn every_truncated_body_is_an_error() {
        every_prefix_fails::<DeleteTopicsOld>(0, &body());
    }

    #[test]
    fn encodes_exact_bytes_and_refuses_a_nameless_result() {
        let result = DeletableTopicResult::default()
            .with_name(Some(name("ab")))
            .with_error_code(3)
            .with_error_message(Some(StrBytes::from_static_str("unknown")));
        let response = DeleteTopicsResponse::default()
            .with_throttle_time_ms(9)
            .with_responses(vec![result]);
        let mut expected = 1i32.to_be_bytes().to_vec();
        expected.extend(string("ab"));
        expected.extend(3i16.to_be_bytes());
        assert_eq!(encoded_body::<DeleteTopicsOld>(0, &response, &()), expected);

        let nameless = DeleteTopicsResponse::default()
            .with_responses(vec![DeletableTopicResult::default().with_name(None)]);
        let result =
            super::super::encode::<DeleteTopicsOld>(&header::<DeleteTopicsOld>(0), &nameless, &());
        assert!(result.is_err());
    }
}
