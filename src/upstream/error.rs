//! What can go wrong reading the fleet, as data: what happened (the page, the request id, the
//! status, the API's code and message, how far a read got), never what to do about it, which
//! the layer that knows the flags says ([`crate::cli::advice`]). With a label for
//! `clouddevice_exporter_api_errors_total` (the API's code when it looks like one, else the
//! cause).

use std::sync::Arc;
use std::time::Duration;

use crate::self_metrics::Cause;
use crate::upstream::codes::{self, Kind};

/// Why a page, or a whole read of the list, failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One request for a page failed.
    #[error("page {page} (request {request_id}) {failure}")]
    Request {
        page: u64,
        request_id: String,
        failure: RequestFailure,
        /// The URL asked, without its query or credentials; empty when not known.
        url: Arc<str>,
    },
    #[error("cannot get an IAM token: {reason}")]
    Iam {
        cause: Cause,
        /// What IAM answered, when it answered.
        status: Option<u16>,
        reason: String,
        /// No answer, or IAM failing or throttling: worth a retry.
        transient: bool,
    },
    #[error("the list needs more than {max} pages at {per_page} instances a page")]
    TooManyPages { max: u32, per_page: u64 },
    #[error("the list holds more than {max} instances{}", seen.map(|n| format!(" ({n} by total_count)")).unwrap_or_default())]
    TooManyInstances { max: u32, seen: Option<u64> },
    #[error("the list changed while it was paged, twice in a row ({reason}); the next scrape reads it again")]
    ListChanged { reason: String },
    #[error("the deadline passed {progress}")]
    Deadline { progress: Progress },
    /// IAM's project list for the access key holds no project named after the region, or more
    /// than one.
    #[error("IAM knows {} named {region:?} for this access key{}", if *.found == 0 { "no project".to_string() } else { format!("{} projects", .found) }, if *.found == 0 { "" } else { ", not one" })]
    NoProject { region: String, found: usize },
}

/// How one request for a page failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestFailure {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("got no answer: {0}")]
    Transport(String),
    /// An answer that names an error: a status other than 2xx, or a 2xx with an `error_code`.
    #[error("{}", refusal(*.status, .code.as_deref(), .message.as_deref()))]
    Refused {
        status: u16,
        code: Option<String>,
        message: Option<String>,
        /// What the service asked for in `Retry-After` (a throttle may come with HTTP 200).
        retry_after: Option<Duration>,
    },
    #[error("could not be decoded: {0}")]
    Decode(String),
    /// The answer came in the other protocol: plain HTTP to a TLS (`https://`) request, or no
    /// HTTP at all (the connection closed, or the answer was not HTTP) to a plain one, as a TLS
    /// port answers.
    #[error("{}", if *.https { "was answered in plain HTTP to a TLS (https://) request" } else { "got no HTTP answer to a plain http:// request (the connection closed, or the answer was not HTTP)" })]
    WrongScheme { https: bool },
    /// The body passed the response limit, of `limit` bytes.
    #[error("sent more than {limit} bytes")]
    TooLarge { limit: u64 },
    /// Not followed: it would carry the credentials to `target`, the host it names.
    #[error("was answered with a redirect (HTTP {status}) to {target}, which is not followed: it would carry the credentials there")]
    Redirect { status: u16, target: String },
}

fn refusal(status: u16, code: Option<&str>, message: Option<&str>) -> String {
    let said = match (code, message) {
        (Some(c), Some(m)) => format!("API error {c}: {m}"),
        (Some(c), None) => format!("API error {c}"),
        _ => String::new(),
    };
    match (200..300).contains(&status) {
        true => format!("answered HTTP {status} with {said}"),
        false if said.is_empty() => format!("failed with HTTP {status}"),
        false => format!("failed with HTTP {status} and {said}"),
    }
}

/// How far a read of the list got when its deadline passed: what the advice on
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
    /// Pages asked for at once.
    pub concurrency: usize,
    /// The account's request rate, when limited.
    pub requests_per_second: Option<f64>,
    /// The read was a scheduled collection, not a scrape's.
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
    pub fn rate_bound(&self) -> bool {
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
        let (read, Some(page_time)) = (self.pages_read, self.page_time) else {
            return write!(f, "after {elapsed:.1} s, before a page was read whole");
        };
        if read == 0 {
            return write!(f, "after {elapsed:.1} s, before a page was read whole");
        }
        write!(f, "after {elapsed:.1} s with {read} ")?;
        if let Some(pages) = self.pages {
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
            let needs = needs.as_secs_f64().ceil();
            write!(f, "; the whole list needs about {needs:.0} s at that pace")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// One request's failure.
    pub fn request(page: u64, request_id: &str, failure: RequestFailure) -> Self {
        ApiError::Request {
            page,
            request_id: request_id.to_string(),
            failure,
            url: Arc::from(""),
        }
    }

    /// The same error, saying the URL asked (shown without its query or credentials).
    pub fn at(mut self, shown_url: &Arc<str>) -> Self {
        if let ApiError::Request { url, .. } = &mut self {
            *url = shown_url.clone();
        }
        self
    }

    /// The request's failure, when this is one request's.
    pub fn failure(&self) -> Option<&RequestFailure> {
        match self {
            ApiError::Request { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// What `clouddevice_exporter_api_errors_total{error_code}` counts this as: the API's code
    /// when it looks like one, else the cause. `ExporterMetrics::api_error` bounds how many
    /// codes get a label of their own.
    pub fn cause(&self) -> Cause {
        let failure = match self {
            ApiError::Request { failure, .. } => failure,
            ApiError::Iam { cause, .. } => return cause.clone(),
            ApiError::Deadline { .. } => return Cause::Timeout,
            ApiError::TooManyPages { .. } => return Cause::TooManyPages,
            ApiError::TooManyInstances { .. } => return Cause::TooManyInstances,
            ApiError::ListChanged { .. } => return Cause::ListChanged,
            ApiError::NoProject { .. } => return Cause::Other,
        };
        match failure {
            RequestFailure::Timeout(_) => Cause::Timeout,
            RequestFailure::Transport(_) | RequestFailure::WrongScheme { .. } => Cause::Transport,
            RequestFailure::Decode(_) => Cause::Decode,
            RequestFailure::Redirect { .. } => Cause::Redirect,
            RequestFailure::TooLarge { .. } => Cause::TooLarge,
            RequestFailure::Refused { status, code, .. } => {
                let counted = code.as_deref().and_then(code_cause);
                match (codes::kind(*status, code.as_deref()), counted) {
                    (Kind::Throttled, _) => Cause::Throttled,
                    (_, Some(cause)) => cause,
                    _ if (200..300).contains(status) => Cause::Other,
                    _ => Cause::Http(*status),
                }
            }
        }
    }

    /// What kind of refusal this is, when the API answered with an error.
    pub fn kind(&self) -> Option<Kind> {
        match self.failure()? {
            RequestFailure::Refused { status, code, .. } => {
                Some(codes::kind(*status, code.as_deref()))
            }
            _ => None,
        }
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
        match self.failure()? {
            RequestFailure::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Request { request_id, .. } => Some(request_id),
            _ => None,
        }
    }

    /// The API's own error code and message, when it sent them.
    pub fn api_code(&self) -> (Option<&str>, Option<&str>) {
        match self.failure() {
            Some(RequestFailure::Refused { code, message, .. }) => {
                (code.as_deref(), message.as_deref())
            }
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

/// What an upstream's code is counted as: a documented code in its documented spelling, another
/// code-shaped one as sent; `None` for free text, which may never become a label.
pub fn code_cause(code: &str) -> Option<Cause> {
    match codes::documented(code) {
        Some((spelled, _)) => Some(Cause::Documented(spelled)),
        None if crate::self_metrics::code_shaped(code) => Some(Cause::Code(code.to_string())),
        None => None,
    }
}

#[cfg(test)]
pub(crate) mod examples {
    use super::{ApiError, RequestFailure};

    /// An HTTP error status on page 1, with the API's code if given.
    pub fn status(code: Option<&str>, status: u16) -> ApiError {
        refused(status, code, None)
    }

    /// An answer with `status`, the API's `code` and `message`, for page 1.
    pub fn refused(status: u16, code: Option<&str>, message: Option<&str>) -> ApiError {
        ApiError::request(
            1,
            "r",
            RequestFailure::Refused {
                status,
                code: code.map(str::to_string),
                message: message.map(str::to_string),
                retry_after: None,
            },
        )
    }

    /// An HTTP 200 carrying the API's error `code`.
    pub fn api(code: &str) -> ApiError {
        refused(200, Some(code), Some(""))
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
        // Codes' shapes only: a letter first, then letters, digits, `_` and `.`; lower-case
        // first (other Huawei services' `common.00000400`) with a `.`, which no cause has.
        assert_eq!(api("common.00000400").cause().label(), "common.00000400");
        assert_eq!(api("timeout").cause().label(), "other");
        assert_eq!(api("APIGW-0301").cause().label(), "other");
        // Documented codes in their documented spelling, whatever case they came in.
        assert_eq!(
            status(Some("KooPhone.API.1001"), 401).cause().label(),
            "KOOPHONE.API.1001"
        );
        assert_eq!(status(Some("APIG.0308"), 429).cause().label(), "throttled");
        assert_eq!(api("APIG.0308").cause().label(), "throttled");
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
    fn messages_say_what_happened_and_name_no_flag() {
        let text = status(Some("APIGW.0307"), 401).to_string();
        assert_eq!(
            text,
            "page 1 (request r) failed with HTTP 401 and API error APIGW.0307"
        );
        let text = ApiError::request(
            3,
            "rid",
            RequestFailure::Refused {
                status: 200,
                code: Some("KOOPHONE.API.1001".into()),
                message: Some("Insufficient instance permissions.".into()),
                retry_after: None,
            },
        )
        .to_string();
        assert_eq!(
            text,
            "page 3 (request rid) answered HTTP 200 with API error KOOPHONE.API.1001: Insufficient instance permissions."
        );
        assert_eq!(
            status(None, 502).to_string(),
            "page 1 (request r) failed with HTTP 502"
        );
        let progress = Progress {
            elapsed: Duration::from_secs(2),
            pages_read: 2,
            pages: Some(10),
            page_time: Some(Duration::from_millis(500)),
            concurrency: 2,
            ..Progress::default()
        };
        let text = ApiError::Deadline { progress }.to_string();
        assert_eq!(text, "the deadline passed after 2.0 s with 2 of 10 pages read (0.50 s a page, 2 at once); the whole list needs about 3 s at that pace");
        for text in [
            text,
            ApiError::TooManyPages {
                max: 3,
                per_page: 100,
            }
            .to_string(),
        ] {
            assert!(!text.contains("--"), "{text}");
        }
    }
}
