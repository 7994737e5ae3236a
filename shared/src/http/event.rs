//! The API Gateway HTTP API event (payload format 2.0), with only what the functions read.
//!
//! Our own type rather than `aws_lambda_events`' `ApiGatewayV2httpRequest`, which parses headers
//! into `http::HeaderValue`s: one holding a control character fails the event's deserialisation,
//! an invocation error that API Gateway answers `502`, before any code of ours runs. Here every
//! field is plain text, every field has a default, and unknown fields are ignored, so that any
//! event API Gateway can send reaches the handler, which answers a bad header `400` like any
//! other.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Request {
    pub route_key: Option<String>,
    pub raw_path: Option<String>,
    pub raw_query_string: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub headers: Headers,
    pub body: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub is_base64_encoded: bool,
    #[serde(deserialize_with = "nullable")]
    pub request_context: RequestContext,
}

/// Header names and values as API Gateway sends them: names lowercased, repeated headers joined
/// with commas into one value. A list of values (which hand-made events hold) is joined the
/// same way; a `null` is no header.
#[derive(Debug, Clone, Default)]
pub struct Headers(HashMap<String, String>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
            Other(Value),
        }
        let raw = HashMap::<String, Raw>::deserialize(deserializer)?;
        let headers = raw
            .into_iter()
            .filter_map(|(name, value)| match value {
                Raw::One(value) => Some((name, value)),
                Raw::Many(values) => Some((name, values.join(","))),
                Raw::Other(Value::Null) => None,
                Raw::Other(other) => Some((name, other.to_string())),
            })
            .collect();
        Ok(Self(headers))
    }
}

impl Headers {
    /// Every value of the header `name`, its case aside.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The header `name`, its case aside.
    pub fn get<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.get_all(name).next()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestContext {
    pub stage: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub http: HttpDescription,
    pub authorizer: Option<Authorizer>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpDescription {
    #[serde(deserialize_with = "nullable")]
    pub method: String,
    pub path: Option<String>,
}

/// What the authorizer in front of the API says of the caller: one of these is present.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Authorizer {
    pub jwt: Option<Jwt>,
    pub iam: Option<Iam>,
    /// The context a Lambda authorizer returned.
    pub lambda: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Jwt {
    /// Claims as API Gateway passes them: strings, or for a claim that is not one, its JSON.
    #[serde(deserialize_with = "nullable")]
    pub claims: HashMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Iam {
    pub user_arn: Option<String>,
}

/// A field's default for `null`, as for a missing field.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_with_a_control_character_is_still_an_event() {
        let event = serde_json::json!({
            "rawPath": "/users",
            "headers": {"Idempotency-Key": "a\u{1}b", "content-type": "application/json"},
            "requestContext": {"http": {"method": "POST"}},
        });
        let request: Request = serde_json::from_value(event).expect("an event");
        assert_eq!(request.headers.get("idempotency-key"), Some("a\u{1}b"));
        assert_eq!(request.request_context.http.method, "POST");
    }

    #[test]
    fn header_values_in_a_list_are_joined_and_null_is_none() {
        let request: Request = serde_json::from_value(serde_json::json!({
            "headers": {"if-match": ["\"v1\"", "\"v2\""], "x-null": null, "x-number": 7},
        }))
        .expect("an event");
        assert_eq!(request.headers.get("if-match"), Some("\"v1\",\"v2\""));
        assert_eq!(request.headers.get("x-null"), None);
        assert_eq!(request.headers.get("x-number"), Some("7"));
    }

    #[test]
    fn null_and_missing_fields_take_their_defaults() {
        let request: Request = serde_json::from_value(serde_json::json!({
            "headers": null, "body": null, "isBase64Encoded": null,
            "requestContext": {"http": null, "authorizer": null},
        }))
        .expect("an event");
        assert!(request.body.is_none());
        assert!(request.request_context.authorizer.is_none());
    }
}
