//! The events' harness: moto's EventBridge and SQS (one server per test binary, started here
//! unless `AWS_ENDPOINT_URL_EVENTBRIDGE` names one), a bus, a delivery queue and a dead-letter
//! queue of their own per test, and publish-events' handler called with stream events as
//! Lambda's event source mapping calls it.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use lambda_http::LambdaEvent;
use serde_json::Value;
use users::events::{Publisher, StreamEvent};
use xtask::fault_proxy::FaultProxy;
use xtask::moto::{self, Moto, Provisioned};
use xtask::stream_feed::{Delivery, StreamFeed};

use crate::{App, deadline_in, invocation};

/// The function timeout of publish-events in template.yaml.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a test waits for messages that should be there; a wait that ends with all of them
/// ends early.
const PATIENCE: Duration = Duration::from_secs(5);

static MOTO: LazyLock<(Option<Moto>, String)> = LazyLock::new(|| {
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE") {
        return (None, endpoint);
    }
    let moto = Moto::start().expect("moto starts");
    let endpoint = moto.endpoint.clone();
    (Some(moto), endpoint)
});

/// A bus and its queues on moto.
pub struct Events {
    pub endpoint: String,
    pub provisioned: Provisioned,
}

impl Events {
    pub async fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let endpoint = tokio::task::spawn_blocking(|| MOTO.1.clone())
            .await
            .expect("moto's endpoint");
        let name = format!(
            "users-{}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or_default(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let provisioned = moto::provision(&endpoint, &name)
            .await
            .expect("the bus and queues are made");
        Self {
            endpoint,
            provisioned,
        }
    }

    /// The publisher to this bus and dead-letter queue, at `endpoint` (moto's, or a proxy's).
    pub fn publisher_at(&self, endpoint: &str) -> Publisher {
        Publisher::new(
            &xtask::local_sdk(endpoint),
            self.provisioned.bus_name.clone(),
            self.provisioned.dead_letter_queue_url.clone(),
        )
    }

    pub fn publisher(&self) -> Publisher {
        self.publisher_at(&self.endpoint)
    }

    /// The publisher through a proxy that injects faults on demand and keeps what was sent.
    pub async fn behind_fault_proxy(&self) -> (FaultProxy, Publisher) {
        let proxy = FaultProxy::start(&self.endpoint)
            .await
            .expect("the fault proxy starts");
        let publisher = self.publisher_at(&proxy.endpoint);
        (proxy, publisher)
    }

    /// The variables publish-events runs with against this bus, from `endpoint`.
    pub fn function_env(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("EVENT_BUS_NAME", self.provisioned.bus_name.clone()),
            (
                "DEAD_LETTER_QUEUE_URL",
                self.provisioned.dead_letter_queue_url.clone(),
            ),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", endpoint.to_owned()),
            ("AWS_ENDPOINT_URL_SQS", endpoint.to_owned()),
        ]
    }

    /// The events delivered to the bus so far (each as EventBridge's envelope), waiting for
    /// `wanted` of them at most [`PATIENCE`].
    pub async fn delivered(&self, wanted: usize) -> Vec<Value> {
        self.take(&self.provisioned.delivered_queue_url, wanted)
            .await
    }

    /// What the dead-letter queue received so far, waiting as [`Events::delivered`] does.
    pub async fn dead_letters(&self, wanted: usize) -> Vec<Value> {
        self.take(&self.provisioned.dead_letter_queue_url, wanted)
            .await
    }

    async fn take(&self, queue_url: &str, wanted: usize) -> Vec<Value> {
        let patience = if wanted == 0 {
            Duration::from_millis(300)
        } else {
            PATIENCE
        };
        moto::drain(&self.endpoint, queue_url, wanted.max(1), patience)
            .await
            .expect("the queue is read")
            .iter()
            .map(|body| serde_json::from_str(body).expect("a JSON message"))
            .collect()
    }
}

/// Calls publish-events' handler with a stream event, as Lambda does, and returns its answer.
pub async fn invoke(publisher: &Publisher, event: &Value) -> Result<Value, String> {
    invoke_within(publisher, event, PUBLISH_TIMEOUT).await
}

/// As [`invoke`], with `time_left` until the invocation's deadline.
pub async fn invoke_within(
    publisher: &Publisher,
    event: &Value,
    time_left: Duration,
) -> Result<Value, String> {
    let payload: StreamEvent =
        serde_json::from_value(event.clone()).expect("a DynamoDB stream event");
    let context = invocation(deadline_in(time_left));
    users::events::publish(publisher, LambdaEvent::new(payload, context))
        .await
        .map(|response| serde_json::to_value(response).expect("the answer serialises"))
        .map_err(|e| e.to_string())
}

/// `records` as if each change had been made `age` ago: their `ApproximateCreationDateTime`
/// set to that time, as the stream gives it (seconds since the epoch).
pub fn changed_ago(records: &[Value], age: Duration) -> Vec<Value> {
    let at = SystemTime::now()
        .checked_sub(age)
        .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
        .expect("a time after the epoch")
        .as_secs();
    records
        .iter()
        .map(|record| {
            let mut record = record.clone();
            record["dynamodb"]["ApproximateCreationDateTime"] = at.into();
            record
        })
        .collect()
}

/// The users table's stream of `app`, fed to `publisher` as the event source mapping would.
pub async fn feed(feed: &mut StreamFeed, publisher: &Publisher) -> Vec<Delivery> {
    feed.feed(|event| async move { invoke(publisher, &event).await.map_err(Into::into) })
        .await
        .expect("the stream is read and fed")
}

/// The stream of `app`'s users table, from its oldest record.
pub async fn open_stream(app: &App) -> StreamFeed {
    StreamFeed::open(app.endpoint(), &app.tables.users)
        .await
        .expect("the users table has a stream")
}
