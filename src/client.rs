//! The HTTP client of the batch-query API: one page, with its request id, its credentials, a
//! timeout that never outlasts the scrape's deadline, retries of transient failures, a cap on the
//! body, its self-metrics and its error typed by cause. Paging lives in `paging`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use uuid::Uuid;

use crate::auth::Auth;
use crate::config::UpstreamConfig;
use crate::error::{clip, ApiError};
use crate::metrics::ExporterMetrics;
use crate::wire::{self, DecodeError, Page, RowLimits};

/// The `api` label of this endpoint in the exporter's own metrics.
pub const API_BATCH_QUERY: &str = "batch_query";

/// First retry delay; doubled for each further retry, with jitter.
const BACKOFF_BASE: Duration = Duration::from_millis(250);

/// Reads single pages of the instance list.
pub struct Client {
    http: reqwest::Client,
    url: Url,
    auth: Auth,
    config: UpstreamConfig,
    metrics: Arc<ExporterMetrics>,
    /// Rows of the page decoded last: the next one most likely holds as many.
    last_rows: AtomicUsize,
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
            // The credentials go to the configured endpoints and nowhere else: reqwest would
            // carry X-Auth-Token, the signed headers and IAM's password body to any host a
            // redirect names. A redirect is an error instead (see `redirect_target`).
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        let auth = Auth::new(&config.credentials, &http, config.timeout, metrics.clone())?;
        Ok(Client {
            http,
            url,
            auth,
            config,
            metrics,
            last_rows: AtomicUsize::new(0),
        })
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Fetches one page before `deadline`. Transient failures (no answer, 5xx, 429) are retried
    /// up to `--clouddevice.max-retries` times with backoff and jitter, honouring `Retry-After`,
    /// while the deadline leaves room; a refused IAM token is renewed and the page asked once
    /// more. Every failed attempt is counted and logged with its request id.
    pub async fn fetch_page(&self, page: u64, deadline: Instant) -> Result<Page, ApiError> {
        let mut retries = 0;
        let mut renewed = false;
        loop {
            let request_id = Uuid::new_v4().to_string();
            let timeout = self
                .config
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let mut request = self.request(page, &request_id, timeout)?;
            // Credential failures are counted and logged by the auth layer itself.
            let stamp = self.auth.authorize(&mut request).await?;
            let started = Instant::now();
            let result = self.send(request, page, &request_id, timeout).await;
            self.metrics
                .observe_request(API_BATCH_QUERY, started.elapsed());
            let error = match result {
                Ok(page) => return Ok(page),
                Err(error) => error,
            };
            self.report(&error);
            if !renewed && error.refused_credentials() && self.auth.refused(stamp).await {
                renewed = true;
                continue;
            }
            if retries < self.config.max_retries && error.retryable() {
                let delay = error.retry_after().unwrap_or_else(|| backoff(retries));
                if Instant::now() + delay < deadline {
                    tracing::debug!(
                        page,
                        retry = retries + 1,
                        delay_seconds = delay.as_secs_f64(),
                        "retrying the page"
                    );
                    tokio::time::sleep(delay).await;
                    retries += 1;
                    continue;
                }
            }
            return Err(error);
        }
    }

    /// Counts and logs an error, with the request id and the API's error_code and error_msg
    /// (what the provider's support asks for). Every error is reported once, where it arises.
    pub fn report(&self, error: &ApiError) {
        self.metrics.api_error(&error.label());
        let (code, message) = error.api_code();
        tracing::warn!(
            request_id = error.request_id(),
            error_code = code,
            error_msg = message,
            error = %error,
            "batch-query failed"
        );
    }

    fn request(
        &self,
        page: u64,
        request_id: &str,
        timeout: Duration,
    ) -> Result<reqwest::Request, ApiError> {
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
            .timeout(timeout)
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
        timeout: Duration,
    ) -> Result<Page, ApiError> {
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
        let response = match self.http.execute(request).await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.api_request(API_BATCH_QUERY, "error");
                return Err(transport(e));
            }
        };
        let status = response.status();
        self.metrics.api_request(API_BATCH_QUERY, status.as_str());
        if status.is_redirection() {
            return Err(ApiError::Redirect {
                page,
                request_id: request_id.to_string(),
                status: status.as_u16(),
                target: redirect_target(&response),
            });
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let limit = self.config.max_response_bytes;
        let body = match read_capped(response, limit).await {
            Ok(body) => body,
            Err(Capped::TooLarge) => {
                return Err(ApiError::TooLarge {
                    page,
                    request_id: request_id.to_string(),
                    limit,
                })
            }
            Err(Capped::Failed(e)) => return Err(transport(e)),
        };
        if !status.is_success() {
            let (code, message) = wire::api_error(&body).unzip();
            return Err(ApiError::Status {
                page,
                request_id: request_id.to_string(),
                status: status.as_u16(),
                code: code.map(clip),
                message: message.map(clip),
                retry_after,
            });
        }
        let limits = RowLimits {
            max: self.config.page_size as usize,
            expected: self.last_rows.load(Ordering::Relaxed),
        };
        let decoded = wire::decode_page(&body, limits).map_err(|e| match e {
            DecodeError::Api { code, message } => ApiError::Api {
                page,
                request_id: request_id.to_string(),
                status: status.as_u16(),
                code: clip(code),
                message: clip(message),
            },
            DecodeError::Malformed(reason) => ApiError::Decode {
                page,
                request_id: request_id.to_string(),
                reason: clip(reason),
            },
        })?;
        self.last_rows
            .store(decoded.instances.len(), Ordering::Relaxed);
        if decoded.replaced_text > 0 {
            self.metrics.replaced_text(decoded.replaced_text);
            tracing::debug!(
                page,
                request_id,
                replaced = decoded.replaced_text,
                "the page held invalid text; it was read as U+FFFD"
            );
        }
        Ok(decoded)
    }
}

/// Why a body could not be read whole.
pub(crate) enum Capped {
    TooLarge,
    Failed(reqwest::Error),
}

/// Reads a response body chunk by chunk, giving up as soon as it passes `limit` bytes, so an
/// oversized answer costs at most the limit in memory.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, Capped> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(Capped::TooLarge);
    }
    let expected = response.content_length().unwrap_or(0).min(limit);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(Capped::Failed)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Capped::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The host a redirect points to, for the error that refuses to follow it.
pub(crate) fn redirect_target(response: &reqwest::Response) -> String {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok());
    match location.map(|l| response.url().join(l)) {
        None => "nowhere (no Location header)".into(),
        Some(Ok(url)) => match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => clip(format!("{host}:{port}")),
            (Some(host), None) => clip(host.to_string()),
            (None, _) => "a URL without a host".into(),
        },
        Some(Err(_)) => "an unreadable Location".into(),
    }
}

/// Exponential backoff with jitter: the n-th retry waits between half and all of 250 ms × 2ⁿ.
fn backoff(retry: u32) -> Duration {
    let full = BACKOFF_BASE * 2u32.saturating_pow(retry.min(10));
    full.mul_f64(0.5 + fastrand::f64() / 2.0)
}

/// `Retry-After` as delay-seconds or an HTTP date; at most a minute is honoured.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let when =
                time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
                    .ok()?;
            let seconds = (when - time::OffsetDateTime::now_utc())
                .whole_seconds()
                .max(0);
            Duration::from_secs(seconds.unsigned_abs())
        }
    };
    Some(delay.min(Duration::from_secs(60)))
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

    #[test]
    fn backoff_doubles_with_jitter() {
        for retry in 0..4 {
            let full = BACKOFF_BASE * 2u32.pow(retry);
            for _ in 0..20 {
                let d = backoff(retry);
                assert!(d >= full / 2 && d <= full, "{retry}: {d:?}");
            }
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("3600"), Some(Duration::from_secs(60)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(30);
        let text = soon
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        let parsed = parse_retry_after(&text).unwrap();
        assert!(
            parsed >= Duration::from_secs(28) && parsed <= Duration::from_secs(30),
            "{parsed:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
