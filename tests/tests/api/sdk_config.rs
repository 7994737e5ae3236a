//! The functions' AWS configuration as Lambda's environments give it, each function run as its
//! own process: credentials from the container endpoint when the environment holds none (as
//! SnapStart and Lambda Managed Instances give them), fetched at the first request rather than
//! in init, `AWS_MAX_ATTEMPTS` honoured, and the connection opened in init only where the
//! environment was initialised ahead of traffic.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use users_tests::process::FunctionProcess;
use users_tests::{App, EventBuilder, Function};
use xtask::fault_proxy::{Fault, FaultProxy};

/// A user id no one has: a get of it reaches DynamoDB and answers 404.
const NOBODY: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

/// A container credentials endpoint on 127.0.0.1, recording the `authorization` header of each
/// request it answers.
struct CredentialsEndpoint {
    uri: String,
    authorizations: Arc<Mutex<Vec<String>>>,
}

impl CredentialsEndpoint {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let uri = format!(
            "http://{}/2021-04-23/credentials",
            listener.local_addr().expect("an address")
        );
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&authorizations);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut chunk = [0; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(read @ 1..) => request.extend_from_slice(&chunk[..read]),
                        _ => break,
                    }
                }
                let request = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let authorization = request
                    .lines()
                    .find_map(|line| line.strip_prefix("authorization:"))
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(authorization);
                // The key id is the one every local process uses: DynamoDB Local keeps a
                // database per key id.
                let body = r#"{"AccessKeyId": "local", "SecretAccessKey": "local", "Token": "session", "Expiration": "2099-01-01T00:00:00Z"}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        Self {
            uri,
            authorizations,
        }
    }

    fn authorizations(&self) -> Vec<String> {
        self.authorizations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[tokio::test]
async fn without_keys_in_the_environment_credentials_come_from_the_container_endpoint() {
    let app = App::new().await;
    let endpoint = CredentialsEndpoint::start().await;
    let process = FunctionProcess::start(
        &app,
        Function::GetUser,
        app.endpoint(),
        &[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &endpoint.uri),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token"),
        ],
    )
    .await;
    assert!(
        endpoint.authorizations().is_empty(),
        "init fetched credentials"
    );

    for _ in 0..3 {
        let reply = process.invoke(&EventBuilder::get(NOBODY).build()).await;
        assert_eq!(reply.status, 404, "{}", reply.body);
    }

    // Fetched once, then cached until they near their expiry.
    assert_eq!(endpoint.authorizations(), ["container-token"]);
    process.stop().await;
}

#[tokio::test]
async fn aws_max_attempts_bounds_the_sdk_retries() {
    let app = App::new().await;
    let proxy = FaultProxy::start(app.endpoint())
        .await
        .expect("the fault proxy starts");
    let get = EventBuilder::get(NOBODY).build();
    for (attempts, status) in [(None, 404), (Some("1"), 503)] {
        let mut env = Vec::new();
        if let Some(attempts) = attempts {
            env.push(("AWS_MAX_ATTEMPTS", attempts));
        }
        let process = FunctionProcess::start(&app, Function::GetUser, &proxy.endpoint, &env).await;
        proxy.inject(Some("GetItem"), Fault::throttling(), Some(1));

        let reply = process.invoke(&get).await;

        assert_eq!(reply.status, status, "AWS_MAX_ATTEMPTS={attempts:?}");
        proxy.clear();
        process.stop().await;
    }
}

/// An environment initialised ahead of traffic opens its DynamoDB connection in init, with a
/// call that reads nothing; one initialised on demand leaves it to its first request, which
/// follows at once.
#[tokio::test]
async fn only_environments_initialised_ahead_of_traffic_connect_in_init() {
    let app = App::new().await;
    let proxy = FaultProxy::start(app.endpoint())
        .await
        .expect("the fault proxy starts");
    let cases = [
        (Function::GetUser, "on-demand", &[][..]),
        (Function::GetUser, "provisioned-concurrency", &["GetItem"]),
        (Function::ListUsers, "lambda-managed-instances", &["Query"]),
    ];
    for (function, initialisation, calls) in cases {
        let env = [("AWS_LAMBDA_INITIALIZATION_TYPE", initialisation)];
        let before = proxy.operations().len();
        let process = FunctionProcess::start(&app, function, &proxy.endpoint, &env).await;
        assert_eq!(
            proxy.operations()[before..],
            *calls,
            "{function:?} {initialisation}"
        );
        let output = process.stop().await;
        assert!(!output.contains("DynamoDB"), "a warning: {output}");
    }
    assert!(app.snapshot().await.is_empty(), "nothing written");
}
