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
    request_duration: HistogramVec,
    invalid_text: IntCounter,
    invalid_values: IntCounter,
    truncated_values: IntCounter,
    /// The undocumented codes that have a label of their own.
    undocumented_codes: Mutex<HashSet<String>>,
}

/// The error codes the API reference, the gateway and IAM document: each always has its own
/// `error_code` label.
pub const DOCUMENTED_CODES: &[&str] = &[
    "KOOPHONE.API.0000",
    "KOOPHONE.API.0002",
    "KOOPHONE.API.1000",
    "KOOPHONE.API.1001",
    "KOOPHONE.API.1004",
    "KOOPHONE.API.5002",
    "KOOPHONE.API.5004",
    "KOOPHONE.API.9999",
    "KPAPI.2209",
    "APIGW.0301",
    "APIGW.0303",
    "APIGW.0307",
    "APIGW.0308",
    "IAM.0001",
    "IAM.0002",
    "IAM.0003",
    "IAM.0004",
    "IAM.0101",
];

/// How many other code-shaped values get a label of their own in one process's life.
pub const MAX_UNDOCUMENTED_CODES: usize = 20;

/// The label of every code past that limit (and of a code that does not look like one).
const OTHER: &str = "other";

/// The causes exported at 0 from the start, so rates and alerts see a series before the first
/// error.
const STARTED_AT_ZERO: &[&str] = &[
    "timeout",
    "transport",
    "throttled",
    "decode",
    "list_changed",
    "too_large",
    "redirect",
];

/// Whether a label is shaped like an error code: `[A-Z][A-Za-z0-9_.]{0,63}`, as the codes the
/// API, the gateway and IAM document are. Anything else an upstream sends (free text, a
/// reflected credential) is counted as `other`, never made a label.
pub fn code_shaped(label: &str) -> bool {
    let bytes = label.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_uppercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
}

/// The causes the exporter names itself: a fixed list, and HTTP statuses (three digits).
fn is_cause(label: &str) -> bool {
    const CAUSES: &[&str] = &[
        "too_many_pages",
        OTHER,
        "iam_timeout",
        "iam_transport",
        "iam_decode",
        "iam_redirect",
        "iam_too_large",
        "iam_no_token",
    ];
    let status = |s: &str| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit());
    CAUSES.contains(&label)
        || STARTED_AT_ZERO.contains(&label)
        || label.strip_prefix("http_").is_some_and(status)
        || label.strip_prefix("iam_http_").is_some_and(status)
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
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "clouddevice_exporter_api_request_duration_seconds",
                "Time from sending a request to the CloudDevice APIs to having its whole answer, by API.",
            )
            .buckets(vec![0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
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
        for cause in STARTED_AT_ZERO {
            api_errors.with_label_values(&[cause]);
        }
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(api_requests.clone()))?;
        registry.register(Box::new(token_expiry.clone()))?;
        registry.register(Box::new(api_errors.clone()))?;
        registry.register(Box::new(invalid_text.clone()))?;
        registry.register(Box::new(invalid_values.clone()))?;
        registry.register(Box::new(truncated_values.clone()))?;
        Ok(ExporterMetrics {
            registry,
            api_requests,
            api_errors,
            token_expiry,
            request_duration,
            invalid_text,
            invalid_values,
            truncated_values,
            undocumented_codes: Mutex::new(HashSet::new()),
        })
    }

    pub fn api_request(&self, api: &str, code: &str) {
        self.api_requests.with_label_values(&[api, code]).inc();
    }

    /// Counts a failure under its label, bounded: a code that is neither documented nor among
    /// the first [`MAX_UNDOCUMENTED_CODES`] seen is counted as `other`, so a misbehaving or
    /// hostile upstream cannot make series without end.
    pub fn api_error(&self, label: &str) {
        let label = if is_cause(label) || DOCUMENTED_CODES.contains(&label) {
            label
        } else if !code_shaped(label) {
            OTHER
        } else {
            let mut seen = self
                .undocumented_codes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if seen.contains(label) || seen.len() < MAX_UNDOCUMENTED_CODES {
                seen.insert(label.to_string());
                label
            } else {
                OTHER
            }
        };
        self.api_errors.with_label_values(&[label]).inc();
    }

    pub fn replaced_text(&self, n: usize) {
        self.invalid_text.inc_by(n as u64);
    }

    pub fn invalid_values(&self, n: usize) {
        self.invalid_values.inc_by(n as u64);
    }

    pub fn truncated_values(&self, n: usize) {
        self.truncated_values.inc_by(n as u64);
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
            metrics.api_error(&format!("EVIL.{n:04}"));
        }
        let series = error_series(&metrics);
        // The causes at zero, the first 20 codes, and `other` for the other 980.
        assert_eq!(series.len(), before + MAX_UNDOCUMENTED_CODES + 1);
        let other = series.iter().find(|(l, _)| l == "other").unwrap().1;
        assert_eq!(other, 980.0);
        assert!(series.iter().any(|(l, _)| l == "EVIL.0000"));
        assert!(!series.iter().any(|(l, _)| l == "EVIL.0020"));
        // Documented codes and causes always get their own label, however many came before.
        metrics.api_error("KOOPHONE.API.1001");
        metrics.api_error("http_503");
        metrics.api_error("iam_http_401");
        let series = error_series(&metrics);
        for label in ["KOOPHONE.API.1001", "http_503", "iam_http_401"] {
            assert!(series.iter().any(|(l, _)| l == label), "{label}");
        }
        // A code already labelled keeps its label.
        metrics.api_error("EVIL.0003");
        let evil = error_series(&metrics);
        assert_eq!(evil.iter().find(|(l, _)| l == "EVIL.0003").unwrap().1, 2.0);
    }
}
