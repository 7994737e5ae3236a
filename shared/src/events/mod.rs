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
pub mod dead_letter;
pub mod event;
pub mod publisher;
pub mod record;

pub use publisher::{BatchResponse, Publisher, publish};
pub use record::StreamEvent;

use aws_config::SdkConfig;

use crate::config::{ConfigError, var};

/// The publisher of this execution environment, on its SDK configuration
/// ([`crate::config::sdk`]), to the bus and queue the template names: `EVENT_BUS_NAME` and
/// `DEAD_LETTER_QUEUE_URL`.
pub fn publisher(sdk: &SdkConfig) -> Result<Publisher, ConfigError> {
    describe_metrics();
    Ok(Publisher::new(
        sdk,
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
