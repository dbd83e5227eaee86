//! What a failed answer means, decided in one place: from its error code when it has one
//! (compared without regard to case, `KooPhone.API.1001` is `KOOPHONE.API.1001`), else from
//! its HTTP status. The reference lists business codes under HTTP 400 and 500 alike, and the
//! service's Error Codes page under HTTP 200, so a status alone does not say whether a retry
//! can help; a code does. The sources of each row are in `docs/errors.md`.

/// What kind of failure an answer is: what decides whether it is retried, whether a token is
/// renewed, and (in `cli::advice`) what the operator is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The gateway refused the credentials (`APIGW.0301`, `APIGW.0307`, or a 401 without a
    /// code): an IAM token is renewed and the request sent once more.
    Credentials,
    /// The IAM user may not query instances (`KOOPHONE.API.1001`, or a 403 without a code).
    Permission,
    /// The gateway's rate limit (`APIGW.0308`/`APIG.0308`, or a 429): retried.
    Throttled,
    /// The service failed (`KOOPHONE.API.9999`, or a 5xx without a code): retried.
    ServiceFailed,
    /// The tenant does not exist (`KOOPHONE.API.0000`).
    NoTenant,
    /// The account has not subscribed to CloudDevice (`KOOPHONE.API.1004`).
    NotSubscribed,
    /// The project id sent does not exist (`KOOPHONE.API.0004`).
    NoProject,
    /// A header the service needs is missing (`KOOPHONE.API.0001`, `0002`, `0005`).
    MissingHeader,
    /// A filter or parameter the service refuses (`KOOPHONE.API.1000`, `5002`, `5004`).
    BadFilter,
    /// No such API at this address (`APIGW.0101`, or a 404 or 405 without a code).
    NotFound,
    /// Anything else: not retried when it has a business code, else as its status says.
    Other,
}

/// The codes documented by the reference, the service's Error Codes page, the API gateway and
/// IAM, in their documented spelling, with their kind. The gateway's shared (`APIGW.`) and
/// dedicated (`APIG.`) prefixes name the same errors.
pub const DOCUMENTED: &[(&str, Kind)] = &[
    ("KOOPHONE.API.0000", Kind::NoTenant),
    ("KOOPHONE.API.0001", Kind::MissingHeader),
    ("KOOPHONE.API.0002", Kind::MissingHeader),
    ("KOOPHONE.API.0004", Kind::NoProject),
    ("KOOPHONE.API.0005", Kind::MissingHeader),
    ("KOOPHONE.API.1000", Kind::BadFilter),
    ("KOOPHONE.API.1001", Kind::Permission),
    ("KOOPHONE.API.1004", Kind::NotSubscribed),
    ("KOOPHONE.API.5002", Kind::BadFilter),
    ("KOOPHONE.API.5004", Kind::BadFilter),
    ("KOOPHONE.API.9999", Kind::ServiceFailed),
    ("KPAPI.2209", Kind::Other),
    ("APIGW.0101", Kind::NotFound),
    ("APIGW.0301", Kind::Credentials),
    ("APIGW.0303", Kind::Credentials),
    ("APIGW.0307", Kind::Credentials),
    ("APIGW.0308", Kind::Throttled),
    ("APIG.0101", Kind::NotFound),
    ("APIG.0301", Kind::Credentials),
    ("APIG.0303", Kind::Credentials),
    ("APIG.0307", Kind::Credentials),
    ("APIG.0308", Kind::Throttled),
    ("IAM.0001", Kind::Other),
    ("IAM.0002", Kind::Other),
    ("IAM.0003", Kind::Other),
    ("IAM.0004", Kind::Other),
    ("IAM.0101", Kind::Credentials),
];

/// A documented code in its documented spelling, whatever the case it came in.
pub fn documented(code: &str) -> Option<(&'static str, Kind)> {
    DOCUMENTED
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(code))
        .copied()
}

/// The code as it is counted and shown: a documented one in its documented spelling.
pub fn spelled(code: &str) -> String {
    documented(code).map_or_else(|| code.to_string(), |(known, _)| known.to_string())
}

/// What an answer with `status` and `code` is.
pub fn kind(status: u16, code: Option<&str>) -> Kind {
    if let Some((_, kind)) = code.and_then(documented) {
        return kind;
    }
    // A business code the table does not know is still a business answer: not a retry.
    if code.is_some_and(is_business) {
        return Kind::Other;
    }
    match status {
        401 => Kind::Credentials,
        403 => Kind::Permission,
        404 | 405 => Kind::NotFound,
        429 => Kind::Throttled,
        500..=599 => Kind::ServiceFailed,
        _ => Kind::Other,
    }
}

/// Whether a code is the CloudDevice service's own (not the gateway's, not IAM's).
fn is_business(code: &str) -> bool {
    let upper = code.to_ascii_uppercase();
    upper.starts_with("KOOPHONE.") || upper.starts_with("KPAPI.")
}

impl Kind {
    /// Whether the same request may succeed a moment later.
    pub fn retried(self) -> bool {
        matches!(self, Kind::Throttled | Kind::ServiceFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_decides_before_the_status() {
        assert_eq!(kind(401, Some("KOOPHONE.API.1001")), Kind::Permission);
        assert_eq!(kind(500, Some("KOOPHONE.API.1000")), Kind::BadFilter);
        assert_eq!(kind(500, Some("KOOPHONE.API.0000")), Kind::NoTenant);
        assert_eq!(kind(200, Some("KOOPHONE.API.0004")), Kind::NoProject);
        assert_eq!(kind(500, Some("KOOPHONE.API.9999")), Kind::ServiceFailed);
        assert_eq!(kind(500, Some("KPAPI.2209")), Kind::Other);
        assert_eq!(
            kind(503, Some("KOOPHONE.API.4242")),
            Kind::Other,
            "an unknown business code is not retried"
        );
        assert_eq!(
            kind(503, Some("APIGW.0999")),
            Kind::ServiceFailed,
            "an unknown gateway code goes by its status"
        );
        assert_eq!(kind(401, None), Kind::Credentials);
        assert_eq!(kind(403, None), Kind::Permission);
        assert_eq!(kind(404, None), Kind::NotFound);
        assert_eq!(kind(502, None), Kind::ServiceFailed);
        assert_eq!(kind(400, None), Kind::Other);
    }

    #[test]
    fn codes_match_in_any_case_and_both_gateway_prefixes() {
        assert_eq!(kind(401, Some("KooPhone.API.1001")), Kind::Permission);
        assert_eq!(spelled("KooPhone.API.1001"), "KOOPHONE.API.1001");
        assert_eq!(kind(429, Some("APIG.0308")), Kind::Throttled);
        assert_eq!(kind(200, Some("apig.0308")), Kind::Throttled);
        assert_eq!(kind(401, Some("APIG.0307")), Kind::Credentials);
        assert_eq!(spelled("common.00000400"), "common.00000400");
    }

    #[test]
    fn only_throttles_and_service_failures_are_retried() {
        let retried: Vec<&str> = DOCUMENTED
            .iter()
            .filter(|(_, kind)| kind.retried())
            .map(|(code, _)| *code)
            .collect();
        assert_eq!(retried, ["KOOPHONE.API.9999", "APIGW.0308", "APIG.0308"]);
    }
}
