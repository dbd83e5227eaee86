//! `clouddevice_exporter simulate`: its flags, and starting the simulator from them.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::flags::{parse_duration, parse_time_zone, whole, whole_number, LogArgs};
use crate::secret::{read_secret_file, Secret, SecretFileError};
use crate::web::signals::{self, BindError};
use clouddevice_simulator::{self as simulator, PagingFields, SimConfig, SimIamUser};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Address the simulator listens on.
    #[arg(
        long = "listen-address",
        default_value = "127.0.0.1:10124",
        value_name = "ADDR"
    )]
    pub listen_address: String,

    /// Number of instances in the simulated fleet.
    #[arg(long = "instances", default_value_t = 1_000, value_name = "N",
          value_parser = whole::<usize>)]
    pub instances: usize,

    /// Seed the fleet is generated from: the same seed and size give the same fleet.
    #[arg(long = "seed", default_value_t = 1, value_name = "N",
          value_parser = whole::<u64>)]
    pub seed: u64,

    /// Largest page the simulator serves, whatever page_size asks for (the real API's most is 200; 100 plays a service that serves less than asked).
    #[arg(long = "max-page-size", default_value_t = 100, value_name = "N",
          value_parser = whole_number(1..=100_000u32))]
    pub max_page_size: u32,

    /// Where the paging fields go: `top` (as the reference's example) or `data` (as its tables).
    #[arg(long = "paging-fields", default_value = "top", value_name = "PLACE")]
    pub paging_fields: PagingFields,

    /// Latency added to every response (e.g. 50ms).
    #[arg(long = "latency", default_value = "0s", value_name = "DURATION",
          value_parser = parse_duration)]
    pub latency: Duration,

    /// The gateway's limit of requests a second per account: past it, HTTP 429 APIGW.0308 with Retry-After (0 = none).
    #[arg(long = "rate-limit", default_value_t = 0, value_name = "N", value_parser = whole::<u32>)]
    pub rate_limit: u32,

    /// Zone to write backup and restore times in: UTC or an offset such as +08:00.
    #[arg(long = "time-zone", default_value = "UTC",
          value_name = "ZONE", value_parser = parse_time_zone, allow_hyphen_values = true)]
    pub time_zone: time::UtcOffset,

    /// Share of instances in trouble, in percent (e.g. 1): each frozen, with a failed backup or
    /// restore, or an undocumented status; every other instance healthy. Without it the fleet
    /// keeps its default mixture of awkward cases (about one instance in six in trouble).
    #[arg(long = "trouble-percent",
          value_name = "PERCENT", value_parser = parse_percent)]
    pub trouble_percent: Option<f64>,

    /// Freeze every instance of this region (e.g. cn-south-1), as an overdue bill freezes an
    /// account's phones.
    #[arg(long = "frozen-region", value_name = "REGION")]
    pub frozen_region: Option<String>,

    /// Move the fleet every this long (e.g. 1m): statuses change and phones go and come back,
    /// deterministically from the seed, so dashboards and alerts show life. Without it the fleet
    /// never changes.
    #[arg(long = "change-every", value_name = "DURATION",
          value_parser = parse_duration)]
    pub change_every: Option<Duration>,

    /// Answer every request with this documented error code (e.g. KOOPHONE.API.1001).
    #[arg(long = "error-code", value_name = "CODE")]
    pub error_code: Option<String>,

    /// HTTP status sent with --error-code (the service also answers errors with 200).
    #[arg(long = "error-status", default_value_t = 400, value_name = "STATUS",
          value_parser = whole_number(100..=599u16))]
    pub error_status: u16,

    /// File holding the only X-Auth-Token accepted; without it any non-empty token is.
    #[arg(long = "auth-token-file", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// IAM user name the token endpoint accepts; without it any user and password are accepted.
    #[arg(long = "iam-username", value_name = "USER", requires_all = ["iam_domain", "iam_password_file"])]
    pub iam_username: Option<String>,

    /// Account (domain) name of that IAM user.
    #[arg(long = "iam-domain", value_name = "ACCOUNT", requires = "iam_username")]
    pub iam_domain: Option<String>,

    /// File holding that IAM user's password.
    #[arg(
        long = "iam-password-file",
        value_name = "FILE",
        requires = "iam_username"
    )]
    pub iam_password_file: Option<PathBuf>,

    /// Lifetime of the tokens the IAM endpoint issues (Huawei's are 24h).
    #[arg(long = "token-lifetime", default_value = "24h", value_name = "DURATION",
          value_parser = parse_duration)]
    pub token_lifetime: Duration,

    /// Access key whose signatures the API accepts (with --secret-key-file).
    #[arg(long = "access-key", value_name = "AK", requires = "secret_key_file")]
    pub access_key: Option<String>,

    /// File holding the secret key of --access-key.
    #[arg(long = "secret-key-file", value_name = "FILE", requires = "access_key")]
    pub secret_key_file: Option<PathBuf>,

    /// File holding the security token of temporary keys: signed requests must carry it, signed.
    #[arg(
        long = "security-token-file",
        value_name = "FILE",
        requires = "access_key"
    )]
    pub security_token_file: Option<PathBuf>,

    /// Serve this many accounts, `account-1` to `account-N`, each with its own fleet of
    /// --instances phones (seeds --seed, --seed+1, ...) and its own static token, `sim-account-K`:
    /// for trying the accounts file and for benchmarks. Takes no other credentials.
    #[arg(long = "accounts", default_value_t = 1, value_name = "N",
          value_parser = whole_number(1..=10_000u32),
          conflicts_with_all = ["auth_token_file", "iam_username", "access_key"])]
    pub accounts: u32,

    #[command(flatten)]
    pub log: LogArgs,
}

/// The name of account `k` (from 1) of `simulate --accounts N`, and the token it accepts.
pub fn sim_account(k: u32) -> (String, Secret) {
    (
        format!("account-{k}"),
        Secret::new(format!("sim-account-{k}")),
    )
}

/// Every minute with requests in it, logs what the gateway saw of each account's requests in that
/// minute: how many a second, the busiest second, and how many it throttled.
async fn report_stats(handle: &simulator::SimHandle, accounts: u32) {
    const EVERY: u64 = 60;
    let mut ticks = tokio::time::interval(Duration::from_secs(EVERY));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        for k in 1..=accounts {
            let account = match accounts {
                1 => Some(handle.clone()),
                _ => handle.account(&sim_account(k).0),
            };
            let Some(stats) = account.map(|a| a.gateway_stats(EVERY)) else {
                continue;
            };
            if stats.passed + stats.throttled > 0 {
                tracing::info!(
                    account = k,
                    requests_per_second = stats.passed as f64 / EVERY as f64,
                    busiest_second = stats.busiest_second,
                    throttled = stats.throttled,
                    "gateway stats of the last minute"
                );
            }
        }
    }
}

/// A number from 0 to 100.
fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "{s:?} is not a percentage from 0 to 100 (e.g. 1 or 0.5)"
        )),
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    File(#[from] SecretFileError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs the simulator these flags describe until SIGINT or SIGTERM.
pub async fn run(args: SimulateArgs) -> Result<(), SimError> {
    // The simulator compares what it is sent with these as plain text.
    let read = |flag: &'static str, path: &PathBuf| -> Result<String, SimError> {
        Ok(read_secret_file(flag, path)?.0.expose().to_string())
    };
    let token = match &args.auth_token_file {
        Some(path) => Some(read("--auth-token-file", path)?),
        None => None,
    };
    let iam_user = match (
        &args.iam_username,
        &args.iam_domain,
        &args.iam_password_file,
    ) {
        (Some(name), Some(domain), Some(path)) => Some(SimIamUser {
            name: name.clone(),
            domain: domain.clone(),
            password: read("--iam-password-file", path)?,
        }),
        _ => None,
    };
    let access_key = match (&args.access_key, &args.secret_key_file) {
        (Some(ak), Some(path)) => Some((ak.clone(), read("--secret-key-file", path)?)),
        _ => None,
    };
    let security_token = match &args.security_token_file {
        Some(path) => Some(read("--security-token-file", path)?),
        None => None,
    };
    let config = SimConfig {
        max_page_size: args.max_page_size,
        paging_fields: args.paging_fields,
        latency: args.latency,
        token,
        iam_user,
        token_lifetime: args.token_lifetime,
        access_key,
        security_token,
        time_zone: args.time_zone,
        trouble_percent: args.trouble_percent,
        frozen_region: args.frozen_region,
        change_every: args.change_every,
        rate_limit: (args.rate_limit > 0).then_some(args.rate_limit),
        error: args.error_code.map(|code| (args.error_status, code)),
        ..SimConfig::new(args.instances, args.seed)
    };
    let listener = signals::bind(&args.listen_address, "--listen-address").await?;
    let shutdown = signals::shutdown_signal()?;
    let instances = config.instances;
    let handle = if args.accounts > 1 {
        let tenants = (1..=args.accounts)
            .map(|k| {
                let (name, token) = sim_account(k);
                let account = SimConfig {
                    token: Some(token.expose().to_string()),
                    seed: config.seed + u64::from(k - 1),
                    ..config.clone()
                };
                (name, account)
            })
            .collect();
        simulator::start_accounts(tenants, listener)?
    } else {
        simulator::start(config, listener)?
    };
    tracing::info!(address = %handle.addr(), instances, accounts = args.accounts, "simulator listening");
    tokio::select! {
        _ = shutdown => {}
        _ = report_stats(&handle, args.accounts) => {}
    }
    drop(handle);
    Ok(())
}
