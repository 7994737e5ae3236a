//! One invocation: a batch of stream records in, its events on the bus, and the first record
//! that could not be published reported back (`ReportBatchItemFailures`), so Lambda retries
//! from it and only from it. A record still failing at [`GIVE_UP_AGE`] is dead-lettered
//! instead, before the event source mapping would give up on it and keep only its ids.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::LambdaEvent;
use serde::Serialize;
use tracing::Instrument;

use super::batch::{self, Call};
use super::bus::{self, Bus, Sent};
use super::dead_letter::{self, DeadLetters};
use super::event::DomainEvent;
use super::record::{Kind, Record, StreamEvent};
use crate::telemetry;

/// The metrics of this function, by name.
pub mod metric {
    /// Events EventBridge accepted.
    pub const PUBLISHED: &str = "EventsPublished";
    /// Records sent to the dead-letter queue.
    pub const DEAD_LETTERED: &str = "EventsDeadLettered";
    /// Invocations that reported a record back for Lambda to retry.
    pub const RETRIED: &str = "EventBatchesRetried";
}

/// How old a change may grow while its event keeps failing to publish (EventBridge
/// unreachable, or an entry rejected with a retryable code); past it, the change goes to the
/// dead-letter queue and the batch moves on. The event source mapping gives up on a record at
/// its `MaximumRecordAgeInSeconds` (an hour in template.yaml) and then keeps only its shard and
/// sequence numbers, not the change, so this must stay well below that: 50 minutes leaves ten
/// for Lambda's last retries, of 60 s at most each, and leaves the stream's 24 hours far off.
pub const GIVE_UP_AGE: Duration = Duration::from_secs(50 * 60);

#[derive(Debug, Clone)]
pub struct Publisher {
    pub bus: Bus,
    pub dead_letters: DeadLetters,
}

impl Publisher {
    /// Publishes to the bus `bus_name` (a name or an ARN) and dead-letters to `queue_url`, with
    /// clients built on `sdk`.
    pub fn new(sdk: &aws_config::SdkConfig, bus_name: String, queue_url: String) -> Self {
        Self {
            bus: Bus::new(aws_sdk_eventbridge::Client::new(sdk), bus_name),
            dead_letters: DeadLetters::new(aws_sdk_sqs::Client::new(sdk), queue_url),
        }
    }
}

/// The answer `ReportBatchItemFailures` reads: no item when the whole batch is done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// What an invocation did, counted for its summary line and metrics.
#[derive(Debug, Default)]
struct Tally {
    published: usize,
    dead_lettered: usize,
    ignored: usize,
    /// The index of the first record not done, if any.
    failed_at: Option<usize>,
}

/// The handler of publish-events. Fails as a whole only when the first record it cannot
/// publish carries no sequence number to resume from; then Lambda retries (and bisects) the
/// batch.
pub async fn publish(
    publisher: &Publisher,
    event: LambdaEvent<StreamEvent>,
) -> Result<BatchResponse, lambda_runtime::Error> {
    let started = Instant::now();
    let deadline = deadline(event.context.deadline);
    telemetry::per_request(&event.context.request_id, async {
        let span = tracing::info_span!("request", cold_start = telemetry::cold_start());
        async {
            let records: Vec<Record> = event.payload.records.iter().map(Record::read).collect();
            let tally = publish_records(publisher, &records, deadline).await;
            telemetry::count(metric::PUBLISHED, &[], tally.published as u64);
            telemetry::count(metric::DEAD_LETTERED, &[], tally.dead_lettered as u64);
            let failed = tally
                .failed_at
                .map(|index| records[index].sequence_number.clone());
            if failed.is_some() {
                telemetry::count(metric::RETRIED, &[], 1);
            }
            tracing::info!(
                records = records.len(),
                published = tally.published,
                dead_lettered = tally.dead_lettered,
                ignored = tally.ignored,
                retry_from = failed.clone().flatten(),
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "batch done"
            );
            match failed {
                None => Ok(BatchResponse::default()),
                Some(Some(sequence_number)) => Ok(BatchResponse {
                    batch_item_failures: vec![ItemFailure {
                        item_identifier: sequence_number,
                    }],
                }),
                Some(None) => {
                    Err("a record that could not be published has no sequence number".into())
                }
            }
        }
        .instrument(span)
        .await
    })
    .await
}

/// Publishes the records' events in stream order, and stops at the first record that is not
/// done: nothing after it is sent, so a user's later change never overtakes an earlier one.
async fn publish_records(
    publisher: &Publisher,
    records: &[Record],
    deadline: Option<Instant>,
) -> Tally {
    let mut tally = Tally::default();
    let mut call = Call::default();
    for (index, record) in records.iter().enumerate() {
        let sequence_number = record.sequence_number.as_deref();
        let event = match &record.kind {
            Kind::Nothing => {
                tally.ignored += 1;
                continue;
            }
            Kind::Malformed(malformed) => {
                tracing::warn!(
                    reason = %malformed.reason,
                    user_id = malformed.user_id.map(|id| id.to_string()),
                    sequence_number,
                    "a stream record cannot become an event: dead-lettered"
                );
                let letter = dead_letter::malformed(malformed, sequence_number);
                if !dead_letter(publisher, &letter, deadline, &mut tally).await {
                    tally.failed_at = Some(first(&call).unwrap_or(index));
                    return tally;
                }
                continue;
            }
            Kind::Change(change) => DomainEvent::from_change(change),
        };
        if !batch::fits(&event) {
            tracing::warn!(user_id = %event.user_id, "an event is too large for EventBridge: dead-lettered");
            let letter = dead_letter::unpublished(
                &event,
                "the event is larger than 256 KB",
                sequence_number,
            );
            if !dead_letter(publisher, &letter, deadline, &mut tally).await {
                tally.failed_at = Some(first(&call).unwrap_or(index));
                return tally;
            }
            continue;
        }
        if !call.admits(&event) {
            if let Some(failed) = send(publisher, &call, records, deadline, &mut tally).await {
                tally.failed_at = Some(failed);
                return tally;
            }
            call = Call::default();
        }
        call.push(index, event);
    }
    if !call.is_empty() {
        tally.failed_at = send(publisher, &call, records, deadline, &mut tally).await;
    }
    tally
}

/// Sends one call; the index of its first record not done, if any. An event that cannot be
/// published is dead-lettered when EventBridge refuses it, or when its change is older than
/// [`GIVE_UP_AGE`]; otherwise its record is not done. The call holds one change per user, so a
/// user's next change, in a later call, is sent only once this one is published or kept.
async fn send(
    publisher: &Publisher,
    call: &Call,
    records: &[Record],
    deadline: Option<Instant>,
    tally: &mut Tally,
) -> Option<usize> {
    if !bus::time_for_a_call(deadline, Duration::ZERO) {
        tracing::warn!("too little of the invocation is left to publish the rest of the batch");
        return first(call);
    }
    let outcomes = publisher.bus.put(call, deadline).await;
    let mut failed = None;
    for ((index, event), outcome) in call.entries.iter().zip(outcomes) {
        let record = &records[*index];
        let sequence_number = record.sequence_number.as_deref();
        let letter = match outcome {
            Sent::Published => {
                tally.published += 1;
                continue;
            }
            // Lambda retries from the first record not done, and so sends the later ones again:
            // they are not dead-lettered now.
            _ if failed.is_some() => continue,
            Sent::Refused(code) => {
                tracing::warn!(user_id = %event.user_id, %code, "EventBridge refuses an event: dead-lettered");
                let reason = format!("EventBridge refused the entry: {code}");
                dead_letter::unpublished(event, &reason, sequence_number)
            }
            Sent::Failed(reason) if record.older_than(GIVE_UP_AGE, SystemTime::now()) => {
                tracing::error!(
                    user_id = %event.user_id,
                    %reason,
                    give_up_age_s = GIVE_UP_AGE.as_secs(),
                    "an event still could not be published when its change grew too old: dead-lettered"
                );
                let reason = format!(
                    "not published within {} minutes of the change: {reason}",
                    GIVE_UP_AGE.as_secs() / 60
                );
                dead_letter::unpublished(event, &reason, sequence_number)
            }
            Sent::Failed(reason) => {
                tracing::error!(user_id = %event.user_id, %reason, "an event could not be published");
                failed = Some(*index);
                continue;
            }
        };
        if !dead_letter(publisher, &letter, deadline, tally).await {
            failed = Some(*index);
        }
    }
    failed
}

/// Whether the letter reached the queue; counted if it did. Not sent when too little of the
/// invocation is left for the call: the record is then reported, and Lambda retries from it.
async fn dead_letter(
    publisher: &Publisher,
    letter: &serde_json::Value,
    deadline: Option<Instant>,
    tally: &mut Tally,
) -> bool {
    if !bus::time_for_a_call(deadline, Duration::ZERO) {
        tracing::warn!("too little of the invocation is left to send a dead letter");
        return false;
    }
    match publisher.dead_letters.send(letter).await {
        Ok(()) => {
            tally.dead_lettered += 1;
            true
        }
        Err(error) => {
            tracing::error!(%error, "the dead-letter queue is unreachable");
            false
        }
    }
}

fn first(call: &Call) -> Option<usize> {
    call.entries.first().map(|(index, _)| *index)
}

/// The invocation's deadline (ms since the epoch, on the system's clock) as an instant; `None`
/// when the runtime gave none, or one already past, as `cargo lambda watch` does.
fn deadline(deadline_ms: u64) -> Option<Instant> {
    let deadline = UNIX_EPOCH.checked_add(Duration::from_millis(deadline_ms))?;
    let left = deadline.duration_since(SystemTime::now()).ok()?;
    Instant::now().checked_add(left)
}
