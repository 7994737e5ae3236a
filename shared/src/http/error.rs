use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;

use crate::service::ServiceError;
use crate::store::StoreError;

/// Every answer other than a success, as the contract names it. This is the one place that
/// decides status codes and client-facing messages.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the body is not a JSON object")]
    InvalidJson,
    #[error("id: not a valid user id")]
    InvalidId,
    #[error("limit: must be an integer from 1 to 100")]
    InvalidLimit,
    #[error("cursor: not a cursor this service issued")]
    InvalidCursor,
    #[error("idempotency-key: must be 1 to 128 printable ASCII characters")]
    InvalidIdempotencyKey,
    #[error("no such user")]
    UserNotFound,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("email: already belongs to another user")]
    EmailTaken,
    #[error("a request with this idempotency-key is still in progress; retry later")]
    RequestInProgress { retry_after: Duration },
    #[error("the body must not exceed 16384 bytes")]
    PayloadTooLarge,
    #[error(
        "content-type must be application/json (or, for a patch, application/merge-patch+json)"
    )]
    UnsupportedMediaType,
    #[error("if-match: names no current version of the user")]
    PreconditionFailed,
    #[error("{0}")]
    ValidationFailed(String),
    #[error("idempotency-key: already used with a different body")]
    IdempotencyKeyReused,
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidJson
            | Self::InvalidId
            | Self::InvalidLimit
            | Self::InvalidCursor
            | Self::InvalidIdempotencyKey => 400,
            Self::UserNotFound | Self::RouteNotFound => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::EmailTaken | Self::RequestInProgress { .. } => 409,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ValidationFailed(_) | Self::IdempotencyKeyReused => 422,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidId => "invalid_id",
            Self::InvalidLimit => "invalid_limit",
            Self::InvalidCursor => "invalid_cursor",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::UserNotFound | Self::RouteNotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::EmailTaken => "email_taken",
            Self::RequestInProgress { .. } => "request_in_progress",
            Self::PreconditionFailed => "precondition_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ValidationFailed(_) => "validation_failed",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// `retry-after`, in seconds, for the answers that invite a retry.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RequestInProgress { retry_after } => Some(retry_after.as_secs().max(1)),
            Self::Unavailable => Some(1),
            _ => None,
        }
    }
}

/// Client-side outcomes map one to one; a failure is logged with its whole cause chain here,
/// the one place it is turned into a `5xx` that says nothing about it.
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NotFound => Self::UserNotFound,
            ServiceError::EmailTaken => Self::EmailTaken,
            ServiceError::KeyReused => Self::IdempotencyKeyReused,
            ServiceError::InProgress { retry_after } => Self::RequestInProgress { retry_after },
            ServiceError::PreconditionFailed => Self::PreconditionFailed,
            error @ ServiceError::Contended(_) => {
                tracing::warn!(error = %error, "gave up on contended writes");
                Self::Unavailable
            }
            ServiceError::Store(error @ StoreError::Corrupt(_)) => {
                tracing::error!(error = %DisplayErrorContext(&error), "stored data is invalid");
                Self::Internal
            }
            ServiceError::Store(error @ StoreError::Refused(_)) => {
                tracing::error!(error = %DisplayErrorContext(&error), "DynamoDB refused a request");
                Self::Internal
            }
            ServiceError::Store(error) => {
                tracing::error!(error = %DisplayErrorContext(&error), "DynamoDB failed");
                Self::Unavailable
            }
        }
    }
}
