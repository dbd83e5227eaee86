//! Start-up: the whole command line (the exporter's flags, `simulate` or `healthcheck`), and the
//! wiring from a validated configuration to a serving process, with the errors that can stop it,
//! each phrased for the operator who has to fix it.

use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::cli::{Config, Demo, ExporterArgs};
use crate::collect::{Collector, CollectorPool, Retention, Schedule};
use crate::healthcheck::HealthcheckArgs;
use crate::probe::{self, Probes, TargetError};
use crate::scrape::Exporter;
use crate::secret::Secret;
use crate::self_metrics::{ExporterMetrics, ProcessMetrics};
use crate::simulate::SimulateArgs;
use crate::upstream::auth::AuthError;
use crate::upstream::batch_query::BatchQuery;
use crate::upstream::slots::RequestSlots;
use crate::web::reload::Reloader;
use crate::web::signals::{self, BindError};
use crate::web::{self, Telemetry, WebOptions};
use clouddevice_simulator::{self as simulator, SimConfig, SimHandle};
use tokio_util::sync::CancellationToken;

/// The whole command line: the exporter's flags, or the `simulate` subcommand.
#[derive(Debug, Parser)]
#[command(
    name = "clouddevice_exporter",
    version,
    about = "Prometheus exporter for Huawei Cloud CloudDevice (KooPhone cloud phone) instances.",
    long_about = "Prometheus exporter for Huawei Cloud CloudDevice (KooPhone cloud phone) instances.\n\n\
        Every scrape of the telemetry path reads the tenant's whole instance list from the \
        batch-query API and exports counts by region, SKU and status.\n\n\
        Credentials, exactly one of: a static token (--clouddevice.auth-token-file or \
        CLOUDDEVICE_AUTH_TOKEN), an IAM password (--iam.username, --iam.domain, --iam.project and \
        --iam.password-file or CLOUDDEVICE_IAM_PASSWORD), or an access key pair \
        (CLOUDDEVICE_ACCESS_KEY and CLOUDDEVICE_SECRET_KEY, or --clouddevice.credentials-file). \
        Secrets are never taken from a flag value. Every flag can also be set as CLOUDDEVICE_EXPORTER_<FLAG IN UPPER SNAKE CASE>."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub exporter: ExporterArgs,
}

impl Cli {
    /// The command line, every flag also read from its environment variable:
    /// `CLOUDDEVICE_EXPORTER_`, then a subcommand's name for its flags, then the flag's name, in
    /// upper snake case (`--web.listen-address`: `CLOUDDEVICE_EXPORTER_WEB_LISTEN_ADDRESS`;
    /// `simulate --seed`: `CLOUDDEVICE_EXPORTER_SIMULATE_SEED`). One rule, so no flag can
    /// drift from it.
    pub fn command_line() -> clap::Command {
        with_env_names(
            <Self as clap::CommandFactory>::command(),
            "CLOUDDEVICE_EXPORTER",
        )
    }

    /// Parses `args` (the program's name first) with the environment as [`Cli::command_line`]
    /// reads it.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command_line().try_get_matches_from(args)?;
        <Self as clap::FromArgMatches>::from_arg_matches(&matches)
    }
}

/// `command`'s flags (but help and version) read from `PREFIX_FLAG`, and its subcommands' from
/// `PREFIX_SUBCOMMAND_FLAG`.
fn with_env_names(command: clap::Command, prefix: &str) -> clap::Command {
    let snake = |name: &str| name.replace(['.', '-'], "_").to_uppercase();
    command
        .mut_args(|arg| match (arg.get_long(), arg.get_action()) {
            (_, clap::ArgAction::Help | clap::ArgAction::Version) | (None, _) => arg,
            (Some(long), _) => {
                let name = format!("{prefix}_{}", snake(long));
                arg.env(name)
            }
        })
        .mut_subcommands(|sub| {
            // `check` takes the exporter's flags, from the exporter's variables.
            let prefix = match sub.get_name() {
                "check" => prefix.to_string(),
                name => format!("{prefix}_{}", snake(name)),
            };
            with_env_names(sub, &prefix)
        })
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the built-in CloudDevice API simulator alone, as an HTTP server.
    Simulate(Box<SimulateArgs>),
    /// Ask a running exporter's /-/healthy: exit 0 when it answers 200 (for images without curl).
    Healthcheck(HealthcheckArgs),
    /// Sign in and read each account's whole list once, with the exporter's flags, and print what was found (phones by region and status, requests, time) or why it failed; exit 0 when every account was read whole. Binds no port.
    Check(Box<crate::check::CheckArgs>),
}

/// Size and seed of the fleet `--demo` serves, and how often it moves.
const DEMO_INSTANCES: usize = 500;
const DEMO_SEED: u64 = 1;
const DEMO_CHANGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("cannot set up the exporter's own metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot start the thread that reads the instance list: {0}")]
    Collector(std::io::Error),
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// Below this many open files after raising the limit, the exporter warns: every connection
/// takes one, and systemd's default soft limit (1024) is used up by a few hundred idle clients.
#[cfg(unix)]
const LOW_FILE_LIMIT: libc::rlim_t = 4096;

/// Raises the soft limit on open files to the hard limit, as Go programs do at start-up, and
/// warns when it stays low.
#[cfg(unix)]
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we pass and nothing else.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if before < limit.rlim_max && libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            limit.rlim_cur = before;
        }
        (before, limit.rlim_cur)
    };
    let (before, now) = raised;
    if now > before {
        tracing::debug!(from = before, to = now, "raised the open-file limit");
    }
    if now < LOW_FILE_LIMIT {
        tracing::warn!(limit = now, "the open-file limit is low: every connection takes a file, so a few hundred idle clients can stop scrapes; raise it (LimitNOFILE= in the systemd unit, ulimit -n)");
    }
}

#[cfg(not(unix))]
fn raise_file_limit() {}

/// The demo's accounts in the in-process simulator: each its own fleet and token. The flags'
/// account (`/metrics`) is the first.
const DEMO_ACCOUNTS: [(&str, usize, u64); 2] =
    [("retail", DEMO_INSTANCES, DEMO_SEED), ("games", 200, 2)];

/// The static token the simulator's demo account `name` accepts.
fn demo_token(name: &str) -> Secret {
    Secret::new(format!("demo-{name}"))
}

/// Starts the `--demo` simulator, before the flags are validated: what it serves is then part
/// of the configuration from the start ([`crate::cli::ExporterArgs::validate_demo`]).
pub async fn start_demo() -> Result<(SimHandle, Demo), RunError> {
    let listener = signals::bind("127.0.0.1:0", "the demo simulator's address").await?;
    let tenants = DEMO_ACCOUNTS
        .iter()
        .map(|(name, instances, seed)| {
            let sim = SimConfig {
                change_every: Some(DEMO_CHANGE_EVERY),
                token: Some(demo_token(name).expose().to_string()),
                ..SimConfig::new(*instances, *seed)
            };
            (name.to_string(), sim)
        })
        .collect();
    let sim = simulator::start_accounts(tenants, listener)?;
    let endpoint = sim
        .url()
        .parse()
        .map_err(|e| std::io::Error::other(format!("demo simulator URL: {e}")))?;
    let accounts = DEMO_ACCOUNTS
        .iter()
        .map(|(name, ..)| (name.to_string(), demo_token(name)))
        .collect();
    Ok((sim, Demo { endpoint, accounts }))
}

/// Runs the exporter until SIGINT or SIGTERM.
pub async fn exporter(config: Config) -> Result<(), RunError> {
    raise_file_limit();
    // Bind first: a taken port is the most common start-up mistake and should fail fast.
    let listener = signals::bind(&config.listen_address, "--web.listen-address").await?;
    let signal = signals::shutdown_signal()?;
    let mut signals = signals::reload_signal()?;
    if config.demo {
        tracing::info!(accounts = ?DEMO_ACCOUNTS.map(|a| a.0), endpoint = %config.account_defaults.endpoint, "demo mode: scraping a built-in simulated fleet on /metrics, and its accounts on /probe");
    }
    let app = build(&config)?;
    let serving = web::Serving::new(config.conn_limits, config.web.clone(), &app.reloader);
    tracing::info!(
        address = %listener.local_addr()?,
        telemetry_path = %config.telemetry_path,
        endpoint = config
            .upstream
            .as_ref()
            .map(|u| crate::upstream::http::shown(&u.endpoint)),
        accounts = app.probes.as_ref().map(|p| p.targets().len()),
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );
    // SIGHUP reloads the web configuration and the accounts file together, as POST /-/reload
    // does; the reloader logs how it went.
    let reloader = app.reloader.clone();
    tokio::spawn(async move {
        while signals.recv().await.is_some() {
            let _ = reloader.reload().await;
        }
    });
    let stopping = app.stopping.clone();
    let shutdown = async move {
        signal.await;
        stopping.cancel();
    };
    web::serve(listener, app.router, serving, shutdown).await?;
    Ok(())
}

/// The exporter's router, its accounts, and what reloads them with the web configuration.
pub struct App {
    pub router: axum::Router,
    /// The flags' account, served on the telemetry path.
    pub account: Option<Arc<Exporter>>,
    pub probes: Option<Arc<Probes>>,
    pub reloader: Arc<Reloader>,
    /// Cancelled on SIGINT or SIGTERM: scrapes still waiting and reloads still queued give up.
    pub stopping: CancellationToken,
}

/// Wires a configuration: the flags' account on the telemetry path (or the process's own
/// metrics), the accounts to probe, and the cap on API requests they share.
pub fn build(config: &Config) -> Result<App, RunError> {
    let keep = Retention {
        min_interval: config.min_interval,
        serve_stale_for: config.serve_stale_for,
        least_time: crate::scrape::budget(config.scrape_timeout),
    };
    let schedule = config
        .collection
        .map(|(interval, timeout)| Schedule { interval, timeout });
    let request_slots = RequestSlots::new(config.max_requests_in_flight as usize);
    let mut reload_state = None;
    let mut account = None;
    let telemetry = match &config.upstream {
        Some(upstream) => {
            let metrics = Arc::new(ExporterMetrics::new()?);
            if config.web.is_some() {
                reload_state = Some(metrics.reload_state()?);
            }
            let source = BatchQuery::new(upstream.clone(), metrics.clone())?
                .with_request_slots(&request_slots)
                .with_clock(config.clock.clone());
            let mut collector = Collector::new(Arc::new(source), metrics.clone(), keep)
                .map_err(RunError::Collector)?
                .with_clock(config.clock.clone())
                .explained_by(crate::cli::advice::explain);
            if let Some(schedule) = schedule {
                collector = collector.scheduled(schedule, std::time::Duration::ZERO);
            }
            let exporter = Arc::new(Exporter::new(collector, metrics, config.exposition.clone()));
            account = Some(exporter.clone());
            Telemetry::Account(exporter)
        }
        None => {
            let process = ProcessMetrics::new()?;
            reload_state = Some(process.reload_state());
            Telemetry::Process(Arc::new(process))
        }
    };
    let probes = match &config.accounts {
        Some(file) => {
            // One pool of connections for every account: they open about as many as they
            // have requests in flight together, not as many as each has had on its own.
            let http = crate::upstream::http::client(config.account_defaults.settings.timeout)
                .map_err(|e| AuthError::Client(e.to_string()))?;
            let shared = probe::Resources {
                pool: CollectorPool::per_core().map_err(RunError::Collector)?,
                http,
                request_slots,
                keep,
                max_requests: config.max_requests,
                redactor: Default::default(),
                failed_logins: Default::default(),
                clock: config.clock.clone(),
                schedule,
            };
            // A file's reload state is on /metrics, which serves the process's metrics when
            // the accounts come from a file (validation refuses the flags' account then).
            let process = match &telemetry {
                Telemetry::Process(process) => Some(process.clone()),
                Telemetry::Account(_) => None,
            };
            let source = file
                .path
                .clone()
                .zip(process)
                .map(|(path, metrics)| probe::FromFile {
                    path,
                    defaults: config.account_defaults.clone(),
                    env: file.env.clone(),
                    metrics,
                });
            Some(Arc::new(Probes::new(
                file.accounts.clone(),
                shared,
                source,
            )?))
        }
        None => None,
    };
    let options = WebOptions {
        telemetry_path: config.telemetry_path.clone(),
        scrape_timeout: config.scrape_timeout,
        max_requests: config.max_requests,
        max_requests_total: config.max_requests_total,
        external: config.external.clone(),
        lifecycle: config.lifecycle,
        stopping: CancellationToken::new(),
    };
    let reloader = Arc::new(Reloader::new(
        probes.clone(),
        reload_state,
        options.stopping.clone(),
        config.clock.clone(),
    ));
    Ok(App {
        router: web::router(telemetry, probes.clone(), reloader.clone(), &options),
        account,
        probes,
        reloader,
        stopping: options.stopping,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_whole_command_line_is_consistent() {
        Cli::command().debug_assert();
        Cli::command_line().debug_assert();
    }

    #[test]
    fn every_flag_is_read_from_the_variable_the_rule_names() {
        let command = Cli::command_line();
        let env = |command: &clap::Command, long: &str| {
            let arg = command.get_arguments().find(|a| a.get_long() == Some(long));
            arg.and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        let sub = |name| command.find_subcommand(name).unwrap();
        assert_eq!(
            env(&command, "web.listen-address").as_deref(),
            Some("CLOUDDEVICE_EXPORTER_WEB_LISTEN_ADDRESS")
        );
        assert_eq!(
            env(&command, "iam.password-file").as_deref(),
            Some("CLOUDDEVICE_EXPORTER_IAM_PASSWORD_FILE")
        );
        assert_eq!(
            env(sub("simulate"), "max-page-size").as_deref(),
            Some("CLOUDDEVICE_EXPORTER_SIMULATE_MAX_PAGE_SIZE")
        );
        assert_eq!(
            env(sub("healthcheck"), "tls.ca-file").as_deref(),
            Some("CLOUDDEVICE_EXPORTER_HEALTHCHECK_TLS_CA_FILE")
        );
        assert_eq!(env(&command, "help"), None);
        assert_eq!(env(&command, "version"), None);
        let flags = command.get_arguments().filter(|a| a.get_env().is_some());
        assert!(flags.count() > 40, "every flag of the exporter has one");
    }

    #[test]
    fn a_variable_sets_its_flag_and_a_flag_wins_over_it() {
        // The process environment is shared by the tests running at once: a name no other test reads.
        std::env::set_var("CLOUDDEVICE_EXPORTER_SIMULATE_TROUBLE_PERCENT", "12.5");
        let from_env = Cli::from_args(["x", "simulate"]).unwrap();
        let from_flag = Cli::from_args(["x", "simulate", "--trouble-percent", "3"]).unwrap();
        std::env::remove_var("CLOUDDEVICE_EXPORTER_SIMULATE_TROUBLE_PERCENT");
        let percent = |cli: Cli| match cli.command {
            Some(Command::Simulate(args)) => args.trouble_percent,
            _ => None,
        };
        assert_eq!(percent(from_env), Some(12.5));
        assert_eq!(percent(from_flag), Some(3.0));
    }
}
