//! The DynamoDB implementation of [`UserStore`].
//!
//! Users table (key `pk`):
//! - `USER#<id>`: `id`, `name`, `email`, `created_at`, and `listing = "USER"`, which puts the
//!   item in the sparse index [`LISTING_INDEX`] (`listing` hash, `id` range) that pages read.
//! - `EMAIL#<lowercased email>`: `user_id`. Written in the same transaction as the user, with
//!   `attribute_not_exists(pk)`, so two users can never share an email, however they race.
//!
//! Idempotency table (key `pk` = `<caller scope>#<key>`): `fingerprint`, `state`
//! (`in_progress`/`completed`), `user_id`, `in_flight_until` (ms), and `expires_at` (s, the
//! table's TTL attribute). Expiry is checked on read, as DynamoDB deletes expired items late.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use tracing::Instrument;
use ulid::Ulid;

use crate::domain::{User, UserId};
use crate::idempotency::{Claim, ClaimOutcome, ClaimRequest, RETENTION};
use crate::store::{Page, StoreError, UserStore};
use crate::telemetry::metric;

pub const LISTING_INDEX: &str = "ByNewest";
const LISTING: &str = "USER";
const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";
/// Attempts for a transaction that DynamoDB cancelled because another one touched its items.
const CONFLICT_ATTEMPTS: u32 = 3;

type Item = HashMap<String, AttributeValue>;

/// The table names, as the deployment passes them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub users: String,
    pub idempotency: String,
}

/// Where and as whom the client connects: in Lambda, the region and the execution role's
/// credentials are always in the environment, so the functions read them directly rather than
/// through `aws-config`, whose provider chains (profile files, SSO, STS, the instance metadata
/// service) would only add size and start-up probes.
#[derive(Debug, Clone)]
pub struct Connection {
    pub region: String,
    pub credentials: Credentials,
    /// `AWS_ENDPOINT_URL_DYNAMODB`, for a local DynamoDB-compatible server.
    pub endpoint: Option<String>,
}

/// The roots of Amazon Trust Services, which issue the certificate of every AWS endpoint:
/// Amazon Root CA 1–4 and the Starfield Services Root CA G2 that cross-signs them.
const AMAZON_ROOTS: &[u8] = include_bytes!("amazon-trust-services.pem");

/// Builds the one client an execution environment uses: rustls on ring as the only TLS stack,
/// and timeouts and retries bounded well inside the function timeout. Retries back off from
/// 100 ms rather than the SDK's 1 s, so that a throttled request gets its `503` and
/// `retry-after` in a fraction of a second and the client, not the function, waits out longer
/// throttling. Nothing connects until the first request.
///
/// The client loads its trusted roots while it is built, in init. DynamoDB's own endpoints are
/// trusted through the compiled-in Amazon roots alone: that spares every cold start reading and
/// parsing the system's hundreds of certificates, and trusts no one else. A custom HTTPS endpoint
/// (a proxy, say) may be signed by anyone, so it gets the system's trust store; a plain-HTTP one
/// (a local server) needs no roots, and keeps the deployed start-up, so that local runs measure it.
pub fn connect(connection: Connection) -> Client {
    let custom_https = connection.endpoint.as_deref().is_some_and(|url| {
        url.get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    });
    let trust = if custom_https {
        TrustStore::default()
    } else {
        TrustStore::empty().with_pem_certificate(AMAZON_ROOTS)
    };
    let tls_context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .unwrap_or_default();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls_context)
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(connection.region))
        .credentials_provider(connection.credentials)
        .timeout_config(timeouts)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(100)),
        );
    config.set_endpoint_url(connection.endpoint);
    Client::from_conf(config.build())
}

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    async fn read_claim(&self, scoped_key: &str) -> Result<Option<Item>, StoreError> {
        let output = timed(
            "GetItem",
            self.client
                .get_item()
                .table_name(&self.tables.idempotency)
                .key("pk", s(scoped_key))
                .consistent_read(true)
                .send(),
        )
        .await
        .map_err(failure)?;
        Ok(output.item)
    }

    fn insert_items(
        &self,
        user: &User,
        claim: Option<&Claim>,
    ) -> Result<Vec<TransactWriteItem>, BuildError> {
        let id = user.id().to_string();
        let put_user = Put::builder()
            .table_name(&self.tables.users)
            .item("pk", s(format!("USER#{id}")))
            .item("id", s(&id))
            .item("name", s(user.name().as_str()))
            .item("email", s(user.email().as_str()))
            .item("created_at", s(user.created_at()))
            .item("listing", s(LISTING))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        let put_email = Put::builder()
            .table_name(&self.tables.users)
            .item("pk", s(format!("EMAIL#{}", user.email().canonical())))
            .item("user_id", s(&id))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        let mut items = vec![
            TransactWriteItem::builder().put(put_user).build(),
            TransactWriteItem::builder().put(put_email).build(),
        ];
        if let Some(claim) = claim {
            let complete = Update::builder()
                .table_name(&self.tables.idempotency)
                .key("pk", s(&claim.scoped_key))
                .update_expression("SET #state = :completed")
                .condition_expression("#state = :in_progress AND user_id = :user")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":completed", s(COMPLETED))
                .expression_attribute_values(":in_progress", s(IN_PROGRESS))
                .expression_attribute_values(":user", s(&id))
                .build()?;
            items.push(TransactWriteItem::builder().update(complete).build());
        }
        Ok(items)
    }
}

impl UserStore for DynamoStore {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let output = timed(
            "GetItem",
            self.client
                .get_item()
                .table_name(&self.tables.users)
                .key("pk", s(format!("USER#{id}")))
                .consistent_read(true)
                .send(),
        )
        .await
        .map_err(failure)?;
        output.item.as_ref().map(user_from_item).transpose()
    }

    async fn list(&self, before: Option<UserId>, limit: usize) -> Result<Page, StoreError> {
        // One item more than the page tells whether another page follows, without a second
        // query and without trusting LastEvaluatedKey (which DynamoDB also sets on an exact end).
        let wanted = limit + 1;
        let mut users = Vec::with_capacity(wanted);
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.users)
                .index_name(LISTING_INDEX)
                .expression_attribute_names("#listing", "listing")
                .expression_attribute_values(":listing", s(LISTING))
                .scan_index_forward(false)
                .limit(i32::try_from(wanted - users.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            query = match before {
                Some(before) => query
                    .key_condition_expression("#listing = :listing AND #id < :before")
                    .expression_attribute_names("#id", "id")
                    .expression_attribute_values(":before", s(before.to_string())),
                None => query.key_condition_expression("#listing = :listing"),
            };
            let output = timed("Query", query.send()).await.map_err(failure)?;
            for item in output.items() {
                users.push(user_from_item(item)?);
            }
            start = output.last_evaluated_key;
            if users.len() >= wanted || start.is_none() {
                break;
            }
        }
        let more = users.len() > limit;
        users.truncate(limit);
        Ok(Page { users, more })
    }

    async fn insert(&self, user: &User, claim: Option<&Claim>) -> Result<(), StoreError> {
        let items = self
            .insert_items(user, claim)
            .map_err(|e| StoreError::Refused(e.into()))?;
        let mut attempt = 1;
        loop {
            let result = timed(
                "TransactWriteItems",
                self.client
                    .transact_write_items()
                    .set_transact_items(Some(items.clone()))
                    // Fresh for each attempt of ours, kept by the SDK's own retries: a retry after
                    // a lost response is then recognised by DynamoDB instead of failing on the
                    // conditions its first write made true.
                    .client_request_token(Ulid::new().to_string())
                    .send(),
            )
            .await;
            let error = match result {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            match cancellation(&error) {
                Some(Cancellation::EmailTaken) => return Err(StoreError::EmailTaken),
                Some(Cancellation::ClaimLost) => return Err(StoreError::ClaimLost),
                Some(Cancellation::Conflict) if attempt < CONFLICT_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                    attempt += 1;
                }
                // Still conflicting, or cancelled for another reason (throttling, capacity):
                // nothing was written and a later retry may pass.
                Some(Cancellation::Conflict | Cancellation::Other) => {
                    return Err(StoreError::Unavailable(Box::new(error)));
                }
                None => return Err(failure(error)),
            }
        }
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimOutcome, StoreError> {
        let now_ms = millis(request.now);
        let my_deadline = millis(request.in_flight_until);
        let my_user = request.user.to_string();
        let now_s = now_ms / 1000;
        let expires_at = (request.now + RETENTION)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        // An expired record may be replaced but could be deleted in between; a couple of rounds
        // settle it.
        for _ in 0..3 {
            let put = timed(
                "PutItem",
                self.client
                    .put_item()
                    .table_name(&self.tables.idempotency)
                    .item("pk", s(&request.scoped_key))
                    .item("fingerprint", s(&request.fingerprint))
                    .item("state", s(IN_PROGRESS))
                    .item("user_id", s(&my_user))
                    .item("in_flight_until", n(my_deadline))
                    .item("expires_at", n(expires_at))
                    .condition_expression(
                        "attribute_not_exists(pk) OR expires_at < :now_s \
                     OR (#state = :in_progress AND in_flight_until < :now_ms)",
                    )
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":now_s", n(now_s))
                    .expression_attribute_values(":now_ms", n(now_ms))
                    .expression_attribute_values(":in_progress", s(IN_PROGRESS))
                    .send(),
            )
            .await;
            if result_of_claim(put)? {
                return Ok(ClaimOutcome::Claimed);
            }
            let Some(existing) = self.read_claim(&request.scoped_key).await? else {
                continue;
            };
            let expired = number(&existing, "expires_at")? < now_s;
            if expired {
                continue;
            }
            if string(&existing, "fingerprint")? != request.fingerprint {
                return Ok(ClaimOutcome::Reused);
            }
            let holder = string(&existing, "user_id")?;
            let state = string(&existing, "state")?;
            if state == IN_PROGRESS && holder == my_user {
                // Our own write, answered late: an SDK retry of the put found it in place.
                return Ok(ClaimOutcome::Claimed);
            }
            if state == COMPLETED {
                let user = UserId::parse(holder).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                return Ok(ClaimOutcome::Replay(user));
            }
            let in_flight_until = number(&existing, "in_flight_until")?;
            if in_flight_until >= now_ms {
                let wait_ms = in_flight_until - now_ms;
                let retry_after = Duration::from_secs(wait_ms.div_ceil(1000).max(1));
                return Ok(ClaimOutcome::InProgress { retry_after });
            }
        }
        Err(StoreError::Unavailable(
            "the idempotency record kept changing".into(),
        ))
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        let result = timed(
            "DeleteItem",
            self.client
                .delete_item()
                .table_name(&self.tables.idempotency)
                .key("pk", s(&claim.scoped_key))
                .condition_expression("#state = :in_progress AND user_id = :user")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":in_progress", s(IN_PROGRESS))
                .expression_attribute_values(":user", s(claim.user.to_string()))
                .send(),
        )
        .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else holds the key now: nothing of ours is left to release.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(failure(error)),
        }
    }
}

/// Runs a DynamoDB call in a span named after its operation, and records its latency.
async fn timed<T>(operation: &'static str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let result = call
        .instrument(tracing::info_span!("dynamodb", operation))
        .await;
    metrics::histogram!(metric::DYNAMODB_LATENCY, "operation" => operation)
        .record(started.elapsed().as_secs_f64() * 1000.0);
    result
}

/// Sorts an SDK failure by whether a retry may help: timeouts, connection failures, throttling
/// and DynamoDB's own 5xx may pass; anything else DynamoDB refused will not.
fn failure<E>(error: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    const TRANSIENT: [&str; 6] = [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionInProgressException",
        "InternalServerError",
    ];
    let transient = match &error {
        SdkError::ServiceError(_) => {
            error.code().is_some_and(|code| TRANSIENT.contains(&code))
                || error
                    .raw_response()
                    .is_some_and(|r| r.status().is_server_error())
        }
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    if transient {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Refused(Box::new(error))
    }
}

/// `Ok(true)` when the claim was written, `Ok(false)` when a live record holds the key.
fn result_of_claim<R>(result: Result<R, SdkError<PutItemError>>) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
        {
            Ok(false)
        }
        Err(error) => Err(failure(error)),
    }
}

enum Cancellation {
    EmailTaken,
    ClaimLost,
    Conflict,
    Other,
}

/// Reads why DynamoDB cancelled an insert transaction, by the position of the failed item;
/// `None` when the error is not a cancellation.
fn cancellation(error: &SdkError<TransactWriteItemsError>) -> Option<Cancellation> {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        error.as_service_error()
    else {
        return None;
    };
    let codes: Vec<&str> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().unwrap_or("None"))
        .collect();
    Some(match codes.as_slice() {
        [_, "ConditionalCheckFailed", ..] => Cancellation::EmailTaken,
        [_, _, "ConditionalCheckFailed"] => Cancellation::ClaimLost,
        codes if codes.contains(&"TransactionConflict") => Cancellation::Conflict,
        _ => Cancellation::Other,
    })
}

fn user_from_item(item: &Item) -> Result<User, StoreError> {
    User::restore(
        string(item, "id")?,
        string(item, "name")?,
        string(item, "email")?,
        string(item, "created_at")?,
    )
    .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a string"
        ))),
    }
}

fn number(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not a whole number"))),
        _ => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a number"
        ))),
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_amazon_roots_parse() {
        // Building the client loads its trusted roots, and panics on one that does not parse.
        let credentials = Credentials::new("id", "secret", None, None, "test");
        let client = connect(Connection {
            region: "eu-west-1".into(),
            credentials,
            endpoint: None,
        });
        assert_eq!(
            client.config().region().map(|r| r.as_ref()),
            Some("eu-west-1")
        );
        let pem = String::from_utf8_lossy(AMAZON_ROOTS);
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
    }
}
