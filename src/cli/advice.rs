//! What the operator can change when reading the fleet fails, naming the flags: the one place
//! that turns the facts of an [`ApiError`] into advice. The layers below say what happened;
//! only this layer knows the flags (and the accounts file's keys, which are the flags' names
//! without their prefix).

use crate::self_metrics::{Cause, IamCause};
use crate::upstream::codes::{self, Kind};
use crate::upstream::error::{ApiError, Progress, RequestFailure};

/// The error as the operator reads it: what happened, then what to do about it.
pub fn explain(error: &ApiError) -> String {
    match advice(error) {
        Some(advice) => format!("{error}; {advice}"),
        None => error.to_string(),
    }
}

fn advice(error: &ApiError) -> Option<String> {
    let advice = match error {
        ApiError::Request { failure, url, .. } => return request_advice(failure, url),
        ApiError::Iam {
            status: Some(400 | 401 | 403),
            ..
        } => {
            "check --iam.username, --iam.domain, --iam.project(-id) and the password; a changed password is tried at once after a reload of the accounts file or a restart"
        }
        ApiError::Iam {
            cause: Cause::Iam(IamCause::Redirect),
            ..
        } => {
            "set --iam.endpoint to the address IAM answers on"
        }
        ApiError::Iam { .. } | ApiError::ListChanged { .. } => return None,
        ApiError::TooManyPages { .. } => "raise --clouddevice.max-pages or --clouddevice.page-size",
        ApiError::TooManyInstances { .. } => {
            "at about 1 kB of memory each, raise --clouddevice.max-instances only as far as the exporter's memory allows"
        }
        ApiError::Deadline { progress } => return Some(deadline_advice(progress)),
        ApiError::NoProject { .. } => {
            "set --clouddevice.region to the region of the account's phones (the project of that name is looked up), or --clouddevice.project-id to the project's id (region and project_id in the accounts file)"
        }
    };
    Some(advice.to_string())
}

fn request_advice(failure: &RequestFailure, url: &str) -> Option<String> {
    let advice = match failure {
        RequestFailure::Timeout(_) => {
            "raise --clouddevice.timeout or lower --clouddevice.page-size"
        }
        RequestFailure::Transport(_) => {
            "check --clouddevice.endpoint, DNS, proxy settings and the network"
        }
        RequestFailure::Decode(_) => "the service sent something other than the documented JSON",
        RequestFailure::TooLarge { .. } => {
            "raise --clouddevice.max-response-bytes or lower --clouddevice.page-size"
        }
        RequestFailure::Redirect { .. } => {
            "set --clouddevice.endpoint to the address the API answers on"
        }
        RequestFailure::WrongScheme { https: true } => {
            "the endpoint speaks plain HTTP there: write http:// in --clouddevice.endpoint, or give the port that speaks TLS"
        }
        RequestFailure::WrongScheme { https: false } => {
            "if that port speaks TLS, write https:// in --clouddevice.endpoint"
        }
        RequestFailure::Refused { status, code, .. } => {
            let kind = codes::kind(*status, code.as_deref());
            if kind == Kind::NotFound && !url.is_empty() {
                return Some(format!(
                    "the API is not at {url}: set --clouddevice.endpoint to the service's base URL; the exporter adds the reference's path /v1/instances/batch-query"
                ));
            }
            return refusal_advice(kind, code.as_deref()).map(str::to_string);
        }
    };
    Some(advice.to_string())
}

/// What an operator can do about an answer that names an error, by its kind (its code first,
/// else its status: [`codes::kind`]).
fn refusal_advice(kind: Kind, code: Option<&str>) -> Option<&'static str> {
    let code = code.map(codes::spelled);
    Some(match (kind, code.as_deref()) {
        (Kind::Credentials, _) => {
            "the credentials are wrong or expired: check the token, password or key pair"
        }
        (Kind::Permission, _) => "grant the IAM user koophone:cloudphoneResource:queryInstanceBatch",
        (Kind::Throttled, _) => {
            "the API is throttling: set --clouddevice.requests-per-second under the gateway's limit for this account, or read the list less often (--collection.interval)"
        }
        (Kind::ServiceFailed, _) => "the service failed: the next scrape tries again",
        (Kind::NoTenant, _) => "the tenant does not exist: check the account",
        (Kind::NotSubscribed, _) => "the account has not subscribed to CloudDevice: subscribe to it in the console",
        (Kind::NoProject, _) => {
            "the project id sent does not exist: check --clouddevice.project-id (project_id in the accounts file) against the console's My Credentials page"
        }
        (Kind::MissingHeader, Some("KOOPHONE.API.0002")) => {
            "the service did not see the X-Request-Id header the exporter sends: a proxy between them may drop it"
        }
        (Kind::MissingHeader, _) => {
            "the service missed a request header it needs: a proxy between them may drop it; report it with the request id"
        }
        (Kind::BadFilter, _) => "check the --clouddevice.* filter flags",
        (Kind::NotFound, _) => {
            "no such API there: set --clouddevice.endpoint to the service's base URL, without the path /v1/instances/batch-query"
        }
        (Kind::Other, Some("KPAPI.2209")) => "the service has no device to assign: ask Huawei's support",
        (Kind::Other, _) => return None,
    })
}

/// What gives a read its deadline cut short more time, or makes it need less: the scrape's
/// time or the schedule's, and the lever the measured pace points at.
fn deadline_advice(progress: &Progress) -> String {
    let lever = match (progress.throttled, progress.requests_per_second, progress.rate_bound()) {
        (true, None, _) => "set --clouddevice.requests-per-second to the gateway's limit for this account (it throttled the read)",
        (true, Some(_), _) => "lower --clouddevice.requests-per-second (the gateway throttled the read)",
        (false, _, true) => "raise --clouddevice.requests-per-second if the gateway allows it",
        (false, _, false) => "raise --clouddevice.concurrency",
    };
    match progress.scheduled {
        true => format!(
            "give each collection more time (--collection.timeout, and --collection.interval with it) or {lever}"
        ),
        false => format!(
            "give the scrape more time (Prometheus' scrape_timeout, or --scrape.timeout when it sends none), {lever}, or read the list on a schedule with --collection.interval"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::upstream::error::examples::{refused, status};

    #[test]
    fn each_failure_gets_what_to_change() {
        let text = explain(&status(Some("APIGW.0307"), 401));
        assert_eq!(
            text,
            "page 1 (request r) failed with HTTP 401 and API error APIGW.0307; the credentials are wrong or expired: check the token, password or key pair"
        );
        let text = explain(&refused(
            200,
            Some("KOOPHONE.API.1001"),
            Some("Insufficient instance permissions."),
        ));
        assert!(text.ends_with("Insufficient instance permissions.; grant the IAM user koophone:cloudphoneResource:queryInstanceBatch"), "{text}");
        let timeout = ApiError::request(2, "r", RequestFailure::Timeout(Duration::from_secs(3)));
        assert_eq!(
            explain(&timeout),
            "page 2 (request r) timed out after 3s; raise --clouddevice.timeout or lower --clouddevice.page-size"
        );
        let large = ApiError::request(2, "r", RequestFailure::TooLarge { limit: 10 });
        assert!(explain(&large).ends_with("sent more than 10 bytes; raise --clouddevice.max-response-bytes or lower --clouddevice.page-size"));
        let iam = |status, cause| ApiError::Iam {
            cause,
            status,
            reason: "IAM answered".into(),
            transient: false,
        };
        let wrong = iam(Some(401), Cause::Code("IAM.0101".into()));
        assert!(explain(&wrong).contains(
            "; check --iam.username, --iam.domain, --iam.project(-id) and the password; a changed password is tried at once"
        ));
        let moved = iam(None, Cause::Iam(IamCause::Redirect));
        assert!(explain(&moved).ends_with("; set --iam.endpoint to the address IAM answers on"));
        let many = ApiError::TooManyInstances {
            max: 200,
            seen: Some(250),
        };
        assert_eq!(
            explain(&many),
            "the list holds more than 200 instances (250 by total_count); at about 1 kB of memory each, raise --clouddevice.max-instances only as far as the exporter's memory allows"
        );
        // Nothing to change: the next scrape reads the list again.
        let changed = ApiError::ListChanged { reason: "x".into() };
        assert_eq!(explain(&changed), changed.to_string());
    }

    #[test]
    fn a_deadline_points_at_the_lever_the_pace_shows() {
        let progress = Progress {
            elapsed: Duration::from_secs(10),
            pages_read: 97,
            pages: Some(1_000),
            page_time: Some(Duration::from_millis(300)),
            concurrency: 3,
            ..Progress::default()
        };
        let deadline = |progress: &Progress| {
            explain(&ApiError::Deadline {
                progress: progress.clone(),
            })
        };
        assert_eq!(
            deadline(&progress),
            "the deadline passed after 10.0 s with 97 of 1000 pages read (0.30 s a page, 3 at once); \
             the whole list needs about 100 s at that pace; give the scrape more time (Prometheus' \
             scrape_timeout, or --scrape.timeout when it sends none), raise --clouddevice.concurrency, \
             or read the list on a schedule with --collection.interval"
        );
        let limited = Progress {
            requests_per_second: Some(5.0),
            ..progress.clone()
        };
        assert!(deadline(&limited)
            .contains("raise --clouddevice.requests-per-second if the gateway allows it"));
        let throttled = Progress {
            throttled: true,
            scheduled: true,
            ..progress
        };
        assert!(deadline(&throttled).ends_with("give each collection more time (--collection.timeout, and --collection.interval with it) or set --clouddevice.requests-per-second to the gateway's limit for this account (it throttled the read)"));
    }
}
