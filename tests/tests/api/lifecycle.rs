//! A user's life after its create: changes with and without `if-match`, email moves, and an
//! erasure that leaves nothing behind.

use std::time::Duration;

use serde_json::Value;
use users_tests::{App, EventBuilder, Function, Reply};

use crate::replay::contract_violations;

async fn send(app: &App, function: Function, event: EventBuilder) -> Reply {
    let reply = app.invoke(function, &event.build()).await;
    let problems = contract_violations(&reply);
    assert!(problems.is_empty(), "{problems:?} in {reply:?}");
    reply
}

async fn create(app: &App, name: &str, email: &str) -> Reply {
    let body = serde_json::json!({ "name": name, "email": email }).to_string();
    send(app, Function::CreateUser, EventBuilder::create(&body)).await
}

fn id(reply: &Reply) -> String {
    reply.body["id"].as_str().expect("a user id").to_owned()
}

fn etag(reply: &Reply) -> String {
    reply.header("etag").expect("an etag").to_owned()
}

/// Every `EMAIL#` item names a stored user whose email it is, and every user has exactly one.
async fn assert_one_email_item_per_user(app: &App) {
    let items = app.snapshot().await;
    let users: Vec<&String> = items
        .iter()
        .filter(|i| i.contains("pk=S(\"USER#"))
        .collect();
    let emails: Vec<&String> = items
        .iter()
        .filter(|i| i.contains("pk=S(\"EMAIL#"))
        .collect();
    assert_eq!(users.len(), emails.len(), "{items:#?}");
    for user in users {
        let field = |name: &str| {
            let start = user.find(&format!(", {name}=S(\"")).expect("the field") + name.len() + 6;
            user[start..].split('"').next().expect("a value").to_owned()
        };
        let expected = format!(
            "pk=S(\"EMAIL#{}\"), user_id=S(\"{}\")",
            field("email").to_ascii_lowercase(),
            field("id")
        );
        assert!(
            emails.iter().any(|e| e.ends_with(&expected)),
            "no {expected} in {items:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_changes_only_what_it_names_and_moves_the_etag() {
    let app = App::new().await;
    let created = create(&app, "Ada Lovelace", "ada@example.com").await;
    let id = id(&created);
    let got = send(&app, Function::GetUser, EventBuilder::get(&id)).await;
    assert_eq!(etag(&got), etag(&created));

    let renamed = send(
        &app,
        Function::UpdateUser,
        EventBuilder::patch(&id, r#"{"name": "Augusta Ada King"}"#).header("if-match", &etag(&got)),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Augusta Ada King");
    assert_eq!(renamed.body["email"], "ada@example.com");
    assert_eq!(renamed.body["created_at"], created.body["created_at"]);
    assert!(renamed.body["updated_at"].as_str() >= created.body["updated_at"].as_str());
    assert_ne!(etag(&renamed), etag(&created));
    let got = send(&app, Function::GetUser, EventBuilder::get(&id)).await;
    assert_eq!(
        (got.body.clone(), etag(&got)),
        (renamed.body.clone(), etag(&renamed))
    );

    // The same etag again: it no longer names a current version.
    let stale = send(
        &app,
        Function::UpdateUser,
        EventBuilder::patch(&id, r#"{"name": "Ada"}"#).header("if-match", &etag(&created)),
    )
    .await;
    assert_eq!(
        (stale.status, stale.code()),
        (412, Some("precondition_failed"))
    );

    // Nothing to change: the same user, etag and updated_at.
    let unchanged = send(
        &app,
        Function::UpdateUser,
        EventBuilder::patch(&id, r#"{"name": "Augusta Ada King"}"#),
    )
    .await;
    assert_eq!(unchanged.status, 200);
    assert_eq!(
        (&unchanged.body, etag(&unchanged)),
        (&renamed.body, etag(&renamed))
    );

    // A change of the email's case alone is a change, and keeps one reservation.
    let recased = send(
        &app,
        Function::UpdateUser,
        EventBuilder::patch(&id, r#"{"email": "Ada@Example.com"}"#)
            .header("content-type", "application/merge-patch+json"),
    )
    .await;
    assert_eq!(recased.status, 200, "{}", recased.body);
    assert_eq!(recased.body["email"], "Ada@Example.com");
    assert_ne!(etag(&recased), etag(&renamed));
    assert_one_email_item_per_user(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_change_frees_the_old_email_and_is_refused_a_taken_one() {
    let app = App::new().await;
    let ada = id(&create(&app, "Ada", "ada@example.com").await);
    let grace = id(&create(&app, "Grace", "grace@example.com").await);

    let taken = send(
        &app,
        Function::UpdateUser,
        EventBuilder::patch(&ada, r#"{"name": "Ada L", "email": "GRACE@example.com"}"#),
    )
    .await;
    assert_eq!((taken.status, taken.code()), (409, Some("email_taken")));
    let unchanged = send(&app, Function::GetUser, EventBuilder::get(&ada)).await;
    assert_eq!(
        unchanged.body["name"], "Ada",
        "a refused patch changes nothing"
    );

    let moved = send(
        &app,
        Function::UpdateUser,
        EventBuilder::patch(&ada, r#"{"email": "ada@example.org"}"#),
    )
    .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_one_email_item_per_user(&app).await;

    let reused = create(&app, "Another Ada", "ADA@example.com").await;
    assert_eq!(reused.status, 201, "the old email is free: {}", reused.body);
    let again = create(&app, "A third Ada", "ada@example.org").await;
    assert_eq!(again.code(), Some("email_taken"), "the new email is held");
    assert_ne!(grace, ada);
    assert_one_email_item_per_user(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_erases_everything_and_frees_the_email_and_the_key() {
    let app = App::new().await;
    let body = r#"{"name": "Ada", "email": "ada@example.com"}"#;
    let keyed = || EventBuilder::create(body).header("idempotency-key", "erase-me");
    let created = send(&app, Function::CreateUser, keyed()).await;
    let first = id(&created);
    let moved = send(
        &app,
        Function::UpdateUser,
        EventBuilder::patch(&first, r#"{"email": "ada@example.org"}"#),
    )
    .await;
    assert_eq!(moved.status, 200);

    let stale = send(
        &app,
        Function::DeleteUser,
        EventBuilder::delete(&first).header("if-match", &etag(&created)),
    )
    .await;
    assert_eq!(
        (stale.status, stale.code()),
        (412, Some("precondition_failed"))
    );
    let deleted = send(
        &app,
        Function::DeleteUser,
        EventBuilder::delete(&first).header("if-match", &etag(&moved)),
    )
    .await;
    assert_eq!(deleted.status, 204);
    let tables = app.snapshot().await;
    for trace in [
        first.as_str(),
        "ada@example.com",
        "ada@example.org",
        "erase-me",
    ] {
        assert!(
            !tables.iter().any(|item| item.contains(trace)),
            "{trace} outlived the delete: {tables:#?}"
        );
    }
    let gone = send(&app, Function::GetUser, EventBuilder::get(&first)).await;
    assert_eq!(gone.status, 404);
    let twice = send(&app, Function::DeleteUser, EventBuilder::delete(&first)).await;
    assert_eq!(twice.status, 404);
    let listed = send(&app, Function::ListUsers, EventBuilder::list("")).await;
    assert_eq!(listed.body["items"], Value::Array(Vec::new()));

    // The create retried with its old key is a new request: a new user with a new id.
    let retried = send(&app, Function::CreateUser, keyed()).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_ne!(id(&retried), first);
    let replayed = send(&app, Function::CreateUser, keyed()).await;
    assert_eq!(replayed.body, retried.body, "and its key now replays it");
    let recreated = create(&app, "Ada again", "ada@example.org").await;
    assert_eq!(recreated.status, 201, "the changed-to email is free too");
    assert_one_email_item_per_user(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_removed_outside_the_api_frees_its_create_key() {
    let app = App::new().await;
    let keyed = |body: &str| EventBuilder::create(body).header("idempotency-key", "orphaned");
    let created = send(
        &app,
        Function::CreateUser,
        keyed(r#"{"name": "Ada", "email": "ada@example.com"}"#),
    )
    .await;
    app.erase_outside_the_api(&id(&created), "ada@example.com")
        .await;
    // Its body is not compared with the old one: the key is free.
    let retried = send(
        &app,
        Function::CreateUser,
        keyed(r#"{"name": "Grace", "email": "grace@example.com"}"#),
    )
    .await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_ne!(id(&retried), id(&created));
    assert_eq!(retried.body["name"], "Grace");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_leaves_a_key_that_has_since_passed_to_another_create() {
    let app = App::new().await;
    let keyed = |body: &str| EventBuilder::create(body).header("idempotency-key", "recycled");
    let old = send(
        &app,
        Function::CreateUser,
        keyed(r#"{"name": "Ada", "email": "ada@example.com"}"#),
    )
    .await;
    app.clock.advance(Duration::from_secs(25 * 60 * 60));
    let body = r#"{"name": "Grace", "email": "grace@example.com"}"#;
    let new = send(&app, Function::CreateUser, keyed(body)).await;
    assert_eq!(new.status, 201, "the key's 24 hours are over: {}", new.body);

    let deleted = send(&app, Function::DeleteUser, EventBuilder::delete(&id(&old))).await;
    assert_eq!(deleted.status, 204);
    let replayed = send(&app, Function::CreateUser, keyed(body)).await;
    assert_eq!(
        replayed.body, new.body,
        "the newer create keeps its idempotency record"
    );
}
