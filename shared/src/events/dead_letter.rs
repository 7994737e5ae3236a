//! The dead-letter queue: where a record that cannot become an event, an event EventBridge
//! refuses, or one still failing when its change grows too old to retry, is kept, so that
//! nothing is dropped silently and the shard moves on.

use aws_sdk_sqs::error::DisplayErrorContext;
use serde_json::{Value, json};

use super::event::{DomainEvent, SOURCE};
use super::record::Malformed;

/// A record larger than this is dead-lettered by its ids alone, so the message stays within
/// SQS's 256 KiB.
const MAX_RECORD_BYTES: usize = 192 * 1024;

#[derive(Debug, Clone)]
pub struct DeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl DeadLetters {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }

    pub async fn send(&self, letter: &Value) -> Result<(), String> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(sqs_safe(&letter.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|error| DisplayErrorContext(error).to_string())
    }
}

/// The letter's JSON with every character SQS refuses in a message (U+FFFE and U+FFFF, which a
/// name may hold; SQS takes `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`)
/// written as a JSON escape: the same JSON, in characters SQS takes. serde_json already escapes
/// the control characters; these can only stand inside strings.
fn sqs_safe(json: &str) -> String {
    json.chars()
        .fold(String::with_capacity(json.len()), |mut safe, c| {
            match c {
                '\u{FFFE}' | '\u{FFFF}' => safe.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => safe.push(c),
            }
            safe
        })
}

/// What the queue keeps of a record that cannot become an event: its ids, and the record itself
/// only for a user's create or change (never an erased user's data).
pub fn malformed(malformed: &Malformed, sequence_number: Option<&str>) -> Value {
    let record = malformed
        .record
        .as_ref()
        .filter(|record| record.to_string().len() <= MAX_RECORD_BYTES);
    json!({
        "reason": malformed.reason,
        "stream_record": {
            "event_id": malformed.stream_event_id,
            "event_name": malformed.event_name,
            "sequence_number": sequence_number,
        },
        "user_id": malformed.user_id.map(|id| id.to_string()),
        "record": record,
    })
}

/// What the queue keeps of an event that is not published (refused, too large, or failing for
/// too long): the event itself, which for an erasure holds ids only, unless it is too large,
/// then its ids.
pub fn unpublished(event: &DomainEvent, reason: &str, sequence_number: Option<&str>) -> Value {
    let detail: Option<Value> = (event.detail.len() <= MAX_RECORD_BYTES)
        .then(|| serde_json::from_str(&event.detail).ok())
        .flatten();
    json!({
        "reason": reason,
        "stream_record": { "sequence_number": sequence_number },
        "user_id": event.user_id.to_string(),
        "event_id": event.event_id(),
        "version": event.version,
        "event": detail.map(|detail| json!({
            "source": SOURCE,
            "detail-type": event.detail_type,
            "time": event.occurred_at,
            "detail": detail,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_sqs_refuses_are_escaped_and_the_json_is_the_same() {
        let letter = json!({"name": "Ada\u{FFFE}\u{FFFF}\u{FFFD}"});
        let safe = sqs_safe(&letter.to_string());
        assert!(!safe.contains(['\u{FFFE}', '\u{FFFF}']), "{safe}");
        assert_eq!(serde_json::from_str::<Value>(&safe).ok(), Some(letter));
    }
}
