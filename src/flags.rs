//! Flag pieces both command lines share, the exporter's and the simulator's: the logging flags,
//! durations and time zones.

use std::time::Duration;

use clap::Args;

use crate::logging::{LogFormat, LogLevel};

/// `--log.level` and `--log.format`.
#[derive(Debug, Clone, Copy, Args)]
pub struct LogArgs {
    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", default_value = "info", value_name = "LEVEL")]
    pub level: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", default_value = "logfmt", value_name = "FORMAT")]
    pub format: LogFormat,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration such as 10s, 1500ms or 1m"))?;
    Ok(d)
}

pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be longer than 0s".into()),
        d => Ok(d),
    }
}

/// `UTC` (or `Z`), or a fixed offset `+HH:MM` / `-HH:MM`.
pub fn parse_time_zone(s: &str) -> Result<time::UtcOffset, String> {
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Ok(time::UtcOffset::UTC);
    }
    let format = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    // Zones on Earth are within 14 hours of UTC.
    time::UtcOffset::parse(s, format)
        .ok()
        .filter(|o| o.whole_minutes().abs() <= 14 * 60)
        .ok_or_else(|| "write UTC or an offset from UTC such as +08:00 or -05:30".to_string())
}
