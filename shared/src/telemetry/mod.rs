//! Logs and metrics, with what Powertools gives Python functions:
//!
//! - Logs honour Lambda's `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`).
//!   In JSON, every line carries the fields of the spans it is in at the top level: the runtime's
//!   `requestId` and `xrayTraceId`, and this module's `cold_start`, beside the function's name
//!   and version. As text (under `cargo lambda watch`), the spans lead each line. No level logs
//!   a payload.
//! - Metrics are CloudWatch Embedded Metric Format documents, written to stdout after each
//!   request, in the namespace `POWERTOOLS_METRICS_NAMESPACE` with the dimension `service` =
//!   `POWERTOOLS_SERVICE_NAME`, as Powertools names them.
//!
//! Lambda filters a function's JSON lines by their `level` when its log format is JSON, and
//! counts a line without a valid `level`, or without a valid RFC 3339 `timestamp`, as INFO
//! (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html>).
//! So every JSON line carries its `timestamp`, and every metric document carries a `timestamp`
//! and the level [`METRICS_LEVEL`], which no application log level filters out: metrics never
//! depend on the level an operator chooses.
//! - Nothing is left pending between requests: log lines are written as they happen, and a
//!   request's metrics when it ends. So a function registers no shutdown hook: to be sent SIGTERM
//!   it would have to register an extension with Lambda's Extensions API in init, one more HTTP
//!   round trip and client, measured at about 0.8 ms of every cold start and 0.5 MB of binary
//!   (bench/README.md), for a flush with nothing to write.

mod emf;

pub use emf::{METRICS_LEVEL, count, metric, milliseconds, per_request};

use std::sync::atomic::{AtomicBool, Ordering};

use lambda_http::tracing::subscriber::filter::{Directive, EnvFilter, LevelFilter};
use lambda_http::tracing::subscriber::layer::SubscriberExt;
use lambda_http::tracing::subscriber::util::SubscriberInitExt;
use lambda_http::tracing::subscriber::{fmt, registry};

/// The one target whose TRACE lines are this service's own. Every other crate logs at DEBUG at
/// most: at TRACE, `lambda_runtime` logs each event whole and the AWS SDK every request and
/// response body, and a user's name and email must never reach the logs.
const OWN_TARGET: &str = "users";

static COLD: AtomicBool = AtomicBool::new(true);

/// Sets up logs and metrics; once per process, before anything logs.
pub fn init() {
    init_logs();
    emf::init();
    // Where a panic happened, as an ERROR line of the request it cut short: Rust's own hook
    // writes plain text to stderr, which Lambda counts as INFO and drops above it.
    std::panic::set_hook(Box::new(|panic| tracing::error!(%panic, "panicked")));
}

fn init_logs() {
    let level = env("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| env("RUST_LOG"))
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let others = level.min(LevelFilter::DEBUG);
    let own: Directive = format!("{OWN_TARGET}={level}")
        .parse()
        .expect("a valid directive");
    let filter = EnvFilter::builder()
        .with_default_directive(others.into())
        .parse_lossy("")
        .add_directive(own);
    let logs = registry().with(filter);
    if env("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json")) {
        let mut json = json_subscriber::layer()
            .with_target(false)
            .with_current_span(false)
            .with_span_list(false)
            .flatten_event(true)
            .flatten_span_list_on_top_level(true);
        json.inner_layer_mut().add_static_field(
            "function",
            serde_json::Value::from(env("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default()),
        );
        // The version that wrote the line: the canary's alarms count a new version's 5xx by it.
        json.inner_layer_mut().add_static_field(
            "version",
            serde_json::Value::from(env("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_default()),
        );
        logs.with(json).init();
    } else {
        logs.with(fmt::layer().with_target(false).without_time())
            .init();
    }
}

/// True for the first request of this execution environment only; counted as a cold start.
pub fn cold_start() -> bool {
    let cold = COLD.swap(false, Ordering::Relaxed);
    if cold {
        let function = env("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
        count(metric::COLD_STARTS, &[("function_name", &function)], 1);
    }
    cold
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
