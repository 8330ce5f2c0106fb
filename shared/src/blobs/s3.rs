//! Attached files in an S3 bucket through `aws-sdk-s3`. Uploads are S3 presigned POSTs (a
//! policy document signed with SigV4 by this function's credentials: the SDK presigns single
//! requests, not browser form uploads, so the policy is signed here with aws-sigv4's signing key
//! and HMAC). The policy pins the key, the content type and the size range, and expires.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::Client;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::json;

use super::{BlobError, Blobs, ObjectInfo, UploadForm};
use crate::domain::Timestamp;

/// A bucket.
pub struct S3Blobs {
    client: Client,
    bucket: String,
    region: String,
    endpoint: Option<String>,
    credentials: Option<SharedCredentialsProvider>,
}

impl S3Blobs {
    /// A client from the environment (region, credentials, `AWS_ENDPOINT_URL_S3`), with the SDK's
    /// standard retries and timeouts below the functions' own. An endpoint override (a local
    /// S3-API server) switches to path-style addressing.
    pub async fn from_env(bucket: String, endpoint: Option<String>) -> Self {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(crate::http::sdk_http_client())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(20))
                    .build(),
            )
            .load()
            .await;
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(endpoint.is_some())
            .build();
        Self {
            client: Client::from_conf(s3),
            bucket,
            region: config
                .region()
                .map_or_else(|| "us-east-1".to_owned(), ToString::to_string),
            endpoint,
            credentials: config.credentials_provider(),
        }
    }

    /// A bucket through an existing client (tests: a local S3-API server, with `endpoint` its URL
    /// and path-style addressing on the client).
    pub fn new(
        client: Client,
        bucket: String,
        region: String,
        endpoint: Option<String>,
        credentials: SharedCredentialsProvider,
    ) -> Self {
        Self {
            client,
            bucket,
            region,
            endpoint,
            credentials: Some(credentials),
        }
    }

    /// The bucket's URL for form uploads.
    fn bucket_url(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("{endpoint}/{}", self.bucket),
            None => format!("https://{}.s3.{}.amazonaws.com", self.bucket, self.region),
        }
    }
}

type Response = aws_sdk_s3::config::http::HttpResponse;

fn unavailable<E: std::fmt::Debug + ProvideErrorMetadata>(context: &str, e: SdkError<E, Response>) -> BlobError {
    let detail = match &e {
        SdkError::ServiceError(s) => s.err().code().unwrap_or("service error").to_owned(),
        other => format!("{other:?}").chars().take(200).collect(),
    };
    BlobError::Unavailable(format!("{context}: {detail}"))
}

/// Whether a service error means "no such object": 404, or 403 for a role without
/// `s3:ListBucket` (S3 hides missing keys from it).
fn missing<E: ProvideErrorMetadata>(e: &SdkError<E, Response>) -> bool {
    match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            matches!(s.err().code(), Some("NoSuchKey" | "NotFound")) || status == 404 || status == 403
        }
        _ => false,
    }
}

#[async_trait]
impl Blobs for S3Blobs {
    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    async fn upload_form(
        &self,
        key: &str,
        media_type: &str,
        max_bytes: u64,
        expires_at: Timestamp,
        _origin: &str,
    ) -> Result<UploadForm, BlobError> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| BlobError::Internal("no AWS credentials to sign uploads with".to_owned()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| BlobError::Unavailable(format!("credentials: {e}")))?;
        let now = SystemTime::now();
        let stamp = chrono::DateTime::<chrono::Utc>::from(now);
        let date = stamp.format("%Y%m%d").to_string();
        let amz_date = stamp.format("%Y%m%dT%H%M%SZ").to_string();
        let credential = format!("{}/{date}/{}/s3/aws4_request", credentials.access_key_id(), self.region);
        let mut conditions = vec![
            json!({"bucket": self.bucket}),
            json!({"key": key}),
            json!({"Content-Type": media_type}),
            json!(["content-length-range", 1, max_bytes]),
            json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
            json!({"x-amz-credential": credential}),
            json!({"x-amz-date": amz_date}),
        ];
        if let Some(token) = credentials.session_token() {
            conditions.push(json!({"x-amz-security-token": token}));
        }
        let policy = json!({
            "expiration": expires_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "conditions": conditions,
        });
        let policy = BASE64.encode(policy.to_string());
        let signing_key =
            aws_sigv4::sign::v4::generate_signing_key(credentials.secret_access_key(), now, &self.region, "s3");
        let signature = aws_sigv4::sign::v4::calculate_signature(signing_key, policy.as_bytes());
        let mut fields = BTreeMap::new();
        fields.insert("key".to_owned(), key.to_owned());
        fields.insert("Content-Type".to_owned(), media_type.to_owned());
        fields.insert("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned());
        fields.insert("x-amz-credential".to_owned(), credential);
        fields.insert("x-amz-date".to_owned(), amz_date);
        if let Some(token) = credentials.session_token() {
            fields.insert("x-amz-security-token".to_owned(), token.to_owned());
        }
        fields.insert("policy".to_owned(), policy);
        fields.insert("x-amz-signature".to_owned(), signature);
        Ok(UploadForm {
            url: self.bucket_url(),
            fields,
        })
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, BlobError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(ObjectInfo {
                size: u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
                last_modified: out
                    .last_modified()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
            })),
            Err(e) if missing(&e) => Ok(None),
            Err(e) => Err(unavailable("HeadObject", e)),
        }
    }

    async fn read(&self, key: &str, max_bytes: u64) -> Result<Option<Bytes>, BlobError> {
        let out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if missing(&e) => return Ok(None),
            Err(e) => return Err(unavailable("GetObject", e)),
        };
        if out
            .content_length()
            .is_some_and(|n| u64::try_from(n).unwrap_or(u64::MAX) > max_bytes)
        {
            return Err(BlobError::Internal(format!("{key} is larger than {max_bytes} bytes")));
        }
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| BlobError::Unavailable(format!("reading {key}: {e}")))?;
        Ok(Some(body.into_bytes()))
    }

    async fn stream(&self, key: &str) -> Result<Option<super::Chunks>, BlobError> {
        let out = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if missing(&e) => return Ok(None),
            Err(e) => return Err(unavailable("GetObject", e)),
        };
        let key = key.to_owned();
        let chunks = futures::stream::unfold(Some(out.body), move |body| {
            let key = key.clone();
            async move {
                let mut body = body?;
                match body.next().await {
                    Some(Ok(chunk)) => Some((Ok(chunk), Some(body))),
                    Some(Err(e)) => Some((Err(BlobError::Unavailable(format!("reading {key}: {e}"))), None)),
                    None => None,
                }
            }
        });
        Ok(Some(Box::pin(chunks)))
    }

    async fn promote(&self, from: &str, to: &str) -> Result<(), BlobError> {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{from}", self.bucket))
            .key(to)
            .send()
            .await
            .map_err(|e| unavailable("CopyObject", e))?;
        self.delete(&[from.to_owned()]).await
    }

    async fn delete(&self, keys: &[String]) -> Result<(), BlobError> {
        for key in keys {
            match self.client.delete_object().bucket(&self.bucket).key(key).send().await {
                Ok(_) => {}
                Err(e) if missing(&e) => {}
                Err(e) => return Err(unavailable("DeleteObject", e)),
            }
        }
        Ok(())
    }

    async fn download_url(
        &self,
        key: &str,
        filename: &str,
        expires_at: Timestamp,
        _origin: &str,
    ) -> Result<String, BlobError> {
        let seconds = (expires_at - chrono::Utc::now()).num_seconds().clamp(1, 3_600);
        let presigning = PresigningConfig::expires_in(Duration::from_secs(seconds.unsigned_abs()))
            .map_err(|e| BlobError::Internal(format!("presigning: {e}")))?;
        let disposition = format!("attachment; filename=\"{}\"", filename.replace(['"', '\\'], "_"));
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(disposition)
            .presigned(presigning)
            .await
            .map_err(|e| unavailable("presigning GetObject", e))?;
        Ok(request.uri().to_owned())
    }
}
