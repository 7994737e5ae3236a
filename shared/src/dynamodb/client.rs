//! The one SDK client of an execution environment: TLS, timeouts and retries.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

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
const AMAZON_ROOTS: &[u8] = include_bytes!("../amazon-trust-services.pem");

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
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client(connection.endpoint.as_deref()))
        .region(Region::new(connection.region))
        .credentials_provider(connection.credentials)
        .timeout_config(timeouts())
        .retry_config(retries());
    config.set_endpoint_url(connection.endpoint);
    Client::from_conf(config.build())
}

/// The HTTP client of every SDK client of an execution environment: rustls on ring, trusting
/// the compiled-in Amazon roots for AWS endpoints, the system's for a custom HTTPS `endpoint`
/// and none for a plain-HTTP one (see [`connect`]).
pub fn http_client(endpoint: Option<&str>) -> SharedHttpClient {
    let custom_https = endpoint.is_some_and(|url| {
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
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls_context)
        .build_https()
}

/// 1 s to connect, 2 s per attempt, 5 s per call: well inside the function timeout.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}

/// Three attempts, backing off from 100 ms rather than the SDK's 1 s.
pub fn retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(100))
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
