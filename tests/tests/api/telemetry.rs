//! What an operator sees of create-user run as Lambda runs it: JSON log lines that each carry
//! the request id, the function and `cold_start`; one summary line per request; EMF documents
//! that CloudWatch accepts; and a clean exit on SIGTERM.

use std::collections::BTreeMap;

use serde_json::Value;
use users_tests::process::FunctionProcess;
use users_tests::{App, EventBuilder, Function};

const NAMESPACE: &str = "UsersServiceTest";
const SERVICE: &str = "users-test";

/// The units the EMF specification allows.
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks one document against the EMF specification's required fields; the metric values it
/// holds, by name and dimensions.
fn emf_values(document: &Value) -> Vec<(String, BTreeMap<String, String>, Vec<f64>)> {
    let metadata = &document["_aws"];
    assert!(
        metadata["Timestamp"].is_u64(),
        "Timestamp in ms: {document}"
    );
    let directives = metadata["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics is an array");
    assert!(!directives.is_empty(), "{document}");
    let mut values = Vec::new();
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("a Namespace");
        assert!((1..=255).contains(&namespace.len()), "{namespace}");
        assert_eq!(namespace, NAMESPACE);
        let dimension_sets = directive["Dimensions"].as_array().expect("Dimensions");
        let mut dimensions = BTreeMap::new();
        for set in dimension_sets {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 30, "at most 30 dimensions: {document}");
            for name in set {
                let name = name.as_str().expect("a dimension is named by a string");
                let value = document[name]
                    .as_str()
                    .unwrap_or_else(|| panic!("dimension {name} is a string member: {document}"));
                dimensions.insert(name.to_owned(), value.to_owned());
            }
        }
        assert_eq!(dimensions.get("service").map(String::as_str), Some(SERVICE));
        for metric in directive["Metrics"].as_array().expect("Metrics") {
            let name = metric["Name"].as_str().expect("a metric Name");
            assert!((1..=1024).contains(&name.len()));
            if let Some(unit) = metric.get("Unit") {
                let unit = unit.as_str().expect("a Unit is a string");
                assert!(UNITS.contains(&unit), "unit {unit}");
            }
            let recorded = match &document[name] {
                Value::Number(n) => vec![n.as_f64().expect("a number")],
                Value::Array(many) => {
                    assert!(many.len() <= 100, "at most 100 values: {document}");
                    many.iter().map(|v| v.as_f64().expect("numbers")).collect()
                }
                other => panic!("metric {name} has no numeric member: {other}"),
            };
            values.push((name.to_owned(), dimensions.clone(), recorded));
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread")]
async fn create_user_logs_and_metrics_are_written_before_the_environment_is_killed() {
    let app = App::new().await;
    let env = [
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE),
        ("POWERTOOLS_SERVICE_NAME", SERVICE),
    ];
    let process = FunctionProcess::start(&app, Function::CreateUser, app.endpoint(), &env).await;
    let body =
        |email: &str| serde_json::json!({ "name": "Mae Jemison", "email": email }).to_string();
    let keyed = EventBuilder::create(&body("keyed@example.com"))
        .header("idempotency-key", "telemetry")
        .build();
    let requests = [
        (EventBuilder::create(&body("mae@example.com")).build(), 201),
        (EventBuilder::create(&body("MAE@example.com")).build(), 409),
        (EventBuilder::create(&body("not an address")).build(), 422),
        (keyed.clone(), 201),
        (keyed, 201),
    ];
    let mut request_ids = Vec::new();
    for (event, status) in &requests {
        let reply = process.invoke(event).await;
        assert_eq!(reply.status, *status, "{}", reply.body);
        request_ids.push(
            reply
                .header("x-request-id")
                .expect("a request id")
                .to_owned(),
        );
    }
    // Lambda kills an environment without notice when no extension is registered: everything
    // must already be written.
    let output = process.stop().await;

    let mut logs = Vec::new();
    let mut metrics = Vec::new();
    let mut documents_by_request: BTreeMap<String, usize> = BTreeMap::new();
    for line in output.lines() {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            panic!("not JSON: {line}");
        };
        if value.get("_aws").is_some() {
            metrics.extend(emf_values(&value));
            if let Some(id) = value["requestId"].as_str() {
                *documents_by_request.entry(id.to_owned()).or_default() += 1;
            }
        } else {
            logs.push(value);
        }
    }

    for (index, request_id) in request_ids.iter().enumerate() {
        let lines: Vec<&Value> = logs
            .iter()
            .filter(|line| line["requestId"] == request_id.as_str())
            .collect();
        assert!(!lines.is_empty(), "no line for {request_id}");
        for line in &lines {
            assert_eq!(line["function"], "create-user", "{line}");
            assert_eq!(line["cold_start"], index == 0, "{line}");
        }
        let summaries: Vec<_> = lines
            .iter()
            .filter(|line| line["message"] == "request done")
            .collect();
        assert_eq!(summaries.len(), 1, "one summary line: {lines:?}");
        let summary = summaries[0];
        assert_eq!(summary["route"], "POST /users");
        assert_eq!(summary["status"], requests[index].1);
        assert!(
            summary["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0),
            "{summary}"
        );
        assert_eq!(
            summary["code"].is_string(),
            requests[index].1 >= 400,
            "{summary}"
        );
    }

    let total = |name: &str, dimension: Option<(&str, &str)>| -> f64 {
        metrics
            .iter()
            .filter(|(metric, dimensions, _)| {
                metric == name
                    && dimension
                        .is_none_or(|(k, v)| dimensions.get(k).map(String::as_str) == Some(v))
            })
            .flat_map(|(_, _, values)| values)
            .sum()
    };
    // Each request's documents carry its id as a property, never as a dimension.
    for request_id in &request_ids {
        assert!(
            documents_by_request.contains_key(request_id),
            "no metric document carries {request_id}: {documents_by_request:?}"
        );
    }
    assert!(
        metrics
            .iter()
            .all(|(_, dimensions, _)| !dimensions.contains_key("requestId"))
    );
    assert_eq!(total("UsersCreated", None), 2.0);
    assert_eq!(total("IdempotentReplays", None), 1.0);
    assert_eq!(total("Errors", Some(("code", "email_taken"))), 1.0);
    assert_eq!(total("Errors", Some(("code", "validation_failed"))), 1.0);
    assert_eq!(
        total("ColdStart", Some(("function_name", "create-user"))),
        1.0
    );
    assert!(total("DynamoDbLatency", Some(("operation", "TransactWriteItems"))) > 0.0);
}
