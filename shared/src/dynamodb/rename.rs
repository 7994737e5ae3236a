//! A change of the name alone, in one conditional `UpdateItem`: the condition checks what a
//! read would have (the user exists, meets the precondition, has another name, was last changed
//! earlier), and a refusal returns the item, from which the caller answers without reading
//! (a refusal without one, an unknown id, is read to be sure).

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use ulid::Ulid;

use super::DynamoStore;
use super::calls::{CONFLICT_BACKOFF, condition_failed, failure, timed, transaction_in_progress};
use super::item::{Item, n, s, user_from_item, user_key};
use crate::domain::{Precondition, UserId, UserName, Version};
use crate::store::{Renamed, StoreError};

/// The most entity tags an `if-match` may list for the rename to check them in its condition;
/// a longer list is checked on a read.
const MAX_TAGS: usize = 20;

impl DynamoStore {
    pub(super) async fn rename_user(
        &self,
        id: UserId,
        name: &UserName,
        updated_at: &str,
        precondition: Option<&Precondition>,
    ) -> Result<Renamed, StoreError> {
        let versions = match version_check(precondition) {
            VersionCheck::Unable => return Err(StoreError::Stale),
            check => check,
        };
        let names = HashMap::from([
            ("#name".to_owned(), "name".to_owned()),
            ("#version".to_owned(), "version".to_owned()),
        ]);
        let mut values = Item::from([
            (":name".to_owned(), s(name.as_str())),
            (":updated_at".to_owned(), s(updated_at)),
            (":one".to_owned(), n(1)),
            (":change".to_owned(), s(Ulid::new().to_string())),
        ]);
        let mut condition = String::from(
            "attribute_exists(pk) AND #name <> :name AND (updated_at < :updated_at \
             OR (attribute_not_exists(updated_at) AND created_at < :updated_at))",
        );
        if let VersionCheck::OneOf { clause, tags } = versions {
            condition.push_str(" AND ");
            condition.push_str(&clause);
            values.extend(tags);
        }
        let change = values[":change"].clone();
        let result = timed(
            "UpdateItem",
            self.client
                .update_item()
                .table_name(&self.tables.users)
                .key("pk", user_key(id))
                // A user stored before versions existed is at the first.
                .update_expression(
                    "SET #name = :name, updated_at = :updated_at, change_id = :change, \
                     #version = if_not_exists(#version, :one) + :one",
                )
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send(),
        )
        .await;
        match result {
            Ok(output) => {
                let item = output.attributes.unwrap_or_default();
                Ok(Renamed::Done(user_from_item(&item)?))
            }
            Err(error) if condition_failed(&error) => {
                // No item: no such user, or a server that does not return the item it
                // refused (ALL_OLD). A read tells which.
                let Some(item) = refused_item(&error) else {
                    return Err(StoreError::Stale);
                };
                let user = user_from_item(item)?;
                // An SDK retry of this very write, whose first answer was lost, found it done.
                if item.get("change_id") == Some(&change) {
                    return Ok(Renamed::Done(user));
                }
                Ok(Renamed::Refused(user))
            }
            Err(error) if transaction_in_progress(&error) => {
                tokio::time::sleep(CONFLICT_BACKOFF).await;
                Err(StoreError::Stale)
            }
            Err(error) => Err(failure(error)),
        }
    }
}

/// The item a refused `UpdateItem` returned, if any.
fn refused_item(error: &SdkError<UpdateItemError, HttpResponse>) -> Option<&Item> {
    match error.as_service_error()? {
        UpdateItemError::ConditionalCheckFailedException(refusal) => {
            refusal.item().filter(|item| !item.is_empty())
        }
        _ => None,
    }
}

/// What a rename's condition checks of the user's version.
enum VersionCheck {
    /// Nothing: no precondition, or `*`.
    Any,
    /// One of the versions the `if-match` names: the clause, and the values it names.
    OneOf {
        clause: String,
        tags: Vec<(String, AttributeValue)>,
    },
    /// A precondition that names no version, or more than one condition should list.
    Unable,
}

fn version_check(precondition: Option<&Precondition>) -> VersionCheck {
    let versions = match precondition {
        None | Some(Precondition::Any) => return VersionCheck::Any,
        Some(Precondition::OneOf(versions)) => versions,
    };
    if versions.is_empty() || versions.len() > MAX_TAGS {
        return VersionCheck::Unable;
    }
    let tags: Vec<(String, AttributeValue)> = versions
        .iter()
        .enumerate()
        .map(|(i, version)| (format!(":v{i}"), n(version.get())))
        .collect();
    let list: Vec<&str> = tags.iter().map(|(name, _)| name.as_str()).collect();
    let mut clause = format!("(#version IN ({})", list.join(", "));
    if versions.contains(&Version::FIRST) {
        clause.push_str(" OR attribute_not_exists(#version)");
    }
    clause.push(')');
    VersionCheck::OneOf { clause, tags }
}
