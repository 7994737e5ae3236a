//! How one implementation of one function is run and timed at one memory size: its cold starts,
//! then one execution environment's warm invocations, back to back and paced.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};
use xtask::Result;
use xtask::fault_proxy::FaultProxy;
use xtask::runtime_api::{Outcome, RuntimeApi};

use super::cost::Capacity;
use super::model::{CpuCgroup, Memory, Settings};
use super::workload::Workload;
use super::{HELLO_WORLD, Implementation};

/// The function timeout of template.yaml, which each invocation gets as its deadline.
const TIMEOUT: Duration = users::handlers::FUNCTION_TIMEOUT;

/// What one implementation of one function measured at one memory size.
#[derive(Default, Clone)]
pub(super) struct Figures {
    pub init_ms: Vec<f64>,
    pub first_ms: Vec<f64>,
    /// Warm invocations one after the other.
    pub back_to_back_ms: Vec<f64>,
    /// Warm invocations started [`Settings::pace`] apart.
    pub paced_ms: Vec<f64>,
    /// Paced invocations that started late, because the one before ran past the interval.
    pub late_starts: usize,
    /// DynamoDB requests per warm invocation.
    pub round_trips: f64,
    /// How much longer than the modelled round trips the emulator took, per warm invocation:
    /// what the emulator adds to what DynamoDB would take.
    pub overrun_ms: f64,
    /// DynamoDB capacity per warm invocation.
    pub capacity: Capacity,
    pub peak_rss_kib: u64,
    pub cpu_ms_per_invoke: f64,
    pub artifact_bytes: u64,
    pub arm64_artifact_bytes: Option<u64>,
    pub noisy_cold_starts: usize,
}

/// What runs, and where its DynamoDB requests go.
pub(super) struct Launch<'a> {
    pub root: &'a Path,
    /// The cargo profile the bootstraps were built with, which names their directory.
    pub profile: &'a str,
    pub peer: &'a Path,
    pub function: &'static str,
    pub implementation: Implementation,
    pub env: &'a [(String, String)],
    /// The file of the run's CA, which the functions trust.
    pub ca_file: &'a Path,
    pub proxy: &'a FaultProxy,
}

/// Where a process is started: the memory size it is told it has, and the cgroup that holds it
/// to that size's CPU share (`None` for the whole CPU).
pub(super) struct Environment<'a> {
    pub memory: Memory,
    pub cgroup: Option<&'a CpuCgroup>,
    pub settings: Settings,
}

impl Launch<'_> {
    /// The process: under `--throttle-init`, through a shell that joins the cgroup before it
    /// runs the function, so that init is throttled from its first instruction.
    fn command(&self, api: &RuntimeApi, environment: &Environment<'_>) -> Command {
        let (program, args, dir): (PathBuf, Vec<String>, Option<PathBuf>) =
            match self.implementation {
                Implementation::Rust | Implementation::HelloWorld => {
                    (self.artifact(), Vec::new(), None)
                }
                Implementation::Python => (
                    self.peer.join("python"),
                    vec![
                        "-m".into(),
                        "awslambdaric".into(),
                        format!("handlers.{}", self.function.replace('-', "_")),
                    ],
                    Some(self.root.join("bench/peer")),
                ),
            };
        let mut command = match environment.cgroup {
            Some(cgroup) if environment.settings.throttle_init => {
                let mut shell = Command::new("/bin/sh");
                shell
                    .args(["-c", "echo $$ > \"$0\" && exec \"$@\""])
                    .arg(cgroup.procs_file())
                    .arg(&program)
                    .args(&args);
                shell
            }
            _ => {
                let mut direct = Command::new(&program);
                direct.args(&args);
                direct
            }
        };
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", self.function)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                environment.memory.0.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_LEVEL", "WARN")
            // rustls-native-certs (the SDK's trust for a custom https endpoint) reads only this
            // file when it is set; botocore reads its own variable.
            .env("SSL_CERT_FILE", self.ca_file)
            .env("AWS_CA_BUNDLE", self.ca_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Starts the process and waits for its first `invocation/next`, the end of its init; from
    /// then on it runs under the quota (if it did not already). Returns the init time.
    async fn start(
        &self,
        api: &RuntimeApi,
        environment: &Environment<'_>,
    ) -> Result<(Child, Duration)> {
        let spawned = Instant::now();
        let child = self.command(api, environment).spawn()?;
        let ready = api.first_poll(Duration::from_secs(60)).await?;
        if let (Some(cgroup), false) = (environment.cgroup, environment.settings.throttle_init) {
            cgroup.add(child.id().ok_or("the function exited during init")?)?;
        }
        Ok((child, ready - spawned))
    }

    pub(super) fn artifact(&self) -> PathBuf {
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
    pub(super) fn arm64_artifact(&self) -> PathBuf {
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

/// How many cold starts and warm invocations each memory size gets.
#[derive(Clone, Copy)]
pub(super) struct Counts {
    pub cold: usize,
    pub warm: usize,
}

impl Counts {
    /// The requests one memory size answers: one per cold start, one to warm the environment,
    /// then each warm series.
    pub(super) fn invocations(self) -> usize {
        self.cold + 1 + 2 * self.warm
    }
}

/// Measures `launch` at one memory size; `invocation` counts the workload's requests across
/// memory sizes, so that each one is new.
pub(super) async fn measure(
    launch: &Launch<'_>,
    environment: &Environment<'_>,
    workload: &Workload,
    counts: Counts,
    invocation: &mut usize,
) -> Result<Figures> {
    if let Some(cgroup) = environment.cgroup {
        cgroup.limit(environment.settings.period, environment.memory.share())?;
    }
    let mut figures = Figures::default();
    for _ in 0..counts.cold {
        if !wait_for_quiet_machine().await {
            figures.noisy_cold_starts += 1;
        }
        let api = RuntimeApi::start(TIMEOUT).await?;
        let (mut child, init) = launch.start(&api, environment).await?;
        figures.init_ms.push(millis(init));
        let first = answered(&api, workload.event(*invocation)?).await?;
        figures.first_ms.push(millis(first));
        *invocation += 1;
        figures.peak_rss_kib = figures.peak_rss_kib.max(peak_rss(&child));
        child.kill().await?;
    }

    let api = RuntimeApi::start(TIMEOUT).await?;
    let (mut child, _) = launch.start(&api, environment).await?;
    answered(&api, workload.event(*invocation)?).await?;
    *invocation += 1;
    let cpu_before = cpu_ms(&child).unwrap_or(0.0);
    let requests_before = launch.proxy.request_count();
    let overrun_before = launch.proxy.server_overrun();
    for _ in 0..counts.warm {
        let billed = answered(&api, workload.event(*invocation)?).await?;
        figures.back_to_back_ms.push(millis(billed));
        *invocation += 1;
    }
    let pace = environment.settings.pace;
    let mut next_start = Instant::now();
    for _ in 0..counts.warm {
        let now = Instant::now();
        if now < next_start {
            tokio::time::sleep_until(next_start.into()).await;
        } else if !figures.paced_ms.is_empty() {
            figures.late_starts += 1;
        }
        next_start = Instant::now() + pace;
        let billed = answered(&api, workload.event(*invocation)?).await?;
        figures.paced_ms.push(millis(billed));
        *invocation += 1;
    }
    let warm = 2 * counts.warm;
    figures.cpu_ms_per_invoke = (cpu_ms(&child).unwrap_or(0.0) - cpu_before) / warm as f64;
    let overrun = launch.proxy.server_overrun().saturating_sub(overrun_before);
    figures.overrun_ms = millis(overrun) / warm as f64;
    let requests = launch.proxy.requests_since(requests_before);
    figures.round_trips = requests.len() as f64 / warm as f64;
    let mut capacity = Capacity::default();
    for (operation, body) in &requests {
        capacity.add(Capacity::of(operation, body));
    }
    figures.capacity = capacity.per(warm);
    figures.peak_rss_kib = figures.peak_rss_kib.max(peak_rss(&child));
    child.kill().await?;
    Ok(figures)
}

fn peak_rss(child: &Child) -> u64 {
    child.id().and_then(xtask::peak_rss_kib).unwrap_or(0)
}

/// Invokes and insists on a successful HTTP answer, so that a broken function is not timed;
/// returns the invocation's duration as Lambda bills it (unrounded), up to the runtime's next
/// poll.
async fn answered(api: &RuntimeApi, event: Vec<u8>) -> Result<Duration> {
    match api.invoke_billed(event, TIMEOUT).await? {
        (Outcome::Response(body), billed) => {
            let response: Value = serde_json::from_slice(&body)?;
            match response["statusCode"].as_u64() {
                Some(200..=299) => Ok(billed),
                _ => Err(format!("the function answered {response}").into()),
            }
        }
        (other, _) => Err(format!("the function failed: {other:?}").into()),
    }
}

/// Waits up to 2 s for both cores to be at least 80% idle over a quarter second.
async fn wait_for_quiet_machine() -> bool {
    for _ in 0..8 {
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

/// CPU time the process's threads have used, from each one's /proc/<pid>/task/<tid>/schedstat
/// (nanoseconds on CPU): the runtime's own thread, and any other it starts.
fn cpu_ms(child: &Child) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", child.id()?)).ok()?;
    let nanos: f64 = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|schedstat| schedstat.split_whitespace().next()?.parse::<f64>().ok())
        .sum();
    Some(nanos / 1e6)
}

/// The size of `path` zipped at the highest compression, as Lambda would receive it.
pub(super) fn zipped_size(path: &Path) -> Result<u64> {
    let output = std::process::Command::new("zip")
        .args(["-q", "-j", "-9", "-"])
        .arg(path)
        .output()?;
    if !output.status.success() {
        return Err(format!("zip failed on {}", path.display()).into());
    }
    Ok(output.stdout.len() as u64)
}

pub(super) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub(super) fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}
