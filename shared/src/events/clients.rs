//! The EventBridge and SQS clients: set up as the DynamoDB client is (rustls on ring, the
//! compiled-in Amazon roots, the same timeouts and retries), each with its own endpoint
//! override for a local server.

use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_eventbridge::config::{BehaviorVersion, Region};

use crate::dynamodb::{http_client, retries, timeouts};

/// Where and as whom the clients connect.
#[derive(Debug, Clone)]
pub struct Settings {
    pub region: String,
    pub credentials: Credentials,
    /// `AWS_ENDPOINT_URL_EVENTBRIDGE`, for a local EventBridge-compatible server.
    pub eventbridge_endpoint: Option<String>,
    /// `AWS_ENDPOINT_URL_SQS`, for a local SQS-compatible server.
    pub sqs_endpoint: Option<String>,
}

pub fn eventbridge(settings: &Settings) -> aws_sdk_eventbridge::Client {
    let endpoint = settings.eventbridge_endpoint.clone();
    let mut config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client(endpoint.as_deref()))
        .region(Region::new(settings.region.clone()))
        .credentials_provider(settings.credentials.clone())
        .timeout_config(timeouts())
        .retry_config(retries());
    config.set_endpoint_url(endpoint);
    aws_sdk_eventbridge::Client::from_conf(config.build())
}

pub fn sqs(settings: &Settings) -> aws_sdk_sqs::Client {
    let endpoint = settings.sqs_endpoint.clone();
    let mut config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client(endpoint.as_deref()))
        .region(Region::new(settings.region.clone()))
        .credentials_provider(settings.credentials.clone())
        .timeout_config(timeouts())
        .retry_config(retries());
    config.set_endpoint_url(endpoint);
    aws_sdk_sqs::Client::from_conf(config.build())
}
