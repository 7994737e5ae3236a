//! Logging: JSON lines when Lambda's `AWS_LAMBDA_LOG_FORMAT` is `JSON`, text otherwise, at
//! `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`), as `lambda_runtime`'s default subscriber does, except
//! that no level logs a request's payload.

use lambda_http::tracing::subscriber::filter::{Directive, EnvFilter, LevelFilter};

/// Where `lambda_runtime` logs each event whole, body included, at TRACE. Emails must never
/// reach the logs, so this target is held at DEBUG at most.
const RAW_EVENT_TARGET: &str = "lambda_runtime::layers::api_response";

pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let no_payloads: Directive = format!("{RAW_EVENT_TARGET}={}", level.min(LevelFilter::DEBUG))
        .parse()
        .expect("a valid directive");
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy()
        .add_directive(no_payloads);
    let subscriber = lambda_http::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
}
