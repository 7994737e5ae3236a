use lambda_http::Body;
use lambda_http::http::{HeaderMap, HeaderValue};
use serde::Serialize;

use super::{ApiError, Response};
use crate::domain::User;

/// A successful answer.
#[derive(Debug)]
pub enum Reply {
    Created(User),
    Found(User),
    Updated(User),
    Deleted,
    Page {
        items: Vec<User>,
        next_cursor: Option<String>,
    },
}

#[derive(Serialize)]
struct PageBody<'a> {
    items: &'a [User],
    next_cursor: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    request_id: &'a str,
}

/// Turns an outcome into the HTTP answer, with the headers every response carries: one user
/// comes with its `etag`, a `204` with no body.
pub fn render(outcome: &Result<Reply, ApiError>, request_id: &str) -> Response {
    let mut headers = HeaderMap::new();
    let (status, body) = match outcome {
        Ok(Reply::Created(user)) => {
            if let Ok(location) = HeaderValue::from_str(&format!("/users/{}", user.id())) {
                headers.insert("location", location);
            }
            (201, Some(one_user(user, &mut headers)))
        }
        Ok(Reply::Found(user) | Reply::Updated(user)) => (200, Some(one_user(user, &mut headers))),
        Ok(Reply::Deleted) => (204, None),
        Ok(Reply::Page { items, next_cursor }) => (
            200,
            Some(to_json(&PageBody {
                items,
                next_cursor: next_cursor.as_deref(),
            })),
        ),
        Err(error) => {
            if let ApiError::MethodNotAllowed { allow } = error {
                headers.insert("allow", HeaderValue::from_static(allow));
            }
            if let Some(seconds) = error.retry_after() {
                headers.insert("retry-after", HeaderValue::from(seconds));
            }
            let detail = ErrorDetail {
                code: error.code(),
                message: error.to_string(),
                request_id,
            };
            (error.status(), Some(to_json(&ErrorBody { error: detail })))
        }
    };
    if body.is_some() {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    let mut response = Response::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = body.map(Body::Text);
    response
}

/// The user's JSON, its `etag` set among `headers`.
fn one_user(user: &User, headers: &mut HeaderMap) -> String {
    if let Ok(etag) = HeaderValue::from_str(&user.etag()) {
        headers.insert("etag", etag);
    }
    to_json(user)
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("response bodies are plain JSON structures")
}
