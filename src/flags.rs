//! Flag pieces both command lines share, the exporter's and the simulator's: the logging flags,
//! durations and time zones.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
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

/// A flag's parser for a whole number in `range`, whose error says so in words (clap's own
/// would say "invalid digit found in string").
pub fn whole_number<T>(
    range: RangeInclusive<T>,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    move |s: &str| match s.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "write a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

/// A flag's parser for a number, whole or not, that is not negative.
pub fn number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err("write a number such as 5 or 0.5".into()),
    }
}

/// A flag's parser for a whole number that a later check holds to its range, or that has none.
pub fn whole<T: FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| "write a whole number, such as 4".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_or_refused_in_words() {
        assert_eq!(whole::<u32>(" 4 "), Ok(4));
        assert_eq!(whole::<u64>("18446744073709551615"), Ok(u64::MAX));
        for bad in ["many", "-1", "1.5", ""] {
            assert_eq!(
                whole::<u32>(bad),
                Err("write a whole number, such as 4".into())
            );
        }
        let status = whole_number(100..=599u16);
        assert_eq!(status("599"), Ok(599));
        for bad in ["42", "600", "x"] {
            assert_eq!(
                status(bad),
                Err("write a whole number from 100 to 599".into())
            );
        }
        assert_eq!(number("0.5"), Ok(0.5));
        for bad in ["fast", "-1", "inf", "NaN"] {
            assert_eq!(number(bad), Err("write a number such as 5 or 0.5".into()));
        }
    }
}
