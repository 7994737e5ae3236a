//! Metrics as CloudWatch Embedded Metric Format documents on stdout, written at the end of each
//! request with that request's metrics alone.
//!
//! One execution environment may serve several requests at once (Lambda Managed Instances), so
//! a request's metrics are not recorded as they happen, where another request's flush would
//! write them under its own `requestId`: [`count`] and [`milliseconds`] keep them with the
//! request ([`per_request`]), which records and writes them in one step when it ends.

use std::cell::RefCell;
use std::sync::{Mutex, OnceLock, PoisonError};

use metrics::{Label, Unit};
use metrics_cloudwatch_embedded::Collector;

/// The `level` of metric documents: the least detailed of Lambda's application log levels,
/// which every setting of `ApplicationLogLevel` keeps. It marks a document Lambda must keep, not
/// a failure; queries for failures read `level = "ERROR"`.
pub const METRICS_LEVEL: &str = "FATAL";

/// The name under which log lines and metric documents carry the Lambda request id.
const REQUEST_ID: &str = "requestId";

const DEFAULT_NAMESPACE: &str = "UsersService";
const DEFAULT_SERVICE: &str = "users";

/// The metrics, by name.
pub mod metric {
    pub const USERS_CREATED: &str = "UsersCreated";
    pub const IDEMPOTENT_REPLAYS: &str = "IdempotentReplays";
    pub const USERS_UPDATED: &str = "UsersUpdated";
    pub const USERS_DELETED: &str = "UsersDeleted";
    /// With the dimension `code`, the contract's error code.
    pub const ERRORS: &str = "Errors";
    /// With the dimension `function_name`.
    pub const COLD_STARTS: &str = "ColdStart";
    /// Milliseconds per DynamoDB call, with the dimension `operation`.
    pub const DYNAMODB_LATENCY: &str = "DynamoDbLatency";
}
static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// Held while one request's metrics are recorded and written, so that no other request's land
/// in its documents, whatever the runtime's threads. (What is recorded outside any request goes
/// to the collector at once, and into whichever documents are written next.)
static FLUSH: Mutex<()> = Mutex::new(());

tokio::task_local! {
    /// The metrics of the request this task serves, not yet recorded.
    static PENDING: RefCell<Vec<Sample>>;
}

#[derive(Debug)]
struct Sample {
    name: &'static str,
    labels: Vec<Label>,
    value: Value,
}

#[derive(Debug)]
enum Value {
    Count(u64),
    Milliseconds(f64),
}

/// Adds `value` to the counter `name` with `labels`, for the request in progress.
pub fn count(name: &'static str, labels: &[(&'static str, &str)], value: u64) {
    keep(name, labels, Value::Count(value));
}

/// Records a duration in the histogram `name` with `labels`, for the request in progress.
pub fn milliseconds(name: &'static str, labels: &[(&'static str, &str)], value: f64) {
    keep(name, labels, Value::Milliseconds(value));
}

fn keep(name: &'static str, labels: &[(&'static str, &str)], value: Value) {
    let sample = Sample {
        name,
        labels: labels
            .iter()
            .map(|(key, value)| Label::new(*key, (*value).to_owned()))
            .collect(),
        value,
    };
    if PENDING.try_with(|_| ()).is_ok() {
        PENDING.with(|pending| pending.borrow_mut().push(sample));
    } else {
        record(sample);
    }
}

/// Runs `request`, keeping the metrics it records; when it ends, records them and writes them,
/// and them alone, in documents that carry `request_id`.
pub async fn per_request<T>(request_id: &str, request: impl Future<Output = T>) -> T {
    let (output, samples) = PENDING
        .scope(RefCell::new(Vec::new()), async {
            let output = request.await;
            (output, PENDING.with(RefCell::take))
        })
        .await;
    let _one_at_a_time = FLUSH.lock().unwrap_or_else(PoisonError::into_inner);
    for sample in samples {
        record(sample);
    }
    write(Some(request_id));
    output
}

fn record(sample: Sample) {
    match sample.value {
        Value::Count(value) => metrics::counter!(sample.name, sample.labels).increment(value),
        Value::Milliseconds(value) => {
            metrics::histogram!(sample.name, sample.labels).record(value);
        }
    }
}

pub(super) fn init() {
    let namespace =
        super::env("POWERTOOLS_METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    let service = super::env("POWERTOOLS_SERVICE_NAME").unwrap_or_else(|| DEFAULT_SERVICE.into());
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        .with_dimension("service", service)
        .init();
    match collector {
        Ok(collector) => {
            let _ = COLLECTOR.set(collector);
        }
        Err(error) => tracing::error!(%error, "metrics are off"),
    }
    metrics::describe_counter!(metric::USERS_CREATED, Unit::Count, "users created");
    metrics::describe_counter!(
        metric::IDEMPOTENT_REPLAYS,
        Unit::Count,
        "creates answered from an idempotency key"
    );
    metrics::describe_counter!(
        metric::USERS_UPDATED,
        Unit::Count,
        "users changed (a patch that changes nothing is not counted)"
    );
    metrics::describe_counter!(metric::USERS_DELETED, Unit::Count, "users erased");
    metrics::describe_counter!(metric::ERRORS, Unit::Count, "error answers, by code");
    metrics::describe_counter!(
        metric::COLD_STARTS,
        Unit::Count,
        "first invocations of an execution environment"
    );
    metrics::describe_histogram!(
        metric::DYNAMODB_LATENCY,
        Unit::Milliseconds,
        "DynamoDB call latency"
    );
}

/// Writes the metrics recorded since the last write as EMF documents on stdout, each carrying
/// `request_id` as the property `requestId` (not a dimension: it would make a metric per request),
/// as every log line of the request does, and the `level` and `timestamp` that keep it through
/// Lambda's log level filter.
fn write(request_id: Option<&str>) {
    let Some(collector) = COLLECTOR.get() else {
        return;
    };
    match request_id {
        Some(id) => collector.set_property(REQUEST_ID, id.to_owned()),
        None => collector.remove_property(REQUEST_ID),
    };
    collector.set_property("level", METRICS_LEVEL);
    collector.set_property("timestamp", rfc3339_now());
    if let Err(error) = collector.flush(std::io::stdout().lock()) {
        tracing::warn!(%error, "could not write metrics");
    }
}

/// Now, as Lambda reads a line's `timestamp`: RFC 3339, UTC, to the millisecond.
fn rfc3339_now() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(format)
        .unwrap_or_default()
}
