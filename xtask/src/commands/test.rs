//! Everything CI checks, in the order that fails fastest.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::deploy_checks;
use xtask::dynamodb_local::DynamoDbLocal;
use xtask::tools;
use xtask::{LOCAL_AWS_ENV, Result, workspace_root};

/// The port the README's examples use.
const DEV_PORT: u16 = 9000;

pub fn run() -> Result<()> {
    let root = workspace_root();
    step("cargo fmt --check");
    tools::run(cargo(&root).args(["fmt", "--all", "--check"]))?;
    step("cargo clippy");
    tools::run(cargo(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ]))?;
    // Not advisories: their database is a git repository on GitHub (see deny.toml).
    step("cargo deny check: licenses, bans, sources");
    let deny = tools::cargo_deny()?;
    tools::run(
        cargo(&root)
            .args(["deny", "check", "licenses", "bans", "sources"])
            .env("PATH", tools::path_with(&[&deny])?),
    )?;

    step("template: sam validate, cfn-lint, least privilege, routes");
    deploy_checks::validate(&root)?;

    // Installed once per machine, before the tests that start it time anything.
    tools::moto()?;
    step("tests on the embedded Dynoxide");
    tools::run(
        cargo(&root)
            .args(["test", "--workspace"])
            .env_remove("AWS_ENDPOINT_URL_DYNAMODB"),
    )?;

    // The offline model of Lambda and CloudWatch reads the functions' output, not the server's
    // behaviour: it runs on Dynoxide only.
    step("tests on the official DynamoDB Local");
    let local = DynamoDbLocal::start()?;
    tools::run(
        cargo(&root)
            .args(["test", "--package", "users-tests", "--"])
            .args(["--skip", "offline_model", "--skip", "model_parts"])
            .env("AWS_ENDPOINT_URL_DYNAMODB", &local.endpoint),
    )?;
    drop(local);

    step("smoke test of `cargo xtask dev` with the README's examples");
    smoke_test(&root)?;

    step("sam build for Graviton");
    let mut skipped = Vec::new();
    if deploy_checks::build(&root)? == deploy_checks::Architecture::Arm64 {
        step("the arm64 bootstrap answers an event under qemu");
        if !deploy_checks::run_arm64(&root)? {
            skipped.push("the arm64 bootstrap was not run: qemu could not be installed");
        }
    } else {
        skipped
            .push("built x86_64, not arm64: the aarch64 standard library could not be installed");
    }
    for reason in &skipped {
        println!("SKIPPED: {reason}");
    }
    let passed = STEPS.load(Ordering::Relaxed) - skipped.len();
    if skipped.is_empty() {
        println!("\nchecks: {passed} passed, 0 failed");
    } else {
        println!(
            "\nchecks: {passed} passed, 0 failed, {} skipped",
            skipped.len()
        );
    }
    Ok(())
}

fn smoke_test(root: &Path) -> Result<()> {
    let lambda_bin = tools::cargo_lambda()?;
    if TcpStream::connect(("127.0.0.1", DEV_PORT)).is_ok() {
        return Err(format!("port {DEV_PORT} is taken: stop what listens there first").into());
    }
    let data = tempdir()?;
    let dev = Command::new(std::env::current_exe()?)
        .args(["dev", "--port", &DEV_PORT.to_string(), "--data-dir"])
        .arg(&data)
        .current_dir(root)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()?;
    let mut dev = Stopper(dev);
    wait_for_port(&mut dev.0, Duration::from_secs(900))?;

    let examples = readme_examples(root)?;
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &examples])
        .current_dir(root)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    if !output.status.success() {
        return Err(format!(
            "the README's examples failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let found = stdout.matches(r#""name":"Ada Lovelace""#).count();
    let changed = stdout.contains(r#""email":"ada.lovelace@example.com""#);
    let erased = stdout.ends_with("204\n404\n");
    if found < 4 || !changed || !erased || stdout.contains(r#""error""#) {
        return Err(
            "the README's examples did not create, read, list, change and erase Ada Lovelace"
                .into(),
        );
    }

    let path = tools::path_with(&[&lambda_bin])?;
    let invoked = cargo(root)
        .args([
            "lambda",
            "invoke",
            "get-user",
            "--data-file",
            "events/get-user/404-unknown-id.json",
        ])
        .args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &DEV_PORT.to_string(),
        ])
        .env("PATH", path)
        .output()?;
    if !String::from_utf8_lossy(&invoked.stdout).contains("not_found") {
        return Err(format!("cargo lambda invoke did not reach get-user: {invoked:?}").into());
    }

    step("Schemathesis against `cargo xtask dev`: openapi.yaml is the contract");
    fuzz_the_contract(root, DEV_PORT, &data.join("schemathesis"))?;

    let status = dev.interrupt(Duration::from_secs(60))?;
    std::fs::remove_dir_all(&data)?;
    if !status.success() {
        return Err(format!("`cargo xtask dev` did not stop cleanly on Ctrl-C: {status}").into());
    }
    Ok(())
}

/// How long Schemathesis may run: about a minute is usual, so only a hang comes near it.
const SCHEMATHESIS_LIMIT: Duration = Duration::from_secs(600);

/// Runs Schemathesis on every operation of openapi.yaml against `cargo xtask dev` on `port`,
/// as xtask/schemathesis/ configures it: a fixed seed and number of requests per operation, the
/// checks to make, and checks.py for those of our own. Only 127.0.0.1 is reached; Hypothesis
/// keeps its scratch files in `scratch`.
fn fuzz_the_contract(root: &Path, port: u16, scratch: &Path) -> Result<()> {
    let bin = tools::schemathesis()?;
    let config = root.join("xtask/schemathesis");
    std::fs::create_dir_all(scratch)?;
    let mut schemathesis = Command::new(bin.join("schemathesis"));
    schemathesis
        .current_dir(scratch)
        .arg("--config-file")
        .arg(config.join("schemathesis.toml"))
        .arg("run")
        .arg(root.join("openapi.yaml"))
        .args(["--url", &format!("http://127.0.0.1:{port}"), "--no-color"])
        .env("SCHEMATHESIS_HOOKS", config.join("checks.py"))
        // No __pycache__ beside checks.py: `cargo lambda watch` restarts the functions when
        // anything in the workspace changes.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null());
    for proxy in PROXY_VARIABLES {
        schemathesis.env_remove(proxy);
    }
    run_within(&mut schemathesis, SCHEMATHESIS_LIMIT)
}

/// What would send the fuzzer's requests anywhere but to 127.0.0.1.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// Runs a command to completion, killing it if it outlives `limit`.
fn run_within(command: &mut Command, limit: Duration) -> Result<()> {
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            return Err(format!("{command:?} failed: {status}").into());
        }
        if started.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            return Err(format!("{command:?} still ran after {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The shell block under "## Call it" in the README.
fn readme_examples(root: &Path) -> Result<String> {
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    let section = readme
        .split("## Call it")
        .nth(1)
        .ok_or("the README has no \"## Call it\" section")?;
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next());
    block
        .map(str::to_owned)
        .ok_or_else(|| "no ```sh block under \"## Call it\"".into())
}

fn wait_for_port(dev: &mut Child, limit: Duration) -> Result<()> {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", DEV_PORT)).is_err() {
        if let Some(status) = dev.try_wait()? {
            return Err(format!("`cargo xtask dev` exited early: {status}").into());
        }
        if started.elapsed() > limit {
            return Err(format!("nothing listened on {DEV_PORT} within {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// The dev process group, interrupted as a terminal's Ctrl-C would, and killed if left behind.
struct Stopper(Child);

impl Stopper {
    fn interrupt(&mut self, limit: Duration) -> Result<std::process::ExitStatus> {
        signal_group(self.0.id(), "INT");
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > limit {
                return Err(format!("`cargo xtask dev` still ran {limit:?} after Ctrl-C").into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        signal_group(self.0.id(), "KILL");
        let _ = self.0.wait();
    }
}

fn signal_group(leader: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{leader}"))
        .stderr(Stdio::null())
        .status();
}

fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("users-service-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn cargo(root: &Path) -> Command {
    let mut command = xtask::cargo();
    command.current_dir(root).envs(LOCAL_AWS_ENV);
    command
}

/// How many steps began; each one that fails ends the run.
static STEPS: AtomicUsize = AtomicUsize::new(0);

fn step(name: &str) {
    STEPS.fetch_add(1, Ordering::Relaxed);
    println!("\n==> {name}");
}
