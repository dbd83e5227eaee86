//! How the API writes times, in its answers and in the query's filters alike.

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{PrimitiveDateTime, UtcOffset};

/// How the API writes times: `2024-05-24 17:34:58` (results and query filters alike).
pub const API_TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// Parses the API's times, written in `zone`, into Unix seconds; RFC 3339 is accepted too (with
/// its own offset).
pub fn parse_time(s: &str, zone: UtcOffset) -> Option<i64> {
    let s = s.trim();
    if let Some(t) = api_time(s).or_else(|| PrimitiveDateTime::parse(s, API_TIME_FORMAT).ok()) {
        return Some(t.assume_offset(zone).unix_timestamp());
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// [`API_TIME_FORMAT`] read by position: two times per instance made the generic format parser
/// a visible part of a 100,000-instance scrape. The `time` crate still checks the date and time.
fn api_time(s: &str) -> Option<PrimitiveDateTime> {
    let b = s.as_bytes();
    if b.len() != 19 || [b[4], b[7], b[10], b[13], b[16]] != *b"-- ::" {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u16, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u16::from(c - b'0'))
        })
    };
    let small = |from, to| number(from, to).and_then(|n| u8::try_from(n).ok());
    let month = time::Month::try_from(small(5, 7)?).ok()?;
    let date = time::Date::from_calendar_date(i32::from(number(0, 4)?), month, small(8, 10)?);
    let time = time::Time::from_hms(small(11, 13)?, small(14, 16)?, small(17, 19)?);
    Some(PrimitiveDateTime::new(date.ok()?, time.ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_time_path_agrees_with_the_format_parser() {
        for s in [
            "2024-05-24 17:34:58",
            "1970-01-01 00:00:00",
            "2024-02-29 23:59:59",
            "2023-02-29 10:00:00",
            "2024-13-01 10:00:00",
            "2024-05-24 24:00:00",
            "2024-05-24 17:34:5x",
            "2024-05-24T17:34:58",
            "+024-05-24 17:34:58",
            "2024-05-24 17:34:580",
        ] {
            assert_eq!(
                api_time(s),
                PrimitiveDateTime::parse(s, API_TIME_FORMAT).ok(),
                "{s}"
            );
        }
    }

    #[test]
    fn times_parse_in_the_given_zone_and_garbage_is_absent() {
        let utc = UtcOffset::UTC;
        let beijing = time::macros::offset!(+8);
        assert_eq!(parse_time("1970-01-01 00:00:00", utc), Some(0));
        assert_eq!(parse_time("1970-01-01 08:00:00", beijing), Some(0));
        // RFC 3339 says its own offset, whatever the zone.
        assert_eq!(
            parse_time("2024-05-24T17:34:58+08:00", utc),
            Some(1_716_543_298)
        );
        assert_eq!(
            parse_time("2024-05-24T17:34:58+08:00", beijing),
            Some(1_716_543_298)
        );
        assert_eq!(parse_time("yesterday", utc), None);
        assert_eq!(parse_time("2024-13-45 99:00:00", utc), None);
    }
}
