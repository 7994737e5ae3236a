//! Items as stored: attribute names and values, and the conversions to and from the domain.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::{StoredUser, User, UserId};
use crate::idempotency::{ClaimRecord, ClaimState};
use crate::store::StoreError;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The value of `listing` that puts an item in the listing index: users only.
pub(super) const LISTING: &str = "USER";
pub(super) const IN_PROGRESS: &str = "in_progress";
pub(super) const COMPLETED: &str = "completed";

pub(super) fn user_key(id: UserId) -> AttributeValue {
    s(format!("USER#{id}"))
}

pub(super) fn email_key(user: &User) -> AttributeValue {
    s(format!("EMAIL#{}", user.email().canonical()))
}

/// Every attribute of a user's item.
pub(super) fn user_item(user: &User) -> Item {
    let mut item = Item::from([
        ("pk".to_owned(), user_key(user.id())),
        ("id".to_owned(), s(user.id().to_string())),
        ("name".to_owned(), s(user.name().as_str())),
        ("email".to_owned(), s(user.email().as_str())),
        ("created_at".to_owned(), s(user.created_at())),
        ("updated_at".to_owned(), s(user.updated_at())),
        ("version".to_owned(), n(user.version().get())),
        ("listing".to_owned(), s(LISTING)),
    ]);
    if let Some(record) = user.idempotency_record() {
        item.insert("idempotency_pk".to_owned(), s(record));
    }
    item
}

pub(super) fn user_from_item(item: &Item) -> Result<User, StoreError> {
    User::restore(StoredUser {
        id: string(item, "id")?,
        name: string(item, "name")?,
        email: string(item, "email")?,
        created_at: string(item, "created_at")?,
        updated_at: optional(item, "updated_at", string)?,
        version: optional(item, "version", number)?,
        created_by: optional(item, "idempotency_pk", string)?,
    })
    .map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn claim_from_item(item: &Item) -> Result<ClaimRecord, StoreError> {
    let state = match string(item, "state")? {
        IN_PROGRESS => ClaimState::InProgress,
        COMPLETED => ClaimState::Completed,
        _ => return Err(StoreError::Corrupt("unknown idempotency state".into())),
    };
    Ok(ClaimRecord {
        fingerprint: string(item, "fingerprint")?.to_owned(),
        state,
        user: UserId::parse(string(item, "user_id")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        // It matters to `in_progress` records, of the earlier release, alone.
        in_flight_until: UNIX_EPOCH
            + Duration::from_millis(optional(item, "in_flight_until", number)?.unwrap_or(0)),
        expires_at: UNIX_EPOCH + Duration::from_secs(number(item, "expires_at")?),
    })
}

fn optional<'a, T>(
    item: &'a Item,
    name: &str,
    read: fn(&'a Item, &str) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    item.contains_key(name)
        .then(|| read(item, name))
        .transpose()
}

fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a string"
        ))),
    }
}

fn number(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not a whole number"))),
        _ => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a number"
        ))),
    }
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, NewUser, UserName};

    #[test]
    fn a_user_survives_its_item() {
        let new = NewUser {
            name: UserName::parse("Ada").expect("valid"),
            email: Email::parse("Ada@Example.com").expect("valid"),
        };
        let user = User::create(new, std::time::SystemTime::now()).created_by("anonymous#k");
        let item = user_item(&user);
        assert_eq!(user_from_item(&item).ok(), Some(user.clone()));
        assert_eq!(email_key(&user), s("EMAIL#ada@example.com"));
        let mut legacy = item;
        legacy.remove("version");
        legacy.remove("updated_at");
        legacy.remove("idempotency_pk");
        let restored = user_from_item(&legacy).expect("a user stored before updates existed");
        assert_eq!(restored.version(), user.version());
        assert_eq!(restored.idempotency_record(), None);
    }
}
