//! Puts the configured credentials on each API request: a static token, a renewed IAM token, or
//! an AK/SK signature. Decides whether a refused request is worth one retry.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::self_metrics::ExporterMetrics;
use crate::upstream::credentials::{AccessKey, Credentials};
use crate::upstream::error::ApiError;
use crate::upstream::iam::{FailedLogins, IamSession};
use crate::upstream::project::ProjectLookup;
use crate::upstream::redact::Redactor;
use crate::upstream::retry::RetryPolicy;
use crate::upstream::sign;

/// Why the credentials cannot be used at all: found at start-up, not on the first scrape.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("a credential (token, access key, security token or project ID) holds characters an HTTP header cannot carry; check its file or variable")]
    NotAHeader,
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

pub struct Auth {
    kind: Kind,
}

enum Kind {
    Token(HeaderValue),
    Iam(Box<IamSession>),
    AkSk(Box<(AccessKey, ProjectLookup)>),
}

/// Which credentials a request went out with, to hand back if the API refuses them.
#[derive(Debug, Clone, Copy)]
pub struct Stamp(Option<u64>);

fn sensitive(value: &str) -> Result<HeaderValue, AuthError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| AuthError::NotAHeader)?;
    v.set_sensitive(true);
    Ok(v)
}

impl Auth {
    /// Measures an IAM token's lifetime on `clock`; the other sign-ins keep no time.
    pub fn set_clock(&mut self, clock: Clock) {
        if let Kind::Iam(session) = &mut self.kind {
            session.set_clock(clock);
        }
    }

    /// Counts an IAM user's failed logins with every other account that shares `failed_logins`;
    /// the other sign-ins have no logins.
    pub fn set_failed_logins(&mut self, failed_logins: FailedLogins) {
        if let Kind::Iam(session) = &mut self.kind {
            session.set_failed_logins(failed_logins);
        }
    }

    pub fn new(
        credentials: &Credentials,
        http: &reqwest::Client,
        timeout: Duration,
        retry: RetryPolicy,
        metrics: Arc<ExporterMetrics>,
        redactor: Redactor,
    ) -> Result<Self, AuthError> {
        let kind = match credentials {
            Credentials::Token(token) => Kind::Token(sensitive(token.expose())?),
            Credentials::Iam(iam) => Kind::Iam(Box::new(IamSession::new(
                iam,
                http.clone(),
                timeout,
                retry,
                metrics,
                redactor,
            ))),
            Credentials::AkSk(key) => {
                // Fail at start-up, not on the first scrape, if a value cannot be a header.
                for value in [Some(key.access_key.as_str()), key.project_id.as_deref()]
                    .into_iter()
                    .chain([key.security_token.as_ref().map(|t| t.expose())])
                    .flatten()
                {
                    sensitive(value)?;
                }
                let lookup = ProjectLookup::new(http.clone(), timeout, metrics, redactor);
                Kind::AkSk(Box::new((key.clone(), lookup)))
            }
        };
        Ok(Auth { kind })
    }

    /// Adds the credentials to `request`, fetching or renewing an IAM token first when due
    /// (before `deadline`).
    pub async fn authorize(
        &self,
        request: &mut reqwest::Request,
        deadline: Instant,
    ) -> Result<Stamp, ApiError> {
        match &self.kind {
            Kind::Token(token) => {
                request.headers_mut().insert("x-auth-token", token.clone());
                Ok(Stamp(None))
            }
            Kind::Iam(session) => {
                let lease = session.token(deadline).await?;
                request.headers_mut().insert("x-auth-token", lease.token);
                Ok(Stamp(Some(lease.generation)))
            }
            Kind::AkSk(signer) => {
                let (key, lookup) = &**signer;
                let project = lookup.project(key, deadline).await?;
                sign_request(key, Some(project), request, OffsetDateTime::now_utc());
                Ok(Stamp(None))
            }
        }
    }

    /// The project an access key's requests name: given, or looked up (once one was).
    pub fn project(&self) -> Option<&str> {
        match &self.kind {
            Kind::AkSk(signer) => signer.0.project_id.as_deref().or(signer.1.found()),
            _ => None,
        }
    }

    /// The API refused the credentials of `stamp`. Returns whether a retry may succeed: only
    /// for IAM tokens, which can be renewed; a static token or a key pair would fail the same way.
    pub async fn refused(&self, stamp: Stamp) -> bool {
        match (&self.kind, stamp.0) {
            (Kind::Iam(session), Some(generation)) => {
                session.invalidate(generation).await;
                true
            }
            _ => false,
        }
    }
}

/// Signs a bodiless request with SDK-HMAC-SHA256, signing Host, X-Sdk-Date and, when given,
/// X-Project-Id and X-Security-Token.
pub(super) fn sign_request(
    key: &AccessKey,
    project: Option<&str>,
    request: &mut reqwest::Request,
    now: OffsetDateTime,
) {
    let url = request.url().clone();
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => String::new(),
    };
    let date = sign::sdk_date(now);
    let mut signed: Vec<(&str, &str)> = vec![("host", &host), ("x-sdk-date", &date)];
    if let Some(project) = project {
        signed.push(("x-project-id", project));
    }
    if let Some(token) = &key.security_token {
        signed.push(("x-security-token", token.expose()));
    }
    let authorization = sign::authorization(
        &key.access_key,
        key.secret_key.expose(),
        request.method().as_str(),
        &url,
        &signed,
        b"",
    );
    let headers = request.headers_mut();
    // Host is written by the HTTP stack from the URL, exactly as signed here.
    for (name, value) in signed.iter().filter(|(n, _)| *n != "host") {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), sensitive(value)) {
            headers.insert(name, value);
        }
    }
    if let Ok(value) = sensitive(&authorization) {
        headers.insert(AUTHORIZATION, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn a_signed_request_carries_the_documented_headers() {
        let key = AccessKey {
            access_key: "QTWAOYTTINDUT2QVKYUC".into(),
            secret_key: Secret::new("MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"),
            security_token: None,
            project_id: Some("9d71ec45aef04d84a991c12250227b5c".into()),
            region: None,
            iam_endpoint: "https://iam.myhuaweicloud.com".parse().unwrap(),
        };
        let url = "https://koophone.myhuaweicloud.com/v1/instances/batch-query?page_no=1&page_size=100&x-request-id=0f8fad5b-d9cb-469f-a165-70867728950e";
        let mut request = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
        let now = time::macros::datetime!(2026-11-27 12:00:00 UTC);
        sign_request(&key, key.project_id.as_deref(), &mut request, now);
        let h = request.headers();
        assert_eq!(h["x-sdk-date"], "20261127T120000Z");
        assert_eq!(h["x-project-id"], "9d71ec45aef04d84a991c12250227b5c");
        // The batch-query vector of the facts file.
        assert_eq!(
            h[AUTHORIZATION],
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=host;x-project-id;x-sdk-date, \
             Signature=43a9fc488c7dd070aeb424c9912a425e401110ddfbbd2206657d2d176dd53a51"
        );
        assert!(h[AUTHORIZATION].is_sensitive());
    }
}
