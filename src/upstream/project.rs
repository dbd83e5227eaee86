//! The project an access key's requests name in `X-Project-Id`, found as Huawei's SDKs find it
//! when none is configured: IAM's KeystoneListProjects (`GET /v3/projects?name=<region>` on the
//! IAM endpoint, signed with the same key), read once per account and kept for the process.
//! No project of that name, or more than one, is an error that says which setting to give.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::self_metrics::{Cause, ExporterMetrics, IamCause};
use crate::upstream::credentials::AccessKey;
use crate::upstream::error::{code_cause, ApiError};
use crate::upstream::error_body;
use crate::upstream::http::{self, read_capped, Capped};
use crate::upstream::redact::Redactor;

/// The `api` label of IAM's project list in the exporter's own metrics.
pub const API_IAM_PROJECTS: &str = "iam_projects";
/// A project list is a few kilobytes.
const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// Finds, and keeps, the project of one access key.
pub struct ProjectLookup {
    http: reqwest::Client,
    timeout: Duration,
    metrics: Arc<ExporterMetrics>,
    redactor: Redactor,
    found: OnceCell<String>,
}

#[derive(Deserialize)]
struct Projects {
    #[serde(default)]
    projects: Vec<Project>,
}

#[derive(Deserialize)]
struct Project {
    id: String,
    #[serde(default)]
    name: String,
}

impl ProjectLookup {
    pub fn new(
        http: reqwest::Client,
        timeout: Duration,
        metrics: Arc<ExporterMetrics>,
        redactor: Redactor,
    ) -> Self {
        ProjectLookup {
            http,
            timeout,
            metrics,
            redactor,
            found: OnceCell::new(),
        }
    }

    /// The project id of `key`: its own, or the one looked up by its region (once; callers
    /// that arrive during the lookup share it).
    pub async fn project<'a>(
        &'a self,
        key: &'a AccessKey,
        deadline: Instant,
    ) -> Result<&'a str, ApiError> {
        if let Some(id) = &key.project_id {
            return Ok(id);
        }
        let id = self
            .found
            .get_or_try_init(|| self.look_up(key, deadline))
            .await?;
        Ok(id)
    }

    /// The project id looked up so far, if one was.
    pub fn found(&self) -> Option<&str> {
        self.found.get().map(String::as_str)
    }

    async fn look_up(&self, key: &AccessKey, deadline: Instant) -> Result<String, ApiError> {
        let region = key.region.clone().unwrap_or_default();
        let failed = |cause: Cause, status: Option<u16>, said: String, transient: bool| {
            self.metrics.api_error(&cause);
            ApiError::Iam {
                cause,
                status,
                reason: format!("looking up the project of region {region}: {said}"),
                transient,
            }
        };
        let mut url = http::join(&key.iam_endpoint, "/v3/projects");
        url.query_pairs_mut().append_pair("name", &region);
        let timeout = self
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let mut request = self
            .http
            .get(url.clone())
            .timeout(timeout)
            .build()
            .map_err(|e| failed(Cause::Iam(IamCause::Transport), None, e.to_string(), true))?;
        super::auth::sign_request(key, None, &mut request, OffsetDateTime::now_utc());
        let response = match self.http.execute(request).await {
            Ok(response) => response,
            Err(e) => {
                self.metrics.api_request(API_IAM_PROJECTS, "error");
                let cause = match e.is_timeout() {
                    true => IamCause::Timeout,
                    false => IamCause::Transport,
                };
                let said = format!(
                    "no answer from {}: {}",
                    http::shown(&url),
                    http::error_chain(&e.without_url())
                );
                return Err(failed(
                    Cause::Iam(cause),
                    None,
                    self.redactor.clean(said),
                    true,
                ));
            }
        };
        let status = response.status();
        self.metrics.api_request(API_IAM_PROJECTS, status.as_str());
        let body = read_capped(response, MAX_ANSWER_BYTES).await.map_err(|e| {
            let said = match e {
                Capped::TooLarge => format!("the answer passed {MAX_ANSWER_BYTES} bytes"),
                Capped::Failed(e) => format!("reading the answer: {}", e.without_url()),
            };
            failed(Cause::Iam(IamCause::Transport), None, said, false)
        })?;
        if !status.is_success() {
            let (code, message) = error_body::read(&body).unzip();
            let cause = code
                .as_deref()
                .filter(|c| c.contains('.'))
                .and_then(code_cause)
                .unwrap_or(Cause::Iam(IamCause::Http(status.as_u16())));
            let mut said = format!("IAM answered HTTP {}", status.as_u16());
            if let Some(code) = code {
                said.push_str(&format!(" {}", self.redactor.code(code)));
            }
            if let Some(message) = message {
                said.push_str(&format!(": {}", self.redactor.clean(message)));
            }
            let transient = status.as_u16() == 429 || status.is_server_error();
            return Err(failed(cause, Some(status.as_u16()), said, transient));
        }
        let projects: Projects = serde_json::from_slice(&body).map_err(|e| {
            let said = format!("the answer is not a project list: {e}");
            failed(Cause::Iam(IamCause::Decode), None, said, false)
        })?;
        let ids: Vec<String> = projects
            .projects
            .into_iter()
            .filter(|p| p.name == region)
            .map(|p| p.id)
            .collect();
        match <[String; 1]>::try_from(ids) {
            Ok([id]) => {
                tracing::info!(region, project_id = %id, "found the project of the access key's region");
                Ok(id)
            }
            Err(ids) => Err(ApiError::NoProject {
                region,
                found: ids.len(),
            }),
        }
    }
}
