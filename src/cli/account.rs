//! One account's settings, whichever source wrote them: an entry of the accounts file, or the
//! flags (which map into the same [`AccountShape`]). One reader checks both, so a setting has one
//! check, one range and one message; only its name differs (`token_file` in the file,
//! `--clouddevice.auth-token-file` on the command line), and both names come from one table
//! ([`Key`]). Secrets come only from files or named environment variables.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::ValueEnum;
use reqwest::Url;
use serde::Deserialize;

use crate::exposition::ExpositionConfig;
use crate::flags::{parse_positive_duration, parse_time_zone};
use crate::secret::{read_secret_file, Secret};
use crate::upstream::batch_query::{BatchQueryConfig, Filters};
use crate::upstream::credentials::{
    parse_credentials_file, AccessKey, Credentials, IamCredentials, ProjectScope,
};
use crate::upstream::http::endpoint_url;
use crate::upstream::settings::AccountSettings;

use super::{limits, parse_instance_metrics, parse_instance_name, parse_query_time, PoolSceneTag};

/// Reads named environment variables holding secrets: the process environment, or a test's. The
/// flags' sign-in reads fixed names ([`TOKEN_ENV`], [`PASSWORD_ENV`], ...); an entry of the
/// accounts file names its own (`token_env`, `iam.password_env`, ...).
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

    /// Exactly these variables: `--demo`'s tokens, or a test's environment.
    pub fn of(pairs: impl IntoIterator<Item = (String, Secret)>) -> Self {
        let pairs: Vec<(String, Secret)> = pairs.into_iter().collect();
        Self::new(move |name| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, secret)| secret.clone())
        })
    }

    pub fn get(&self, name: &str) -> Option<Secret> {
        (self.0)(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
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
    pub settings: AccountSettings,
    pub exposition: ExpositionConfig,
}

impl AccountDefaults {
    /// The flags' defaults (one backup-age bucket), for tests and the fuzz targets.
    #[doc(hidden)]
    pub fn example() -> Self {
        use crate::exposition::{InstanceMetrics, InstanceName};
        AccountDefaults {
            endpoint: Url::parse("https://koophone.myhuaweicloud.com").unwrap(),
            iam_endpoint: Url::parse("https://iam.myhuaweicloud.com").unwrap(),
            settings: AccountSettings::example(),
            exposition: ExpositionConfig {
                instance_metrics: InstanceMetrics::All,
                instance_name: InstanceName::Everywhere,
                backup_age_buckets: Arc::from([86_400u64]),
                max_groups: 1_000,
            },
        }
    }
}

/// An account as written: every key optional, checked by [`read`].
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AccountShape {
    pub endpoint: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub iam: Option<IamShape>,
    pub access_key: Option<AccessKeyShape>,
    pub project_id: Option<String>,
    /// Of an access key: the project of this name is looked up when no `project_id` is given.
    pub region: Option<String>,
    pub page_size: Option<u32>,
    pub concurrency: Option<u32>,
    pub timeout: Option<String>,
    pub max_pages: Option<u32>,
    pub max_instances: Option<u32>,
    pub max_retries: Option<u32>,
    /// A number, or 0 for no limit.
    pub requests_per_second: Option<f64>,
    pub time_zone: Option<String>,
    pub instance_metrics: Option<String>,
    pub instance_name_label: Option<String>,
    #[serde(default)]
    pub filters: FiltersShape,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IamShape {
    pub endpoint: Option<String>,
    pub username: Option<String>,
    pub domain: Option<String>,
    pub project: Option<String>,
    pub project_id: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyShape {
    pub credentials_file: Option<PathBuf>,
    pub access_key_env: Option<String>,
    pub secret_key_env: Option<String>,
    pub security_token_env: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct FiltersShape {
    pub pool_scene_tag: Option<String>,
    pub instance_id: Option<String>,
    pub instance_name: Option<String>,
    pub query_start_time: Option<String>,
    pub query_end_time: Option<String>,
}

/// The environment variables the flags' sign-in reads.
pub const TOKEN_ENV: &str = "CLOUDDEVICE_AUTH_TOKEN";
pub const PASSWORD_ENV: &str = "CLOUDDEVICE_IAM_PASSWORD";
pub const ACCESS_KEY_ENV: &str = "CLOUDDEVICE_ACCESS_KEY";
pub const SECRET_KEY_ENV: &str = "CLOUDDEVICE_SECRET_KEY";
pub const SECURITY_TOKEN_ENV: &str = "CLOUDDEVICE_SECURITY_TOKEN";

/// Every setting an error can name, and how each source spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Name,
    Endpoint,
    SignIn,
    Token,
    TokenFile,
    TokenEnv,
    Iam,
    IamEndpoint,
    IamUsername,
    IamDomain,
    IamProject,
    IamProjectId,
    IamPasswordFile,
    IamPasswordEnv,
    AccessKey,
    CredentialsFile,
    AccessKeyEnv,
    SecretKeyEnv,
    SecurityTokenEnv,
    ProjectId,
    Region,
    PageSize,
    Concurrency,
    Timeout,
    MaxPages,
    MaxInstances,
    MaxRetries,
    RequestsPerSecond,
    TimeZone,
    InstanceMetrics,
    InstanceNameLabel,
    PoolSceneTag,
    InstanceId,
    InstanceName,
    QueryStartTime,
    QueryEndTime,
}

impl Key {
    /// The accounts file's key, and the flag or environment variable that sets it.
    pub const fn names(self) -> (&'static str, &'static str) {
        match self {
            Key::Name => ("name", "name"),
            Key::Endpoint => ("endpoint", "--clouddevice.endpoint"),
            Key::SignIn => ("sign-in", "sign-in"),
            Key::Token => ("token_file/token_env", "a token (--clouddevice.auth-token-file or CLOUDDEVICE_AUTH_TOKEN)"),
            Key::TokenFile => ("token_file", "--clouddevice.auth-token-file"),
            Key::TokenEnv => ("token_env", TOKEN_ENV),
            Key::Iam => ("iam", "an IAM user (--iam.username with --iam.password-file or CLOUDDEVICE_IAM_PASSWORD)"),
            Key::IamEndpoint => ("iam.endpoint", "--iam.endpoint"),
            Key::IamUsername => ("iam.username", "--iam.username"),
            Key::IamDomain => ("iam.domain", "--iam.domain"),
            Key::IamProject => ("iam.project", "--iam.project"),
            Key::IamProjectId => ("iam.project_id", "--iam.project-id"),
            Key::IamPasswordFile => ("iam.password_file", "--iam.password-file"),
            Key::IamPasswordEnv => ("iam.password_env", PASSWORD_ENV),
            Key::AccessKey => ("access_key", "an access key (--clouddevice.credentials-file, or CLOUDDEVICE_ACCESS_KEY with CLOUDDEVICE_SECRET_KEY)"),
            Key::CredentialsFile => ("access_key.credentials_file", "--clouddevice.credentials-file"),
            Key::AccessKeyEnv => ("access_key.access_key_env", ACCESS_KEY_ENV),
            Key::SecretKeyEnv => ("access_key.secret_key_env", SECRET_KEY_ENV),
            Key::SecurityTokenEnv => ("access_key.security_token_env", SECURITY_TOKEN_ENV),
            Key::ProjectId => ("project_id", "--clouddevice.project-id"),
            Key::Region => ("region", "--clouddevice.region"),
            Key::PageSize => ("page_size", "--clouddevice.page-size"),
            Key::Concurrency => ("concurrency", "--clouddevice.concurrency"),
            Key::Timeout => ("timeout", "--clouddevice.timeout"),
            Key::MaxPages => ("max_pages", "--clouddevice.max-pages"),
            Key::MaxInstances => ("max_instances", "--clouddevice.max-instances"),
            Key::MaxRetries => ("max_retries", "--clouddevice.max-retries"),
            Key::RequestsPerSecond => ("requests_per_second", "--clouddevice.requests-per-second"),
            Key::TimeZone => ("time_zone", "--clouddevice.time-zone"),
            Key::InstanceMetrics => ("instance_metrics", "--collector.instance-metrics"),
            Key::InstanceNameLabel => ("instance_name_label", "--collector.instance-name"),
            Key::PoolSceneTag => ("filters.pool_scene_tag", "--clouddevice.pool-scene-tag"),
            Key::InstanceId => ("filters.instance_id", "--clouddevice.instance-id"),
            Key::InstanceName => ("filters.instance_name", "--clouddevice.instance-name"),
            Key::QueryStartTime => ("filters.query_start_time", "--clouddevice.query-start-time"),
            Key::QueryEndTime => ("filters.query_end_time", "--clouddevice.query-end-time"),
        }
    }
}

/// Where an account was written, which names its keys in errors.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// An entry of the accounts file at `path`.
    File { path: &'a Path, account: &'a str },
    /// The flags and the environment.
    Flags,
}

/// Why an account's settings cannot be used: what is wrong, named as its source spells it.
#[derive(Debug, thiserror::Error)]
#[error("{}{text}", match .file { Some((path, account)) => format!("--config.file {path:?}: account {account:?}: "), None => String::new() })]
pub struct SettingError {
    file: Option<(PathBuf, String)>,
    text: String,
}

/// Longest account name: it is a URL parameter and a label value.
const MAX_NAME: usize = 64;

/// Checks one account and builds it; `env` looks up the variables it names, `warnings` collects
/// secrets files that other users can read, for the caller to log.
pub fn read(
    shape: AccountShape,
    name: &str,
    origin: Origin<'_>,
    defaults: &AccountDefaults,
    env: &EnvLookup,
    warnings: &mut Vec<String>,
) -> Result<Account, SettingError> {
    Reader {
        origin,
        env,
        warnings,
    }
    .account(shape, name, defaults)
}

/// The flags' settings and exposition, written as an account's keys in `shape`, checked by the
/// reader that checks each accounts-file entry, over `base`: what every account leaves out.
pub fn flag_defaults(
    shape: &AccountShape,
    base: AccountDefaults,
) -> Result<AccountDefaults, SettingError> {
    let reader = Reader {
        origin: Origin::Flags,
        env: &EnvLookup::default(),
        warnings: &mut Vec::new(),
    };
    Ok(AccountDefaults {
        settings: reader.settings(shape, &base.settings)?,
        exposition: reader.exposition(shape, &base.exposition)?,
        ..base
    })
}

/// Checks one account, with what every error needs to name it.
struct Reader<'a> {
    origin: Origin<'a>,
    env: &'a EnvLookup,
    warnings: &'a mut Vec<String>,
}

impl Reader<'_> {
    /// How this account's source spells `key`.
    fn name(&self, key: Key) -> &'static str {
        match self.origin {
            Origin::File { .. } => key.names().0,
            Origin::Flags => key.names().1,
        }
    }

    /// An error whose `text` names what it is about itself.
    fn whole(&self, text: String) -> SettingError {
        SettingError {
            file: match self.origin {
                Origin::File { path, account } => Some((path.to_path_buf(), account.to_string())),
                Origin::Flags => None,
            },
            text,
        }
    }

    fn error(&self, key: Key, message: impl std::fmt::Display) -> SettingError {
        self.whole(format!("{}: {message}", self.name(key)))
    }

    fn account(
        &mut self,
        shape: AccountShape,
        name: &str,
        defaults: &AccountDefaults,
    ) -> Result<Account, SettingError> {
        let name_ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(self.error(
                Key::Name,
                format!("write at most {MAX_NAME} letters, digits, - _ or ."),
            ));
        }
        let endpoint = match &shape.endpoint {
            Some(text) => {
                self.endpoint(Key::Endpoint, text, "https://koophone.myhuaweicloud.com")?
            }
            None => defaults.endpoint.clone(),
        };
        let credentials = self.credentials(&shape, defaults)?;
        let exposition = self.exposition(&shape, &defaults.exposition)?;
        Ok(Account {
            name: name.to_string(),
            upstream: BatchQueryConfig {
                endpoint,
                credentials,
                settings: self.settings(&shape, &defaults.settings)?,
                filters: self.filters(shape.filters)?,
            },
            exposition,
        })
    }

    /// The account's exposition: each key it writes, checked, over the flags' value.
    fn exposition(
        &self,
        shape: &AccountShape,
        flags: &ExpositionConfig,
    ) -> Result<ExpositionConfig, SettingError> {
        let mut exposition = flags.clone();
        if let Some(text) = &shape.instance_metrics {
            exposition.instance_metrics =
                parse_instance_metrics(text).map_err(|e| self.error(Key::InstanceMetrics, e))?;
        }
        if let Some(text) = &shape.instance_name_label {
            exposition.instance_name =
                parse_instance_name(text).map_err(|e| self.error(Key::InstanceNameLabel, e))?;
        }
        Ok(exposition)
    }

    /// The account's settings: each key it writes, checked, over the flags' value.
    fn settings(
        &self,
        shape: &AccountShape,
        flags: &AccountSettings,
    ) -> Result<AccountSettings, SettingError> {
        let number = |key, value: Option<u32>, range, flag| match value {
            Some(v) => self.within(key, v, range),
            None => Ok(flag),
        };
        Ok(AccountSettings {
            page_size: number(
                Key::PageSize,
                shape.page_size,
                limits::PAGE_SIZE,
                flags.page_size,
            )?,
            concurrency: number(
                Key::Concurrency,
                shape.concurrency,
                limits::CONCURRENCY,
                flags.concurrency as u32,
            )? as usize,
            timeout: match &shape.timeout {
                Some(text) => {
                    parse_positive_duration(text).map_err(|e| self.error(Key::Timeout, e))?
                }
                None => flags.timeout,
            },
            max_pages: number(
                Key::MaxPages,
                shape.max_pages,
                limits::MAX_PAGES,
                flags.max_pages,
            )?,
            max_instances: number(
                Key::MaxInstances,
                shape.max_instances,
                limits::MAX_INSTANCES,
                flags.max_instances,
            )?,
            max_retries: number(
                Key::MaxRetries,
                shape.max_retries,
                limits::MAX_RETRIES,
                flags.max_retries,
            )?,
            requests_per_second: match shape.requests_per_second {
                Some(rate) => {
                    super::rate(rate).map_err(|e| self.error(Key::RequestsPerSecond, e))?
                }
                None => flags.requests_per_second,
            },
            max_response_bytes: flags.max_response_bytes,
            time_zone: match &shape.time_zone {
                Some(text) => parse_time_zone(text).map_err(|e| self.error(Key::TimeZone, e))?,
                None => flags.time_zone,
            },
        })
    }

    fn endpoint(&self, key: Key, text: &str, example: &'static str) -> Result<Url, SettingError> {
        endpoint_url(self.name(key), text, example).map_err(|e| self.whole(e.to_string()))
    }

    fn within(
        &self,
        key: Key,
        value: u32,
        range: std::ops::RangeInclusive<u32>,
    ) -> Result<u32, SettingError> {
        match value {
            v if !range.contains(&v) => Err(self.error(
                key,
                format!(
                    "{v} is out of range; write {} to {}{}",
                    range.start(),
                    range.end(),
                    match key {
                        Key::PageSize => format!("; {}", limits::PAGE_SIZE_NOTE),
                        _ => String::new(),
                    }
                ),
            )),
            v => Ok(v),
        }
    }

    fn filters(&self, shape: FiltersShape) -> Result<Filters, SettingError> {
        let pool_scene_tag = match &shape.pool_scene_tag {
            Some(text) => Some(
                PoolSceneTag::from_str(text, false)
                    .map_err(|_| self.error(Key::PoolSceneTag, "write CLOUD_APP or CLOUD_PHONE"))?
                    .as_str(),
            ),
            None => None,
        };
        for (key, value, most) in [
            (
                Key::InstanceId,
                &shape.instance_id,
                limits::INSTANCE_ID_CHARS,
            ),
            (
                Key::InstanceName,
                &shape.instance_name,
                limits::INSTANCE_NAME_CHARS,
            ),
        ] {
            let chars = value.as_deref().map_or(0, |v| v.chars().count());
            if chars > most {
                return Err(self.error(
                    key,
                    format!("is {chars} characters long; the API accepts at most {most}"),
                ));
            }
        }
        for (key, value) in [
            (Key::QueryStartTime, &shape.query_start_time),
            (Key::QueryEndTime, &shape.query_end_time),
        ] {
            if let Some(text) = value {
                parse_query_time(text).map_err(|e| self.error(key, e))?;
            }
        }
        // Both times have one fixed format, so text order is time order.
        if let (Some(start), Some(end)) = (&shape.query_start_time, &shape.query_end_time) {
            if end < start {
                return Err(self.error(
                    Key::QueryEndTime,
                    format!(
                        "is earlier than {}; swap them",
                        self.name(Key::QueryStartTime)
                    ),
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
    ) -> Result<Credentials, SettingError> {
        let token = shape.token_file.is_some() || shape.token_env.is_some();
        let given: Vec<&str> = [
            (token, Key::Token),
            (shape.iam.is_some(), Key::Iam),
            (shape.access_key.is_some(), Key::AccessKey),
        ]
        .into_iter()
        .filter_map(|(set, key)| set.then_some(self.name(key)))
        .collect();
        if given.len() > 1 {
            return Err(self.error(
                Key::SignIn,
                format!("{} are set together; keep exactly one", given.join(" and ")),
            ));
        }
        if shape.project_id.is_some() && shape.access_key.is_none() {
            return Err(self.error(
                Key::ProjectId,
                format!(
                    "is the X-Project-Id of access-key signing; drop it, or for IAM write {}",
                    self.name(Key::IamProjectId)
                ),
            ));
        }
        if token {
            let secret = self.secret(
                (Key::TokenFile, shape.token_file.as_deref()),
                (Key::TokenEnv, shape.token_env.as_deref()),
            )?;
            return Ok(Credentials::Token(secret));
        }
        if let Some(iam) = &shape.iam {
            return self.iam(iam, defaults);
        }
        let Some(key) = &shape.access_key else {
            let demo = match self.origin {
                Origin::Flags => "; or try --demo",
                Origin::File { .. } => "",
            };
            return Err(self.error(
                Key::SignIn,
                format!(
                    "none given; set {}, {} or {}{demo}",
                    self.name(Key::Token),
                    self.name(Key::Iam),
                    self.name(Key::AccessKey)
                ),
            ));
        };
        self.access_key(key, shape, defaults)
    }

    fn iam(
        &mut self,
        iam: &IamShape,
        defaults: &AccountDefaults,
    ) -> Result<Credentials, SettingError> {
        let password = self.secret(
            (Key::IamPasswordFile, iam.password_file.as_deref()),
            (Key::IamPasswordEnv, iam.password_env.as_deref()),
        )?;
        let username = iam.username.clone().ok_or_else(|| {
            self.error(
                Key::IamUsername,
                "missing; IAM sign-in needs the user's name",
            )
        })?;
        let domain = iam.domain.clone().ok_or_else(|| {
            self.error(
                Key::IamDomain,
                "missing; IAM sign-in needs the account (domain) the user belongs to",
            )
        })?;
        let project = match (&iam.project, &iam.project_id) {
            (Some(name), None) => ProjectScope::Name(name.clone()),
            (None, Some(id)) => ProjectScope::Id(id.clone()),
            _ => {
                return Err(self.error(
                    Key::IamProject,
                    format!(
                        "write exactly one of {} (name) and {}: the token is scoped to a project",
                        self.name(Key::IamProject),
                        self.name(Key::IamProjectId)
                    ),
                ))
            }
        };
        let endpoint = match &iam.endpoint {
            Some(text) => self.endpoint(Key::IamEndpoint, text, "https://iam.myhuaweicloud.com")?,
            None => defaults.iam_endpoint.clone(),
        };
        Ok(Credentials::Iam(IamCredentials {
            endpoint,
            username,
            domain,
            project,
            password,
        }))
    }

    fn access_key(
        &mut self,
        key: &AccessKeyShape,
        shape: &AccountShape,
        defaults: &AccountDefaults,
    ) -> Result<Credentials, SettingError> {
        let (access_key, secret_key, file_token) = match &key.credentials_file {
            Some(path) => {
                if key.access_key_env.is_some() || key.secret_key_env.is_some() {
                    return Err(self.error(
                        Key::CredentialsFile,
                        format!(
                            "set together with {}/{}; keep one",
                            self.name(Key::AccessKeyEnv),
                            self.name(Key::SecretKeyEnv)
                        ),
                    ));
                }
                let text = self.file(Key::CredentialsFile, path)?;
                let (ak, sk, token) = parse_credentials_file(text.expose()).ok_or_else(|| {
                    self.error(
                        Key::CredentialsFile,
                        format!("{path:?} holds no access_key and secret_key; write `access_key = ...` and `secret_key = ...` lines, or use the credentials.csv the console downloads"),
                    )
                })?;
                (ak, Secret::new(sk), token.map(Secret::new))
            }
            None => {
                let ak = self.variable(Key::AccessKeyEnv, key.access_key_env.as_deref())?;
                let sk = self.variable(Key::SecretKeyEnv, key.secret_key_env.as_deref())?;
                (ak.expose().to_string(), sk, None)
            }
        };
        let security_token = match &key.security_token_env {
            Some(name) => Some(self.variable(Key::SecurityTokenEnv, Some(name))?),
            None => file_token,
        };
        let (project_id, region) = (shape.project_id.clone(), shape.region.clone());
        if project_id.is_none() && region.is_none() {
            return Err(self.error(
                Key::Region,
                format!(
                    "missing; an access key sends the project's id as X-Project-Id, as Huawei's SDKs do: set {} (the project of that name is looked up from IAM) or {}",
                    self.name(Key::Region),
                    self.name(Key::ProjectId)
                ),
            ));
        }
        Ok(Credentials::AkSk(AccessKey {
            access_key,
            secret_key,
            security_token,
            project_id,
            region,
            iam_endpoint: defaults.iam_endpoint.clone(),
        }))
    }

    /// A secret from a file or a named variable, exactly one of the two.
    fn secret(
        &mut self,
        file: (Key, Option<&Path>),
        variable: (Key, Option<&str>),
    ) -> Result<Secret, SettingError> {
        match (file.1, variable.1) {
            (Some(_), Some(_)) => Err(self.error(
                file.0,
                format!("set together with {}; keep one", self.name(variable.0)),
            )),
            (Some(path), None) => self.file(file.0, path),
            (None, Some(_)) => self.variable(variable.0, variable.1),
            (None, None) => Err(self.error(
                file.0,
                format!(
                    "missing; set {} or {}",
                    self.name(file.0),
                    self.name(variable.0)
                ),
            )),
        }
    }

    fn file(&mut self, key: Key, path: &Path) -> Result<Secret, SettingError> {
        let (secret, warning) =
            read_secret_file(self.name(key), path).map_err(|e| self.whole(e.to_string()))?;
        if let Some(warning) = warning {
            self.warnings.push(match self.origin {
                Origin::File { account, .. } => format!("account {account:?}: {warning}"),
                Origin::Flags => warning,
            });
        }
        Ok(secret)
    }

    /// The secret in the variable `name` names; an access key needs both of its variables.
    fn variable(&self, key: Key, name: Option<&str>) -> Result<Secret, SettingError> {
        let name = name.ok_or_else(|| {
            self.error(
                key,
                format!(
                    "missing; an access key needs {} and {}, or {}",
                    self.name(Key::AccessKeyEnv),
                    self.name(Key::SecretKeyEnv),
                    self.name(Key::CredentialsFile)
                ),
            )
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

    fn error(shape: AccountShape, origin: Origin<'_>) -> String {
        let env = EnvLookup::new(|name| (name == "PW").then(|| Secret::new("pw")));
        read(
            shape,
            "games",
            origin,
            &AccountDefaults::example(),
            &env,
            &mut Vec::new(),
        )
        .unwrap_err()
        .to_string()
    }

    fn iam_without_domain() -> AccountShape {
        AccountShape {
            iam: Some(IamShape {
                username: Some("u".into()),
                project: Some("p".into()),
                password_env: Some("PW".into()),
                ..IamShape::default()
            }),
            ..AccountShape::default()
        }
    }

    #[test]
    fn one_mistake_has_one_message_named_as_each_source_spells_it() {
        let file = Origin::File {
            path: Path::new("accounts.yml"),
            account: "games",
        };
        assert_eq!(
            error(iam_without_domain(), file),
            "--config.file \"accounts.yml\": account \"games\": iam.domain: missing; IAM sign-in needs the account (domain) the user belongs to"
        );
        assert_eq!(
            error(iam_without_domain(), Origin::Flags),
            "--iam.domain: missing; IAM sign-in needs the account (domain) the user belongs to"
        );
        let token_and_project = || AccountShape {
            token_env: Some("PW".into()),
            project_id: Some("p1".into()),
            ..AccountShape::default()
        };
        assert!(error(token_and_project(), file).ends_with(
            "project_id: is the X-Project-Id of access-key signing; drop it, or for IAM write iam.project_id"
        ));
        assert_eq!(
            error(token_and_project(), Origin::Flags),
            "--clouddevice.project-id: is the X-Project-Id of access-key signing; drop it, or for IAM write --iam.project-id"
        );
    }

    #[test]
    fn pages_and_filters_are_held_to_what_the_api_accepts() {
        let file = Origin::File {
            path: Path::new("accounts.yml"),
            account: "games",
        };
        let token = || AccountShape {
            token_env: Some("PW".into()),
            ..AccountShape::default()
        };
        let big_page = AccountShape {
            page_size: Some(201),
            ..token()
        };
        assert!(error(big_page, file).ends_with(
            "page_size: 201 is out of range; write 1 to 200; 200 is the largest page_size the ListInstances API accepts"
        ));
        let long = |id: usize, name: usize| AccountShape {
            filters: FiltersShape {
                instance_id: Some("i".repeat(id)),
                instance_name: Some("名".repeat(name)),
                ..FiltersShape::default()
            },
            ..token()
        };
        assert_eq!(
            error(long(33, 1), Origin::Flags),
            "--clouddevice.instance-id: is 33 characters long; the API accepts at most 32"
        );
        assert!(error(long(32, 129), file).ends_with(
            "filters.instance_name: is 129 characters long; the API accepts at most 128"
        ));
        let env = EnvLookup::new(|_| Some(Secret::new("t")));
        let defaults = AccountDefaults::example();
        let account = read(
            long(32, 128),
            "games",
            file,
            &defaults,
            &env,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(
            account
                .upstream
                .filters
                .instance_name
                .unwrap()
                .chars()
                .count(),
            128
        );
    }
}
