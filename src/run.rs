//! Start-up: the whole command line (the exporter's flags or `simulate`), and the wiring from a
//! validated configuration to a serving process, with the errors that can stop it, each phrased
//! for the operator who has to fix it.

use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::cli::{Config, ExporterArgs};
use crate::collect::{Collector, Retention};
use crate::scrape::Exporter;
use crate::self_metrics::ExporterMetrics;
use crate::simulator::{self, SimConfig, SimulateArgs};
use crate::upstream::auth::AuthError;
use crate::upstream::batch_query::BatchQuery;
use crate::web::signals::{self, BindError};
use crate::web::{self, WebOptions};

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the built-in CloudDevice API simulator alone, as an HTTP server.
    Simulate(SimulateArgs),
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
    let listener = signals::bind(&config.listen_address, "--web.listen-address").await?;
    let shutdown = signals::shutdown_signal()?;
    let reloads = signals::reload_signal()?;
    let _demo = if config.demo {
        let sim_listener = signals::bind("127.0.0.1:0", "the demo simulator's address").await?;
        let demo = SimConfig {
            change_every: Some(DEMO_CHANGE_EVERY),
            ..SimConfig::new(DEMO_INSTANCES, DEMO_SEED)
        };
        let sim = simulator::start(demo, sim_listener)?;
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
    let serving = web::Serving {
        limits: config.conn_limits,
        web: config.web.clone(),
    };
    web::serve(listener, app, serving, shutdown, reloads).await?;
    Ok(())
}

/// The exporter's router for a configuration: its own metrics, its source, its collections.
pub fn build_app(config: &Config) -> Result<axum::Router, RunError> {
    let metrics = Arc::new(ExporterMetrics::new()?);
    let source = Arc::new(BatchQuery::new(config.upstream.clone(), metrics.clone())?);
    let keep = Retention {
        min_interval: config.min_interval,
        serve_stale_for: config.serve_stale_for,
    };
    let collector = Collector::new(source, metrics.clone(), keep).map_err(RunError::Collector)?;
    let exporter = Arc::new(Exporter::new(collector, metrics, config.exposition.clone()));
    let options = WebOptions {
        telemetry_path: config.telemetry_path.clone(),
        scrape_timeout: config.scrape_timeout,
        max_requests: config.max_requests,
    };
    Ok(web::app(exporter, &options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_whole_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
