//! The test harness: one DynamoDB-compatible server per test binary, a fresh pair of tables
//! (created from `template.yaml`) per test, and the real handlers called with API Gateway
//! events.
//!
//! The server is the embedded Dynoxide unless `AWS_ENDPOINT_URL_DYNAMODB` names another one,
//! such as the official DynamoDB Local.

pub mod events;
pub mod model;
pub mod process;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::http::HeaderMap;
use lambda_http::{Body, Context, LambdaEvent};
use serde_json::Value;
use users::clock::Clock;
use users::cursor::CursorKey;
use users::domain::User;
use users::dynamodb::{DynamoStore, Tables};
use users::http::{Request, Response};
use users::store::UserStore;
use users::{handlers, idempotency};
use xtask::fault_proxy::FaultProxy;

/// The function timeout of template.yaml: the deadline each test invocation gets.
pub(crate) const TIMEOUT: Duration = handlers::FUNCTION_TIMEOUT;

static ENDPOINT: LazyLock<String> = LazyLock::new(|| {
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
        return endpoint;
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test server");
        runtime.block_on(async move {
            let served = xtask::embedded::serve(None, 0, std::future::pending()).await;
            let (address, server) = served.expect("Dynoxide starts");
            sender
                .send(format!("http://{address}"))
                .expect("the harness waits for the address");
            server.await.expect("Dynoxide runs until the tests end");
        });
    });
    receiver.recv().expect("Dynoxide reports its address")
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    CreateUser,
    GetUser,
    ListUsers,
    UpdateUser,
    DeleteUser,
}

impl Function {
    pub const ALL: [Self; 5] = [
        Self::CreateUser,
        Self::GetUser,
        Self::ListUsers,
        Self::UpdateUser,
        Self::DeleteUser,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::CreateUser => "create-user",
            Self::GetUser => "get-user",
            Self::ListUsers => "list-users",
            Self::UpdateUser => "update-user",
            Self::DeleteUser => "delete-user",
        }
    }
}

/// A function's answer, decoded.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// The system's time, moved ahead by what [`TestClock::advance`] added; shared by its clones.
#[derive(Debug, Clone, Default)]
pub struct TestClock {
    ahead_ms: Arc<AtomicU64>,
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).expect("a test moves the clock by less than ages");
        self.ahead_ms.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_millis(self.ahead_ms.load(Ordering::SeqCst))
    }
}

/// The service on its own fresh tables.
pub struct App {
    pub store: DynamoStore,
    pub client: Client,
    pub tables: Tables,
    pub cursor_key: CursorKey,
    /// The clock create-user reads: the system's, until a test moves it.
    pub clock: TestClock,
}

impl App {
    pub async fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let client = xtask::local_client(&ENDPOINT);
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default();
        let suffix = format!(
            "{}-{run}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let template = xtask::template::Template::load(&workspace_root().join("template.yaml"))
            .expect("template.yaml loads");
        let mut names = Vec::new();
        for table in template.tables().expect("template.yaml defines tables") {
            let name = format!("{}-{suffix}", table.logical_id);
            table
                .create(&client, &name)
                .await
                .expect("the table is created");
            names.push((table.logical_id, name));
        }
        let name_of = |id: &str| {
            names
                .iter()
                .find(|(logical, _)| logical == id)
                .map(|(_, n)| n.clone())
                .expect("table in template")
        };
        let tables = Tables {
            users: name_of("UsersTable"),
            idempotency: name_of("IdempotencyTable"),
        };
        Self {
            store: DynamoStore::new(client.clone(), tables.clone()),
            client,
            tables,
            cursor_key: CursorKey::new(xtask::LOCAL_CURSOR_SECRET.as_bytes()).expect("a valid key"),
            clock: TestClock::default(),
        }
    }

    /// The DynamoDB-compatible server the tables are on.
    pub fn endpoint(&self) -> &str {
        &ENDPOINT
    }

    /// The store on these tables, reached through a proxy that injects faults on demand.
    pub async fn behind_fault_proxy(&self) -> (FaultProxy, DynamoStore) {
        let proxy = FaultProxy::start(&ENDPOINT)
            .await
            .expect("the fault proxy starts");
        let client = xtask::local_client(&proxy.endpoint);
        (proxy, DynamoStore::new(client, self.tables.clone()))
    }

    /// Invokes `function`'s handler with an API Gateway event, as Lambda would.
    pub async fn invoke(&self, function: Function, event: &Value) -> Reply {
        self.invoke_on(&self.store, function, event).await
    }

    /// Invokes `function`'s handler on another store.
    pub async fn invoke_on(
        &self,
        store: &impl UserStore,
        function: Function,
        event: &Value,
    ) -> Reply {
        self.invoke_with(store, function, event, deadline_in(TIMEOUT))
            .await
    }

    /// Invokes `function`'s handler on `store`, with the invocation's deadline in milliseconds
    /// since the epoch, as the Runtime API gives it.
    pub async fn invoke_with(
        &self,
        store: &impl UserStore,
        function: Function,
        event: &Value,
        deadline_ms: u64,
    ) -> Reply {
        let request: Request =
            serde_json::from_value(event.clone()).expect("an API Gateway HTTP API event");
        let event = LambdaEvent::new(request, invocation(deadline_ms));
        let response = match function {
            Function::CreateUser => handlers::create_user(store, &self.clock, event).await,
            Function::GetUser => handlers::get_user(store, event).await,
            Function::ListUsers => handlers::list_users(store, &self.cursor_key, event).await,
            Function::UpdateUser => handlers::update_user(store, &self.clock, event).await,
            Function::DeleteUser => handlers::delete_user(store, event).await,
        };
        decode(response.unwrap_or_else(|never| match never {}))
    }

    /// Stores a user as create-user would, bypassing the HTTP layer.
    pub async fn seed_user(&self, user: &User) {
        self.store
            .insert(user, None)
            .await
            .expect("the seed user is stored");
    }

    /// Removes a user and its email's reservation straight from the table, as someone working
    /// outside the API would, leaving the idempotency record of its create behind.
    pub async fn erase_outside_the_api(&self, id: &str, canonical_email: &str) {
        for pk in [format!("USER#{id}"), format!("EMAIL#{canonical_email}")] {
            self.client
                .delete_item()
                .table_name(&self.tables.users)
                .key("pk", AttributeValue::S(pk))
                .send()
                .await
                .expect("deleted outside the API");
        }
    }

    /// Holds `event`'s idempotency key for its body for `time_left`, as a request of the earlier
    /// release (which claimed a key before its create) still running would.
    pub async fn seed_in_flight(&self, event: &Value, time_left: Duration) {
        let key = event["headers"]["idempotency-key"]
            .as_str()
            .expect("an idempotency-key header");
        let key = idempotency::IdempotencyKey::parse(key.as_bytes()).expect("a valid key");
        let body = event["body"].as_str().unwrap_or_default().as_bytes();
        let now = self.clock.now();
        let user = users::domain::UserId::generate(now);
        let idempotent = idempotency::Idempotent {
            key: &key,
            caller: None,
            body,
        };
        let request = idempotency::ClaimRequest::new(idempotent, user, now);
        let millis = |at: SystemTime| {
            let since = at.duration_since(UNIX_EPOCH).expect("after 1970");
            AttributeValue::N(since.as_millis().to_string())
        };
        let expires_at = request.expires_at().duration_since(UNIX_EPOCH);
        let expires_at = expires_at.expect("after 1970").as_secs().to_string();
        self.client
            .put_item()
            .table_name(&self.tables.idempotency)
            .item("pk", AttributeValue::S(request.scoped_key))
            .item("fingerprint", AttributeValue::S(request.fingerprint))
            .item("state", AttributeValue::S("in_progress".into()))
            .item("user_id", AttributeValue::S(user.to_string()))
            .item("in_flight_until", millis(now + time_left))
            .item("expires_at", AttributeValue::N(expires_at))
            .send()
            .await
            .expect("the record is stored");
    }

    /// Every item of both tables, to prove what a request left behind.
    pub async fn snapshot(&self) -> Vec<String> {
        let mut items = Vec::new();
        for table in [&self.tables.users, &self.tables.idempotency] {
            let mut start = None;
            loop {
                let page = self
                    .client
                    .scan()
                    .table_name(table)
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .expect("the table scans");
                items.extend(page.items().iter().map(|item| {
                    let mut fields: Vec<String> =
                        item.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    fields.sort();
                    format!("{table}: {}", fields.join(", "))
                }));
                start = page.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        items.sort();
        items
    }
}

/// The context Lambda gives an invocation: a request id of its own, and `deadline_ms`
/// (milliseconds since the epoch).
pub(crate) fn invocation(deadline_ms: u64) -> Context {
    let mut context = Context::default();
    context.request_id = format!(
        "test-{}",
        users::domain::UserId::generate(SystemTime::now())
    );
    context.deadline = deadline_ms;
    context
}

/// The deadline of an invocation that has `time_left`.
pub fn deadline_in(time_left: Duration) -> u64 {
    let deadline = SystemTime::now() + time_left;
    deadline
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// A function's API Gateway response, decoded and checked to be JSON text (or, for a `204`,
/// no body at all, which decodes to `null`).
pub(crate) fn decode(response: Response) -> Reply {
    let text = match response.body {
        Some(Body::Text(text)) => text,
        None if response.status_code == 204 => "null".to_owned(),
        other => panic!("responses are JSON text, got {other:?}"),
    };
    assert!(
        !response.is_base64_encoded,
        "JSON responses are not base64-encoded"
    );
    Reply {
        status: u16::try_from(response.status_code).expect("an HTTP status"),
        headers: response.headers,
        body: serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the body is JSON ({e}): {text}")),
    }
}

/// The user id whose read panics in the `panicking-get-user` build: the largest ULID, which the
/// service never generates before the year 10889.
pub const PANIC_ID: &str = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ";

pub fn workspace_root() -> PathBuf {
    xtask::workspace_root()
}

/// The events of `events/<function>/`, in name order, with the status each must produce
/// (the first three characters of its name).
pub fn events(function: Function) -> Vec<(PathBuf, u16, Value)> {
    let dir = workspace_root().join("events").join(function.name());
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let status = expected_status(&path);
            (path.clone(), status, read_event(&path))
        })
        .collect()
}

pub fn read_event(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

pub fn event(function: Function, name: &str) -> Value {
    read_event(
        &workspace_root()
            .join("events")
            .join(function.name())
            .join(format!("{name}.json")),
    )
}

fn expected_status(path: &Path) -> u16 {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.get(..3)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{name} does not start with the status it must produce"))
}

/// An API Gateway HTTP API event built from one of the files in `events/`, with another
/// method, path, query, headers or body.
pub struct EventBuilder(Value);

impl EventBuilder {
    pub fn create(body: &str) -> Self {
        let mut builder = Self(event(Function::CreateUser, "201-create"));
        builder.0["body"] = Value::from(body);
        builder.0["headers"]["content-length"] = Value::from(body.len().to_string());
        builder
    }

    pub fn get(id: &str) -> Self {
        Self(event(Function::GetUser, "200-known-id")).path_id(id)
    }

    /// A `PATCH /users/{id}` with `body`, as JSON.
    pub fn patch(id: &str, body: &str) -> Self {
        let mut builder = Self(event(Function::UpdateUser, "200-rename"));
        builder.0["body"] = Value::from(body);
        builder.0["headers"]["content-length"] = Value::from(body.len().to_string());
        builder.path_id(id)
    }

    pub fn delete(id: &str) -> Self {
        Self(event(Function::DeleteUser, "204-delete")).path_id(id)
    }

    fn path_id(mut self, id: &str) -> Self {
        self.0["rawPath"] = Value::from(format!("/users/{id}"));
        self.0["requestContext"]["http"]["path"] = Value::from(format!("/users/{id}"));
        self.0["pathParameters"]["id"] = Value::from(id);
        self
    }

    pub fn list(query: &str) -> Self {
        let mut builder = Self(event(Function::ListUsers, "200-first-page"));
        builder.0["rawQueryString"] = Value::from(query);
        builder
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.0["headers"][name] = Value::from(value);
        self
    }

    /// Signs the request in as `sub`, as API Gateway's JWT authorizer passes it on.
    pub fn caller(mut self, sub: &str) -> Self {
        self.0["requestContext"]["authorizer"] = serde_json::json!({
            "jwt": { "claims": { "sub": sub, "token_use": "access" }, "scopes": null }
        });
        self
    }

    pub fn base64(mut self) -> Self {
        use base64::Engine;
        let body = self.0["body"].as_str().unwrap_or_default().to_owned();
        self.0["body"] = Value::from(base64::engine::general_purpose::STANDARD.encode(body));
        self.0["isBase64Encoded"] = Value::from(true);
        self
    }

    pub fn build(self) -> Value {
        self.0
    }
}
