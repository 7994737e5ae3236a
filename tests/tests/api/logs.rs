//! What a function process writes to its log: never an email, a name or a body, at any level.
//! Each of the five functions runs as a process, as deployed (`AWS_LAMBDA_LOG_FORMAT=JSON`) at
//! every level the template's `LogLevel` allows, and as `cargo xtask dev` runs it (text, at
//! TRACE), through requests that reach each of its paths: successes, a create's replay, every
//! client error it can answer, and a DynamoDB failure, which logs its cause at ERROR.

use base64::Engine;
use futures_util::future::join_all;
use serde_json::{Value, json};
use users_tests::process::FunctionProcess;
use users_tests::{App, EventBuilder, Function, workspace_root};
use xtask::fault_proxy::{Fault, FaultProxy};

const NAME: &str = "Zelda Quartermaine";
const EMAIL: &str = "Zelda.Quartermaine@Example.org";
const NEW_NAME: &str = "Zelda Featherstonehaugh";
const NEW_EMAIL: &str = "Z.Featherstonehaugh@Example.net";
const OTHER_NAME: &str = "Otto Brightwater";
const OTHER_EMAIL: &str = "Otto.Brightwater@Example.com";
const FOURTH_NAME: &str = "Wilhelmina Quartermaine";
const FOURTH_EMAIL: &str = "W.Quartermaine@Example.org";

fn body(name: &str, email: &str) -> String {
    json!({ "name": name, "email": email }).to_string()
}

/// The levels `AWS_LAMBDA_LOG_LEVEL` may take: the `AllowedValues` of template.yaml's
/// `LogLevel` parameter.
fn template_levels() -> Vec<String> {
    let template = std::fs::read_to_string(workspace_root().join("template.yaml"))
        .expect("template.yaml reads");
    let mut lines = template
        .lines()
        .skip_while(|line| line.trim() != "LogLevel:");
    lines.next().expect("a LogLevel parameter");
    let allowed = lines
        .take_while(|line| line.starts_with("    "))
        .find_map(|line| line.trim().strip_prefix("AllowedValues:"))
        .expect("LogLevel lists its AllowedValues");
    let levels: Vec<String> = allowed
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|level| level.trim().to_owned())
        .collect();
    assert!(levels.iter().any(|l| l == "TRACE"), "{levels:?}");
    levels
}

/// One request of a scenario: the status it must get, and whether DynamoDB fails under it.
struct Step {
    event: Value,
    status: u16,
    faulted: bool,
}

/// An event, built or still being built.
trait Event {
    fn event(self) -> Value;
}

impl Event for EventBuilder {
    fn event(self) -> Value {
        self.build()
    }
}

impl Event for Value {
    fn event(self) -> Value {
        self
    }
}

fn step(event: impl Event, status: u16) -> Step {
    Step {
        event: event.event(),
        status,
        faulted: false,
    }
}

fn faulted(event: impl Event) -> Step {
    Step {
        event: event.event(),
        status: 503,
        faulted: true,
    }
}

/// Fresh tables holding Zelda, made with an idempotency key, and Otto; the requests that take
/// `function` through its paths.
async fn scenario(app: &App, function: Function) -> Vec<Step> {
    let seeded = EventBuilder::create(&body(NAME, EMAIL)).header("idempotency-key", "zelda");
    let zelda = app.invoke(Function::CreateUser, &seeded.build()).await;
    let otto = EventBuilder::create(&body(OTHER_NAME, OTHER_EMAIL)).build();
    let otto = app.invoke(Function::CreateUser, &otto).await;
    assert_eq!((zelda.status, otto.status), (201, 201));
    let zelda = zelda.body["id"].as_str().expect("an id").to_owned();
    let otto = otto.body["id"].as_str().expect("an id").to_owned();
    let unknown = "01JD3F5Q8K2X7V9M4T6B1N0C8Z";
    match function {
        Function::CreateUser => {
            let keyed =
                || EventBuilder::create(&body(NEW_NAME, NEW_EMAIL)).header("idempotency-key", "k");
            vec![
                step(keyed(), 201),
                step(keyed(), 201),
                step(EventBuilder::create(&body(FOURTH_NAME, NEW_EMAIL)), 409),
                step(
                    EventBuilder::create(&body(NAME, EMAIL)).header("idempotency-key", "k"),
                    422,
                ),
                step(
                    EventBuilder::create(&body(NAME, &EMAIL.to_lowercase())),
                    409,
                ),
                step(
                    EventBuilder::create(&body(NAME, "Zelda.Quartermaine@")),
                    422,
                ),
                step(
                    EventBuilder::create(&format!("{{\"name\": \"{NAME}\", ")),
                    400,
                ),
                faulted(EventBuilder::create(&body(FOURTH_NAME, FOURTH_EMAIL))),
                step(
                    EventBuilder::create(&body(FOURTH_NAME, FOURTH_EMAIL)).base64(),
                    201,
                ),
            ]
        }
        Function::GetUser => vec![
            step(EventBuilder::get(&zelda), 200),
            step(EventBuilder::get(&otto), 200),
            step(EventBuilder::get(unknown), 404),
            faulted(EventBuilder::get(&zelda)),
        ],
        Function::ListUsers => vec![
            step(EventBuilder::list(""), 200),
            step(EventBuilder::list("limit=1"), 200),
            step(EventBuilder::list("cursor=forged"), 400),
            faulted(EventBuilder::list("")),
        ],
        Function::UpdateUser => {
            let patch = |fields: Value| EventBuilder::patch(&zelda, &fields.to_string());
            vec![
                step(
                    patch(json!({ "name": NEW_NAME })).header("if-match", "\"v1\""),
                    200,
                ),
                step(
                    patch(json!({ "email": NEW_EMAIL })).header("if-match", "\"v1\""),
                    412,
                ),
                step(patch(json!({ "email": NEW_EMAIL })), 200),
                step(patch(json!({ "email": NEW_EMAIL.to_lowercase() })), 200),
                step(patch(json!({ "email": OTHER_EMAIL.to_uppercase() })), 409),
                step(patch(json!({ "email": "Zelda.Quartermaine@" })), 422),
                step(patch(json!({ "name": NAME, "email": EMAIL })).base64(), 200),
                step(
                    EventBuilder::patch(&zelda, &format!("{{\"name\": \"{NAME}\"")),
                    400,
                ),
                step(EventBuilder::patch(unknown, &body(NAME, EMAIL)), 404),
                faulted(patch(json!({ "name": NEW_NAME }))),
            ]
        }
        Function::DeleteUser => vec![
            step(
                EventBuilder::delete(&zelda).header("if-match", "\"v9\""),
                412,
            ),
            step(EventBuilder::delete(&zelda), 204),
            step(EventBuilder::delete(&zelda), 404),
            faulted(EventBuilder::delete(&otto)),
            step(
                with_body(EventBuilder::delete(&otto), &body(NAME, EMAIL)),
                204,
            ),
        ],
    }
}

/// A DELETE that carries a body, which the function ignores.
fn with_body(event: EventBuilder, body: &str) -> Value {
    let mut event = event.header("content-type", "application/json").build();
    event["body"] = Value::from(body);
    event
}

/// Every personal string the scenarios send or store, and every body as sent and as base64.
fn secrets(steps: &[Step]) -> Vec<String> {
    let mut secrets: Vec<String> = [
        NAME,
        EMAIL,
        NEW_NAME,
        NEW_EMAIL,
        OTHER_NAME,
        OTHER_EMAIL,
        FOURTH_NAME,
        FOURTH_EMAIL,
        "Quartermaine",
        "Featherstonehaugh",
        "Brightwater",
    ]
    .iter()
    .flat_map(|s| [s.to_string(), s.to_lowercase(), s.to_uppercase()])
    .collect();
    for step in steps {
        if let Some(body) = step.event["body"].as_str().filter(|b| !b.is_empty()) {
            secrets.push(body.to_owned());
            secrets.push(base64::engine::general_purpose::STANDARD.encode(body));
        }
    }
    secrets
}

/// Runs `function`'s scenario in a process at `level`, and returns what it logged that it must
/// not have: each secret with the line that holds it.
async fn leaks(function: Function, format: &str, level: &str) -> Vec<String> {
    let app = App::new().await;
    let proxy = FaultProxy::start(app.endpoint())
        .await
        .expect("the fault proxy starts");
    let steps = scenario(&app, function).await;
    let env = [
        ("AWS_LAMBDA_LOG_FORMAT", format),
        ("AWS_LAMBDA_LOG_LEVEL", level),
    ];
    let process = FunctionProcess::start(&app, function, &proxy.endpoint, &env).await;
    let run = format!("{} logging {format} at {level}", function.name());
    for (i, step) in steps.iter().enumerate() {
        if step.faulted {
            proxy.inject(None, Fault::internal_server_error(), None);
        }
        let reply = process.invoke(&step.event).await;
        proxy.clear();
        assert_eq!(reply.status, step.status, "{run}, step {i}: {}", reply.body);
    }
    let log = process.stop().await;

    // A 5xx's summary line is written at ERROR, which every level keeps.
    let failures = steps.iter().filter(|s| s.faulted).count();
    let summaries = if ["TRACE", "DEBUG", "INFO"].contains(&level) {
        steps.len()
    } else {
        failures
    };
    assert_eq!(
        log.matches("request done").count(),
        summaries,
        "one summary line per request, {run}:\n{log}"
    );
    assert_eq!(
        log.matches("DynamoDB failed").count(),
        failures,
        "each failure logs its cause at ERROR, {run}"
    );
    if format == "JSON" {
        for line in log.lines() {
            let parsed = serde_json::from_str::<Value>(line);
            assert!(parsed.is_ok(), "not a JSON line, {run}: {line}");
        }
    }
    let secrets = secrets(&steps);
    log.lines()
        .filter_map(|line| {
            let secret = secrets.iter().find(|s| line.contains(s.as_str()))?;
            Some(format!("{run} reveals {secret:?} in: {line}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_function_logs_an_email_a_name_or_a_body_at_any_level() {
    let mut runs: Vec<(&str, String)> = template_levels()
        .into_iter()
        .map(|level| ("JSON", level))
        .collect();
    runs.push(("Text", "TRACE".to_owned()));
    let mut found = Vec::new();
    for (format, level) in &runs {
        let functions = Function::ALL.map(|function| leaks(function, format, level));
        found.extend(join_all(functions).await.into_iter().flatten());
    }
    assert!(
        found.is_empty(),
        "{} log lines hold personal data:\n{}",
        found.len(),
        found.join("\n")
    );
}
