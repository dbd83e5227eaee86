//! Start-up wiring: from a validated configuration to a serving process, and the errors that can
//! stop it, each phrased for the operator who has to fix it.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::client::{Client, ClientError};
use crate::config::{Config, SimulateArgs};
use crate::metrics::ExporterMetrics;
use crate::scrape::Exporter;
use crate::secret::Secret;
use crate::server;
use crate::simulator::{self, SimConfig, SimIamUser};

/// Size and seed of the fleet `--demo` serves.
const DEMO_INSTANCES: usize = 500;
const DEMO_SEED: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {flag} {address}: {source}; choose another address or stop what is using it")]
    Bind {
        flag: &'static str,
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot set up the exporter's own metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(
        "cannot read {flag} {path:?}: {source}; check the path and that this user may read it"
    )]
    File {
        flag: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("cannot start the thread that reads the instance list: {0}")]
    Collector(std::io::Error),
}

pub async fn bind(address: &str, flag: &'static str) -> Result<TcpListener, RunError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| RunError::Bind {
            flag,
            address: address.to_string(),
            source,
        })
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

/// Runs the exporter until SIGINT or SIGTERM.
pub async fn exporter(mut config: Config) -> Result<(), RunError> {
    raise_file_limit();
    // Bind first: a taken port is the most common start-up mistake and should fail fast.
    let listener = bind(&config.listen_address, "--web.listen-address").await?;
    let shutdown = server::shutdown_signal()?;
    let reloads = server::reload_signal()?;
    let _demo = if config.demo {
        let sim_listener = bind("127.0.0.1:0", "the demo simulator's address").await?;
        let sim = simulator::start(SimConfig::new(DEMO_INSTANCES, DEMO_SEED), sim_listener)?;
        tracing::info!(instances = DEMO_INSTANCES, endpoint = %sim.url(), "demo mode: scraping a built-in simulated fleet");
        config.upstream.endpoint = sim
            .url()
            .parse()
            .map_err(|e| std::io::Error::other(format!("demo simulator URL: {e}")))?;
        Some(sim)
    } else {
        None
    };
    let app = build_app(&config)?;
    tracing::info!(
        address = %listener.local_addr()?,
        telemetry_path = %config.telemetry_path,
        endpoint = %config.upstream.endpoint,
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );
    let serving = server::Serving {
        limits: config.conn_limits,
        web: config.web.clone(),
    };
    server::serve(listener, app, serving, shutdown, reloads).await?;
    Ok(())
}

/// The exporter's router for a configuration: its own metrics, its client, its scrape logic.
pub fn build_app(config: &Config) -> Result<axum::Router, RunError> {
    let metrics = Arc::new(ExporterMetrics::new()?);
    let client = Client::new(config.upstream.clone(), metrics.clone())?;
    let exporter = Arc::new(
        Exporter::new(
            client,
            metrics,
            config.instance_metrics,
            config.min_interval,
        )
        .map_err(RunError::Collector)?,
    );
    let web = server::WebOptions {
        telemetry_path: config.telemetry_path.clone(),
        scrape_timeout: config.scrape_timeout,
        max_requests: config.max_requests,
    };
    Ok(server::app(exporter, &web))
}

/// `clouddevice_exporter simulate`.
pub async fn simulate(args: SimulateArgs) -> Result<(), RunError> {
    let read = |flag: &'static str, path: &std::path::PathBuf| {
        std::fs::read_to_string(path)
            .map(|text| Secret::new(text.trim()))
            .map_err(|source| RunError::File {
                flag,
                path: path.clone(),
                source,
            })
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
    let config = SimConfig {
        max_page_size: args.max_page_size,
        paging_fields: args.paging_fields,
        latency: args.latency,
        token,
        iam_user,
        token_lifetime: args.token_lifetime,
        access_key,
        error: args.error_code.map(|code| (args.error_status, code)),
        ..SimConfig::new(args.instances, args.seed)
    };
    simulator::run(config, &args.listen_address).await
}
