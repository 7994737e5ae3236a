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

/// `CURSOR_SECRET`, at least 32 bytes, shared by every instance of list-users.
pub fn cursor_key() -> Result<CursorKey, ConfigError> {
    const NAME: &str = "CURSOR_SECRET";
    CursorKey::new(var(NAME)?.as_bytes()).map_err(|e| ConfigError::Invalid {
        name: NAME,
        reason: e.to_string(),
    })
}

/// The AWS SDK configuration of this execution environment ([`sdk::from_env`]); refuses to
/// start without a region.
pub async fn sdk() -> Result<SdkConfig, ConfigError> {
    let config = sdk::from_env().await;
    if config.region().is_none() {
        return Err(ConfigError::Missing("AWS_REGION"));
    }
    Ok(config)
}

/// The store, with the one DynamoDB client of this execution environment.
pub fn store(sdk: &SdkConfig) -> Result<DynamoStore, ConfigError> {
    Ok(DynamoStore::new(Client::new(sdk), tables()?))
}

fn var(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err(ConfigError::Missing(name)),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Invalid {
            name,
            reason: "not UTF-8".into(),
        }),
    }
}
