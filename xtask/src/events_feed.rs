//! The local run's events: the users table's stream fed to publish-events under
//! `cargo lambda watch` in batches shaped as the event source mapping's (a simple stand-in: no
//! bisection or retry limit), and what reaches the bus (moto's) printed in the terminal.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::Result;
use crate::moto::{self, Provisioned};
use crate::stream_feed::StreamFeed;

/// How often the stream is read.
const POLL: Duration = Duration::from_millis(500);

/// Feeds the stream of `table` (on `dynamodb`) to the function `publish-events` that
/// `cargo lambda watch` serves on `invoke_port`, and prints what reaches the bus at `events`.
/// Runs until dropped; a failure is printed and tried again on the next poll.
pub async fn run(
    dynamodb: String,
    table: String,
    invoke_port: u16,
    events: String,
    bus: Provisioned,
) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url =
        format!("http://127.0.0.1:{invoke_port}/2015-03-31/functions/publish-events/invocations");
    let mut feed: Option<StreamFeed> = None;
    loop {
        tokio::time::sleep(POLL).await;
        if feed.is_none() {
            match StreamFeed::open(&dynamodb, &table).await {
                Ok(opened) => feed = Some(opened),
                Err(error) => {
                    eprintln!("events: cannot read the stream of {table}: {error}");
                    continue;
                }
            }
        }
        let Some(stream) = feed.as_mut() else {
            continue;
        };
        let fed = stream
            .feed(|event| {
                let client = client.clone();
                let url = url.clone();
                async move { invoke(&client, &url, &event).await }
            })
            .await;
        match fed {
            Ok(deliveries) => {
                for delivery in deliveries {
                    if delivery.response["batchItemFailures"]
                        .as_array()
                        .is_some_and(|failures| !failures.is_empty())
                    {
                        eprintln!(
                            "events: publish-events will retry from {}",
                            delivery.response
                        );
                    }
                }
            }
            Err(error) => eprintln!("events: feeding publish-events failed: {error}"),
        }
        for (queue, what) in [
            (&bus.delivered_queue_url, "event on the bus"),
            (&bus.dead_letter_queue_url, "dead letter"),
        ] {
            match moto::drain(&events, queue, 100, Duration::ZERO).await {
                Ok(bodies) => bodies
                    .iter()
                    .for_each(|body| eprintln!("events: {what}: {body}")),
                Err(error) => eprintln!("events: cannot read the {what} queue: {error}"),
            }
        }
    }
}

async fn invoke(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    event: &Value,
) -> Result<Value> {
    let request = axum::http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(event.to_string())))?;
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!(
            "publish-events answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok(serde_json::from_slice(&body)?)
}
