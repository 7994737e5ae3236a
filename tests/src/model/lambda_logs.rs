//! What Lambda keeps of a function's output, as its documentation of log-level filtering says
//! (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html>):
//!
//! - Only with the JSON log format does Lambda filter: with text, every line reaches the log group.
//! - A line is kept when its level is the application log level or less detailed (TRACE, DEBUG,
//!   INFO, WARN, ERROR, FATAL, from most to least detailed).
//! - A line's level is its JSON object's `level`; a line that is not a JSON object, whose `level`
//!   is missing or invalid, or that has no valid RFC 3339 `timestamp`, is INFO.
//! - System logs (Lambda's own, such as each invocation's REPORT line, at INFO) are filtered by
//!   the system log level the same way.

use serde_json::Value;

const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// A level's rank, from 0 (TRACE) to 5 (FATAL); `None` for what Lambda does not know.
fn rank(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| l.eq_ignore_ascii_case(level))
}

/// The level Lambda gives a line of application output.
pub fn level_of(line: &str) -> &'static str {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
        return "INFO";
    };
    let timestamped = object
        .get("timestamp")
        .and_then(Value::as_str)
        .is_some_and(is_rfc3339);
    let level = object.get("level").and_then(Value::as_str).and_then(rank);
    match (timestamped, level) {
        (true, Some(rank)) => LEVELS[rank],
        _ => "INFO",
    }
}

/// Whether Lambda sends `line` to the log group of a function with this log format and
/// application log level.
pub fn kept(line: &str, log_format: &str, application_level: &str) -> bool {
    if !log_format.eq_ignore_ascii_case("JSON") {
        return true;
    }
    let threshold = rank(application_level).unwrap_or(2);
    rank(level_of(line)).unwrap_or(2) >= threshold
}

/// Whether a system log line at `level` (REPORT is INFO) is kept at this system log level.
pub fn system_kept(level: &str, system_level: &str) -> bool {
    rank(level).unwrap_or(2) >= rank(system_level).unwrap_or(2)
}

/// `YYYY-MM-DDTHH:MM:SS`, an optional fraction, then `Z` or `±HH:MM`.
fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let at = |index: usize, expected: &[u8]| bytes.get(index).is_some_and(|b| expected.contains(b));
    let date_time = digits(0..4)
        && at(4, b"-")
        && digits(5..7)
        && at(7, b"-")
        && digits(8..10)
        && at(10, b"Tt")
        && digits(11..13)
        && at(13, b":")
        && digits(14..16)
        && at(16, b":")
        && digits(17..19);
    if !date_time {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return false;
        }
        rest = &fraction[end..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}
