//! SDK-HMAC-SHA256, the AK/SK request signature of Huawei Cloud's API gateway, as pure functions
//! over a method, a URL, headers and a body. Used to sign (the client) and to verify (the
//! simulator); the published test vectors pin it down.

use hmac::{KeyInit, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Url;
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// Everything but `A-Z a-z 0-9 - _ . ~` is percent-encoded, with upper-case hex.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` percent-encoded by the signing rule, which is also how the exporter writes its query
/// strings (RFC 3986: a space is `%20`, never `+`), so what is sent is what is signed.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODE).to_string()
}

/// `name=value` pairs as a query string, each part encoded by [`encode`].
pub fn query_string<K: AsRef<str>, V: AsRef<str>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{}={}", encode(k.as_ref()), encode(v.as_ref())))
        .collect::<Vec<_>>()
        .join("&")
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The path with each segment decoded then encoded by the signing rule, and a trailing `/`.
fn canonical_uri(url: &Url) -> String {
    let mut uri: String = url
        .path()
        .split('/')
        .map(|segment| encode(&percent_decode_str(segment).decode_utf8_lossy()))
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// The query's pairs, read as the gateway reads them: split at `&` and `=`, then plain
/// percent-decoding, where `+` is a plus (form decoding would make it a space); then encoded by
/// the signing rule and sorted.
fn canonical_query(url: &Url) -> String {
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut pairs: Vec<(String, String)> = url
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(k)), encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request and the `SignedHeaders` list, from the headers to sign.
pub fn canonical_request(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (String, String) {
    let mut headers: Vec<(String, &str)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .collect();
    headers.sort();
    let block: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{method}\n{}\n{}\n{block}\n{signed}\n{}",
        canonical_uri(url),
        canonical_query(url),
        sha256_hex(body)
    );
    (canonical, signed)
}

/// The signature of a canonical request made at `sdk_date` (`YYYYMMDDTHHMMSSZ`).
pub fn signature(secret_key: &str, sdk_date: &str, canonical_request: &str) -> String {
    let string_to_sign = format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret_key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(string_to_sign.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// The `Authorization` header value for a request. `headers` must include `X-Sdk-Date`.
pub fn authorization(
    access_key: &str,
    secret_key: &str,
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let date = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("x-sdk-date"))
        .map(|(_, v)| *v)
        .unwrap_or_default();
    let (canonical, signed) = canonical_request(method, url, headers, body);
    let signature = signature(secret_key, date, &canonical);
    format!("{ALGORITHM} Access={access_key}, SignedHeaders={signed}, Signature={signature}")
}

/// The `X-Sdk-Date` form of a time: `YYYYMMDDTHHMMSSZ`, UTC.
pub fn sdk_date(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const AK: &str = "QTWAOYTTINDUT2QVKYUC";
    const SK: &str = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc";

    #[test]
    fn huawei_documented_example() {
        let url = Url::parse("https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0").unwrap();
        let headers = [
            ("Content-Type", "application/json"),
            ("Host", "service.region.example.com"),
            ("X-Sdk-Date", "20191115T033655Z"),
        ];
        let (canonical, signed) = canonical_request("GET", &url, &headers, b"");
        assert_eq!(
            canonical,
            "GET\n/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\n\
             limit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n\
             content-type:application/json\nhost:service.region.example.com\nx-sdk-date:20191115T033655Z\n\n\
             content-type;host;x-sdk-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
        );
        assert_eq!(signed, "content-type;host;x-sdk-date");
        assert_eq!(
            authorization(AK, SK, "GET", &url, &headers, b""),
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, \
             Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
        );
    }

    #[test]
    fn go_sdk_get_vector() {
        let url = Url::parse("https://example.huaweicloud.com/path?limit=1").unwrap();
        let headers = [("X-Sdk-Date", "20060102T150405Z")];
        let (canonical, _) = canonical_request("GET", &url, &headers, b"");
        assert_eq!(
            signature("SecretKey", "20060102T150405Z", &canonical),
            "5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
        );
    }

    #[test]
    fn go_sdk_post_vector() {
        let url = Url::parse("https://example.huaweicloud.com/path?key=value").unwrap();
        let headers = [("X-Sdk-Date", "20060102T150405Z")];
        let body = b"{\"Name\":\"test\",\"Id\":1}\n";
        let (canonical, _) = canonical_request("POST", &url, &headers, body);
        assert_eq!(
            signature("SecretKey", "20060102T150405Z", &canonical),
            "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59"
        );
    }

    #[test]
    fn batch_query_vector() {
        let url = Url::parse("https://koophone.myhuaweicloud.com/v1/instances/batch-query?page_no=1&page_size=100&x-request-id=0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
        let headers = [
            ("Host", "koophone.myhuaweicloud.com"),
            ("X-Sdk-Date", "20261127T120000Z"),
            ("X-Project-Id", "9d71ec45aef04d84a991c12250227b5c"),
        ];
        let (canonical, _) = canonical_request("GET", &url, &headers, b"");
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "65fbb9518d392d6a3f305e8fb7c93c3864d2e274f8d1c9fd0d469081313a9b5f"
        );
        assert_eq!(
            signature(SK, "20261127T120000Z", &canonical),
            "43a9fc488c7dd070aeb424c9912a425e401110ddfbbd2206657d2d176dd53a51"
        );
    }

    #[test]
    fn query_values_are_encoded_and_sorted() {
        let url = Url::parse("https://h/a%20b/c?z=1&b=x%20y&b=a&e=").unwrap();
        let (canonical, _) = canonical_request("GET", &url, &[], b"");
        let lines: Vec<&str> = canonical.lines().collect();
        assert_eq!(lines[1], "/a%20b/c/");
        assert_eq!(lines[2], "b=a&b=x%20y&e=&z=1");
    }

    #[test]
    fn sdk_dates_are_written_in_utc() {
        let t = time::macros::datetime!(2026-11-27 12:00:00 UTC);
        assert_eq!(sdk_date(t), "20261127T120000Z");
        let beijing = time::macros::datetime!(2026-11-28 04:05:06 +08:00);
        assert_eq!(sdk_date(beijing), "20261127T200506Z");
    }
}
