//! Would each stack see its failures? For every samconfig.toml environment, the offline model
//! (`users_tests::model`) runs the five functions as processes with the environment Lambda would
//! give them there (its log format and level included), drives minutes of traffic through them,
//! keeps what Lambda's log-level filter keeps, and evaluates the template's own metric filters,
//! the functions' metric documents and Lambda's and API Gateway's metrics against every alarm:
//! healthy traffic fires none, one stray 503 rolls nothing back, and a failing new version, a
//! panic, Lambda's throttling and a hot index each fire their alarm, naming the function and the
//! version it judges.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};
use users_tests::model::{Deployment, Firing, Metrics, lambda_logs};
use users_tests::process::FunctionProcess;
use users_tests::{App, EventBuilder, Function, PANIC_ID};
use xtask::fault_proxy::{Fault, FaultProxy};

/// The panicking build of get-user, beside the functions' own.
const PANICKING_GET_USER: &str = env!("CARGO_BIN_EXE_panicking-get-user");

/// One request of a minute: the function (on its panicking build when `panics`), whether
/// DynamoDB fails under it, and the status it must get.
struct Call {
    function: Function,
    event: Value,
    status: u16,
    fault: Option<Fault>,
    panics: bool,
}

fn call(function: Function, event: Value, status: u16) -> Call {
    Call {
        function,
        event,
        status,
        fault: None,
        panics: false,
    }
}

/// A request that DynamoDB fails (a server error, after the SDK's retries): 503.
fn failing(function: Function, event: Value) -> Call {
    Call {
        fault: Some(Fault::internal_server_error()),
        ..call(function, event, 503)
    }
}

fn body(name: &str, email: &str) -> String {
    json!({ "name": name, "email": email }).to_string()
}

/// Users made outside the model's traffic, for the minute's reads and changes.
struct Seeded {
    ids: Vec<String>,
    email: String,
}

async fn seed(app: &App, tag: &str) -> Seeded {
    let mut ids = Vec::new();
    for n in 0..3 {
        let event =
            EventBuilder::create(&body("Seed", &format!("seed-{tag}-{n}@example.com"))).build();
        let reply = app.invoke(Function::CreateUser, &event).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        ids.push(reply.body["id"].as_str().expect("an id").to_owned());
    }
    Seeded {
        ids,
        email: format!("seed-{tag}-0@example.com"),
    }
}

const UNKNOWN: &str = "01JD3F5Q8K2X7V9M4T6B1N0C8Z";

/// A minute of healthy traffic: successes and client errors on every function.
fn healthy(seeded: &Seeded, tag: &str) -> Vec<Call> {
    let [a, b, _] = [&seeded.ids[0], &seeded.ids[1], &seeded.ids[2]];
    let create = |email: &str| EventBuilder::create(&body("Ada", email)).build();
    vec![
        call(
            Function::CreateUser,
            create(&format!("new-{tag}-1@example.com")),
            201,
        ),
        call(
            Function::CreateUser,
            create(&format!("new-{tag}-2@example.com")),
            201,
        ),
        call(Function::CreateUser, create(&seeded.email), 409),
        call(Function::CreateUser, create("not an address"), 422),
        call(Function::GetUser, EventBuilder::get(a).build(), 200),
        call(Function::GetUser, EventBuilder::get(b).build(), 200),
        call(Function::GetUser, EventBuilder::get(UNKNOWN).build(), 404),
        call(Function::GetUser, EventBuilder::get("bad").build(), 400),
        call(Function::ListUsers, EventBuilder::list("").build(), 200),
        call(
            Function::ListUsers,
            EventBuilder::list("limit=1").build(),
            200,
        ),
        call(
            Function::ListUsers,
            EventBuilder::list("cursor=forged").build(),
            400,
        ),
        call(
            Function::UpdateUser,
            EventBuilder::patch(a, r#"{"name":"Ada King"}"#).build(),
            200,
        ),
        call(
            Function::UpdateUser,
            EventBuilder::patch(a, r#"{"name":"Ada"}"#)
                .header("if-match", "\"stale\"")
                .build(),
            412,
        ),
        call(
            Function::UpdateUser,
            EventBuilder::patch(UNKNOWN, r#"{"name":"Ada"}"#).build(),
            404,
        ),
        call(Function::DeleteUser, EventBuilder::delete(b).build(), 204),
        call(Function::DeleteUser, EventBuilder::delete(b).build(), 404),
    ]
}

/// A request of each function that DynamoDB fails.
fn one_failure_each(seeded: &Seeded, tag: &str, n: usize) -> Vec<Call> {
    let [a, _, c] = [&seeded.ids[0], &seeded.ids[1], &seeded.ids[2]];
    vec![
        failing(
            Function::CreateUser,
            EventBuilder::create(&body("Ada", &format!("failing-{tag}-{n}@example.com"))).build(),
        ),
        failing(Function::GetUser, EventBuilder::get(a).build()),
        failing(Function::ListUsers, EventBuilder::list("").build()),
        failing(
            Function::UpdateUser,
            EventBuilder::patch(a, r#"{"name":"Ada"}"#).build(),
        ),
        failing(Function::DeleteUser, EventBuilder::delete(c).build()),
    ]
}

/// One environment's stack under the model, on fresh tables behind a fault proxy.
struct Stack {
    deployment: Deployment,
    app: App,
    proxy: FaultProxy,
    /// Every line Lambda kept of the functions' output so far.
    kept: std::sync::Mutex<Vec<String>>,
}

impl Stack {
    async fn new(deployment: Deployment) -> Self {
        let app = App::new().await;
        let proxy = FaultProxy::start(app.endpoint())
            .await
            .expect("the fault proxy starts");
        Self {
            deployment,
            app,
            proxy,
            kept: std::sync::Mutex::default(),
        }
    }

    /// Starts `function` with the environment Lambda gives it in this stack, on the local tables
    /// and cursor key (the deployed ones name resources that exist only in AWS).
    async fn start(&self, function: Function, panics: bool) -> FunctionProcess {
        let deployed = self.deployment.function(function.name());
        let local = [
            "USERS_TABLE",
            "IDEMPOTENCY_TABLE",
            "CURSOR_SECRET",
            "CURSOR_PREVIOUS_SECRET",
        ];
        let env: Vec<(&str, &str)> = deployed
            .environment
            .iter()
            .filter(|(name, _)| !local.contains(&name.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let endpoint = &self.proxy.endpoint;
        if panics {
            let program = PathBuf::from(PANICKING_GET_USER);
            FunctionProcess::start_program(&program, &self.app, function.name(), endpoint, &env)
                .await
        } else {
            FunctionProcess::start(&self.app, function, endpoint, &env).await
        }
    }

    /// Runs a minute of traffic, each call through API Gateway and the `live` alias, and
    /// returns its metrics once CloudWatch has read everything the functions wrote.
    async fn minute(&self, calls: Vec<Call>) -> Metrics {
        let mut metrics = Metrics::default();
        let mut processes: BTreeMap<(&'static str, bool), FunctionProcess> = BTreeMap::new();
        for call in calls {
            let key = (call.function.name(), call.panics);
            if let Entry::Vacant(slot) = processes.entry(key) {
                slot.insert(self.start(call.function, call.panics).await);
            }
            if let Some(fault) = call.fault {
                self.proxy.inject(None, fault, None);
            }
            let reply = processes[&key].invoke(&call.event).await;
            self.proxy.clear();
            assert_eq!(
                reply.status,
                call.status,
                "{}, {}: {}",
                self.deployment.environment,
                call.function.name(),
                reply.body
            );
            self.deployment
                .invoked(call.function.name(), false, &mut metrics);
            self.deployment.answered(reply.status, &mut metrics);
        }
        for ((binary, _), process) in processes {
            let output = process.stop().await;
            let kept = self.deployment.ingest(binary, &output, &mut metrics);
            self.kept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(kept);
        }
        metrics
    }
}

/// The prefix of a function's alarms: `create-user` is `CreateUser`.
fn prefix(function: Function) -> String {
    function
        .name()
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}

fn names(firing: &Firing) -> BTreeSet<String> {
    firing.keys().cloned().collect()
}

/// Checks that `alarm` fired reading `function`'s new version, by its name and version.
fn judges_the_new_version(stack: &Stack, firing: &Firing, alarm: &str, function: Function) {
    let deployed = stack.deployment.function(function.name());
    let read = &firing[alarm];
    let names_version = |dims: &BTreeMap<String, String>| {
        let by_filter = dims.get("function") == Some(&deployed.name)
            && dims.get("version") == Some(&deployed.version);
        let by_lambda = dims.get("FunctionName") == Some(&deployed.name)
            && dims.get("ExecutedVersion") == Some(&deployed.version);
        by_filter || by_lambda
    };
    assert!(
        !read.is_empty() && read.iter().all(names_version),
        "{}: {alarm} reads {read:?}, not {}'s version {}",
        stack.deployment.environment,
        deployed.name,
        deployed.version
    );
    assert!(
        deployed.rollback_alarms.iter().any(|a| a == alarm),
        "{alarm} does not roll {} back",
        function.name()
    );
}

async fn model(deployment: Deployment) {
    let env = deployment.environment.clone();
    let stack = Stack::new(deployment).await;
    let deployment = &stack.deployment;
    let namespace = deployment.stack.clone();

    // Lambda's REPORT lines (billed duration, max memory, init) are system logs at INFO.
    for (binary, function) in &deployment.functions {
        assert!(
            lambda_logs::system_kept("INFO", &function.system_log_level),
            "{env}: {binary}'s REPORT lines are dropped at {}",
            function.system_log_level
        );
    }

    // Healthy traffic, minute after minute: no alarm; the metric documents survive the level.
    let seeded = seed(&stack.app, &format!("{env}-healthy")).await;
    let metrics = stack
        .minute(healthy(&seeded, &format!("{env}-healthy")))
        .await;
    assert_eq!(
        names(&deployment.firing(&metrics, true)),
        BTreeSet::new(),
        "{env}: healthy traffic"
    );
    assert_eq!(
        metrics.total(&namespace, "UsersCreated", &[("service", "users")]),
        2.0,
        "{env}: users created"
    );
    assert_eq!(
        metrics.total(&namespace, "Errors", &[("code", "email_taken")]),
        1.0,
        "{env}"
    );
    assert_eq!(metrics.total(&namespace, "UsersDeleted", &[]), 1.0, "{env}");
    assert!(
        metrics.total(&namespace, "DynamoDbLatency", &[("operation", "Query")]) > 0.0,
        "{env}"
    );

    // One stray 503 per function, among healthy traffic: nothing rolls back, nothing fires.
    let seeded = seed(&stack.app, &format!("{env}-stray")).await;
    let mut calls = healthy(&seeded, &format!("{env}-stray"));
    calls.extend(one_failure_each(&seeded, &format!("{env}-stray"), 0));
    let metrics = stack.minute(calls).await;
    assert_eq!(
        metrics.total(&namespace, "ServerErrors", &[]),
        5.0,
        "{env}: every 5xx is counted"
    );
    assert_eq!(
        names(&deployment.firing(&metrics, false)),
        BTreeSet::new(),
        "{env}: one stray 503 each"
    );

    // A new version that keeps failing: each function's 5xx alarm fires on its version, and
    // the API's 5xx rate.
    let seeded = seed(&stack.app, &format!("{env}-incident")).await;
    let mut calls = healthy(&seeded, &format!("{env}-incident"));
    for n in 0..3 {
        calls.extend(one_failure_each(&seeded, &format!("{env}-incident"), n));
    }
    let firing = deployment.firing(&stack.minute(calls).await, true);
    let mut expected: BTreeSet<String> = Function::ALL
        .iter()
        .map(|f| format!("{}ServerErrorsAlarm", prefix(*f)))
        .collect();
    expected.insert("ApiServerErrorRateAlarm".into());
    assert_eq!(names(&firing), expected, "{env}: a failing new version");
    for function in Function::ALL {
        judges_the_new_version(
            &stack,
            &firing,
            &format!("{}ServerErrorsAlarm", prefix(function)),
            function,
        );
    }

    // A panic is a 500 that the environment survives; three of them in a minute roll back.
    let seeded = seed(&stack.app, &format!("{env}-panic")).await;
    let panicking = |id: &str, status| Call {
        panics: true,
        ..call(Function::GetUser, EventBuilder::get(id).build(), status)
    };
    let calls = vec![
        panicking(PANIC_ID, 500),
        panicking(&seeded.ids[0], 200),
        panicking(PANIC_ID, 500),
        panicking(PANIC_ID, 500),
        panicking(&seeded.ids[1], 200),
    ];
    let firing = deployment.firing(&stack.minute(calls).await, true);
    assert_eq!(
        names(&firing),
        BTreeSet::from(["GetUserServerErrorsAlarm".to_owned()]),
        "{env}: panics"
    );
    // Where it panicked survives the level filter: an ERROR line, not Rust's plain-text hook.
    let kept = stack
        .kept
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(
        kept.iter()
            .any(|line| line.contains("\"level\":\"ERROR\"") && line.contains("panicked at")),
        "{env}: no panic line kept"
    );
    judges_the_new_version(
        &stack,
        &firing,
        "GetUserServerErrorsAlarm",
        Function::GetUser,
    );

    // A burst: the stage lets through what the function's reserved concurrency can run, and
    // answers the rest 429 itself; Lambda throttles nothing.
    let list = deployment.function("list-users");
    let reserved = list.reserved_concurrency.unwrap_or(deployment.stage_burst);
    let burst = 2 * reserved.max(deployment.stage_burst);
    let admitted = burst.min(deployment.stage_burst);
    let mut metrics = stack
        .minute(
            (0..admitted.min(reserved))
                .map(|_| {
                    call(
                        Function::ListUsers,
                        EventBuilder::list("limit=1").build(),
                        200,
                    )
                })
                .collect(),
        )
        .await;
    let throttled = admitted.saturating_sub(reserved);
    for _ in 0..throttled {
        deployment.throttled("list-users", &mut metrics);
        deployment.answered(500, &mut metrics);
    }
    for _ in admitted..burst {
        deployment.answered(429, &mut metrics);
    }
    assert_eq!(
        throttled, 0,
        "{env}: the stage lets through {admitted}, beyond {reserved}"
    );
    assert_eq!(
        names(&deployment.firing(&metrics, false)),
        BTreeSet::new(),
        "{env}: a burst"
    );

    // Lambda throttling the function anyway (its reserved concurrency taken by slow requests,
    // or the account's limit): its throttles alarm fires, by function.
    let mut metrics = Metrics::default();
    deployment.throttled("list-users", &mut metrics);
    deployment.answered(500, &mut metrics);
    let firing = deployment.firing(&metrics, false);
    assert_eq!(
        names(&firing),
        BTreeSet::from(["ListUsersThrottlesAlarm".to_owned()]),
        "{env}"
    );
    assert_eq!(
        firing["ListUsersThrottlesAlarm"][0]["FunctionName"],
        list.name
    );

    // A hot index partition: DynamoDB throttles creates on ByNewest; two creates answer 503,
    // which rolls nothing back, and the table's throttle alarm fires on the index.
    let seeded = seed(&stack.app, &format!("{env}-hot")).await;
    let mut calls = healthy(&seeded, &format!("{env}-hot"));
    let injected = stack.proxy.injected();
    for n in 0..2 {
        calls.push(Call {
            fault: Some(Fault::throttling()),
            ..failing(
                Function::CreateUser,
                EventBuilder::create(&body("Ada", &format!("hot-{env}-{n}@example.com"))).build(),
            )
        });
    }
    let mut metrics = stack.minute(calls).await;
    for _ in injected..stack.proxy.injected() {
        deployment.index_write_throttled("ByNewest", &mut metrics);
    }
    let firing = deployment.firing(&metrics, false);
    assert_eq!(
        names(&firing),
        BTreeSet::from(["UsersTableThrottlesAlarm".to_owned()]),
        "{env}"
    );
    assert!(
        firing["UsersTableThrottlesAlarm"].iter().any(|dims| dims
            .get("GlobalSecondaryIndexName")
            .map(String::as_str)
            == Some("ByNewest")
            && dims.get("TableName")
                == Some(&deployment.function("create-user").environment["USERS_TABLE"])),
        "{env}: {:?}",
        firing["UsersTableThrottlesAlarm"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_environment_sees_its_failures_and_only_them() {
    let deployments = Deployment::all();
    let environments: BTreeSet<&str> = deployments.iter().map(|d| d.environment.as_str()).collect();
    assert!(
        environments.contains("prod") && environments.contains("default"),
        "{environments:?}"
    );
    // Each stack's metrics in a namespace of its own.
    let stacks: BTreeSet<&str> = deployments.iter().map(|d| d.stack.as_str()).collect();
    assert_eq!(stacks.len(), deployments.len());
    for deployment in deployments {
        model(deployment).await;
    }
}
