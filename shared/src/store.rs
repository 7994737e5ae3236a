//! Persistence behind traits, so the service logic does not know about DynamoDB.

use std::future::Future;

use crate::domain::{Precondition, User, UserId, UserName};
use crate::idempotency::{ClaimRecord, ClaimRequest};

/// One page of users, newest first; `more` is true exactly when older users follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub users: Vec<User>,
    pub more: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the email belongs to another user")]
    EmailTaken,
    /// A live record holds the create's idempotency key (`None`: one did, but it is gone).
    #[error("the idempotency key is held by an earlier request")]
    KeyHeld(Option<ClaimRecord>),
    /// Another request with the same idempotency key is writing right now.
    #[error("another request with the idempotency key is being written")]
    KeyBusy,
    /// The user changed or vanished since it was read: read it again.
    #[error("the user changed since it was read")]
    Stale,
    /// Throttled, timed out, unreachable or failing on its side: a retry may succeed.
    #[error("the store is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Refused the request itself (permissions, a missing table, a malformed call): a bug or
    /// a misconfiguration, which a retry does not mend.
    #[error("the store refused the request: {0}")]
    Refused(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("a stored item is not a valid user: {0}")]
    Corrupt(String),
}

/// What a rename in one conditional write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renamed {
    /// The user as renamed.
    Done(User),
    /// The condition did not hold: the user as stored, for the caller to decide on. (A
    /// refusal that found no user is `StoreError::Stale`: the caller reads to be sure.)
    Refused(User),
}

pub trait UserStore: Send + Sync {
    /// A strongly consistent read.
    fn get(&self, id: UserId) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// Up to `limit` users older than `before` (or the newest), newest first.
    fn list(
        &self,
        before: Option<UserId>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Stores the user and reserves its email in one atomic write; with a claim, also writes
    /// the record of its idempotency key in that same write, unless a live record holds the
    /// key ([`StoreError::KeyHeld`]).
    fn insert(
        &self,
        user: &User,
        claim: Option<&ClaimRequest>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces `current` by `next`, its next version, if `current` is still the stored
    /// version (else [`StoreError::Stale`]); moves the email's reservation in the same write.
    fn update(
        &self,
        current: &User,
        next: &User,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Renames user `id` to `name` at `updated_at` as its next version, in one conditional
    /// write, if it exists, meets `precondition`, has another name, and was last changed before
    /// `updated_at`. [`StoreError::Stale`] when it cannot tell in one write: a transaction was
    /// writing the user, the precondition names no version or more than a condition can, or
    /// the refusal came without the item (no such user, or a server that does not return it).
    fn rename(
        &self,
        id: UserId,
        name: &UserName,
        updated_at: &str,
        precondition: Option<&Precondition>,
    ) -> impl Future<Output = Result<Renamed, StoreError>> + Send;

    /// Erases the user, its email's reservation and the idempotency record of the create
    /// that made it, in one atomic write, if `user` is still the stored version (else
    /// [`StoreError::Stale`]).
    fn delete(&self, user: &User) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the completed idempotency record of `scoped_key` if it still names `user`,
    /// whose user no longer exists, so that the key is free again.
    fn forget(
        &self,
        scoped_key: &str,
        user: UserId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
