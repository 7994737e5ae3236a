//! How many DynamoDB calls a request costs, counted on the wire by the proxy in front of the
//! server: a claim that meets an existing record reads it from the refusal, not in a second call.

use std::time::Duration;

use serde_json::Value;
use users_tests::{App, EventBuilder, Function};

fn keyed_create(key: &str) -> Value {
    EventBuilder::create(r#"{"name": "Ada", "email": "ada@example.com"}"#)
        .header("idempotency-key", key)
        .build()
}

#[tokio::test]
async fn a_replay_costs_the_refused_claim_and_the_read_of_the_user() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    let event = keyed_create("round-trips-replay");
    let first = app.invoke_on(&store, Function::CreateUser, &event).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let before = proxy.operations().len();

    let replay = app.invoke_on(&store, Function::CreateUser, &event).await;

    assert_eq!((replay.status, &replay.body), (201, &first.body));
    assert_eq!(proxy.operations()[before..], ["PutItem", "GetItem"]);
}

#[tokio::test]
async fn a_retry_during_the_first_request_costs_one_call() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    let event = keyed_create("round-trips-in-flight");
    app.seed_in_flight(&event, Duration::from_secs(5)).await;

    let retry = app.invoke_on(&store, Function::CreateUser, &event).await;

    assert_eq!(retry.code(), Some("request_in_progress"), "{}", retry.body);
    assert_eq!(proxy.operations(), ["PutItem"]);
}
