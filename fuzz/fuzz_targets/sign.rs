//! Any request canonicalised and signed without a panic, and the `Authorization` header it makes
//! naming the key, the signed headers and a signature of 64 hex digits, exactly. The input is text: the method on the first line, the URL on
//! the second, then `name: value` header lines, an empty line, and the body.
#![no_main]

use clouddevice_exporter::upstream::sign::{authorization, canonical_request};
use libfuzzer_sys::fuzz_target;

const ACCESS_KEY: &str = "QTWAOYTTINDUT2QVKYUC";
const SECRET_KEY: &str = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc";

fuzz_target!(|text: &str| {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let (Some(method), Some(url)) = (lines.next(), lines.next()) else {
        return;
    };
    let Ok(url) = url::Url::parse(url) else {
        return;
    };
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v))
        .filter(|(n, _)| !n.is_empty() && !n.contains([',', ';', '=']))
        .collect();
    let (canonical, signed) = canonical_request(method, &url, &headers, body.as_bytes());
    assert!(canonical.starts_with(method));
    let value = authorization(
        ACCESS_KEY,
        SECRET_KEY,
        method,
        &url,
        &headers,
        body.as_bytes(),
    );
    let fields = format!("SDK-HMAC-SHA256 Access={ACCESS_KEY}, SignedHeaders={signed}, Signature=");
    let signature = value
        .strip_prefix(&fields)
        .expect("the header names the key and the signed headers");
    assert!(signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit()));
    // The same request signs the same way.
    assert_eq!(
        value,
        authorization(
            ACCESS_KEY,
            SECRET_KEY,
            method,
            &url,
            &headers,
            body.as_bytes()
        )
    );
});
