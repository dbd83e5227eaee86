//! The accounts file (`--config.file`): the Huawei Cloud accounts one exporter probes, each with
//! its own sign-in and settings, validated whole before anything uses it. Each account is read by
//! [`super::account`], as the flags' account is; every error names the account and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::account::{
    self, Account, AccountDefaults, AccountShape, EnvLookup, Origin, SettingError,
};
use super::limits;
use crate::files::{read_text, FileError, MAX_CONFIG_BYTES};

/// Why the accounts file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("cannot read --config.file {path:?}: {source}; check the path and that this user may read it")]
    Read { path: PathBuf, source: FileError },
    #[error("--config.file {path:?}: {message}")]
    Format { path: PathBuf, message: String },
    #[error(transparent)]
    Setting(#[from] SettingError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    /// A name given twice is refused: YAML would keep the second silently, and the first
    /// account's credentials would go to the second's endpoint.
    #[serde(deserialize_with = "crate::yaml::unique_keys")]
    accounts: BTreeMap<String, AccountShape>,
}

/// What a key of the accounts file holds, in the file's words, given its path
/// (`accounts.games.page_size`).
fn expecting(path: &str) -> Option<String> {
    let mut parts = path.splitn(3, '.');
    let (Some("accounts"), account, key) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let whole = |range: std::ops::RangeInclusive<u32>| {
        format!("a whole number from {} to {}", range.start(), range.end())
    };
    Some(match (account, key) {
        (None, _) => "a map of accounts, each under its name".into(),
        (Some(_), None) => "a map of the account's settings (a sign-in and any others)".into(),
        (Some(_), Some(key)) => match key {
            "page_size" => whole(limits::PAGE_SIZE),
            "concurrency" => whole(limits::CONCURRENCY),
            "max_pages" => whole(limits::MAX_PAGES),
            "max_instances" => whole(limits::MAX_INSTANCES),
            "max_retries" => whole(limits::MAX_RETRIES),
            "requests_per_second" => limits::RATE.into(),
            "timeout" => "a duration such as 10s or 1500ms".into(),
            "iam" => "a map of the IAM user's settings (username, domain, project, password_file or password_env)".into(),
            "access_key" => "a map of the access key's settings (credentials_file, or access_key_env and secret_key_env)".into(),
            "filters" => "a map of filters (pool_scene_tag, instance_id, instance_name, query_start_time, query_end_time)".into(),
            _ => "text".into(),
        },
    })
}

/// Loads and validates the accounts file. `warnings` collects secrets files that other users can
/// read, for the caller to log.
pub fn load(
    path: &Path,
    defaults: &AccountDefaults,
    env: &EnvLookup,
    warnings: &mut Vec<String>,
) -> Result<Vec<Account>, AccountsError> {
    let text = read_text(path, MAX_CONFIG_BYTES).map_err(|source| AccountsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path, defaults, env, warnings)
}

/// Validates the text of an accounts file read from `path` (which names it in errors); `load`
/// reads the file first.
pub fn parse(
    text: &str,
    path: &Path,
    defaults: &AccountDefaults,
    env: &EnvLookup,
    warnings: &mut Vec<String>,
) -> Result<Vec<Account>, AccountsError> {
    let format = |message: String| AccountsError::Format {
        path: path.to_path_buf(),
        message,
    };
    let shape: FileShape = crate::yaml::from_str(text, &expecting).map_err(|e| {
        match crate::yaml::given_twice(&e, text) {
            Some((name, lines)) => format(format!(
                "account {name:?} is defined twice (lines {}); give each account its own name",
                crate::yaml::lines(&lines)
            )),
            None => format(e),
        }
    })?;
    if shape.accounts.is_empty() {
        return Err(format(
            "names no accounts; add at least one under `accounts:`".into(),
        ));
    }
    shape
        .accounts
        .into_iter()
        .map(|(name, account)| {
            let origin = Origin::File {
                path,
                account: &name,
            };
            Ok(account::read(
                account, &name, origin, defaults, env, warnings,
            )?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::InstanceMetrics;
    use crate::secret::Secret;
    use crate::upstream::credentials::{Credentials, ProjectScope};
    use std::time::Duration;

    fn defaults() -> AccountDefaults {
        AccountDefaults::example()
    }

    fn env() -> EnvLookup {
        EnvLookup::new(|name: &str| match name {
            "GAMES_AK" => Some(Secret::new("AK-games")),
            "GAMES_SK" => Some(Secret::new("SK-games-5ecret")),
            "RETAIL_TOKEN" => Some(Secret::new("tok-retail")),
            _ => None,
        })
    }

    fn load_text(text: &str) -> Result<Vec<Account>, AccountsError> {
        parse(
            text,
            Path::new("accounts.yml"),
            &defaults(),
            &env(),
            &mut Vec::new(),
        )
    }

    fn error(text: &str) -> String {
        load_text(text).unwrap_err().to_string()
    }

    use crate::files::scratch::Scratch;

    #[test]
    fn three_accounts_in_three_modes_with_defaults_from_the_flags() {
        let dir = Scratch::new();
        let password = dir.secret("games.password", "pa55-5ecret\n", 0o600);
        let text = format!(
            "accounts:
  retail:
    endpoint: https://gw.example/koophone/
    token_env: RETAIL_TOKEN
    page_size: 150
    instance_metrics: problems
    filters: {{pool_scene_tag: CLOUD_PHONE}}
  games:
    iam: {{username: metrics-reader, domain: games-corp, project: cn-north-4,
          password_file: {password}}}
    timeout: 3s
  labs:
    access_key: {{access_key_env: GAMES_AK, secret_key_env: GAMES_SK}}
    project_id: p-labs
"
        );
        let accounts = load_text(&text).unwrap();
        let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["games", "labs", "retail"]);
        let (games, labs, retail) = (&accounts[0], &accounts[1], &accounts[2]);
        assert_eq!(
            retail.upstream.endpoint.as_str(),
            "https://gw.example/koophone/"
        );
        assert_eq!(
            retail.upstream.credentials,
            Credentials::Token(Secret::new("tok-retail"))
        );
        assert_eq!(retail.upstream.settings.page_size, 150);
        assert_eq!(
            retail.exposition.instance_metrics,
            InstanceMetrics::Problems
        );
        assert_eq!(retail.upstream.filters.pool_scene_tag, Some("CLOUD_PHONE"));
        let Credentials::Iam(iam) = &games.upstream.credentials else {
            panic!("IAM expected")
        };
        assert_eq!(iam.password.expose(), "pa55-5ecret");
        assert_eq!(iam.project, ProjectScope::Name("cn-north-4".into()));
        assert_eq!(games.upstream.settings.timeout, Duration::from_secs(3));
        assert_eq!(games.upstream.settings.page_size, 100, "the defaults'");
        assert_eq!(games.upstream.endpoint, defaults().endpoint);
        let Credentials::AkSk(key) = &labs.upstream.credentials else {
            panic!("AK/SK expected")
        };
        assert_eq!(key.access_key, "AK-games");
        assert_eq!(key.project_id.as_deref(), Some("p-labs"));
        // Secrets never show in Debug output.
        assert!(!format!("{accounts:?}").contains("5ecret"));
        // The same file gives equal accounts: what a reload keeps.
        assert_eq!(load_text(&text).unwrap(), accounts);
    }

    #[test]
    fn an_account_named_twice_is_refused_naming_both_lines() {
        let e = error(
            "accounts:\n  games:\n    token_env: RETAIL_TOKEN\n  retail:\n    token_env: RETAIL_TOKEN\n  \"games\":\n    token_env: RETAIL_TOKEN\n",
        );
        assert!(
            e.contains("account \"games\" is defined twice (lines 2 and 6)"),
            "{e}"
        );
    }

    #[test]
    fn a_type_error_names_the_key_and_type_but_never_the_value() {
        let e = error(
            "accounts:\n  retail:\n    token_env: RETAIL_TOKEN\n    page_size: MIIpasted-t0ken\n",
        );
        assert!(!e.contains("MIIpasted"), "{e}");
        assert_eq!(
            e,
            "--config.file \"accounts.yml\": line 4: accounts.retail.page_size must be a whole \
             number from 1 to 200, not text"
        );
        for (text, expected) in [
            ("accounts: [a]\n", "line 1: accounts must be a map of accounts, each under its name, not a list"),
            ("accounts:\n  a: 5\n", "line 2: accounts.a must be a map of the account's settings"),
            ("accounts:\n  a: {token_env: X, concurrency: -1}\n", "line 2: accounts.a.concurrency must be a whole number from 1 to 256; the number written is not"),
            ("accounts:\n  a: {token_env: X, filters: 3}\n", "line 2: accounts.a.filters must be a map of filters"),
            ("accounts:\n  a: {token_env: X, timeout: [1]}\n", "line 2: accounts.a.timeout must be a duration such as 10s or 1500ms, not a list"),
        ] {
            let e = error(text);
            assert!(e.contains(expected), "{text}: {e}");
            assert!(!e.contains("struct") && !e.contains("u32"), "{e}");
        }
    }

    #[test]
    fn a_deeply_nested_file_is_refused_before_it_is_parsed() {
        let e = error(&format!("accounts: {}", "{a: ".repeat(80_000)));
        assert!(e.contains("more than the 4096"), "{e}");
    }

    #[test]
    fn errors_name_the_account_and_the_key() {
        let e = error("accounts:\n  retail:\n    tokn_file: /x\n");
        assert!(e.contains("retail") && e.contains("tokn_file"), "{e}");
        let e = error("accounts:\n  retail:\n    token_file: /nonexistent/retail.token\n");
        assert!(
            e.contains("\"retail\"")
                && e.contains("token_file")
                && e.contains("/nonexistent/retail.token"),
            "{e}"
        );
        let e = error(
            "accounts:\n  games:\n    token_env: RETAIL_TOKEN\n    access_key: {access_key_env: GAMES_AK, secret_key_env: GAMES_SK}\n",
        );
        assert!(
            e.contains("\"games\"") && e.contains("keep exactly one"),
            "{e}"
        );
        let e = error("accounts:\n  games:\n    page_size: 5\n");
        assert!(e.contains("\"games\"") && e.contains("sign-in"), "{e}");
        let e = error("accounts:\n  games:\n    token_env: UNSET_VAR\n");
        assert!(e.contains("token_env") && e.contains("UNSET_VAR"), "{e}");
        let e = error("accounts:\n  games:\n    token_env: RETAIL_TOKEN\n    concurrency: 0\n");
        assert!(
            e.contains("concurrency") && e.contains("out of range"),
            "{e}"
        );
        let e = error("accounts:\n  games:\n    token_env: RETAIL_TOKEN\n    timeout: soon\n");
        assert!(e.contains("timeout"), "{e}");
        let e = error("accounts:\n  \"a b\":\n    token_env: RETAIL_TOKEN\n");
        assert!(e.contains("name"), "{e}");
        let e = error("accounts:\n  games:\n    token_env: RETAIL_TOKEN\n    project_id: p\n");
        assert!(e.contains("project_id"), "{e}");
        let e = error("accounts: {}\n");
        assert!(e.contains("no accounts"), "{e}");
        // The path (accounts.yml) names "account" too: the message must name the wrong key and
        // the right one.
        let e = error("account:\n  games: {}\n");
        assert!(
            e.contains("the file has no key \"account\"; the keys are accounts"),
            "{e}"
        );
        let e = error("accounts:\n  games:\n    iam: {username: u, domain: d, project: p}\n");
        assert!(
            e.contains("\"games\"") && e.contains("set iam.password_file or iam.password_env"),
            "{e}"
        );
        let e = error(
            "accounts:\n  games:\n    iam: {username: u, domain: d, project: p, password_env: X}\n",
        );
        assert!(e.contains("iam.password_env") && e.contains("X"), "{e}");
        let e = error(
            "accounts:\n  games:\n    endpoint: https://user:pw-5ecret@host/\n    token_env: RETAIL_TOKEN\n",
        );
        assert!(e.contains("endpoint") && !e.contains("5ecret"), "{e}");
    }
}
