//! bench/chart.svg: bars on a log scale, ours beside the peer's, at the smallest memory size
//! measured, for what people feel and pay for.

use std::fmt::Write as _;

use super::Implementation;
use super::report::Summary;

/// A metric's label and how it is read from a summary.
type Metric = (&'static str, fn(&Summary) -> f64);

/// One pair of bars.
struct Bars {
    label: String,
    ours: f64,
    peer: f64,
}

pub(super) fn chart(summaries: &[Summary]) -> String {
    let smallest = summaries.iter().map(|s| s.memory).min();
    let mut shown = Vec::new();
    for ours in summaries
        .iter()
        .filter(|s| Some(s.memory) == smallest && s.implementation == Implementation::Rust)
    {
        let Some(peer) = summaries.iter().find(|p| {
            p.function == ours.function
                && p.memory == ours.memory
                && p.implementation == Implementation::Python
        }) else {
            continue;
        };
        let metrics: [Metric; 4] = [
            ("cold request (ms)", |s| s.cold_ms),
            ("warm billed p50, paced (ms)", |s| s.paced_p50),
            ("Lambda + DynamoDB $/M", Summary::usd),
            ("peak RSS (MiB)", |s| s.peak_rss_mib),
        ];
        for (metric, value) in metrics {
            shown.push(Bars {
                label: format!("{} {metric}", ours.function),
                ours: value(ours),
                peer: value(peer),
            });
        }
    }
    let (bar, gap, label_width, width) = (14.0, 10.0, 300.0, 820.0);
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
    let memory = smallest.map(|m| m.label()).unwrap_or_default();
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"18\" font-weight=\"bold\">rust (orange) and the python peer (blue) at {memory}, log scale</text>\n"
    );
    for (i, row) in shown.iter().enumerate() {
        let y = 30.0 + i as f64 * (2.0 * bar + gap);
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{:.1}\">{}</text>",
            y + bar + 4.0,
            row.label
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
                 <text x=\"{:.1}\" y=\"{:.1}\">{value:.3}</text>",
                bar - 2.0,
                label_width + length + 4.0,
                top + bar - 4.0
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}
