//! Command line and environment: the raw flags (clap) and the validated configuration built from
//! them once at start-up. Every check that can fail on user input happens here, with a message
//! that names the flag and says what to fix. The layers below check again only what guards the
//! wire: `upstream::auth` refuses a credential that is not a valid header value, whatever built
//! it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};

use crate::exposition::{ExpositionConfig, InstanceMetrics, InstanceName};
use crate::flags::{number, parse_duration, parse_positive_duration, whole, whole_number, LogArgs};
use crate::secret::Secret;
use crate::upstream::api_time::API_TIME_FORMAT;
use crate::upstream::batch_query::BatchQueryConfig;
use crate::upstream::http::{endpoint_url, EndpointError};
use crate::upstream::settings::AccountSettings;
use crate::web::config::{self as web_config, WebConfig, WebConfigError};
use crate::web::connection::ConnLimits;
use crate::web::{PROBE_PATH, SD_PATH};

pub mod account;
pub mod accounts;
pub mod advice;
pub mod credentials;

/// The values each per-account number may take: one copy, for the flags and the accounts file.
pub mod limits {
    use std::ops::RangeInclusive;

    /// The most `page_size` Huawei's API definition of ListInstances allows is 200.
    pub const PAGE_SIZE: RangeInclusive<u32> = 1..=200;
    /// Said with a page size out of range, from a flag or the accounts file.
    pub const PAGE_SIZE_NOTE: &str = "200 is the largest page_size the ListInstances API accepts";
    /// The longest filter values the API definition accepts, in characters.
    pub const INSTANCE_ID_CHARS: usize = 32;
    pub const INSTANCE_NAME_CHARS: usize = 128;
    pub const CONCURRENCY: RangeInclusive<u32> = 1..=256;
    pub const MAX_PAGES: RangeInclusive<u32> = 1..=u32::MAX;
    pub const MAX_INSTANCES: RangeInclusive<u32> = 1..=u32::MAX;
    pub const MAX_RETRIES: RangeInclusive<u32> = 0..=10;
    /// What `requests_per_second` takes, in words.
    pub const RATE: &str = "requests a second from 0.01 to 10000, or 0 for no limit";
}

/// `--clouddevice.requests-per-second`: 0 for no limit, else a rate from 0.01 to 10,000.
pub(crate) fn rate(rate: f64) -> Result<Option<f64>, String> {
    match rate {
        0.0 => Ok(None),
        rate if (0.01..=10_000.0).contains(&rate) => Ok(Some(rate)),
        _ => Err(format!("write {}", limits::RATE)),
    }
}

use account::{
    Account, AccountDefaults, AccountShape, EnvLookup, FiltersShape, Origin, SettingError,
};
use accounts::AccountsError;
use credentials::CredentialArgs;

#[derive(Debug, Args)]
pub struct ExporterArgs {
    /// Address to serve metrics on: `:PORT` listens on every interface, IPv4 and IPv6 (IPv4 alone where the machine has no IPv6); `HOST:PORT` on that address alone, e.g. 127.0.0.1:10123, 0.0.0.0:10123 (every IPv4 interface) or [::1]:10123.
    #[arg(
        long = "web.listen-address",
        default_value = ":10123",
        value_name = "ADDR"
    )]
    pub listen_address: String,

    /// The URL Prometheus reaches the exporter at, when it differs from the address a request arrives on (a proxy, a service name); /sd lists it.
    #[arg(long = "web.external-url", value_name = "URL")]
    pub external_url: Option<String>,

    /// Serve POST /-/reload, which reloads the web configuration and the accounts file as SIGHUP does.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        default_value = "/metrics",
        value_name = "PATH"
    )]
    pub telemetry_path: String,

    /// Base URL of the CloudDevice API.
    #[arg(
        long = "clouddevice.endpoint",
        default_value = "https://koophone.myhuaweicloud.com",
        value_name = "URL"
    )]
    pub endpoint: String,

    /// page_size asked for (at most 200, as the API allows); the exporter follows the page size the service actually returns.
    #[arg(long = "clouddevice.page-size", default_value_t = 200, value_name = "N",
          value_parser = whole::<u32>)]
    pub page_size: u32,

    /// Most page requests in flight at once.
    #[arg(long = "clouddevice.concurrency", default_value_t = 4, value_name = "N",
          value_parser = whole::<u32>)]
    pub concurrency: u32,

    /// Timeout of each request to the API (e.g. 10s, 1500ms).
    #[arg(
        long = "clouddevice.timeout",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub timeout: String,

    /// Most requests a second to the API, per account: pages, retries and every scrape together (0 = no limit). The gateway throttles each account past its own limit (APIGW.0308).
    #[arg(long = "clouddevice.requests-per-second", default_value_t = 0.0, value_name = "N",
          value_parser = number)]
    pub requests_per_second: f64,

    /// Most pages one scrape reads; a list that would need more fails the scrape instead.
    #[arg(long = "clouddevice.max-pages", default_value_t = 10_000, value_name = "N",
          value_parser = whole::<u32>)]
    pub max_pages: u32,

    /// Most instances one collection holds (about 1 kB of memory each); a longer list fails the
    /// collection instead, so a hostile or runaway API cannot take the exporter's memory.
    #[arg(long = "clouddevice.max-instances", default_value_t = 200_000, value_name = "N",
          value_parser = whole::<u32>)]
    pub max_instances: u32,

    /// Retries of a page after a transport error, a 5xx or a 429, within the scrape's deadline.
    #[arg(long = "clouddevice.max-retries", default_value_t = 2, value_name = "N",
          value_parser = whole::<u32>)]
    pub max_retries: u32,

    /// Largest response body read from the API, in bytes; a larger one fails the scrape.
    #[arg(long = "clouddevice.max-response-bytes", default_value_t = 32 << 20,
          value_name = "BYTES", value_parser = whole_number(1024..=1u64 << 40))]
    pub max_response_bytes: u64,

    /// Scrape timeout when the scraper sends no X-Prometheus-Scrape-Timeout-Seconds header.
    #[arg(long = "scrape.timeout", default_value = "10s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub scrape_timeout: Duration,

    /// Serve a scrape from the last collection, failed or not, if it ended less than this ago,
    /// so that a client looping on the telemetry path cannot make the exporter read the API
    /// again and again (0s = every scrape reads the API).
    #[arg(long = "scrape.min-interval", default_value = "10s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub min_interval: Duration,

    /// When a collection fails, serve the fleet of the last successful one if it is younger than
    /// this, with clouddevice_up 0 (0s = never): alerts hold through a failed scrape.
    #[arg(long = "scrape.serve-stale-for", default_value = "0s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub serve_stale_for: Duration,

    /// Read each account's list in the background every this long, and answer scrapes at once from the latest collection (0s = read on each scrape).
    #[arg(long = "collection.interval", default_value = "0s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub collection_interval: Duration,

    /// Deadline of each scheduled collection (0s = the interval).
    #[arg(long = "collection.timeout", default_value = "0s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub collection_timeout: Duration,

    /// Web configuration file (exporter-toolkit format): TLS, basic auth, headers. Re-read on SIGHUP.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Most /metrics requests served at once; more get 503 (0 = no limit).
    #[arg(long = "web.max-requests", default_value_t = 40, value_name = "N", value_parser = whole::<u32>)]
    pub max_requests: u32,

    /// Most /metrics and /probe answers in flight over all accounts together; more get 503
    /// (0 = no limit). A client that reads nothing holds about 1 MB until --web.write-timeout:
    /// this bounds what stalled readers cost, however many accounts there are.
    #[arg(long = "web.max-requests-total", default_value_t = 120, value_name = "N",
          value_parser = whole::<u32>)]
    pub max_requests_total: u32,

    /// Longest a client may take to send a request's head (and TLS handshake), from its first byte.
    #[arg(long = "web.read-header-timeout", default_value = "10s",
          value_name = "DURATION", value_parser = parse_positive_duration)]
    pub read_header_timeout: Duration,

    /// Longest a kept-alive connection may wait for its next request before it is closed.
    #[arg(long = "web.idle-timeout", default_value = "2m",
          value_name = "DURATION", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,

    /// Longest a client may take to read a response, from its first byte to its last.
    #[arg(long = "web.write-timeout", default_value = "1m",
          value_name = "DURATION", value_parser = parse_positive_duration)]
    pub write_timeout: Duration,

    /// Optional filter on the resource pool scenario.
    #[arg(long = "clouddevice.pool-scene-tag", value_name = "TAG")]
    pub pool_scene_tag: Option<PoolSceneTag>,

    /// Optional filter: only the instance with this ID (at most 32 characters).
    #[arg(long = "clouddevice.instance-id", value_name = "ID")]
    pub instance_id: Option<String>,

    /// Optional filter: only instances with this name (at most 128 characters).
    #[arg(long = "clouddevice.instance-name", value_name = "NAME")]
    pub instance_name: Option<String>,

    /// Optional query_start_time filter, UTC, as `2023-08-15 14:30:45`.
    #[arg(long = "clouddevice.query-start-time", value_name = "TIME")]
    pub query_start_time: Option<String>,

    /// Optional query_end_time filter, UTC, as `2023-08-15 14:30:45`.
    #[arg(long = "clouddevice.query-end-time", value_name = "TIME")]
    pub query_end_time: Option<String>,

    /// Time zone of the backup_time and restore_time the API sends: UTC or an offset such as +08:00.
    #[arg(
        long = "clouddevice.time-zone",
        default_value = "UTC",
        value_name = "ZONE",
        allow_hyphen_values = true
    )]
    pub time_zone: String,

    #[command(flatten)]
    pub credentials: CredentialArgs,

    /// Accounts file (YAML): the accounts served on /probe?target=NAME and listed on /sd, each
    /// with its own sign-in. Re-read on SIGHUP. The flags above give each account's defaults.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Most requests in flight to the API over all accounts together, on top of each one's concurrency; one account takes at most half, and each has one more of its own that never waits for the others.
    #[arg(long = "clouddevice.max-requests-in-flight",
          default_value_t = 64, value_name = "N", value_parser = whole_number(1..=4096u32))]
    pub max_requests_in_flight: u32,

    /// Per-instance series for all instances, only those in trouble (`problems`), or none (`true`/`false` mean all/none).
    #[arg(long = "collector.instance-metrics", value_name = "MODE",
          default_value = "all", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "all")]
    pub instance_metrics: String,

    /// Where per-instance series carry instance_name: everywhere, info (clouddevice_instance_info only) or nowhere.
    #[arg(
        long = "collector.instance-name",
        default_value = "everywhere",
        value_name = "WHERE"
    )]
    pub instance_name_label: String,

    /// Bounds of the backup-age buckets (clouddevice_instances_by_backup_age), ascending; +Inf is always added.
    #[arg(long = "collector.backup-age-buckets", default_value = "1d,3d,7d,30d",
          value_name = "DURATIONS", value_parser = parse_age_buckets)]
    pub backup_age_buckets: Arc<[u64]>,

    /// Most region and SKU pairs exported; past it the smallest are counted together under region="other",sku="other".
    #[arg(long = "collector.max-groups", default_value_t = 1_000,
          value_name = "N", value_parser = whole_number(1..=100_000u32))]
    pub max_groups: u32,

    #[command(flatten)]
    pub log: LogArgs,

    /// Serve metrics of a built-in simulated fleet: no credentials, no network needed.
    #[arg(long = "demo")]
    pub demo: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolSceneTag {
    #[value(name = "CLOUD_APP")]
    CloudApp,
    #[value(name = "CLOUD_PHONE")]
    CloudPhone,
}

impl PoolSceneTag {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolSceneTag::CloudApp => "CLOUD_APP",
            PoolSceneTag::CloudPhone => "CLOUD_PHONE",
        }
    }
}

/// Durations separated by commas, ascending, each at least a second: the bounds in seconds.
fn parse_age_buckets(s: &str) -> Result<Arc<[u64]>, String> {
    let mut bounds = Vec::new();
    for part in s.split(',').map(str::trim) {
        let seconds = parse_positive_duration(part)?.as_secs();
        if seconds == 0 {
            return Err(format!("{part} is under a second"));
        }
        if bounds.last().is_some_and(|last| *last >= seconds) {
            return Err(format!(
                "{part} is not longer than the bound before it; list the bounds in ascending order, e.g. 1d,3d,7d,30d"
            ));
        }
        bounds.push(seconds);
    }
    Ok(bounds.into())
}

pub(crate) fn parse_instance_name(s: &str) -> Result<InstanceName, String> {
    match s {
        "everywhere" => Ok(InstanceName::Everywhere),
        "info" => Ok(InstanceName::Info),
        "nowhere" => Ok(InstanceName::Nowhere),
        _ => Err("write everywhere, info or nowhere".into()),
    }
}

/// `all`, `problems` or `none`; the boolean spellings of the flag's first version mean all and
/// none.
pub(crate) fn parse_instance_metrics(s: &str) -> Result<InstanceMetrics, String> {
    match s.to_ascii_lowercase().as_str() {
        "all" | "true" | "yes" | "on" | "1" => Ok(InstanceMetrics::All),
        "problems" => Ok(InstanceMetrics::Problems),
        "none" | "false" | "no" | "off" | "0" => Ok(InstanceMetrics::None),
        _ => Err("write all, problems or none".into()),
    }
}

pub(crate) fn parse_query_time(s: &str) -> Result<String, String> {
    time::PrimitiveDateTime::parse(s, API_TIME_FORMAT)
        .map(|_| s.to_string())
        .map_err(|_| "write the time in UTC as 2023-08-15 14:30:45".to_string())
}

/// The validated configuration of the exporter.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_address: String,
    /// `--web.external-url`, which `/sd` lists.
    pub external: Option<crate::web::sd::External>,
    /// `--web.enable-lifecycle`.
    pub lifecycle: bool,
    /// What token lifetimes and the reuse and stale windows are measured on: the system's;
    /// tests put in one they move.
    pub clock: crate::clock::Clock,
    pub telemetry_path: String,
    pub exposition: ExpositionConfig,
    /// Used when the scraper does not send its timeout.
    pub scrape_timeout: Duration,
    /// Reuse window of a successful collection; zero turns it off.
    pub min_interval: Duration,
    /// How old the last successful collection may be to be served when one fails; zero never.
    pub serve_stale_for: Duration,
    /// Collections every this long in the background (`--collection.interval`), each with its
    /// deadline (`--collection.timeout`); `None` to collect on each scrape.
    pub collection: Option<(Duration, Duration)>,
    /// Most concurrent /metrics requests; zero means no limit.
    pub max_requests: u32,
    /// Most /metrics and /probe answers in flight over all accounts; zero means no limit.
    pub max_requests_total: u32,
    /// How long a connection may take over each part of a request.
    pub conn_limits: ConnLimits,
    /// TLS and basic auth, and the file they came from (re-read on SIGHUP).
    pub web: Option<(PathBuf, WebConfig)>,
    /// The account of the flags; `None` with an accounts file. Under `--demo` the endpoint is
    /// replaced by the in-process simulator's once it listens.
    pub upstream: Option<BatchQueryConfig>,
    /// The accounts file, loaded, and how to load it again.
    pub accounts: Option<AccountsFile>,
    /// What every account of the file (and of `--demo`) leaves out.
    pub account_defaults: AccountDefaults,
    /// Most API requests in flight over all accounts.
    pub max_requests_in_flight: u32,
    pub demo: bool,
    /// Things worth saying once logging is up (a secrets file other users can read).
    pub warnings: Vec<String>,
}

/// The accounts file, as loaded at start-up, and what a reload needs to load it again.
#[derive(Debug, Clone)]
pub struct AccountsFile {
    /// `None` for `--demo`'s built-in accounts, which never reload.
    pub path: Option<PathBuf>,
    pub accounts: Vec<Account>,
    /// Where the file's `*_env` keys are looked up.
    pub env: EnvLookup,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--web.listen-address {0:?} is not HOST:PORT or :PORT; write e.g. :10123 or 127.0.0.1:10123")]
    ListenAddress(String),
    #[error("--web.telemetry-path {0:?} {1}")]
    TelemetryPath(String, &'static str),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Account(#[from] SettingError),
    #[error(transparent)]
    WebConfig(#[from] WebConfigError),
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    #[error("--config.file and the sign-in flags ({0}) are both set; put every account in the file, or drop --config.file for one account")]
    FileAndFlags(String),
    #[error("--demo serves built-in accounts; drop --config.file (or --demo)")]
    DemoAndFile,
    #[error("--collection.timeout is the deadline of scheduled collections; set --collection.interval too (or drop --collection.timeout)")]
    TimeoutWithoutInterval,
}

/// What `--demo` serves, known before the flags are validated: the in-process simulator's
/// address and its accounts, each with the token it accepts. The first is the flags' account.
#[derive(Debug, Clone)]
pub struct Demo {
    pub endpoint: reqwest::Url,
    pub accounts: Vec<(String, Secret)>,
}

impl ExporterArgs {
    /// Validates the flags; `env` holds the secrets from the environment, passed in so tests
    /// need no process-wide environment. `--demo` without its simulator ([`Self::validate_demo`])
    /// points at `--clouddevice.endpoint`, for tests of the flags alone.
    pub fn validate(self, env: EnvLookup) -> Result<Config, ConfigError> {
        self.validate_demo(env, None)
    }

    /// Validates the flags, with `--demo`'s simulator already listening.
    pub fn validate_demo(self, env: EnvLookup, demo: Option<&Demo>) -> Result<Config, ConfigError> {
        let listen_address = listen_address(&self.listen_address)?;
        let external = self
            .external_url
            .as_deref()
            .map(|text| {
                endpoint_url(
                    "--web.external-url",
                    text,
                    "https://exporter.example:10123/",
                )
                .map(|url| crate::web::sd::External::from_url(&url))
            })
            .transpose()?;
        let collection = match (self.collection_interval, self.collection_timeout) {
            (interval, timeout) if interval.is_zero() && !timeout.is_zero() => {
                return Err(ConfigError::TimeoutWithoutInterval)
            }
            (interval, _) if interval.is_zero() => None,
            (interval, timeout) if timeout.is_zero() => Some((interval, interval)),
            both => Some(both),
        };
        let mut warnings = Vec::new();
        let web = match &self.web_config_file {
            Some(path) => {
                let config = web_config::load(path)?;
                warnings.extend(config.warnings.iter().cloned());
                Some((path.clone(), config))
            }
            None => None,
        };
        let account_defaults = self.account_defaults(demo)?;
        let (upstream, accounts) = self.accounts(&env, demo, &account_defaults, &mut warnings)?;
        let telemetry_path = telemetry_path(&self.telemetry_path, accounts.is_some())?;
        Ok(Config {
            listen_address,
            external,
            lifecycle: self.enable_lifecycle,
            clock: crate::clock::Clock::system(),
            telemetry_path,
            exposition: account_defaults.exposition.clone(),
            scrape_timeout: self.scrape_timeout,
            min_interval: self.min_interval,
            serve_stale_for: self.serve_stale_for,
            collection,
            max_requests: self.max_requests,
            max_requests_total: self.max_requests_total,
            conn_limits: ConnLimits {
                read_header: self.read_header_timeout,
                idle: self.idle_timeout,
                write: self.write_timeout,
            },
            web,
            upstream,
            accounts,
            account_defaults,
            max_requests_in_flight: self.max_requests_in_flight,
            demo: self.demo,
            warnings,
        })
    }

    /// What every account leaves out: the flags, written as an account's keys and read by the
    /// reader of the accounts file, so that each setting has one check and one message.
    fn account_defaults(&self, demo: Option<&Demo>) -> Result<AccountDefaults, ConfigError> {
        // Checked even under --demo, which then reads its own simulator instead.
        let endpoint = endpoint_url(
            "--clouddevice.endpoint",
            &self.endpoint,
            "https://koophone.myhuaweicloud.com",
        )?;
        let flags = AccountShape {
            page_size: Some(self.page_size),
            concurrency: Some(self.concurrency),
            timeout: Some(self.timeout.clone()),
            max_pages: Some(self.max_pages),
            max_instances: Some(self.max_instances),
            max_retries: Some(self.max_retries),
            requests_per_second: Some(self.requests_per_second),
            time_zone: Some(self.time_zone.clone()),
            instance_metrics: Some(self.instance_metrics.clone()),
            instance_name_label: Some(self.instance_name_label.clone()),
            ..AccountShape::default()
        };
        // Every setting `flags` writes replaces the example's.
        let base = AccountDefaults {
            endpoint: match demo.filter(|_| self.demo) {
                Some(demo) => demo.endpoint.clone(),
                None => endpoint,
            },
            iam_endpoint: endpoint_url(
                "--iam.endpoint",
                &self.credentials.iam_endpoint,
                "https://iam.myhuaweicloud.com",
            )?,
            settings: AccountSettings {
                max_response_bytes: self.max_response_bytes,
                ..AccountSettings::example()
            },
            exposition: ExpositionConfig {
                instance_metrics: InstanceMetrics::All,
                instance_name: InstanceName::Everywhere,
                backup_age_buckets: self.backup_age_buckets.clone(),
                max_groups: self.max_groups as usize,
            },
        };
        Ok(account::flag_defaults(&flags, base)?)
    }

    /// The flags' account, or the accounts of the file or of `--demo`: each read by
    /// [`account::read`], the one reader of an account's keys.
    fn accounts(
        &self,
        env: &EnvLookup,
        demo: Option<&Demo>,
        defaults: &AccountDefaults,
        warnings: &mut Vec<String>,
    ) -> Result<(Option<BatchQueryConfig>, Option<AccountsFile>), ConfigError> {
        let filters = FiltersShape {
            pool_scene_tag: self.pool_scene_tag.map(|tag| tag.as_str().to_string()),
            instance_id: self.instance_id.clone(),
            instance_name: self.instance_name.clone(),
            query_start_time: self.query_start_time.clone(),
            query_end_time: self.query_end_time.clone(),
        };
        match (&self.config_file, self.demo) {
            (Some(_), true) => Err(ConfigError::DemoAndFile),
            (Some(path), false) => {
                let modes = self.credentials.modes(env);
                if !modes.is_empty() {
                    return Err(ConfigError::FileAndFlags(modes.join(", ")));
                }
                let accounts = accounts::load(path, defaults, env, warnings)?;
                let file = AccountsFile {
                    path: Some(path.clone()),
                    accounts,
                    env: env.clone(),
                };
                Ok((None, Some(file)))
            }
            // --demo's built-in accounts: the flags' account signed in with each simulated
            // account's token, handed to the reader as the variable named after the account.
            (None, true) => {
                let tokens: Vec<(String, Secret)> = match demo {
                    Some(demo) => demo.accounts.clone(),
                    None => vec![("demo".into(), Secret::new("demo"))],
                };
                let names: Vec<String> = tokens.iter().map(|(name, _)| name.clone()).collect();
                let lookup = EnvLookup::of(tokens);
                let accounts = names
                    .into_iter()
                    .map(|name| {
                        let shape = AccountShape {
                            token_env: Some(name.clone()),
                            filters: filters.clone(),
                            ..AccountShape::default()
                        };
                        account::read(shape, &name, Origin::Flags, defaults, &lookup, warnings)
                    })
                    .collect::<Result<Vec<Account>, _>>()?;
                let first = accounts.first().map(|a| a.upstream.clone());
                let file = AccountsFile {
                    path: None,
                    accounts,
                    env: EnvLookup::default(),
                };
                Ok((first, Some(file)))
            }
            (None, false) => {
                let shape = AccountShape {
                    filters,
                    ..self.credentials.shape(env)
                };
                let account =
                    account::read(shape, "flags", Origin::Flags, defaults, env, warnings)?;
                Ok((Some(account.upstream), None))
            }
        }
    }
}

/// `:PORT` (every interface, [`crate::web::signals::bind`]) or `HOST:PORT`, with a numeric port.
pub fn listen_address(s: &str) -> Result<String, ConfigError> {
    let bad = || ConfigError::ListenAddress(s.to_string());
    let (_, port) = s.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    Ok(s.to_string())
}

/// `accounts`: whether `/probe` and `/sd` are served, whose paths are then taken.
fn telemetry_path(s: &str, accounts: bool) -> Result<String, ConfigError> {
    let err = |why| Err(ConfigError::TelemetryPath(s.to_string(), why));
    if accounts && [PROBE_PATH, SD_PATH].contains(&s) {
        return err("is where the accounts are probed or listed; write e.g. /metrics");
    }
    if !s.starts_with('/') || s.len() < 2 {
        return err("must start with / and name a path other than /; write e.g. /metrics");
    }
    if s.starts_with("/-/") {
        return err("is reserved for /-/healthy and /-/ready; write e.g. /metrics");
    }
    // The router treats `{`, `}` and `*` as captures; plain path characters only.
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
    {
        return err("may hold only letters, digits and / - _ . ~");
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::account::TOKEN_ENV;
    use super::*;
    use crate::logging::{LogFormat, LogLevel};
    use crate::upstream::credentials::Credentials;
    use clap::{CommandFactory, Parser};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        exporter: ExporterArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("clouddevice_exporter").chain(args.iter().copied()))
    }

    /// The flags, parsed and validated with a token from the environment.
    fn config(args: &[&str]) -> Result<Config, String> {
        let env = EnvLookup::of([(TOKEN_ENV.into(), Secret::new("tok"))]);
        let cli = parse(args).map_err(|e| e.to_string())?;
        cli.exporter.validate(env).map_err(|e| e.to_string())
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_contract() {
        let cli = parse(&[]).unwrap();
        let a = &cli.exporter;
        assert_eq!(a.listen_address, ":10123");
        assert_eq!(a.telemetry_path, "/metrics");
        assert_eq!(a.endpoint, "https://koophone.myhuaweicloud.com");
        assert_eq!((a.page_size, a.concurrency), (200, 4));
        assert_eq!(a.pool_scene_tag, None);
        let exposition = config(&[]).unwrap().exposition;
        assert_eq!(exposition.instance_metrics, InstanceMetrics::All);
        assert_eq!(
            (a.log.level, a.log.format),
            (LogLevel::Info, LogFormat::Logfmt)
        );
    }

    #[test]
    fn instance_metrics_modes_and_their_old_spellings() {
        let mode = |args: &[&str]| config(args).map(|c| c.exposition.instance_metrics);
        for (value, expected) in [
            ("all", InstanceMetrics::All),
            ("true", InstanceMetrics::All),
            ("problems", InstanceMetrics::Problems),
            ("none", InstanceMetrics::None),
            ("false", InstanceMetrics::None),
        ] {
            let flag = format!("--collector.instance-metrics={value}");
            assert_eq!(mode(&[flag.as_str()]).unwrap(), expected, "{value}");
        }
        assert_eq!(
            mode(&["--collector.instance-metrics"]).unwrap(),
            InstanceMetrics::All
        );
        assert!(mode(&["--collector.instance-metrics=some"]).is_err());
    }

    #[test]
    fn bad_values_are_refused_naming_the_flag() {
        for args in [
            &["--clouddevice.page-size", "0"][..],
            &["--clouddevice.concurrency", "many"],
            &["--clouddevice.concurrency", "0"],
            &["--clouddevice.max-retries", "11"],
            &["--clouddevice.requests-per-second", "0.001"],
            &["--clouddevice.requests-per-second", "fast"],
            &["--web.max-requests", "lots"],
            &["--collector.max-groups", "x"],
            &["--clouddevice.max-response-bytes", "a lot"],
            &["--clouddevice.pool-scene-tag", "CLOUD_TV"],
            &["--clouddevice.query-start-time", "2023-08-15T14:30:45"],
            &["--clouddevice.timeout", "10"],
            &["--clouddevice.timeout", "0s"],
            &["--collector.instance-name", "somewhere"],
            &["--log.format", "xml"],
        ] {
            let err = config(args).unwrap_err();
            assert!(err.contains(args[0]), "{args:?}: {err}");
            // The reader's words, not Rust's ("invalid digit found in string").
            assert!(
                !err.contains("invalid digit") && !err.contains("literal"),
                "{err}"
            );
        }
        let err = config(&["--clouddevice.page-size", "500"]).unwrap_err();
        assert_eq!(
            err,
            "--clouddevice.page-size: 500 is out of range; write 1 to 200; \
             200 is the largest page_size the ListInstances API accepts"
        );
        let settings = config(&[
            "--clouddevice.page-size",
            "200",
            "--clouddevice.timeout",
            "2s",
        ])
        .unwrap()
        .account_defaults
        .settings;
        assert_eq!(
            (settings.page_size, settings.timeout),
            (200, Duration::from_secs(2))
        );
    }

    #[test]
    fn backup_age_buckets_are_ascending_durations() {
        let buckets = |s: &str| {
            parse(&["--collector.backup-age-buckets", s]).map(|c| c.exporter.backup_age_buckets)
        };
        assert_eq!(
            &*parse(&[]).unwrap().exporter.backup_age_buckets,
            [86_400, 259_200, 604_800, 2_592_000]
        );
        assert_eq!(&*buckets("12h, 2d").unwrap(), [43_200, 172_800]);
        for bad in ["2d,1d", "1d,1d", "soon", "0s", "500ms", ""] {
            assert!(buckets(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_are_utc_or_a_fixed_offset() {
        let zone = |s: &str| {
            config(&["--clouddevice.time-zone", s]).map(|c| c.account_defaults.settings.time_zone)
        };
        assert_eq!(zone("UTC").unwrap(), time::UtcOffset::UTC);
        let default = config(&[]).unwrap().account_defaults.settings.time_zone;
        assert_eq!(default, time::UtcOffset::UTC);
        assert_eq!(zone("+08:00").unwrap(), time::macros::offset!(+8));
        assert_eq!(zone("-05:30").unwrap(), time::macros::offset!(-5:30));
        for bad in ["08:00", "+8", "Asia/Shanghai", "+25:00"] {
            assert!(zone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_address_forms() {
        assert_eq!(listen_address(":10123").unwrap(), ":10123");
        assert_eq!(listen_address("127.0.0.1:0").unwrap(), "127.0.0.1:0");
        assert_eq!(listen_address("[::1]:9000").unwrap(), "[::1]:9000");
        assert!(listen_address("10123").is_err());
        assert!(listen_address(":http").is_err());
        assert!(listen_address(":70000").is_err());
    }

    #[test]
    fn telemetry_paths_that_would_break_routing_are_refused() {
        for bad in ["metrics", "/", "/-/healthy", "/{x}", "/a*"] {
            assert!(telemetry_path(bad, false).is_err(), "{bad}");
        }
        assert_eq!(
            telemetry_path("/custom/metrics", false).unwrap(),
            "/custom/metrics"
        );
        assert!(telemetry_path("/probe", false).is_ok());
        assert!(telemetry_path("/probe", true).is_err());
    }

    #[test]
    fn validated_config_carries_the_filters() {
        let cli = parse(&[
            "--demo",
            "--clouddevice.pool-scene-tag",
            "CLOUD_PHONE",
            "--clouddevice.instance-name",
            "CCTEST-00001",
        ])
        .unwrap();
        let config = cli.exporter.validate(EnvLookup::default()).unwrap();
        let pairs: Vec<_> = config
            .upstream
            .as_ref()
            .unwrap()
            .filters
            .query_pairs()
            .collect();
        assert_eq!(
            pairs,
            [
                ("instance_name", "CCTEST-00001"),
                ("pool_scene_tag", "CLOUD_PHONE")
            ]
        );
    }

    #[test]
    fn the_token_does_not_show_in_the_config_debug_output() {
        let cli = parse(&[]).unwrap();
        let env = EnvLookup::of([(TOKEN_ENV.into(), Secret::new("tok-5ecret"))]);
        let config = cli.exporter.validate(env).unwrap();
        assert!(
            matches!(&config.upstream.as_ref().unwrap().credentials, Credentials::Token(t) if t.expose() == "tok-5ecret")
        );
        assert!(!format!("{config:?}").contains("5ecret"));
    }

    #[test]
    fn the_telemetry_path_cannot_take_the_probe_or_sd_path_when_they_are_served() {
        for path in ["/probe", "/sd"] {
            let cli = parse(&["--demo", "--web.telemetry-path", path]).unwrap();
            let err = cli.exporter.validate(EnvLookup::default()).unwrap_err();
            assert!(err.to_string().contains(path), "{err}");
            // Without accounts to probe, the paths are free.
            let cli = parse(&["--web.telemetry-path", path]).unwrap();
            let env = EnvLookup::of([(TOKEN_ENV.into(), Secret::new("t"))]);
            assert!(cli.exporter.validate(env).is_ok(), "{path}");
        }
    }

    #[test]
    fn the_demo_is_configured_at_validation_with_its_simulator_and_accounts() {
        let demo = Demo {
            endpoint: "http://127.0.0.1:4321/".parse().unwrap(),
            accounts: vec![
                ("retail".into(), Secret::new("demo-retail")),
                ("games".into(), Secret::new("demo-games")),
            ],
        };
        let cli = parse(&["--demo", "--clouddevice.page-size", "50"]).unwrap();
        let config = cli
            .exporter
            .validate_demo(EnvLookup::default(), Some(&demo))
            .unwrap();
        let upstream = config.upstream.unwrap();
        assert_eq!(upstream.endpoint, demo.endpoint);
        assert!(
            matches!(&upstream.credentials, Credentials::Token(t) if t.expose() == "demo-retail")
        );
        let accounts = config.accounts.unwrap().accounts;
        let names: Vec<_> = accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["retail", "games"]);
        assert!(accounts
            .iter()
            .all(|a| a.upstream.endpoint == demo.endpoint && a.upstream.settings.page_size == 50));
        assert!(
            matches!(&accounts[1].upstream.credentials, Credentials::Token(t) if t.expose() == "demo-games")
        );
        // The flags' endpoint is still checked, though the demo does not read it.
        let cli = parse(&["--demo", "--clouddevice.endpoint", "ftp://x"]).unwrap();
        assert!(cli
            .exporter
            .validate_demo(EnvLookup::default(), Some(&demo))
            .is_err());
    }

    #[test]
    fn end_before_start_is_refused() {
        let cli = parse(&[
            "--demo",
            "--clouddevice.query-start-time",
            "2024-01-02 00:00:00",
            "--clouddevice.query-end-time",
            "2024-01-01 00:00:00",
        ])
        .unwrap();
        let err = cli.exporter.validate(EnvLookup::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--clouddevice.query-end-time: is earlier than --clouddevice.query-start-time; swap them"
        );
    }
}
