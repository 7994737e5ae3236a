//! DynamoDB failing as it does in production, through a fault-injecting proxy: every request
//! gets `503 unavailable` with `retry-after`, nothing is left half-written (checked on the server
//! itself, past the proxy), and the same store serves again as soon as the fault clears.

use std::time::Duration;

use serde_json::Value;
use users::dynamodb::DynamoStore;
use users_tests::{App, EventBuilder, Function, Reply, deadline_in};
use xtask::fault_proxy::Fault;

use crate::failures::{answers, assert_reveals_nothing};

const TRANSACT: Option<&str> = Some("TransactWriteItems");

fn keyed_create(key: &str) -> Value {
    EventBuilder::create(r#"{"name": "Ada", "email": "ada@example.com"}"#)
        .header("idempotency-key", key)
        .build()
}

pub fn assert_unavailable(reply: &Reply) {
    assert_eq!(
        (reply.status, reply.code()),
        (503, Some("unavailable")),
        "{}",
        reply.body
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_reveals_nothing(reply);
}

/// Every function's answer, and a keyed create's, while `fault` answers every request.
async fn assert_every_answer_is_unavailable(app: &App, store: &DynamoStore) {
    let before = app.snapshot().await;
    for reply in answers(app, store).await {
        assert_unavailable(&reply);
    }
    let keyed = app
        .invoke_on(store, Function::CreateUser, &keyed_create("faulty"))
        .await;
    assert_unavailable(&keyed);
    assert_eq!(app.snapshot().await, before, "nothing was written");
}

/// Once the fault clears, the same store creates, replays, reads and lists.
async fn assert_served_again(app: &App, store: &DynamoStore) {
    let created = app
        .invoke_on(store, Function::CreateUser, &keyed_create("faulty"))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let replay = app
        .invoke_on(store, Function::CreateUser, &keyed_create("faulty"))
        .await;
    assert_eq!(replay.body, created.body);
    let id = created.body["id"].as_str().expect("an id");
    let got = app
        .invoke_on(store, Function::GetUser, &EventBuilder::get(id).build())
        .await;
    assert_eq!(got.body, created.body);
    let listed = app
        .invoke_on(store, Function::ListUsers, &EventBuilder::list("").build())
        .await;
    assert_eq!(listed.body["items"], serde_json::json!([created.body]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_dynamodb_is_a_503_with_retry_after() {
    let app = App::new().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("an address");
    let client = xtask::local_client(&format!("http://{closed}"));
    let store = DynamoStore::new(client, app.tables.clone());
    assert_every_answer_is_unavailable(&app, &store).await;
    assert!(app.snapshot().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_a_503_that_writes_nothing() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    for fault in [
        Fault::throttling(),
        Fault::provisioned_throughput_exceeded(),
    ] {
        proxy.inject(None, fault, None);
        assert_every_answer_is_unavailable(&app, &store).await;
        proxy.clear();
    }
    assert!(
        proxy.injected() >= 2 * 4 * 2,
        "the SDK retried throttled requests"
    );
    assert_served_again(&app, &store).await;
}

/// Refreshed container credentials, or a new execution environment, sign the retry anew.
#[tokio::test(flavor = "multi_thread")]
async fn expired_credentials_are_a_503_that_writes_nothing() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    proxy.inject(None, Fault::expired_token(), None);
    assert_every_answer_is_unavailable(&app, &store).await;
    proxy.clear();
    assert_served_again(&app, &store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_server_errors_are_503s_that_write_nothing() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    for fault in [Fault::internal_server_error(), Fault::service_unavailable()] {
        proxy.inject(None, fault, None);
        assert_every_answer_is_unavailable(&app, &store).await;
        proxy.clear();
    }
    assert_served_again(&app, &store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_that_fails_leaves_its_key_free() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    proxy.inject(TRANSACT, Fault::throttling(), None);
    let reply = app
        .invoke_on(&store, Function::CreateUser, &keyed_create("faulty"))
        .await;
    assert_unavailable(&reply);
    assert!(
        app.snapshot().await.is_empty(),
        "the key's record is written with the user or not at all"
    );
    proxy.clear();
    assert_served_again(&app, &store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_cancelled_by_its_reasons() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    let create = |key: Option<&str>| {
        let event = match key {
            Some(key) => keyed_create(key),
            None => EventBuilder::create(r#"{"name": "Ada", "email": "ada@example.com"}"#).build(),
        };
        let (app, store) = (&app, &store);
        async move { app.invoke_on(store, Function::CreateUser, &event).await }
    };

    // A request DynamoDB finds invalid is a bug of ours, which a retry does not mend.
    proxy.inject(
        TRANSACT,
        Fault::transaction_cancelled(&["ValidationError", "None"]),
        Some(1),
    );
    let reply = create(None).await;
    assert_eq!((reply.status, reply.code()), (500, Some("internal")));
    assert_reveals_nothing(&reply);
    assert!(
        app.snapshot().await.is_empty(),
        "a validation error wrote something"
    );

    for reasons in [
        &["ThrottlingError", "None"][..],
        &["None", "ProvisionedThroughputExceeded"],
        &["None", "None", "ThrottlingError"],
    ] {
        proxy.inject(TRANSACT, Fault::transaction_cancelled(reasons), Some(1));
        let key = (reasons.len() == 3).then_some("cancelled");
        assert_unavailable(&create(key).await);
        assert!(
            app.snapshot().await.is_empty(),
            "{reasons:?} wrote something"
        );
    }

    proxy.inject(
        TRANSACT,
        Fault::transaction_cancelled(&["None", "ConditionalCheckFailed"]),
        Some(1),
    );
    let taken = create(None).await;
    assert_eq!((taken.status, taken.code()), (409, Some("email_taken")));

    proxy.inject(
        TRANSACT,
        Fault::transaction_cancelled(&["TransactionConflict", "None"]),
        None,
    );
    let before = proxy.injected();
    assert_unavailable(&create(None).await);
    assert_eq!(proxy.injected() - before, 3, "a conflict is retried twice");
    assert!(app.snapshot().await.is_empty());
    proxy.clear();

    proxy.inject(
        TRANSACT,
        Fault::transaction_cancelled(&["None", "TransactionConflict", "None"]),
        Some(2),
    );
    assert_served_again(&app, &store).await;
    assert_eq!(proxy.injected() - before, 3 + 2, "the third attempt passed");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_lost_after_the_write_is_retried_into_its_201() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    proxy.inject(TRANSACT, Fault::LoseAnswer, Some(1));
    let event = EventBuilder::create(r#"{"name": "Ada", "email": "ada@example.com"}"#).build();
    let reply = app.invoke_on(&store, Function::CreateUser, &event).await;
    assert_eq!(
        reply.status, 201,
        "the SDK's retry carries the transaction's token: {}",
        reply.body
    );
    assert_eq!(proxy.injected(), 1);
    let items = app.snapshot().await;
    assert_eq!(items.len(), 2, "one user and its email: {items:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dynamodb_that_stops_answering_is_a_503_before_the_deadline() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    let stall = Fault::Stall(Duration::from_secs(8));
    for operation in [None, TRANSACT] {
        proxy.inject(operation, stall.clone(), None);
        let started = std::time::Instant::now();
        let reply = app
            .invoke_on(&store, Function::CreateUser, &keyed_create("stalled"))
            .await;
        assert_unavailable(&reply);
        assert!(
            started.elapsed() < users::handlers::FUNCTION_TIMEOUT,
            "answered within the function timeout"
        );
        assert!(app.snapshot().await.is_empty(), "nothing left behind");
        proxy.clear();
    }
    assert_served_again(&app, &store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_cut_off_at_its_deadline_leaves_nothing_that_outlives_its_answer() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    proxy.inject(TRANSACT, Fault::Stall(Duration::from_secs(8)), None);
    let cut_off = app
        .invoke_with(
            &store,
            Function::CreateUser,
            &keyed_create("cut-off"),
            deadline_in(Duration::from_millis(1500)),
        )
        .await;
    assert_unavailable(&cut_off);
    assert!(
        app.snapshot().await.is_empty(),
        "nothing written, the key's record included"
    );
    proxy.clear();
    // A client that retries at once finds the key free.
    let retry = app
        .invoke_on(&store, Function::CreateUser, &keyed_create("cut-off"))
        .await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(
        app.snapshot().await.len(),
        3,
        "a user, its email and its key"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_that_meets_the_first_request_committing_is_request_in_progress() {
    let app = App::new().await;
    let (proxy, store) = app.behind_fault_proxy().await;
    // DynamoDB cancels the transaction so while the first request with the key, whose
    // transaction writes the same record, is committing; the record is the first item. It
    // checks the items side by side, so the same retry may also find the email the first
    // request has just taken: the record's reason decides.
    for (n, reasons) in [
        ["TransactionConflict", "None", "None"],
        ["TransactionConflict", "None", "ConditionalCheckFailed"],
    ]
    .into_iter()
    .enumerate()
    {
        proxy.inject(TRANSACT, Fault::transaction_cancelled(&reasons), Some(1));
        let event = keyed_create(&format!("committing-{n}"));
        let reply = app.invoke_on(&store, Function::CreateUser, &event).await;
        assert_eq!(
            (reply.status, reply.code()),
            (409, Some("request_in_progress")),
            "{reasons:?}: {}",
            reply.body
        );
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert!(app.snapshot().await.is_empty(), "nothing written");
    }
    let retried = app
        .invoke_on(&store, Function::CreateUser, &keyed_create("committing-0"))
        .await;
    assert_eq!(retried.status, 201, "{}", retried.body);
}
