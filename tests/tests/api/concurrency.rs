//! Several requests at once in one execution environment, as Lambda Managed Instances send them
//! (`AWS_LAMBDA_MAX_CONCURRENCY`): a function process serves other requests while one waits on
//! DynamoDB, and every log line and metric document names the request it belongs to.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::join_all;
use serde_json::{Value, json};
use users_tests::process::FunctionProcess;
use users_tests::{App, EventBuilder, Function, Reply};
use xtask::fault_proxy::{Fault, FaultProxy, Gate};

/// A create with an idempotency key: one transaction, the user, its email and its key.
fn create(n: usize) -> Value {
    let body =
        json!({"name": format!("Concurrent {n}"), "email": format!("concurrent.{n}@example.com")});
    EventBuilder::create(&body.to_string())
        .header("idempotency-key", &format!("concurrent-{n}"))
        .build()
}

/// Waits, a bounded time, until the proxy holds a request.
async fn until_held(proxy: &FaultProxy) {
    for _ in 0..200 {
        if proxy.injected() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no request reached the proxy");
}

#[tokio::test]
async fn one_environment_answers_others_while_a_request_waits_on_dynamodb() {
    let app = App::new().await;
    let proxy = FaultProxy::start(app.endpoint())
        .await
        .expect("the fault proxy starts");
    let process = FunctionProcess::start(
        &app,
        Function::CreateUser,
        &proxy.endpoint,
        &[
            ("AWS_LAMBDA_MAX_CONCURRENCY", "4"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ],
    )
    .await;
    // Every attempt of the first request's write waits until the others are answered.
    let gate = Gate::default();
    proxy.inject(
        Some("TransactWriteItems"),
        Fault::Hold {
            gate: gate.clone(),
            containing: "concurrent.0@".into(),
        },
        None,
    );

    let first = create(0);
    let replies: Vec<Reply> = {
        let mut held = std::pin::pin!(process.invoke(&first));
        tokio::select! {
            reply = &mut held => panic!("answered while its write was held: {}", reply.body),
            () = until_held(&proxy) => {}
        }
        let serving = &process;
        let others =
            join_all((1..4).map(|n| async move { serving.invoke(&create(n)).await })).await;
        // Only an environment that serves requests concurrently answered them while the first
        // request was still waiting on its write.
        assert!(
            (&mut held).now_or_never().is_none(),
            "the first request was answered before the others"
        );
        gate.open();
        std::iter::once(held.await).chain(others).collect()
    };
    for reply in &replies {
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    assert_lines_name_their_request(&process.stop().await, &replies);
}

/// Every request's summary line and metric documents carry its own request id, and what they
/// report is that request's: its status, one `UsersCreated`, and the latency of its own
/// DynamoDB call.
fn assert_lines_name_their_request(output: &str, replies: &[Reply]) {
    let lines: Vec<Value> = output
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let mut reported: HashMap<&str, Vec<String>> = HashMap::new();
    for reply in replies {
        let id = reply.header("x-request-id").expect("a request id");
        let summaries: Vec<&Value> = lines
            .iter()
            .filter(|line| line["message"] == "request done" && line["requestId"] == id)
            .collect();
        assert_eq!(summaries.len(), 1, "{id}: {output}");
        assert_eq!(summaries[0]["status"], 201);
        reported.insert(id, Vec::new());
    }
    for document in lines.iter().filter(|line| line.get("_aws").is_some()) {
        let id = document["requestId"].as_str().unwrap_or_default();
        let Some(metrics) = reported.get_mut(id) else {
            continue;
        };
        if document.get("UsersCreated").is_some() {
            metrics.push("UsersCreated".into());
        }
        if let Some(samples) = document["DynamoDbLatency"].as_array() {
            let operation = document["operation"].as_str().unwrap_or_default();
            metrics.extend(samples.iter().map(|_| operation.to_owned()));
        }
    }
    for (id, mut metrics) in reported {
        metrics.sort();
        assert_eq!(
            metrics,
            ["TransactWriteItems", "UsersCreated"],
            "the metrics of {id}: {output}"
        );
    }
}
