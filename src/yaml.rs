//! The YAML the operator writes (the accounts file, the web configuration), read with a budget:
//! libyaml takes time quadratic in the nesting of flow collections (80,000 levels of `{a: ` in a
//! 320 KB file took 20 s), so a file may hold at most [`MAX_FLOW_COLLECTIONS`] of them, checked
//! before parsing; its size is already bounded where it is read ([`crate::files`]). Errors name
//! the key and the expected type, never the value found: a secret pasted into the wrong key must
//! not reach a log.

use std::collections::BTreeMap;

use serde::de::{Deserialize, DeserializeOwned, Deserializer, MapAccess, Visitor};

/// The most `{` and `[` a file may hold: enough for thousands of accounts written in flow style,
/// and parsed in tens of milliseconds however they nest.
pub const MAX_FLOW_COLLECTIONS: usize = 4_096;

/// Parses `text` as `T` within the budget; `expecting` says in the file's words what a key holds
/// (given its path, as `accounts.games.page_size`), where serde would name a Rust type.
pub fn from_str<T: DeserializeOwned>(
    text: &str,
    expecting: &dyn Fn(&str) -> Option<String>,
) -> Result<T, String> {
    let flows = text.bytes().filter(|b| matches!(b, b'{' | b'[')).count();
    if flows > MAX_FLOW_COLLECTIONS {
        return Err(format!(
            "holds {flows} `{{` and `[`, more than the {MAX_FLOW_COLLECTIONS} a file may have; write nested values as indented blocks"
        ));
    }
    serde_yaml_ng::from_str(text).map_err(|e| in_words(&e.to_string(), expecting))
}

/// serde's "accounts.a.page_size: invalid type: string \"x\", expected u32 at line 4 column 16"
/// as "line 4: accounts.a.page_size must be a whole number from 1 to 200, not text": the line,
/// the key, what belongs there in the file's words, never the value found. Other errors keep
/// serde's words, without values.
fn in_words(message: &str, expecting: &dyn Fn(&str) -> Option<String>) -> String {
    reworded(message, expecting).unwrap_or_else(|| without_values(message))
}

/// [`in_words`]' message, for the errors it rewords: a value of the wrong type or out of range,
/// and a key the file may not have.
fn reworded(message: &str, expecting: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let (head, at) = match message.rsplit_once(" at line ") {
        Some((head, at)) => (head, format!("line {}: ", at.split(' ').next()?)),
        None => (message, String::new()),
    };
    let (path, problem) = match head.split_once(": ") {
        Some((path, problem)) if !path.contains(' ') => (path, problem),
        _ => ("the file", head),
    };
    if let Some(rest) = problem.strip_prefix("unknown field `") {
        let (key, known) = rest.split_once('`')?;
        let known = known
            .strip_prefix(", expected one of ")
            .or_else(|| known.strip_prefix(", expected "))
            .unwrap_or_default();
        return Some(format!(
            "{at}{path} has no key {key:?}; the keys are {}",
            known.replace('`', "")
        ));
    }
    let (found, expected) = problem.split_once(", expected ")?;
    let expected = expecting(path).unwrap_or_else(|| rust_type_in_words(expected).into());
    Some(match found.strip_prefix("invalid type: ") {
        Some(found) => {
            let kind = found.split(['"', '`']).next().unwrap_or_default().trim();
            if ["integer", "floating point"].contains(&kind) && expected.contains("number") {
                return Some(format!(
                    "{at}{path} must be {expected}; the number written is not"
                ));
            }
            let found = match kind {
                "string" => "text",
                "integer" | "floating point" => "a number",
                "boolean" => "true or false",
                "sequence" => "a list",
                "map" => "a map",
                "unit value" => "empty",
                _ => "something else",
            };
            format!("{at}{path} must be {expected}, not {found}")
        }
        None => format!("{at}{path} must be {expected}; the value written is not"),
    })
}

/// What serde's name of a type means in a YAML file.
fn rust_type_in_words(expected: &str) -> &str {
    match expected {
        e if e.starts_with("struct ") || e == "a map" => "a map of settings",
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "i32" | "i64" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" | "a borrowed string" | "string" => "text",
        "a sequence" => "a list",
        other => other,
    }
}

/// What the error of a key given twice says after the key; [`given_twice`] finds it again.
const GIVEN_TWICE: &str = "is given twice";

/// A map whose keys all differ, for `#[serde(deserialize_with)]`: YAML would silently keep the
/// last of two equal keys (an account's credentials, a user's hash).
pub fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if entries.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "key {key:?} {GIVEN_TWICE}"
                    )));
                }
                let value = map.next_value()?;
                entries.insert(key, value);
            }
            Ok(entries)
        }
    }
    d.deserialize_map(Unique(std::marker::PhantomData))
}

/// [`unique_keys`] for a map that may be left out.
pub fn unique_keys_if_any<'de, D, V>(d: D) -> Result<Option<BTreeMap<String, V>>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    unique_keys(d).map(Some)
}

/// The key an error of [`from_str`] reports as given twice, and the lines (from 1) of `text` where
/// it stands as a key.
pub fn given_twice(message: &str, text: &str) -> Option<(String, Vec<usize>)> {
    let (_, rest) = message.split_once("key \"")?;
    let (key, _) = rest.split_once(&format!("\" {GIVEN_TWICE}"))?;
    let quoted = [key.to_string(), format!("\"{key}\""), format!("'{key}'")];
    let lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim_start();
            quoted.iter().any(|q| {
                line.strip_prefix(q.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            })
        })
        .map(|(n, _)| n + 1)
        .collect();
    Some((key.to_string(), lines))
}

/// The lines of [`given_twice`] as text: `2 and 6`.
pub fn lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(" and ")
}

/// serde's "invalid type: string \"hunter2\", expected u32" as "invalid type: a string, expected
/// u32": the kind of what was found, never the value.
pub fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let found = ["invalid type: ", "invalid value: ", "invalid length "]
            .iter()
            .filter_map(|marker| rest.find(marker).map(|at| (at, marker.len())))
            .min();
        let Some((at, len)) = found else {
            out.push_str(rest);
            return out;
        };
        let start = at + len;
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let Some(expected) = tail.rfind(", expected ") else {
            out.push_str(tail);
            return out;
        };
        let found = &tail[..expected];
        // `string "x"`, `integer `5``, `floating point `1.5``, `boolean `true``, `map`, ...
        let kind = found.split(['"', '`']).next().unwrap_or_default().trim();
        out.push_str(if kind.is_empty() { "a value" } else { kind });
        rest = &tail[expected..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        page_size: Option<u32>,
        name: Option<String>,
    }

    #[test]
    fn type_errors_name_the_line_key_and_what_belongs_never_the_value() {
        let none = |_: &str| None;
        let words =
            |path: &str| (path == "page_size").then(|| "a whole number from 1 to 200".into());
        type Expecting<'a> = &'a dyn Fn(&str) -> Option<String>;
        let cases: [(&str, Expecting, &str); 7] = [
            (
                "page_size: MIIsecret-token\n",
                &none,
                "line 1: page_size must be a whole number, 0 or more, not text",
            ),
            (
                "\npage_size: -7\n",
                &none,
                "line 2: page_size must be a whole number, 0 or more; the number written is not",
            ),
            (
                "name: [a, b]\n",
                &none,
                "line 1: name must be text, not a list",
            ),
            (
                "7\n",
                &none,
                "the file must be a map of settings, not a number",
            ),
            (
                "page_size: many\n",
                &words,
                "line 1: page_size must be a whole number from 1 to 200, not text",
            ),
            (
                "page_size: 1.5\n",
                &words,
                "line 1: page_size must be a whole number from 1 to 200; the number written is not",
            ),
            (
                "name: a\npage_sise: 5\n",
                &words,
                "line 2: the file has no key \"page_sise\"; the keys are page_size or name",
            ),
        ];
        for (text, expecting, said) in cases {
            assert_eq!(
                from_str::<Shape>(text, expecting).unwrap_err(),
                said,
                "{text:?}"
            );
        }
        assert_eq!(without_values("no values here"), "no values here");
    }

    #[test]
    fn deeply_nested_flow_collections_are_refused_before_parsing() {
        // Parsed, this would take 20 s before failing on the recursion limit.
        let e = from_str::<Shape>(&"{a: ".repeat(80_000), &|_| None).unwrap_err();
        assert!(e.contains("more than the 4096"), "{e}");
        let within = format!("name: {}{}\n", "[".repeat(100), "]".repeat(100));
        assert!(!from_str::<Shape>(&within, &|_| None)
            .unwrap_err()
            .contains("more than"));
    }
}
