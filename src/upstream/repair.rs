//! What would make serde_json refuse a whole response body for the sake of one value, repaired
//! so that the value spoils its own field alone (see [`super::wire`]): invalid UTF-8, lone
//! UTF-16 surrogate escapes, and numbers past what a float holds.

use std::borrow::Cow;

/// The body as text, with each invalid UTF-8 sequence and each lone UTF-16 surrogate escape
/// (`\ud83d` without its pair, which serde_json refuses) made U+FFFD, and how many there were.
/// One bad byte in one instance's name must not hide the whole fleet. Valid bodies, the rule,
/// are borrowed as they are: one UTF-8 check, and a scan for backslashes.
pub fn clean_text(body: &[u8]) -> (Cow<'_, str>, usize) {
    let mut replaced = 0;
    let mut text = match std::str::from_utf8(body) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            let mut text = String::with_capacity(body.len());
            for chunk in body.utf8_chunks() {
                text.push_str(chunk.valid());
                if !chunk.invalid().is_empty() {
                    text.push(char::REPLACEMENT_CHARACTER);
                    replaced += 1;
                }
            }
            Cow::Owned(text)
        }
    };
    let mut from = 0;
    while let Some(at) = text
        .as_bytes()
        .get(from..)
        .and_then(|rest| memchr::memchr(b'\\', rest))
    {
        let at = from + at;
        let escape = text.as_bytes().get(at + 1).copied();
        from = at + 2;
        if escape != Some(b'u') {
            continue;
        }
        let Some(unit) = hex_unit(text.as_bytes(), at + 2) else {
            continue; // not four hex digits: serde_json reports it
        };
        from = at + 6;
        let paired = (0xD800..0xDC00).contains(&unit)
            && text.as_bytes().get(at + 6..at + 8) == Some(&b"\\u"[..])
            && hex_unit(text.as_bytes(), at + 8).is_some_and(|low| (0xDC00..0xE000).contains(&low));
        if paired {
            from = at + 12;
        } else if (0xD800..0xE000).contains(&unit) {
            // The same length as what it replaces: nothing after it moves.
            text.to_mut().replace_range(at..at + 6, "\\uFFFD");
            replaced += 1;
        }
    }
    (text, replaced)
}

/// `text` with each control character (a newline, an escape, U+0085) a space: every text field
/// of a row becomes a label value, which reaches alert summaries and chat messages.
pub fn controls_as_spaces(text: Cow<'_, str>) -> Cow<'_, str> {
    // C0 controls and DEL are single bytes; C1 controls (U+0080 to U+009F) start with 0xC2.
    let maybe = text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2);
    if maybe && text.contains(char::is_control) {
        return Cow::Owned(text.replace(char::is_control, " "));
    }
    text
}

/// The four hex digits of a `\u` escape starting at `at`.
fn hex_unit(b: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
    if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// `text` with every number outside strings that a float cannot hold (`1e400`, `-1e999`, a
/// 400-digit integer) made a JSON string; `None` when it holds none.
pub fn quote_huge_numbers(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let (mut copied, mut at, mut in_string) = (0, 0, false);
    while let Some(&b) = bytes.get(at) {
        match (in_string, b) {
            (true, b'\\') => at += 1,
            (_, b'"') => in_string = !in_string,
            (false, b'-' | b'0'..=b'9') => {
                let end = bytes[at..]
                    .iter()
                    .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .map_or(bytes.len(), |n| at + n);
                let number = &text[at..end];
                if number.parse::<f64>().is_ok_and(f64::is_infinite) {
                    out.push_str(&text[copied..at]);
                    out.push('"');
                    out.push_str(number);
                    out.push('"');
                    copied = end;
                }
                at = end;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    if copied == 0 {
        return None;
    }
    out.push_str(&text[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numbers_a_float_cannot_hold_are_quoted() {
        assert_eq!(quote_huge_numbers(r#"{"a":1e300,"b":[-2.5e10,7]}"#), None);
        assert_eq!(
            quote_huge_numbers(r#"{"a":1e400,"b":"1e400 \" -1e999","c":[-1e999]}"#).as_deref(),
            Some(r#"{"a":"1e400","b":"1e400 \" -1e999","c":["-1e999"]}"#)
        );
        let digits = "9".repeat(400);
        assert_eq!(
            quote_huge_numbers(&format!("[{digits}]")),
            Some(format!("[\"{digits}\"]"))
        );
    }
}
