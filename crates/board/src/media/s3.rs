//! `s3://BUCKET/PREFIX?endpoint=…&region=…`.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use super::{MediaStore, ObjectMedia};

/// Credentials for a local S3-compatible server when the environment
/// names none (s3rver's defaults; MinIO and others accept any pair
/// they were started with).
const DUMMY_KEY: &str = "S3RVER";

pub(super) fn open(raw: &str) -> Result<Arc<dyn MediaStore>, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("media URL `{raw}`: {e}"))?;
    let bucket = url
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("media URL `{raw}` names no bucket (s3://BUCKET/PREFIX)"))?
        .to_owned();
    if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
        return Err(format!(
            "media URL `{raw}`: put the server in `?endpoint=`, and credentials in \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        ));
    }
    let prefix = url.path().trim_matches('/');
    let prefix = ObjectPath::parse(prefix)
        .map_err(|e| format!("media URL `{raw}`: bad prefix `{prefix}`: {e}"))?;
    let (mut endpoint, mut region) = (None, None);
    for (key, value) in url.query_pairs() {
        match &*key {
            "endpoint" => endpoint = Some(value.into_owned()),
            "region" => region = Some(value.into_owned()),
            other => {
                return Err(format!(
                    "media URL `{raw}`: unknown parameter `{other}` (known: endpoint, region)"
                ));
            }
        }
    }

    let builder = match &endpoint {
        Some(endpoint) => {
            let allow_http = if endpoint.starts_with("http://") {
                true
            } else if endpoint.starts_with("https://") {
                false
            } else {
                return Err(format!(
                    "media URL `{raw}`: endpoint `{endpoint}` is not an http:// or https:// URL"
                ));
            };
            let (key, secret) = credentials()?;
            // Static credentials always, so the instance-metadata
            // service is never asked; nothing else from the `AWS_*`
            // environment either.
            AmazonS3Builder::new()
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_access_key_id(key)
                .with_secret_access_key(secret)
                .with_client_options(client_options().with_allow_http(allow_http))
        }
        None => AmazonS3Builder::from_env().with_client_options(client_options()),
    };
    let mut builder = builder.with_bucket_name(&bucket).with_retry(retry_config());
    if let Some(region) = region {
        builder = builder.with_region(region);
    } else if endpoint.is_some() {
        builder = builder.with_region("us-east-1");
    }
    let store = builder
        .build()
        .map_err(|e| format!("media URL `{raw}`: {e}"))?;
    let describe = match &endpoint {
        Some(endpoint) => format!("S3 bucket {bucket} at {endpoint}"),
        None => format!("S3 bucket {bucket}"),
    };
    Ok(Arc::new(ObjectMedia {
        store: Arc::new(store),
        prefix,
        attributes: true,
        // `ListObjectsV2` returns keys in UTF-8 binary order.
        sorted_listing: true,
        staging_dir: None,
        describe,
    }))
}

/// The key pair for an `endpoint=` server.
fn credentials() -> Result<(String, String), String> {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(key), Some(secret)) => Ok((key, secret)),
        (None, None) => Ok((DUMMY_KEY.into(), DUMMY_KEY.into())),
        _ => Err("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither".into()),
    }
}

/// Timeouts that make a dead endpoint an error within seconds: a
/// connect gives up after 2 s, a connection that goes silent (a hung
/// server) after 5 s without a byte, and a whole request (images up to
/// the upload limit) after 30 s.
fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_read_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(30))
}

/// A few quick retries for transient errors (connection resets, 5xx,
/// SlowDown), none started more than 4 s after the first attempt, so a
/// request on a dead or hung endpoint fails within about 6 s.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(4),
    }
}
