//! IAM password login: exchanges an IAM user's password for a project-scoped token, caches it,
//! renews it at half its remaining lifetime, and makes concurrent callers share one renewal.
//!
//! IAM locks a user after a few failed logins (by default 5 in 15 minutes; an administrator may
//! set 3), and the user may be a person's own. So after IAM refuses the credentials an account
//! does not ask again for a while ([`REFUSAL_HOLD`], doubled on each further refusal up to
//! [`MAX_REFUSAL_HOLD`]): its scrapes fail at once with the refusal. And however many accounts
//! sign in as one IAM user, at most [`MAX_FAILED_LOGINS`] of their logins fail in any
//! [`LOCKOUT_WINDOW`] ([`FailedLogins`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
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
use crate::upstream::error_body;
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
/// How long an account waits before asking IAM again after IAM refused its credentials.
pub const REFUSAL_HOLD: Duration = Duration::from_secs(10 * 60);
pub const MAX_REFUSAL_HOLD: Duration = Duration::from_secs(3600);
/// At most this many failed logins of one IAM user in any [`LOCKOUT_WINDOW`], under the 3 an
/// administrator may lower IAM's lockout to.
pub const MAX_FAILED_LOGINS: usize = 2;
pub const LOCKOUT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The failed logins of each IAM user (IAM endpoint, domain and name), shared by every account
/// that signs in as that user, so that together they stay under IAM's lockout. Each failure
/// keeps a fingerprint of the login sent: credentials IAM has not refused yet (a password fixed
/// and reloaded) are tried at once, whatever the window holds.
#[derive(Clone, Default)]
pub struct FailedLogins(Arc<Mutex<HashMap<String, UserLogins>>>);

#[derive(Default)]
struct UserLogins {
    /// In the last [`LOCKOUT_WINDOW`], oldest first, with the fingerprint of what was sent.
    failures: VecDeque<(Moment, u64)>,
    /// What IAM said the last time it refused this user.
    last: Option<Refusal>,
}

/// A point in time on a session's clock, and the same as wall-clock time (which is said).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Moment(Instant, SystemTime);

impl Moment {
    fn later(self, by: Duration) -> Moment {
        Moment(self.0 + by, self.1 + by)
    }
}

impl FailedLogins {
    /// When `user` may try the login `sent` again, if not at `now`, and IAM's last refusal of
    /// the user: until the oldest failure in the window leaves it.
    fn held(&self, user: &str, sent: u64, now: Moment) -> Option<Refusal> {
        let mut users = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let logins = users.get_mut(user)?;
        while logins
            .failures
            .front()
            .is_some_and(|(t, _)| t.0 + LOCKOUT_WINDOW <= now.0)
        {
            logins.failures.pop_front();
        }
        let (oldest, _) = *logins.failures.front()?;
        let refused_before = logins.failures.iter().any(|(_, s)| *s == sent);
        if logins.failures.len() < MAX_FAILED_LOGINS || !refused_before {
            return None;
        }
        let last = logins.last.as_ref()?;
        Some(Refusal {
            until: oldest.later(LOCKOUT_WINDOW),
            ..last.clone()
        })
    }

    fn record(&self, user: &str, sent: u64, refusal: &Refusal, at: Moment) {
        let mut users = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let logins = users.entry(user.to_string()).or_default();
        logins.failures.push_back((at, sent));
        logins.last = Some(refusal.clone());
    }
}

/// IAM's refusal of the credentials, kept to answer with until IAM is asked again.
#[derive(Clone)]
struct Refusal {
    cause: Cause,
    status: Option<u16>,
    reason: String,
    until: Moment,
    /// What the next refusal holds for: twice this one's, at most [`MAX_REFUSAL_HOLD`].
    hold: Duration,
}

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
    refused: Option<Refusal>,
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
    /// This user's failed logins, with every other account's that signs in as it.
    failed_logins: FailedLogins,
    /// The IAM user, as [`FailedLogins`] knows it, and a fingerprint of the login it sends.
    user: String,
    sent: u64,
    /// The IAM user's name, which the log names.
    username: String,
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
            failed_logins: FailedLogins::default(),
            user: format!(
                "{} {} {}",
                credentials.endpoint, credentials.domain, credentials.username
            ),
            sent: fingerprint(&body.to_string()),
            username: credentials.username.clone(),
        }
    }

    /// Counts failed logins with every other session that shares `failed_logins`.
    pub fn set_failed_logins(&mut self, failed_logins: FailedLogins) {
        self.failed_logins = failed_logins;
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
        // Held back after failed logins: a usable token still serves, else the refusal answers.
        if let Some(held) = self.held(&state) {
            return match lease(&state).filter(|_| usable) {
                Some(lease) => Ok(lease),
                None => Err(held),
            };
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
                if state.refused.take().is_some() {
                    self.metrics.set_iam_next_attempt(0.0);
                }
            }
            Err(error) if refuses_credentials(&error) => {
                let next = self.refused(&mut state, &error);
                tracing::error!(%error, iam_user = %self.username, next_attempt = %show(next), "IAM refused the credentials; it is not asked again before the next attempt, since repeated failed logins lock the IAM user");
                if !usable {
                    return Err(error);
                }
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

    fn now(&self) -> Moment {
        Moment(self.clock.instant(), self.clock.now())
    }

    /// Why IAM is not asked now, if it is not: this account's credentials were refused lately,
    /// or this IAM user's logins failed too often lately.
    fn held(&self, state: &State) -> Option<ApiError> {
        let now = self.now();
        let own = state.refused.clone().filter(|r| now < r.until);
        let user = self.failed_logins.held(&self.user, self.sent, now);
        let refusal = match (own, user) {
            (Some(own), Some(user)) => Some(if user.until > own.until { user } else { own }),
            (own, user) => own.or(user),
        }?;
        Some(ApiError::Iam {
            cause: refusal.cause,
            status: refusal.status,
            reason: format!(
                "{}; IAM is not asked again before {}, since repeated failed logins lock the IAM user",
                refusal.reason,
                show(refusal.until)
            ),
            transient: false,
        })
    }

    /// Keeps IAM's refusal of the credentials, counts it as a failed login of the user, and
    /// returns when IAM is asked next.
    fn refused(&self, state: &mut State, error: &ApiError) -> Moment {
        let now = self.now();
        let hold = state
            .refused
            .as_ref()
            .map_or(REFUSAL_HOLD, |r| (r.hold * 2).min(MAX_REFUSAL_HOLD));
        let (cause, status, reason) = match error {
            ApiError::Iam {
                cause,
                status,
                reason,
                ..
            } => (cause.clone(), *status, reason.clone()),
            other => (Cause::Other, None, other.to_string()),
        };
        let refusal = Refusal {
            cause,
            status,
            reason,
            until: now.later(hold),
            hold,
        };
        self.failed_logins
            .record(&self.user, self.sent, &refusal, now);
        state.refused = Some(refusal);
        let user = self.failed_logins.held(&self.user, self.sent, now);
        let next = now.later(hold).max(user.map_or(now, |r| r.until));
        let unix = next.1.duration_since(SystemTime::UNIX_EPOCH);
        self.metrics
            .set_iam_next_attempt(unix.map_or(0.0, |d| d.as_secs_f64()));
        next
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
            // IAM answers `{"error": {"code", "message"}}` or `{"error_code", "error_msg"}`.
            let (code, message) = error_body::read(&body).unzip();
            // IAM may echo the password (or a proxy the request body): never keep it.
            let code = code.map(|c| self.redactor.code(c));
            let message = message.map(|m| self.redactor.clean(m));
            let cause = code
                .as_deref()
                .filter(|c| c.contains('.'))
                .and_then(crate::upstream::error::code_cause)
                .unwrap_or(Cause::Iam(IamCause::Http(status.as_u16())));
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
/// Whether IAM refused the credentials themselves (a wrong user, password or domain, or a user
/// it will not let in): asking again with the same ones fails again, and counts toward lockout.
fn refuses_credentials(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::Iam {
            status: Some(400 | 401 | 403),
            ..
        }
    )
}

/// Tells one login from another without keeping the password: the first 8 bytes of its SHA-256.
fn fingerprint(login: &str) -> u64 {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(login.as_bytes());
    hash.iter().take(8).fold(0, |n, b| n << 8 | u64::from(*b))
}

/// A moment as the log and the error say it: UTC, to the second.
fn show(at: Moment) -> String {
    let at = OffsetDateTime::from(at.1);
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    at.format(format).unwrap_or_else(|_| at.to_string())
}
