//! Idempotency records: the put that takes a key in a create's transaction, the read of a
//! record that blocked one, and the delete that frees a key whose user is gone.

use std::time::UNIX_EPOCH;

use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};

use super::DynamoStore;
use super::calls::{condition_failed, failure, read, timed};
use super::item::{COMPLETED, IN_PROGRESS, Item, claim_from_item, n, s};
use crate::domain::UserId;
use crate::idempotency::{ClaimRecord, ClaimRequest};
use crate::store::StoreError;

impl DynamoStore {
    /// Writes the completed record of `request`'s key, unless a live record holds the key:
    /// one that has not expired (DynamoDB's TTL deletes late), or an `in_progress` one of the
    /// earlier release whose request may still be running. The record that blocks the put comes
    /// back with the cancellation, which spares a read; it holds no personal data, only a
    /// fingerprint and a user id. `in_flight_until` means nothing to a completed record, but the
    /// earlier release requires it when it reads one: while both serve (a canary, a rollback
    /// within the key's 24 hours), it must read these records too.
    pub(super) fn take_key(&self, request: &ClaimRequest) -> Result<TransactWriteItem, BuildError> {
        let expires_at = request
            .expires_at()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let put = Put::builder()
            .table_name(&self.tables.idempotency)
            .item("pk", s(&request.scoped_key))
            .item("fingerprint", s(&request.fingerprint))
            .item("state", s(COMPLETED))
            .item("user_id", s(request.user.to_string()))
            .item("in_flight_until", n(request.now_millis()))
            .item("expires_at", n(expires_at))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now_s \
                 OR (#state = :in_progress AND in_flight_until < :now_ms)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now_s", n(request.now_secs()))
            .expression_attribute_values(":now_ms", n(request.now_millis()))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The record that refused a create's put: the one the cancellation carried, else (from a
    /// server that does not return it) as read now.
    pub(super) async fn blocking_record(
        &self,
        scoped_key: &str,
        returned: Option<Item>,
    ) -> Result<Option<ClaimRecord>, StoreError> {
        let item = match returned.filter(|item| !item.is_empty()) {
            Some(item) => Some(item),
            None => read(&self.client, &self.tables.idempotency, s(scoped_key)).await?,
        };
        item.as_ref().map(claim_from_item).transpose()
    }

    /// Deletes the completed record of `scoped_key` if it still names `user`; if it does not,
    /// someone else holds the key now, and nothing is left to delete.
    pub(super) async fn forget_record(
        &self,
        scoped_key: &str,
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
                .expression_attribute_values(":state", s(COMPLETED))
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
