//! Configuration from the environment, read once per execution environment.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;

use crate::cursor::CursorKey;
use crate::dynamodb::{DynamoStore, Tables};
use crate::sdk;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// `USERS_TABLE` and `IDEMPOTENCY_TABLE`, which the template sets with `!Ref`.
pub fn tables() -> Result<Tables, ConfigError> {
    Ok(Tables {
        users: var("USERS_TABLE")?,
        idempotency: var("IDEMPOTENCY_TABLE")?,
    })
}

/// `CURSOR_SECRET`, at least 32 bytes, shared by every instance of list-users, which signs
/// cursors; and `CURSOR_PREVIOUS_SECRET`, if set, the key before the last rotation, whose
/// cursors are still accepted.
pub fn cursor_key() -> Result<CursorKey, ConfigError> {
    const CURRENT: &str = "CURSOR_SECRET";
    const PREVIOUS: &str = "CURSOR_PREVIOUS_SECRET";
    let invalid = |name| {
        move |e: crate::domain::Invalid| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }
    };
    let key = CursorKey::new(var(CURRENT)?.as_bytes()).map_err(invalid(CURRENT))?;
    match optional(PREVIOUS)? {
        Some(previous) => key
            .with_previous(previous.as_bytes())
            .map_err(invalid(PREVIOUS)),
        None => Ok(key),
    }
}

/// What every function does first in init: logs and metrics set up, then the AWS SDK
/// configuration of the execution environment loaded ([`sdk`]).
pub async fn start() -> Result<SdkConfig, ConfigError> {
    crate::telemetry::init();
    sdk().await
}

/// The AWS SDK configuration of this execution environment ([`sdk::from_env`]); refuses to
/// start without a region or a source of credentials.
async fn sdk() -> Result<SdkConfig, ConfigError> {
    // Credentials are fetched at the first request, not in init; but without a source for them
    // every request would fail.
    let sources = [
        "AWS_ACCESS_KEY_ID",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ];
    if sources
        .iter()
        .all(|name| std::env::var_os(name).is_none_or(|v| v.is_empty()))
    {
        return Err(ConfigError::Missing("AWS_ACCESS_KEY_ID"));
    }
    let config = sdk::from_env().await?;
    if config.region().is_none() {
        return Err(ConfigError::Missing("AWS_REGION"));
    }
    Ok(config)
}

/// The store, with the one DynamoDB client of this execution environment.
pub fn store(sdk: &SdkConfig) -> Result<DynamoStore, ConfigError> {
    Ok(DynamoStore::new(Client::new(sdk), tables()?))
}

fn optional(name: &'static str) -> Result<Option<String>, ConfigError> {
    match var(name) {
        Ok(value) => Ok(Some(value)),
        Err(ConfigError::Missing(_)) => Ok(None),
        Err(invalid) => Err(invalid),
    }
}

pub(crate) fn var(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err(ConfigError::Missing(name)),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Invalid {
            name,
            reason: "not UTF-8".into(),
        }),
    }
}
