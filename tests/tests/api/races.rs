//! Several execution environments racing on one table, each its own process: what DynamoDB's
//! conditions promise holds across processes, not only across tasks. Here, creates; races of
//! updates and deletes are in `change_races`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::join_all;
use serde_json::Value;
use users_tests::process::FunctionProcess;
use users_tests::{App, EventBuilder, Function, Reply};

use crate::replay::contract_violations;
use crate::scenarios::all_pages;

const PROCESSES: usize = 4;

/// `count` execution environments of `function` on `app`'s tables.
pub async fn processes(app: &App, function: Function, count: usize) -> Vec<Arc<FunctionProcess>> {
    let starting = (0..count).map(|_| FunctionProcess::start(app, function, app.endpoint(), &[]));
    join_all(starting).await.into_iter().map(Arc::new).collect()
}

/// Sends every event to its process at once; the replies in order, each checked against the
/// contract.
pub async fn race(sends: Vec<(Arc<FunctionProcess>, Value)>) -> Vec<Reply> {
    let sending = sends
        .into_iter()
        .map(|(process, event)| async move { process.invoke(&event).await });
    let replies = join_all(sending).await;
    for reply in &replies {
        let problems = contract_violations(reply);
        assert!(problems.is_empty(), "{problems:?} in {reply:?}");
    }
    replies
}

/// Sends every event at once, spread over the processes in turn; the replies in event order.
async fn send_all(processes: &[Arc<FunctionProcess>], events: Vec<Value>) -> Vec<Reply> {
    let sends = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| (Arc::clone(&processes[i % processes.len()]), event))
        .collect();
    race(sends).await
}

pub fn create(name: &str, email: &str) -> EventBuilder {
    EventBuilder::create(&serde_json::json!({ "name": name, "email": email }).to_string())
}

/// A user item as stored: its id, name, email and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub name: String,
    pub email: String,
    pub version: u64,
}

/// Reads the users table on the server itself and proves its uniqueness invariant: every
/// `EMAIL#` item names an existing user whose email lowercases to it, and every user has
/// exactly one. Returns the users by id.
pub async fn assert_one_email_item_per_user(app: &App) -> HashMap<String, Stored> {
    let mut users = HashMap::new();
    let mut reservations = Vec::new();
    let mut start = None;
    loop {
        let page = app
            .client
            .scan()
            .table_name(&app.tables.users)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("the users table scans");
        for item in page.items() {
            let text = |name: &str| match item.get(name) {
                Some(AttributeValue::S(value)) => value.clone(),
                other => panic!("{name} is not a string in {item:?}: {other:?}"),
            };
            let pk = text("pk");
            if let Some(id) = pk.strip_prefix("USER#") {
                let version = match item.get("version") {
                    Some(AttributeValue::N(n)) => n.parse().expect("a whole number"),
                    None => 1,
                    other => panic!("a version that is not a number: {other:?}"),
                };
                let user = Stored {
                    name: text("name"),
                    email: text("email"),
                    version,
                };
                users.insert(id.to_owned(), user);
            } else if let Some(email) = pk.strip_prefix("EMAIL#") {
                reservations.push((email.to_owned(), text("user_id")));
            } else {
                panic!("an item that is neither a user nor an email: {item:?}");
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let mut reserved_by = HashMap::new();
    for (email, user_id) in &reservations {
        let user = users
            .get(user_id)
            .unwrap_or_else(|| panic!("EMAIL#{email} names no user ({user_id})"));
        assert_eq!(
            &user.email.to_ascii_lowercase(),
            email,
            "EMAIL#{email} names user {user_id}, whose email is another"
        );
        assert!(
            reserved_by.insert(user_id.clone(), email).is_none(),
            "user {user_id} holds two EMAIL# items"
        );
    }
    for (id, user) in &users {
        assert!(
            reserved_by.contains_key(id),
            "user {id} ({}) has no EMAIL# item",
            user.email
        );
    }
    users
}

#[tokio::test(flavor = "multi_thread")]
async fn one_email_in_many_cases_across_processes_makes_one_user() {
    let app = App::new().await;
    let processes = processes(&app, Function::CreateUser, PROCESSES).await;
    let cases = ["race@example.com", "RACE@example.com", "Race@Example.COM"];
    let events = (0..24)
        .map(|i| create(&format!("Racer {i}"), cases[i % cases.len()]).build())
        .collect();
    let replies = send_all(&processes, events).await;
    let mut statuses: Vec<_> = replies.iter().map(|r| (r.status, r.code())).collect();
    statuses.sort_unstable();
    let mut expected = vec![(409, Some("email_taken")); 23];
    expected.insert(0, (201, None));
    assert_eq!(statuses, expected);
    assert_eq!(all_pages(&app, 100).await.concat().len(), 1);
    assert_eq!(app.snapshot().await.len(), 2, "one user and one email item");
    assert_eq!(assert_one_email_item_per_user(&app).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_retries_with_one_key_across_processes_make_one_user() {
    let app = App::new().await;
    let processes = processes(&app, Function::CreateUser, PROCESSES).await;
    let retry = create("Hedy Lamarr", "hedy@example.com")
        .header("idempotency-key", "one-key")
        .build();
    let first_wave = send_all(&processes, vec![retry.clone(); 3 * PROCESSES]).await;
    let created: Vec<_> = first_wave.iter().filter(|r| r.status == 201).collect();
    assert!(!created.is_empty(), "someone creates the user");
    for reply in &first_wave {
        match reply.status {
            201 => assert_eq!(reply.body, created[0].body, "the one user"),
            _ => {
                assert_eq!(reply.code(), Some("request_in_progress"), "{}", reply.body);
            }
        }
    }
    let second_wave = send_all(&processes, vec![retry; 2 * PROCESSES]).await;
    for reply in &second_wave {
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert_eq!(
            reply.body, created[0].body,
            "every later retry gets the same 201"
        );
        assert_eq!(reply.header("location"), created[0].header("location"));
    }
    assert_eq!(all_pages(&app, 100).await.concat().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn distinct_users_created_across_processes_are_each_listed_once() {
    let app = App::new().await;
    let processes = processes(&app, Function::CreateUser, PROCESSES).await;
    let events = (0..40)
        .map(|i| create(&format!("User {i}"), &format!("user{i}@example.com")).build())
        .collect();
    let replies = send_all(&processes, events).await;
    assert!(replies.iter().all(|r| r.status == 201));
    let created: HashSet<String> = replies
        .iter()
        .map(|r| r.body["id"].as_str().expect("an id").to_owned())
        .collect();
    assert_eq!(created.len(), 40);

    let paged: Vec<String> = all_pages(&app, 7)
        .await
        .concat()
        .iter()
        .map(|user| user["id"].as_str().expect("an id").to_owned())
        .collect();
    let mut newest_first = paged.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(paged, newest_first, "newest first");
    assert_eq!(paged.iter().cloned().collect::<HashSet<_>>(), created);
    assert_eq!(paged.len(), 40, "each exactly once");
    assert_eq!(assert_one_email_item_per_user(&app).await.len(), 40);
}
