//! Logging: JSON lines when Lambda's `AWS_LAMBDA_LOG_FORMAT` is `JSON`, text otherwise, at
//! `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`).

pub fn init() {
    lambda_http::tracing::init_default_subscriber();
}
