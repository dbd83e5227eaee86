//! The batch-query API (`GET /v1/instances/batch-query`) as a [`Source`] of fleets: one page
//! per request, with its request id, its credentials, a timeout that never outlasts the scrape's
//! deadline, retries by the [`RetryPolicy`](super::retry::RetryPolicy), a cap on the body, and
//! its error typed by cause. Every failed request is counted and logged here, once. Putting pages
//! together is `paging`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures::future::{BoxFuture, FutureExt};
use reqwest::Url;
use uuid::Uuid;

use crate::clock::Clock;
use crate::fleet::Fleet;
use crate::self_metrics::{Cause, ExporterMetrics};
use crate::upstream::auth::{Auth, AuthError};
use crate::upstream::codes::Kind;
use crate::upstream::credentials::Credentials;
use crate::upstream::error::Progress;
use crate::upstream::error::{ApiError, RequestFailure};
use crate::upstream::error_body;
use crate::upstream::http::{self, error_chain, read_capped, redirect_target, Capped};
use crate::upstream::iam::FailedLogins;
use crate::upstream::paging::{self, Pages};
use crate::upstream::rate::{RateLimit, RateTurn};
use crate::upstream::redact::Redactor;
use crate::upstream::retry::parse_retry_after;
use crate::upstream::settings::AccountSettings;
use crate::upstream::sign;
use crate::upstream::slots::{AccountSlots, RequestSlots};
use crate::upstream::wire::{self, DecodeError, Decoding, Page};
use crate::upstream::Source;

/// The `api` label of this endpoint in the exporter's own metrics.
pub const API_BATCH_QUERY: &str = "batch_query";

/// How the exporter reads one account's batch-query API.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchQueryConfig {
    pub endpoint: Url,
    pub credentials: Credentials,
    pub filters: Filters,
    pub settings: AccountSettings,
}

/// The optional filters of the batch-query API, sent with every page request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub pool_scene_tag: Option<&'static str>,
    pub instance_id: Option<String>,
    pub instance_name: Option<String>,
    pub query_start_time: Option<String>,
    pub query_end_time: Option<String>,
}

impl Filters {
    /// The filters as query parameters, in the reference's names.
    pub fn query_pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("instance_id", self.instance_id.as_deref()),
            ("instance_name", self.instance_name.as_deref()),
            ("query_start_time", self.query_start_time.as_deref()),
            ("query_end_time", self.query_end_time.as_deref()),
            ("pool_scene_tag", self.pool_scene_tag),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
    }
}

/// Reads pages of the instance list.
pub struct BatchQuery {
    http: reqwest::Client,
    url: Url,
    /// `url` as errors show it.
    shown_url: Arc<str>,
    auth: Auth,
    config: BatchQueryConfig,
    metrics: Arc<ExporterMetrics>,
    /// Rows of the page decoded last: the next one most likely holds as many.
    last_rows: AtomicUsize,
    /// This account's way to the cap on requests in flight over all accounts.
    slots: Option<AccountSlots>,
    /// Scrubs this account's secrets from what the API answers.
    redactor: Redactor,
    /// This account's turns, shared by every request it sends.
    rate: RateLimit,
    /// Throttled answers so far.
    throttled: std::sync::atomic::AtomicU64,
}

impl BatchQuery {
    pub fn new(config: BatchQueryConfig, metrics: Arc<ExporterMetrics>) -> Result<Self, AuthError> {
        let http =
            http::client(config.settings.timeout).map_err(|e| AuthError::Client(e.to_string()))?;
        Self::with_client(config, metrics, http, Redactor::default())
    }

    /// A reader that sends its requests through `http`, whose connections it shares with every
    /// other reader of that client: several accounts then open no more connections to one host
    /// than they have requests in flight together. Its secrets join `redactor`, which scrubs
    /// every account's from what each upstream answers.
    pub fn with_client(
        config: BatchQueryConfig,
        metrics: Arc<ExporterMetrics>,
        http: reqwest::Client,
        redactor: Redactor,
    ) -> Result<Self, AuthError> {
        let url = http::join(&config.endpoint, "/v1/instances/batch-query");
        let redactor = redactor.for_account(&config.credentials);
        let auth = Auth::new(
            &config.credentials,
            &http,
            config.settings.timeout,
            config.settings.retry(),
            metrics.clone(),
            redactor.clone(),
        )?;
        Ok(BatchQuery {
            http,
            shown_url: Arc::from(http::shown(&url)),
            url,
            auth,
            metrics,
            last_rows: AtomicUsize::new(0),
            slots: None,
            redactor,
            rate: RateLimit::new(config.settings.requests_per_second),
            throttled: std::sync::atomic::AtomicU64::new(0),
            config,
        })
    }

    /// Takes a slot of `slots` for each request, so that several accounts together keep under
    /// one cap (`--clouddevice.max-requests-in-flight`) on top of each one's concurrency.
    pub fn with_request_slots(mut self, slots: &RequestSlots) -> Self {
        self.slots = Some(slots.for_account());
        self
    }

    /// Counts failed IAM logins with every other account that shares `failed_logins`, so that
    /// accounts signing in as one IAM user together stay under its lockout.
    pub fn with_failed_logins(mut self, failed_logins: &FailedLogins) -> Self {
        self.auth.set_failed_logins(failed_logins.clone());
        self
    }

    /// The project an access key's requests name, once known (`X-Project-Id`).
    pub fn project(&self) -> Option<&str> {
        self.auth.project()
    }

    /// Measures the IAM token's lifetime on `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.auth.set_clock(clock);
        self
    }

    /// Fetches one page before `deadline`, retrying transient failures as the
    /// [`RetryPolicy`](super::retry::RetryPolicy) says; a refused IAM token is renewed and the
    /// page asked once more. Every failed attempt is counted and logged with its request id.
    pub async fn fetch_page(&self, page: u64, deadline: Instant) -> Result<Page, ApiError> {
        let mut retries = 0;
        let mut renewed = false;
        // Cut off by the deadline: the read says how far it got. Not one request's failure.
        let cut_off = || ApiError::Deadline {
            progress: Progress::default(),
        };
        loop {
            // The turn first: a request waiting for its account's rate holds no shared slot.
            match self.rate.turn(deadline).await {
                RateTurn::TooLate => return Err(cut_off()),
                RateTurn::Go(waited) => self.metrics.rate_limit_wait(waited),
            }
            // Waiting for a slot is bounded by the collection's deadline, which cancels the read.
            let slot = match &self.slots {
                Some(slots) => slots.acquire().await,
                None => None,
            };
            let request_id = Uuid::new_v4().to_string();
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = self.config.settings.timeout.min(left);
            let mut request = self.request(page, &request_id, timeout)?;
            // Credential failures are counted and logged by the auth layer itself.
            let stamp = self.auth.authorize(&mut request, deadline).await?;
            let started = Instant::now();
            let result = self.send(request, page, &request_id, timeout).await;
            self.metrics
                .observe_request(API_BATCH_QUERY, started.elapsed());
            drop(slot);
            let error = match result {
                Ok(page) => {
                    self.rate.answered();
                    return Ok(page);
                }
                Err(ApiError::Request {
                    failure: RequestFailure::Timeout(_),
                    ..
                }) if timeout < self.config.settings.timeout => return Err(cut_off()),
                Err(error) => error,
            };
            if error.cause() == Cause::Throttled {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                self.rate.throttled(started, error.retry_after());
            } else {
                self.rate.answered();
            }
            self.report(&error);
            // The gateway refused the credentials (`APIGW.0307` an expired token, `APIGW.0301` a
            // wrong one): an IAM token is renewed and the page asked once more.
            let refused = error.kind() == Some(Kind::Credentials);
            if !renewed && refused && self.auth.refused(stamp).await {
                renewed = true;
                continue;
            }
            let retry = self.config.settings.retry();
            let Some(delay) = retry.delay(retries, &error, deadline) else {
                // A retry the deadline leaves no time for: the deadline is what failed the read.
                if retry.wanted(retries, &error) {
                    return Err(ApiError::Deadline {
                        progress: Progress {
                            throttled: error.cause() == Cause::Throttled,
                            ..Progress::default()
                        },
                    });
                }
                return Err(error);
            };
            tracing::debug!(
                page,
                retry = retries + 1,
                delay_seconds = delay.as_secs_f64(),
                "retrying the page"
            );
            tokio::time::sleep(delay).await;
            retries += 1;
        }
    }

    /// Counts and logs a failed request, with the request id and the API's error_code and
    /// error_msg (what the provider's support asks for).
    fn report(&self, error: &ApiError) {
        self.metrics.api_error(&error.cause());
        let (code, message) = error.api_code();
        tracing::warn!(
            request_id = error.request_id(),
            error_code = code,
            error_msg = message,
            error = %error,
            "batch-query failed"
        );
    }

    /// The URL of one page, its query written as it is signed (see [`sign::query_string`]):
    /// reqwest's `.query()` writes a space as `+`, which the gateway reads as a plus.
    fn page_url(&self, page: u64, request_id: &str) -> Url {
        let page_size = self.config.settings.page_size.to_string();
        let page_no = page.to_string();
        let pairs = [
            ("x-request-id", request_id),
            ("page_no", &page_no),
            ("page_size", &page_size),
        ];
        let query = sign::query_string(pairs.into_iter().chain(self.config.filters.query_pairs()));
        let mut url = self.url.clone();
        url.set_query(Some(&query));
        url
    }

    fn request(
        &self,
        page: u64,
        request_id: &str,
        timeout: Duration,
    ) -> Result<reqwest::Request, ApiError> {
        self.http
            .get(self.page_url(page, request_id))
            .header("X-Request-Id", request_id)
            .timeout(timeout)
            .build()
            .map_err(|e| {
                ApiError::request(page, request_id, RequestFailure::Transport(error_chain(&e)))
            })
    }

    async fn send(
        &self,
        request: reqwest::Request,
        page: u64,
        request_id: &str,
        timeout: Duration,
    ) -> Result<Page, ApiError> {
        let failed = |failure| ApiError::request(page, request_id, failure).at(&self.shown_url);
        let transport = |e: reqwest::Error| {
            failed(if e.is_timeout() {
                RequestFailure::Timeout(timeout)
            } else if http::other_protocol(&e) {
                RequestFailure::WrongScheme {
                    https: self.url.scheme() == "https",
                }
            } else {
                RequestFailure::Transport(self.redactor.clean(error_chain(&e)))
            })
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
            return Err(failed(RequestFailure::Redirect {
                status: status.as_u16(),
                target: self.redactor.clean(redirect_target(&response)),
            }));
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let limit = self.config.settings.max_response_bytes;
        let body = match read_capped(response, limit).await {
            Ok(body) => body,
            Err(Capped::TooLarge) => return Err(failed(RequestFailure::TooLarge { limit })),
            Err(Capped::Failed(e)) => return Err(transport(e)),
        };
        if !status.is_success() {
            let (code, message) = error_body::read(&body).unzip();
            return Err(failed(RequestFailure::Refused {
                status: status.as_u16(),
                code: code.map(|c| self.redactor.code(c)),
                message: message.map(|m| self.redactor.clean(m)),
                retry_after,
            }));
        }
        let decoding = Decoding {
            max_rows: self.config.settings.page_size as usize,
            expected_rows: self.last_rows.load(Ordering::Relaxed),
            time_zone: self.config.settings.time_zone,
        };
        let decoded = wire::decode_page(&body, decoding).map_err(|e| match e {
            DecodeError::Api { code, message } => failed(RequestFailure::Refused {
                status: status.as_u16(),
                code: Some(self.redactor.code(code)),
                message: Some(self.redactor.clean(message)),
                retry_after,
            }),
            DecodeError::Malformed(reason) => {
                failed(RequestFailure::Decode(self.redactor.clean(reason)))
            }
        })?;
        let mut decoded = decoded;
        // Instance texts become labels: a secret echoed in a name must not be published.
        self.redactor.scrub_instances(&mut decoded.instances);
        self.last_rows
            .store(decoded.instances.len(), Ordering::Relaxed);
        let (invalid, truncated, replaced) = (
            decoded.invalid_values,
            decoded.truncated_values,
            decoded.replaced_text,
        );
        self.metrics.odd_values(invalid, truncated, replaced);
        if invalid + replaced > 0 {
            tracing::debug!(
                page,
                request_id,
                invalid,
                replaced,
                "the page held values of the wrong kind (each read as absent) or invalid text (read as U+FFFD)"
            );
        }
        Ok(decoded)
    }
}

impl Pages for BatchQuery {
    fn settings(&self) -> &AccountSettings {
        &self.config.settings
    }

    fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    async fn page(&self, page_no: u64, deadline: Instant) -> Result<Page, ApiError> {
        self.fetch_page(page_no, deadline).await
    }
}

impl Source for BatchQuery {
    fn read(&self, deadline: Instant) -> BoxFuture<'_, Result<Fleet, ApiError>> {
        paging::read_fleet(self, deadline).boxed()
    }
}
