//! Offline checks of the deployment: the template as SAM and CloudFormation read it, each
//! role's permissions, and `sam build`'s Graviton artifacts.

use std::path::Path;
use std::process::Command;

use std::time::Duration;

use xtask::runtime_api::{Outcome, RuntimeApi};
use xtask::tools::{self, run};
use xtask::{Result, embedded, template::Template};

const REGION: &str = "us-east-1";
pub const ARM64_TARGET: &str = "aarch64-unknown-linux-gnu";

/// `sam validate` (plain and `--lint`), cfn-lint with the serverless rules on the template and
/// on its offline transform, and the least-privilege and route checks of `tests/template`.
pub fn validate(root: &Path) -> Result<()> {
    let sam = tools::sam_tools()?;
    let transformed = root.join("target/template.cfn.json");
    std::fs::create_dir_all(root.join("target"))?;
    run(sam_command(root, &sam, "sam").args(["validate", "--region", REGION]))?;
    run(sam_command(root, &sam, "sam").args(["validate", "--lint", "--region", REGION]))?;
    // WS1004 looks for each function's log group under `/aws/lambda/<function>`; the template
    // names them after the stack instead, and points each function at its own (LoggingConfig).
    run(sam_command(root, &sam, "cfn-lint").args([
        "template.yaml",
        "-a",
        "cfn_lint_serverless.rules",
        "--ignore-checks",
        "WS1004",
    ]))?;
    run(sam_command(root, &sam, "python")
        .arg("tests/template/check.py")
        .arg(&transformed))?;
    // W2001 (unused parameter) is an artifact of the transform: SAM resolves the parameters of
    // some properties (CORS, deployment preferences) with their defaults as it expands them.
    run(sam_command(root, &sam, "cfn-lint")
        .arg(&transformed)
        .args(["--ignore-checks", "W2001"]))?;
    // The deployed-stack smoke test cannot run here; at least it must parse.
    run(Command::new("bash")
        .args(["-n", "tests/deployed-smoke.sh"])
        .current_dir(root))
}

/// `sam build` as a deployment runs it, then checks every `bootstrap` is an ELF file for the
/// architecture built. Graviton (arm64) needs the aarch64 standard library; where rustup cannot
/// install it, this says so and builds x86_64 instead.
pub fn build(root: &Path) -> Result<Architecture> {
    let architecture = if arm64_std_available() {
        Architecture::Arm64
    } else {
        eprintln!(
            "WARNING: the {ARM64_TARGET} standard library cannot be installed on this machine, \
             so the arm64 (Graviton) artifacts are NOT built or checked here: building x86_64 instead"
        );
        Architecture::X86_64
    };
    let sam = tools::sam_tools()?;
    let lambda = tools::cargo_lambda()?;
    // cargo-lambda's directory first: it finds zig through the `python3` beside it.
    let path = tools::path_with(&[&lambda, &sam])?;
    // sam build runs cargo lambda once per function, one after the other, each linking its
    // binary alone. One run for all of them, with the same options, links them side by side;
    // sam build then finds every binary fresh and only packages it.
    let mut prebuild = xtask::tool(lambda.join("cargo-lambda"));
    prebuild.current_dir(root).env("PATH", &path).args([
        "lambda",
        "build",
        "--release",
        architecture.cargo_lambda_flag(),
    ]);
    for function in xtask::all_functions() {
        prebuild.args(["--bin", function]);
    }
    run(&mut prebuild)?;
    run(sam_command(root, &sam, "sam")
        .env("PATH", path)
        .args(["build", "--region", REGION, "--parameter-overrides"])
        .arg(format!("Architecture={}", architecture.parameter())))?;

    let template = Template::load(&root.join("template.yaml"))?;
    for function in xtask::all_functions() {
        let id = template
            .function_for_binary(function)
            .ok_or_else(|| format!("no function builds {function}"))?;
        let bootstrap = root.join(".aws-sam/build").join(&id).join("bootstrap");
        let machine = elf_machine(&bootstrap)?;
        let expected = architecture.elf_machine();
        if machine != expected {
            return Err(format!(
                "{} is built for {machine}, not {expected}",
                bootstrap.display()
            )
            .into());
        }
        let size = std::fs::metadata(&bootstrap)?.len();
        println!(
            "{function}: {} is an {machine} ELF executable, {size} bytes",
            bootstrap.display()
        );
    }
    Ok(architecture)
}

/// `sam build` for Graviton, then `sam deploy` of samconfig.toml's `environment` with its own
/// parameters and `ReleaseDigest`, a digest of each function's built code and resolved
/// properties (`tests/template/versions.py`), so that any change to what a function runs, a
/// parameter's value included, publishes a new version for the canary to judge. `extra` goes to
/// `sam deploy` as it is.
pub fn deploy(root: &Path, environment: &str, extra: &[String]) -> Result<()> {
    if build(root)? != Architecture::Arm64 {
        return Err("the arm64 (Graviton) functions cannot be built here: nothing deployed".into());
    }
    let sam = tools::sam_tools()?;
    let digest = sam_command(root, &sam, "python")
        .args(["tests/template/versions.py", environment, ".aws-sam/build"])
        .output()?;
    if !digest.status.success() {
        return Err(format!(
            "tests/template/versions.py failed: {}",
            String::from_utf8_lossy(&digest.stderr)
        )
        .into());
    }
    let overrides = String::from_utf8(digest.stdout)?;
    println!("deploying {environment} with {}", overrides.trim());
    run(sam_command(root, &sam, "sam")
        .args([
            "deploy",
            "--config-env",
            environment,
            "--parameter-overrides",
        ])
        .arg(overrides.trim())
        .args(extra))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Arm64,
    X86_64,
}

impl Architecture {
    /// The value of template.yaml's `Architecture` parameter.
    fn parameter(self) -> &'static str {
        match self {
            Self::Arm64 => "arm64",
            Self::X86_64 => "x86_64",
        }
    }

    /// cargo lambda build's option for this architecture.
    fn cargo_lambda_flag(self) -> &'static str {
        match self {
            Self::Arm64 => "--arm64",
            Self::X86_64 => "--x86-64",
        }
    }

    fn elf_machine(self) -> &'static str {
        match self {
            Self::Arm64 => "aarch64",
            Self::X86_64 => "x86_64",
        }
    }
}

/// Runs create-user's Graviton bootstrap under qemu, against a Runtime API of our own and an
/// embedded Dynoxide, and checks it creates a user from a replayed event: the artifact is
/// proved to start and answer, not only to link. `false` when no emulator could be had.
pub fn run_arm64(root: &Path) -> Result<bool> {
    let Some(qemu) = qemu_aarch64() else {
        eprintln!(
            "WARNING: qemu-user-static cannot be installed here: the arm64 bootstrap is built but not run"
        );
        return Ok(false);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (address, _server) = embedded::serve(None, 0, std::future::pending()).await?;
        let endpoint = format!("http://{address}");
        let template = Template::load(&root.join("template.yaml"))?;
        let client = xtask::local_client(&endpoint);
        template.create_tables(&client).await?;
        let function = template
            .function_for_binary("create-user")
            .ok_or("no function builds create-user")?;
        let api = RuntimeApi::start(users::handlers::FUNCTION_TIMEOUT).await?;
        let mut bootstrap = tokio::process::Command::new(qemu)
            .args(["-L", "/usr/aarch64-linux-gnu"])
            .arg(
                root.join(".aws-sam/build")
                    .join(&function)
                    .join("bootstrap"),
            )
            .env_clear()
            .envs(xtask::local_function_env(
                &template,
                "create-user",
                &endpoint,
            )?)
            .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "create-user")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .kill_on_drop(true)
            .spawn()?;
        let event = std::fs::read(root.join("events/create-user/201-create.json"))?;
        let outcome = api.invoke(event, Duration::from_secs(60)).await;
        let peak = bootstrap.id().and_then(xtask::peak_rss_kib);
        bootstrap.kill().await?;
        let Outcome::Response(body) = outcome? else {
            return Err("the arm64 bootstrap did not answer the event".into());
        };
        let response: serde_json::Value = serde_json::from_slice(&body)?;
        if response["statusCode"] != 201 {
            return Err(format!("the arm64 bootstrap answered {response}").into());
        }
        println!("create-user's arm64 bootstrap answered 201 under {qemu}");
        if let Some(kib) = peak {
            println!(
                "its peak RSS, emulator included (an upper bound): {} MiB",
                kib / 1024
            );
        }
        Ok(true)
    })
}

/// `qemu-aarch64-static` with an aarch64 glibc to load the bootstraps with, installed from
/// Debian's packages if missing.
fn qemu_aarch64() -> Option<&'static str> {
    const QEMU: &str = "qemu-aarch64-static";
    let present = || {
        Command::new(QEMU).arg("--version").output().is_ok()
            && Path::new("/usr/aarch64-linux-gnu/lib").is_dir()
    };
    if present() {
        return Some(QEMU);
    }
    eprintln!("installing qemu-user-static and the aarch64 C library from Debian");
    let _ = run(Command::new("apt-get").args(["update", "-qq"]));
    let packages = [
        "qemu-user-static",
        "libc6-arm64-cross",
        "libgcc-s1-arm64-cross",
    ];
    let _ = run(Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"));
    present().then_some(QEMU)
}

pub fn arm64_std_available() -> bool {
    let installed = || {
        Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .is_ok_and(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|t| t == ARM64_TARGET)
            })
    };
    installed()
        || (run(Command::new("rustup").args(["target", "add", ARM64_TARGET])).is_ok()
            && installed())
}

/// The `e_machine` of an ELF file, by name.
fn elf_machine(path: &Path) -> Result<&'static str> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err(format!("{} is not an ELF file", path.display()).into());
    }
    Ok(match u16::from_le_bytes([bytes[18], bytes[19]]) {
        0xb7 => "aarch64",
        0x3e => "x86_64",
        _ => "another machine",
    })
}

fn sam_command(root: &Path, bin: &Path, program: &str) -> Command {
    let mut command = xtask::tool(bin.join(program));
    command
        .current_dir(root)
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_DEFAULT_REGION", REGION);
    command
}
