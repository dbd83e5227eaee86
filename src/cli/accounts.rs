//! The accounts file (`--config.file`): the Huawei Cloud accounts one exporter probes, each with
//! its own sign-in and settings, validated whole before anything uses it. Every error names the
//! account and the key. Secrets come only from files or named environment variables; the flags
//! give the defaults of every setting an account leaves out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use reqwest::Url;
use serde::Deserialize;

use crate::exposition::ExpositionConfig;
use crate::files::{read_text, FileError, MAX_CONFIG_BYTES};
use crate::flags::{parse_positive_duration, parse_time_zone};
use crate::secret::{read_secret_file, Secret};
use crate::upstream::batch_query::{BatchQueryConfig, Filters};
use crate::upstream::credentials::{
    parse_credentials_file, AccessKey, Credentials, IamCredentials, ProjectScope,
};
use crate::upstream::http::endpoint_url;
use crate::upstream::retry::RetryPolicy;

use super::{limits, parse_instance_metrics, parse_instance_name, parse_query_time, PoolSceneTag};

/// Reads named environment variables holding secrets: the process environment, or a test's.
#[derive(Clone)]
pub struct EnvLookup(Arc<Lookup>);

type Lookup = dyn Fn(&str) -> Option<Secret> + Send + Sync;

impl EnvLookup {
    pub fn new(lookup: impl Fn(&str) -> Option<Secret> + Send + Sync + 'static) -> Self {
        EnvLookup(Arc::new(lookup))
    }

    /// The process environment, trimmed; an empty variable counts as unset.
    pub fn process() -> Self {
        Self::new(|name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(Secret::new)
        })
    }

    pub fn get(&self, name: &str) -> Option<Secret> {
        (self.0)(name)
    }
}

/// No variables at all.
impl Default for EnvLookup {
    fn default() -> Self {
        Self::new(|_| None)
    }
}

impl std::fmt::Debug for EnvLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnvLookup")
    }
}

/// One account, ready to read: what its source and its exposition need. Two loads of an
/// unchanged file give equal accounts, which is how a reload knows what to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub name: String,
    pub upstream: BatchQueryConfig,
    pub exposition: ExpositionConfig,
}

/// What an account leaves out comes from the flags.
#[derive(Debug, Clone)]
pub struct AccountDefaults {
    pub endpoint: Url,
    pub iam_endpoint: Url,
    pub page_size: u32,
    pub concurrency: u32,
    pub timeout: Duration,
    pub max_pages: u32,
    pub max_retries: u32,
    pub max_response_bytes: u64,
    pub time_zone: time::UtcOffset,
    pub exposition: ExpositionConfig,
}

/// Why the accounts file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("cannot read --config.file {path:?}: {source}; check the path and that this user may read it")]
    Read { path: PathBuf, source: FileError },
    #[error("--config.file {path:?}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("--config.file {path:?}: account {account:?}: {key}: {message}")]
    Key {
        path: PathBuf,
        account: String,
        key: &'static str,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    /// A name given twice is refused: YAML would keep the second silently, and the first
    /// account's credentials would go to the second's endpoint.
    #[serde(deserialize_with = "crate::yaml::unique_keys")]
    accounts: BTreeMap<String, AccountShape>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AccountShape {
    endpoint: Option<String>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    iam: Option<IamShape>,
    access_key: Option<AccessKeyShape>,
    project_id: Option<String>,
    page_size: Option<u32>,
    concurrency: Option<u32>,
    timeout: Option<String>,
    max_pages: Option<u32>,
    max_retries: Option<u32>,
    time_zone: Option<String>,
    instance_metrics: Option<String>,
    instance_name_label: Option<String>,
    #[serde(default)]
    filters: FiltersShape,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IamShape {
    endpoint: Option<String>,
    username: String,
    domain: String,
    project: Option<String>,
    project_id: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessKeyShape {
    credentials_file: Option<PathBuf>,
    access_key_env: Option<String>,
    secret_key_env: Option<String>,
    security_token_env: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FiltersShape {
    pool_scene_tag: Option<String>,
    instance_id: Option<String>,
    instance_name: Option<String>,
    query_start_time: Option<String>,
    query_end_time: Option<String>,
}

/// Longest account name: it is a URL parameter and a label value.
const MAX_NAME: usize = 64;

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
    let shape: FileShape =
        crate::yaml::from_str(text).map_err(|e| match crate::yaml::given_twice(&e, text) {
            Some((name, lines)) => format(format!(
                "account {name:?} is defined twice (lines {}); give each account its own name",
                crate::yaml::lines(&lines)
            )),
            None => format(e),
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
            let mut reader = Reader {
                path,
                name: &name,
                env,
                warnings: &mut *warnings,
            };
            reader.account(account, defaults)
        })
        .collect()
}

/// Validates one account, with what every error needs to name it.
struct Reader<'a> {
    path: &'a Path,
    name: &'a str,
    env: &'a EnvLookup,
    warnings: &'a mut Vec<String>,
}

impl Reader<'_> {
    fn error(&self, key: &'static str, message: impl Into<String>) -> AccountsError {
        AccountsError::Key {
            path: self.path.to_path_buf(),
            account: self.name.to_string(),
            key,
            message: message.into(),
        }
    }

    fn account(
        &mut self,
        shape: AccountShape,
        defaults: &AccountDefaults,
    ) -> Result<Account, AccountsError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_NAME
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(self.error(
                "name",
                format!("write at most {MAX_NAME} letters, digits, - _ or ."),
            ));
        }
        let endpoint = match &shape.endpoint {
            Some(text) => endpoint_url("endpoint", text, "https://koophone.myhuaweicloud.com")
                .map_err(|e| self.error("endpoint", e.to_string()))?,
            None => defaults.endpoint.clone(),
        };
        let credentials = self.credentials(&shape, defaults)?;
        let timeout = match &shape.timeout {
            Some(text) => {
                parse_positive_duration(text).map_err(|e| self.error("timeout", e.to_string()))?
            }
            None => defaults.timeout,
        };
        let time_zone = match &shape.time_zone {
            Some(text) => parse_time_zone(text).map_err(|e| self.error("time_zone", e))?,
            None => defaults.time_zone,
        };
        let mut exposition = defaults.exposition.clone();
        if let Some(text) = &shape.instance_metrics {
            exposition.instance_metrics =
                parse_instance_metrics(text).map_err(|e| self.error("instance_metrics", e))?;
        }
        if let Some(text) = &shape.instance_name_label {
            exposition.instance_name =
                parse_instance_name(text).map_err(|e| self.error("instance_name_label", e))?;
        }
        let page_size = self.within("page_size", shape.page_size, limits::PAGE_SIZE)?;
        let concurrency = self.within("concurrency", shape.concurrency, limits::CONCURRENCY)?;
        let max_pages = self.within("max_pages", shape.max_pages, limits::MAX_PAGES)?;
        let max_retries = self.within("max_retries", shape.max_retries, limits::MAX_RETRIES)?;
        Ok(Account {
            name: self.name.to_string(),
            upstream: BatchQueryConfig {
                endpoint,
                credentials,
                page_size: page_size.unwrap_or(defaults.page_size),
                concurrency: concurrency.unwrap_or(defaults.concurrency) as usize,
                timeout,
                max_pages: max_pages.unwrap_or(defaults.max_pages),
                retry: RetryPolicy {
                    max_retries: max_retries.unwrap_or(defaults.max_retries),
                },
                max_response_bytes: defaults.max_response_bytes,
                filters: self.filters(shape.filters)?,
                time_zone,
            },
            exposition,
        })
    }

    fn within(
        &self,
        key: &'static str,
        value: Option<u32>,
        range: std::ops::RangeInclusive<u32>,
    ) -> Result<Option<u32>, AccountsError> {
        match value {
            Some(v) if !range.contains(&v) => Err(self.error(
                key,
                format!(
                    "{v} is out of range; write {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
            v => Ok(v),
        }
    }

    fn filters(&self, shape: FiltersShape) -> Result<Filters, AccountsError> {
        let pool_scene_tag = match &shape.pool_scene_tag {
            Some(text) => Some(
                PoolSceneTag::from_str(text, false)
                    .map_err(|_| {
                        self.error("filters.pool_scene_tag", "write CLOUD_APP or CLOUD_PHONE")
                    })?
                    .as_str(),
            ),
            None => None,
        };
        for (key, value) in [
            ("filters.query_start_time", &shape.query_start_time),
            ("filters.query_end_time", &shape.query_end_time),
        ] {
            if let Some(text) = value {
                parse_query_time(text).map_err(|e| self.error(key, e))?;
            }
        }
        if let (Some(start), Some(end)) = (&shape.query_start_time, &shape.query_end_time) {
            if end < start {
                return Err(self.error(
                    "filters.query_end_time",
                    "is earlier than query_start_time; swap them",
                ));
            }
        }
        Ok(Filters {
            pool_scene_tag,
            instance_id: shape.instance_id,
            instance_name: shape.instance_name,
            query_start_time: shape.query_start_time,
            query_end_time: shape.query_end_time,
        })
    }

    /// Exactly one sign-in: a token, an IAM user or an access key.
    fn credentials(
        &mut self,
        shape: &AccountShape,
        defaults: &AccountDefaults,
    ) -> Result<Credentials, AccountsError> {
        let token = shape.token_file.is_some() || shape.token_env.is_some();
        let given: Vec<&str> = [
            (token, "token_file/token_env"),
            (shape.iam.is_some(), "iam"),
            (shape.access_key.is_some(), "access_key"),
        ]
        .into_iter()
        .filter_map(|(set, key)| set.then_some(key))
        .collect();
        if given.len() > 1 {
            return Err(self.error(
                "sign-in",
                format!("{} are all set; keep exactly one", given.join(" and ")),
            ));
        }
        if shape.project_id.is_some() && shape.access_key.is_none() {
            return Err(self.error(
                "project_id",
                "is the X-Project-Id of access-key signing; for IAM write iam.project_id",
            ));
        }
        if token {
            let secret = self.secret(
                ("token_file", shape.token_file.as_deref()),
                ("token_env", shape.token_env.as_deref()),
            )?;
            return Ok(Credentials::Token(secret));
        }
        if let Some(iam) = &shape.iam {
            let password = self.secret(
                ("iam.password_file", iam.password_file.as_deref()),
                ("iam.password_env", iam.password_env.as_deref()),
            )?;
            let project = match (&iam.project, &iam.project_id) {
                (Some(name), None) => ProjectScope::Name(name.clone()),
                (None, Some(id)) => ProjectScope::Id(id.clone()),
                _ => {
                    return Err(self.error(
                        "iam.project",
                        "write exactly one of iam.project (name) and iam.project_id",
                    ))
                }
            };
            let endpoint = match &iam.endpoint {
                Some(text) => endpoint_url("iam.endpoint", text, "https://iam.myhuaweicloud.com")
                    .map_err(|e| self.error("iam.endpoint", e.to_string()))?,
                None => defaults.iam_endpoint.clone(),
            };
            return Ok(Credentials::Iam(IamCredentials {
                endpoint,
                username: iam.username.clone(),
                domain: iam.domain.clone(),
                project,
                password,
            }));
        }
        let Some(key) = &shape.access_key else {
            return Err(self.error(
                "sign-in",
                "none given; write token_file or token_env, iam, or access_key",
            ));
        };
        let (access_key, secret_key, file_token) = match &key.credentials_file {
            Some(path) => {
                if key.access_key_env.is_some() || key.secret_key_env.is_some() {
                    return Err(self.error(
                        "access_key",
                        "credentials_file and access_key_env/secret_key_env are both set; keep one",
                    ));
                }
                let text = self.file("access_key.credentials_file", path)?;
                let (ak, sk, token) = parse_credentials_file(text.expose()).ok_or_else(|| {
                    self.error(
                        "access_key.credentials_file",
                        format!("{path:?} holds no access_key and secret_key; write `access_key = ...` and `secret_key = ...` lines, or use the console's credentials.csv"),
                    )
                })?;
                (ak, Secret::new(sk), token.map(Secret::new))
            }
            None => {
                let ak =
                    self.variable("access_key.access_key_env", key.access_key_env.as_deref())?;
                let sk =
                    self.variable("access_key.secret_key_env", key.secret_key_env.as_deref())?;
                (ak.expose().to_string(), sk, None)
            }
        };
        let security_token = match &key.security_token_env {
            Some(_) => Some(self.variable(
                "access_key.security_token_env",
                key.security_token_env.as_deref(),
            )?),
            None => file_token,
        };
        Ok(Credentials::AkSk(AccessKey {
            access_key,
            secret_key,
            security_token,
            project_id: shape.project_id.clone(),
        }))
    }

    /// A secret from a file or a named variable, exactly one of the two.
    fn secret(
        &mut self,
        file: (&'static str, Option<&Path>),
        variable: (&'static str, Option<&str>),
    ) -> Result<Secret, AccountsError> {
        match (file.1, variable.1) {
            (Some(_), Some(_)) => {
                Err(self.error(file.0, format!("and {} are both set; keep one", variable.0)))
            }
            (Some(path), None) => self.file(file.0, path),
            (None, Some(_)) => self.variable(variable.0, variable.1),
            (None, None) => Err(self.error(
                file.0,
                format!("missing; write {} or {}", file.0, variable.0),
            )),
        }
    }

    fn file(&mut self, key: &'static str, path: &Path) -> Result<Secret, AccountsError> {
        let (secret, warning) =
            read_secret_file(key, path).map_err(|e| self.error(key, e.to_string()))?;
        if let Some(warning) = warning {
            self.warnings
                .push(format!("account {:?}: {warning}", self.name));
        }
        Ok(secret)
    }

    fn variable(&self, key: &'static str, name: Option<&str>) -> Result<Secret, AccountsError> {
        let name = name.ok_or_else(|| {
            self.error(key, "missing; name the environment variable that holds it")
        })?;
        self.env.get(name).ok_or_else(|| {
            self.error(
                key,
                format!("the environment variable {name} is not set or empty"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{InstanceMetrics, InstanceName};

    fn defaults() -> AccountDefaults {
        AccountDefaults {
            endpoint: Url::parse("https://koophone.myhuaweicloud.com").unwrap(),
            iam_endpoint: Url::parse("https://iam.myhuaweicloud.com").unwrap(),
            page_size: 100,
            concurrency: 4,
            timeout: Duration::from_secs(10),
            max_pages: 10_000,
            max_retries: 2,
            max_response_bytes: 32 << 20,
            time_zone: time::UtcOffset::UTC,
            exposition: ExpositionConfig {
                instance_metrics: InstanceMetrics::All,
                instance_name: InstanceName::Everywhere,
                backup_age_buckets: Arc::from([86_400u64]),
                max_groups: 1_000,
            },
        }
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
    page_size: 500
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
        assert_eq!(retail.upstream.page_size, 500);
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
        assert_eq!(games.upstream.timeout, Duration::from_secs(3));
        assert_eq!(games.upstream.page_size, 100, "the flag's default");
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
        assert!(
            e.contains("page_size") && e.contains("invalid type: string, expected u32"),
            "{e}"
        );
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
            e.contains("unknown field `account`") && e.contains("expected `accounts`"),
            "{e}"
        );
        let e = error("accounts:\n  games:\n    iam: {username: u, domain: d, project: p}\n");
        assert!(
            e.contains("\"games\"") && e.contains("write iam.password_file or iam.password_env"),
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
