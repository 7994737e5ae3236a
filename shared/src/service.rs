//! The use cases, written against [`UserStore`] only.

use std::time::Duration;

use crate::domain::{User, UserId};
use crate::idempotency::{ClaimOutcome, ClaimRequest};
use crate::store::{Page, StoreError, UserStore};
use crate::telemetry::metric;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no such user")]
    NotFound,
    #[error("the email belongs to another user")]
    EmailTaken,
    #[error("the idempotency key was used with a different body")]
    KeyReused,
    #[error("the first request with this idempotency key is still running")]
    InProgress { retry_after: Duration },
    #[error(transparent)]
    Store(StoreError),
    #[error("a completed idempotency record names user {0}, which does not exist")]
    LostReplay(UserId),
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => Self::EmailTaken,
            other => Self::Store(other),
        }
    }
}

/// Stores `user`; with an idempotency claim request, a retry of a completed request returns
/// the user it created instead, and a failure releases the key.
pub async fn create_user(
    store: &impl UserStore,
    user: User,
    idempotency: Option<ClaimRequest>,
) -> Result<User, ServiceError> {
    let Some(request) = idempotency else {
        store.insert(&user, None).await?;
        metrics::counter!(metric::USERS_CREATED).increment(1);
        return Ok(user);
    };
    match store.claim(&request).await? {
        ClaimOutcome::Claimed => {}
        ClaimOutcome::Replay(id) => {
            metrics::counter!(metric::IDEMPOTENT_REPLAYS).increment(1);
            return store.get(id).await?.ok_or(ServiceError::LostReplay(id));
        }
        ClaimOutcome::InProgress { retry_after } => {
            return Err(ServiceError::InProgress { retry_after });
        }
        ClaimOutcome::Reused => return Err(ServiceError::KeyReused),
    }
    let claim = request.claim();
    match store.insert(&user, Some(&claim)).await {
        Ok(()) => {
            metrics::counter!(metric::USERS_CREATED).increment(1);
            Ok(user)
        }
        Err(StoreError::ClaimLost) => Err(ServiceError::Store(StoreError::ClaimLost)),
        Err(error) => {
            // If the insert did commit after all, the claim is completed and this is a no-op;
            // if the release fails, the claim still expires at the invocation's deadline.
            if let Err(release) = store.release(&claim).await {
                tracing::warn!(error = %release, "could not release an idempotency claim");
            }
            Err(error.into())
        }
    }
}

pub async fn get_user(store: &impl UserStore, id: UserId) -> Result<User, ServiceError> {
    store.get(id).await?.ok_or(ServiceError::NotFound)
}

pub async fn list_users(
    store: &impl UserStore,
    before: Option<UserId>,
    limit: usize,
) -> Result<Page, ServiceError> {
    Ok(store.list(before, limit).await?)
}
