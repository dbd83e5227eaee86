//! Process-wide logging: logfmt (default) or JSON lines on stderr, filtered by `--log.level`.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber. Called once, from `main`, before anything logs.
pub fn init(level: LogLevel, format: LogFormat) {
    // Only our own crate logs at debug; dependencies (hyper, reqwest) stay at warn so that
    // `--log.level debug` shows what the exporter does, not every socket read.
    let filter = EnvFilter::new(format!("warn,clouddevice_exporter={}", level.as_str()));
    let layer = match format {
        LogFormat::Logfmt => tracing_logfmt::builder()
            .with_span_name(false)
            .with_span_path(false)
            .layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // A second init (tests that call main code twice) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}
