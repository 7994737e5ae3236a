//! The connection to DynamoDB, opened in init where that pays.
//!
//! An environment initialised on demand serves its first request the moment init ends: opening
//! the connection (TCP, the TLS handshake, the client's first-use work) in init would only add a
//! request's round trip to that cold request, and bill it. One initialised ahead of traffic
//! (provisioned concurrency, Lambda Managed Instances) has time to spare in init, and its first
//! request is then as fast as the next. bench/README.md has the measurements.

use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;

use super::item::s;
use super::{DynamoStore, LISTING_INDEX};

/// How long init waits for the connection before it gives up on it: the first request then
/// opens it, as it would without this.
const CONNECT_WITHIN: Duration = Duration::from_secs(1);

/// A call that opens the connection: one the function's role allows anyway, on a key no item
/// has, so it reads nothing (half a read capacity unit) and writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `GetItem` of the users table.
    Get,
    /// `Query` of the listing index.
    Query,
}

/// The key the probe reads: no item of the users table has it, and no user is listed under it.
const NO_ITEM: &str = "CONNECT#";

/// Whether this environment was initialised ahead of traffic, as Lambda's
/// `AWS_LAMBDA_INITIALIZATION_TYPE` says.
fn initialised_ahead_of_traffic() -> bool {
    matches!(
        std::env::var("AWS_LAMBDA_INITIALIZATION_TYPE").as_deref(),
        Ok("provisioned-concurrency" | "lambda-managed-instances")
    )
}

impl DynamoStore {
    /// Opens the connection in init with `probe` if the environment was initialised ahead of
    /// traffic; else leaves it to the first request.
    pub async fn connect_if_ahead_of_traffic(&self, probe: Probe) {
        if initialised_ahead_of_traffic() {
            self.connect(probe).await;
        }
    }

    /// Opens the connection with `probe`, at most [`CONNECT_WITHIN`]; a failure is logged and
    /// left to the first request, which would have connected anyway.
    async fn connect(&self, probe: Probe) {
        let call = async {
            match probe {
                Probe::Get => self
                    .client
                    .get_item()
                    .table_name(&self.tables.users)
                    .key("pk", s(NO_ITEM))
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| DisplayErrorContext(e).to_string()),
                Probe::Query => self
                    .client
                    .query()
                    .table_name(&self.tables.users)
                    .index_name(LISTING_INDEX)
                    .key_condition_expression("#listing = :none")
                    .expression_attribute_names("#listing", "listing")
                    .expression_attribute_values(":none", s(NO_ITEM))
                    .limit(1)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| DisplayErrorContext(e).to_string()),
            }
        };
        match tokio::time::timeout(CONNECT_WITHIN, call).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not connect to DynamoDB in init"),
            Err(_) => tracing::warn!("DynamoDB did not answer within init's wait"),
        }
    }
}
