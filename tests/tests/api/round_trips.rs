//! How many DynamoDB calls a request costs, counted on the wire by the proxy in front of the
//! server: a first create is one transaction, key or no key, and a create that meets its key's
//! record reads that record from the cancellation, not in a call of its own.

use std::time::Duration;

use serde_json::Value;
use users_tests::{App, EventBuilder, Function};

fn keyed_create(key: &str) -> Value {
    EventBuilder::create(r#"{"name": "Ada", "email": "ada@example.com"}"#)
        .header("idempotency-key", key)
        .build()
}

#[tokio::test]
async fn a_first_create_is_one_transaction_with_or_without_a_key() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    let keyed = app
        .invoke_on(&store, Function::CreateUser, &keyed_create("one-call"))
        .await;
    assert_eq!(keyed.status, 201, "{}", keyed.body);
    assert_eq!(proxy.operations(), ["TransactWriteItems"]);
    let plain = EventBuilder::create(r#"{"name": "Bo", "email": "bo@example.com"}"#).build();
    let plain = app.invoke_on(&store, Function::CreateUser, &plain).await;
    assert_eq!(plain.status, 201, "{}", plain.body);
    assert_eq!(proxy.operations(), ["TransactWriteItems"; 2]);
}

#[tokio::test]
async fn a_replay_costs_the_refused_transaction_and_the_read_of_the_user() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    let event = keyed_create("round-trips-replay");
    let first = app.invoke_on(&store, Function::CreateUser, &event).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let before = proxy.operations().len();

    let replay = app.invoke_on(&store, Function::CreateUser, &event).await;

    assert_eq!((replay.status, &replay.body), (201, &first.body));
    assert_eq!(
        proxy.operations()[before..],
        ["TransactWriteItems", "GetItem"]
    );
}

#[tokio::test]
async fn a_retry_while_the_first_request_runs_costs_one_call() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    let event = keyed_create("round-trips-in-flight");
    app.seed_in_flight(&event, Duration::from_secs(5)).await;

    let retry = app.invoke_on(&store, Function::CreateUser, &event).await;

    assert_eq!(retry.code(), Some("request_in_progress"), "{}", retry.body);
    assert_eq!(proxy.operations(), ["TransactWriteItems"]);
}

/// What each read and change costs, and what a rename's refusal answers from the item it
/// returned: every answer below is one call but the email change's, the delete's and the
/// rename of an unknown id (whose refusal returns no item, so it reads to be sure).
#[tokio::test]
async fn reads_and_renames_are_one_call_an_email_change_and_a_delete_two() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    let made = EventBuilder::create(r#"{"name": "Ada", "email": "ada@example.com"}"#).build();
    let made = app.invoke_on(&store, Function::CreateUser, &made).await;
    let id = made.body["id"].as_str().expect("an id").to_owned();
    let etag = made.header("etag").expect("an etag").to_owned();
    let missing = "01JD3F5Q8K2X7V9M4T6B1N0C8Z";
    let rename =
        |id: &str, name: &str| EventBuilder::patch(id, &format!(r#"{{"name": "{name}"}}"#));
    let cases = [
        (
            Function::GetUser,
            EventBuilder::get(&id),
            200,
            &["GetItem"][..],
        ),
        (Function::ListUsers, EventBuilder::list(""), 200, &["Query"]),
        (
            Function::UpdateUser,
            rename(&id, "Ada King").header("if-match", &etag),
            200,
            &["UpdateItem"],
        ),
        // The same name again: unchanged, from the refusal's item.
        (
            Function::UpdateUser,
            rename(&id, "Ada King"),
            200,
            &["UpdateItem"],
        ),
        (
            Function::UpdateUser,
            rename(&id, "Ada Byron").header("if-match", &etag),
            412,
            &["UpdateItem"],
        ),
        (
            Function::UpdateUser,
            rename(missing, "Ada"),
            404,
            &["UpdateItem", "GetItem"],
        ),
        (
            Function::UpdateUser,
            EventBuilder::patch(&id, r#"{"email": "ada.king@example.com"}"#),
            200,
            &["GetItem", "TransactWriteItems"],
        ),
        (
            Function::DeleteUser,
            EventBuilder::delete(&id),
            204,
            &["GetItem", "TransactWriteItems"],
        ),
    ];
    for (function, event, status, calls) in cases {
        let before = proxy.operations().len();
        let reply = app.invoke_on(&store, function, &event.build()).await;
        assert_eq!(reply.status, status, "{function:?}: {reply:?}");
        assert_eq!(
            proxy.operations()[before..],
            *calls,
            "{function:?}: {reply:?}"
        );
    }
}
