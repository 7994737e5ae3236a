//! The use cases, written against the store traits only.

use std::time::{Duration, SystemTime};

use crate::domain::{NewUser, Precondition, User, UserId, UserPatch};
use crate::idempotency::{ClaimOutcome, ClaimRequest, Idempotent};
use crate::store::{ClaimStore, Page, StoreError, UserStore};
use crate::telemetry::{self, metric};

/// Reads of fresh state for a write that found the user changed since it read it, or for a
/// create whose key's record names a user that no longer exists.
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no such user")]
    NotFound,
    #[error("the email belongs to another user")]
    EmailTaken,
    #[error("the if-match precondition names no current version of the user")]
    PreconditionFailed,
    #[error("the idempotency key was used with a different body")]
    KeyReused,
    #[error("the first request with this idempotency key is still running")]
    InProgress { retry_after: Duration },
    /// Other writes kept changing what this request read: a retry may pass.
    #[error("{0} kept changing while it was written")]
    Contended(&'static str),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => Self::EmailTaken,
            other => Self::Store(other),
        }
    }
}

/// The service's idempotency policy for a create: `time_left` is how long this request's work
/// may run, and so how long its key blocks retries if the request dies.
#[derive(Debug, Clone, Copy)]
pub struct CreateContext<'a> {
    pub now: SystemTime,
    pub time_left: Duration,
    pub idempotency: Option<Idempotent<'a>>,
}

/// Stores a new user; with an idempotency key, a retry of a completed request returns the user
/// it created instead (as that user is now), and a failure releases the key.
pub async fn create_user(
    store: &(impl UserStore + ClaimStore),
    new: NewUser,
    context: CreateContext<'_>,
) -> Result<User, ServiceError> {
    let user = User::create(new, context.now);
    let Some(idempotency) = context.idempotency else {
        store.insert(&user, None).await?;
        telemetry::count(metric::USERS_CREATED, &[], 1);
        return Ok(user);
    };
    let request = ClaimRequest::new(
        idempotency,
        user.id(),
        context.now + context.time_left,
        context.now,
    );
    if let Some(earlier) = claim(store, &request).await? {
        return Ok(earlier);
    }
    let claim = request.claim();
    let user = user.created_by(&claim.scoped_key);
    match store.insert(&user, Some(&claim)).await {
        Ok(()) => {
            telemetry::count(metric::USERS_CREATED, &[], 1);
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

/// Takes the request's key: `None` when this request may create its user, the user of the
/// earlier request with this key and body when it completed.
async fn claim(
    store: &(impl UserStore + ClaimStore),
    request: &ClaimRequest,
) -> Result<Option<User>, ServiceError> {
    for _ in 0..ATTEMPTS {
        let (user, same_body) = match store.claim(request).await? {
            ClaimOutcome::Claimed => return Ok(None),
            ClaimOutcome::Completed { user, same_body } => (user, same_body),
            ClaimOutcome::InProgress { retry_after } => {
                return Err(ServiceError::InProgress { retry_after });
            }
            ClaimOutcome::Reused => return Err(ServiceError::KeyReused),
        };
        match store.get(user).await? {
            Some(_) if !same_body => return Err(ServiceError::KeyReused),
            Some(user) => {
                telemetry::count(metric::IDEMPOTENT_REPLAYS, &[], 1);
                return Ok(Some(user));
            }
            // Erased outside the API: the key is free, whatever body it was used with.
            None => store.forget(&request.scoped_key, user).await?,
        }
    }
    Err(ServiceError::Contended("the idempotency record"))
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

/// Applies `patch` to the user as it is now, if it meets `precondition`. A write that finds
/// the user changed since it was read starts again from fresh state (never overwriting the
/// other change), a bounded number of times.
pub async fn update_user(
    store: &impl UserStore,
    id: UserId,
    patch: &UserPatch,
    precondition: Option<&Precondition>,
    now: SystemTime,
) -> Result<User, ServiceError> {
    for _ in 0..ATTEMPTS {
        let current = current(store, id, precondition).await?;
        let Some(next) = current.patched(patch, now) else {
            return Ok(current);
        };
        match store.update(&current, &next).await {
            Ok(()) => {
                telemetry::count(metric::USERS_UPDATED, &[], 1);
                return Ok(next);
            }
            Err(StoreError::Stale) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Err(ServiceError::Contended("the user"))
}

/// Erases the user as it is now, if it meets `precondition`.
pub async fn delete_user(
    store: &impl UserStore,
    id: UserId,
    precondition: Option<&Precondition>,
) -> Result<(), ServiceError> {
    for _ in 0..ATTEMPTS {
        let current = current(store, id, precondition).await?;
        match store.delete(&current).await {
            Ok(()) => {
                telemetry::count(metric::USERS_DELETED, &[], 1);
                return Ok(());
            }
            Err(StoreError::Stale) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Err(ServiceError::Contended("the user"))
}

/// The user as stored now, if it meets `precondition`: `404` before `412`, as the contract
/// orders them.
async fn current(
    store: &impl UserStore,
    id: UserId,
    precondition: Option<&Precondition>,
) -> Result<User, ServiceError> {
    let user = store.get(id).await?.ok_or(ServiceError::NotFound)?;
    match precondition {
        Some(precondition) if !precondition.holds_for(user.version()) => {
            Err(ServiceError::PreconditionFailed)
        }
        _ => Ok(user),
    }
}
