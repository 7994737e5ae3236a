//! What a function process writes to its log: never an email, a name or a body, at any level.

use base64::Engine;
use users_tests::process::FunctionProcess;
use users_tests::{App, EventBuilder, Function};
use xtask::fault_proxy::{Fault, FaultProxy};

const NAME: &str = "Zelda Quartermaine";
const EMAIL: &str = "Zelda.Quartermaine@Example.org";
const OTHER_EMAIL: &str = "other@example.org";

fn body(email: &str) -> String {
    serde_json::json!({ "name": NAME, "email": email }).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn creates_log_no_email_name_or_body_at_any_level() {
    let app = App::new().await;
    let proxy = FaultProxy::start(app.endpoint())
        .await
        .expect("the fault proxy starts");
    let requests = [
        EventBuilder::create(&body(EMAIL)).build(),
        EventBuilder::create(&body(EMAIL))
            .header("idempotency-key", "logged")
            .build(),
        EventBuilder::create(&body("Zelda.Quartermaine@")).build(),
        EventBuilder::create(&body(EMAIL)).base64().build(),
        EventBuilder::create("{\"name\": \"Zelda Quartermaine\", \"email\": ").build(),
    ];
    let mut secrets = vec![
        NAME.to_owned(),
        "Quartermaine".to_owned(),
        EMAIL.to_owned(),
        EMAIL.to_lowercase(),
        OTHER_EMAIL.to_owned(),
    ];
    for event in &requests {
        let body = event["body"].as_str().expect("a body");
        secrets.push(body.to_owned());
        secrets.push(base64::engine::general_purpose::STANDARD.encode(body));
    }

    for (format, level) in [("JSON", "TRACE"), ("JSON", "INFO"), ("Text", "DEBUG")] {
        let env = [
            ("AWS_LAMBDA_LOG_FORMAT", format),
            ("AWS_LAMBDA_LOG_LEVEL", level),
        ];
        let process =
            FunctionProcess::start(&app, Function::CreateUser, &proxy.endpoint, &env).await;
        let mut statuses = Vec::new();
        for event in &requests {
            statuses.push(process.invoke(event).await.status);
        }
        proxy.inject(None, Fault::internal_server_error(), None);
        let failed = EventBuilder::create(&body(OTHER_EMAIL)).build();
        statuses.push(process.invoke(&failed).await.status);
        proxy.clear();
        let log = process.stop().await;

        let expected = if format == "JSON" && level == "TRACE" {
            [201, 409, 422, 409, 400, 503]
        } else {
            [409, 409, 422, 409, 400, 503]
        };
        assert_eq!(statuses, expected, "{format} at {level}");
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{format} logs at {level} reveal {secret:?}:\n{log}"
            );
        }
        assert_eq!(
            log.matches("request done").count(),
            requests.len() + 1,
            "one summary line per request, {format} at {level}:\n{log}"
        );
        if format == "JSON" {
            for line in log.lines() {
                assert!(
                    serde_json::from_str::<serde_json::Value>(line).is_ok(),
                    "not a JSON line: {line}"
                );
            }
        }
    }
}
