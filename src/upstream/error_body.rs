//! What an error answer's body says: its code and message, read as Huawei's SDKs read them
//! (huaweicloudsdkcore's exception handler): `error_code` with `error_msg` (or `error_message`),
//! else `errorCode` with `errorMsg`, else `code` with `message`, at the top level and then in
//! each nested object (IAM's `{"error": {"code", "message"}}`, the API's `{"data": {...}}`).

use serde_json::{Map, Value};

use crate::upstream::repair;
use crate::upstream::wire::{self, DecodeError, Decoding};

/// Bodies past this are read in the reference's own shape alone, as a stream: error answers
/// are a few hundred bytes, and a body parsed whole into values takes several times its size.
const MAX_ERROR_BODY: usize = 64 << 10;
/// How deep nested objects are searched.
const MAX_DEPTH: usize = 3;

/// The code and message `body` names, if it names a code other than `"0"`; the message is empty
/// when none is given.
pub fn read(body: &[u8]) -> Option<(String, String)> {
    if body.len() > MAX_ERROR_BODY {
        let decoding = Decoding {
            max_rows: 0,
            expected_rows: 0,
            time_zone: time::UtcOffset::UTC,
        };
        return match wire::decode_page(body, decoding) {
            Err(DecodeError::Api { code, message }) => Some((code, message)),
            _ => None,
        };
    }
    let (text, _) = repair::clean_text(body);
    let value: Value = serde_json::from_str(&text).ok()?;
    find(value.as_object()?, MAX_DEPTH)
}

fn find(object: &Map<String, Value>, depth: usize) -> Option<(String, String)> {
    let text = |key: &str| object.get(key).and_then(scalar);
    let pairs: [(&str, &[&str]); 3] = [
        ("error_code", &["error_msg", "error_message"]),
        ("errorCode", &["errorMsg"]),
        ("code", &["message"]),
    ];
    for (code_key, message_keys) in pairs {
        let message = message_keys.iter().find_map(|key| text(key));
        // A bare `code` is too common a key to be an error's without its message.
        if code_key == "code" && message.is_none() {
            continue;
        }
        if let Some(code) = text(code_key) {
            return (code != "0").then(|| (code, message.unwrap_or_default()));
        }
    }
    if depth == 0 {
        return None;
    }
    object
        .values()
        .filter_map(Value::as_object)
        .find_map(|nested| find(nested, depth - 1))
}

/// A string as it is, a number as written; anything else is no text.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(body: &str) -> Option<(String, String)> {
        read(body.as_bytes())
    }

    fn pair(code: &str, message: &str) -> Option<(String, String)> {
        Some((code.into(), message.into()))
    }

    #[test]
    fn every_shape_the_sdk_reads() {
        let reference = r#"{"error_code":"KOOPHONE.API.1001","error_msg":"Insufficient instance permissions."}"#;
        assert_eq!(
            said(reference),
            pair("KOOPHONE.API.1001", "Insufficient instance permissions.")
        );
        let other = r#"{"error_code":"APIG.0308","error_message":"The throttling threshold has been reached"}"#;
        assert_eq!(
            said(other),
            pair("APIG.0308", "The throttling threshold has been reached")
        );
        let camel = r#"{"errorCode":"KooPhone.API.1004","errorMsg":"not subscribed"}"#;
        assert_eq!(said(camel), pair("KooPhone.API.1004", "not subscribed"));
        let plain = r#"{"code":"common.00000400","message":"bad request"}"#;
        assert_eq!(said(plain), pair("common.00000400", "bad request"));
        let keystone = r#"{"error":{"code":401,"message":"The username or password is wrong.","title":"Unauthorized"}}"#;
        assert_eq!(
            said(keystone),
            pair("401", "The username or password is wrong.")
        );
        let data = r#"{"data":{"error_code":"KOOPHONE.API.9999","error_msg":"x","result":[]}}"#;
        assert_eq!(said(data), pair("KOOPHONE.API.9999", "x"));
        assert_eq!(
            said(r#"{"error_code":"APIGW.0307"}"#),
            pair("APIGW.0307", "")
        );
    }

    #[test]
    fn no_code_a_zero_code_or_no_json_names_nothing() {
        assert_eq!(said(r#"{"error_code":"0","error_msg":"OK"}"#), None);
        assert_eq!(said(r#"{"code":"x"}"#), None, "a bare code key");
        assert_eq!(said("<html>Bad Gateway</html>"), None);
        assert_eq!(said("[1,2]"), None);
        let deep = r#"{"a":{"b":{"c":{"d":{"error_code":"X.1"}}}}}"#;
        assert_eq!(said(deep), None, "past the depth searched");
        // A large body is read as a stream, in the reference's shape alone.
        let big = format!(
            r#"{{"error_msg":"{}","error_code":"X.1"}}"#,
            "m".repeat(MAX_ERROR_BODY)
        );
        let read = said(&big).map(|(code, message)| (code, message.len()));
        assert_eq!(read, Some(("X.1".into(), MAX_ERROR_BODY)));
        let big = format!(
            r#"{{"errorCode":"X.1","pad":"{}"}}"#,
            "p".repeat(MAX_ERROR_BODY)
        );
        assert_eq!(said(&big), None);
    }
}
