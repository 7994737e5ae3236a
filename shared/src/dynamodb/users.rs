//! Users: read, list, create, change and erase.

use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use ulid::Ulid;

use super::calls::{
    CONFLICT_BACKOFF, Cancelled, Role, condition_failed, failure, read, timed, transact,
    transaction_in_progress,
};
use super::item::{Item, LISTING, email_key, n, s, user_from_item, user_item, user_key};
use super::{DynamoStore, LISTING_INDEX};
use crate::domain::{Precondition, User, UserId, UserName, Version};
use crate::idempotency::ClaimRequest;
use crate::store::{Page, Renamed, StoreError, UserStore};

impl UserStore for DynamoStore {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let item = read(&self.client, &self.tables.users, user_key(id)).await?;
        item.as_ref().map(user_from_item).transpose()
    }

    async fn list(&self, before: Option<UserId>, limit: usize) -> Result<Page, StoreError> {
        // One item more than the page tells whether another page follows, without a second
        // query and without trusting LastEvaluatedKey (which DynamoDB also sets on an exact end).
        let wanted = limit + 1;
        let mut users = Vec::with_capacity(wanted);
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.users)
                .index_name(LISTING_INDEX)
                .expression_attribute_names("#listing", "listing")
                .expression_attribute_values(":listing", s(LISTING))
                .scan_index_forward(false)
                .limit(i32::try_from(wanted - users.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            query = match before {
                Some(before) => query
                    .key_condition_expression("#listing = :listing AND #id < :before")
                    .expression_attribute_names("#id", "id")
                    .expression_attribute_values(":before", s(before.to_string())),
                None => query.key_condition_expression("#listing = :listing"),
            };
            let output = timed("Query", query.send()).await.map_err(failure)?;
            for item in output.items() {
                users.push(user_from_item(item)?);
            }
            start = output.last_evaluated_key;
            if users.len() >= wanted || start.is_none() {
                break;
            }
        }
        let more = users.len() > limit;
        users.truncate(limit);
        Ok(Page { users, more })
    }

    async fn insert(&self, user: &User, claim: Option<&ClaimRequest>) -> Result<(), StoreError> {
        let items = self.insert_items(user, claim).map_err(refused)?;
        match transact(&self.client, items).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition(Role::IdempotencyRecord, returned)) => {
                let Some(claim) = claim else {
                    return Err(StoreError::Corrupt(
                        "a record refused a keyless create".into(),
                    ));
                };
                let record = self.blocking_record(&claim.scoped_key, returned).await?;
                Err(StoreError::KeyHeld(record))
            }
            Err(Cancelled::Condition(Role::Email, _)) => Err(StoreError::EmailTaken),
            Err(Cancelled::Condition(role, _)) => Err(StoreError::Corrupt(format!(
                "a new user's {role:?} item already exists"
            ))),
            Err(Cancelled::RecordBusy) => Err(StoreError::KeyBusy),
            Err(Cancelled::Store(error)) => Err(error),
        }
    }

    async fn update(&self, current: &User, next: &User) -> Result<(), StoreError> {
        // Marks this write, so that a retry that fails on the version it moved can tell its
        // own landed write (whose answer was lost) from another request's identical one.
        let change = Ulid::new().to_string();
        let update = self.user_update(current, next, &change).map_err(refused)?;
        if current.email().canonical() == next.email().canonical() {
            // The reservation stays as it is: one conditional write of the user item.
            let call = self
                .client
                .update_item()
                .table_name(update.table_name())
                .set_key(Some(update.key().clone()))
                .update_expression(update.update_expression())
                .set_condition_expression(update.condition_expression().map(str::to_owned))
                .set_expression_attribute_names(update.expression_attribute_names().cloned())
                .set_expression_attribute_values(update.expression_attribute_values().cloned());
            let result = timed("UpdateItem", call.send()).await;
            return match result {
                Ok(_) => Ok(()),
                Err(error) if condition_failed(&error) => self.landed(current, &change).await,
                // A transaction (an email change, a delete) holds the item: once it is done,
                // the user is read again and the change made on what it left.
                Err(error) if transaction_in_progress(&error) => {
                    tokio::time::sleep(CONFLICT_BACKOFF).await;
                    Err(StoreError::Stale)
                }
                Err(error) => Err(failure(error)),
            };
        }
        let items = self
            .email_change_items(update, current, next)
            .map_err(refused)?;
        match transact(&self.client, items).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition(Role::User, _)) => Err(StoreError::Stale),
            Err(Cancelled::Condition(Role::NewEmail, _)) => Err(StoreError::EmailTaken),
            Err(Cancelled::Condition(role, _)) => Err(StoreError::Corrupt(format!(
                "the {role:?} item does not belong to user {}",
                current.id()
            ))),
            Err(Cancelled::RecordBusy) => Err(StoreError::KeyBusy),
            Err(Cancelled::Store(error)) => Err(error),
        }
    }

    async fn delete(&self, user: &User) -> Result<(), StoreError> {
        let mut with_record = user.idempotency_record().is_some();
        loop {
            let items = self.erase_items(user, with_record).map_err(refused)?;
            match transact(&self.client, items).await {
                Ok(()) => return Ok(()),
                Err(Cancelled::Condition(Role::User, _)) => return Err(StoreError::Stale),
                // The record's key now belongs to another create (its 24 hours are over): it
                // keeps its record, and this user goes without.
                Err(Cancelled::Condition(Role::IdempotencyRecord, _)) if with_record => {
                    with_record = false;
                }
                // Another create is taking the key (its 24 hours are over). Until it commits,
                // the record still names this user, so it is not left out: a create that fails
                // would leave the erased user's id behind. Once the create commits, the record
                // refuses this delete and is the create's. Read again and start over, as
                // after any other write.
                Err(Cancelled::RecordBusy) => {
                    tokio::time::sleep(CONFLICT_BACKOFF).await;
                    return Err(StoreError::Stale);
                }
                Err(Cancelled::Condition(role, _)) => {
                    return Err(StoreError::Corrupt(format!(
                        "the {role:?} item does not belong to user {}",
                        user.id()
                    )));
                }
                Err(Cancelled::Store(error)) => return Err(error),
            }
        }
    }

    async fn rename(
        &self,
        id: UserId,
        name: &UserName,
        updated_at: &str,
        precondition: Option<&Precondition>,
    ) -> Result<Renamed, StoreError> {
        self.rename_user(id, name, updated_at, precondition).await
    }

    async fn forget(&self, scoped_key: &str, user: UserId) -> Result<(), StoreError> {
        self.forget_record(scoped_key, user).await
    }
}

impl DynamoStore {
    fn insert_items(
        &self,
        user: &User,
        claim: Option<&ClaimRequest>,
    ) -> Result<Vec<(Role, TransactWriteItem)>, BuildError> {
        let put_user = Put::builder()
            .table_name(&self.tables.users)
            .set_item(Some(user_item(user)))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        let mut items = Vec::with_capacity(3);
        // The record first, so that its refusal is the one reported however a server reports
        // several.
        if let Some(claim) = claim {
            items.push((Role::IdempotencyRecord, self.take_key(claim)?));
        }
        items.push((
            Role::User,
            TransactWriteItem::builder().put(put_user).build(),
        ));
        items.push((Role::Email, self.reserve_email(user)?));
        Ok(items)
    }

    /// `Ok` when the user item holds the write marked `change` (an SDK retry found its own
    /// write in place), else [`StoreError::Stale`].
    async fn landed(&self, user: &User, change: &str) -> Result<(), StoreError> {
        let item = read(&self.client, &self.tables.users, user_key(user.id())).await?;
        match item.as_ref().and_then(|item| item.get("change_id")) {
            Some(AttributeValue::S(stored)) if stored == change => Ok(()),
            _ => Err(StoreError::Stale),
        }
    }

    /// Writes `next`'s fields over the user item, marked as the write `change`, if it still
    /// holds `current`'s version.
    fn user_update(&self, current: &User, next: &User, change: &str) -> Result<Update, BuildError> {
        let (condition, names, values) = version_condition(current);
        Update::builder()
            .table_name(&self.tables.users)
            .key("pk", user_key(current.id()))
            .update_expression(
                "SET #name = :name, email = :email, updated_at = :updated_at, \
                 #version = :next, change_id = :change",
            )
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", s(next.name().as_str()))
            .expression_attribute_values(":email", s(next.email().as_str()))
            .expression_attribute_values(":updated_at", s(next.updated_at()))
            .expression_attribute_values(":next", n(next.version().get()))
            .expression_attribute_values(":change", s(change))
            .build()
    }

    /// The user's change, the old email's release and the new email's reservation.
    fn email_change_items(
        &self,
        update: Update,
        current: &User,
        next: &User,
    ) -> Result<Vec<(Role, TransactWriteItem)>, BuildError> {
        Ok(vec![
            (
                Role::User,
                TransactWriteItem::builder().update(update).build(),
            ),
            (Role::Email, self.release_email(current)?),
            (Role::NewEmail, self.reserve_email(next)?),
        ])
    }

    /// The user's item, its email's reservation and, with `with_record`, the idempotency
    /// record of the create that made it.
    fn erase_items(
        &self,
        user: &User,
        with_record: bool,
    ) -> Result<Vec<(Role, TransactWriteItem)>, BuildError> {
        let (condition, names, values) = version_condition(user);
        let delete_user = Delete::builder()
            .table_name(&self.tables.users)
            .key("pk", user_key(user.id()))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()?;
        let mut items = vec![
            (
                Role::User,
                TransactWriteItem::builder().delete(delete_user).build(),
            ),
            (Role::Email, self.release_email(user)?),
        ];
        if let Some(record) = user.idempotency_record().filter(|_| with_record) {
            let delete_record = Delete::builder()
                .table_name(&self.tables.idempotency)
                .key("pk", s(record))
                .condition_expression("attribute_not_exists(pk) OR user_id = :user")
                .expression_attribute_values(":user", s(user.id().to_string()))
                .build()?;
            let delete_record = TransactWriteItem::builder().delete(delete_record).build();
            items.push((Role::IdempotencyRecord, delete_record));
        }
        Ok(items)
    }

    /// Reserves `user`'s email for it, if no one holds it: how DynamoDB itself keeps emails
    /// unique, however creates and changes race.
    fn reserve_email(&self, user: &User) -> Result<TransactWriteItem, BuildError> {
        let put = Put::builder()
            .table_name(&self.tables.users)
            .item("pk", email_key(user))
            .item("user_id", s(user.id().to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Deletes the reservation of `user`'s email, if it is this user's (or already gone).
    fn release_email(&self, user: &User) -> Result<TransactWriteItem, BuildError> {
        let delete = Delete::builder()
            .table_name(&self.tables.users)
            .key("pk", email_key(user))
            .condition_expression("attribute_not_exists(pk) OR user_id = :user")
            .expression_attribute_values(":user", s(user.id().to_string()))
            .build()?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }
}

type Names = std::collections::HashMap<String, String>;

/// The condition that the user item still holds `user`'s version. A user stored before
/// versions existed has none, and is at the first.
fn version_condition(user: &User) -> (&'static str, Names, Item) {
    let names = Names::from([("#version".to_owned(), "version".to_owned())]);
    let version = user.version();
    let values = Item::from([(":version".to_owned(), n(version.get()))]);
    let condition = if version == Version::FIRST {
        "attribute_exists(pk) AND (attribute_not_exists(#version) OR #version = :version)"
    } else {
        "#version = :version"
    };
    (condition, names, values)
}

fn refused(error: BuildError) -> StoreError {
    StoreError::Refused(error.into())
}
