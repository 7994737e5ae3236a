//! The one AWS SDK configuration of an execution environment, which every client is built from:
//! TLS, timeouts, retries, region and credentials.
//!
//! It comes from `aws-config` with only the providers a function needs, so that nothing probes
//! the network or the filesystem at start-up:
//! - **region** from `AWS_REGION` (or `AWS_DEFAULT_REGION`), which Lambda always sets;
//! - **credentials** from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, what Lambda gives a classic function), then from the container
//!   credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI` and its token, what SnapStart and
//!   Lambda Managed Instances give), which the SDK's identity cache refreshes before expiry;
//!   both are resolved at the first request, not in init (unless the environment was initialised
//!   ahead of traffic, where init opens the connection: [`crate::dynamodb::Probe`]);
//! - **no profile files** (there are none in Lambda), no SSO, STS or instance metadata;
//! - what `aws-config`'s loader reads from the environment besides, read the same way:
//!   `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` (unless
//!   `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`), `AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT`,
//!   `AWS_MAX_ATTEMPTS` and `AWS_RETRY_MODE`; an invalid value stops the function in init.

use std::time::Duration;

pub use aws_config::SdkConfig;
use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

use aws_config::meta::region::ProvideRegion;
use aws_config::retry::RetryMode;
use aws_config::{BehaviorVersion, Region};
use aws_runtime::env_config::EnvConfigValue;
use aws_types::os_shim_internal::Env;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

use crate::config::ConfigError;
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider, SharedHttpClient};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

/// The roots of Amazon Trust Services, which issue the certificate of every AWS endpoint:
/// Amazon Root CA 1–4 and the Starfield Services Root CA G2 that cross-signs them.
const AMAZON_ROOTS: &[u8] = include_bytes!("amazon-trust-services.pem");

/// The configuration of a deployed function, from the variables Lambda sets.
///
/// Built from aws-config's providers rather than its `ConfigLoader`, which would link every
/// provider it falls back to (profile files, web identity and STS, instance metadata) though none
/// of them runs here: the settings the loader would read from the environment are read the same
/// way, through `aws-runtime`'s `EnvConfigValue`, without profile files.
pub async fn from_env() -> Result<SdkConfig, ConfigError> {
    let http = http_client(custom_https_endpoint());
    let container = EcsCredentialsProvider::builder()
        .configure(&ProviderConfig::without_region().with_http_client(http.clone()))
        .build();
    let credentials = CredentialsProviderChain::first_try(
        "Environment",
        EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else("Container", container);
    let env = Env::real();
    let mut retries = RetryConfig::standard();
    if let Some(mode) = setting(&env, "AWS_RETRY_MODE", str::parse::<RetryMode>)? {
        retries = retries.with_retry_mode(mode);
    }
    if let Some(attempts) = setting(&env, "AWS_MAX_ATTEMPTS", attempts)? {
        retries = retries.with_max_attempts(attempts);
    }
    let ignore_endpoints = setting(
        &env,
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        str::parse::<bool>,
    )?
    .unwrap_or(false);
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .timeout_config(timeouts())
        .retry_config(quick(retries))
        .service_config(ServiceEndpoints {
            ignore: ignore_endpoints,
        });
    config.set_region(EnvironmentVariableRegionProvider::new().region().await);
    config.set_use_fips(setting(&env, "AWS_USE_FIPS_ENDPOINT", str::parse::<bool>)?);
    config.set_use_dual_stack(setting(
        &env,
        "AWS_USE_DUALSTACK_ENDPOINT",
        str::parse::<bool>,
    )?);
    if !ignore_endpoints {
        config.set_endpoint_url(setting(&env, "AWS_ENDPOINT_URL", |url| {
            Ok::<_, std::convert::Infallible>(url.to_owned())
        })?);
    }
    Ok(config.build())
}

/// The environment variable `name`, parsed; `None` when it is not set.
fn setting<T, E: std::fmt::Display>(
    env: &Env,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, ConfigError> {
    EnvConfigValue::new()
        .env(name)
        .load(env, None)
        .map(|(value, _)| parse(value.trim()))
        .transpose()
        .map_err(|error| ConfigError::Invalid {
            name,
            reason: error.to_string(),
        })
}

fn attempts(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(attempts @ 1..) => Ok(attempts),
        _ => Err("not a whole number of attempts, 1 or more".into()),
    }
}

/// Service-specific endpoints (`AWS_ENDPOINT_URL_DYNAMODB`, ...), read when each client is built,
/// as aws-config's loader reads them, but from the environment only.
#[derive(Debug)]
struct ServiceEndpoints {
    ignore: bool,
}

impl LoadServiceConfig for ServiceEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if self.ignore && key.env() == "AWS_ENDPOINT_URL" {
            return None;
        }
        EnvConfigValue::new()
            .env(key.env())
            .service_id(key.service_id())
            .load(&Env::real(), None)
            .map(|(value, _)| value.into_owned())
    }
}

/// The configuration of a client for a local server: fixed region and credentials, and the
/// endpoint every service is reached at; otherwise as deployed.
pub fn fixed(region: &str, credentials: Credentials, endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client(is_https(endpoint)))
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .endpoint_url(endpoint)
        .timeout_config(timeouts())
        .retry_config(quick(RetryConfig::standard()))
        .build()
}

/// rustls on ring as the only TLS stack. The client loads its trusted roots while it is built,
/// in init. AWS's own endpoints are trusted through the compiled-in Amazon roots alone: that
/// spares every cold start reading and parsing the system's hundreds of certificates, and trusts
/// no one else. A custom HTTPS endpoint (a proxy, say) may be signed by anyone, so it gets the
/// system's trust store; a plain-HTTP one (a local server) needs no roots, and keeps the
/// deployed start-up, so that local runs measure it. Nothing connects until the first request.
fn http_client(custom_https: bool) -> SharedHttpClient {
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

/// Whether the environment points any service at an `https://` endpoint of its own.
fn custom_https_endpoint() -> bool {
    std::env::vars_os().any(|(name, value)| {
        let name = name.to_string_lossy();
        (name == "AWS_ENDPOINT_URL" || name.starts_with("AWS_ENDPOINT_URL_"))
            && is_https(&value.to_string_lossy())
    })
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// Timeouts well inside the function's own.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}

/// The retry mode and attempts as configured (`AWS_RETRY_MODE`, `AWS_MAX_ATTEMPTS`; standard
/// and 3 by default), backing off from 100 ms rather than the SDK's 1 s, so that a throttled
/// request gets its `503` and `retry-after` in a fraction of a second and the client, not the
/// function, waits out longer throttling.
fn quick(retries: RetryConfig) -> RetryConfig {
    retries
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_amazon_roots_parse() {
        // Building the client loads its trusted roots, and panics on one that does not parse.
        let _client = http_client(false);
        let pem = String::from_utf8_lossy(AMAZON_ROOTS);
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
    }

    #[test]
    fn only_an_https_scheme_is_https() {
        assert!(is_https("HTTPS://dynamodb.local"));
        assert!(!is_https("http://127.0.0.1:8000"));
        assert!(!is_https("https:/"));
    }
}
