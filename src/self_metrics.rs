//! The exporter's own metrics, which live as long as the process: requests to the APIs and their
//! failures, latency, the IAM token's expiry, build information and the process collector.
//! Counted by the layers that see the events; gathered into each scrape's body.

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The exporter's own counters and constants, which live as long as the process.
pub struct ExporterMetrics {
    registry: Registry,
    api_requests: IntCounterVec,
    api_errors: IntCounterVec,
    token_expiry: GaugeVec,
    request_duration: HistogramVec,
    invalid_text: IntCounter,
}

impl ExporterMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
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
        // Known causes start at zero, so rates and alerts see a series before the first error.
        for cause in [
            "timeout",
            "transport",
            "throttled",
            "decode",
            "list_changed",
            "too_large",
            "redirect",
        ] {
            api_errors.with_label_values(&[cause]);
        }
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(api_requests.clone()))?;
        registry.register(Box::new(token_expiry.clone()))?;
        registry.register(Box::new(api_errors.clone()))?;
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(invalid_text.clone()))?;
        register_process_collector(&registry)?;
        Ok(ExporterMetrics {
            registry,
            api_requests,
            api_errors,
            token_expiry,
            request_duration,
            invalid_text,
        })
    }

    pub fn api_request(&self, api: &str, code: &str) {
        self.api_requests.with_label_values(&[api, code]).inc();
    }

    pub fn api_error(&self, error_code: &str) {
        self.api_errors.with_label_values(&[error_code]).inc();
    }

    pub fn replaced_text(&self, n: usize) {
        self.invalid_text.inc_by(n as u64);
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
