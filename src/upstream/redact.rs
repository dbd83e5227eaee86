//! The secrets the exporter holds (every account's token, password, secret key, security token,
//! and the IAM tokens issued to them), scrubbed from every text an upstream sends before that text
//! reaches a log line, a label or a page: a hostile or buggy upstream, or a proxy in between that
//! sees every account's requests, must not get a credential republished.
//!
//! Each account holds its own secrets ([`Redactor::for_account`]); every account's redactor
//! scrubs them all, and an account's secrets go with the account (a reload that replaces it), so
//! no account can push another's out. Secrets are matched as written, escaped in JSON,
//! percent-encoded and in base64 (at any alignment inside a longer encoded text), in one pass
//! of an Aho-Corasick automaton over every form.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock, Weak};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;

use crate::fleet::{Identity, Instance};
use crate::upstream::credentials::Credentials;
use crate::upstream::error::clip;

/// What stands in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// IAM tokens remembered per account: the one in use and the few before it, which an upstream
/// may still echo.
const ISSUED_PER_ACCOUNT: usize = 4;

/// The shortest run of an encoded form matched on its own: shorter ones would match ordinary
/// text by chance.
const SHORTEST_FORM: usize = 8;

/// The shortest piece of a secret that makes an error code a secret's: a code that shares this
/// many characters in a row with a secret never becomes a label.
const CODE_PIECE: usize = 8;

/// Shared by every account's readers of upstream answers; cheap to clone. A redactor made by
/// [`Redactor::for_account`] also holds that account's secrets.
#[derive(Clone, Default)]
pub struct Redactor {
    registry: Arc<RwLock<Registry>>,
    own: Option<Arc<AccountSecrets>>,
}

#[derive(Default)]
struct Registry {
    /// Every account's secrets, while the account lives.
    accounts: Vec<Weak<AccountSecrets>>,
    /// Built from `accounts`; `None` until first needed, and again after a change.
    matcher: Option<Arc<Matcher>>,
}

/// One account's secrets.
struct AccountSecrets {
    configured: Vec<String>,
    issued: Mutex<VecDeque<String>>,
    /// Its registry's matcher, cleared when the IAM tokens change.
    registry: Weak<RwLock<Registry>>,
}

impl Drop for AccountSecrets {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            write(&registry).matcher = None;
        }
    }
}

/// Every form of every live secret.
struct Matcher {
    automaton: Option<AhoCorasick>,
    /// The secrets as they are, for the pieces inside error codes.
    raw: Vec<String>,
}

fn write(registry: &RwLock<Registry>) -> std::sync::RwLockWriteGuard<'_, Registry> {
    // Nothing panics while holding it; a poisoned list is still the list.
    registry.write().unwrap_or_else(|e| e.into_inner())
}

impl Redactor {
    /// A redactor for the secrets of `credentials` alone.
    pub fn new(credentials: &Credentials) -> Self {
        Redactor::default().for_account(credentials)
    }

    /// A redactor holding the secrets of `credentials`, an account's, for as long as it (or a
    /// clone) lives, scrubbing them and those of every other account of the same registry.
    pub fn for_account(&self, credentials: &Credentials) -> Self {
        let secrets: Vec<String> = match credentials {
            Credentials::Token(token) => vec![token.expose().to_string()],
            Credentials::Iam(iam) => vec![iam.password.expose().to_string()],
            Credentials::AkSk(key) => [Some(&key.secret_key), key.security_token.as_ref()]
                .into_iter()
                .flatten()
                .map(|s| s.expose().to_string())
                .collect(),
        };
        let own = Arc::new(AccountSecrets {
            configured: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
            issued: Mutex::new(VecDeque::new()),
            registry: Arc::downgrade(&self.registry),
        });
        let mut registry = write(&self.registry);
        registry.accounts.retain(|a| a.strong_count() > 0);
        registry.accounts.push(Arc::downgrade(&own));
        registry.matcher = None;
        drop(registry);
        Redactor {
            registry: self.registry.clone(),
            own: Some(own),
        }
    }

    /// Remembers a token issued at run time (IAM's) for this redactor's account, forgetting that
    /// account's oldest past a few.
    pub fn add_issued(&self, token: &str) {
        let Some(own) = &self.own else { return };
        if token.is_empty() {
            return;
        }
        {
            let mut issued = own.issued.lock().unwrap_or_else(|e| e.into_inner());
            if issued.iter().any(|t| t == token) {
                return;
            }
            issued.push_back(token.to_string());
            while issued.len() > ISSUED_PER_ACCOUNT {
                issued.pop_front();
            }
        }
        write(&self.registry).matcher = None;
    }

    fn matcher(&self) -> Arc<Matcher> {
        if let Some(matcher) = &self
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .matcher
        {
            return matcher.clone();
        }
        let mut registry = write(&self.registry);
        registry.accounts.retain(|a| a.strong_count() > 0);
        let mut raw = Vec::new();
        for account in registry.accounts.iter().filter_map(Weak::upgrade) {
            raw.extend(account.configured.iter().cloned());
            let issued = account.issued.lock().unwrap_or_else(|e| e.into_inner());
            raw.extend(issued.iter().cloned());
        }
        let mut patterns: Vec<String> = raw.iter().flat_map(|s| forms(s)).collect();
        patterns.sort();
        patterns.dedup();
        let automaton = (!patterns.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&patterns)
                    .ok()
            })
            .flatten();
        let matcher = Arc::new(Matcher { automaton, raw });
        registry.matcher = Some(matcher.clone());
        matcher
    }

    /// `text` with every form of every secret replaced by [`REDACTED`]. A text that
    /// percent-encodes a secret in some other way (every byte, say) is given back decoded, with
    /// the secret replaced.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let matcher = self.matcher();
        let Some(automaton) = &matcher.automaton else {
            return Cow::Borrowed(text);
        };
        let replace = |text: &str| {
            let mut out = String::with_capacity(text.len());
            automaton.replace_all_with(text, &mut out, |_, _, out| {
                out.push_str(REDACTED);
                true
            });
            out
        };
        let text = match automaton.is_match(text) {
            true => Cow::Owned(replace(text)),
            false => Cow::Borrowed(text),
        };
        if text.contains('%') {
            let decoded = percent_encoding::percent_decode_str(&text).decode_utf8_lossy();
            if automaton.is_match(decoded.as_ref()) {
                return Cow::Owned(replace(&decoded));
            }
        }
        text
    }

    /// An upstream text ready to be kept in an error: redacted, then clipped (in that order, so
    /// a clip never leaves half a secret behind).
    pub fn clean(&self, text: String) -> String {
        clip(self.redact(&text).into_owned())
    }

    /// An upstream's error code ready to be kept: cleaned, and [`REDACTED`] whole when it
    /// shares 8 characters in a row with a secret, so that no piece of a secret shaped like a
    /// code can become an `error_code` label.
    pub fn code(&self, code: String) -> String {
        let code = self.clean(code);
        let matcher = self.matcher();
        let chars: Vec<char> = code.chars().collect();
        let shares_a_piece = chars.windows(CODE_PIECE).any(|window| {
            let piece: String = window.iter().collect();
            matcher.raw.iter().any(|secret| secret.contains(&piece))
        });
        if shares_a_piece {
            REDACTED.to_string()
        } else {
            code
        }
    }

    /// Scrubs every text of `instances` that becomes a label. Values a page shares between
    /// instances (a region, a SKU) are looked at once each.
    pub fn scrub_instances(&self, instances: &mut [Instance]) {
        let matcher = self.matcher();
        let Some(automaton) = &matcher.automaton else {
            return;
        };
        // The shared values found clean, by address: a page has a handful.
        let mut clean: Vec<*const u8> = Vec::new();
        for instance in instances {
            // One search over the id, the name and the phone id together; a match (or one
            // across their seams) looks at each.
            let joined = instance.identity.joined();
            if automaton.is_match(joined) || joined.contains('%') {
                let texts = [
                    instance.instance_id(),
                    instance.instance_name(),
                    instance.phone_id(),
                ];
                let [id, name, phone] = texts.map(|t| self.redact(t).into_owned());
                instance.identity = Identity::new(&id, &name, &phone);
            }
            let shared = [
                &mut instance.region,
                &mut instance.region_name,
                &mut instance.sku,
                &mut instance.project_id,
                &mut instance.project_name,
                &mut instance.billing_mode,
            ];
            for value in shared {
                if clean.contains(&value.as_ptr()) {
                    continue;
                }
                if automaton.is_match(&**value) || value.contains('%') {
                    *value = Arc::from(self.redact(value).as_ref());
                } else if clean.len() < 64 {
                    clean.push(value.as_ptr());
                }
            }
        }
    }
}

/// The forms a secret may take in an answer: as it is, escaped inside a JSON string,
/// percent-encoded (as a query string or a form writes it), and in base64 (standard and URL-safe
/// alphabets, at each of the three alignments it may have inside a longer encoded text).
fn forms(secret: &str) -> Vec<String> {
    if secret.is_empty() {
        return Vec::new();
    }
    let mut forms = vec![secret.to_string()];
    if let Ok(quoted) = serde_json::to_string(secret) {
        forms.push(quoted[1..quoted.len() - 1].to_string());
    }
    let encoded = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    forms.push(encoded.clone());
    forms.push(lowercase_hex(&encoded));
    forms.push(encoded.replace("%20", "+"));
    let bytes = secret.as_bytes();
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        for shift in 0..3 {
            // After `shift` bytes of something else, the characters that encode only the
            // secret's own bits.
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(bytes);
            let text = engine.encode(&shifted);
            let first = (8 * shift).div_ceil(6);
            let last = 8 * (shift + bytes.len()) / 6;
            if let Some(core) = text.get(first..last) {
                if core.len() >= SHORTEST_FORM {
                    forms.push(core.to_string());
                }
            }
        }
    }
    forms.retain(|f| f.len() >= SHORTEST_FORM.min(secret.len()));
    forms.sort();
    forms.dedup();
    forms
}

/// Percent-encoded text with lower-case hex digits, as some clients write it.
fn lowercase_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
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
            region: Some("cn-north-4".into()),
            iam_endpoint: "https://iam.myhuaweicloud.com".parse().unwrap(),
        }));
        let text = r#"bad key sk"quoted\secret, as JSON "sk\"quoted\\secret", token SecurityTok3n for AKID"#;
        assert_eq!(
            redactor.redact(text),
            r#"bad key <redacted>, as JSON "<redacted>", token <redacted> for AKID"#
        );
        assert!(matches!(redactor.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn encoded_forms_are_replaced_too() {
        let secret = "p@ss w0rd/with+odd=chars";
        let redactor = Redactor::new(&Credentials::Token(Secret::new(secret)));
        let url = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        let forms_seen = [
            url.clone(),
            lowercase_hex(&url),
            url.replace("%20", "+"),
            base64::engine::general_purpose::STANDARD.encode(secret),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
            // Inside longer base64, at each alignment.
            base64::engine::general_purpose::STANDARD.encode(format!("x{secret}yz")),
            base64::engine::general_purpose::STANDARD.encode(format!("xy{secret}z")),
            base64::engine::general_purpose::STANDARD.encode(format!("Basic u:{secret}")),
        ];
        for form in forms_seen {
            let text = format!("echo {form} end");
            let cleaned = redactor.redact(&text);
            assert!(cleaned.contains(REDACTED), "{form} passed: {cleaned}");
        }
    }

    #[test]
    fn issued_tokens_are_kept_per_account_and_no_other_account_evicts_them() {
        let shared = Redactor::default();
        let victim = shared.for_account(&Credentials::Token(Secret::new("static-victim")));
        victim.add_issued("victim-current-token");
        // Another account's IAM churns through a thousand tokens.
        let churner = shared.for_account(&Credentials::Token(Secret::new("static-churner")));
        for n in 0..1_000 {
            churner.add_issued(&format!("churned-token-{n:04}"));
        }
        assert_eq!(shared.redact("victim-current-token"), REDACTED);
        assert_eq!(churner.redact("churned-token-0999"), REDACTED);
        // The churner keeps only its last few.
        assert_eq!(churner.redact("churned-token-0000"), "churned-token-0000");
        assert_eq!(shared.redact("a static-victim echo"), "a <redacted> echo");
    }

    #[test]
    fn an_accounts_secrets_go_with_it() {
        let shared = Redactor::default();
        let old = shared.for_account(&Credentials::Token(Secret::new("replaced-secret")));
        let _new = shared.for_account(&Credentials::Token(Secret::new("current-secret")));
        assert_eq!(shared.redact("replaced-secret"), REDACTED);
        drop(old);
        assert_eq!(shared.redact("replaced-secret"), "replaced-secret");
        assert_eq!(shared.redact("current-secret"), REDACTED);
        for _ in 0..100 {
            drop(shared.for_account(&Credentials::Token(Secret::new("reloaded"))));
        }
        let held = shared.registry.read().unwrap().accounts.len();
        assert!(held <= 2, "{held} accounts' secrets held");
    }

    #[test]
    fn a_code_sharing_a_piece_of_a_secret_is_redacted_whole() {
        let redactor = Redactor::new(&Credentials::Token(Secret::new("Tok3n.Static_4f1c-rest")));
        assert_eq!(redactor.code("Tok3n.Static".into()), REDACTED);
        assert_eq!(redactor.code("APIGW.0308".into()), "APIGW.0308");
    }

    #[test]
    fn a_clipped_text_never_keeps_part_of_a_secret() {
        let secret = "S".repeat(400);
        let redactor = Redactor::new(&Credentials::Token(Secret::new(secret.clone())));
        let cleaned = redactor.clean(format!("echo {secret}"));
        assert_eq!(cleaned, "echo <redacted>");
    }

    #[test]
    fn labels_from_instance_data_are_scrubbed() {
        let redactor = Redactor::new(&Credentials::Token(Secret::new("label-secret-99")));
        let mut instances = vec![Instance {
            identity: Identity::new("id-1", "phone label-secret-99", ""),
            region: Arc::from("cn-north-4"),
            project_name: Arc::from("label-secret-99"),
            ..Instance::default()
        }];
        redactor.scrub_instances(&mut instances);
        assert_eq!(instances[0].instance_name(), "phone <redacted>");
        assert_eq!(&*instances[0].project_name, REDACTED);
        assert_eq!(&*instances[0].region, "cn-north-4");
        assert_eq!(instances[0].instance_id(), "id-1");
    }
}
