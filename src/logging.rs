//! Process-wide logging: logfmt (default) or JSON lines on stderr, filtered by `--log.level`; and
//! a throttle for warnings that could otherwise flood it.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use clap::ValueEnum;

/// How much is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// How each line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

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

/// Lets a warning through at most once per period, counting the ones held back, so that a
/// flood (a client hammering a full server, a listener out of file descriptors) is one line a
/// minute, not one per request.
pub struct Throttle {
    period: std::time::Duration,
    /// When a line last went out, and how many were held back since.
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl Throttle {
    pub const fn new(period: std::time::Duration) -> Self {
        Throttle {
            period,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when a line may go out now, with `n` lines held back before it; else `None`.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(std::time::Instant::now())
    }

    fn allow_at(&self, now: std::time::Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.0 {
            Some(last) if now.duration_since(last) < self.period => {
                state.1 += 1;
                None
            }
            _ => {
                let held_back = state.1;
                *state = (Some(now), 0);
                Some(held_back)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_throttle_lets_one_line_through_per_period_and_counts_the_rest() {
        let throttle = Throttle::new(Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(throttle.allow_at(start), Some(0));
        for s in 1..=5 {
            assert_eq!(throttle.allow_at(start + Duration::from_secs(s)), None);
        }
        assert_eq!(throttle.allow_at(start + Duration::from_secs(60)), Some(5));
        assert_eq!(throttle.allow_at(start + Duration::from_secs(61)), None);
    }
}
