//! The functions' own binaries, each in its own process polling its own Runtime API, as Lambda
//! runs them: for races between execution environments and for what a process writes to its log.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use xtask::runtime_api::{Outcome, RuntimeApi};

use crate::{App, Function, Reply, TIMEOUT, decode, workspace_root};

/// The dev-profile binaries, built once per test binary by the cargo that runs the tests.
static BINARIES: LazyLock<Result<PathBuf, String>> = LazyLock::new(|| {
    let root = workspace_root();
    let mut build = xtask::cargo();
    build.current_dir(&root).args(["build", "--quiet"]);
    for function in xtask::all_functions() {
        build.args(["--bin", function]);
    }
    let status = build.status().map_err(|e| format!("cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the functions failed: {status}"));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("debug"))
});

/// One execution environment of a function.
pub struct FunctionProcess {
    api: RuntimeApi,
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl FunctionProcess {
    /// Starts `function` on `app`'s tables, its DynamoDB at `endpoint`, with `env` added to
    /// what Lambda sets, and waits until it asks for its first invocation.
    pub async fn start(
        app: &App,
        function: Function,
        endpoint: &str,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_binary(app, function.name(), endpoint, env).await
    }

    /// Starts the function built as `binary`, as [`FunctionProcess::start`] does.
    pub async fn start_binary(
        app: &App,
        binary: &str,
        endpoint: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let directory = tokio::task::spawn_blocking(|| BINARIES.clone())
            .await
            .expect("the build finishes")
            .expect("the functions build");
        Self::start_program(&directory.join(binary), app, binary, endpoint, env).await
    }

    /// As [`FunctionProcess::start_binary`], with another build of the function `name`:
    /// `program`.
    pub async fn start_program(
        program: &std::path::Path,
        app: &App,
        name: &str,
        endpoint: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let api = RuntimeApi::start(TIMEOUT)
            .await
            .expect("the Runtime API starts");
        let mut command = Command::new(program);
        command
            .env_clear()
            .envs(xtask::LOCAL_AWS_ENV)
            .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
            .env("USERS_TABLE", &app.tables.users)
            .env("IDEMPOTENCY_TABLE", &app.tables.idempotency)
            .env("CURSOR_SECRET", xtask::LOCAL_CURSOR_SECRET)
            .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("the function starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let output = Arc::clone(&output);
            readers.push(tokio::spawn(async move {
                let mut stream = stream;
                let mut chunk = [0; 4096];
                while let Ok(read @ 1..) = stream.read(&mut chunk).await {
                    output
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&chunk[..read]);
                }
            }));
        }
        api.first_poll(Duration::from_secs(30))
            .await
            .expect("the function finishes its init");
        Self {
            api,
            child,
            output,
            readers,
        }
    }

    /// Hands `event` to the process and decodes the API Gateway response it posts back.
    pub async fn invoke(&self, event: &Value) -> Reply {
        decode(
            serde_json::from_value(self.invoke_json(event).await).expect("an API Gateway response"),
        )
    }

    /// Hands `event` to the process and returns the JSON it posts back.
    pub async fn invoke_json(&self, event: &Value) -> Value {
        let outcome = self
            .api
            .invoke(event.to_string(), TIMEOUT + Duration::from_secs(5))
            .await
            .expect("the function answers");
        let Outcome::Response(body) = outcome else {
            panic!("the function failed: {outcome:?}");
        };
        serde_json::from_slice(&body).expect("a JSON answer")
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// Kills the process, as Lambda ends an execution environment, and returns everything it
    /// wrote.
    pub async fn stop(mut self) -> String {
        self.child.kill().await.expect("the function stops");
        for reader in self.readers.drain(..) {
            reader.await.expect("the output is read to its end");
        }
        self.output()
    }
}
