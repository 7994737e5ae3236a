//! Domain events (API.md, "Events"): every change to a user, read from the users table's
//! stream, published to the stack's EventBridge bus.
//!
//! - [`record`]: a stream record, read on its own into the change it stands for.
//! - [`event`]: the contract's event for a change, and its stable `event_id`.
//! - [`batch`]: `PutEvents` calls within EventBridge's limits, one change per user each.
//! - [`bus`]: sending a call, retrying the entries EventBridge rejects.
//! - [`dead_letter`]: what the dead-letter queue keeps of what cannot be published.
//! - [`publisher`]: one invocation, and what it reports back to Lambda.

pub mod batch;
pub mod bus;
pub mod clients;
pub mod dead_letter;
pub mod event;
pub mod publisher;
pub mod record;

pub use publisher::{BatchResponse, Publisher, publish};
pub use record::StreamEvent;

use aws_sdk_dynamodb::config::Credentials;

use crate::config::{ConfigError, optional, var};

/// The publisher of this execution environment, from the variables Lambda and the template
/// set: `EVENT_BUS_NAME`, `DEAD_LETTER_QUEUE_URL`, the region and the execution role's
/// credentials, and, locally, `AWS_ENDPOINT_URL_EVENTBRIDGE` and `AWS_ENDPOINT_URL_SQS`.
pub fn publisher() -> Result<Publisher, ConfigError> {
    describe_metrics();
    let settings = clients::Settings {
        region: var("AWS_REGION")?,
        credentials: Credentials::new(
            var("AWS_ACCESS_KEY_ID")?,
            var("AWS_SECRET_ACCESS_KEY")?,
            optional("AWS_SESSION_TOKEN")?,
            None,
            "environment",
        ),
        eventbridge_endpoint: optional("AWS_ENDPOINT_URL_EVENTBRIDGE")?,
        sqs_endpoint: optional("AWS_ENDPOINT_URL_SQS")?,
    };
    Ok(from_settings(
        &settings,
        var("EVENT_BUS_NAME")?,
        var("DEAD_LETTER_QUEUE_URL")?,
    ))
}

fn describe_metrics() {
    use metrics::Unit;
    metrics::describe_counter!(
        publisher::metric::PUBLISHED,
        Unit::Count,
        "events EventBridge accepted"
    );
    metrics::describe_counter!(
        publisher::metric::DEAD_LETTERED,
        Unit::Count,
        "stream records sent to the dead-letter queue"
    );
    metrics::describe_counter!(
        publisher::metric::RETRIED,
        Unit::Count,
        "batches that reported a record back for Lambda to retry"
    );
}

/// The publisher to the bus `bus_name` (a name or an ARN), dead-lettering to `queue_url`.
pub fn from_settings(
    settings: &clients::Settings,
    bus_name: String,
    queue_url: String,
) -> Publisher {
    Publisher {
        bus: bus::Bus::new(clients::eventbridge(settings), bus_name),
        dead_letters: dead_letter::DeadLetters::new(clients::sqs(settings), queue_url),
    }
}
