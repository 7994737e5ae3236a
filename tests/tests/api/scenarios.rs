use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use users::domain::{Email, NewUser, User, UserId, UserName};
use users_tests::{App, EventBuilder, Function, Reply};

use crate::replay::contract_violations;

fn body(name: &str, email: &str) -> String {
    serde_json::json!({ "name": name, "email": email }).to_string()
}

async fn create(app: &App, name: &str, email: &str) -> Reply {
    app.invoke(
        Function::CreateUser,
        &EventBuilder::create(&body(name, email)).build(),
    )
    .await
}

fn assert_contract(reply: &Reply) {
    let problems = contract_violations(reply);
    assert!(problems.is_empty(), "{problems:?} in {reply:?}");
}

pub async fn all_pages(app: &App, limit: usize) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut query = format!("limit={limit}");
    loop {
        let reply = app
            .invoke(Function::ListUsers, &EventBuilder::list(&query).build())
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_contract(&reply);
        pages.push(reply.body["items"].as_array().cloned().unwrap_or_default());
        match reply.body["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit={limit}&cursor={cursor}"),
            None => {
                assert!(reply.body["next_cursor"].is_null());
                return pages;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_then_get_then_list_across_pages() {
    let app = App::new().await;
    let mut created = Vec::new();
    for i in 0..7 {
        let reply = create(&app, &format!("User {i}"), &format!("user{i}@example.com")).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert_contract(&reply);
        assert_eq!(reply.body["name"], format!("User {i}"));
        created.push(reply.body);
    }
    for user in &created {
        let id = user["id"].as_str().expect("an id");
        assert_eq!(id.len(), 26);
        let reply = app
            .invoke(Function::GetUser, &EventBuilder::get(id).build())
            .await;
        assert_eq!(reply.status, 200);
        assert_contract(&reply);
        assert_eq!(
            &reply.body, user,
            "a read right after the 201 sees the user"
        );
    }

    let pages = all_pages(&app, 3).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1], "full pages, the last one short");
    let listed: Vec<Value> = pages.into_iter().flatten().collect();
    let mut newest_first = created.clone();
    newest_first.sort_by(|a, b| b["id"].as_str().cmp(&a["id"].as_str()));
    assert_eq!(listed, newest_first, "every user once, newest first");

    let exact = all_pages(&app, 7).await;
    assert_eq!(
        exact.iter().map(Vec::len).collect::<Vec<_>>(),
        [7],
        "no empty page after an exact fit"
    );
    let default = app
        .invoke(Function::ListUsers, &EventBuilder::list("").build())
        .await;
    assert_eq!(default.body["items"].as_array().map(Vec::len), Some(7));
}

#[tokio::test(flavor = "multi_thread")]
async fn users_created_while_paging_do_not_disturb_the_listing() {
    let app = App::new().await;
    let mut ids = HashSet::new();
    for i in 0..6 {
        let reply = create(&app, "Before", &format!("before{i}@example.com")).await;
        ids.insert(reply.body["id"].as_str().expect("an id").to_owned());
    }
    let first = app
        .invoke(Function::ListUsers, &EventBuilder::list("limit=2").build())
        .await;
    for i in 0..5 {
        assert_eq!(
            create(&app, "During", &format!("during{i}@example.com"))
                .await
                .status,
            201
        );
    }
    let mut seen: Vec<String> = Vec::new();
    let mut reply = first;
    loop {
        let items = reply.body["items"].as_array().cloned().unwrap_or_default();
        seen.extend(
            items
                .iter()
                .filter_map(|u| u["id"].as_str().map(str::to_owned)),
        );
        let Some(cursor) = reply.body["next_cursor"].as_str() else {
            break;
        };
        let query = format!("limit=2&cursor={cursor}");
        reply = app
            .invoke(Function::ListUsers, &EventBuilder::list(&query).build())
            .await;
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no user repeats");
    assert_eq!(unique, ids, "every user that existed at the start appears");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_email_in_another_case_is_taken() {
    let app = App::new().await;
    assert_eq!(
        create(&app, "Ada Lovelace", "Ada@Example.com").await.status,
        201
    );
    let reply = create(&app, "Impostor", "ADA@EXAMPLE.COM").await;
    assert_eq!((reply.status, reply.code()), (409, Some("email_taken")));
    assert_contract(&reply);
    let reply = create(&app, "Impostor", " ada@example.com ").await;
    assert_eq!(reply.status, 409);
    assert_eq!(all_pages(&app, 100).await.concat().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_creates_with_one_email_make_one_user() {
    let app = Arc::new(App::new().await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let app = Arc::clone(&app);
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        tasks.spawn(async move { create(&app, &format!("Racer {i}"), email).await });
    }
    let mut statuses = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.expect("the task finishes");
        assert_contract(&reply);
        statuses.push(reply.status);
    }
    statuses.sort_unstable();
    let mut expected = vec![409; 19];
    expected.insert(0, 201);
    assert_eq!(statuses, expected);
    assert_eq!(all_pages(&app, 100).await.concat().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotent_retry_returns_the_original_response() {
    let app = App::new().await;
    let first_body = body("Katherine Johnson", "katherine@example.com");
    let request = EventBuilder::create(&first_body)
        .header("idempotency-key", "key-1")
        .build();
    let first = app.invoke(Function::CreateUser, &request).await;
    assert_eq!(first.status, 201);
    let retry = app.invoke(Function::CreateUser, &request).await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.body, first.body, "the original user, not a new one");
    assert_eq!(retry.header("location"), first.header("location"));
    let before = app.snapshot().await;
    let record = before
        .iter()
        .find(|item| item.contains("state=S(\"completed\")"))
        .expect("the key's record");
    for attribute in [
        "expires_at=N(",
        "fingerprint=S(",
        "in_flight_until=N(",
        "user_id=S(",
    ] {
        assert!(
            record.contains(attribute),
            "the earlier release reads {attribute} of every record: {record}"
        );
    }

    let other_body = body("Katherine Johnson", "katherine2@example.com");
    let reused = EventBuilder::create(&other_body)
        .header("idempotency-key", "key-1")
        .build();
    let reply = app.invoke(Function::CreateUser, &reused).await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, Some("idempotency_key_reused"))
    );
    let respaced = EventBuilder::create(&first_body.replace(':', ": "))
        .header("idempotency-key", "key-1")
        .build();
    assert_eq!(
        app.invoke(Function::CreateUser, &respaced).await.status,
        422,
        "bodies compare byte for byte"
    );
    assert_eq!(app.snapshot().await, before);

    let other_key = EventBuilder::create(&first_body)
        .header("idempotency-key", "key-2")
        .build();
    let reply = app.invoke(Function::CreateUser, &other_key).await;
    assert_eq!(
        (reply.status, reply.code()),
        (409, Some("email_taken")),
        "another key is another request"
    );
    let reply = app.invoke(Function::CreateUser, &other_key).await;
    assert_eq!(
        reply.code(),
        Some("email_taken"),
        "a failed request released its key"
    );
    assert_eq!(all_pages(&app, 100).await.concat().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_belong_to_their_caller() {
    let app = App::new().await;
    let request = |caller: &str| {
        EventBuilder::create(&body("Grace Hopper", "grace@example.com"))
            .header("idempotency-key", "shared-key")
            .caller(caller)
            .build()
    };
    let alice = app.invoke(Function::CreateUser, &request("alice")).await;
    assert_eq!(alice.status, 201);
    let replay = app.invoke(Function::CreateUser, &request("alice")).await;
    assert_eq!(replay.body, alice.body, "the caller's own retry");
    let bob = app.invoke(Function::CreateUser, &request("bob")).await;
    assert_eq!(
        (bob.status, bob.code()),
        (409, Some("email_taken")),
        "another caller's key is another request, not a replay of alice's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_while_the_first_request_runs_is_told_to_wait() {
    let app = App::new().await;
    let request = EventBuilder::create(&body("Mary Jackson", "mary@example.com"))
        .header("idempotency-key", "busy")
        .build();
    app.seed_in_flight(&request, Duration::from_secs(600)).await;
    let reply = app.invoke(Function::CreateUser, &request).await;
    assert_eq!(
        (reply.status, reply.code()),
        (409, Some("request_in_progress"))
    );
    assert_contract(&reply);
    let retry_after: u64 = reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after seconds");
    assert!((1..=600).contains(&retry_after), "{retry_after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_is_remembered_for_24_hours_then_forgotten() {
    let app = App::new().await;
    let keyed = |email: &str| {
        EventBuilder::create(&body("Dorothy Vaughan", email))
            .header("idempotency-key", "daily")
            .build()
    };
    let first = app
        .invoke(Function::CreateUser, &keyed("dorothy@example.com"))
        .await;
    assert_eq!(first.status, 201);

    app.clock.advance(Duration::from_secs(24 * 60 * 60 - 60));
    let replay = app
        .invoke(Function::CreateUser, &keyed("dorothy@example.com"))
        .await;
    assert_eq!(
        replay.body, first.body,
        "a retry a minute before the window ends"
    );
    let reused = app
        .invoke(Function::CreateUser, &keyed("vaughan@example.com"))
        .await;
    assert_eq!(reused.code(), Some("idempotency_key_reused"));

    app.clock.advance(Duration::from_secs(2 * 60));
    let fresh = app
        .invoke(Function::CreateUser, &keyed("vaughan@example.com"))
        .await;
    assert_eq!(
        fresh.status, 201,
        "a minute after the window the key is free"
    );
    assert_ne!(fresh.body["id"], first.body["id"]);
    let replay = app
        .invoke(Function::CreateUser, &keyed("vaughan@example.com"))
        .await;
    assert_eq!(replay.body, fresh.body, "and remembered anew");
    assert_eq!(all_pages(&app, 100).await.concat().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_left_by_a_request_that_died_expires_with_its_invocation() {
    let app = App::new().await;
    let request = EventBuilder::create(&body("Annie Easley", "annie@example.com"))
        .header("idempotency-key", "crashed")
        .build();
    app.seed_in_flight(&request, Duration::from_secs(10)).await;

    app.clock.advance(Duration::from_secs(5));
    let waiting = app.invoke(Function::CreateUser, &request).await;
    assert_eq!(waiting.code(), Some("request_in_progress"));
    let retry_after: u64 = waiting
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after seconds");
    assert!((1..=5).contains(&retry_after), "{retry_after}");

    app.clock.advance(Duration::from_secs(6));
    let taken_over = app.invoke(Function::CreateUser, &request).await;
    assert_eq!(taken_over.status, 201, "{}", taken_over.body);
    let replay = app.invoke(Function::CreateUser, &request).await;
    assert_eq!(replay.body, taken_over.body);
    assert_eq!(all_pages(&app, 100).await.concat().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_validly_signed_cursor_only_moves_within_the_users() {
    let app = App::new().await;
    for i in 0..3 {
        assert_eq!(
            create(&app, "Someone", &format!("u{i}@example.com"))
                .await
                .status,
            201
        );
    }
    let keys = EventBuilder::create(&body("Keyed", "keyed@example.com"))
        .header("idempotency-key", "k")
        .build();
    assert_eq!(app.invoke(Function::CreateUser, &keys).await.status, 201);
    for (bytes, expected) in [([0xff; 16], 4), ([0; 16], 0)] {
        let cursor = app.cursor_key.encode(UserId::from_bytes(bytes));
        let page = app
            .invoke(
                Function::ListUsers,
                &EventBuilder::list(&format!("cursor={cursor}")).build(),
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().expect("items");
        assert_eq!(items.len(), expected, "{}", page.body);
        for item in items {
            let fields: Vec<&str> = item
                .as_object()
                .expect("a user")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                fields,
                ["created_at", "email", "id", "name", "updated_at"],
                "only users"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_largest_page_is_far_below_lambdas_response_limit() {
    const LAMBDA_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;
    let app = App::new().await;
    let longest_name = "\u{1F600}".repeat(100);
    for i in 0..101 {
        // 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254 bytes, the longest address.
        let email = format!(
            "{i:0>64}@{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(61)
        );
        let new = NewUser {
            name: UserName::parse(&longest_name).expect("the longest name"),
            email: Email::parse(&email).expect("the longest email"),
        };
        app.seed_user(&User::create(new, SystemTime::now())).await;
    }
    let page = app
        .invoke(
            Function::ListUsers,
            &EventBuilder::list("limit=100").build(),
        )
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(100));
    let size = page.body.to_string().len();
    assert!(size < LAMBDA_RESPONSE_LIMIT / 50, "{size} bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn base64_bodies_are_decoded_first() {
    let app = App::new().await;
    let request = EventBuilder::create(&body("Alan Turing", "alan@example.com"))
        .base64()
        .build();
    let reply = app.invoke(Function::CreateUser, &request).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["name"], "Alan Turing");

    let at_limit = format!(
        r#"{{"name": "{}", "email": "x@example.com"}}"#,
        "n".repeat(16384 - 38)
    );
    assert_eq!(at_limit.len(), 16384);
    let reply = app
        .invoke(
            Function::CreateUser,
            &EventBuilder::create(&at_limit).base64().build(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, Some("validation_failed")),
        "16 KiB exactly is read"
    );
    let over = format!("{at_limit} ");
    let reply = app
        .invoke(
            Function::CreateUser,
            &EventBuilder::create(&over).base64().build(),
        )
        .await;
    assert_eq!(reply.status, 413, "the limit counts decoded bytes");
}
