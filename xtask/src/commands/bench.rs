//! `cargo xtask bench`: cold start, first and warm invocation latency, peak memory, CPU time and
//! artifact size of the release bootstraps, side by side with a Python peer (boto3 under
//! awslambdaric, `bench/peer/handlers.py`), both run by our own Runtime API on 127.0.0.1.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};
use users::dynamodb::{DynamoStore, Tables};
use xtask::dynamodb_local::DynamoDbLocal;
use xtask::runtime_api::{Outcome, RuntimeApi};
use xtask::template::Template;
use xtask::{FUNCTIONS, Result, embedded, tools, workspace_root};

use super::deploy_checks::{self, ARM64_TARGET};

mod workload;

use workload::Workload;

/// The function timeout of template.yaml, which each invocation gets as its deadline.
const TIMEOUT: Duration = users::handlers::FUNCTION_TIMEOUT;

pub struct Options {
    cold: usize,
    warm: usize,
    users: usize,
    dynamodb_local: bool,
    arm64: bool,
    functions: Vec<&'static str>,
    profile: String,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self {
            cold: 10,
            warm: 1000,
            users: 10_000,
            dynamodb_local: false,
            arm64: true,
            functions: Vec::new(),
            profile: "release".into(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--dynamodb-local" => options.dynamodb_local = true,
                "--no-arm64" => options.arm64 = false,
                _ => option_with_value(&mut options, arg, args.next())?,
            }
        }
        if options.functions.is_empty() {
            options.functions = FUNCTIONS.to_vec();
        }
        if options.cold == 0 || options.warm < 10 {
            return Err("--cold must be at least 1 and --warm at least 10".into());
        }
        Ok(options)
    }

    /// How many requests one implementation of a function answers: one per cold start, one to
    /// warm it, then the warm ones.
    fn invocations(&self) -> usize {
        self.cold + 1 + self.warm
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
    let number = value
        .parse()
        .map_err(|_| format!("{arg} takes a whole number"))?;
    match arg {
        "--cold" => options.cold = number,
        "--warm" => options.warm = number,
        "--users" => options.users = number,
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

/// What one implementation of one function measured.
#[derive(Default, Clone)]
struct Figures {
    init_ms: Vec<f64>,
    first_ms: Vec<f64>,
    warm_ms: Vec<f64>,
    peak_rss_kib: u64,
    warm_cpu_ms_per_invoke: f64,
    artifact_bytes: u64,
    arm64_artifact_bytes: Option<u64>,
    noisy_cold_starts: usize,
}

const HELLO_WORLD: &str = "hello-world";

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
    let getitem_ms = direct_get_latency(&endpoint, "UsersTable", &known, options.warm)?;

    let mut results = Vec::new();
    for ((function, implementation), workload) in runs.into_iter().zip(&workloads) {
        let env = xtask::local_function_env(&template, function, &endpoint)?;
        eprintln!(
            "{function} ({}): {} cold starts, {} warm invocations",
            implementation.name(),
            options.cold,
            options.warm
        );
        let launch = Launch {
            root,
            profile: &options.profile,
            peer,
            function,
            implementation,
            env: &env,
        };
        let mut figures = measure(&launch, workload, options).await?;
        if arm64 {
            figures.arm64_artifact_bytes = Some(zipped_size(&launch.arm64_artifact())?);
        }
        results.push((function, implementation, figures));
    }
    drop(local);
    let baseline = results.remove(0).2;
    report(
        root,
        &options.profile,
        backend,
        getitem_ms,
        &baseline,
        &results,
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

struct Launch<'a> {
    root: &'a Path,
    /// The cargo profile the bootstraps were built with, which names their directory.
    profile: &'a str,
    peer: &'a Path,
    function: &'static str,
    implementation: Implementation,
    env: &'a [(String, String)],
}

impl Launch<'_> {
    fn command(&self, api: &RuntimeApi) -> Command {
        let mut command = match self.implementation {
            Implementation::Rust | Implementation::HelloWorld => Command::new(self.artifact()),
            Implementation::Python => {
                let mut python = Command::new(self.peer.join("python"));
                python
                    .args(["-m", "awslambdaric"])
                    .arg(format!("handlers.{}", self.function.replace('-', "_")))
                    .current_dir(self.root.join("bench/peer"));
                python
            }
        };
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", self.function)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command
    }

    fn artifact(&self) -> PathBuf {
        match self.binary() {
            Some(binary) => self
                .root
                .join("target")
                .join(self.profile_dir())
                .join(binary),
            None => self.root.join("bench/peer/handlers.py"),
        }
    }

    /// Where cargo lambda leaves the Graviton bootstrap it built.
    fn arm64_artifact(&self) -> PathBuf {
        match self.binary() {
            Some(binary) => self
                .root
                .join("target/lambda")
                .join(binary)
                .join("bootstrap"),
            None => self.root.join("bench/peer/handlers.py"),
        }
    }

    /// The Rust binary that runs, if the implementation is compiled.
    fn binary(&self) -> Option<&str> {
        match self.implementation {
            Implementation::Rust => Some(self.function),
            Implementation::HelloWorld => Some(HELLO_WORLD),
            Implementation::Python => None,
        }
    }

    fn profile_dir(&self) -> &str {
        match self.profile {
            "dev" => "debug",
            other => other,
        }
    }
}

async fn measure(launch: &Launch<'_>, workload: &Workload, options: &Options) -> Result<Figures> {
    let mut figures = Figures {
        artifact_bytes: zipped_size(&launch.artifact())?,
        ..Figures::default()
    };
    let mut invocation = 0;
    for _ in 0..options.cold {
        if !wait_for_quiet_machine().await {
            figures.noisy_cold_starts += 1;
        }
        let api = RuntimeApi::start(TIMEOUT).await?;
        let spawned = Instant::now();
        let mut child = launch.command(&api).spawn()?;
        let ready = api.first_poll(Duration::from_secs(30)).await?;
        figures.init_ms.push(millis(ready - spawned));
        let started = Instant::now();
        answered(&api, workload.event(invocation)?).await?;
        figures.first_ms.push(millis(started.elapsed()));
        invocation += 1;
        figures.peak_rss_kib = figures
            .peak_rss_kib
            .max(child.id().and_then(xtask::peak_rss_kib).unwrap_or(0));
        child.kill().await?;
    }

    let api = RuntimeApi::start(TIMEOUT).await?;
    let mut child = launch.command(&api).spawn()?;
    api.first_poll(Duration::from_secs(30)).await?;
    answered(&api, workload.event(invocation)?).await?;
    invocation += 1;
    let cpu_before = cpu_ms(&child).unwrap_or(0.0);
    for _ in 0..options.warm {
        let event = workload.event(invocation)?;
        invocation += 1;
        let started = Instant::now();
        answered(&api, event).await?;
        figures.warm_ms.push(millis(started.elapsed()));
    }
    let cpu_after = cpu_ms(&child).unwrap_or(0.0);
    figures.warm_cpu_ms_per_invoke = (cpu_after - cpu_before) / options.warm as f64;
    figures.peak_rss_kib = figures
        .peak_rss_kib
        .max(child.id().and_then(xtask::peak_rss_kib).unwrap_or(0));
    child.kill().await?;
    Ok(figures)
}

/// Invokes and insists on a successful HTTP answer, so that a broken function is not timed.
async fn answered(api: &RuntimeApi, event: Vec<u8>) -> Result<()> {
    match api.invoke(event, TIMEOUT).await? {
        Outcome::Response(body) => {
            let response: Value = serde_json::from_slice(&body)?;
            match response["statusCode"].as_u64() {
                Some(200..=299) => Ok(()),
                _ => Err(format!("the function answered {response}").into()),
            }
        }
        other => Err(format!("the function failed: {other:?}").into()),
    }
}

/// Waits up to 5 s for both cores to be at least 80% idle over a quarter second.
async fn wait_for_quiet_machine() -> bool {
    for _ in 0..20 {
        let before = cpu_totals();
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let (Some((idle0, total0)), Some((idle1, total1))) = (before, cpu_totals()) {
            let total = total1.saturating_sub(total0).max(1);
            if (idle1.saturating_sub(idle0)) * 100 / total >= 80 {
                return true;
            }
        }
    }
    false
}

/// Idle and total jiffies of all CPUs, from /proc/stat.
fn cpu_totals() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
    Some((idle, fields.iter().sum()))
}

/// CPU time the process has used, from /proc/<pid>/schedstat (nanoseconds on CPU).
fn cpu_ms(child: &Child) -> Option<f64> {
    let schedstat = std::fs::read_to_string(format!("/proc/{}/schedstat", child.id()?)).ok()?;
    let nanos: f64 = schedstat.split_whitespace().next()?.parse().ok()?;
    Some(nanos / 1e6)
}

/// The size of `path` zipped at the highest compression, as Lambda would receive it.
fn zipped_size(path: &Path) -> Result<u64> {
    let output = std::process::Command::new("zip")
        .args(["-q", "-j", "-9", "-"])
        .arg(path)
        .output()?;
    if !output.status.success() {
        return Err(format!("zip failed on {}", path.display()).into());
    }
    Ok(output.stdout.len() as u64)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

/// A metric's name, unit, and how it is read from an implementation's figures.
type Metric = (&'static str, &'static str, fn(&Figures) -> f64);

const METRICS: [Metric; 9] = [
    ("init (median)", "ms", |f| percentile(&f.init_ms, 50.0)),
    ("first invoke (median)", "ms", |f| {
        percentile(&f.first_ms, 50.0)
    }),
    ("warm p50", "ms", |f| percentile(&f.warm_ms, 50.0)),
    ("warm p90", "ms", |f| percentile(&f.warm_ms, 90.0)),
    ("warm p99", "ms", |f| percentile(&f.warm_ms, 99.0)),
    ("peak RSS", "MiB", |f| f.peak_rss_kib as f64 / 1024.0),
    ("CPU per warm invoke", "ms", |f| f.warm_cpu_ms_per_invoke),
    ("x86_64 artifact, zipped", "KiB", |f| {
        f.artifact_bytes as f64 / 1024.0
    }),
    ("arm64 artifact, zipped", "KiB", |f| {
        f.arm64_artifact_bytes
            .map_or(f64::NAN, |b| b as f64 / 1024.0)
    }),
];

/// One row of the report: a metric of one function, ours and the peer's.
struct Row {
    function: &'static str,
    metric: &'static str,
    unit: &'static str,
    ours: f64,
    peer: f64,
}

type Results = [(&'static str, Implementation, Figures)];

/// Each function measured, with our figures and the peer's.
fn pairs(results: &Results) -> impl Iterator<Item = (&'static str, &Figures, &Figures)> {
    let of = move |function: &str, implementation| {
        results
            .iter()
            .find(|(f, i, _)| *f == function && *i == implementation)
            .map(|(_, _, figures)| figures)
    };
    FUNCTIONS.into_iter().filter_map(move |function| {
        Some((
            function,
            of(function, Implementation::Rust)?,
            of(function, Implementation::Python)?,
        ))
    })
}

fn rows(results: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    for (function, ours, peer) in pairs(results) {
        for (metric, unit, value) in METRICS {
            rows.push(Row {
                function,
                metric,
                unit,
                ours: value(ours),
                peer: value(peer),
            });
        }
    }
    rows
}

/// One of the performance targets, as measured: `value` must be at most (or, where
/// `at_least`, at least) `limit`.
struct Target {
    function: &'static str,
    name: &'static str,
    value: f64,
    limit: f64,
    at_least: bool,
}

impl Target {
    fn met(&self) -> bool {
        if self.at_least {
            self.value >= self.limit
        } else {
            self.value <= self.limit
        }
    }
}

/// A megabyte as the targets count it, in KiB.
const MB_IN_KIB: f64 = 1e6 / 1024.0;

fn targets(results: &Results, baseline: &Figures, getitem_p50: f64) -> Vec<Target> {
    let hello_init = percentile(&baseline.init_ms, 50.0);
    let mut targets = Vec::new();
    for (function, ours, peer) in pairs(results) {
        let init = percentile(&ours.init_ms, 50.0);
        let p50 = percentile(&ours.warm_ms, 50.0);
        let mut target = |name, value, limit, at_least| {
            targets.push(Target {
                function,
                name,
                value,
                limit,
                at_least,
            });
        };
        target("init ÷ hello-world init", init / hello_init, 1.5, false);
        target(
            "python init ÷ init",
            percentile(&peer.init_ms, 50.0) / init,
            50.0,
            true,
        );
        target(
            "first invoke ÷ warm p50",
            percentile(&ours.first_ms, 50.0) / p50,
            3.0,
            false,
        );
        if function == "get-user" {
            target(
                "warm p50 − direct GetItem p50 (ms)",
                p50 - getitem_p50,
                0.3,
                false,
            );
        }
        target(
            "warm p99 ÷ warm p50",
            percentile(&ours.warm_ms, 99.0) / p50,
            2.0,
            false,
        );
        target(
            "peak RSS (MB)",
            ours.peak_rss_kib as f64 / MB_IN_KIB,
            10.0,
            false,
        );
        target(
            "x86_64 zip (MB)",
            ours.artifact_bytes as f64 / 1024.0 / MB_IN_KIB,
            3.0,
            false,
        );
        if let Some(bytes) = ours.arm64_artifact_bytes {
            target(
                "arm64 zip (MB)",
                bytes as f64 / 1024.0 / MB_IN_KIB,
                3.0,
                false,
            );
        }
    }
    targets
}

fn report(
    root: &Path,
    profile: &str,
    backend: &str,
    getitem_ms: Vec<f64>,
    baseline: &Figures,
    results: &Results,
) -> Result<()> {
    let rows = rows(results);
    let getitem_p50 = percentile(&getitem_ms, 50.0);
    let targets = targets(results, baseline, getitem_p50);
    let all = || results.iter().map(|(_, _, f)| f).chain([baseline]);
    let noisy: usize = all().map(|f| f.noisy_cold_starts).sum();
    let cold: usize = all().map(|f| f.init_ms.len()).sum();
    let mut markdown = format!(
        "Measured by `cargo xtask bench` on {}, against {backend} (its own GetItem: p50 {:.3} ms, \
         p99 {:.3} ms). The peer is the same API in Python 3 with boto3 under awslambdaric. \
         The Rust artifact is the bootstrap built with the `{profile}` profile; the peer's is its \
         handler file (boto3 comes with Lambda's Python runtime). Times are for this machine's architecture; \
         the arm64 bootstrap's size is reported, not timed.{}\n\nThe requests: {}\n\n\
         | function | metric | rust | python peer | peer ÷ rust |\n|---|---|---:|---:|---:|\n",
        std::env::consts::ARCH,
        getitem_p50,
        percentile(&getitem_ms, 99.0),
        if noisy > 0 {
            format!(" {noisy} of {cold} cold starts began on a busy machine.")
        } else {
            String::new()
        },
        workload::REQUESTS,
    );
    let mut json_rows = Vec::new();
    for row in &rows {
        let ratio = row.peer / row.ours;
        writeln!(
            markdown,
            "| {} | {} ({}) | {} | {} | {} |",
            row.function,
            row.metric,
            row.unit,
            number(row.ours, 3),
            number(row.peer, 3),
            number(ratio, 1) + "×"
        )?;
        json_rows.push(json!({
            "function": row.function, "metric": row.metric, "unit": row.unit,
            "rust": finite(row.ours), "python": finite(row.peer), "ratio": finite(ratio),
        }));
    }
    markdown.push_str(
        "\nThe baseline: `bench/hello-world`, a bare `lambda_runtime` function built with the \
         same profile, answering get-user's event without work.\n\n\
         | metric | hello-world |\n|---|---:|\n",
    );
    let mut json_baseline = serde_json::Map::new();
    for (metric, unit, value) in METRICS {
        let value = value(baseline);
        writeln!(markdown, "| {metric} ({unit}) | {} |", number(value, 3))?;
        json_baseline.insert(format!("{metric} ({unit})"), finite(value));
    }
    markdown
        .push_str("\n| function | target | measured | limit | met |\n|---|---|---:|---:|---|\n");
    let mut json_targets = Vec::new();
    for target in &targets {
        let limit = format!(
            "{} {}",
            if target.at_least { "≥" } else { "≤" },
            target.limit
        );
        let met = if target.met() { "yes" } else { "**no**" };
        writeln!(
            markdown,
            "| {} | {} | {} | {limit} | {met} |",
            target.function,
            target.name,
            number(target.value, 2)
        )?;
        json_targets.push(json!({
            "function": target.function, "target": target.name, "measured": finite(target.value),
            "limit": target.limit, "at_least": target.at_least, "met": target.met(),
        }));
    }
    let out = root.join("bench");
    std::fs::write(out.join("results.md"), &markdown)?;
    let document = json!({
        "backend": backend,
        "profile": profile,
        "arch": std::env::consts::ARCH,
        "direct_getitem_ms": {"p50": getitem_p50, "p99": percentile(&getitem_ms, 99.0)},
        "noisy_cold_starts": noisy,
        "requests": workload::REQUESTS,
        "rows": json_rows,
        "hello_world": json_baseline,
        "targets": json_targets,
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&document)?,
    )?;
    std::fs::write(out.join("chart.svg"), chart(&rows))?;
    println!("{markdown}");
    println!("written: bench/results.md, bench/results.json, bench/chart.svg");
    Ok(())
}

/// `value` with `decimals`, or "n/a" for what was not measured.
fn number(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "n/a".into()
    }
}

/// JSON has no NaN: what was not measured is `null`.
fn finite(value: f64) -> Value {
    if value.is_finite() {
        Value::from(value)
    } else {
        Value::Null
    }
}

/// Bars on a log scale, ours beside the peer's, for the metrics people feel and pay for.
fn chart(rows: &[Row]) -> String {
    let shown: Vec<&Row> = rows
        .iter()
        .filter(|r| matches!(r.metric, "init (median)" | "warm p50" | "peak RSS"))
        .collect();
    let (bar, gap, label_width, width) = (14.0, 10.0, 230.0, 760.0);
    let height = 40.0 + shown.len() as f64 * (2.0 * bar + gap);
    let max = shown
        .iter()
        .map(|r| r.ours.max(r.peer))
        .fold(1.0_f64, f64::max)
        .log10()
        .ceil()
        .max(1.0);
    let min = shown
        .iter()
        .map(|r| r.ours.min(r.peer))
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        .log10()
        .floor();
    let scale = |v: f64| (v.max(1e-3).log10() - min) / (max - min) * (width - label_width - 90.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"18\" font-weight=\"bold\">rust (orange) and the python peer (blue), log scale</text>\n"
    );
    for (i, row) in shown.iter().enumerate() {
        let y = 30.0 + i as f64 * (2.0 * bar + gap);
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{:.1}\">{} {} ({})</text>",
            y + bar + 4.0,
            row.function,
            row.metric,
            row.unit
        );
        for (j, (value, color)) in [(row.ours, "#e76f00"), (row.peer, "#3572a5")]
            .into_iter()
            .enumerate()
        {
            let top = y + j as f64 * bar;
            let length = scale(value).max(1.0);
            let _ = writeln!(
                svg,
                "<rect x=\"{label_width}\" y=\"{top:.1}\" width=\"{length:.1}\" height=\"{:.1}\" fill=\"{color}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{value:.2}</text>",
                bar - 2.0,
                label_width + length + 4.0,
                top + bar - 4.0
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}
