//! Where API Gateway HTTP API (payload 2.0) events become domain input, and results and
//! errors become the contract's responses.
//!
//! The handlers take the event as our own [`Request`] rather than `lambda_http::Request`: that
//! conversion panics on a body flagged base64 that is not, and on a `host` header that is not a
//! valid URL host, and `aws_lambda_events`' type refuses a header holding a control character:
//! each would turn a client's mistake into a 502.

mod error;
mod event;
mod request;
mod response;
mod route;

pub use error::ApiError;
pub use request::{
    JSON, JSON_OR_MERGE_PATCH, ListQuery, caller, idempotency_key, if_match, json_body, new_user,
    user_patch,
};
pub use response::{Reply, render};
pub use route::{Resource, route};

pub use event::{Authorizer, Headers, Request};
pub use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse as Response;

/// The largest body accepted, counted after base64 decoding.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
