//! The web configuration file, in the format of Prometheus' exporter-toolkit: TLS (with client
//! certificates), basic auth users with bcrypt hashes, and extra response headers. Parsed and
//! checked whole on every load, so a broken file never replaces a working configuration.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderName, HeaderValue};
use base64::Engine;
use rustls::ServerConfig;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::files::{read_text, FileError, MAX_CONFIG_BYTES};
use crate::web::tls::{self, TlsProblem, TlsShape};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigShape {
    tls_server_config: Option<TlsShape>,
    http_server_config: Option<HttpShape>,
    #[serde(default, deserialize_with = "crate::yaml::unique_keys_if_any")]
    basic_auth_users: Option<BTreeMap<String, String>>,
    /// Read only to refuse it with a reason (see `parse`).
    rate_limit: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpShape {
    headers: Option<BTreeMap<String, String>>,
    /// Whether HTTP/2 is offered over TLS (exporter-toolkit's default: yes).
    http2: Option<bool>,
}

/// The highest bcrypt cost accepted in `basic_auth_users`. Each step doubles the work: a check
/// takes about a second at 14 on a current core, and a cost of 31 would take days, at start-up
/// (the made-up hash for unknown users is made at the highest cost in the file) and on every
/// login that is not cached yet.
pub const MAX_BCRYPT_COST: u32 = 14;

/// The password checks of one server, kept across reloads of its web configuration: the queue
/// of bcrypt checks and the logins checked lately. Cheap to clone.
///
/// The queue bounds how many checks run at once (half the cores), and how many may wait, in all
/// and from one client address. A check past those bounds is answered 503 at once: a client
/// guessing passwords in parallel can neither take every core nor make a legitimate login from
/// elsewhere wait behind its guesses. Logins already checked skip the queue ([`Logins`]).
#[derive(Clone)]
pub struct PasswordChecks {
    queue: Arc<CheckQueue>,
    logins: Arc<Mutex<Logins>>,
}

impl Default for PasswordChecks {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordChecks {
            queue: Arc::new(CheckQueue {
                slots: Semaphore::new((cores / 2).max(1)),
                waiting: Mutex::new(Waiting::default()),
            }),
            logins: Arc::default(),
        }
    }
}

impl PasswordChecks {
    fn logins(&self) -> std::sync::MutexGuard<'_, Logins> {
        self.logins.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The most bcrypt checks queued (running, or waiting for a slot), from every client together; at
/// a cost of 12 (about a quarter of a second a check) the last of them waits some 4 s with one
/// slot.
pub const MAX_WAITING_CHECKS: usize = 16;
/// The most bcrypt checks queued from one client address.
pub const MAX_WAITING_CHECKS_PER_ADDRESS: usize = 2;

struct CheckQueue {
    slots: Semaphore,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    total: usize,
    by_address: HashMap<Option<IpAddr>, usize>,
}

/// A place in the queue of checks, given back when dropped.
struct QueuePlace {
    queue: Arc<CheckQueue>,
    peer: Option<IpAddr>,
}

impl CheckQueue {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a check from `peer`, unless the queue (or that address's share) is full.
    fn enter(self: &Arc<Self>, peer: Option<IpAddr>) -> Option<QueuePlace> {
        let mut waiting = self.waiting();
        let mine = waiting.by_address.get(&peer).copied().unwrap_or(0);
        if waiting.total >= MAX_WAITING_CHECKS || mine >= MAX_WAITING_CHECKS_PER_ADDRESS {
            return None;
        }
        waiting.total += 1;
        waiting.by_address.insert(peer, mine + 1);
        Some(QueuePlace {
            queue: self.clone(),
            peer,
        })
    }
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        let mut waiting = self.queue.waiting();
        waiting.total = waiting.total.saturating_sub(1);
        if let Some(n) = waiting.by_address.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                waiting.by_address.remove(&self.peer);
            }
        }
    }
}

/// Logins checked lately, whatever their outcome, keyed by SHA-256 of user, password and the
/// user's hash: a scraper sends the same credentials every few seconds and bcrypt is slow by
/// design, and a client repeating a wrong password costs nothing after the first time. The key
/// holds the hash, so the entries of a user a reload leaves unchanged stay valid and those of a
/// changed one match nothing. Bounded like exporter-toolkit's cache; wrong passwords have their
/// own share, so guesses never push out the logins that succeeded.
#[derive(Default)]
struct Logins {
    allowed: Bounded,
    refused: Bounded,
}

/// The most successful logins remembered.
pub const MAX_CACHED_LOGINS: usize = 100;
/// The most failed logins remembered.
pub const MAX_CACHED_FAILURES: usize = 1_000;

/// A set that forgets its oldest entry past its bound.
#[derive(Default)]
struct Bounded {
    keys: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl Bounded {
    fn insert(&mut self, key: [u8; 32], max: usize) {
        if self.keys.insert(key) {
            self.order.push_back(key);
            while self.order.len() > max {
                if let Some(old) = self.order.pop_front() {
                    self.keys.remove(&old);
                }
            }
        }
    }
}

/// What a login gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    Allowed,
    Refused,
    /// Too many password checks are waiting: try again shortly.
    Busy,
}

/// The headers exporter-toolkit lets a web config file set; the same list here.
const ALLOWED_HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read --web.config.file {path:?}: {source}")]
    Read { path: PathBuf, source: FileError },
    #[error("--web.config.file {path:?} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot read tls_server_config.{field} {path:?} of --web.config.file: {reason}")]
    File {
        field: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// A loaded web configuration.
#[derive(Clone)]
pub struct WebConfig {
    /// The TLS setup, when the file asks for TLS.
    pub tls: Option<Arc<ServerConfig>>,
    pub access: Arc<Access>,
    /// Worth saying once logging is up (a TLS key everyone can read).
    pub warnings: Vec<String>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.access.users.len())
            .finish()
    }
}

/// Who may read the endpoints, and the headers every answer carries.
#[derive(Default)]
pub struct Access {
    /// User name → bcrypt hash.
    users: HashMap<String, String>,
    /// Checked when the user does not exist, so a wrong user name costs as long as a wrong
    /// password and the timing tells nothing about which users exist.
    dummy_hash: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Access {
    pub fn requires_login(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether an `Authorization` header carries the right Basic credentials, checked under
    /// `checks`; `peer` is the client's address, which bounds its share of the queue.
    pub async fn allows(
        self: &Arc<Self>,
        checks: &PasswordChecks,
        authorization: Option<&HeaderValue>,
        peer: Option<IpAddr>,
    ) -> Login {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return Login::Refused;
        };
        let known = self.users.contains_key(&user);
        let hash = self.users.get(&user).unwrap_or(&self.dummy_hash).clone();
        let mut digest = Sha256::new();
        for part in [user.as_bytes(), password.as_bytes(), hash.as_bytes()] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        let key: [u8; 32] = digest.finalize().into();
        {
            let logins = checks.logins();
            if logins.allowed.keys.contains(&key) {
                return Login::Allowed;
            }
            if logins.refused.keys.contains(&key) {
                return Login::Refused;
            }
        }
        let Some(_place) = checks.queue.enter(peer) else {
            return Login::Busy;
        };
        let Ok(_slot) = checks.queue.slots.acquire().await else {
            return Login::Busy;
        };
        let verified = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let mut logins = checks.logins();
        if known && verified {
            logins.allowed.insert(key, MAX_CACHED_LOGINS);
            Login::Allowed
        } else {
            logins.refused.insert(key, MAX_CACHED_FAILURES);
            Login::Refused
        }
    }
}

fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    // The scheme is case-insensitive (RFC 7617): `basic` and `BASIC` are Basic too.
    let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Loads and checks a web configuration file. Relative paths in it are relative to its folder.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let text = read_text(path, MAX_CONFIG_BYTES).map_err(|source| WebConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// What a key of the web configuration holds, in its own words.
fn expecting(path: &str) -> Option<String> {
    Some(
        match path {
            "tls_server_config" => "a map of TLS settings (cert_file, key_file, ...)",
            "http_server_config" => "a map of HTTP settings (headers, http2)",
            "basic_auth_users" => "a map of user names to bcrypt hashes",
            "http_server_config.headers" => "a map of header names to values",
            _ => return None,
        }
        .into(),
    )
}

/// Checks the text of a web configuration file read from `path` (which names it in errors and
/// anchors its relative paths), and loads the files it names.
pub fn parse(text: &str, path: &Path) -> Result<WebConfig, WebConfigError> {
    let invalid = |reason: String| WebConfigError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let raw: WebConfigShape = if text.trim().is_empty() {
        WebConfigShape::default()
    } else {
        crate::yaml::from_str(text, &expecting).map_err(|e| {
            match crate::yaml::given_twice(&e, text) {
                Some((user, lines)) => invalid(format!(
                    "basic_auth_users.{user} is given twice (lines {}); keep one",
                    crate::yaml::lines(&lines)
                )),
                None => invalid(e),
            }
        })?
    };
    if raw.rate_limit.is_some() {
        return Err(invalid("rate_limit cannot be honoured: this exporter has no request rate limiter; --web.max-requests bounds concurrent scrapes instead. Remove the key".into()));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut warnings = Vec::new();
    let http2 = raw
        .http_server_config
        .as_ref()
        .and_then(|h| h.http2)
        .unwrap_or(true);
    let tls = match raw.tls_server_config {
        Some(tls) => {
            let mut config = tls::server_config(tls, dir, &mut warnings).map_err(|e| match e {
                TlsProblem::Invalid(reason) => invalid(reason),
                TlsProblem::File {
                    field,
                    path,
                    reason,
                } => WebConfigError::File {
                    field,
                    path,
                    reason,
                },
            })?;
            config.alpn_protocols = if http2 {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            } else {
                vec![b"http/1.1".to_vec()]
            };
            Some(Arc::new(config))
        }
        None => None,
    };
    let mut users = HashMap::new();
    let mut max_cost = 4; // bcrypt's lowest cost
    for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
        let parts: bcrypt::HashParts = hash.parse().map_err(|_| {
            invalid(format!("basic_auth_users.{user} is not a bcrypt hash; make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"))
        })?;
        let cost = parts.get_cost();
        if cost > MAX_BCRYPT_COST {
            return Err(invalid(format!(
                "basic_auth_users.{user} has bcrypt cost {cost}, above the highest accepted, {MAX_BCRYPT_COST}: each login would take about {} s of CPU; make a hash of cost 10 to 12 with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`",
                1u64 << cost.saturating_sub(14).min(40)
            )));
        }
        max_cost = max_cost.max(cost);
        users.insert(user, hash);
    }
    let dummy_hash = if users.is_empty() {
        String::new()
    } else {
        bcrypt::hash("clouddevice_exporter: no such user", max_cost)
            .map_err(|e| invalid(format!("cannot prepare the password check: {e}")))?
    };
    let mut headers = Vec::new();
    for (name, value) in raw
        .http_server_config
        .and_then(|h| h.headers)
        .unwrap_or_default()
    {
        if !ALLOWED_HEADERS
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&name))
        {
            return Err(invalid(format!(
                "http_server_config.headers.{name} cannot be set; allowed: {}",
                ALLOWED_HEADERS.join(", ")
            )));
        }
        let value = HeaderValue::from_str(&value).map_err(|_| {
            invalid(format!(
                "http_server_config.headers.{name} is not a valid header value"
            ))
        })?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("{name} is not a valid header name")))?;
        headers.push((name, value));
    }
    Ok(WebConfig {
        tls,
        access: Arc::new(Access {
            users,
            dummy_hash,
            headers,
        }),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::files::scratch::Scratch as Dir;

    fn error(dir: &Dir, yaml: &str) -> String {
        let path = dir.write("web.yml", yaml);
        load(&path).map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = Dir::new();
        let e = error(&dir, "tls_server_config:\n  cert_file: a\n  key_fiel: b\n");
        assert!(e.contains("key_fiel"), "{e}");
        let e = error(&dir, "basic_auth_user:\n  a: b\n");
        assert!(e.contains("basic_auth_user"), "{e}");
    }

    #[test]
    fn missing_certificate_files_are_named() {
        let dir = Dir::new();
        let e = error(
            &dir,
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
        );
        assert!(e.contains("cert_file") && e.contains("nope.crt"), "{e}");
    }

    #[test]
    fn a_user_given_twice_is_refused_naming_both_lines() {
        let dir = Dir::new();
        let (a, b) = (
            bcrypt::hash("one", 4).unwrap(),
            bcrypt::hash("two", 4).unwrap(),
        );
        let e = error(
            &dir,
            &format!("basic_auth_users:\n  alice: {a}\n  bob: {a}\n  alice: {b}\n"),
        );
        assert!(
            e.contains("basic_auth_users.alice is given twice (lines 2 and 4)"),
            "{e}"
        );
    }

    #[test]
    fn bad_hashes_and_headers_are_refused() {
        let dir = Dir::new();
        let e = error(&dir, "basic_auth_users:\n  alice: plaintext\n");
        assert!(
            e.contains("basic_auth_users.alice") && e.contains("bcrypt"),
            "{e}"
        );
        let e = error(
            &dir,
            "http_server_config:\n  headers:\n    Content-Type: x\n",
        );
        assert!(
            e.contains("Content-Type") && e.contains("Strict-Transport-Security"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_file_means_no_tls_and_no_login() {
        let dir = Dir::new();
        let config = load(&dir.write("web.yml", "")).unwrap();
        assert!(config.tls.is_none() && !config.access.requires_login());
    }

    #[test]
    fn a_bcrypt_cost_above_the_maximum_is_refused_naming_the_user() {
        let dir = Dir::new();
        // A well-formed hash whose cost field says 31: load must refuse it before any bcrypt
        // work, or start-up would hang for days making the hash for unknown users.
        let hash = bcrypt::hash("pw", 4).unwrap().replacen("$04$", "$31$", 1);
        let started = std::time::Instant::now();
        let e = error(&dir, &format!("basic_auth_users:\n  carol: {hash}\n"));
        assert!(
            e.contains("basic_auth_users.carol") && e.contains("cost 31"),
            "{e}"
        );
        assert!(
            e.contains(&format!("highest accepted, {MAX_BCRYPT_COST}")),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        let at_max =
            bcrypt::hash("pw", 4)
                .unwrap()
                .replacen("$04$", &format!("${MAX_BCRYPT_COST}$"), 1);
        let yaml = format!("basic_auth_users:\n  carol: {at_max}\n");
        assert!(load(&dir.write("web.yml", &yaml)).is_ok());
    }

    /// A self-signed certificate and its key, as PEM files in `dir`.
    fn cert_files(dir: &Dir) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        dir.write("server.crt", &cert.pem());
        dir.write("server.key", &key.serialize_pem());
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn every_exporter_toolkit_key_is_read() {
        let dir = Dir::new();
        cert_files(&dir);
        let yaml = "tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: server.crt
  client_allowed_sans: [prometheus.example, 10.0.0.1]
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: false
  curve_preferences: [X25519, CurveP256, CurveP384]
http_server_config:
  http2: false
  headers:
    X-Content-Type-Options: nosniff
basic_auth_users: {}
";
        let config = load(&dir.write("web.yml", yaml)).unwrap();
        let tls = config.tls.unwrap();
        assert_eq!(tls.alpn_protocols, [b"http/1.1".to_vec()], "http2: false");
        assert!(
            !tls.ignore_client_order,
            "prefer_server_cipher_suites: false"
        );
        let provider = tls.crypto_provider();
        let suites: Vec<String> = provider
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        // Every TLS 1.3 suite, as in Go, then the TLS 1.2 ones listed, in order.
        assert_eq!(
            suites[3..],
            [
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
            ]
        );
        let groups: Vec<String> = provider
            .kx_groups
            .iter()
            .map(|g| format!("{:?}", g.name()))
            .collect();
        assert_eq!(groups, ["X25519", "secp256r1", "secp384r1"]);
    }

    #[test]
    fn certificates_can_be_given_inline() {
        let dir = Dir::new();
        let (cert, key) = cert_files(&dir);
        let indent = |pem: &str| pem.replace('\n', "\n    ");
        let yaml = format!(
            "tls_server_config:\n  cert: |\n    {}\n  key: |\n    {}\n",
            indent(&cert),
            indent(&key)
        );
        let config = load(&dir.write("web.yml", &yaml)).unwrap();
        assert!(config.tls.is_some());
        assert!(!format!("{config:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn keys_that_cannot_be_honoured_are_refused_with_the_reason() {
        let dir = Dir::new();
        cert_files(&dir);
        let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
        for (extra, needles) in [
            (
                "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
                &[
                    "cipher_suites",
                    "TLS_RSA_WITH_AES_128_CBC_SHA",
                    "cannot be honoured",
                ][..],
            ),
            (
                "  cipher_suites: [AES-256]\n",
                &["cipher_suites", "AES-256", "not a Go cipher suite name"],
            ),
            (
                "  curve_preferences: [CurveP521]\n",
                &["curve_preferences", "CurveP521", "P-521"],
            ),
            (
                "  min_version: TLS11\n",
                &["min_version", "TLS11", "1.2 and 1.3 only"],
            ),
            (
                "  client_allowed_sans: [x]\n",
                &["client_allowed_sans", "RequireAndVerifyClientCert"],
            ),
            (
                "  cert: x\n",
                &["tls_server_config.cert", "cert_file", "keep one"],
            ),
            (
                "rate_limit:\n  interval: 1s\n  burst: 5\n",
                &["rate_limit", "cannot be honoured", "--web.max-requests"],
            ),
        ] {
            let e = error(&dir, &format!("{tls}{extra}"));
            for needle in needles {
                assert!(e.contains(needle), "{needle:?} not in {e}");
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_tls_key_everyone_can_read_gets_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = Dir::new();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        dir.write("server.crt", &cert.pem());
        let key_path = dir.write("server.key", &key.serialize_pem());
        let yaml = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
        let web = dir.write("web.yml", yaml);
        let mode = |m| std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(m));
        mode(0o644).unwrap();
        let warnings = load(&web).unwrap().warnings;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("key_file") && warnings[0].contains("chmod 600"));
        // Shared with a group (Debian's ssl-cert) is usual, and not warned about.
        mode(0o640).unwrap();
        assert!(load(&web).unwrap().warnings.is_empty());
    }

    #[test]
    fn the_basic_scheme_is_case_insensitive() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:pw");
        for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
            let value = HeaderValue::from_str(&format!("{scheme} {encoded}")).unwrap();
            assert_eq!(
                basic_credentials(&value),
                Some(("alice".into(), "pw".into())),
                "{scheme}"
            );
        }
        for other in ["Bearer x", "Basicx YWxpY2U6cHc=", "Basic"] {
            assert_eq!(basic_credentials(&HeaderValue::from_static(other)), None);
        }
    }

    #[test]
    fn the_login_cache_forgets_its_oldest_past_its_bound() {
        let mut set = Bounded::default();
        for n in 0..5u8 {
            set.insert([n; 32], 3);
        }
        assert_eq!(set.keys.len(), 3);
        assert!(!set.keys.contains(&[1; 32]) && set.keys.contains(&[4; 32]));
    }

    #[tokio::test]
    async fn basic_auth_checks_user_and_password() {
        let dir = Dir::new();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let yaml = format!("basic_auth_users:\n  alice: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n");
        let config = load(&dir.write("web.yml", &yaml)).unwrap();
        let header = |user: &str, pass: &str| {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
        };
        let access = config.access;
        let checks = PasswordChecks::default();
        let allows = |h: Option<HeaderValue>| {
            let (access, checks) = (access.clone(), checks.clone());
            async move { access.allows(&checks, h.as_ref(), None).await }
        };
        assert!(access.requires_login());
        assert_eq!(
            allows(Some(header("alice", "s3cret"))).await,
            Login::Allowed
        );
        assert_eq!(
            allows(Some(header("alice", "s3cret"))).await,
            Login::Allowed,
            "and again, from the cache"
        );
        assert_eq!(allows(Some(header("alice", "wrong"))).await, Login::Refused);
        assert_eq!(
            allows(Some(header("alice", "wrong"))).await,
            Login::Refused,
            "and again, from the cache"
        );
        assert_eq!(allows(Some(header("bob", "s3cret"))).await, Login::Refused);
        assert_eq!(allows(None).await, Login::Refused);
        assert_eq!(
            allows(Some(HeaderValue::from_static("Bearer x"))).await,
            Login::Refused
        );
        assert_eq!(access.headers.len(), 1);
    }
}
