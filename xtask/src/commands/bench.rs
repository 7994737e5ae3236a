//! `cargo xtask bench`: the release bootstraps under a model of what Lambda gives and bills an
//! execution environment, side by side with a Python peer (boto3 under awslambdaric,
//! `bench/peer/handlers.py`), both run by our own Runtime API on 127.0.0.1. Each memory size
//! gets its share of one vCPU through a CFS quota, and DynamoDB is reached through the fault
//! proxy over TLS, with a round trip's delay on every request and on each step of a connection's
//! set-up. The report gives latency as Lambda bills it, cost per million requests, the memory
//! size to deploy, and the targets met.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use users::dynamodb::{DynamoStore, Tables};
use xtask::dynamodb_local::DynamoDbLocal;
use xtask::fault_proxy::{FaultProxy, Network};
use xtask::local_tls::LocalTls;
use xtask::template::Template;
use xtask::{FUNCTIONS, Result, embedded, tools, workspace_root};

use super::deploy_checks::{self, ARM64_TARGET};

mod chart;
mod cost;
mod measure;
mod model;
mod report;
mod targets;
mod workload;

use measure::{Counts, Environment, Figures, Launch, millis, zipped_size};
use model::{CpuCgroup, DEFAULT_MEMORY_MB, Memory, Settings};
use workload::Workload;

pub struct Options {
    counts: Counts,
    users: usize,
    dynamodb_local: bool,
    arm64: bool,
    functions: Vec<&'static str>,
    profile: String,
    /// The memory sizes under the quota; the full CPU is always measured beside them.
    memory: Vec<Memory>,
    settings: Settings,
    /// The paced warm p99 a recommended memory size must stay within.
    latency_bound_ms: f64,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self {
            counts: Counts {
                cold: 10,
                warm: 200,
            },
            users: 10_000,
            dynamodb_local: false,
            arm64: true,
            functions: Vec::new(),
            profile: "release".into(),
            memory: Vec::new(),
            settings: Settings::DEFAULT,
            latency_bound_ms: 50.0,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--dynamodb-local" => options.dynamodb_local = true,
                "--no-arm64" => options.arm64 = false,
                "--throttle-init" => options.settings.throttle_init = true,
                _ => option_with_value(&mut options, arg, args.next())?,
            }
        }
        if options.functions.is_empty() {
            options.functions = FUNCTIONS.to_vec();
        }
        if options.memory.is_empty() {
            options.memory = DEFAULT_MEMORY_MB.map(Memory).to_vec();
        }
        options.memory.push(Memory::FULL_CPU);
        options.memory.sort();
        options.memory.dedup();
        if options.counts.cold == 0 || options.counts.warm < 10 {
            return Err("--cold must be at least 1 and --warm at least 10".into());
        }
        Ok(options)
    }

    fn invocations(&self) -> usize {
        self.memory.len() * self.counts.invocations()
    }
}

fn option_with_value(options: &mut Options, arg: &str, value: Option<&String>) -> Result<()> {
    let value = value.ok_or_else(|| format!("{arg} needs a value"))?;
    if arg == "--function" {
        let function = FUNCTIONS
            .into_iter()
            .find(|f| f == value)
            .ok_or_else(|| format!("--function takes one of {}", FUNCTIONS.join(", ")))?;
        options.functions.push(function);
        return Ok(());
    }
    if arg == "--profile" {
        options.profile.clone_from(value);
        return Ok(());
    }
    let number: f64 = value
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("{arg} takes a number"))?;
    let whole = || {
        usize::try_from(
            value
                .parse::<u64>()
                .map_err(|_| format!("{arg} takes a whole number"))?,
        )
        .map_err(|e| e.to_string())
    };
    let ms = Duration::from_secs_f64(number / 1000.0);
    match arg {
        "--cold" => options.counts.cold = whole()?,
        "--warm" => options.counts.warm = whole()?,
        "--users" => options.users = whole()?,
        "--memory" => {
            let mb = u32::try_from(whole()?).map_err(|e| e.to_string())?;
            if !(128..=10_240).contains(&mb) {
                return Err("--memory takes a size from 128 to 10240 (MB), as Lambda does".into());
            }
            options.memory.push(Memory(mb));
        }
        "--dynamodb-latency-ms" => options.settings.round_trip = ms,
        "--cfs-period-ms" => options.settings.period = ms,
        "--pace-ms" => options.settings.pace = ms,
        "--latency-bound-ms" => options.latency_bound_ms = number,
        other => return Err(format!("unknown option {other}").into()),
    }
    Ok(())
}

/// What runs behind a function's events.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Implementation {
    Rust,
    Python,
    /// `bench/hello-world`, the floor under any Rust function: it answers without work.
    HelloWorld,
}

impl Implementation {
    fn name(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::HelloWorld => "hello-world",
        }
    }
}

const HELLO_WORLD: &str = "hello-world";

/// One implementation of one function at one memory size, as measured.
struct Measured {
    function: &'static str,
    implementation: Implementation,
    memory: Memory,
    figures: Figures,
}

pub fn run(options: Options) -> Result<()> {
    let root = workspace_root();
    eprintln!("building the release bootstraps");
    let mut build = xtask::cargo();
    build
        .current_dir(&root)
        .args(["build", "--profile", &options.profile]);
    for function in &options.functions {
        build.args(["--bin", function]);
    }
    tools::run(&mut build)?;
    // Alone, so that no feature the functions need is unified into the baseline.
    tools::run(
        xtask::cargo()
            .current_dir(&root)
            .args(["build", "--profile", &options.profile])
            .args(["--package", HELLO_WORLD]),
    )?;
    let arm64 = options.arm64
        && build_arm64(&root, &options.functions, &options.profile).unwrap_or_else(|error| {
            eprintln!("WARNING: the arm64 build failed, so no arm64 sizes: {error}");
            false
        });
    let peer = tools::python_peer()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench(&root, &peer, &options, arm64))
}

/// Builds the Graviton bootstraps as a deployment does (cargo lambda, zig as the linker), to
/// report their size; `false` where the aarch64 standard library cannot be installed.
fn build_arm64(root: &Path, functions: &[&str], profile: &str) -> Result<bool> {
    if !deploy_checks::arm64_std_available() {
        eprintln!(
            "WARNING: the {ARM64_TARGET} standard library cannot be installed here: no arm64 sizes"
        );
        return Ok(false);
    }
    eprintln!("building the arm64 bootstraps");
    let lambda = tools::cargo_lambda()?;
    let path = tools::path_with(&[&lambda])?;
    let cargo_lambda = |args: &[&str]| {
        let mut command = xtask::tool(lambda.join("cargo-lambda"));
        command
            .current_dir(root)
            .env("PATH", &path)
            .args(["lambda", "build", "--arm64", "--profile", profile])
            .args(args);
        tools::run(&mut command)
    };
    let mut bins = Vec::new();
    for function in functions {
        bins.extend(["--bin", function]);
    }
    cargo_lambda(&bins)?;
    cargo_lambda(&["--package", HELLO_WORLD])?;
    Ok(true)
}

async fn bench(root: &Path, peer: &Path, options: &Options, arm64: bool) -> Result<()> {
    let local = if options.dynamodb_local {
        Some(DynamoDbLocal::start()?)
    } else {
        None
    };
    let (endpoint, backend) = match &local {
        Some(local) => (local.endpoint.clone(), "DynamoDB Local"),
        None => {
            let (address, _) = embedded::serve(None, 0, std::future::pending()).await?;
            (format!("http://{address}"), "Dynoxide")
        }
    };
    let template = Template::load(&root.join("template.yaml"))?;
    let client = xtask::local_client(&endpoint);
    template.create_tables(&client).await?;
    let store = DynamoStore::new(
        client.clone(),
        Tables {
            users: "UsersTable".into(),
            idempotency: "IdempotencyTable".into(),
        },
    );
    eprintln!("seeding {} users into {backend}", options.users);
    let known = workload::seed_listing(&store, options.users).await?;

    let mut runs = vec![("get-user", Implementation::HelloWorld)];
    for function in &options.functions {
        runs.push((function, Implementation::Rust));
        runs.push((function, Implementation::Python));
    }
    // Every user a run changes or deletes is stored now, before anything is timed.
    let mut workloads = Vec::with_capacity(runs.len());
    for &(function, implementation) in &runs {
        workloads.push(
            Workload::prepare(
                root,
                &store,
                function,
                implementation,
                &known,
                options.invocations(),
            )
            .await?,
        );
    }
    let getitem_ms = direct_get_latency(&endpoint, "UsersTable", &known, options.counts.warm)?;

    let tls = LocalTls::generate(&std::env::temp_dir())?;
    let network = Network {
        round_trip: options.settings.round_trip,
        tls: Some(tls.acceptor.clone()),
    };
    let proxy = FaultProxy::start_with(&endpoint, network).await?;
    let cgroup = CpuCgroup::create();
    if cgroup.is_none() {
        eprintln!(
            "WARNING: no writable cgroup with the cpu controller (v1 or v2): every memory size \
             runs on the whole CPU, unthrottled"
        );
    }

    let mut results = Vec::new();
    let total = runs.len() * options.memory.len();
    for ((function, implementation), workload) in runs.into_iter().zip(&workloads) {
        let env = xtask::local_function_env(&template, function, &proxy.endpoint)?;
        let launch = Launch {
            root,
            profile: &options.profile,
            peer,
            function,
            implementation,
            env: &env,
            ca_file: &tls.ca_file,
            proxy: &proxy,
        };
        let artifact_bytes = zipped_size(&launch.artifact())?;
        let arm64_artifact_bytes = match arm64 {
            true => Some(zipped_size(&launch.arm64_artifact())?),
            false => None,
        };
        let mut invocation = 0;
        for &memory in &options.memory {
            eprintln!(
                "[{}/{total}] {function} ({}) at {}: {} cold starts, {} warm invocations back to \
                 back, {} paced",
                results.len() + 1,
                implementation.name(),
                memory.label(),
                options.counts.cold,
                options.counts.warm,
                options.counts.warm,
            );
            let environment = Environment {
                memory,
                cgroup: cgroup.as_ref().filter(|_| memory.throttled()),
                settings: options.settings,
            };
            let mut figures = measure::measure(
                &launch,
                &environment,
                workload,
                options.counts,
                &mut invocation,
            )
            .await?;
            figures.artifact_bytes = artifact_bytes;
            figures.arm64_artifact_bytes = arm64_artifact_bytes;
            results.push(Measured {
                function,
                implementation,
                memory,
                figures,
            });
        }
    }
    let throttled = cgroup.is_some();
    drop(cgroup);
    drop(local);
    report::write(
        root,
        &report::Run {
            profile: &options.profile,
            backend,
            getitem_ms: &getitem_ms,
            settings: options.settings,
            throttled,
            latency_bound_ms: options.latency_bound_ms,
            counts: options.counts,
            results: &results,
        },
    )
}

/// The server's own GetItem latency: one keep-alive connection, a request written once and
/// sent as raw bytes, so that no client's cost is counted. The floor under get-user's latency.
fn direct_get_latency(endpoint: &str, table: &str, id: &str, count: usize) -> Result<Vec<f64>> {
    let address = endpoint.trim_start_matches("http://");
    let body = json!({"TableName": table, "Key": {"pk": {"S": format!("USER#{id}")}}, "ConsistentRead": true});
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.GetItem\r\nX-Amz-Date: 20260101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=00\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        writer.write_all(request.as_bytes())?;
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut response = vec![0; length];
        reader.read_exact(&mut response)?;
        latencies.push(millis(started.elapsed()));
        if !response.starts_with(b"{\"Item\"") {
            return Err(format!("GetItem answered {}", String::from_utf8_lossy(&response)).into());
        }
    }
    Ok(latencies)
}
