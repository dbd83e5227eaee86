//! The simulator's side of authentication: an IAM token endpoint that issues tokens with a
//! configurable lifetime, and the gateway's checks on each API request (static or issued token,
//! expiry and revocation, AK/SK signature and its 15-minute clock window).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{gateway, lock, SimState, Tenants};

/// The IAM user the simulator's token endpoint accepts.
#[derive(Clone)]
pub struct SimIamUser {
    pub name: String,
    pub domain: String,
    pub password: String,
}

/// How far a signature's X-Sdk-Date may be from the gateway's clock.
const CLOCK_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Tokens issued by the IAM endpoint, with their expiry; revoked ones expire at once.
#[derive(Default)]
pub(super) struct Issued {
    tokens: HashMap<String, SystemTime>,
}

impl Issued {
    pub(super) fn revoke_all(&mut self) {
        for expiry in self.tokens.values_mut() {
            *expiry = SystemTime::UNIX_EPOCH;
        }
    }

    pub(super) fn holds(&self, token: &str) -> bool {
        self.tokens.contains_key(token)
    }

    pub(super) fn tokens(&self) -> Vec<String> {
        self.tokens.keys().cloned().collect()
    }
}

fn iam_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        json!({"error": {"code": code, "message": message, "title": status.canonical_reason()}});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn time_text(t: SystemTime) -> String {
    OffsetDateTime::from(t).format(&Rfc3339).unwrap_or_default()
}

/// `POST /v3/auth/tokens`: password login for a project-scoped token, from the account whose
/// IAM user it names.
pub(super) async fn issue_token(State(tenants): State<Arc<Tenants>>, body: Bytes) -> Response {
    let named = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| {
            let user = &body["auth"]["identity"]["password"]["user"];
            let state =
                tenants.iam_owner(user["name"].as_str()?, user["domain"]["name"].as_str()?)?;
            Some(state.clone())
        });
    match named.or_else(|| tenants.only().cloned()) {
        Some(state) => issue_token_of(&state, &body),
        None => iam_error(
            StatusCode::UNAUTHORIZED,
            "IAM.0101",
            "The username or password is wrong.",
        ),
    }
}

fn issue_token_of(state: &SimState, body: &Bytes) -> Response {
    state.iam_requests.fetch_add(1, Ordering::Relaxed);
    if state.iam_down.load(Ordering::Relaxed) {
        return iam_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "IAM.0002",
            "Service unavailable.",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "IAM.0001",
            "The request body is not JSON.",
        );
    };
    let auth = &body["auth"];
    let user = &auth["identity"]["password"]["user"];
    let (Some(name), Some(password), Some(domain)) = (
        user["name"].as_str(),
        user["password"].as_str(),
        user["domain"]["name"].as_str(),
    ) else {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "IAM.0003",
            "The user, password or domain is missing.",
        );
    };
    let project = &auth["scope"]["project"];
    if project["name"].as_str().is_none() && project["id"].as_str().is_none() {
        return iam_error(
            StatusCode::BAD_REQUEST,
            "IAM.0004",
            "A project-scoped token needs scope.project.",
        );
    }
    if let Some(expected) = &state.config.iam_user {
        // IAM's login policy: too many failed logins lock the user, right password or not.
        let now = state.config.clock.now();
        let lockout = state.config.iam_lockout;
        let mut failures = lock(&state.iam_failures);
        failures.retain(|t| now.duration_since(*t).unwrap_or_default() < lockout.window);
        if failures.len() >= lockout.failures as usize {
            state.iam_locked_answers.fetch_add(1, Ordering::Relaxed);
            return iam_error(
                StatusCode::UNAUTHORIZED,
                "IAM.0102",
                "The user is locked after too many failed logins.",
            );
        }
        drop(failures);
        let changed = lock(&state.iam_password).clone();
        let expected_password = changed.as_deref().unwrap_or(&expected.password);
        let right =
            name == expected.name && domain == expected.domain && password == expected_password;
        if !right {
            lock(&state.iam_failures).push(now);
            return iam_error(
                StatusCode::UNAUTHORIZED,
                "IAM.0101",
                "The username or password is wrong.",
            );
        }
    }
    let token: String = std::iter::once("MIIsim".to_string())
        .chain(std::iter::repeat_with(|| fastrand::alphanumeric().to_string()).take(48))
        .collect();
    let issued_at = state.config.clock.now();
    let expires_at = issued_at + state.config.token_lifetime;
    lock(&state.issued).tokens.insert(token.clone(), expires_at);
    let body = json!({"token": {
        "expires_at": time_text(expires_at),
        "issued_at": time_text(issued_at),
        "methods": ["password"],
        "project": project,
        "user": {"name": name, "domain": {"name": domain}},
    }});
    (
        StatusCode::CREATED,
        [
            ("content-type", "application/json"),
            ("x-subject-token", token.as_str()),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The gateway's check of a batch-query request's credentials; `Err` is the code of the 401.
pub(super) fn check(state: &SimState, headers: &HeaderMap, uri: &Uri) -> Result<(), &'static str> {
    if let Some(authorization) = headers.get("authorization") {
        return check_signature(state, authorization.to_str().unwrap_or(""), headers, uri);
    }
    let token = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if token.is_empty() {
        return Err("APIGW.0301");
    }
    if let Some(expiry) = lock(&state.issued).tokens.get(token) {
        return if state.config.clock.now() < *expiry {
            Ok(())
        } else {
            Err("APIGW.0307")
        };
    }
    match &state.config.token {
        Some(expected) if token != expected => Err("APIGW.0301"),
        _ => Ok(()),
    }
}

fn check_signature(
    state: &SimState,
    authorization: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(), &'static str> {
    let refuse = || "APIGW.0301";
    let (access_key, signed, signature) = parse_authorization(authorization).ok_or_else(refuse)?;
    lock(&state.signatures).push(signature.to_string());
    let (expected_ak, secret_key) = state.config.access_key.as_ref().ok_or_else(refuse)?;
    if access_key != expected_ak || !signed.contains(&"x-sdk-date") {
        return Err(refuse());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Temporary keys: the token must come with the request, and be signed.
    if let Some(token) = &state.config.security_token {
        if header("x-security-token") != Some(token.as_str())
            || !signed.contains(&"x-security-token")
        {
            return Err(refuse());
        }
    }
    let date_text = header("x-sdk-date").ok_or_else(refuse)?;
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let date = time::PrimitiveDateTime::parse(date_text, format)
        .map_err(|_| refuse())?
        .assume_utc();
    let skew = (OffsetDateTime::now_utc() - date).unsigned_abs();
    if skew > CLOCK_WINDOW {
        return Err("APIGW.0303");
    }
    let mut pairs = Vec::new();
    for name in &signed {
        pairs.push((
            name.to_string(),
            header(name).ok_or_else(refuse)?.to_string(),
        ));
    }
    let (canonical, _) = gateway::canonical_request("GET", uri.path(), uri.query(), &pairs);
    lock(&state.canonical_requests).push(canonical.clone());
    if gateway::signature(secret_key, date_text, &canonical) == signature {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// The access key a signed request names.
pub(super) fn access_key_of(authorization: &str) -> Option<&str> {
    parse_authorization(authorization).map(|(access_key, ..)| access_key)
}

/// The fields of `SDK-HMAC-SHA256 Access=…, SignedHeaders=a;b, Signature=…`.
fn parse_authorization(value: &str) -> Option<(&str, Vec<&str>, &str)> {
    let fields = value.strip_prefix("SDK-HMAC-SHA256 ")?;
    let (mut access, mut signed, mut signature) = (None, None, None);
    for field in fields.split(", ") {
        match field.split_once('=')? {
            ("Access", v) => access = Some(v),
            ("SignedHeaders", v) => signed = Some(v.split(';').collect()),
            ("Signature", v) => signature = Some(v),
            _ => return None,
        }
    }
    Some((access?, signed?, signature?))
}
