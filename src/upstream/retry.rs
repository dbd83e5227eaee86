//! When a failed upstream request is tried again, and after how long: one policy for every
//! request, the batch query's pages and IAM's first token alike.

use std::time::Duration;

use tokio::time::Instant;

use crate::upstream::codes;
use crate::upstream::error::{ApiError, RequestFailure};

/// First retry delay; doubled for each further retry, with jitter.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`--clouddevice.max-retries`).
    pub max_retries: u32,
}

impl RetryPolicy {
    /// Whether the same request may succeed a moment later: no answer, or an answer whose code
    /// (else status) says throttling or a failure of the service ([`codes::kind`]). Business
    /// errors would fail the same way again, whatever their status.
    pub fn retries(error: &ApiError) -> bool {
        match error {
            ApiError::Request { failure, .. } => match failure {
                RequestFailure::Timeout(_) | RequestFailure::Transport(_) => true,
                RequestFailure::WrongScheme { .. } => false,
                RequestFailure::Refused { status, code, .. } => {
                    codes::kind(*status, code.as_deref()).retried()
                }
                _ => false,
            },
            ApiError::Iam { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Whether retry number `done + 1` is due, the deadline aside: the failure is transient and
    /// retries are left.
    pub fn wanted(&self, done: u32, error: &ApiError) -> bool {
        done < self.max_retries && Self::retries(error)
    }

    /// How long to wait before retry number `done + 1` of a request that failed with `error`,
    /// or `None` when it is not retried: not transient, out of retries, or the wait would pass
    /// `deadline`. The service's `Retry-After` wins over the backoff.
    pub fn delay(&self, done: u32, error: &ApiError, deadline: Instant) -> Option<Duration> {
        if !self.wanted(done, error) {
            return None;
        }
        let delay = error
            .retry_after()
            .map(|d| d.min(MAX_RETRY_AFTER))
            .unwrap_or_else(|| backoff(done));
        (Instant::now() + delay < deadline).then_some(delay)
    }
}

/// Exponential backoff with jitter: the n-th retry waits between half and all of 250 ms × 2ⁿ.
fn backoff(retry: u32) -> Duration {
    let full = BACKOFF_BASE * 2u32.saturating_pow(retry.min(10));
    full.mul_f64(0.5 + fastrand::f64() / 2.0)
}

/// `Retry-After` as delay-seconds or an HTTP date; `None` for a wait of nothing (`0`, or a date
/// that has passed), which gets the normal back-off rather than an immediate retry.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let when =
                time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
                    .ok()?;
            let seconds = (when - time::OffsetDateTime::now_utc())
                .whole_seconds()
                .max(0);
            Duration::from_secs(seconds.unsigned_abs())
        }
    };
    (!delay.is_zero()).then(|| delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::error::examples::{api, status};

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(RetryPolicy::retries(&status(None, 500)));
        assert!(RetryPolicy::retries(&status(None, 503)));
        assert!(RetryPolicy::retries(&status(Some("APIGW.0308"), 429)));
        assert!(RetryPolicy::retries(&api("APIGW.0308")));
        assert!(!RetryPolicy::retries(&status(
            Some("KOOPHONE.API.1000"),
            400
        )));
        assert!(!RetryPolicy::retries(&status(Some("APIGW.0307"), 401)));
        assert!(!RetryPolicy::retries(&status(None, 404)));
        assert!(!RetryPolicy::retries(&api("KOOPHONE.API.1001")));
        assert!(!RetryPolicy::retries(&api("KOOPHONE.API.1004")));
        // The code decides, whatever the status: the reference lists permanent business codes
        // under HTTP 500 too.
        assert!(!RetryPolicy::retries(&status(
            Some("KOOPHONE.API.1001"),
            500
        )));
        assert!(!RetryPolicy::retries(&status(
            Some("KooPhone.API.0000"),
            500
        )));
        assert!(!RetryPolicy::retries(&status(Some("KPAPI.2209"), 500)));
        assert!(RetryPolicy::retries(&status(
            Some("KOOPHONE.API.9999"),
            500
        )));
        assert!(RetryPolicy::retries(&status(
            Some("KOOPHONE.API.9999"),
            400
        )));
        assert!(RetryPolicy::retries(&api("APIG.0308")));
        let decode = ApiError::request(1, "r", RequestFailure::Decode(String::new()));
        assert!(!RetryPolicy::retries(&decode));
        let iam = |transient| ApiError::Iam {
            cause: crate::self_metrics::Cause::Iam(crate::self_metrics::IamCause::Http(503)),
            status: Some(503),
            reason: String::new(),
            transient,
        };
        assert!(RetryPolicy::retries(&iam(true)));
        assert!(!RetryPolicy::retries(&iam(false)));
    }

    #[test]
    fn retries_stop_at_the_limit_and_before_the_deadline() {
        let policy = RetryPolicy { max_retries: 2 };
        let far = Instant::now() + Duration::from_secs(60);
        let error = status(None, 503);
        assert!(policy.delay(0, &error, far).is_some());
        assert!(policy.delay(1, &error, far).is_some());
        assert_eq!(policy.delay(2, &error, far), None);
        assert_eq!(policy.delay(0, &error, Instant::now()), None);
        assert_eq!(policy.delay(0, &status(None, 404), far), None);
    }

    #[test]
    fn retry_after_wins_over_the_backoff() {
        let policy = RetryPolicy { max_retries: 2 };
        let far = Instant::now() + Duration::from_secs(600);
        let throttled = ApiError::request(
            1,
            "r",
            RequestFailure::Refused {
                status: 429,
                code: None,
                message: None,
                retry_after: Some(Duration::from_secs(7)),
            },
        );
        assert_eq!(
            policy.delay(0, &throttled, far),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        for retry in 0..4 {
            let full = BACKOFF_BASE * 2u32.pow(retry);
            for _ in 0..20 {
                let d = backoff(retry);
                assert!(d >= full / 2 && d <= full, "{retry}: {d:?}");
            }
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("3600"), Some(Duration::from_secs(60)));
        // A wait of nothing gets the normal back-off: never an immediate retry.
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("0"), None);
        let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(30);
        let text = soon
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        let parsed = parse_retry_after(&text).unwrap();
        assert!(
            parsed >= Duration::from_secs(28) && parsed <= Duration::from_secs(30),
            "{parsed:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
