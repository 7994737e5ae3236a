//! Configuration from the environment, read once per execution environment.

use aws_config::BehaviorVersion;

use crate::cursor::CursorKey;
use crate::dynamodb::{self, DynamoStore, Tables};

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

/// The store with the one SDK client of this execution environment. Region, credentials and
/// the endpoint (`AWS_ENDPOINT_URL_DYNAMODB`) come from the standard AWS environment.
pub async fn store() -> Result<DynamoStore, ConfigError> {
    let tables = tables()?;
    let client = dynamodb::connect(aws_config::defaults(BehaviorVersion::latest())).await;
    Ok(DynamoStore::new(client, tables))
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
