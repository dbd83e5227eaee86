//! The exporter's own metrics, which live as long as the process: requests to the APIs and their
//! failures, latency, the IAM token's expiry, build information and the process collector.
//! Counted by the layers that see the events; gathered into each scrape's body.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

/// The exporter's own counters and constants, which live as long as the process.
pub struct ExporterMetrics {
    registry: Registry,
    api_requests: IntCounterVec,
    api_errors: IntCounterVec,
    token_expiry: GaugeVec,
    iam_next_attempt: GaugeVec,
    request_duration: HistogramVec,
    invalid_text: IntCounter,
    invalid_values: IntCounter,
    truncated_values: IntCounter,
    rate_limit_waits: IntCounter,
    rate_limit_wait_seconds: prometheus::Counter,
    /// The undocumented codes that have a label of their own.
    undocumented_codes: Mutex<HashSet<String>>,
}

/// How many other code-shaped values get a label of their own in one process's life.
pub const MAX_UNDOCUMENTED_CODES: usize = 20;

/// The label of every code past that limit (and of a code that does not look like one).
const OTHER: &str = "other";

/// Why a request (or a collection) failed: the `error_code` label of
/// `clouddevice_exporter_api_errors_total`. Every place that counts or labels an error builds
/// one, and [`Cause::label`] names each kind in one exhaustive match, so a new kind cannot go
/// unlabelled or be mistaken for an upstream's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A documented code (the reference's, the service's, the gateway's or IAM's), in its
    /// documented spelling: always a label of its own.
    Documented(&'static str),
    /// Another code the upstream sent, already checked to look like one;
    /// [`ExporterMetrics::api_error`] bounds how many get a label.
    Code(String),
    /// An answer with neither a code nor a success: its HTTP status.
    Http(u16),
    /// A code that does not look like one, or free text where a code belongs.
    Other,
    /// No answer in time (a request's own timeout or the scrape's deadline).
    Timeout,
    /// No answer at all: connection, TLS, DNS, proxy.
    Transport,
    /// HTTP 429 or `APIGW.0308`.
    Throttled,
    /// An answer that is not the JSON the reference describes.
    Decode,
    /// A redirect, never followed.
    Redirect,
    /// A body past `--clouddevice.max-response-bytes`.
    TooLarge,
    /// More pages than `--clouddevice.max-pages`.
    TooManyPages,
    TooManyInstances,
    /// The list changed while it was paged, twice.
    ListChanged,
    /// The IAM token endpoint failed in this way.
    Iam(IamCause),
}

/// How the IAM token endpoint failed, when it sent no code of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IamCause {
    Timeout,
    Transport,
    Decode,
    Redirect,
    TooLarge,
    /// A success without the token header.
    NoToken,
    Http(u16),
}

impl Cause {
    /// The causes exported at 0 from the start, so rates and alerts see a series before the
    /// first error.
    pub const STARTED_AT_ZERO: [Cause; 7] = [
        Cause::Timeout,
        Cause::Transport,
        Cause::Throttled,
        Cause::Decode,
        Cause::ListChanged,
        Cause::TooLarge,
        Cause::Redirect,
    ];

    /// The `error_code` label.
    pub fn label(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow::{Borrowed, Owned};
        match self {
            Cause::Documented(code) => Borrowed(code),
            Cause::Code(code) => Borrowed(code),
            Cause::Http(status) => Owned(format!("http_{status}")),
            Cause::Other => Borrowed(OTHER),
            Cause::Timeout => Borrowed("timeout"),
            Cause::Transport => Borrowed("transport"),
            Cause::Throttled => Borrowed("throttled"),
            Cause::Decode => Borrowed("decode"),
            Cause::Redirect => Borrowed("redirect"),
            Cause::TooLarge => Borrowed("too_large"),
            Cause::TooManyPages => Borrowed("too_many_pages"),
            Cause::TooManyInstances => Borrowed("too_many_instances"),
            Cause::ListChanged => Borrowed("list_changed"),
            Cause::Iam(iam) => match iam {
                IamCause::Timeout => Borrowed("iam_timeout"),
                IamCause::Transport => Borrowed("iam_transport"),
                IamCause::Decode => Borrowed("iam_decode"),
                IamCause::Redirect => Borrowed("iam_redirect"),
                IamCause::TooLarge => Borrowed("iam_too_large"),
                IamCause::NoToken => Borrowed("iam_no_token"),
                IamCause::Http(status) => Owned(format!("iam_http_{status}")),
            },
        }
    }
}

/// Whether a label is shaped like an error code: `[A-Za-z][A-Za-z0-9_.]{0,63}`, as the codes
/// the API, the gateway, IAM and other Huawei services (`common.00000400`) write them; one that
/// starts lower-case must hold a `.`, which no cause's label does. Anything else an upstream
/// sends (free text, a reflected credential) is counted as `other`, never made a label.
pub fn code_shaped(label: &str) -> bool {
    let bytes = label.as_bytes();
    (1..=64).contains(&bytes.len())
        && (bytes[0].is_ascii_uppercase() || bytes[0].is_ascii_lowercase() && label.contains('.'))
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
}

/// `clouddevice_exporter_build_info`, registered in `registry`.
fn register_build_info(registry: &Registry) -> Result<(), prometheus::Error> {
    let build_info = IntGaugeVec::new(
        Opts::new(
            "clouddevice_exporter_build_info",
            "A metric with a constant '1' value labeled by version, revision and rustc_version.",
        ),
        &["version", "revision", "rustc_version"],
    )?;
    build_info
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            env!("CLOUDDEVICE_EXPORTER_REVISION"),
            env!("CLOUDDEVICE_EXPORTER_RUSTC_VERSION"),
        ])
        .set(1);
    registry.register(Box::new(build_info))
}

impl ExporterMetrics {
    /// The metrics of the one-account exporter: the account's, and the process's.
    pub fn new() -> Result<Self, prometheus::Error> {
        let metrics = Self::for_account()?;
        register_build_info(&metrics.registry)?;
        register_process_collector(&metrics.registry)?;
        Ok(metrics)
    }

    /// The metrics of one account of the accounts file, served with its probes: the process's
    /// own are on `/metrics` ([`ProcessMetrics`]).
    pub fn for_account() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let api_requests = IntCounterVec::new(
            Opts::new(
                "clouddevice_exporter_api_requests_total",
                "Requests sent to the CloudDevice APIs, by API and HTTP status (error when no answer came).",
            ),
            &["api", "code"],
        )?;
        let api_errors = IntCounterVec::new(
            Opts::new(
                "clouddevice_exporter_api_errors_total",
                "Failed requests to the CloudDevice APIs, by the API's error code or the cause.",
            ),
            &["error_code"],
        )?;
        // No labels: the series appears once a token has been fetched, and not in other modes.
        let token_expiry = GaugeVec::new(
            Opts::new(
                "clouddevice_exporter_token_expiry_timestamp_seconds",
                "Expiry time of the current IAM token, as Unix seconds.",
            ),
            &[],
        )?;
        // No labels: the series appears once IAM has refused the credentials.
        let iam_next_attempt = GaugeVec::new(
            Opts::new(
                "clouddevice_exporter_iam_next_attempt_timestamp_seconds",
                "When the exporter next asks IAM for a token after IAM refused the credentials, as Unix seconds; 0 when it is not holding back.",
            ),
            &[],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "clouddevice_exporter_api_request_duration_seconds",
                "Time from sending a request to the CloudDevice APIs to having its whole answer, by API.",
            )
            // From 1 ms (a gateway or simulator on the same network) to 30 s (the longest timeout
            // worth waiting for), so that a p95 below 25 ms reads as itself.
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["api"],
        )?;
        let invalid_text = IntCounter::new(
            "clouddevice_exporter_invalid_text_total",
            "Invalid UTF-8 sequences and lone UTF-16 surrogates in the API's answers, each read as U+FFFD.",
        )?;
        let invalid_values = IntCounter::new(
            "clouddevice_exporter_invalid_values_total",
            "Fields of the API's rows of the wrong kind or out of range, and times that do not parse, each read as absent (a status then counts as undocumented).",
        )?;
        let truncated_values = IntCounter::new(
            "clouddevice_exporter_truncated_values_total",
            "Text fields of the API's rows longer than their bound (instance_id 32 characters, every other 128), cut to it.",
        )?;
        let rate_limit_waits = IntCounter::new(
            "clouddevice_exporter_rate_limit_waits_total",
            "Requests to the CloudDevice API that waited for their turn: the account's --clouddevice.requests-per-second, or the hold after a throttled answer.",
        )?;
        let rate_limit_wait_seconds = prometheus::Counter::new(
            "clouddevice_exporter_rate_limit_wait_seconds_total",
            "Time requests to the CloudDevice API waited for their turn, in seconds.",
        )?;
        for cause in Cause::STARTED_AT_ZERO {
            api_errors.with_label_values(&[cause.label().as_ref()]);
        }
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(api_requests.clone()))?;
        registry.register(Box::new(token_expiry.clone()))?;
        registry.register(Box::new(iam_next_attempt.clone()))?;
        registry.register(Box::new(api_errors.clone()))?;
        registry.register(Box::new(invalid_text.clone()))?;
        registry.register(Box::new(invalid_values.clone()))?;
        registry.register(Box::new(truncated_values.clone()))?;
        registry.register(Box::new(rate_limit_waits.clone()))?;
        registry.register(Box::new(rate_limit_wait_seconds.clone()))?;
        Ok(ExporterMetrics {
            registry,
            api_requests,
            api_errors,
            token_expiry,
            iam_next_attempt,
            request_duration,
            invalid_text,
            invalid_values,
            truncated_values,
            rate_limit_waits,
            rate_limit_wait_seconds,
            undocumented_codes: Mutex::new(HashSet::new()),
        })
    }

    pub fn api_request(&self, api: &str, code: &str) {
        self.api_requests.with_label_values(&[api, code]).inc();
    }

    /// Counts an error by its cause, under a bounded set of labels so that a misbehaving or
    /// hostile upstream cannot make series without end. An upstream's code gets a label of its
    /// own when it is documented, or among the first [`MAX_UNDOCUMENTED_CODES`] others; past
    /// that, or when it does not look like a code, it counts as `other`.
    pub fn api_error(&self, cause: &Cause) {
        let label = match cause {
            Cause::Code(code) if !code_shaped(code) => Cause::Other.label(),
            Cause::Code(code) => {
                let mut seen = self
                    .undocumented_codes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if seen.contains(code) || seen.len() < MAX_UNDOCUMENTED_CODES {
                    seen.insert(code.clone());
                    cause.label()
                } else {
                    Cause::Other.label()
                }
            }
            _ => cause.label(),
        };
        self.api_errors.with_label_values(&[label.as_ref()]).inc();
    }

    /// What one page's decoding repaired: values of the wrong kind read as absent, texts cut to
    /// their bound, invalid text read as U+FFFD.
    pub fn odd_values(&self, invalid: usize, truncated: usize, replaced: usize) {
        self.invalid_values.inc_by(invalid as u64);
        self.truncated_values.inc_by(truncated as u64);
        self.invalid_text.inc_by(replaced as u64);
    }

    /// A request waited `waited` for its turn (nothing is counted when it did not wait).
    pub fn rate_limit_wait(&self, waited: std::time::Duration) {
        if !waited.is_zero() {
            self.rate_limit_waits.inc();
            self.rate_limit_wait_seconds.inc_by(waited.as_secs_f64());
        }
    }

    pub fn observe_request(&self, api: &str, duration: std::time::Duration) {
        self.request_duration
            .with_label_values(&[api])
            .observe(duration.as_secs_f64());
    }

    pub fn set_token_expiry(&self, unix_seconds: f64) {
        self.token_expiry
            .with_label_values(&[] as &[&str])
            .set(unix_seconds);
    }

    /// When IAM is next asked after it refused the credentials; 0 once it is not held back.
    pub fn set_iam_next_attempt(&self, unix_seconds: f64) {
        self.iam_next_attempt
            .with_label_values(&[] as &[&str])
            .set(unix_seconds);
    }

    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }

    /// Exports the configuration's reload state beside these metrics: for the account of the
    /// flags when a web configuration file can be reloaded. Call once.
    pub fn reload_state(&self) -> Result<ReloadState, prometheus::Error> {
        ReloadState::register(&self.registry)
    }
}

/// The metrics of the whole process when it probes the accounts of a file: build, process,
/// and the configuration's reload state. What `/metrics` serves then.
pub struct ProcessMetrics {
    registry: Registry,
    accounts: IntGauge,
    reload: ReloadState,
}

impl ProcessMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        register_build_info(&registry)?;
        register_process_collector(&registry)?;
        let accounts = IntGauge::new(
            "clouddevice_exporter_accounts",
            "Accounts the exporter probes, from --config.file.",
        )?;
        registry.register(Box::new(accounts.clone()))?;
        let reload = ReloadState::register(&registry)?;
        Ok(ProcessMetrics {
            registry,
            accounts,
            reload,
        })
    }

    /// The accounts probed now.
    pub fn set_accounts(&self, accounts: usize) {
        self.accounts.set(accounts as i64);
    }

    /// Where the reloads of the configuration are recorded.
    pub fn reload_state(&self) -> ReloadState {
        self.reload.clone()
    }

    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }
}

/// Whether the last load of the configuration files (`--config.file`, `--web.config.file`)
/// succeeded, and when one last did. One state for both files: they are reloaded together.
#[derive(Clone)]
pub struct ReloadState {
    successful: IntGauge,
    success_time: Gauge,
}

impl ReloadState {
    /// The two gauges, registered in `registry`; a first load is recorded as a success now.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let successful = IntGauge::new(
            "clouddevice_exporter_config_last_reload_successful",
            "Whether the last load of the configuration files (--config.file, --web.config.file) succeeded (1) or was refused and the configuration in use kept (0).",
        )?;
        let success_time = Gauge::new(
            "clouddevice_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration files last loaded successfully, as Unix seconds.",
        )?;
        registry.register(Box::new(successful.clone()))?;
        registry.register(Box::new(success_time.clone()))?;
        let state = ReloadState {
            successful,
            success_time,
        };
        state.record(true);
        Ok(state)
    }

    /// Records a load: `true` when it succeeded.
    pub fn record(&self, succeeded: bool) {
        if succeeded {
            self.successful.set(1);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.success_time.set(now);
        } else {
            self.successful.set(0);
        }
    }
}

#[cfg(target_os = "linux")]
fn register_process_collector(registry: &Registry) -> Result<(), prometheus::Error> {
    let collector: Box<dyn Collector> =
        Box::new(prometheus::process_collector::ProcessCollector::for_self());
    registry.register(collector)
}

#[cfg(not(target_os = "linux"))]
fn register_process_collector(_: &Registry) -> Result<(), prometheus::Error> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_series(metrics: &ExporterMetrics) -> Vec<(String, f64)> {
        metrics
            .gather()
            .iter()
            .filter(|f| f.name() == "clouddevice_exporter_api_errors_total")
            .flat_map(|f| f.get_metric())
            .map(|m| {
                (
                    m.get_label()[0].value().to_string(),
                    m.get_counter().value(),
                )
            })
            .collect()
    }

    #[test]
    fn a_thousand_distinct_codes_make_a_bounded_number_of_series() {
        let metrics = ExporterMetrics::new().unwrap();
        let before = error_series(&metrics).len();
        for n in 0..1000 {
            metrics.api_error(&Cause::Code(format!("EVIL.{n:04}")));
        }
        let series = error_series(&metrics);
        // The causes at zero, the first 20 codes, and `other` for the other 980.
        assert_eq!(series.len(), before + MAX_UNDOCUMENTED_CODES + 1);
        let other = series.iter().find(|(l, _)| l == "other").unwrap().1;
        assert_eq!(other, 980.0);
        assert!(series.iter().any(|(l, _)| l == "EVIL.0000"));
        assert!(!series.iter().any(|(l, _)| l == "EVIL.0020"));
        // Documented codes and causes always get their own label, however many came before.
        metrics.api_error(&Cause::Documented("KOOPHONE.API.1001"));
        metrics.api_error(&Cause::Http(503));
        metrics.api_error(&Cause::Iam(IamCause::Http(401)));
        let series = error_series(&metrics);
        for label in ["KOOPHONE.API.1001", "http_503", "iam_http_401"] {
            assert!(series.iter().any(|(l, _)| l == label), "{label}");
        }
        // A code already labelled keeps its label.
        metrics.api_error(&Cause::Code("EVIL.0003".into()));
        let evil = error_series(&metrics);
        assert_eq!(evil.iter().find(|(l, _)| l == "EVIL.0003").unwrap().1, 2.0);
    }

    /// Every cause's label: distinct, never shaped like an upstream's code (so none can be taken
    /// for one, or bounded with them), and each one the README documents.
    #[test]
    fn every_cause_has_its_own_label_that_no_code_can_take() {
        let causes = [
            Cause::Http(503),
            Cause::Other,
            Cause::Timeout,
            Cause::Transport,
            Cause::Throttled,
            Cause::Decode,
            Cause::Redirect,
            Cause::TooLarge,
            Cause::TooManyPages,
            Cause::TooManyInstances,
            Cause::ListChanged,
            Cause::Iam(IamCause::Timeout),
            Cause::Iam(IamCause::Transport),
            Cause::Iam(IamCause::Decode),
            Cause::Iam(IamCause::Redirect),
            Cause::Iam(IamCause::TooLarge),
            Cause::Iam(IamCause::NoToken),
            Cause::Iam(IamCause::Http(401)),
        ];
        // The compiler keeps this list whole: a new kind fails this match until it is added.
        for cause in &causes {
            match cause {
                Cause::Code(_) | Cause::Documented(_) => {
                    unreachable!("codes come from the upstream")
                }
                Cause::Http(_)
                | Cause::Other
                | Cause::Timeout
                | Cause::Transport
                | Cause::Throttled
                | Cause::Decode
                | Cause::Redirect
                | Cause::TooLarge
                | Cause::TooManyPages
                | Cause::TooManyInstances
                | Cause::ListChanged => {}
                Cause::Iam(
                    IamCause::Timeout
                    | IamCause::Transport
                    | IamCause::Decode
                    | IamCause::Redirect
                    | IamCause::TooLarge
                    | IamCause::NoToken
                    | IamCause::Http(_),
                ) => {}
            }
        }
        let labels: HashSet<String> = causes.iter().map(|c| c.label().into_owned()).collect();
        assert_eq!(labels.len(), causes.len(), "{labels:?}");
        let readme = include_str!("../README.md");
        for label in &labels {
            assert!(!code_shaped(label), "{label} looks like an upstream's code");
            let documented = label.replace("503", "<status>").replace("401", "<status>");
            assert!(
                readme.contains(&format!("`{documented}`")),
                "the README's error_code list lacks `{documented}`"
            );
        }
        // Past the bound on undocumented codes, every cause still has its own series.
        let metrics = ExporterMetrics::new().unwrap();
        for n in 0..100 {
            metrics.api_error(&Cause::Code(format!("EVIL.{n:04}")));
        }
        for cause in &causes {
            metrics.api_error(cause);
        }
        let series = error_series(&metrics);
        for label in &labels {
            assert!(series.iter().any(|(l, _)| l == label), "{label}");
        }
    }
}
