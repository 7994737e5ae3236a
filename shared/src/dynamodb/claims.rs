//! Idempotency records: the conditional writes that take, release and forget a key. What a
//! claim that meets an existing record gets is [`idempotency::decide`]'s, on the record that
//! DynamoDB returns with the refusal: one round trip.

use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::DynamoStore;
use super::calls::{condition_failed, failure, read, timed, transaction_in_progress};
use super::item::{COMPLETED, IN_PROGRESS, Item, claim_from_item, millis, n, s};
use crate::domain::UserId;
use crate::idempotency::{
    self, Claim, ClaimOutcome, ClaimRecord, ClaimRequest, Decision, RETENTION,
};
use crate::store::{ClaimStore, StoreError};

/// Rounds of taking a key whose record expired or was deleted in between.
const ROUNDS: usize = 3;

impl ClaimStore for DynamoStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome, StoreError> {
        let now_ms = millis(request.now);
        let expires_at = (request.now + RETENTION)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        for _ in 0..ROUNDS {
            let put = timed(
                "PutItem",
                self.client
                    .put_item()
                    .table_name(&self.tables.idempotency)
                    .item("pk", s(&request.scoped_key))
                    .item("fingerprint", s(&request.fingerprint))
                    .item("state", s(IN_PROGRESS))
                    .item("user_id", s(request.user.to_string()))
                    .item("in_flight_until", n(millis(request.in_flight_until)))
                    .item("expires_at", n(expires_at))
                    .condition_expression(
                        "attribute_not_exists(pk) OR expires_at < :now_s \
                         OR (#state = :in_progress AND in_flight_until < :now_ms)",
                    )
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":now_s", n(now_ms / 1000))
                    .expression_attribute_values(":now_ms", n(now_ms))
                    .expression_attribute_values(":in_progress", s(IN_PROGRESS))
                    // The record that blocks the claim comes back with the refusal, which spares
                    // a read. It holds no personal data, only a fingerprint and a user id.
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send(),
            )
            .await;
            let record = match put {
                Ok(_) => return Ok(ClaimOutcome::Claimed),
                Err(error) if condition_failed(&error) => match blocking_record(&error) {
                    Some(item) => Some(claim_from_item(item)?),
                    // A server that does not return it: read it.
                    None => self.read_record(&request.scoped_key).await?,
                },
                // The first request with this key is committing its create right now.
                Err(error) if transaction_in_progress(&error) => {
                    return Ok(ClaimOutcome::InProgress {
                        retry_after: Duration::from_secs(1),
                    });
                }
                Err(error) => return Err(failure(error)),
            };
            match idempotency::decide(record.as_ref(), request) {
                Decision::Answer(outcome) => return Ok(outcome),
                Decision::TakeOver => {}
            }
        }
        Err(StoreError::Unavailable(
            "the idempotency record kept changing".into(),
        ))
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        self.delete_record(&claim.scoped_key, IN_PROGRESS, claim.user)
            .await
    }

    async fn forget(&self, scoped_key: &str, user: UserId) -> Result<(), StoreError> {
        self.delete_record(scoped_key, COMPLETED, user).await
    }
}

/// The item a refused `PutItem` returned with its `ConditionalCheckFailedException`.
fn blocking_record(error: &SdkError<PutItemError, HttpResponse>) -> Option<&Item> {
    match error.as_service_error()? {
        PutItemError::ConditionalCheckFailedException(refusal) => refusal.item(),
        _ => None,
    }
}

impl DynamoStore {
    async fn read_record(&self, scoped_key: &str) -> Result<Option<ClaimRecord>, StoreError> {
        let item = read(&self.client, &self.tables.idempotency, s(scoped_key)).await?;
        item.as_ref().map(claim_from_item).transpose()
    }

    /// Deletes the record of `scoped_key` if it is still in `state` for `user`; if it is not,
    /// someone else holds the key now, and nothing of this request's is left to delete.
    async fn delete_record(
        &self,
        scoped_key: &str,
        state: &str,
        user: UserId,
    ) -> Result<(), StoreError> {
        let result = timed(
            "DeleteItem",
            self.client
                .delete_item()
                .table_name(&self.tables.idempotency)
                .key("pk", s(scoped_key))
                .condition_expression("#state = :state AND user_id = :user")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":state", s(state))
                .expression_attribute_values(":user", s(user.to_string()))
                .send(),
        )
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if condition_failed(&error) => Ok(()),
            Err(error) => Err(failure(error)),
        }
    }
}
