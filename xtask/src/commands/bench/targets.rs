//! The performance targets, judged on a run's figures.

use serde_json::{Value, json};
use xtask::FUNCTIONS;

use super::Implementation;
use super::model::{Memory, Settings};
use super::report::{Summary, finite, number};

/// One target as measured: `value` must be at most (or, where `at_least`, at least) `limit`;
/// without a limit it is reported beside the targets, not judged.
pub(super) struct Target {
    pub function: &'static str,
    pub name: &'static str,
    pub value: f64,
    pub limit: Option<f64>,
    pub at_least: bool,
    /// False where the figure depends on a CPU quota that the run could not enforce.
    pub judged: bool,
    /// Where the value was found (the memory size of the worst case), as text after it.
    pub place: String,
}

impl Target {
    pub(super) fn met(&self) -> Option<bool> {
        let limit = self.limit.filter(|_| self.judged)?;
        Some(if self.at_least {
            self.value >= limit
        } else {
            self.value <= limit
        })
    }

    pub(super) fn json(&self) -> Value {
        json!({
            "function": self.function, "target": self.name, "measured": finite(self.value),
            "where": self.place.trim(), "limit": self.limit, "at_least": self.at_least,
            "judged": self.judged, "met": self.met(),
        })
    }
}

/// A megabyte as the targets count it, in MiB.
const MB_IN_MIB: f64 = 1e6 / (1024.0 * 1024.0);

/// The memory size the warm targets are stated for.
const SMALLEST: Memory = Memory(128);

/// Judges the targets; where `throttled` is false (no CPU quota could be set), those that
/// depend on the quota are reported without a verdict.
pub(super) fn judge(summaries: &[Summary], settings: Settings, throttled: bool) -> Vec<Target> {
    let round_trip_ms = settings.round_trip.as_secs_f64() * 1000.0;
    let mut targets = Vec::new();
    for function in FUNCTIONS {
        let of = |implementation| -> Vec<&Summary> {
            summaries
                .iter()
                .filter(|s| s.function == function && s.implementation == implementation)
                .collect()
        };
        let (ours, peer) = (of(Implementation::Rust), of(Implementation::Python));
        if ours.is_empty() {
            continue;
        }
        // `quota`: whether the figure depends on the CPU quota.
        let mut target = |name, (value, place): (f64, String), limit, at_least, quota: bool| {
            targets.push(Target {
                function,
                name,
                value,
                limit,
                at_least,
                judged: throttled || !quota,
                place,
            });
        };
        if let Some(small) = ours.iter().find(|s| s.memory == SMALLEST) {
            let limit = match function {
                "get-user" => Some(("≤ round trip + 2 ms", round_trip_ms + 2.0)),
                "create-user" => Some((
                    "≤ round trips × round trip + 3 ms",
                    small.round_trips * round_trip_ms + 3.0,
                )),
                _ => None,
            };
            if let Some((rule, limit)) = limit {
                let overrun = format!(
                    " (the emulator's time beyond the round trips: {} ms)",
                    number(small.overrun_ms, 2)
                );
                target(
                    if function == "get-user" {
                        "warm billed p50 at 128 MB, paced (ms) ≤ round trip + 2 ms"
                    } else {
                        "warm billed p50 at 128 MB, paced (ms) ≤ round trips × round trip + 3 ms"
                    },
                    (small.paced_p50, overrun),
                    Some(limit),
                    false,
                    true,
                );
                target(
                    "the same, less the emulator's time beyond the round trips",
                    (small.paced_p50_less_overrun, format!(" (limit {rule})")),
                    None,
                    false,
                    true,
                );
            }
        }
        target(
            "cold request ÷ warm p50, paced, unrounded (worst size)",
            worst(&ours, |s| s.cold_ms / s.paced_raw_p50),
            Some(3.0),
            false,
            true,
        );
        let pairs: Vec<(&Summary, &Summary)> = ours
            .iter()
            .filter_map(|o| peer.iter().find(|p| p.memory == o.memory).map(|p| (*o, *p)))
            .collect();
        if !pairs.is_empty() {
            let ratio = |value: fn(&Summary) -> f64| {
                pairs
                    .iter()
                    .map(|(o, p)| (value(p) / value(o), o.memory))
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(v, m)| (v, format!(" (at {} MB)", m.0)))
                    .unwrap_or((f64::NAN, String::new()))
            };
            target(
                "python cold request ÷ cold request (worst size)",
                ratio(|s| s.cold_ms),
                Some(10.0),
                true,
                true,
            );
            target(
                "python Lambda duration cost ÷ ours, paced (worst size)",
                ratio(|s| s.duration_usd),
                Some(5.0),
                true,
                true,
            );
            target(
                "python Lambda + DynamoDB cost ÷ ours (least of the sizes)",
                ratio(Summary::usd),
                None,
                true,
                true,
            );
        }
        target(
            "peak RSS (MB, largest of the sizes)",
            worst(&ours, |s| s.peak_rss_mib / MB_IN_MIB),
            Some(10.0),
            false,
            false,
        );
        if let Some(kib) = ours[0].arm64_artifact_kib {
            target(
                "arm64 zip (MB)",
                (kib * 1024.0 / 1e6, String::new()),
                Some(3.0),
                false,
                false,
            );
        }
        if let Some(full) = ours.iter().find(|s| !s.memory.throttled()) {
            // Judged, as before the model, on the function's own time: the modelled round
            // trips are a constant that would flatten the ratio.
            // With nothing left of the p50 (no function time measured), there is no ratio.
            let modelled = full.round_trips * round_trip_ms;
            let own_p50 = full.raw_p50 - modelled;
            let ratio = if own_p50 > 0.0 {
                (full.raw_p99 - modelled) / own_p50
            } else {
                f64::NAN
            };
            target(
                "warm p99 ÷ p50, back to back, whole CPU, less the modelled round trips",
                (ratio, String::new()),
                Some(2.0),
                false,
                false,
            );
        }
    }
    targets
}

/// The largest `value` over the memory sizes, and the size it was found at.
fn worst(summaries: &[&Summary], value: fn(&Summary) -> f64) -> (f64, String) {
    let pick = summaries
        .iter()
        .map(|s| (value(s), s.memory))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    pick.map_or((f64::NAN, String::new()), |(v, m)| {
        (v, format!(" (at {} MB)", m.0))
    })
}
