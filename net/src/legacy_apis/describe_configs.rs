//! DescribeConfigs v0 (the codec starts at v1).
//!
//! Request: `resources: [resource_type: i8, resource_name: string, configuration_keys:
//! nullable [string]]` (no `include_synonyms`: v0 never asks for synonyms).
//!
//! Response: `throttle_time_ms: i32, results: [error_code: i16, error_message: nullable
//! string, resource_type: i8, resource_name: string, configs: [name: string, value: nullable
//! string, read_only: bool, is_default: bool, is_sensitive: bool]]`. v0 has `is_default` where
//! v1 has `config_source`, and no synonyms: `is_default` is true for `DEFAULT_CONFIG` (5).
//! (Kafka 3.9 itself writes false there whatever the source, a regression of its generated
//! serializer; the field's meaning is the one old clients read.)

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};

use super::wire::{Reader, Writer};
use super::OldVersions;
use crate::error::NetError;

/// DescribeConfigs v0.
pub struct DescribeConfigsOld;

/// Kafka's `ConfigSource.DEFAULT_CONFIG`.
const SOURCE_DEFAULT: i8 = 5;

/// The fewest bytes a resource takes: type, name length, key count.
const RESOURCE_BYTES_MIN: usize = 1 + 2 + 4;

impl OldVersions for DescribeConfigsOld {
    const API_KEY: ApiKey = ApiKey::DescribeConfigs;
    const VERSIONS: (i16, i16) = (0, 0);
    type Request = DescribeConfigsRequest;
    type Response = DescribeConfigsResponse;
    type Asked = ();

    fn decode(r: &mut Reader) -> Result<(DescribeConfigsRequest, ()), NetError> {
        let resources = r.array(RESOURCE_BYTES_MIN, |r| {
            let resource_type = r.i8()?;
            let resource_name = r.string()?;
            let configuration_keys = r.nullable_array(2, Reader::string)?;
            Ok(DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(resource_name)
                .with_configuration_keys(configuration_keys))
        })?;
        let request = DescribeConfigsRequest::default()
            .with_resources(resources)
            .with_include_synonyms(false)
            .with_include_documentation(false);
        Ok((request, ()))
    }

    fn encode(w: &mut Writer, response: &DescribeConfigsResponse, _: &()) -> Result<(), NetError> {
        w.i32(response.throttle_time_ms);
        w.array(&response.results, |w, result| {
            w.i16(result.error_code);
            w.nullable_string(result.error_message.as_deref())?;
            w.i8(result.resource_type);
            w.string(&result.resource_name)?;
            w.array(&result.configs, |w, config| {
                w.string(&config.name)?;
                w.nullable_string(config.value.as_deref())?;
                w.bool(config.read_only);
                w.bool(config.config_source == SOURCE_DEFAULT);
                w.bool(config.is_sensitive);
                Ok(())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use kafka_protocol::messages::describe_configs_response::{
        DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
    };
    use kafka_protocol::protocol::StrBytes;

    /// Topic "ab" with keys ["retention.ms"], and broker "1" with all keys (null).
    fn body() -> Vec<u8> {
        let mut b = 2i32.to_be_bytes().to_vec();
        b.push(2);
        b.extend(string("ab"));
        b.extend(1i32.to_be_bytes());
        b.extend(string("retention.ms"));
        b.push(4);
        b.extend(string("1"));
        b.extend((-1i32).to_be_bytes());
        b
    }

    fn s(s: &'static str) -> StrBytes {
        StrBytes::from_static_str(s)
    }

    #[test]
    fn floor_is_the_codec_floor() {
        floor_matches_codec::<DescribeConfigsOld>();
    }

    #[test]
    fn decodes_v0_into_the_codec_struct() {
        let (request, ()) = decoded::<DescribeConfigsOld>(0, &body());
        let topic = DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("ab"))
            .with_configuration_keys(Some(vec![s("retention.ms")]));
        let broker = DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1"))
            .with_configuration_keys(None);
        let expected = DescribeConfigsRequest::default().with_resources(vec![topic, broker]);
        assert_eq!(request, expected);
    }

    #[test]
    fn every_truncated_body_and_lying_count_is_an_error() {
        let body = body();
        every_prefix_fails::<DescribeConfigsOld>(0, &body);
        let keys_at = 4 + 1 + 4;
        lying_count_fails::<DescribeConfigsOld>(0, &body, 0);
        lying_count_fails::<DescribeConfigsOld>(0, &body, keys_at);
    }

    #[test]
    fn encodes_exact_bytes_with_is_default_for_the_source() {
        let config = |name, source| {
            DescribeConfigsResourceResult::default()
                .with_name(s(name))
                .with_value(Some(s("1")))
                .with_read_only(true)
                .with_config_source(source)
                .with_synonyms(vec![DescribeConfigsSynonym::default()])
        };
        let result = DescribeConfigsResult::default()
            .with_resource_type(2)
            .with_resource_name(s("ab"))
            .with_error_message(None)
            .with_configs(vec![config("a", SOURCE_DEFAULT), config("b", 1)]);
        let response = DescribeConfigsResponse::default()
            .with_throttle_time_ms(3)
            .with_results(vec![result]);
        let mut expected = 3i32.to_be_bytes().to_vec();
        expected.extend(1i32.to_be_bytes());
        expected.extend(0i16.to_be_bytes());
        expected.extend((-1i16).to_be_bytes()); // error_message: null
        expected.push(2);
        expected.extend(string("ab"));
        expected.extend(2i32.to_be_bytes());
        for (name, is_default) in [("a", 1), ("b", 0)] {
            expected.extend(string(name));
            expected.extend(string("1"));
            expected.extend([1, is_default, 0]); // read_only, is_default, is_sensitive
        }
        assert_eq!(
            encoded_body::<DescribeConfigsOld>(0, &response, &()),
            expected
        );
    }
}
