//! SDK clients, built once per process, and an interceptor that counts the requests
//! they send: every S3 request costs money, so tests and logs count them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::config::{Config, EndpointSettings};
use crate::errors::{ConfigError, SecretError};
use crate::secrets::SecretCredentials;

/// Records "METHOD path?query" for every attempt a client transmits (retries count:
/// they are billed too).
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    requests: Arc<Mutex<Vec<String>>>,
}

impl RequestLog {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().expect("request log lock"))
    }
    pub fn len(&self) -> usize {
        self.requests.lock().expect("request log lock").len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Intercept for RequestLog {
    fn name(&self) -> &'static str {
        "RequestLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let uri = request.uri();
        let path = uri.split_once("://").map(|(_, rest)| rest).unwrap_or(uri);
        let path = path.find('/').map(|i| &path[i..]).unwrap_or("/");
        self.requests
            .lock()
            .expect("request log lock")
            .push(format!("{} {}", request.method(), path));
        Ok(())
    }
}

/// S3 requests that stall become `Timeout` failures (retried) instead of holding a
/// job forever. The read timeout is the wait for the first byte of a response: S3
/// starts answering even a long CopyObject at once, so it need not cover the copy.
pub fn s3_timeouts() -> aws_sdk_s3::config::timeout::TimeoutConfig {
    aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .read_timeout(std::time::Duration::from_secs(60))
        .build()
}

/// Loads the SDK's shared configuration from the environment (AWS_REGION,
/// AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_SQS, credentials chain).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The S3 client for the source side. A custom endpoint (MinIO, moto, Ceph...) gets
/// path-style addressing: such stores rarely have wildcard DNS for bucket names.
pub fn source_s3(sdk: &SdkConfig, log: Option<&RequestLog>) -> aws_sdk_s3::Client {
    let custom = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let mut builder = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(custom)
        .timeout_config(s3_timeouts());
    if let Some(log) = log {
        builder = builder.interceptor(log.clone());
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// The SQS client; its read timeout stays above SQS's longest long poll (20 s).
pub fn sqs(sdk: &SdkConfig) -> aws_sdk_sqs::Client {
    let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .read_timeout(std::time::Duration::from_secs(30))
        .build();
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .build(),
    )
}

/// One S3 client per destination endpoint in the configuration, built at cold start.
/// The default endpoint (same as the source) shares the source's client.
#[derive(Clone, Debug)]
pub struct S3Clients {
    pub source: aws_sdk_s3::Client,
    others: HashMap<EndpointSettings, aws_sdk_s3::Client>,
}

impl S3Clients {
    /// Fails when a destination's credentials secret cannot be read: better at cold
    /// start, with the secret's name, than as a failure of every job.
    pub async fn build(
        sdk: &SdkConfig,
        source: aws_sdk_s3::Client,
        config: &Config,
        log: Option<&RequestLog>,
    ) -> Result<Self, ConfigError> {
        let mut others = HashMap::new();
        for (endpoint, bucket) in config.endpoints() {
            if endpoint == EndpointSettings::default() {
                continue;
            }
            let client = destination_client(sdk, &endpoint, log)
                .await
                .map_err(|source| ConfigError::Credentials {
                    destination: bucket.clone(),
                    source,
                })?;
            others.insert(endpoint, client);
        }
        Ok(S3Clients { source, others })
    }

    /// Only same-endpoint clients; enough for configurations without other providers.
    pub fn same_endpoint(source: aws_sdk_s3::Client) -> Self {
        S3Clients {
            source,
            others: HashMap::new(),
        }
    }

    pub fn for_destination(&self, endpoint: &EndpointSettings) -> Option<&aws_sdk_s3::Client> {
        if *endpoint == EndpointSettings::default() {
            Some(&self.source)
        } else {
            self.others.get(endpoint)
        }
    }
}

async fn destination_client(
    sdk: &SdkConfig,
    endpoint: &EndpointSettings,
    log: Option<&RequestLog>,
) -> Result<aws_sdk_s3::Client, SecretError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &endpoint.profile {
        loader = loader.profile_name(profile);
    }
    let own = loader.load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(if endpoint.profile.is_some() {
        &own
    } else {
        sdk
    })
    .force_path_style(endpoint.force_path_style)
    .timeout_config(s3_timeouts());
    if let Some(url) = &endpoint.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    if let Some(region) = &endpoint.region {
        builder = builder.region(aws_sdk_s3::config::Region::new(region.clone()));
    }
    if let Some(secret) = &endpoint.secret {
        let provider = SecretCredentials::new(sdk, secret);
        provider.load().await?;
        builder = builder.credentials_provider(provider);
    }
    if let Some(log) = log {
        builder = builder.interceptor(log.clone());
    }
    Ok(aws_sdk_s3::Client::from_conf(builder.build()))
}
