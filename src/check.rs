//! `clouddevice_exporter check`: signs in and reads each account's whole list once, as a scrape
//! would, and says what it found (the phones, by region and status, the pages and requests it
//! took, its time, throttled answers, the IAM token's expiry) or why it could not, with what to
//! change. The question "do my credentials, endpoint and permissions work?" without Prometheus.
//! It binds no port, and prints no secret: what it prints are counts and the errors' texts,
//! which are scrubbed of every account's secrets before they are made.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use crate::cli::{Config, ExporterArgs};
use crate::fleet::{Counts, Dimension, Fleet};
use crate::self_metrics::ExporterMetrics;
use crate::upstream::batch_query::{BatchQuery, BatchQueryConfig};
use crate::upstream::credentials::Credentials;
use crate::upstream::Source;

/// The exporter's flags, and which account to check.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub exporter: ExporterArgs,
    /// Check only this account of --config.file (or of --demo).
    #[arg(long = "account", value_name = "NAME")]
    pub account: Option<String>,
    /// Validate the flags and the files, and read no list.
    #[arg(long = "config-only")]
    pub config_only: bool,
}

/// Checks the accounts `config` names (or only `only`): the report to print, and whether every
/// account was read whole.
pub async fn run(config: &Config, only: Option<&str>, config_only: bool) -> (String, bool) {
    let mut accounts: Vec<(String, BatchQueryConfig)> = match (&config.accounts, &config.upstream) {
        (Some(file), _) => file
            .accounts
            .iter()
            .map(|a| (a.name.clone(), a.upstream.clone()))
            .collect(),
        (None, Some(upstream)) => vec![("default".to_string(), upstream.clone())],
        (None, None) => Vec::new(),
    };
    if let Some(name) = only {
        accounts.retain(|(n, _)| n == name);
        if accounts.is_empty() {
            return (
                format!("no account is named {name:?}; --account takes a name of --config.file (or of --demo)\n"),
                false,
            );
        }
    }
    let mut report = String::new();
    if config_only {
        let names: Vec<&str> = accounts.iter().map(|(n, _)| n.as_str()).collect();
        let _ = writeln!(
            report,
            "the configuration is valid: {} account(s): {}",
            names.len(),
            names.join(", ")
        );
        return (report, true);
    }
    // As long as a scheduled collection, or a scrape, may take.
    let time = config
        .collection
        .map_or(config.scrape_timeout, |(_, timeout)| timeout);
    let mut all_read = true;
    for (name, upstream) in accounts {
        all_read &= check_account(&name, upstream, time, config, &mut report).await;
    }
    (report, all_read)
}

async fn check_account(
    name: &str,
    upstream: BatchQueryConfig,
    time: Duration,
    config: &Config,
    report: &mut String,
) -> bool {
    let sign_in = match &upstream.credentials {
        Credentials::Token(_) => "a static token",
        Credentials::Iam(_) => "an IAM user's password",
        Credentials::AkSk(_) => "an access key",
    };
    let metrics = match ExporterMetrics::for_account() {
        Ok(metrics) => Arc::new(metrics),
        Err(e) => {
            let _ = writeln!(report, "account {name}: cannot set up its counters: {e}");
            return false;
        }
    };
    let source = match BatchQuery::new(upstream, metrics.clone()) {
        Ok(source) => source.with_clock(config.clock.clone()),
        Err(e) => {
            let _ = writeln!(report, "account {name}: {e}");
            return false;
        }
    };
    let started = Instant::now();
    let result = source.read(started + time).await;
    let took = started.elapsed().as_secs_f64();
    // The counters a scrape would export, summed over the series whose labels hold `labels`.
    let families = metrics.gather();
    let count = |family: &str, labels: &[(&str, &str)]| -> f64 {
        families
            .iter()
            .filter(|f| f.name() == family)
            .flat_map(|f| f.get_metric())
            .filter(|m| {
                labels.iter().all(|(name, value)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *name && l.value() == *value)
                })
            })
            .map(|m| m.get_counter().value())
            .sum()
    };
    let requests = count(
        "clouddevice_exporter_api_requests_total",
        &[("api", "batch_query")],
    );
    let pages = count(
        "clouddevice_exporter_api_requests_total",
        &[("api", "batch_query"), ("code", "200")],
    );
    let throttled = count(
        "clouddevice_exporter_api_errors_total",
        &[("error_code", "throttled")],
    );
    let fleet = match result {
        Ok(fleet) => fleet,
        Err(error) => {
            let _ = writeln!(
                report,
                "account {name} ({sign_in}): FAILED after {took:.2} s and {requests} request(s): {}",
                crate::cli::advice::explain(&error)
            );
            return false;
        }
    };
    let _ = writeln!(
        report,
        "account {name} ({sign_in}): OK: {} phones in {took:.2} s, {pages} page(s), {requests} request(s), {throttled} throttled",
        fleet.len()
    );
    if let Some(project) = source.project() {
        let _ = writeln!(report, "  project (X-Project-Id): {project}");
    }
    let expiry = families
        .iter()
        .filter(|f| f.name() == "clouddevice_exporter_token_expiry_timestamp_seconds")
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_gauge().value())
        .next();
    if let Some(expiry) = expiry {
        let at = time::OffsetDateTime::from_unix_timestamp(expiry as i64).ok();
        let at = at.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
        let _ = writeln!(report, "  IAM token expires at {}", at.unwrap_or_default());
    }
    describe(&fleet, report);
    true
}

/// The phones by region, and by each status.
fn describe(fleet: &Fleet, report: &mut String) {
    let mut total = Counts::default();
    let mut regions: std::collections::BTreeMap<&str, u64> = Default::default();
    for ((region, _), counts) in fleet.aggregate() {
        *regions.entry(region).or_default() += counts.total;
        total.absorb(&counts);
    }
    let regions: Vec<String> = regions
        .iter()
        .map(|(region, n)| format!("{} {n}", if region.is_empty() { "(none)" } else { region }))
        .collect();
    let _ = writeln!(report, "  by region: {}", regions.join(", "));
    for dim in Dimension::ALL {
        let mut parts: Vec<String> = total
            .documented(dim)
            .filter(|(_, n)| *n > 0)
            .map(|(status, n)| format!("{status} {n}"))
            .collect();
        if total.undocumented(dim) > 0 {
            parts.push(format!("undocumented {}", total.undocumented(dim)));
        }
        let _ = writeln!(report, "  {}: {}", dim.name(), parts.join(", "));
    }
}
