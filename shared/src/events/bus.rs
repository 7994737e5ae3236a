//! The stack's event bus: one `PutEvents` call per [`Call`], its rejected entries retried.

use std::time::{Duration, Instant};

use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::primitives::{DateTime, DateTimeFormat};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::batch::Call;
use super::event::{DomainEvent, SOURCE};

/// How many times a call's rejected entries are sent in all, and the pause before the first
/// retry, doubled for each next one: 100, 200 and 400 ms.
const ENTRY_ATTEMPTS: u32 = 4;
const ENTRY_BACKOFF: Duration = Duration::from_millis(100);

/// What a call needs of the invocation to start: the SDK's 5 s for it, and a margin to answer.
pub const CALL_BUDGET: Duration = Duration::from_secs(6);

/// What became of one entry of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Published,
    /// EventBridge refused the entry itself (`MalformedDetail`, `InvalidArgument`, ...): it can
    /// never be published.
    Refused(String),
    /// Still failing after the retries (throttled, EventBridge's own failure, unreachable):
    /// a later invocation may succeed.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Bus {
    client: aws_sdk_eventbridge::Client,
    name: String,
}

impl Bus {
    /// `name`: the bus's name or ARN.
    pub fn new(client: aws_sdk_eventbridge::Client, name: String) -> Self {
        Self { client, name }
    }

    /// Sends the call's entries; entries EventBridge rejects inside a successful call
    /// (`FailedEntryCount`) are sent again, alone, up to [`ENTRY_ATTEMPTS`] times in all. A
    /// call that fails as a whole is not sent again here: the SDK has retried it already.
    /// No retry starts with less than [`CALL_BUDGET`] left before `deadline`. Returns what
    /// became of each entry, in the call's order.
    pub async fn put(&self, call: &Call, deadline: Option<Instant>) -> Vec<Sent> {
        let events: Vec<&DomainEvent> = call.entries.iter().map(|(_, e)| e).collect();
        let mut sent = vec![Sent::Failed("not sent".into()); events.len()];
        let mut pending: Vec<usize> = (0..events.len()).collect();
        for attempt in 0..ENTRY_ATTEMPTS {
            if attempt > 0 {
                let pause = ENTRY_BACKOFF * 2u32.pow(attempt - 1);
                if !time_for_a_call(deadline, pause) {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
            let entries = pending.iter().map(|&i| self.entry(events[i])).collect();
            let output = match self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => output,
                Err(error) => {
                    let reason = DisplayErrorContext(error).to_string();
                    for &i in &pending {
                        sent[i] = Sent::Failed(reason.clone());
                    }
                    return sent;
                }
            };
            let results = output.entries();
            let mut rejected = Vec::new();
            for (position, &i) in pending.iter().enumerate() {
                let result = results.get(position);
                match result.and_then(|r| r.error_code()) {
                    None if result.is_some_and(|r| r.event_id().is_some()) => {
                        sent[i] = Sent::Published;
                    }
                    None => {
                        sent[i] = Sent::Failed("no result for the entry".into());
                        rejected.push(i);
                    }
                    Some(code) if refused(code) => sent[i] = Sent::Refused(code.to_owned()),
                    Some(code) => {
                        sent[i] = Sent::Failed(code.to_owned());
                        rejected.push(i);
                    }
                }
            }
            if rejected.is_empty() {
                break;
            }
            tracing::warn!(
                rejected = rejected.len(),
                attempt = attempt + 1,
                "EventBridge rejected entries of a PutEvents call"
            );
            pending = rejected;
        }
        sent
    }

    fn entry(&self, event: &DomainEvent) -> PutEventsRequestEntry {
        let time = DateTime::from_str(&event.occurred_at, DateTimeFormat::DateTime).ok();
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.name)
            .source(SOURCE)
            .detail_type(event.detail_type)
            .detail(&event.detail)
            .set_time(time)
            .build()
    }
}

/// Whether a call started after `pause` still has [`CALL_BUDGET`] before `deadline`.
pub fn time_for_a_call(deadline: Option<Instant>, pause: Duration) -> bool {
    deadline.is_none_or(|deadline| {
        deadline.saturating_duration_since(Instant::now()) >= CALL_BUDGET + pause
    })
}

/// The error codes EventBridge documents as not retryable because of the entry itself. Any
/// other code (throttling, an internal failure, a permission not yet granted) is retried.
fn refused(code: &str) -> bool {
    matches!(
        code,
        "MalformedDetail" | "InvalidArgument" | "RedactionFailure"
    )
}
