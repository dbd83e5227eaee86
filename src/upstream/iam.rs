//! IAM password login: exchanges an IAM user's password for a project-scoped token, caches it,
//! renews it at half its remaining lifetime, and makes concurrent callers share one renewal.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use reqwest::header::HeaderValue;
use reqwest::Url;
use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::secret::Secret;
use crate::self_metrics::{Cause, ExporterMetrics, IamCause};
use crate::upstream::credentials::{IamCredentials, ProjectScope};
use crate::upstream::error::ApiError;
use crate::upstream::http::{self, read_capped, redirect_target, Capped};
use crate::upstream::redact::Redactor;
use crate::upstream::retry::RetryPolicy;

/// The `api` label of the IAM token endpoint in the exporter's own metrics.
pub const API_IAM_TOKEN: &str = "iam_token";

/// A token is still used after a failed renewal only while this far from its expiry (or a
/// tenth of its lifetime, if that is less).
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// After a failed renewal while the old token still works, IAM is asked again at most this often.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// IAM's token answers are a few kilobytes (up to some hundreds with a service catalog).
const MAX_ANSWER_BYTES: u64 = 4 << 20;
/// Tokens live 24 hours; assumed when IAM's answer does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A token handed out, with the generation that tells a later rejection which token it was.
pub struct IssuedToken {
    pub token: HeaderValue,
    pub generation: u64,
}

struct Token {
    value: HeaderValue,
    expires_at: SystemTime,
    refresh_at: SystemTime,
    /// Until when it is used if renewal fails.
    usable_until: SystemTime,
}

#[derive(Default)]
struct State {
    current: Option<Token>,
    generation: u64,
    quiet_until: Option<Instant>,
}

pub struct IamSession {
    /// What token lifetimes are measured on.
    clock: Clock,
    http: reqwest::Client,
    url: Url,
    /// The request body; it carries the password.
    body: Secret,
    timeout: Duration,
    retry: RetryPolicy,
    metrics: Arc<ExporterMetrics>,
    /// Scrubs the password and the tokens issued from what IAM answers.
    redactor: Redactor,
    state: tokio::sync::Mutex<State>,
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenTimes,
}

#[derive(Deserialize)]
struct TokenTimes {
    #[serde(default)]
    expires_at: Option<String>,
}

/// IAM answers errors as `{"error": {"code", "message"}}` or `{"error_code", "error_msg"}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: Option<NestedError>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_msg: Option<String>,
}

#[derive(Deserialize)]
struct NestedError {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

impl IamSession {
    pub fn new(
        credentials: &IamCredentials,
        http: reqwest::Client,
        timeout: Duration,
        retry: RetryPolicy,
        metrics: Arc<ExporterMetrics>,
        redactor: Redactor,
    ) -> Self {
        let url = http::join(&credentials.endpoint, "/v3/auth/tokens");
        let project = match &credentials.project {
            ProjectScope::Name(name) => json!({ "name": name }),
            ProjectScope::Id(id) => json!({ "id": id }),
        };
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": credentials.username,
                "password": credentials.password.expose(),
                "domain": {"name": credentials.domain},
            }}},
            "scope": {"project": project},
        }});
        IamSession {
            clock: Clock::system(),
            http,
            url,
            body: Secret::new(body.to_string()),
            timeout,
            retry,
            metrics,
            redactor,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// Measures token lifetimes on `clock` (tests move it instead of waiting).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.set_clock(clock);
        self
    }

    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The current token, fetched or renewed first when due (before `deadline`). Callers that
    /// arrive during a renewal wait for it and get its token: one IAM call, however many scrapes.
    pub async fn token(&self, deadline: Instant) -> Result<IssuedToken, ApiError> {
        let mut state = self.state.lock().await;
        let now = self.clock.now();
        let lease = |state: &State| {
            state.current.as_ref().map(|t| IssuedToken {
                token: t.value.clone(),
                generation: state.generation,
            })
        };
        let fresh = state.current.as_ref().is_some_and(|t| now < t.refresh_at);
        let usable = state.current.as_ref().is_some_and(|t| now < t.usable_until);
        let quiet = state.quiet_until.is_some_and(|q| self.clock.instant() < q);
        if fresh || (usable && quiet) {
            if let Some(lease) = lease(&state) {
                return Ok(lease);
            }
        }
        // Without a usable token, the scrape depends on this answer: a transient failure is
        // retried like any request. With one, a failed renewal waits for the quiet period.
        match self.fetch(deadline, !usable).await {
            Ok(token) => {
                let expiry = token
                    .expires_at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                self.metrics.set_token_expiry(expiry);
                tracing::info!(expires_at = expiry, "got a new IAM token");
                state.current = Some(token);
                state.generation += 1;
                state.quiet_until = None;
            }
            Err(error) => {
                if !usable {
                    tracing::error!(%error, "IAM token request failed");
                    return Err(error);
                }
                tracing::warn!(%error, "IAM token renewal failed; the current token is used until it expires");
                state.quiet_until = Some(self.clock.instant() + RETRY_AFTER_FAILURE);
            }
        }
        lease(&state).ok_or_else(|| ApiError::Iam {
            cause: Cause::Iam(IamCause::NoToken),
            status: None,
            reason: "no token is held".into(),
            transient: false,
        })
    }

    /// The API refused the token of `generation`: forget it, unless a newer one is already held.
    pub async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state.generation == generation && state.current.is_some() {
            tracing::info!("the API refused the IAM token; getting a new one");
            state.current = None;
            state.quiet_until = None;
        }
    }

    /// Asks IAM for a token; with `retry`, transient failures are tried again as the
    /// [`RetryPolicy`] says. Each failed request is counted once.
    async fn fetch(&self, deadline: Instant, retry: bool) -> Result<Token, ApiError> {
        let mut done = 0;
        loop {
            let started = Instant::now();
            let result = self.fetch_once(deadline).await;
            self.metrics
                .observe_request(API_IAM_TOKEN, started.elapsed());
            let error = match result {
                Ok(token) => return Ok(token),
                Err(error) => error,
            };
            self.metrics.api_error(&error.cause());
            let delay = retry
                .then(|| self.retry.delay(done, &error, deadline))
                .flatten();
            let Some(delay) = delay else {
                return Err(error);
            };
            tracing::debug!(%error, retry = done + 1, delay_seconds = delay.as_secs_f64(), "retrying the IAM token request");
            tokio::time::sleep(delay).await;
            done += 1;
        }
    }

    async fn fetch_once(&self, deadline: Instant) -> Result<Token, ApiError> {
        let fetched_at = self.clock.now();
        // `transient`: no answer, or IAM itself failing or throttling; worth a retry.
        let iam_error = |cause: Cause, reason: String, transient: bool| ApiError::Iam {
            cause,
            status: None,
            reason,
            transient,
        };
        let timeout = self
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let response = self
            .http
            .post(self.url.clone())
            .header("Content-Type", "application/json;charset=utf8")
            .body(self.body.expose().to_string())
            .timeout(timeout)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                self.metrics.api_request(API_IAM_TOKEN, "error");
                let cause = if e.is_timeout() {
                    IamCause::Timeout
                } else {
                    IamCause::Transport
                };
                return Err(iam_error(
                    Cause::Iam(cause),
                    self.redactor.clean(format!(
                        "no answer from {}: {}",
                        http::shown(&self.url),
                        http::error_chain(&e.without_url())
                    )),
                    true,
                ));
            }
        };
        let status = response.status();
        self.metrics.api_request(API_IAM_TOKEN, status.as_str());
        if status.is_redirection() {
            // Following it would send the password to wherever it points.
            return Err(iam_error(
                Cause::Iam(IamCause::Redirect),
                format!(
                    "IAM answered with a redirect (HTTP {}) to {}, which is not followed: it would carry the password there",
                    status.as_u16(),
                    self.redactor.clean(redirect_target(&response))
                ),
                false,
            ));
        }
        let subject = response.headers().get("x-subject-token").cloned();
        let body = read_capped(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| match e {
                Capped::TooLarge => iam_error(
                    Cause::Iam(IamCause::TooLarge),
                    format!("the answer passed {MAX_ANSWER_BYTES} bytes"),
                    false,
                ),
                Capped::Failed(e) => iam_error(
                    Cause::Iam(IamCause::Transport),
                    self.redactor
                        .clean(format!("reading the answer: {}", e.without_url())),
                    true,
                ),
            })?;
        if !status.is_success() {
            let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            let (code, message) = match parsed.error {
                Some(e) => (
                    e.code
                        .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string)),
                    e.message,
                ),
                None => (parsed.error_code, parsed.error_msg),
            };
            // IAM may echo the password (or a proxy the request body): never keep it.
            let code = code.map(|c| self.redactor.code(c));
            let message = message.map(|m| self.redactor.clean(m));
            let cause = code
                .clone()
                .filter(|c| crate::upstream::error::looks_like_code(c) && c.contains('.'))
                .map_or(Cause::Iam(IamCause::Http(status.as_u16())), Cause::Code);
            let mut reason = format!("IAM answered HTTP {}", status.as_u16());
            if let Some(code) = code {
                reason.push_str(&format!(" {code}"));
            }
            if let Some(message) = message {
                reason.push_str(&format!(": {}", message.trim_end_matches('.')));
            }
            let transient = status.as_u16() == 429 || status.is_server_error();
            return Err(ApiError::Iam {
                cause,
                status: Some(status.as_u16()),
                reason,
                transient,
            });
        }
        let mut value = subject.ok_or_else(|| {
            iam_error(
                Cause::Iam(IamCause::Decode),
                "the answer has no X-Subject-Token header".into(),
                false,
            )
        })?;
        value.set_sensitive(true);
        if let Ok(token) = value.to_str() {
            self.redactor.add_issued(token);
        }
        let expires_at = serde_json::from_slice::<TokenBody>(&body)
            .ok()
            .and_then(|b| b.token.expires_at)
            .and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok())
            .map(SystemTime::from)
            .unwrap_or_else(|| {
                tracing::warn!(
                    "IAM's answer gives no readable token.expires_at; assuming 24 hours"
                );
                fetched_at + DEFAULT_LIFETIME
            });
        let remaining = expires_at.duration_since(fetched_at).unwrap_or_default();
        Ok(Token {
            value,
            expires_at,
            refresh_at: fetched_at + remaining / 2,
            usable_until: expires_at - EXPIRY_MARGIN.min(remaining / 10),
        })
    }
}
