//! Updates and deletes racing across execution environments, each its own process: an email is
//! held by one user at most whatever races for it, one `etag` lets one writer through, writes
//! without one keep every field's last value, and an erasure leaves no email behind. Each round
//! starts its requests at once, one per process; the tables are then read on the server itself.
//! The last test stages one interleaving in this process, with a clock stopped on a millisecond.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use lambda_http::LambdaEvent;
use serde_json::{Value, json};
use users::clock::Clock;
use users::domain::{Precondition, User, UserId, UserName, Version};
use users::dynamodb::DynamoStore;
use users::handlers;
use users::http::{Request, Response};
use users::idempotency::ClaimRequest;
use users::store::{Page, Renamed, StoreError, UserStore};
use users_tests::{App, EventBuilder, Function, Reply, deadline_in};

use crate::races::{assert_one_email_item_per_user, create, processes, race};

const ROUNDS: usize = 5;
const PROCESSES: usize = 4;

/// A user created through the API: its id and etag.
async fn seed(app: &App, name: &str, email: &str) -> (String, String) {
    let reply = app
        .invoke(Function::CreateUser, &create(name, email).build())
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.body["id"].as_str().expect("an id").to_owned();
    (id, reply.header("etag").expect("an etag").to_owned())
}

fn patch(id: &str, fields: &Value) -> EventBuilder {
    EventBuilder::patch(id, &fields.to_string())
}

fn outcome(reply: &Reply) -> (u16, Option<&str>) {
    (reply.status, reply.code())
}

const TAKEN: (u16, Option<&str>) = (409, Some("email_taken"));

#[tokio::test(flavor = "multi_thread")]
async fn an_email_change_racing_a_create_for_that_email_lets_exactly_one_through() {
    let app = App::new().await;
    let updaters = processes(&app, Function::UpdateUser, PROCESSES).await;
    let creators = processes(&app, Function::CreateUser, PROCESSES).await;
    let mut users = 0;
    for round in 0..ROUNDS {
        let mut sends = Vec::new();
        let mut movers = Vec::new();
        for i in 0..PROCESSES {
            let (id, _) = seed(&app, "Mover", &format!("mover-{round}-{i}@example.com")).await;
            let wanted = format!("wanted-{round}-{i}@example.com");
            let moving = patch(&id, &json!({ "email": wanted.to_uppercase() })).build();
            sends.push((updaters[i].clone(), moving));
            sends.push((creators[i].clone(), create("Creator", &wanted).build()));
            movers.push(id);
        }
        let replies = race(sends).await;
        let stored = assert_one_email_item_per_user(&app).await;
        for (i, pair) in replies.chunks(2).enumerate() {
            let [moved, created] = pair else {
                unreachable!("replies come in pairs")
            };
            let mover = &stored[&movers[i]];
            match (outcome(moved), outcome(created)) {
                ((200, None), TAKEN) => {
                    assert_eq!(mover.email, format!("WANTED-{round}-{i}@EXAMPLE.COM"));
                    assert_eq!(moved.body["email"], mover.email.as_str());
                }
                (TAKEN, (201, None)) => {
                    assert_eq!(mover.email, format!("mover-{round}-{i}@example.com"));
                    let id = created.body["id"].as_str().expect("an id");
                    assert_eq!(stored[id].email, format!("wanted-{round}-{i}@example.com"));
                    users += 1;
                }
                other => panic!("not exactly one winner: {other:?}: {moved:?} {created:?}"),
            }
        }
        users += PROCESSES;
        assert_eq!(
            stored.len(),
            users,
            "the seeded users and the creates that won"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn email_changes_of_several_users_racing_to_one_email_let_exactly_one_through() {
    let app = App::new().await;
    let updaters = processes(&app, Function::UpdateUser, PROCESSES).await;
    for round in 0..ROUNDS {
        let wanted = format!("shared-{round}@example.com");
        let cases = [
            wanted.clone(),
            wanted.to_uppercase(),
            format!("Shared-{round}@Example.com"),
            format!("shared-{round}@EXAMPLE.com"),
        ];
        let mut sends = Vec::new();
        let mut ids = Vec::new();
        for (i, email) in cases.iter().enumerate() {
            let (id, _) = seed(&app, "Racer", &format!("racer-{round}-{i}@example.com")).await;
            sends.push((
                updaters[i].clone(),
                patch(&id, &json!({ "email": email })).build(),
            ));
            ids.push(id);
        }
        let replies = race(sends).await;
        let winners: Vec<usize> = (0..PROCESSES)
            .filter(|&i| replies[i].status == 200)
            .collect();
        let [winner] = winners[..] else {
            panic!("not exactly one winner: {replies:#?}");
        };
        let stored = assert_one_email_item_per_user(&app).await;
        for (i, reply) in replies.iter().enumerate() {
            if i == winner {
                assert_eq!(stored[&ids[i]].email, cases[i]);
            } else {
                assert_eq!(outcome(reply), TAKEN, "{}", reply.body);
                let own = format!("racer-{round}-{i}@example.com");
                assert_eq!(stored[&ids[i]].email, own, "a loser keeps its email");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn patches_sent_with_one_etag_let_exactly_one_through() {
    let app = App::new().await;
    let updaters = processes(&app, Function::UpdateUser, PROCESSES).await;
    let (id, mut etag) = seed(&app, "Ada", "ada@example.com").await;
    for round in 0..ROUNDS {
        // Half rename (one conditional UpdateItem), half move the email (a transaction).
        let sends = (0..PROCESSES)
            .map(|i| {
                let fields = if i % 2 == 0 {
                    json!({ "name": format!("Ada {round}-{i}") })
                } else {
                    json!({ "email": format!("ada-{round}-{i}@example.com") })
                };
                let event = patch(&id, &fields).header("if-match", &etag).build();
                (updaters[i].clone(), event)
            })
            .collect();
        let replies = race(sends).await;
        let passed: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
        let [passed] = passed[..] else {
            panic!("not exactly one 200: {replies:#?}");
        };
        for reply in replies.iter().filter(|r| r.status != 200) {
            assert_eq!(outcome(reply), (412, Some("precondition_failed")));
        }
        let next = passed.header("etag").expect("an etag").to_owned();
        assert_ne!(next, etag, "a change gets a new etag");
        etag = next;
        let stored = assert_one_email_item_per_user(&app).await;
        assert_eq!(
            stored[&id].version,
            2 + round as u64,
            "one change per round"
        );
        assert_eq!(passed.body["name"], stored[&id].name.as_str());
        assert_eq!(passed.body["email"], stored[&id].email.as_str());
    }
}

/// Without `if-match` the last write wins field by field. Three writers at a time: each write
/// that finds the user changed reads it again, a bounded number of times, and with three
/// writers the third read always finds the others done.
#[tokio::test(flavor = "multi_thread")]
async fn patches_without_an_etag_keep_each_fields_last_write() {
    const WRITERS: usize = 3;
    let app = App::new().await;
    let updaters = processes(&app, Function::UpdateUser, WRITERS).await;
    let (id, _) = seed(&app, "Grace", "grace@example.com").await;
    let mut patched = Vec::new();
    for round in 0..2 * ROUNDS {
        let fields: Vec<Value> = (0..WRITERS)
            .map(|i| match (round + i) % 2 {
                0 => json!({ "name": format!("Grace {round}-{i}") }),
                _ => json!({ "email": format!("grace-{round}-{i}@example.com") }),
            })
            .collect();
        let sends = (0..WRITERS)
            .map(|i| (updaters[i].clone(), patch(&id, &fields[i]).build()))
            .collect();
        for (reply, fields) in race(sends).await.into_iter().zip(fields) {
            assert_eq!(reply.status, 200, "{}", reply.body);
            patched.push((reply, fields));
        }
    }
    // The version each answer carries, from its etag; then the changes in their order.
    let version_of = |reply: &Reply| {
        let etag = reply.header("etag").expect("an etag");
        (1..=100)
            .find(|&v| Version::new(v).etag() == etag)
            .unwrap_or_else(|| panic!("an etag of ours: {etag}"))
    };
    patched.sort_by_key(|(reply, _)| version_of(reply));
    let versions: Vec<u64> = patched.iter().map(|(reply, _)| version_of(reply)).collect();
    let every_change: Vec<u64> = (2..).take(patched.len()).collect();
    assert_eq!(
        versions, every_change,
        "each patch is one change, counted once"
    );
    let mut state = json!({ "name": "Grace", "email": "grace@example.com" });
    let mut updated_at = String::new();
    for (reply, fields) in &patched {
        for (field, value) in fields.as_object().expect("a patch") {
            state[field] = value.clone();
        }
        assert_eq!(
            (&reply.body["name"], &reply.body["email"]),
            (&state["name"], &state["email"]),
            "version {}: the field it named, the others as the previous change left them",
            version_of(reply)
        );
        let at = reply.body["updated_at"].as_str().expect("updated_at");
        assert!(*at >= *updated_at, "updated_at never goes back");
        at.clone_into(&mut updated_at);
    }
    let stored = assert_one_email_item_per_user(&app).await;
    let last = &stored[&id];
    assert_eq!(
        (&last.name[..], &last.email[..]),
        (
            state["name"].as_str().expect("a name"),
            state["email"].as_str().expect("an email"),
        )
    );
    assert_eq!(last.version, 1 + patched.len() as u64);
    let got = app
        .invoke(Function::GetUser, &EventBuilder::get(&id).build())
        .await;
    assert_eq!(got.body, patched.last().expect("patches").0.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_racing_email_changes_leaves_no_email_and_no_record_behind() {
    let app = App::new().await;
    let updaters = processes(&app, Function::UpdateUser, PROCESSES).await;
    let deleters = processes(&app, Function::DeleteUser, PROCESSES / 2).await;
    for round in 0..ROUNDS {
        let mut sends = Vec::new();
        let mut ids = Vec::new();
        for (d, deleter) in deleters.iter().enumerate() {
            // Created with a key, so the erasure also takes the create's idempotency record.
            let key = format!("erased-{round}-{d}");
            let created = create("Erased", &format!("erased-{round}-{d}@example.com"))
                .header("idempotency-key", &key)
                .build();
            let reply = app.invoke(Function::CreateUser, &created).await;
            assert_eq!(reply.status, 201, "{}", reply.body);
            let id = reply.body["id"].as_str().expect("an id").to_owned();
            for u in 0..2 {
                let email = format!("moved-{round}-{d}-{u}@example.com");
                let event = patch(&id, &json!({ "email": email })).build();
                sends.push((updaters[2 * d + u].clone(), event));
            }
            sends.push((deleter.clone(), EventBuilder::delete(&id).build()));
            ids.push(id);
        }
        for chunk in race(sends).await.chunks(3) {
            let [first, second, deleted] = chunk else {
                unreachable!("three requests a user")
            };
            assert_eq!(deleted.status, 204, "{}", deleted.body);
            for moved in [first, second] {
                assert!(
                    moved.status == 200 || outcome(moved) == (404, Some("not_found")),
                    "{moved:?}"
                );
            }
        }
        let stored = assert_one_email_item_per_user(&app).await;
        assert!(stored.is_empty(), "{stored:?}");
        let left = app.snapshot().await;
        assert!(left.is_empty(), "nothing keeps an erased user: {left:#?}");
        for id in &ids {
            let got = app
                .invoke(Function::GetUser, &EventBuilder::get(id).build())
                .await;
            assert_eq!(outcome(&got), (404, Some("not_found")));
        }
    }
}

/// A clock that always reads one millisecond, as two requests racing within it do.
struct Frozen(SystemTime);

impl Clock for Frozen {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// The real store, except that the first write it is asked for waits until another PATCH has
/// run to its answer: two requests read the same version, and the other one writes first.
struct OtherWritesFirst {
    store: DynamoStore,
    clock: Frozen,
    other: Mutex<Option<Value>>,
    answer: Mutex<Option<Response>>,
}

fn lambda_event(event: Value, request_id: &str) -> LambdaEvent<Request> {
    let request = serde_json::from_value(event).expect("an API Gateway event");
    let mut context = lambda_http::Context::default();
    request_id.clone_into(&mut context.request_id);
    context.deadline = deadline_in(Duration::from_secs(10));
    LambdaEvent::new(request, context)
}

impl OtherWritesFirst {
    /// Runs the other PATCH to its answer, before the first write only.
    async fn other_first(&self) {
        let other = self.other.lock().expect("not poisoned").take();
        if let Some(other) = other {
            let event = lambda_event(other, "the-other-patch");
            let answer = handlers::update_user(&self.store, &self.clock, event).await;
            let answer = answer.unwrap_or_else(|never| match never {});
            *self.answer.lock().expect("not poisoned") = Some(answer);
        }
    }
}

impl UserStore for OtherWritesFirst {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.store.get(id).await
    }
    async fn list(&self, before: Option<UserId>, limit: usize) -> Result<Page, StoreError> {
        self.store.list(before, limit).await
    }
    async fn insert(&self, user: &User, claim: Option<&ClaimRequest>) -> Result<(), StoreError> {
        self.store.insert(user, claim).await
    }
    async fn update(&self, current: &User, next: &User) -> Result<(), StoreError> {
        self.other_first().await;
        self.store.update(current, next).await
    }
    async fn delete(&self, user: &User) -> Result<(), StoreError> {
        self.store.delete(user).await
    }
    async fn rename(
        &self,
        id: UserId,
        name: &UserName,
        updated_at: &str,
        precondition: Option<&Precondition>,
    ) -> Result<Renamed, StoreError> {
        self.other_first().await;
        self.store.rename(id, name, updated_at, precondition).await
    }
    async fn forget(&self, scoped_key: &str, user: UserId) -> Result<(), StoreError> {
        self.store.forget(scoped_key, user).await
    }
}

/// Two identical PATCHes sent with one etag, computed within one millisecond: the same next
/// version, to the same `updated_at`. The one whose write finds the version moved on must
/// answer `412`, though what it reads then is exactly what it would have written.
#[tokio::test(flavor = "multi_thread")]
async fn identical_patches_sent_with_one_etag_within_a_millisecond_let_exactly_one_through() {
    let app = App::new().await;
    let (id, etag) = seed(&app, "Ada", "ada@example.com").await;
    let rename = patch(&id, &json!({ "name": "Ada King" }))
        .header("if-match", &etag)
        .build();
    let store = OtherWritesFirst {
        store: app.store.clone(),
        clock: Frozen(SystemTime::now()),
        other: Mutex::new(Some(rename.clone())),
        answer: Mutex::new(None),
    };
    let this =
        handlers::update_user(&store, &store.clock, lambda_event(rename, "this-patch")).await;
    let this = this.unwrap_or_else(|never| match never {});
    let other = store.answer.lock().expect("not poisoned").take();
    let other = other.expect("the other PATCH ran first");
    assert_eq!(other.status_code, 200, "the first write passes: {other:?}");
    let stored = assert_one_email_item_per_user(&app).await;
    assert_eq!(stored[&id].version, 2, "one change");
    assert_eq!(
        this.status_code, 412,
        "both PATCHes with if-match {etag} answered 200 for one change: {this:?}"
    );
}
