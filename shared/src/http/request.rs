use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{ApiError, MAX_BODY_BYTES, Request};
use crate::cursor::CursorKey;
use crate::domain::{Email, NewUser, Precondition, UserId, UserName, UserPatch};
use crate::idempotency::IdempotencyKey;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// The media types a body may have: JSON, and for a patch also JSON merge patch (RFC 7396).
pub const JSON: &[&str] = &["application/json"];
pub const JSON_OR_MERGE_PATCH: &[&str] = &["application/json", "application/merge-patch+json"];

/// The decoded body of a request that must carry JSON: `415` for a media type not in
/// `accepted`, `413` past [`MAX_BODY_BYTES`] (counted after base64 decoding), `400` for base64
/// that is not.
pub fn json_body<'a>(request: &'a Request, accepted: &[&str]) -> Result<Cow<'a, [u8]>, ApiError> {
    let raw = request.body.as_deref().unwrap_or_default();
    if !raw.is_empty() && !has_media_type(request, accepted) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = if request.is_base64_encoded {
        match STANDARD.decode(raw) {
            Ok(decoded) => Cow::Owned(decoded),
            Err(_) if raw.len() / 4 * 3 > MAX_BODY_BYTES => return Err(ApiError::PayloadTooLarge),
            Err(_) => return Err(ApiError::InvalidJson),
        }
    } else {
        Cow::Borrowed(raw.as_bytes())
    };
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(body)
}

/// Whether the `content-type`'s essence (its parameters aside) is one of `accepted`.
fn has_media_type(request: &Request, accepted: &[&str]) -> bool {
    let essence = request
        .headers
        .get("content-type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    accepted
        .iter()
        .any(|media| essence.eq_ignore_ascii_case(media))
}

/// The optional `if-match` header; repeated, its values form one list.
pub fn if_match(request: &Request) -> Option<Precondition> {
    let mut values = request.headers.get_all("if-match").peekable();
    values.peek()?;
    Some(Precondition::parse(&values.collect::<Vec<_>>().join(",")))
}

/// The optional `idempotency-key` header.
pub fn idempotency_key(request: &Request) -> Result<Option<IdempotencyKey>, ApiError> {
    request
        .headers
        .get("idempotency-key")
        .map(|value| IdempotencyKey::parse(value.as_bytes()))
        .transpose()
        .map_err(|_| ApiError::InvalidIdempotencyKey)
}

/// Whom the authorizer in front of the function says the caller is, so that idempotency keys
/// are scoped to it: a JWT's `sub`, an IAM caller's ARN, or the `principalId` a Lambda authorizer
/// puts in its context. `None` without an authorizer. An authorizer that names none of these is a
/// deployment error (`500`): its callers would otherwise share one key space.
pub fn caller(request: &Request) -> Result<Option<Cow<'_, str>>, ApiError> {
    let Some(authorizer) = request.request_context.authorizer.as_ref() else {
        return Ok(None);
    };
    if let Some(sub) = authorizer
        .jwt
        .as_ref()
        .and_then(|jwt| jwt.claims.get("sub"))
        .and_then(serde_json::Value::as_str)
    {
        return Ok(Some(Cow::Borrowed(sub)));
    }
    if let Some(arn) = authorizer
        .iam
        .as_ref()
        .and_then(|iam| iam.user_arn.as_deref())
    {
        return Ok(Some(Cow::Owned(format!("iam:{arn}"))));
    }
    if let Some(serde_json::Value::String(principal)) = authorizer
        .lambda
        .as_ref()
        .and_then(|context| context.get("principalId"))
    {
        return Ok(Some(Cow::Owned(format!("lambda:{principal}"))));
    }
    let named_nothing = authorizer.lambda.as_ref().is_none_or(|c| c.is_empty());
    if authorizer.jwt.is_none() && authorizer.iam.is_none() && named_nothing {
        return Ok(None);
    }
    tracing::error!("the authorizer names no principal to scope idempotency keys to");
    Err(ApiError::Internal)
}

/// `POST /users`'s body: `400` unless it is a JSON object, `422` naming every field that is
/// missing, mistyped, invalid, repeated or unknown.
pub fn new_user(body: &[u8]) -> Result<NewUser, ApiError> {
    let fields = Fields::parse(body)?;
    let required = |name: &'static str| {
        fields
            .string(name)
            .and_then(|value| value.ok_or_else(|| format!("{name}: is required")))
    };
    let name = required("name").and_then(|raw| name_field(&raw));
    let email = required("email").and_then(|raw| email_field(&raw));
    match (name, email) {
        (Ok(name), Ok(email)) if fields.unknown.is_empty() => Ok(NewUser { name, email }),
        (name, email) => Err(fields.refusal([name.err(), email.err()])),
    }
}

/// `PATCH /users/{id}`'s body, a JSON merge patch of `name`, `email` or both: `400` unless it
/// is a JSON object, `422` for an empty one and naming every field that is mistyped, `null`
/// (a user's fields cannot be removed), invalid, repeated or unknown.
pub fn user_patch(body: &[u8]) -> Result<UserPatch, ApiError> {
    let fields = Fields::parse(body)?;
    let name = fields
        .string("name")
        .and_then(|raw| raw.as_deref().map(name_field).transpose());
    let email = fields
        .string("email")
        .and_then(|raw| raw.as_deref().map(email_field).transpose());
    match (name, email) {
        (Ok(name), Ok(email)) if fields.unknown.is_empty() => UserPatch::new(name, email)
            .ok_or_else(|| {
                ApiError::ValidationFailed("the patch must name name, email or both".into())
            }),
        (name, email) => Err(fields.refusal([name.err(), email.err()])),
    }
}

fn name_field(raw: &str) -> Result<UserName, String> {
    UserName::parse(raw).map_err(|e| format!("name: {e}"))
}

fn email_field(raw: &str) -> Result<Email, String> {
    Email::parse(raw).map_err(|e| format!("email: {e}"))
}

/// How many unknown fields a `422` names; the rest are counted.
const MAX_UNKNOWN_SHOWN: usize = 5;

/// A JSON object body's members by name, and the names it should not have.
struct Fields {
    members: Vec<(String, Box<RawValue>)>,
    unknown: Vec<String>,
}

impl Fields {
    /// The only names either body knows.
    const KNOWN: [&str; 2] = ["name", "email"];

    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let Members(members) = serde_json::from_slice(body).map_err(|_| ApiError::InvalidJson)?;
        let unknown = members
            .iter()
            .map(|(key, _)| key)
            .filter(|key| !Self::KNOWN.contains(&key.as_str()))
            .cloned()
            .collect();
        Ok(Self { members, unknown })
    }

    /// The string value of field `name`, `None` when absent; why not, for the `422`.
    fn string(&self, name: &'static str) -> Result<Option<String>, String> {
        let mut values = self
            .members
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value);
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(format!("{name}: appears more than once")),
            (Some(value), None) if value.get() == "null" => {
                Err(format!("{name}: must be a string, not null"))
            }
            (Some(value), None) => serde_json::from_str::<String>(value.get())
                .map(Some)
                .map_err(|_| format!("{name}: must be a string")),
        }
    }

    /// The `422` naming the known fields' problems, then a few of the unknown fields.
    fn refusal<const N: usize>(&self, problems: [Option<String>; N]) -> ApiError {
        let mut all: Vec<String> = problems.into_iter().flatten().collect();
        all.extend(
            self.unknown
                .iter()
                .take(MAX_UNKNOWN_SHOWN)
                .map(|key| format!("{}: unknown field", printable(key))),
        );
        if self.unknown.len() > MAX_UNKNOWN_SHOWN {
            all.push(format!(
                "{} more unknown fields",
                self.unknown.len() - MAX_UNKNOWN_SHOWN
            ));
        }
        ApiError::ValidationFailed(all.join("; "))
    }
}

/// A field name as it may be echoed back: cut short, control characters escaped.
fn printable(key: &str) -> String {
    const MAX: usize = 64;
    let mut shown: String = key.chars().take(MAX).flat_map(char::escape_debug).collect();
    if key.chars().count() > MAX {
        shown.push('…');
    }
    shown
}

/// A JSON object's members in order, duplicates kept so that none is silently dropped, values
/// left unparsed so that a number beyond `f64` is a wrong value (422), not broken JSON (400).
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// `GET /users`'s query: `limit` (1 to 100, default 20) and `cursor`; other parameters are
/// ignored, and an empty or repeated `limit` or `cursor` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: usize,
    pub before: Option<UserId>,
}

impl ListQuery {
    pub fn parse(request: &Request, key: &CursorKey) -> Result<Self, ApiError> {
        let query = request.raw_query_string.as_deref().unwrap_or_default();
        let mut limit = None;
        let mut cursor = None;
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "limit" if limit.is_none() => limit = Some(value),
                "limit" => return Err(ApiError::InvalidLimit),
                "cursor" if cursor.is_none() => cursor = Some(value),
                "cursor" => return Err(ApiError::InvalidCursor),
                _ => {}
            }
        }
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => parse_limit(&raw).ok_or(ApiError::InvalidLimit)?,
        };
        let before = cursor
            .map(|raw| key.decode(&raw).map_err(|_| ApiError::InvalidCursor))
            .transpose()?;
        Ok(Self { limit, before })
    }
}

/// A decimal integer from 1 to 100; leading zeros are allowed, as in any integer.
fn parse_limit(raw: &str) -> Option<usize> {
    let significant = raw.trim_start_matches('0');
    if significant.len() > 3 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    significant
        .parse()
        .ok()
        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(result: Result<NewUser, ApiError>) -> String {
        match result {
            Ok(_) => "ok".into(),
            Err(ApiError::ValidationFailed(message)) => format!("422 {message}"),
            Err(error) => format!("{} {}", error.status(), error.code()),
        }
    }

    #[test]
    fn parses_a_valid_body() {
        let user = new_user(br#"{"name": " Ada ", "email": "Ada@Example.com"}"#).expect("valid");
        assert_eq!(user.name.as_str(), "Ada");
        assert_eq!(user.email.as_str(), "Ada@Example.com");
    }

    #[test]
    fn refuses_what_is_not_a_json_object_with_400() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for body in [
            &b""[..],
            b"nope",
            b"[]",
            b"\"x\"",
            b"null",
            b"42",
            b"{",
            b"{}x",
            b"\xff\xfe",
            deep.as_bytes(),
        ] {
            assert_eq!(code(new_user(body)), "400 invalid_json", "{body:?}");
        }
    }

    #[test]
    fn names_every_failing_field_with_422() {
        assert_eq!(
            code(new_user(b"{}")),
            "422 name: is required; email: is required"
        );
        assert_eq!(
            code(new_user(br#"{"name": 1, "email": "x", "admin": true}"#)),
            "422 name: must be a string; email: not a valid address; admin: unknown field"
        );
        assert_eq!(
            code(new_user(br#"{"name": "a", "name": "b", "email": "a@b.c"}"#)),
            "422 name: appears more than once"
        );
        assert_eq!(
            code(new_user(br#"{"name": " ", "email": null}"#)),
            "422 name: must not be empty; email: must be a string, not null"
        );
        assert_eq!(
            code(new_user(
                br#"{"name": 1e400, "email": "a@b.c", "x": -1e999}"#
            )),
            "422 name: must be a string; x: unknown field"
        );
        assert_eq!(
            code(new_user(
                br#"{"name": "\u00e9\ud83e\udd80", "email": "a@b.c"}"#
            )),
            "ok"
        );
        assert_eq!(
            code(new_user(br#"{"name": "\ud800", "email": "a@b.c"}"#)),
            "422 name: must be a string"
        );
        let long_key = format!(
            r#"{{"name": "a", "email": "a@b.c", "{}\n": 1}}"#,
            "k".repeat(100)
        );
        let message = code(new_user(long_key.as_bytes()));
        assert!(
            message.starts_with("422 kkk") && message.ends_with("…: unknown field"),
            "{message}"
        );
    }

    #[test]
    fn a_422_names_a_few_unknown_fields_and_counts_the_rest() {
        let many: Vec<String> = (0..40).map(|i| format!(r#""extra{i}": 1"#)).collect();
        let body = format!(
            r#"{{"name": "Ada", "email": "a@b.c", {}}}"#,
            many.join(", ")
        );
        let message = code(new_user(body.as_bytes()));
        assert_eq!(
            message.matches(": unknown field").count(),
            MAX_UNKNOWN_SHOWN,
            "{message}"
        );
        assert!(message.ends_with("; 35 more unknown fields"), "{message}");
        let patch = user_patch(body.as_bytes())
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(patch.is_err_and(|m| m.ends_with("35 more unknown fields")));
    }

    #[test]
    fn a_patch_names_one_field_or_both_and_never_null() {
        let patch = |body: &[u8]| match user_patch(body) {
            Ok(_) => "ok".to_owned(),
            Err(error) => format!("{} {error}", error.status()),
        };
        assert_eq!(patch(br#"{"name": " Grace "}"#), "ok");
        assert_eq!(patch(br#"{"email": "g@example.com", "name": "G"}"#), "ok");
        assert_eq!(patch(b"{}"), "422 the patch must name name, email or both");
        assert_eq!(
            patch(br#"{"name": null}"#),
            "422 name: must be a string, not null"
        );
        assert_eq!(patch(br#"{"email": 7}"#), "422 email: must be a string");
        assert_eq!(patch(b"[]"), "400 the body is not a JSON object");
    }

    #[test]
    fn limits_are_small_plain_integers() {
        assert_eq!(parse_limit("1"), Some(1));
        assert_eq!(parse_limit("100"), Some(100));
        assert_eq!(parse_limit("007"), Some(7));
        assert_eq!(parse_limit("0100"), Some(100));
        for bad in [
            "",
            "0",
            "000",
            "0101",
            "101",
            "-1",
            "+1",
            "1e3",
            "1.0",
            " 5",
            "0x10",
            "99999999999999999999",
            "٣",
        ] {
            assert_eq!(parse_limit(bad), None, "{bad:?}");
        }
    }

    fn authorized(authorizer: serde_json::Value) -> Request {
        let mut request = Request::default();
        request.request_context.authorizer =
            Some(serde_json::from_value(authorizer).expect("an authorizer context"));
        request
    }

    fn scope(request: &Request) -> Result<Option<String>, u16> {
        caller(request)
            .map(|c| c.map(Cow::into_owned))
            .map_err(|e| e.status())
    }

    #[test]
    fn keys_are_scoped_to_whichever_authorizer_names_the_caller() {
        assert_eq!(scope(&Request::default()), Ok(None));
        let jwt =
            authorized(serde_json::json!({"jwt": {"claims": {"sub": "client-1"}, "scopes": null}}));
        assert_eq!(scope(&jwt), Ok(Some("client-1".into())));
        let iam = authorized(
            serde_json::json!({"iam": {"userArn": "arn:aws:iam::1:user/a", "callerId": "X"}}),
        );
        assert_eq!(scope(&iam), Ok(Some("iam:arn:aws:iam::1:user/a".into())));
        let lambda =
            authorized(serde_json::json!({"lambda": {"principalId": "p-7", "tier": "gold"}}));
        assert_eq!(scope(&lambda), Ok(Some("lambda:p-7".into())));
        for unknown in [
            serde_json::json!({"lambda": {"tier": "gold"}}),
            serde_json::json!({"jwt": {"claims": {"client_id": "c"}, "scopes": null}}),
            serde_json::json!({"iam": {"callerId": "X"}}),
        ] {
            assert_eq!(scope(&authorized(unknown.clone())), Err(500), "{unknown}");
        }
    }

    fn list_query(raw: &str) -> Result<ListQuery, ApiError> {
        let request = Request {
            raw_query_string: Some(raw.to_owned()),
            ..Request::default()
        };
        let key = CursorKey::new(&[1; 32]).expect("32 bytes");
        ListQuery::parse(&request, &key)
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_body_is_a_user_or_a_400_or_a_422(
            body in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                any::<String>().prop_map(String::into_bytes),
                "[{}\\[\\]\":,a-z0-9 @.]{0,60}".prop_map(String::into_bytes),
            ],
        ) {
            match new_user(&body) {
                Ok(_) | Err(ApiError::InvalidJson | ApiError::ValidationFailed(_)) => {}
                Err(other) => prop_assert!(false, "{:?}: {:?}", body, other),
            }
        }

        #[test]
        fn limits_are_the_integers_1_to_100(raw in prop_oneof![any::<String>(), "[-+ .eEx0-9]{0,5}"]) {
            if let Some(limit) = parse_limit(&raw) {
                prop_assert!(raw.bytes().all(|b| b.is_ascii_digit()), "{:?}", raw);
                prop_assert_eq!(raw.parse::<usize>().ok(), Some(limit));
                prop_assert!((1..=MAX_LIMIT).contains(&limit));
            }
        }

        #[test]
        fn every_limit_from_1_to_100_is_accepted(limit in 1..=MAX_LIMIT) {
            prop_assert_eq!(parse_limit(&limit.to_string()), Some(limit));
        }

        #[test]
        fn any_query_is_a_page_request_or_a_400(
            raw in prop_oneof![any::<String>(), "((limit|cursor|x)=[-+%0-9A-Za-z_]{0,6}&?){0,4}"],
        ) {
            match list_query(&raw) {
                Ok(query) => prop_assert!((1..=MAX_LIMIT).contains(&query.limit)),
                Err(ApiError::InvalidLimit | ApiError::InvalidCursor) => {}
                Err(other) => prop_assert!(false, "{:?}: {:?}", raw, other),
            }
        }
    }
}
