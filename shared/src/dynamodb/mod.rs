//! The DynamoDB implementation of the store traits.
//!
//! Users table (key `pk`):
//! - `USER#<id>`: `id`, `name`, `email`, `created_at`, `updated_at`, `version` (1, then one more
//!   for every change; the `etag` names it), `change_id` (marks the last change's write, so that
//!   its retry can tell it landed), `idempotency_pk` (the idempotency record of the
//!   create that made the user, if it had a key), and `listing = "USER"`, which puts the item in
//!   the sparse index [`LISTING_INDEX`] (`listing` hash, `id` range) that pages read.
//! - `EMAIL#<lowercased email>`: `user_id`. Written in the same transaction as the user (or as
//!   the change of its email), with `attribute_not_exists(pk)`, so two users can never share an
//!   email, however they race.
//!
//! Idempotency table (key `pk` = `<caller scope>#<key>`): `fingerprint`, `state` (`completed`;
//! `in_progress` from the earlier release), `in_flight_until` (ms: when an `in_progress`
//! record's request is over; written on completed ones too, as the earlier release requires),
//! `user_id`, and `expires_at` (s, the table's TTL attribute). Written in the create's own
//! transaction. Expiry is checked on read, as DynamoDB deletes expired items late.
//!
//! Every write that must not half-happen is one `TransactWriteItems`, and every write of a user
//! is conditioned on the version that was read, so a concurrent change is never overwritten.

mod calls;
mod claims;
mod connect;
mod item;
mod rename;
mod users;

use aws_sdk_dynamodb::Client;

use crate::domain::User;
use crate::store::StoreError;

pub use connect::Probe;

/// A user restored from the attributes of its item, as a stream record's image carries them.
pub fn user_from_image(
    image: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Result<User, StoreError> {
    item::user_from_item(image)
}

pub const LISTING_INDEX: &str = "ByNewest";

/// The table names, as the deployment passes them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub users: String,
    pub idempotency: String,
}

/// Users and idempotency records on DynamoDB, through one client.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }
}
