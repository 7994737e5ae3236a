//! The report: per function and memory size, latency as Lambda bills it, DynamoDB round trips,
//! CPU, memory and cost per million requests; the memory size to deploy; the targets. Written to
//! bench/results.md, bench/results.json and bench/chart.svg, and printed.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};
use xtask::{FUNCTIONS, Result};

use super::cost::{self, Candidate};
use super::measure::{Counts, percentile};
use super::model::{Memory, Settings};
use super::targets::{self, Target};
use super::{Implementation, Measured, workload};

/// The run, as the report describes it.
pub(super) struct Run<'a> {
    pub profile: &'a str,
    pub backend: &'a str,
    /// The emulator's own GetItem, with no client and no network model.
    pub getitem_ms: &'a [f64],
    pub settings: Settings,
    /// Whether the memory sizes below one vCPU ran under their quota.
    pub throttled: bool,
    pub latency_bound_ms: f64,
    pub counts: Counts,
    pub results: &'a [Measured],
}

/// What the report shows of one implementation of one function at one memory size.
pub(super) struct Summary {
    pub function: &'static str,
    pub implementation: Implementation,
    pub memory: Memory,
    pub cold_ms: f64,
    pub init_ms: f64,
    pub first_ms: f64,
    pub back_to_back_p50: f64,
    pub back_to_back_p99: f64,
    pub paced_p50: f64,
    pub paced_p99: f64,
    pub late_starts: usize,
    pub round_trips: f64,
    /// The emulator's time beyond the modelled round trips, per request.
    pub overrun_ms: f64,
    /// Billed paced p50 of the duration less [`Summary::overrun_ms`]: what it would be with a
    /// server that answers within the round trip, as DynamoDB is modelled to.
    pub paced_p50_less_overrun: f64,
    /// Unbilled paced p50, for ratios with unbilled figures.
    pub paced_raw_p50: f64,
    /// The mean billed duration of the paced series: what a million such requests are billed.
    pub paced_mean: f64,
    pub rru: f64,
    pub wru: f64,
    pub cpu_ms: f64,
    pub peak_rss_mib: f64,
    pub artifact_kib: f64,
    pub arm64_artifact_kib: Option<f64>,
    /// Lambda (requests and duration, billed on the paced mean) per million requests.
    pub lambda_usd: f64,
    /// The duration part alone of `lambda_usd`.
    pub duration_usd: f64,
    pub dynamodb_usd: f64,
    /// The init duration of a million cold starts.
    pub cold_start_usd: f64,
    /// Raw (unbilled) warm p50 and p99 back to back, for the full-CPU comparison.
    pub raw_p50: f64,
    pub raw_p99: f64,
}

impl Summary {
    fn of(measured: &Measured) -> Self {
        let f = &measured.figures;
        let billed = |values: &[f64], p| cost::billed_ms(percentile(values, p));
        let cold: Vec<f64> = f
            .init_ms
            .iter()
            .zip(&f.first_ms)
            .map(|(i, v)| i + v)
            .collect();
        let paced_p50 = billed(&f.paced_ms, 50.0);
        let paced_mean = f
            .paced_ms
            .iter()
            .map(|&ms| cost::billed_ms(ms))
            .sum::<f64>()
            / f.paced_ms.len() as f64;
        let init_ms = percentile(&f.init_ms, 50.0);
        Self {
            function: measured.function,
            implementation: measured.implementation,
            memory: measured.memory,
            cold_ms: percentile(&cold, 50.0),
            init_ms,
            first_ms: percentile(&f.first_ms, 50.0),
            back_to_back_p50: billed(&f.back_to_back_ms, 50.0),
            back_to_back_p99: billed(&f.back_to_back_ms, 99.0),
            paced_p50,
            paced_p99: billed(&f.paced_ms, 99.0),
            late_starts: f.late_starts,
            round_trips: f.round_trips,
            overrun_ms: f.overrun_ms,
            paced_p50_less_overrun: cost::billed_ms(
                (percentile(&f.paced_ms, 50.0) - f.overrun_ms).max(0.0),
            ),
            paced_raw_p50: percentile(&f.paced_ms, 50.0),
            paced_mean,
            rru: f.capacity.rru,
            wru: f.capacity.wru,
            cpu_ms: f.cpu_ms_per_invoke,
            peak_rss_mib: f.peak_rss_kib as f64 / 1024.0,
            artifact_kib: f.artifact_bytes as f64 / 1024.0,
            arm64_artifact_kib: f.arm64_artifact_bytes.map(|b| b as f64 / 1024.0),
            lambda_usd: cost::lambda_usd_per_million(measured.memory, paced_mean),
            duration_usd: cost::duration_usd(measured.memory, paced_mean) * 1e6,
            dynamodb_usd: f.capacity.usd_per_million(),
            cold_start_usd: cost::duration_usd(measured.memory, cost::billed_ms(init_ms)) * 1e6,
            raw_p50: percentile(&f.back_to_back_ms, 50.0),
            raw_p99: percentile(&f.back_to_back_ms, 99.0),
        }
    }

    /// Lambda and DynamoDB per million requests; API Gateway is shown apart.
    pub(super) fn usd(&self) -> f64 {
        self.lambda_usd + self.dynamodb_usd
    }
}

pub(super) fn write(root: &Path, run: &Run<'_>) -> Result<()> {
    let summaries: Vec<Summary> = run.results.iter().map(Summary::of).collect();
    let targets = targets::judge(&summaries, run.settings, run.throttled);
    let mut markdown = header(run)?;
    model_table(&mut markdown, &summaries)?;
    let recommendations = if run.throttled {
        recommendations(&mut markdown, &summaries, run.latency_bound_ms)?
    } else {
        markdown.push_str(
            "No memory size is recommended, and the targets that depend on the CPU quota are \
             not judged: no quota was enforced.\n\n",
        );
        Vec::new()
    };
    targets_table(&mut markdown, &targets, run.settings)?;
    full_cpu_table(&mut markdown, &summaries)?;

    let out = root.join("bench");
    std::fs::write(out.join("results.md"), &markdown)?;
    let document = json!({
        "backend": run.backend,
        "profile": run.profile,
        "arch": std::env::consts::ARCH,
        "model": {
            "cfs_period_ms": run.settings.period.as_secs_f64() * 1000.0,
            "dynamodb_round_trip_ms": run.settings.round_trip.as_secs_f64() * 1000.0,
            "pace_ms": run.settings.pace.as_secs_f64() * 1000.0,
            "throttle_init": run.settings.throttle_init,
            "quota_enforced": run.throttled,
            "cold_starts": run.counts.cold,
            "warm_per_series": run.counts.warm,
        },
        "direct_getitem_ms": {"p50": percentile(run.getitem_ms, 50.0), "p99": percentile(run.getitem_ms, 99.0)},
        "requests": workload::REQUESTS,
        "rows": summaries.iter().map(row_json).collect::<Vec<_>>(),
        "recommendations": recommendations,
        "targets": targets.iter().map(Target::json).collect::<Vec<_>>(),
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&document)?,
    )?;
    std::fs::write(out.join("chart.svg"), super::chart::chart(&summaries))?;
    println!("{markdown}");
    println!("written: bench/results.md, bench/results.json, bench/chart.svg");
    Ok(())
}

fn header(run: &Run<'_>) -> Result<String> {
    let all = || run.results.iter().map(|m| &m.figures);
    let noisy: usize = all().map(|f| f.noisy_cold_starts).sum();
    let cold: usize = all().map(|f| f.init_ms.len()).sum();
    let s = run.settings;
    let mut text = format!(
        "Measured by `cargo xtask bench` on {arch} ({profile} profile), against {backend} behind \
         the fault proxy. The model: each memory size gets its share of one vCPU (1,769 MB = one \
         vCPU) as a CFS quota every {period} ms{quota}; init runs on {init}; every DynamoDB \
         request is answered {rtt} ms after it reached the proxy at the soonest (the emulator's own time \
         counted within it), and a new connection waits one round trip for TCP and one for its \
         TLS 1.3 handshake. Warm series: {warm} invocations back to back, then {warm} started \
         {pace} ms apart; {cold} cold starts per memory size. An invocation lasts from its event \
         handed out to the runtime's next poll, billed as Lambda bills it, rounded up to the \
         whole millisecond. The emulator's own GetItem, without client or network: p50 \
         {get50:.3} ms.{noisy}\n\nThe requests: {requests}\n\n\
         Prices (us-east-1, arm64): Lambda $0.20 per million requests and ${gbs} per GB-second, \
         billed here on the mean billed duration of the paced series; DynamoDB on demand $0.125 \
         per million RRU and $0.625 per million WRU, capacity counted from the requests each implementation sent; API Gateway \
         HTTP API ${apigw:.2} per million requests, the same for every function and left out of \
         the columns below.\n\n",
        arch = std::env::consts::ARCH,
        profile = run.profile,
        backend = run.backend,
        period = number(s.period.as_secs_f64() * 1000.0, 0),
        quota = if run.throttled {
            ""
        } else {
            " (**not enforced: no writable cgroup, every size ran on the whole CPU**)"
        },
        init = if s.throttle_init {
            "the same quota"
        } else {
            "the whole CPU, the quota applying from the first `invocation/next`"
        },
        rtt = number(s.round_trip.as_secs_f64() * 1000.0, 1),
        warm = run.counts.warm,
        pace = number(s.pace.as_secs_f64() * 1000.0, 0),
        cold = run.counts.cold,
        get50 = percentile(run.getitem_ms, 50.0),
        noisy = if noisy > 0 {
            format!(" {noisy} of {cold} cold starts began on a busy machine.")
        } else {
            String::new()
        },
        requests = workload::REQUESTS,
        gbs = cost::LAMBDA_ARM64_GB_SECOND_USD,
        apigw = cost::HTTP_API_REQUEST_USD * 1e6,
    );
    writeln!(text)?;
    Ok(text)
}

fn model_table(out: &mut String, summaries: &[Summary]) -> Result<()> {
    out.push_str(
        "Cold request = init + first invoke (the median of their sums; init and first invoke \
         each their own median). Warm columns are billed durations, p50 / p99. RT = DynamoDB \
         requests per API request. $/M = per million requests; Lambda billed on the paced \
         series' mean; cold start = the init duration of a million cold starts, apart.\n\n\
         | function | memory | impl | cold request (ms) | init (ms) | first invoke (ms) | back to back (ms) | paced (ms) | RT | RRU / WRU | CPU (ms) | peak RSS (MiB) | Lambda $/M | DynamoDB $/M | Lambda + DynamoDB $/M | cold start $/M |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in summaries {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} / {} | {} / {}{} | {} | {} / {} | {} | {} | {} | {} | {} | {} |",
            s.function,
            s.memory.label(),
            s.implementation.name(),
            number(s.cold_ms, 1),
            number(s.init_ms, 1),
            number(s.first_ms, 1),
            number(s.back_to_back_p50, 0),
            number(s.back_to_back_p99, 0),
            number(s.paced_p50, 0),
            number(s.paced_p99, 0),
            if s.late_starts > 0 {
                format!(" ({} late)", s.late_starts)
            } else {
                String::new()
            },
            number(s.round_trips, 2),
            number(s.rru, 1),
            number(s.wru, 1),
            number(s.cpu_ms, 2),
            number(s.peak_rss_mib, 1),
            number(s.lambda_usd, 3),
            number(s.dynamodb_usd, 3),
            number(s.usd(), 3),
            number(s.cold_start_usd, 3),
        )?;
    }
    out.push('\n');
    Ok(())
}

/// The memory size per function and implementation, printed and returned for the JSON.
fn recommendations(out: &mut String, summaries: &[Summary], bound_ms: f64) -> Result<Vec<Value>> {
    writeln!(
        out,
        "The memory size to deploy: the one that costs least (Lambda + DynamoDB) among those whose \
         paced warm p99 stays within {bound_ms} ms.\n\n\
         | function | impl | memory | Lambda + DynamoDB $/M | with API Gateway $/M | paced p99 (ms) |\n\
         |---|---|---|---:|---:|---:|"
    )?;
    let mut json = Vec::new();
    for function in FUNCTIONS {
        for implementation in [Implementation::Rust, Implementation::Python] {
            let of_this: Vec<&Summary> = summaries
                .iter()
                .filter(|s| s.function == function && s.implementation == implementation)
                .collect();
            if of_this.is_empty() {
                continue;
            }
            let candidates: Vec<Candidate> = of_this
                .iter()
                .map(|s| Candidate {
                    memory: s.memory,
                    usd_per_million: s.usd(),
                    paced_p99_ms: s.paced_p99,
                })
                .collect();
            let name = implementation.name();
            match cost::recommend(&candidates, bound_ms) {
                Some(best) => {
                    writeln!(
                        out,
                        "| {function} | {name} | {} | {} | {} | {} |",
                        best.memory.label(),
                        number(best.usd_per_million, 3),
                        number(best.usd_per_million + cost::HTTP_API_REQUEST_USD * 1e6, 3),
                        number(best.paced_p99_ms, 0),
                    )?;
                    json.push(json!({
                        "function": function, "implementation": name, "memory_mb": best.memory.0,
                        "usd_per_million": best.usd_per_million, "paced_p99_ms": best.paced_p99_ms,
                    }));
                }
                None => {
                    writeln!(out, "| {function} | {name} | none within the bound | | | |")?;
                    json.push(
                        json!({"function": function, "implementation": name, "memory_mb": null}),
                    );
                }
            }
        }
    }
    out.push('\n');
    Ok(json)
}

fn targets_table(out: &mut String, targets: &[Target], settings: Settings) -> Result<()> {
    out.push_str(if settings.are_default() {
        "Targets, judged under the model as stated above.\n\n"
    } else {
        "Targets. **They are stated for 2 ms per DynamoDB request, a 20 ms CFS period, 20 ms \
         pacing and init on the whole CPU; this run used other settings (above), so they are \
         judged on figures they were not stated for.**\n\n"
    });
    out.push_str("| function | target | measured | limit | met |\n|---|---|---:|---:|---|\n");
    for target in targets {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            target.function,
            target.name,
            number(target.value, 2) + &target.place,
            match target.limit {
                Some(limit) => format!(
                    "{} {}",
                    if target.at_least { "≥" } else { "≤" },
                    number(limit, 2)
                ),
                None => "(no target)".into(),
            },
            match target.met() {
                Some(true) => "met",
                Some(false) => "**not met**",
                None if target.limit.is_some() => "not judged: no CPU quota",
                None => "",
            },
        )?;
    }
    out.push('\n');
    Ok(())
}

/// The figures of the earlier report: each function on the whole CPU, back to back, unbilled,
/// beside the peer.
fn full_cpu_table(out: &mut String, summaries: &[Summary]) -> Result<()> {
    out.push_str(
        "On the whole CPU (1,769 MB), back to back, durations as measured (not rounded):\n\n\
         | function | metric | rust | python peer | peer ÷ rust |\n|---|---|---:|---:|---:|\n",
    );
    type Metric = (&'static str, fn(&Summary) -> f64);
    const METRICS: [Metric; 10] = [
        ("init, median (ms)", |s| s.init_ms),
        ("first invoke, median (ms)", |s| s.first_ms),
        ("warm p50 (ms)", |s| s.raw_p50),
        ("warm p99 (ms)", |s| s.raw_p99),
        ("peak RSS (MiB)", |s| s.peak_rss_mib),
        ("CPU per warm invoke (ms)", |s| s.cpu_ms),
        ("DynamoDB requests per request", |s| s.round_trips),
        ("emulator's time beyond the round trips (ms)", |s| {
            s.overrun_ms
        }),
        ("x86_64 artifact, zipped (KiB)", |s| s.artifact_kib),
        ("arm64 artifact, zipped (KiB)", |s| {
            s.arm64_artifact_kib.unwrap_or(f64::NAN)
        }),
    ];
    let full = |function: &str, implementation| {
        summaries.iter().find(|s| {
            s.function == function && s.implementation == implementation && !s.memory.throttled()
        })
    };
    for function in FUNCTIONS {
        let (Some(ours), Some(peer)) = (
            full(function, Implementation::Rust),
            full(function, Implementation::Python),
        ) else {
            continue;
        };
        for (metric, value) in METRICS {
            let (ours, peer) = (value(ours), value(peer));
            writeln!(
                out,
                "| {function} | {metric} | {} | {} | {}× |",
                number(ours, 3),
                number(peer, 3),
                number(peer / ours, 1)
            )?;
        }
    }
    Ok(())
}

fn row_json(s: &Summary) -> Value {
    json!({
        "function": s.function,
        "implementation": s.implementation.name(),
        "memory_mb": s.memory.0,
        "cpu_share": s.memory.share(),
        "cold_request_ms": finite(s.cold_ms),
        "init_ms": finite(s.init_ms),
        "first_invoke_ms": finite(s.first_ms),
        "billed_back_to_back_ms": {"p50": finite(s.back_to_back_p50), "p99": finite(s.back_to_back_p99)},
        "billed_paced_ms": {"p50": finite(s.paced_p50), "p99": finite(s.paced_p99)},
        "paced_late_starts": s.late_starts,
        "measured_back_to_back_ms": {"p50": finite(s.raw_p50), "p99": finite(s.raw_p99)},
        "dynamodb_requests_per_request": finite(s.round_trips),
        "emulator_overrun_ms_per_request": finite(s.overrun_ms),
        "billed_paced_mean_ms": finite(s.paced_mean),
        "rru_per_request": finite(s.rru),
        "wru_per_request": finite(s.wru),
        "cpu_ms_per_request": finite(s.cpu_ms),
        "peak_rss_mib": finite(s.peak_rss_mib),
        "artifact_kib": finite(s.artifact_kib),
        "arm64_artifact_kib": s.arm64_artifact_kib.map(finite),
        "usd_per_million": {
            "lambda": finite(s.lambda_usd),
            "lambda_duration": finite(s.duration_usd),
            "dynamodb": finite(s.dynamodb_usd),
            "lambda_and_dynamodb": finite(s.usd()),
            "api_gateway": cost::HTTP_API_REQUEST_USD * 1e6,
        },
        "cold_start_usd_per_million": finite(s.cold_start_usd),
    })
}

/// `value` with `decimals`, or "n/a" for what was not measured.
pub(super) fn number(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "n/a".into()
    }
}

/// JSON has no NaN: what was not measured is `null`.
pub(super) fn finite(value: f64) -> Value {
    if value.is_finite() {
        Value::from(value)
    } else {
        Value::Null
    }
}
