//! SDK clients, built once per process, and an interceptor that counts the requests
//! they send: every S3 request costs money, so tests and logs count them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::meta::region::ProvideRegion;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::endpoint::EndpointResolverParams;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use aws_smithy_types::error::display::DisplayErrorContext;

use crate::config::secrets::SecretCredentials;
use crate::config::{Config, CredentialSource, EndpointSettings};
use crate::errors::{ConfigError, DestinationCredentialsError};

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
        // SQS's JSON protocol names the operation in a header, not the path; a copy is
        // a PUT that names its source.
        let mut line = format!("{} {}", request.method(), path);
        if let Some(target) = request.headers().get("x-amz-target") {
            line.push_str(&format!(" {target}"));
        }
        if request.headers().contains_key("x-amz-copy-source") {
            line.push_str(" copy");
        }
        self.requests.lock().expect("request log lock").push(line);
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
    // An endpoint variable set to nothing (a template's or a shell's empty default)
    // means no endpoint, not one the SDK cannot parse.
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_ENDPOINT_URL_CLOUDWATCH",
    ] {
        if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
            std::env::remove_var(var);
        }
    }
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .load()
        .await
}

/// The one HTTP client every SDK client uses: hyper 1 and rustls on ring, with the
/// proxy settings of the environment (HTTPS_PROXY, NO_PROXY), as the SDK's default
/// client would have them.
pub fn http_client() -> SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// What aws-config's own providers (profiles: SSO, assume-role) need to reach AWS.
fn provider_config() -> aws_config::provider_config::ProviderConfig {
    aws_config::provider_config::ProviderConfig::without_region().with_http_client(http_client())
}

/// The S3 client for the source side. A custom endpoint (MinIO, moto, Ceph...) gets
/// path-style addressing: such stores rarely have wildcard DNS for bucket names.
pub fn source_s3(sdk: &SdkConfig, log: Option<&RequestLog>) -> aws_sdk_s3::Client {
    let custom = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let mut builder = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(custom)
        .timeout_config(s3_timeouts());
    if let Some(owner) = ExpectedOwner::of_process(HashMap::new()) {
        builder = builder.interceptor(owner);
    }
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

/// One S3 client per destination endpoint in the configuration, built at cold start
/// by the processes that write replicas (never by ingest or retry, whose roles may not
/// read the destinations' secrets). The default endpoint (same as the source) shares
/// the source's client.
#[derive(Clone, Debug)]
pub struct S3Clients {
    pub source: aws_sdk_s3::Client,
    /// The source client reaches AWS's own S3 (no endpoint set for the process).
    pub on_aws: bool,
    others: HashMap<EndpointSettings, aws_sdk_s3::Client>,
    /// The secrets destinations' keys come from, to read again when keys are rotated.
    secrets: HashMap<EndpointSettings, SecretCredentials>,
    /// Same-endpoint destination buckets found in another region than the source
    /// client's (S3 said so, answering 301), and a client for each such region.
    regions: Arc<Mutex<Regions>>,
}

#[derive(Debug, Default)]
struct Regions {
    of_bucket: HashMap<String, String>,
    clients: HashMap<String, aws_sdk_s3::Client>,
}

impl S3Clients {
    /// Fails when a destination's credentials (a secret, a profile) cannot be read:
    /// better at cold start, naming the destination, than as a failure of every job.
    pub async fn build(
        sdk: &SdkConfig,
        source: aws_sdk_s3::Client,
        config: &Config,
        log: Option<&RequestLog>,
    ) -> Result<Self, ConfigError> {
        // The source client's owners by bucket (destinations on this endpoint that name
        // their account) beside the process's own account for the rest. It runs after
        // the process-wide one `source_s3` added, and its header replaces that one's.
        let owners = ExpectedOwner::owners(config, &EndpointSettings::default());
        let owner = ExpectedOwner::of_process(owners.clone()).or_else(|| {
            (!owners.is_empty()).then(|| ExpectedOwner {
                owners: Arc::new(owners),
                default: None,
            })
        });
        let source = match owner {
            Some(owner) => aws_sdk_s3::Client::from_conf(
                source.config().to_builder().interceptor(owner).build(),
            ),
            None => source,
        };
        let mut others = HashMap::new();
        let mut secrets = HashMap::new();
        for (endpoint, bucket) in config.endpoints() {
            if endpoint == EndpointSettings::default() {
                continue;
            }
            let (client, secret) = destination_client(sdk, &endpoint, config, log)
                .await
                .map_err(|source| ConfigError::Credentials {
                    destination: bucket.clone(),
                    source,
                })?;
            if let Some(secret) = secret {
                secrets.insert(endpoint.clone(), secret);
            }
            others.insert(endpoint, client);
        }
        let on_aws = sdk.endpoint_url().is_none()
            && std::env::var_os("AWS_ENDPOINT_URL_S3").is_none()
            && std::env::var_os("AWS_ENDPOINT_URL").is_none();
        Ok(S3Clients {
            source,
            on_aws,
            others,
            secrets,
            regions: Arc::default(),
        })
    }

    /// Only same-endpoint clients; enough for configurations without other providers.
    /// Where the client reaches is not known: destinations' conditions are probed.
    pub fn same_endpoint(source: aws_sdk_s3::Client) -> Self {
        S3Clients {
            source,
            on_aws: false,
            others: HashMap::new(),
            secrets: HashMap::new(),
            regions: Arc::default(),
        }
    }

    /// Which read of its secret a destination's keys come from (None: no secret).
    pub fn keys_generation(&self, endpoint: &EndpointSettings) -> Option<u64> {
        self.secrets
            .get(endpoint)
            .map(SecretCredentials::generation)
    }

    /// After the destination rejected keys of read `generation`: the next request
    /// reads the secret again. False when there is no secret, or it was read since.
    pub fn forget_keys(&self, endpoint: &EndpointSettings, generation: u64) -> bool {
        self.secrets
            .get(endpoint)
            .is_some_and(|s| s.forget(generation))
    }

    pub fn for_destination(&self, endpoint: &EndpointSettings) -> Option<&aws_sdk_s3::Client> {
        if *endpoint == EndpointSettings::default() {
            Some(&self.source)
        } else {
            self.others.get(endpoint)
        }
    }

    /// The client for a destination bucket: its endpoint's, or on the source's
    /// endpoint, one for the bucket's region once S3 has said it is another.
    pub fn for_destination_bucket(
        &self,
        endpoint: &EndpointSettings,
        bucket: &str,
    ) -> Option<aws_sdk_s3::Client> {
        if *endpoint == EndpointSettings::default() {
            let regions = self.regions.lock().expect("regions lock");
            if let Some(client) = regions
                .of_bucket
                .get(bucket)
                .and_then(|r| regions.clients.get(r))
            {
                return Some(client.clone());
            }
        }
        self.for_destination(endpoint).cloned()
    }

    /// Remembers that a same-endpoint destination bucket is in `region` (S3 answered a
    /// request with 301 and the bucket's region), and makes a client for it. False when
    /// nothing changes (known already, or the source client's own region): following
    /// it again would not help.
    pub fn learn_region(&self, bucket: &str, region: &str) -> bool {
        let own = self
            .source
            .config()
            .region()
            .map(|r| r.as_ref().to_string());
        if own.as_deref() == Some(region) {
            return false;
        }
        let mut regions = self.regions.lock().expect("regions lock");
        if regions.of_bucket.get(bucket).map(String::as_str) == Some(region) {
            return false;
        }
        tracing::info!(bucket = %bucket, region = %region,
            "the destination bucket is in another region: its requests go to that region from now on");
        if !regions.clients.contains_key(region) {
            let client = aws_sdk_s3::Client::from_conf(
                self.source
                    .config()
                    .to_builder()
                    .region(aws_sdk_s3::config::Region::new(region.to_string()))
                    .build(),
            );
            regions.clients.insert(region.to_string(), client);
        }
        regions
            .of_bucket
            .insert(bucket.to_string(), region.to_string());
        true
    }
}

async fn destination_client(
    sdk: &SdkConfig,
    endpoint: &EndpointSettings,
    config: &Config,
    log: Option<&RequestLog>,
) -> Result<(aws_sdk_s3::Client, Option<SecretCredentials>), DestinationCredentialsError> {
    let mut secret_keys = None;
    let mut builder = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(endpoint.force_path_style)
        .timeout_config(s3_timeouts());
    if let Some(url) = &endpoint.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    match &endpoint.credentials {
        CredentialSource::DefaultChain => {}
        CredentialSource::Secret(secret) => {
            let provider = SecretCredentials::new(sdk, secret);
            provider.current().await?;
            // The provider keeps the keys itself, and forgets them when a destination
            // rejects them; the SDK's own cache would hold them for their lifetime.
            builder = builder
                .credentials_provider(provider.clone())
                .identity_cache(aws_sdk_s3::config::IdentityCache::no_cache());
            secret_keys = Some(provider);
        }
        CredentialSource::Profile(name) => {
            // That profile alone: the default chain would let AWS_ACCESS_KEY_ID in the
            // environment win, and send the process's key to the other provider.
            let provider = ProfileFileCredentialsProvider::builder()
                .configure(&provider_config())
                .profile_name(name)
                .build();
            provider
                .provide_credentials()
                .await
                .map_err(|e| DestinationCredentialsError {
                    source_kind: "profile",
                    name: name.clone(),
                    reason: format!("cannot be used: {}", DisplayErrorContext(&e)),
                })?;
            builder = builder.credentials_provider(provider);
            if endpoint.region.is_none() {
                let region = ProfileFileRegionProvider::builder()
                    .configure(&provider_config())
                    .profile_name(name)
                    .build()
                    .region()
                    .await;
                if let Some(region) = region {
                    builder = builder.region(region);
                }
            }
        }
    }
    if let Some(region) = &endpoint.region {
        builder = builder.region(aws_sdk_s3::config::Region::new(region.clone()));
    }
    if let Some(owners) = ExpectedOwner::for_endpoint(config, endpoint) {
        builder = builder.interceptor(owners);
    }
    if let Some(log) = log {
        builder = builder.interceptor(log.clone());
    }
    Ok((aws_sdk_s3::Client::from_conf(builder.build()), secret_keys))
}

/// Sends `x-amz-expected-bucket-owner` with every request to a destination bucket
/// whose rule names its `Account`: S3 then refuses the request (403) if the bucket is
/// owned by anyone else, so a bucket name deleted and re-registered by a stranger
/// never receives replicas. Keyed by the bucket the request addresses, so every
/// operation (copies, parts, tags, ACLs, deletes, HEADs) carries it.
#[derive(Debug, Clone)]
struct ExpectedOwner {
    owners: Arc<HashMap<String, String>>,
    /// The process's own account (`REPLICATOR_ACCOUNT`), for every other bucket the
    /// client reaches: sources, the configuration object, the archive and records.
    default: Option<String>,
}

impl ExpectedOwner {
    fn owners(config: &Config, endpoint: &EndpointSettings) -> HashMap<String, String> {
        config
            .sources
            .iter()
            .flat_map(|s| &s.rules)
            .map(|r| &r.destination)
            .filter(|d| d.endpoint == *endpoint)
            .filter_map(|d| Some((d.bucket.clone(), d.account.clone()?)))
            .collect()
    }

    fn for_endpoint(config: &Config, endpoint: &EndpointSettings) -> Option<ExpectedOwner> {
        let owners = ExpectedOwner::owners(config, endpoint);
        (!owners.is_empty()).then(|| ExpectedOwner {
            owners: Arc::new(owners),
            default: None,
        })
    }

    /// These owners, and the process's account for every other bucket, when the
    /// environment names it.
    fn of_process(owners: HashMap<String, String>) -> Option<ExpectedOwner> {
        let account = std::env::var(crate::config::settings::ACCOUNT_VAR)
            .ok()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())?;
        Some(ExpectedOwner {
            owners: Arc::new(owners),
            default: Some(account),
        })
    }
}

impl Intercept for ExpectedOwner {
    fn name(&self) -> &'static str {
        "ExpectedOwner"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let bucket = cfg
            .load::<EndpointResolverParams>()
            .and_then(|p| p.get::<aws_sdk_s3::config::endpoint::Params>())
            .and_then(|p| p.bucket());
        let account = bucket
            .and_then(|b| self.owners.get(b))
            .or(self.default.as_ref().filter(|_| bucket.is_some()));
        if let Some(account) = account {
            context
                .request_mut()
                .headers_mut()
                .insert("x-amz-expected-bucket-owner", account.clone());
        }
        Ok(())
    }
}

/// The region a bucket is in, as S3 says (`x-amz-bucket-region`, on HeadBucket's
/// answer even when the bucket is elsewhere or refuses us); `None` when the server
/// does not say.
pub async fn bucket_region(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Option<String>, String> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(out) => Ok(out.bucket_region().map(str::to_string)),
        Err(e) => {
            let said = e
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
                .map(str::to_string);
            match (said, crate::errors::http_status(&e)) {
                (Some(region), _) => Ok(Some(region)),
                (None, Some(404)) => Err(format!("bucket {bucket} does not exist")),
                (None, _) => Err(format!("bucket {bucket}: {}", crate::errors::describe(&e))),
            }
        }
    }
}
