//! What clients get when a dependency or the code itself fails: a contract answer, nothing
//! half-written, nothing internal revealed, and a process that keeps serving.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use users::domain::{Precondition, User, UserId, UserName};
use users::dynamodb::{DynamoStore, Tables};
use users::idempotency::{self, ClaimOutcome, ClaimRequest, Decision, IdempotencyKey, Idempotent};
use users::store::{Page, Renamed, StoreError, UserStore};
use users_tests::{App, EventBuilder, Function, Reply, deadline_in};

use crate::replay::{ada, contract_violations};

pub fn create_event() -> serde_json::Value {
    EventBuilder::create(r#"{"name": "Ada", "email": "ada@example.com"}"#).build()
}

/// Each function's answer to an ordinary request, served from `store`.
pub async fn answers(app: &App, store: &DynamoStore) -> Vec<Reply> {
    let requests = [
        (Function::CreateUser, create_event()),
        (
            Function::GetUser,
            EventBuilder::get(&ada().id().to_string()).build(),
        ),
        (Function::ListUsers, EventBuilder::list("").build()),
    ];
    let mut replies = Vec::new();
    for (function, event) in requests {
        replies.push(app.invoke_on(store, function, &event).await);
    }
    replies
}

pub fn assert_reveals_nothing(reply: &Reply) {
    let problems = contract_violations(reply);
    assert!(problems.is_empty(), "{problems:?} in {reply:?}");
    let text = reply.body.to_string();
    for secret in [
        "missing",
        "Resource",
        "Exception",
        "arn:",
        "dynamodb",
        "127.0.0.1",
    ] {
        assert!(!text.contains(secret), "{secret} revealed in {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_dynamodb_refuses_is_a_500_that_reveals_nothing() {
    let app = App::new().await;
    let missing = Tables {
        users: "missing-users".into(),
        idempotency: "missing-keys".into(),
    };
    let store = DynamoStore::new(app.client.clone(), missing);
    for reply in answers(&app, &store).await {
        assert_eq!(
            (reply.status, reply.code()),
            (500, Some("internal")),
            "{}",
            reply.body
        );
        assert_reveals_nothing(&reply);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn work_that_would_outlive_the_invocation_gives_up_with_503() {
    let app = App::new().await;
    let reply = app
        .invoke_with(
            &app.store,
            Function::CreateUser,
            &create_event(),
            deadline_in(Duration::from_millis(100)),
        )
        .await;
    assert_eq!((reply.status, reply.code()), (503, Some("unavailable")));
    assert_reveals_nothing(&reply);
    assert!(app.snapshot().await.is_empty(), "nothing half-written");
    let reply = app.invoke(Function::CreateUser, &create_event()).await;
    assert_eq!(
        reply.status, 201,
        "the next request with time to spare succeeds"
    );
}

/// The real store, except that its first read panics, as a bug would.
struct PanicsOnce {
    store: DynamoStore,
    panicked: AtomicBool,
}

impl UserStore for PanicsOnce {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        assert!(
            self.panicked.swap(true, Ordering::SeqCst),
            "a bug in request handling"
        );
        self.store.get(id).await
    }
    async fn list(&self, before: Option<UserId>, limit: usize) -> Result<Page, StoreError> {
        self.store.list(before, limit).await
    }
    async fn insert(&self, user: &User, claim: Option<&ClaimRequest>) -> Result<(), StoreError> {
        self.store.insert(user, claim).await
    }
    async fn update(&self, current: &User, next: &User) -> Result<(), StoreError> {
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
        self.store.rename(id, name, updated_at, precondition).await
    }
    async fn forget(&self, scoped_key: &str, user: UserId) -> Result<(), StoreError> {
        self.store.forget(scoped_key, user).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_is_a_500_and_the_next_request_is_served() {
    let app = App::new().await;
    app.seed_user(&ada()).await;
    let store = PanicsOnce {
        store: app.store.clone(),
        panicked: AtomicBool::new(false),
    };
    let event = EventBuilder::get(&ada().id().to_string()).build();
    let reply = app.invoke_on(&store, Function::GetUser, &event).await;
    assert_eq!((reply.status, reply.code()), (500, Some("internal")));
    assert_eq!(reply.body["error"]["message"], "internal error");
    assert_reveals_nothing(&reply);
    let reply = app.invoke_on(&store, Function::GetUser, &event).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_retried_after_a_lost_answer_finds_its_own_record() {
    let app = App::new().await;
    let key = IdempotencyKey::parse(b"lost-answer").expect("a valid key");
    let now = SystemTime::now();
    let idempotent = Idempotent {
        key: &key,
        caller: None,
        body: b"{}",
    };
    let user = ada();
    let mine = ClaimRequest::new(idempotent, user.id(), now);
    let user = user.created_by(&mine.scoped_key);
    app.store.insert(&user, Some(&mine)).await.expect("created");
    // The same write again, as a retry whose first answer was lost (after the 10 minutes in
    // which DynamoDB recognises a transaction's token) would send it.
    let Err(StoreError::KeyHeld(record)) = app.store.insert(&user, Some(&mine)).await else {
        panic!("the key's record did not refuse the second write");
    };
    assert_eq!(
        idempotency::decide(record.as_ref(), &mine),
        Decision::Answer(ClaimOutcome::Claimed),
        "the record is this request's own"
    );
    let other = ClaimRequest::new(idempotent, UserId::generate(now), now);
    assert_eq!(
        idempotency::decide(record.as_ref(), &other),
        Decision::Answer(ClaimOutcome::Completed {
            user: user.id(),
            same_body: true
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_that_gives_no_real_deadline_is_served() {
    // cargo lambda watch sends a fixed deadline of 600000 ms, which is in 1970.
    let app = App::new().await;
    let request = EventBuilder::create(r#"{"name": "Ada", "email": "ada@example.com"}"#)
        .header("idempotency-key", "watch")
        .build();
    let first = app
        .invoke_with(&app.store, Function::CreateUser, &request, 600_000)
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let retry = app
        .invoke_with(&app.store, Function::CreateUser, &request, 600_000)
        .await;
    assert_eq!(
        retry.body, first.body,
        "the claim outlived the bogus deadline"
    );
}
