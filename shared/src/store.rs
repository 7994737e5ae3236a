//! Persistence behind a trait, so the service logic does not know about DynamoDB.

use std::future::Future;

use crate::domain::{User, UserId};
use crate::idempotency::{Claim, ClaimOutcome, ClaimRequest};

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
    #[error("the idempotency claim was taken over by another request")]
    ClaimLost,
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

pub trait UserStore: Send + Sync {
    /// A strongly consistent read.
    fn get(&self, id: UserId) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// Up to `limit` users older than `before` (or the newest), newest first.
    fn list(
        &self,
        before: Option<UserId>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Stores the user and reserves its email in one atomic write; with a claim, also marks
    /// the claim completed in that same write.
    fn insert(
        &self,
        user: &User,
        claim: Option<&Claim>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes an idempotency key for this request, or says why not.
    fn claim(
        &self,
        request: &ClaimRequest,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;

    /// Gives up a claim that did not complete, so a retry can run.
    fn release(&self, claim: &Claim) -> impl Future<Output = Result<(), StoreError>> + Send;
}
