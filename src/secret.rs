//! A string that must never be shown: credentials. Its `Debug` and `Display` print a placeholder,
//! so a secret cannot leak through a log line, an error message or a panic by accident. Also
//! reading a secret from a file, and the check that other users cannot read that file.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::files::{read_text, FileError, MAX_SECRET_BYTES};

#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the code that must send or check it.
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

/// A file that should hold a secret and does not.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error(
        "cannot read {flag} {path:?}: {source}; check the path and that this user may read it"
    )]
    Read {
        flag: &'static str,
        path: PathBuf,
        source: FileError,
    },
    #[error("{flag} {path:?} is empty")]
    Empty { flag: &'static str, path: PathBuf },
}

/// Reads the secret in the file `flag` names (a regular file of at most 64 KiB), trimmed, with a
/// warning when other users may read the file.
pub fn read_secret_file(
    flag: &'static str,
    path: &Path,
) -> Result<(Secret, Option<String>), SecretFileError> {
    let text = read_text(path, MAX_SECRET_BYTES).map_err(|source| SecretFileError::Read {
        flag,
        path: path.to_path_buf(),
        source,
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(SecretFileError::Empty {
            flag,
            path: path.to_path_buf(),
        });
    }
    Ok((Secret::new(text), readable_by_others(flag, path, OTHERS)))
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
