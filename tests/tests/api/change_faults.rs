//! DynamoDB failing under every call that update-user and delete-user make, and under the call
//! with which a create forgets a key whose user was erased outside the API: each fault is a
//! `503 unavailable` with `retry-after: 1` that reveals nothing and leaves every item as it was
//! (read on the server itself, past the proxy), and the same client serves again once the fault
//! clears. An answer lost after a committed write is retried by the SDK into the right answer.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use users::dynamodb::DynamoStore;
use users_tests::{App, EventBuilder, Function, Reply};
use xtask::fault_proxy::{ErrorAnswer, Fault, FaultProxy};

use crate::failures::assert_reveals_nothing;
use crate::faults::assert_unavailable;
use crate::races::{assert_one_email_item_per_user, create};

const TRANSACT: &str = "TransactWriteItems";

/// The requests under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// A new name, with `if-match` of Ada's current etag: one conditional `UpdateItem`, no read.
    Rename,
    /// Her email with its case changed: a read, then one conditional `UpdateItem`.
    Recase,
    /// A new email: one transaction of three items.
    MoveEmail,
    /// Ada's erasure, with `if-match` of her current etag: one transaction of three items.
    Erase,
    /// A retried create whose key's user was erased outside the API: the record is forgotten
    /// (`DeleteItem`), then the user created anew.
    Forget,
}

/// Every DynamoDB call the requests make that a create's tests do not already fault.
const CALLS: [(Request, &str); 8] = [
    (Request::Rename, "UpdateItem"),
    (Request::Recase, "GetItem"),
    (Request::Recase, "UpdateItem"),
    (Request::MoveEmail, "GetItem"),
    (Request::MoveEmail, TRANSACT),
    (Request::Erase, "GetItem"),
    (Request::Erase, TRANSACT),
    (Request::Forget, "DeleteItem"),
];

/// Fresh tables behind a fault proxy, holding Ada, made by a keyed create (so her erasure also
/// deletes its idempotency record), and the completed record of a keyed create whose user was
/// then erased outside the API.
struct Fixture {
    app: App,
    proxy: FaultProxy,
    store: DynamoStore,
    ada: String,
}

fn forgotten_create() -> Value {
    create("Gone", "gone@example.com")
        .header("idempotency-key", "forgotten")
        .build()
}

/// `email` with the case of its first letter turned.
fn recased(email: &str) -> String {
    let mut chars = email.chars();
    let first = chars.next().map_or_else(String::new, |c| {
        if c.is_ascii_uppercase() {
            c.to_ascii_lowercase().to_string()
        } else {
            c.to_ascii_uppercase().to_string()
        }
    });
    first + chars.as_str()
}

fn error(status: u16, error_type: &str) -> Fault {
    Fault::Error(ErrorAnswer {
        status,
        body: json!({ "__type": error_type, "message": "injected by the fault proxy" }),
    })
}

const VALIDATION: &str = "com.amazon.coral.validate#ValidationException";
const CONDITION: &str = "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException";
const CONFLICT: &str = "com.amazonaws.dynamodb.v20120810#TransactionConflictException";

impl Fixture {
    async fn new() -> Self {
        let app = App::new().await;
        let (proxy, store) = app.behind_fault_proxy().await;
        let made = create("Ada Lovelace", "Ada@Example.com")
            .header("idempotency-key", "ada")
            .build();
        let made = app.invoke(Function::CreateUser, &made).await;
        assert_eq!(made.status, 201, "{}", made.body);
        let gone = app.invoke(Function::CreateUser, &forgotten_create()).await;
        assert_eq!(gone.status, 201, "{}", gone.body);
        let gone = gone.body["id"].as_str().expect("an id");
        app.erase_outside_the_api(gone, "gone@example.com").await;
        let ada = made.body["id"].as_str().expect("an id").to_owned();
        Self {
            app,
            proxy,
            store,
            ada,
        }
    }

    /// Ada as she is, read past the proxy.
    async fn ada(&self) -> Reply {
        let current = EventBuilder::get(&self.ada).build();
        self.app.invoke(Function::GetUser, &current).await
    }

    /// Ada's current etag.
    async fn etag(&self) -> String {
        let ada = self.ada().await;
        ada.header("etag").expect("Ada is there").to_owned()
    }

    /// `request` as a client would send it now.
    async fn event(&self, request: Request) -> (Function, Value) {
        match request {
            Request::Rename => {
                let rename = EventBuilder::patch(&self.ada, r#"{"name": "Ada King"}"#);
                let rename = rename.header("if-match", &self.etag().await);
                (Function::UpdateUser, rename.build())
            }
            Request::Recase => {
                let email = self.ada().await.body["email"].as_str().map(recased);
                let email = email.expect("Ada has an email");
                let recase = EventBuilder::patch(&self.ada, &json!({ "email": email }).to_string());
                (Function::UpdateUser, recase.build())
            }
            Request::MoveEmail => {
                let moving = EventBuilder::patch(&self.ada, r#"{"email": "ada.king@example.com"}"#);
                (Function::UpdateUser, moving.build())
            }
            Request::Erase => {
                let erase = EventBuilder::delete(&self.ada).header("if-match", &self.etag().await);
                (Function::DeleteUser, erase.build())
            }
            Request::Forget => (Function::CreateUser, forgotten_create()),
        }
    }

    async fn send(&self, request: Request) -> Reply {
        let (function, event) = self.event(request).await;
        self.app.invoke_on(&self.store, function, &event).await
    }

    /// Sends `request` with `fault` on its `operation` (the next `times` of them, or all until
    /// it answers), and returns the answer, having checked that the request made that call and
    /// that no item changed.
    async fn under(
        &self,
        (request, operation): (Request, &str),
        fault: &Fault,
        times: Option<u32>,
    ) -> Reply {
        let (function, event) = self.event(request).await;
        let before = self.app.snapshot().await;
        let injected = self.proxy.injected();
        self.proxy.inject(Some(operation), fault.clone(), times);
        let reply = self.app.invoke_on(&self.store, function, &event).await;
        self.proxy.clear();
        let context = format!("{request:?} under {fault:?} on {operation}");
        assert!(self.proxy.injected() > injected, "{context}: never made");
        assert_eq!(self.app.snapshot().await, before, "{context}");
        reply
    }

    async fn assert_unavailable_under(&self, call: (Request, &str), fault: &Fault) {
        let reply = self.under(call, fault, None).await;
        assert_eq!(reply.status, 503, "{call:?} under {fault:?}: {reply:?}");
        assert_unavailable(&reply);
    }

    /// With nothing injected, the same store renames Ada, changes her email's case, moves her
    /// email, forgets the erased user's key and creates anew, and erases Ada, each as the
    /// contract says.
    async fn assert_served_again(&self) {
        let renamed = self.send(Request::Rename).await;
        assert_eq!(renamed.body["name"], "Ada King", "{renamed:?}");
        let recased = self.send(Request::Recase).await;
        assert_eq!(recased.status, 200, "{recased:?}");
        let moved = self.send(Request::MoveEmail).await;
        assert_eq!(moved.body["email"], "ada.king@example.com", "{moved:?}");
        let created = self.send(Request::Forget).await;
        assert_eq!(created.status, 201, "a new user for the key: {created:?}");
        let erased = self.send(Request::Erase).await;
        assert_eq!(erased.status, 204, "{erased:?}");
        let users = assert_one_email_item_per_user(&self.app).await;
        assert_eq!(users.len(), 1, "only the new user: {users:?}");
        let items = self.app.snapshot().await;
        assert_eq!(items.len(), 3, "a user, its email, its key: {items:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_and_server_errors_on_every_call_are_503s_that_change_nothing() {
    let fixture = Fixture::new().await;
    for call in CALLS {
        for fault in [
            Fault::throttling(),
            Fault::provisioned_throughput_exceeded(),
            Fault::internal_server_error(),
            Fault::service_unavailable(),
            error(400, CONFLICT),
        ] {
            fixture.assert_unavailable_under(call, &fault).await;
        }
    }
    fixture.assert_served_again().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dynamodb_that_stops_answering_any_call_is_a_503_before_the_deadline() {
    // A fixture per call, all at once: each stall lasts the client's 5 s call timeout.
    let stalls = CALLS.map(|call| async move {
        let fixture = Fixture::new().await;
        let started = Instant::now();
        let stall = Fault::Stall(Duration::from_secs(8));
        fixture.assert_unavailable_under(call, &stall).await;
        assert!(started.elapsed() < users::handlers::FUNCTION_TIMEOUT);
        fixture.assert_served_again().await;
    });
    join_all(stalls).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_cancelled_by_throttling_or_persisting_conflicts_are_503s() {
    let fixture = Fixture::new().await;
    for call in CALLS
        .into_iter()
        .filter(|(_, operation)| *operation == TRANSACT)
    {
        for reasons in [
            ["ThrottlingError", "None", "None"],
            ["None", "ProvisionedThroughputExceeded", "None"],
            ["None", "None", "ThrottlingError"],
        ] {
            let fault = Fault::transaction_cancelled(&reasons);
            fixture.assert_unavailable_under(call, &fault).await;
        }
        let conflict = Fault::transaction_cancelled(&["None", "TransactionConflict", "None"]);
        let before = fixture.proxy.injected();
        fixture.assert_unavailable_under(call, &conflict).await;
        let attempts = fixture.proxy.injected() - before;
        assert_eq!(attempts, 3, "{call:?}: a conflict is retried twice");
    }
    // A conflict that clears within those retries is not seen at all.
    let conflict = Fault::transaction_cancelled(&["TransactionConflict", "None", "None"]);
    fixture.proxy.inject(Some(TRANSACT), conflict, Some(2));
    let moved = fixture.send(Request::MoveEmail).await;
    assert_eq!(moved.status, 200, "{moved:?}");
    fixture.assert_served_again().await;
}

/// A create taking over the key of Ada's record (its 24 hours over) holds the record while
/// Ada is erased: the erasure waits for it, and never commits without the record while the
/// record may still name her.
#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_that_meets_a_create_taking_its_key_waits_for_it() {
    let fixture = Fixture::new().await;
    let busy = Fault::transaction_cancelled(&["None", "None", "TransactionConflict"]);
    fixture
        .assert_unavailable_under((Request::Erase, TRANSACT), &busy)
        .await;
    fixture.proxy.inject(Some(TRANSACT), busy, Some(1));
    let erased = fixture.send(Request::Erase).await;
    assert_eq!(erased.status, 204, "{erased:?}");
    let items = fixture.app.snapshot().await;
    assert!(
        !items.iter().any(|item| item.contains(&fixture.ada)),
        "the record went with her: {items:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_dynamodb_finds_invalid_are_500s_that_change_nothing() {
    let fixture = Fixture::new().await;
    for call in CALLS {
        let mut faults = vec![error(400, VALIDATION)];
        if call.1 == TRANSACT {
            faults.push(Fault::transaction_cancelled(&[
                "ValidationError",
                "None",
                "None",
            ]));
            faults.push(Fault::transaction_cancelled(&[
                "None",
                "None",
                "ValidationError",
            ]));
        }
        for fault in faults {
            let reply = fixture.under(call, &fault, Some(1)).await;
            let context = format!("{call:?} under {fault:?}: {reply:?}");
            assert_eq!(
                (reply.status, reply.code()),
                (500, Some("internal")),
                "{context}"
            );
            assert_reveals_nothing(&reply);
        }
    }
    fixture.assert_served_again().await;
}

/// A write that keeps finding the user changed reads it again a bounded number of times, then
/// answers `503`; one that found it changed once goes through on fresh state.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_that_keeps_changing_is_read_again_a_bounded_number_of_times() {
    let fixture = Fixture::new().await;
    let changed = Fault::transaction_cancelled(&["ConditionalCheckFailed", "None", "None"]);
    for (call, fault) in [
        (CALLS[2], error(400, CONDITION)),
        (CALLS[4], changed.clone()),
        (CALLS[6], changed.clone()),
    ] {
        let before = fixture.proxy.injected();
        fixture.assert_unavailable_under(call, &fault).await;
        assert_eq!(fixture.proxy.injected() - before, 3, "{call:?}");
    }
    let once = error(400, CONDITION);
    fixture.proxy.inject(Some("UpdateItem"), once, Some(1));
    let recased = fixture.send(Request::Recase).await;
    assert_eq!(recased.status, 200, "{recased:?}");
    fixture.proxy.inject(Some(TRANSACT), changed, Some(1));
    let moved = fixture.send(Request::MoveEmail).await;
    assert_eq!(moved.status, 200, "{moved:?}");
    assert_eq!(fixture.proxy.injected(), 3 * 3 + 2);
    let users = assert_one_email_item_per_user(&fixture.app).await;
    assert_eq!(users[&fixture.ada].version, 3, "two changes");
}

/// The proxy passes the write on, then answers 500 in place of DynamoDB's answer; the SDK
/// retries. A transaction's retry carries its `ClientRequestToken`, so DynamoDB recognises it;
/// a plain `UpdateItem` or `DeleteItem` has none, and its retry finds its own write done.
#[tokio::test(flavor = "multi_thread")]
async fn answers_lost_after_a_committed_write_are_retried_into_the_right_answer() {
    let fixture = Fixture::new().await;
    let lost = |operation: &str, function: Function, event: EventBuilder| {
        let fixture = &fixture;
        fixture
            .proxy
            .inject(Some(operation), Fault::LoseAnswer, Some(1));
        async move {
            fixture
                .app
                .invoke_on(&fixture.store, function, &event.build())
                .await
        }
    };
    let read = lost(
        "GetItem",
        Function::GetUser,
        EventBuilder::get(&fixture.ada),
    )
    .await;
    assert_eq!(read.status, 200, "a lost read is read again: {read:?}");
    let rename = EventBuilder::patch(&fixture.ada, r#"{"name": "Ada Byron"}"#);
    let renamed = lost("UpdateItem", Function::UpdateUser, rename).await;
    assert_eq!(renamed.body["name"], "Ada Byron", "{renamed:?}");
    let moving = EventBuilder::patch(&fixture.ada, r#"{"email": "ada.byron@example.com"}"#)
        .header("if-match", renamed.header("etag").expect("an etag"));
    let moved = lost(TRANSACT, Function::UpdateUser, moving).await;
    assert_eq!(moved.body["email"], "ada.byron@example.com", "{moved:?}");
    let users = assert_one_email_item_per_user(&fixture.app).await;
    assert_eq!(
        users[&fixture.ada].version, 3,
        "two changes, each made once"
    );

    fixture
        .proxy
        .inject(Some("DeleteItem"), Fault::LoseAnswer, Some(1));
    let created = fixture.send(Request::Forget).await;
    assert_eq!(created.status, 201, "{created:?}");
    fixture
        .proxy
        .inject(Some(TRANSACT), Fault::LoseAnswer, Some(1));
    let erased = fixture.send(Request::Erase).await;
    assert_eq!(erased.status, 204, "{erased:?}");
    assert_eq!(fixture.proxy.injected(), 5, "each answer was lost once");
    let users = assert_one_email_item_per_user(&fixture.app).await;
    assert_eq!(users.len(), 1, "only the new user");
    let items = fixture.app.snapshot().await;
    assert_eq!(items.len(), 3, "a user, its email, its key: {items:#?}");
}

/// A conditional rename whose `UpdateItem` committed but whose answer was lost: the SDK's retry
/// finds the version moved on, and the service reads the user again and compares its `if-match`
/// with the version its own write made. The change was made, so `412` (which says nothing
/// changed) is the wrong answer; the contract's is the `200` of the user as it now is.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_lost_after_a_conditional_rename_is_not_a_412() {
    let fixture = Fixture::new().await;
    fixture
        .proxy
        .inject(Some("UpdateItem"), Fault::LoseAnswer, Some(1));
    let reply = fixture.send(Request::Rename).await;
    let users = assert_one_email_item_per_user(&fixture.app).await;
    assert_eq!(users[&fixture.ada].name, "Ada King", "the rename committed");
    assert_eq!(
        (reply.status, &reply.body["name"]),
        (200, &Value::from("Ada King")),
        "a PATCH with if-match \"v1\" whose write committed answered {reply:?}"
    );
}

/// A server that refuses a rename without returning the item (no `ALL_OLD`): the user is read,
/// so an existing user is renamed, not answered `404`.
#[tokio::test(flavor = "multi_thread")]
async fn a_rename_refused_without_its_item_reads_the_user() {
    let fixture = Fixture::new().await;
    fixture
        .proxy
        .inject(Some("UpdateItem"), error(400, CONDITION), Some(1));
    let reply = fixture.send(Request::Rename).await;
    assert_eq!(
        (reply.status, &reply.body["name"]),
        (200, &Value::from("Ada King")),
        "{reply:?}"
    );
    let calls = fixture.proxy.operations();
    assert_eq!(
        calls[calls.len() - 3..],
        ["UpdateItem", "GetItem", "UpdateItem"]
    );
}
