//! Configuration from the environment, read once per execution environment.

use aws_sdk_dynamodb::config::Credentials;

use crate::cursor::CursorKey;
use crate::dynamodb::{self, Connection, DynamoStore, Tables};

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

/// `CURSOR_SECRET`, at least 32 bytes, shared by every instance of list-users.
pub fn cursor_key() -> Result<CursorKey, ConfigError> {
    const NAME: &str = "CURSOR_SECRET";
    CursorKey::new(var(NAME)?.as_bytes()).map_err(|e| ConfigError::Invalid {
        name: NAME,
        reason: e.to_string(),
    })
}

/// The store with the one SDK client of this execution environment, from the variables Lambda
/// sets: `AWS_REGION`, the execution role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN`, and, locally, `AWS_ENDPOINT_URL_DYNAMODB`.
pub fn store() -> Result<DynamoStore, ConfigError> {
    let tables = tables()?;
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        optional("AWS_SESSION_TOKEN")?,
        None,
        "environment",
    );
    let client = dynamodb::connect(Connection {
        region: var("AWS_REGION")?,
        credentials,
        endpoint: optional("AWS_ENDPOINT_URL_DYNAMODB")?,
    });
    Ok(DynamoStore::new(client, tables))
}

pub(crate) fn optional(name: &'static str) -> Result<Option<String>, ConfigError> {
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
