//! The API gateway's reading of a request: its query decoded as the gateway decodes it, and its
//! SDK-HMAC-SHA256 signature rebuilt from what arrived on the wire. Written from Huawei's
//! published rules for signing API Gateway requests (the AK/SK signing page of the API Gateway
//! documentation) and not from the exporter's signer, so that the two can disagree and the tests
//! see it when they do.

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The query's `name=value` pairs in order, each part percent-decoded. `+` is a plus: the
/// gateway reads queries with plain percent-decoding, not as form data.
pub fn decode_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// `%XY` sequences as bytes, read as UTF-8 (invalid sequences as U+FFFD); a `%` that starts no
/// sequence stays as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            let h = std::str::from_utf8(h).ok()?;
            u8::from_str_radix(h, 16).ok()
        });
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The signing rule's encoding: `A-Z a-z 0-9 - _ . ~` as they are, every other UTF-8 byte as
/// `%XY` with upper-case hex.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical request of a request as it arrived: method, the raw path and query of its
/// request line, and the headers it signed (name, value). Returns it with its SignedHeaders.
pub fn canonical_request(
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    signed: &[(String, String)],
) -> (String, String) {
    let mut uri = raw_path
        .split('/')
        .map(|segment| encode(&percent_decode(segment)))
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    let mut query: Vec<(String, String)> = decode_query(raw_query)
        .iter()
        .map(|(name, value)| (encode(name), encode(value)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, &str)> = signed
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .collect();
    headers.sort();
    let block: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let names = headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let empty_body = lower_hex(&Sha256::digest(b""));
    (
        format!("{method}\n{uri}\n{query}\n{block}\n{names}\n{empty_body}"),
        names,
    )
}

/// The signature of `canonical` made at `sdk_date` with `secret_key`.
pub fn signature(secret_key: &str, sdk_date: &str, canonical: &str) -> String {
    let hashed = lower_hex(&Sha256::digest(canonical.as_bytes()));
    let to_sign = format!("SDK-HMAC-SHA256\n{sdk_date}\n{hashed}");
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()) else {
        return String::new();
    };
    mac.update(to_sign.as_bytes());
    lower_hex(&mac.finalize().into_bytes())
}

fn lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn huaweis_documented_example_verifies() {
        let signed = pairs(&[
            ("Content-Type", "application/json"),
            ("Host", "service.region.example.com"),
            ("X-Sdk-Date", "20191115T033655Z"),
        ]);
        let (canonical, names) = canonical_request(
            "GET",
            "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            Some("limit=2&marker=13551d6b-755d-4757-b956-536f674975c0"),
            &signed,
        );
        assert_eq!(names, "content-type;host;x-sdk-date");
        assert_eq!(
            lower_hex(&Sha256::digest(canonical.as_bytes())),
            "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
        );
        assert_eq!(
            signature(
                "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc",
                "20191115T033655Z",
                &canonical
            ),
            "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
        );
    }

    #[test]
    fn a_plus_in_a_query_is_a_plus_and_percent_20_a_space() {
        assert_eq!(
            decode_query(Some("a=x+y&b=x%20y&c=%2B&d&e=%zz&f=%E4%BA%91")),
            pairs(&[
                ("a", "x+y"),
                ("b", "x y"),
                ("c", "+"),
                ("d", ""),
                ("e", "%zz"),
                ("f", "云")
            ])
        );
        let (canonical, _) = canonical_request("GET", "/p", Some("n=x+y"), &[]);
        assert!(canonical.contains("\nn=x%2By\n"), "{canonical}");
    }
}
