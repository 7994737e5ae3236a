//! The use cases, written against the store traits only.

use std::time::{Duration, SystemTime};

use crate::domain::{NewUser, Precondition, User, UserId, UserPatch, change_time};
use crate::idempotency::{self, ClaimOutcome, ClaimRequest, Decision, Idempotent};
use crate::store::{Page, Renamed, StoreError, UserStore};
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
            // The first request with the key is committing: its answer comes within moments.
            StoreError::KeyBusy => Self::InProgress {
                retry_after: Duration::from_secs(1),
            },
            other => Self::Store(other),
        }
    }
}

/// A create's inputs besides the new user: when it happens and its idempotency key, if any.
#[derive(Debug, Clone, Copy)]
pub struct CreateContext<'a> {
    pub now: SystemTime,
    pub idempotency: Option<Idempotent<'a>>,
}

/// Stores a new user; with an idempotency key, a retry of a completed request returns the user
/// it created instead (as that user is now). The key's record is written in the same
/// transaction as the user, so a first create is one round trip and a failed one leaves
/// nothing behind.
pub async fn create_user(
    store: &impl UserStore,
    new: NewUser,
    context: CreateContext<'_>,
) -> Result<User, ServiceError> {
    let user = User::create(new, context.now);
    let Some(idempotency) = context.idempotency else {
        store.insert(&user, None).await?;
        telemetry::count(metric::USERS_CREATED, &[], 1);
        return Ok(user);
    };
    let request = ClaimRequest::new(idempotency, user.id(), context.now);
    let user = user.created_by(&request.scoped_key);
    for _ in 0..ATTEMPTS {
        let record = match store.insert(&user, Some(&request)).await {
            Ok(()) => {
                telemetry::count(metric::USERS_CREATED, &[], 1);
                return Ok(user);
            }
            Err(StoreError::KeyHeld(record)) => record,
            Err(error) => return Err(error.into()),
        };
        let (earlier, same_body) = match idempotency::decide(record.as_ref(), &request) {
            Decision::TakeOver => continue,
            // An SDK retry of this very write found it in place.
            Decision::Answer(ClaimOutcome::Claimed) => return Ok(user),
            Decision::Answer(ClaimOutcome::Completed { user, same_body }) => (user, same_body),
            Decision::Answer(ClaimOutcome::InProgress { retry_after }) => {
                return Err(ServiceError::InProgress { retry_after });
            }
            Decision::Answer(ClaimOutcome::Reused) => return Err(ServiceError::KeyReused),
        };
        match store.get(earlier).await? {
            Some(_) if !same_body => return Err(ServiceError::KeyReused),
            Some(earlier) => {
                telemetry::count(metric::IDEMPOTENT_REPLAYS, &[], 1);
                return Ok(earlier);
            }
            // Erased outside the API: the key is free, whatever body it was used with.
            None => store.forget(&request.scoped_key, earlier).await?,
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

/// Applies `patch` to the user as it is now, if it meets `precondition`. A change of the name
/// alone is one conditional write, whose refusal carries the user it found; anything else reads
/// the user first. A write that finds the user changed since it was read starts again from fresh
/// state (never overwriting the other change), a bounded number of times.
pub async fn update_user(
    store: &impl UserStore,
    id: UserId,
    patch: &UserPatch,
    precondition: Option<&Precondition>,
    now: SystemTime,
) -> Result<User, ServiceError> {
    let mut found = None;
    if let (Some(name), Some(updated_at)) = (patch.name_only(), change_time(now)) {
        match store.rename(id, name, &updated_at, precondition).await {
            Ok(Renamed::Done(user)) => {
                telemetry::count(metric::USERS_UPDATED, &[], 1);
                return Ok(user);
            }
            Ok(Renamed::Refused(user)) => found = Some(user),
            Err(StoreError::Stale) => {}
            Err(error) => return Err(error.into()),
        }
    }
    for _ in 0..ATTEMPTS {
        let current = match found.take() {
            Some(user) => meeting(Some(user), precondition)?,
            None => current(store, id, precondition).await?,
        };
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

/// The user as stored now, if it meets `precondition`.
async fn current(
    store: &impl UserStore,
    id: UserId,
    precondition: Option<&Precondition>,
) -> Result<User, ServiceError> {
    meeting(store.get(id).await?, precondition)
}

/// The user found, if it meets `precondition`: `404` before `412`, as the contract orders them.
fn meeting(user: Option<User>, precondition: Option<&Precondition>) -> Result<User, ServiceError> {
    let user = user.ok_or(ServiceError::NotFound)?;
    match precondition {
        Some(precondition) if !precondition.holds_for(user.version()) => {
            Err(ServiceError::PreconditionFailed)
        }
        _ => Ok(user),
    }
}
