//! How calls to DynamoDB are made and how their failures are read: each call timed, each
//! failure sorted by whether a retry may help, each transaction's cancellation read by item.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, TransactWriteItem};
use tracing::Instrument;
use ulid::Ulid;

use super::item::Item;
use crate::store::StoreError;
use crate::telemetry::{self, metric};

/// Attempts for a transaction that DynamoDB cancelled because another one touched its items.
const CONFLICT_ATTEMPTS: u32 = 3;

/// How long a write that met a transaction in progress on its item waits before it tries
/// again: DynamoDB's transactions take milliseconds.
pub(super) const CONFLICT_BACKOFF: Duration = Duration::from_millis(20);

/// What an item of a transaction stands for, so that a cancellation is read by the item it
/// names rather than by a bare position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The user's own item.
    User,
    /// The email the user has, or had before this change.
    Email,
    /// The email the user takes in this change.
    NewEmail,
    /// The idempotency record of the request or of the create that made the user.
    IdempotencyRecord,
}

/// Why a transaction did not commit.
#[derive(Debug)]
pub(super) enum Cancelled {
    /// The condition on this item failed: nothing was written. The item as it is, where the
    /// write asked for it with `ReturnValuesOnConditionCheckFailure` and the server sent it.
    Condition(Role, Option<Item>),
    /// Another transaction is writing the idempotency record: another request with the same
    /// key, which a retry within milliseconds would meet again.
    RecordBusy,
    Store(StoreError),
}

impl From<StoreError> for Cancelled {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Writes `items` in one `TransactWriteItems`, retrying twice when DynamoDB cancels it for a
/// conflict with another transaction on a user's or an email's item.
pub(super) async fn transact(
    client: &Client,
    items: Vec<(Role, TransactWriteItem)>,
) -> Result<(), Cancelled> {
    let (roles, items): (Vec<Role>, Vec<TransactWriteItem>) = items.into_iter().unzip();
    let mut attempt = 1;
    loop {
        let result = timed(
            "TransactWriteItems",
            client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                // Fresh for each attempt of ours, kept by the SDK's own retries: a retry after
                // a lost response is then recognised by DynamoDB instead of failing on the
                // conditions its first write made true.
                .client_request_token(Ulid::new().to_string())
                .send(),
        )
        .await;
        let error = match result {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        else {
            return Err(failure(error).into());
        };
        let reasons: Vec<(Role, &CancellationReason)> = roles
            .iter()
            .copied()
            .zip(cancelled.cancellation_reasons())
            .collect();
        let with = |code: &str| {
            reasons
                .iter()
                .find(|(_, reason)| reason.code() == Some(code))
        };
        let on = |role: Role, code: &str| {
            reasons
                .iter()
                .find(|(r, reason)| *r == role && reason.code() == Some(code))
        };
        // The record's reason first. DynamoDB checks a transaction's items side by side: a
        // retry of a create also finds its email taken, whether the first request has committed
        // (the record refuses it) or is committing (the record is in conflict).
        if let Some((role, reason)) = on(Role::IdempotencyRecord, "ConditionalCheckFailed") {
            return Err(Cancelled::Condition(*role, reason.item.clone()));
        }
        if on(Role::IdempotencyRecord, "TransactionConflict").is_some() {
            return Err(Cancelled::RecordBusy);
        }
        if let Some((role, reason)) = with("ConditionalCheckFailed") {
            return Err(Cancelled::Condition(*role, reason.item.clone()));
        }
        if with("ValidationError").is_some() {
            return Err(StoreError::Refused(Box::new(error)).into());
        }
        let conflict = with("TransactionConflict");
        if conflict.is_some() && attempt < CONFLICT_ATTEMPTS {
            tokio::time::sleep(CONFLICT_BACKOFF * attempt).await;
            attempt += 1;
            continue;
        }
        // Still conflicting, or cancelled for another reason (throttling, capacity): nothing
        // was written and a later retry may pass.
        return Err(StoreError::Unavailable(Box::new(error)).into());
    }
}

/// A strongly consistent read of the item `key` names in `table`.
pub(super) async fn read(
    client: &Client,
    table: &str,
    key: AttributeValue,
) -> Result<Option<Item>, StoreError> {
    let output = timed(
        "GetItem",
        client
            .get_item()
            .table_name(table)
            .key("pk", key)
            .consistent_read(true)
            .send(),
    )
    .await
    .map_err(failure)?;
    Ok(output.item)
}

/// Runs a DynamoDB call in a span named after its operation, and records its latency.
pub(super) async fn timed<T>(operation: &'static str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let result = call
        .instrument(tracing::info_span!("dynamodb", operation))
        .await;
    telemetry::milliseconds(
        metric::DYNAMODB_LATENCY,
        &[("operation", operation)],
        started.elapsed().as_secs_f64() * 1000.0,
    );
    result
}

/// Whether a call failed only because its condition did not hold.
pub(super) fn condition_failed<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

/// Whether a single-item call met a transaction in progress on its item, which the SDK does
/// not retry.
pub(super) fn transaction_in_progress<E: ProvideErrorMetadata>(
    error: &SdkError<E, HttpResponse>,
) -> bool {
    error.code() == Some("TransactionConflictException")
}

/// Sorts an SDK failure by whether a retry may help: timeouts, connection failures, throttling
/// and DynamoDB's own 5xx may pass; so may expired credentials, which the container credentials
/// provider refreshes and a new execution environment gets fresh. Anything else DynamoDB refused
/// will not.
pub(super) fn failure<E>(error: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    const TRANSIENT: [&str; 7] = [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionInProgressException",
        "InternalServerError",
        "ExpiredTokenException",
    ];
    let transient = match &error {
        SdkError::ServiceError(_) => {
            error.code().is_some_and(|code| TRANSIENT.contains(&code))
                || error
                    .raw_response()
                    .is_some_and(|r| r.status().is_server_error())
        }
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    if transient {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Refused(Box::new(error))
    }
}
