//! What can go wrong reading the fleet, phrased for the operator who has to act on it, with a
//! label for `clouddevice_exporter_api_errors_total` (the API's code when it looks like one, else
//! the cause).

use std::time::Duration;

use crate::self_metrics::Cause;

/// Why a page, or a whole read of the list, failed.
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
        /// What the service asked for in `Retry-After`.
        retry_after: Option<Duration>,
    },
    #[error("page {page} (request {request_id}) answered HTTP {status} with API error {code}: {message}{}", hint(Some(.code.as_str()), None))]
    Api {
        page: u64,
        request_id: String,
        status: u16,
        code: String,
        message: String,
        /// What the gateway asked for in `Retry-After`: a throttle may come with HTTP 200.
        retry_after: Option<Duration>,
    },
    #[error("page {page} (request {request_id}) could not be decoded: {reason}; the service sent something other than the documented JSON")]
    Decode {
        page: u64,
        request_id: String,
        reason: String,
    },
    #[error("page {page} (request {request_id}) sent more than --clouddevice.max-response-bytes={limit} bytes; raise the limit or lower --clouddevice.page-size")]
    TooLarge {
        page: u64,
        request_id: String,
        limit: u64,
    },
    #[error("page {page} (request {request_id}) was answered with a redirect (HTTP {status}) to {target}; it is not followed, since it would carry the credentials there: set --clouddevice.endpoint to the address the API answers on")]
    Redirect {
        page: u64,
        request_id: String,
        status: u16,
        /// The host the redirect names.
        target: String,
    },
    #[error("cannot get an IAM token: {reason}")]
    Iam {
        cause: Cause,
        reason: String,
        /// No answer, or IAM failing or throttling: worth a retry.
        transient: bool,
    },
    #[error("the list needs more than --clouddevice.max-pages={max} pages at {per_page} instances a page; raise --clouddevice.max-pages or --clouddevice.page-size")]
    TooManyPages { max: u32, per_page: u64 },
    #[error("the list holds more than --clouddevice.max-instances={max} instances{}; at about 1 kB of memory each, raise the limit only as far as the exporter's memory allows", seen.map(|n| format!(" ({n} by total_count)")).unwrap_or_default())]
    TooManyInstances { max: u32, seen: Option<u64> },
    #[error("the list changed while it was paged, twice in a row ({reason}); the next scrape reads it again")]
    ListChanged { reason: String },
    #[error("the deadline passed {progress}")]
    Deadline { progress: Progress },
}

/// How far a read of the list got when its deadline passed: what the advice of
/// [`ApiError::Deadline`] is worked out from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// From the start of the read to its deadline.
    pub elapsed: Duration,
    /// Pages read whole.
    pub pages_read: u64,
    /// Pages of the whole list, when page 1 said (`total_count`).
    pub pages: Option<u64>,
    /// The mean time a page took, retries and waits included.
    pub page_time: Option<Duration>,
    /// Pages asked for at once (`--clouddevice.concurrency`).
    pub concurrency: usize,
    /// The account's request rate, when limited (`--clouddevice.requests-per-second`).
    pub requests_per_second: Option<f64>,
    /// The read was a scheduled collection (`--collection.timeout`), not a scrape's.
    pub scheduled: bool,
    /// The gateway throttled the page the deadline cut off.
    pub throttled: bool,
}

impl Progress {
    /// What the whole list needs at the measured pace: the pages over the concurrency, or over
    /// the rate limit when that is slower.
    pub fn whole_list_needs(&self) -> Option<Duration> {
        let (paced, limited) = self.paces()?;
        Some(Duration::from_secs_f64(paced.max(limited.unwrap_or(0.0))))
    }

    /// Whether the rate limit, not the API's pace, is what bounds the read.
    fn rate_bound(&self) -> bool {
        self.paces()
            .is_some_and(|(paced, limited)| limited.is_some_and(|limited| limited > paced))
    }

    /// Seconds the whole list needs at the measured pace, and at the rate limit when there is one.
    fn paces(&self) -> Option<(f64, Option<f64>)> {
        let (pages, page_time) = (self.pages? as f64, self.page_time?);
        let paced = page_time.as_secs_f64() * pages / self.concurrency.max(1) as f64;
        Some((paced, self.requests_per_second.map(|rate| pages / rate)))
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let elapsed = self.elapsed.as_secs_f64();
        match (self.pages_read, self.pages, self.page_time) {
            (0, _, _) | (_, _, None) => {
                write!(f, "after {elapsed:.1} s, before a page was read whole")?
            }
            (read, pages, Some(page_time)) => {
                write!(f, "after {elapsed:.1} s with {read} ")?;
                if let Some(pages) = pages {
                    write!(f, "of {pages} ")?;
                }
                write!(
                    f,
                    "pages read ({:.2} s a page, {} at once",
                    page_time.as_secs_f64(),
                    self.concurrency
                )?;
                if let Some(rate) = self.requests_per_second {
                    write!(f, ", at most {rate} a second")?;
                }
                f.write_str(")")?;
                if let Some(needs) = self.whole_list_needs() {
                    write!(
                        f,
                        "; the whole list needs about {:.0} s at that pace",
                        needs.as_secs_f64().ceil()
                    )?;
                }
            }
        }
        let lever = match (self.throttled, self.requests_per_second, self.rate_bound()) {
            (true, None, _) => "set --clouddevice.requests-per-second to the gateway's limit for this account (it throttled the read)",
            (true, Some(_), _) => "lower --clouddevice.requests-per-second (the gateway throttled the read)",
            (false, _, true) => "raise --clouddevice.requests-per-second if the gateway allows it",
            (false, _, false) => "raise --clouddevice.concurrency",
        };
        match self.scheduled {
            true => write!(
                f,
                ": give each collection more time (--collection.timeout, and --collection.interval with it) or {lever}"
            ),
            false => write!(
                f,
                ": give the scrape more time (Prometheus' scrape_timeout, or --scrape.timeout when it sends none), {lever}, or read the list on a schedule with --collection.interval"
            ),
        }
    }
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
            "; the credentials are wrong or expired: check the token, password or key pair"
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
            "; the API is throttling: set --clouddevice.requests-per-second under the gateway's limit for this account, or read the list less often (--collection.interval)"
        }
        (_, Some(500..=599)) | (Some("KOOPHONE.API.9999"), _) => {
            "; the service failed: the next scrape tries again"
        }
        _ => "",
    }
}

impl ApiError {
    /// What `clouddevice_exporter_api_errors_total{error_code}` counts this as: the API's code
    /// when it looks like one, else the cause. `ExporterMetrics::api_error` bounds how many
    /// codes get a label of their own.
    pub fn cause(&self) -> Cause {
        match self {
            ApiError::Timeout { .. } | ApiError::Deadline { .. } => Cause::Timeout,
            ApiError::Transport { .. } => Cause::Transport,
            ApiError::Status { status: 429, .. } => Cause::Throttled,
            ApiError::Api { code, .. } if code == "APIGW.0308" => Cause::Throttled,
            ApiError::Status {
                code: Some(code), ..
            }
            | ApiError::Api { code, .. }
                if looks_like_code(code) =>
            {
                Cause::Code(code.clone())
            }
            ApiError::Status { status, .. } => Cause::Http(*status),
            ApiError::Api { .. } => Cause::Other,
            ApiError::Decode { .. } => Cause::Decode,
            ApiError::Redirect { .. } => Cause::Redirect,
            ApiError::TooLarge { .. } => Cause::TooLarge,
            ApiError::TooManyPages { .. } => Cause::TooManyPages,
            ApiError::TooManyInstances { .. } => Cause::TooManyInstances,
            ApiError::ListChanged { .. } => Cause::ListChanged,
            ApiError::Iam { cause, .. } => cause.clone(),
        }
    }

    /// A 401: the API refused the credentials (`APIGW.0307` expired token, `APIGW.0301` wrong one).
    pub fn refused_credentials(&self) -> bool {
        matches!(self, ApiError::Status { status: 401, .. })
    }

    /// Whether this failure is the whole collection's (the list could not be put together, or
    /// the deadline passed) rather than one request's. Each is counted once, by the layer that
    /// saw it: requests where they are made, these by the collection.
    pub fn is_collection_failure(&self) -> bool {
        matches!(
            self,
            ApiError::TooManyPages { .. }
                | ApiError::TooManyInstances { .. }
                | ApiError::ListChanged { .. }
                | ApiError::Deadline { .. }
        )
    }

    /// The wait the service asked for before a retry.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } | ApiError::Api { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Timeout { request_id, .. }
            | ApiError::Transport { request_id, .. }
            | ApiError::Status { request_id, .. }
            | ApiError::Api { request_id, .. }
            | ApiError::Decode { request_id, .. }
            | ApiError::Redirect { request_id, .. }
            | ApiError::TooLarge { request_id, .. } => Some(request_id),
            _ => None,
        }
    }

    /// The API's own error code and message, when it sent them.
    pub fn api_code(&self) -> (Option<&str>, Option<&str>) {
        match self {
            ApiError::Status { code, message, .. } => (code.as_deref(), message.as_deref()),
            ApiError::Api { code, message, .. } => (Some(code), Some(message)),
            _ => (None, None),
        }
    }
}

/// Most characters of an upstream's text (an `error_msg`, a decode error quoting the body) kept
/// in an error: a 100 KB `error_msg` must not become a 200 KB log line and a 100 KB page.
pub const MAX_UPSTREAM_TEXT: usize = 300;

/// `text` cut to [`MAX_UPSTREAM_TEXT`] characters, saying how long it was.
pub fn clip(text: String) -> String {
    match text.char_indices().nth(MAX_UPSTREAM_TEXT) {
        None => text,
        Some((end, _)) => format!("{}… ({} bytes in all)", &text[..end], text.len()),
    }
}

/// Whether an upstream string is shaped like an error code (`KOOPHONE.API.1001`, `IAM.0101`):
/// only such a string may become an `error_code` label.
pub fn looks_like_code(code: &str) -> bool {
    crate::self_metrics::code_shaped(code)
}

/// Errors as the batch-query client makes them, for the tests of what reads them.
#[cfg(test)]
pub(crate) mod examples {
    use super::ApiError;

    /// An HTTP error status on page 1, with the API's code if given.
    pub fn status(code: Option<&str>, status: u16) -> ApiError {
        ApiError::Status {
            page: 1,
            request_id: "r".into(),
            status,
            code: code.map(str::to_string),
            message: None,
            retry_after: None,
        }
    }

    /// An HTTP 200 carrying the API's error `code`.
    pub fn api(code: &str) -> ApiError {
        ApiError::Api {
            page: 1,
            request_id: "r".into(),
            status: 200,
            code: code.into(),
            message: String::new(),
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::examples::{api, status};
    use super::*;

    #[test]
    fn error_labels_are_bounded() {
        assert_eq!(
            status(Some("APIGW.0307"), 401).cause().label(),
            "APIGW.0307"
        );
        assert_eq!(status(None, 502).cause().label(), "http_502");
        assert_eq!(
            status(Some("a very long and free-form error text!"), 500)
                .cause()
                .label(),
            "http_500"
        );
        assert_eq!(
            api("KOOPHONE.API.1001").cause().label(),
            "KOOPHONE.API.1001"
        );
        assert_eq!(api("{\"x\": 1}").cause().label(), "other");
        // The documented shape only: a capital first, then letters, digits, `_` and `.`.
        assert_eq!(api("lower.case").cause().label(), "other");
        assert_eq!(api("APIGW-0301").cause().label(), "other");
        assert_eq!(
            api(&format!("A{}", "B".repeat(64))).cause().label(),
            "other"
        );
        assert_eq!(
            api(&format!("A{}", "B".repeat(63))).cause().label().len(),
            64
        );
    }

    #[test]
    fn long_upstream_texts_are_clipped() {
        let long = "é".repeat(50_000);
        let clipped = clip(long);
        assert_eq!(
            clipped.chars().filter(|c| *c == 'é').count(),
            MAX_UPSTREAM_TEXT
        );
        assert!(clipped.ends_with("… (100000 bytes in all)"), "{clipped}");
        assert_eq!(clip("short".into()), "short");
    }

    #[test]
    fn throttling_is_labelled_throttled_however_it_comes() {
        assert_eq!(status(Some("APIGW.0308"), 429).cause().label(), "throttled");
        assert_eq!(status(None, 429).cause().label(), "throttled");
        assert_eq!(api("APIGW.0308").cause().label(), "throttled");
    }

    #[test]
    fn messages_say_what_to_do() {
        let text = status(Some("APIGW.0307"), 401).to_string();
        assert!(text.contains("HTTP 401 and API error APIGW.0307"), "{text}");
        assert!(text.contains("credentials are wrong or expired"), "{text}");
        let text = ApiError::Api {
            page: 3,
            request_id: "rid".into(),
            status: 200,
            code: "KOOPHONE.API.1001".into(),
            message: "Insufficient instance permissions.".into(),
            retry_after: None,
        }
        .to_string();
        assert!(text.contains("page 3 (request rid)"), "{text}");
        assert!(text.contains("queryInstanceBatch"), "{text}");
    }
}
