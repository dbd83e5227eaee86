//! A string that must never be shown: credentials. Its `Debug` and `Display` print a placeholder,
//! so a secret cannot leak through a log line, an error message or a panic by accident. Also the
//! check that a file holding a secret is not readable by other users.

use std::fmt;
use std::path::Path;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that must send it (a request header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Mode bits for "group or others may read": what a file holding a secret should not allow.
pub const OTHERS: u32 = 0o044;
/// Mode bits for "everyone may read": a TLS key shared with a group (Debian's `ssl-cert`) is usual.
pub const EVERYONE: u32 = 0o004;

/// A warning when the file at `path`, named `what`, holds a secret and its mode has any of the
/// read bits in `mask`.
#[cfg(unix)]
pub fn readable_by_others(what: &str, path: &Path, mask: u32) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & mask != 0).then(|| {
        format!(
            "{what} {path:?} can be read by other users (mode {:o}); restrict it with chmod 600",
            mode & 0o777
        )
    })
}

#[cfg(not(unix))]
pub fn readable_by_others(_: &str, _: &Path, _: u32) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("MIIhunter2");
        assert!(!format!("{s:?} {s} {:?}", Some(&s)).contains("hunter2"));
        assert_eq!(s.expose(), "MIIhunter2");
    }
}
