//! Any text as a credentials file (key = value lines or the console's CSV): read or refused,
//! never a panic, and what is read is never empty.
#![no_main]

use clouddevice_exporter::upstream::credentials::parse_credentials_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Some((access_key, secret_key, token)) = parse_credentials_file(text) {
        assert!(!access_key.is_empty() && !secret_key.is_empty());
        assert!(token.is_none_or(|t| !t.is_empty()));
    }
});
