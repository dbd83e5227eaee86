//! The secrets the exporter holds (every account's token, password, secret key, security token,
//! and the IAM tokens issued to them), scrubbed from every text an upstream sends before that text
//! reaches a log line, a label or a page: a hostile or buggy upstream, or a proxy in between that
//! sees every account's requests, must not get a credential republished.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use crate::upstream::credentials::Credentials;
use crate::upstream::error::clip;

/// What stands in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// Forms of IAM tokens remembered besides the configured secrets: each account's current token
/// and those before it, which an upstream may still echo, up to this many in all.
const ISSUED_FORMS: usize = 256;

/// Shared by every account's readers of upstream answers; cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Arc<RwLock<Secrets>>,
}

#[derive(Default)]
struct Secrets {
    /// Each secret as it is and as JSON writes it inside a string (when that differs), so an
    /// echo inside a quoted body is caught too.
    configured: Vec<String>,
    issued: Vec<String>,
}

impl Redactor {
    /// A redactor for the secrets of `credentials` alone.
    pub fn new(credentials: &Credentials) -> Self {
        let redactor = Redactor::default();
        redactor.add_credentials(credentials);
        redactor
    }

    /// Adds the secrets of `credentials` (an account's, when several share the redactor).
    pub fn add_credentials(&self, credentials: &Credentials) {
        let secrets: Vec<&str> = match credentials {
            Credentials::Token(token) => vec![token.expose()],
            Credentials::Iam(iam) => vec![iam.password.expose()],
            Credentials::AkSk(key) => [Some(&key.secret_key), key.security_token.as_ref()]
                .into_iter()
                .flatten()
                .map(|s| s.expose())
                .collect(),
        };
        let mut held = self.write();
        for form in secrets.into_iter().flat_map(forms) {
            if !held.configured.contains(&form) {
                held.configured.push(form);
            }
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Secrets> {
        // Nothing panics while holding it; a poisoned list is still the list.
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a token issued at run time (IAM's), forgetting the oldest past a few.
    pub fn add_issued(&self, token: &str) {
        let mut secrets = self.write();
        for form in forms(token) {
            if !secrets.issued.contains(&form) {
                secrets.issued.push(form);
            }
        }
        let excess = secrets.issued.len().saturating_sub(ISSUED_FORMS);
        secrets.issued.drain(..excess);
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let secrets = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut text = Cow::Borrowed(text);
        // Longest first: a secret that contains another is replaced whole.
        let mut all: Vec<&String> = secrets.configured.iter().chain(&secrets.issued).collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in all {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), REDACTED));
            }
        }
        text
    }

    /// An upstream text ready to be kept in an error: redacted, then clipped (in that order, so
    /// a clip never leaves half a secret behind).
    pub fn clean(&self, text: String) -> String {
        clip(self.redact(&text).into_owned())
    }
}

/// The forms a secret may take in an answer: as it is, and escaped inside a JSON string.
fn forms(secret: &str) -> Vec<String> {
    if secret.is_empty() {
        return Vec::new();
    }
    let mut forms = vec![secret.to_string()];
    if let Ok(quoted) = serde_json::to_string(secret) {
        let escaped = &quoted[1..quoted.len() - 1];
        if escaped != secret {
            forms.push(escaped.to_string());
        }
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::upstream::credentials::AccessKey;

    #[test]
    fn every_secret_of_the_account_is_replaced_in_any_form() {
        let redactor = Redactor::new(&Credentials::AkSk(AccessKey {
            access_key: "AKID".into(),
            secret_key: Secret::new("sk\"quoted\\secret"),
            security_token: Some(Secret::new("SecurityTok3n")),
            project_id: None,
        }));
        let text = r#"bad key sk"quoted\secret, as JSON "sk\"quoted\\secret", token SecurityTok3n for AKID"#;
        assert_eq!(
            redactor.redact(text),
            r#"bad key <redacted>, as JSON "<redacted>", token <redacted> for AKID"#
        );
        assert!(matches!(redactor.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn issued_tokens_are_replaced_and_only_the_last_few_kept() {
        let redactor = Redactor::new(&Credentials::Token(Secret::new("static")));
        for n in 0..ISSUED_FORMS + 1 {
            redactor.add_issued(&format!("issued-token-{n:04}"));
        }
        assert_eq!(redactor.redact("issued-token-0256"), REDACTED);
        assert_eq!(redactor.redact("issued-token-0000"), "issued-token-0000");
        assert_eq!(redactor.redact("a static echo"), "a <redacted> echo");
    }

    #[test]
    fn accounts_sharing_a_redactor_scrub_each_others_secrets() {
        let shared = Redactor::default();
        shared.add_credentials(&Credentials::Token(Secret::new("first-account")));
        shared.add_credentials(&Credentials::Token(Secret::new("second-account")));
        assert_eq!(
            shared.redact("first-account second-account"),
            "<redacted> <redacted>"
        );
    }

    #[test]
    fn a_clipped_text_never_keeps_part_of_a_secret() {
        let secret = "S".repeat(400);
        let redactor = Redactor::new(&Credentials::Token(Secret::new(secret.clone())));
        let cleaned = redactor.clean(format!("echo {secret}"));
        assert_eq!(cleaned, "echo <redacted>");
    }
}
