//! The HTTP client of the batch-query API: one request for one page, with its request id, its
//! timeout, its self-metrics and its error typed by cause. Paging lives in `paging`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use uuid::Uuid;

use crate::auth::Auth;
use crate::config::UpstreamConfig;
use crate::metrics::ExporterMetrics;
use crate::wire::{self, DecodeError, Page};

/// The `api` label of this endpoint in the exporter's own metrics.
pub const API_BATCH_QUERY: &str = "batch_query";

/// Why a page could not be read. Each variant says what happened and what to try.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("page {page} (request {request_id}) timed out after {timeout:?}; raise --clouddevice.timeout or lower --clouddevice.page-size")]
    Timeout {
        page: u64,
        request_id: String,
        timeout: Duration,
    },
    #[error("page {page} (request {request_id}) got no answer: {reason}; check --clouddevice.endpoint, DNS, proxy settings and the network")]
    Transport {
        page: u64,
        request_id: String,
        reason: String,
    },
    #[error("page {page} (request {request_id}) failed with HTTP {status}{}{}", describe(.code, .message), status_hint(.code, .status))]
    Status {
        page: u64,
        request_id: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("page {page} (request {request_id}) answered HTTP {status} with API error {code}: {message}{}", hint(Some(.code.as_str()), None))]
    Api {
        page: u64,
        request_id: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("page {page} (request {request_id}) could not be decoded: {reason}; the service sent something other than the documented JSON")]
    Decode {
        page: u64,
        request_id: String,
        reason: String,
    },
    #[error("cannot get an IAM token: {reason}")]
    Iam { label: String, reason: String },
    #[error("the list needs more than --clouddevice.max-pages={max} pages at {per_page} instances a page; raise --clouddevice.max-pages or --clouddevice.page-size")]
    TooManyPages { max: u32, per_page: u64 },
}

fn describe(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" and API error {c}: {m}"),
        (Some(c), None) => format!(" and API error {c}"),
        _ => String::new(),
    }
}

fn status_hint(code: &Option<String>, status: &u16) -> &'static str {
    hint(code.as_deref(), Some(*status))
}

/// What an operator can do about the errors the reference and the gateway document.
fn hint(code: Option<&str>, status: Option<u16>) -> &'static str {
    match (code, status) {
        (Some("APIGW.0301" | "APIGW.0307"), _) | (_, Some(401)) => {
            "; the token is wrong or expired: put a fresh X-Auth-Token in place"
        }
        (Some("KOOPHONE.API.1001"), _) | (_, Some(403)) => {
            "; grant the IAM user koophone:cloudphoneResource:queryInstanceBatch"
        }
        (Some("KOOPHONE.API.1004"), _) => "; the account has not subscribed to CloudDevice",
        (Some("KOOPHONE.API.0000"), _) => "; the tenant does not exist: check the account",
        (Some("KOOPHONE.API.1000" | "KOOPHONE.API.5002" | "KOOPHONE.API.5004"), _) => {
            "; check the --clouddevice.* filter flags"
        }
        (Some("APIGW.0308"), _) | (_, Some(429)) => {
            "; the API is throttling: lower --clouddevice.concurrency or scrape less often"
        }
        (_, Some(500..=599)) | (Some("KOOPHONE.API.9999"), _) => {
            "; the service failed: the next scrape tries again"
        }
        _ => "",
    }
}

impl ApiError {
    /// A bounded label for `clouddevice_exporter_api_errors_total{error_code}`: the API's code when it
    /// looks like one (so a misbehaving upstream cannot blow up cardinality), else the cause.
    pub fn label(&self) -> String {
        match self {
            ApiError::Timeout { .. } => "timeout".into(),
            ApiError::Transport { .. } => "transport".into(),
            ApiError::Status {
                code: Some(code), ..
            }
            | ApiError::Api { code, .. }
                if looks_like_code(code) =>
            {
                code.clone()
            }
            ApiError::Status { status, .. } => format!("http_{status}"),
            ApiError::Api { .. } => "other".into(),
            ApiError::Decode { .. } => "decode".into(),
            ApiError::TooManyPages { .. } => "too_many_pages".into(),
            ApiError::Iam { label, .. } => label.clone(),
        }
    }

    /// A 401: the API refused the credentials (`APIGW.0307` expired token, `APIGW.0301` wrong one).
    fn refused_credentials(&self) -> bool {
        matches!(self, ApiError::Status { status: 401, .. })
    }

    fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Timeout { request_id, .. }
            | ApiError::Transport { request_id, .. }
            | ApiError::Status { request_id, .. }
            | ApiError::Api { request_id, .. }
            | ApiError::Decode { request_id, .. } => Some(request_id),
            ApiError::TooManyPages { .. } | ApiError::Iam { .. } => None,
        }
    }
}

pub(crate) fn looks_like_code(code: &str) -> bool {
    (1..=40).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Reads single pages of the instance list.
pub struct Client {
    http: reqwest::Client,
    url: Url,
    auth: Auth,
    config: UpstreamConfig,
    metrics: Arc<ExporterMetrics>,
}

impl Client {
    pub fn new(config: UpstreamConfig, metrics: Arc<ExporterMetrics>) -> Result<Self, ClientError> {
        let mut url = config.endpoint.clone();
        // Keep any path prefix of the endpoint (a gateway or proxy mount point).
        let path = format!(
            "{}/v1/instances/batch-query",
            url.path().trim_end_matches('/')
        );
        url.set_path(&path);
        let http = reqwest::Client::builder()
            .user_agent(concat!("clouddevice_exporter/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        let auth = Auth::new(&config.credentials, &http, config.timeout, metrics.clone())?;
        Ok(Client {
            http,
            url,
            auth,
            config,
            metrics,
        })
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Fetches one page. Every failure is counted, logged with its request id, and returned
    /// typed. When the API refuses an IAM token, the token is renewed and the page asked for
    /// once more (with a new request id).
    pub async fn fetch_page(&self, page: u64) -> Result<Page, ApiError> {
        let mut retried = false;
        loop {
            let request_id = Uuid::new_v4().to_string();
            let mut request = self.request(page, &request_id)?;
            // Credential failures are counted and logged by the auth layer itself.
            let stamp = self.auth.authorize(&mut request).await?;
            match self.send(request, page, &request_id).await {
                Ok(page) => return Ok(page),
                Err(error) => {
                    self.report(&error);
                    if !retried && error.refused_credentials() && self.auth.refused(stamp).await {
                        retried = true;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    /// Counts and logs an error, with the request id and the API's error_code and error_msg
    /// (what the provider's support asks for). Every error is reported once, where it arises.
    pub fn report(&self, error: &ApiError) {
        self.metrics.api_error(&error.label());
        let (code, message) = match error {
            ApiError::Status { code, message, .. } => (code.as_deref(), message.as_deref()),
            ApiError::Api { code, message, .. } => (Some(code.as_str()), Some(message.as_str())),
            _ => (None, None),
        };
        tracing::warn!(
            request_id = error.request_id(),
            error_code = code,
            error_msg = message,
            error = %error,
            "batch-query failed"
        );
    }

    fn request(&self, page: u64, request_id: &str) -> Result<reqwest::Request, ApiError> {
        let page_size = self.config.page_size.to_string();
        let page_no = page.to_string();
        self.http
            .get(self.url.clone())
            .query(&[
                ("x-request-id", request_id),
                ("page_no", &page_no),
                ("page_size", &page_size),
            ])
            .query(&self.config.filters.query_pairs().collect::<Vec<_>>())
            .header("X-Request-Id", request_id)
            .timeout(self.config.timeout)
            .build()
            .map_err(|e| ApiError::Transport {
                page,
                request_id: request_id.to_string(),
                reason: error_chain(&e),
            })
    }

    async fn send(
        &self,
        request: reqwest::Request,
        page: u64,
        request_id: &str,
    ) -> Result<Page, ApiError> {
        let timeout = self.config.timeout;
        let response = self.http.execute(request).await;
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                ApiError::Timeout {
                    page,
                    request_id: request_id.to_string(),
                    timeout,
                }
            } else {
                ApiError::Transport {
                    page,
                    request_id: request_id.to_string(),
                    reason: error_chain(&e),
                }
            }
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                self.metrics.api_request(API_BATCH_QUERY, "error");
                return Err(transport(e));
            }
        };
        let status = response.status();
        self.metrics.api_request(API_BATCH_QUERY, status.as_str());
        let body = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let (code, message) = wire::api_error(&body).unzip();
            return Err(ApiError::Status {
                page,
                request_id: request_id.to_string(),
                status: status.as_u16(),
                code,
                message,
            });
        }
        wire::decode_page(&body).map_err(|e| match e {
            DecodeError::Api { code, message } => ApiError::Api {
                page,
                request_id: request_id.to_string(),
                status: status.as_u16(),
                code,
                message,
            },
            DecodeError::Malformed(reason) => ApiError::Decode {
                page,
                request_id: request_id.to_string(),
                reason,
            },
        })
    }
}

/// reqwest's top-level message ("error sending request") hides the cause; show the whole chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("a credential (token, access key, security token or project ID) holds characters an HTTP header cannot carry; check its file or variable")]
    NotAHeader,
    #[error("cannot set up the HTTP client: {0}")]
    Build(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Option<&str>, status: u16) -> ApiError {
        ApiError::Status {
            page: 1,
            request_id: "r".into(),
            status,
            code: code.map(str::to_string),
            message: None,
        }
    }

    #[test]
    fn error_labels_are_bounded() {
        assert_eq!(status(Some("APIGW.0307"), 401).label(), "APIGW.0307");
        assert_eq!(status(None, 502).label(), "http_502");
        assert_eq!(
            status(Some("a very long and free-form error text!"), 500).label(),
            "http_500"
        );
        let api = |code: &str| ApiError::Api {
            page: 1,
            request_id: "r".into(),
            status: 200,
            code: code.into(),
            message: String::new(),
        };
        assert_eq!(api("KOOPHONE.API.1001").label(), "KOOPHONE.API.1001");
        assert_eq!(api("{\"x\": 1}").label(), "other");
    }

    #[test]
    fn messages_say_what_to_do() {
        let text = status(Some("APIGW.0307"), 401).to_string();
        assert!(text.contains("HTTP 401 and API error APIGW.0307"), "{text}");
        assert!(text.contains("fresh X-Auth-Token"), "{text}");
        let text = ApiError::Api {
            page: 3,
            request_id: "rid".into(),
            status: 200,
            code: "KOOPHONE.API.1001".into(),
            message: "Insufficient instance permissions.".into(),
        }
        .to_string();
        assert!(text.contains("page 3 (request rid)"), "{text}");
        assert!(text.contains("queryInstanceBatch"), "{text}");
    }
}
