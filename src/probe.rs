//! The accounts one exporter probes (`/probe?target=NAME`), from the accounts file or `--demo`.
//! Each account has its own source, collector, reuse window and metrics, so one account failing
//! or slow never delays another; they share only the collector threads, the connections to the
//! API and the cap on requests in flight. A reload swaps in a new set and keeps every account
//! whose settings did not change, with its IAM token and its last collection.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::Semaphore;

use crate::cli::account::{Account, AccountDefaults, EnvLookup};
use crate::cli::accounts;
use crate::clock::Clock;
use crate::collect::{Collector, CollectorPool, Retention, Schedule};
use crate::scrape::Exporter;
use crate::self_metrics::{ExporterMetrics, ProcessMetrics};
use crate::upstream::auth::AuthError;
use crate::upstream::batch_query::BatchQuery;
use crate::upstream::iam::FailedLogins;
use crate::upstream::redact::Redactor;
use crate::upstream::slots::RequestSlots;

/// One account, ready to be probed.
pub struct Target {
    pub account: Account,
    pub exporter: Arc<Exporter>,
    /// Most probes of this account served at once (`--web.max-requests`); `None` when unlimited.
    pub requests: Option<Arc<Semaphore>>,
}

/// Why an account could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("account {account:?}: {source}")]
    Auth { account: String, source: AuthError },
    #[error("account {account:?}: cannot set up its metrics: {source}")]
    Metrics {
        account: String,
        source: prometheus::Error,
    },
}

/// Why the accounts file could not be loaded again.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Accounts(#[from] crate::cli::accounts::AccountsError),
    #[error("reading {} failed: {error}", .path.display())]
    Failed {
        path: std::path::PathBuf,
        error: tokio::task::JoinError,
    },
}

/// What every account is built with.
pub struct Resources {
    pub pool: CollectorPool,
    /// One client, so one pool of connections, for every account.
    pub http: reqwest::Client,
    /// The cap on requests in flight over all accounts.
    pub request_slots: RequestSlots,
    pub keep: Retention,
    /// `--web.max-requests`, per account; zero for no limit.
    pub max_requests: u32,
    /// Every account's secrets, scrubbed from what any account's upstream answers.
    pub redactor: Redactor,
    /// Every IAM user's failed logins, whichever accounts sign in as it, across reloads.
    pub failed_logins: FailedLogins,
    /// What token lifetimes and windows are measured on.
    pub clock: Clock,
    /// Collections on a schedule, each account at its own point of the interval.
    pub schedule: Option<Schedule>,
}

impl Resources {
    /// The target of `account`; `previous` is the same account's before a reload changed its
    /// settings, whose collections the new one takes over, collecting at once.
    fn target(&self, account: Account, previous: Option<&Target>) -> Result<Target, TargetError> {
        let metrics = ExporterMetrics::for_account()
            .map(Arc::new)
            .map_err(|source| TargetError::Metrics {
                account: account.name.clone(),
                source,
            })?;
        let http = self.http.clone();
        let source = BatchQuery::with_client(
            account.upstream.clone(),
            metrics.clone(),
            http,
            self.redactor.clone(),
        )
        .map_err(|source| TargetError::Auth {
            account: account.name.clone(),
            source,
        })?
        .with_request_slots(&self.request_slots)
        .with_failed_logins(&self.failed_logins)
        .with_clock(self.clock.clone());
        let mut collector =
            Collector::in_pool(&self.pool, Arc::new(source), metrics.clone(), self.keep)
                .with_clock(self.clock.clone())
                .explained_by(crate::cli::advice::explain);
        if let Some(previous) = previous {
            collector = collector.take_over(previous.exporter.collector());
        }
        if let Some(schedule) = self.schedule {
            // A changed account collects now: its next point of the schedule may be minutes away.
            let offset = match previous {
                Some(_) => std::time::Duration::ZERO,
                None => schedule.offset(&account.name),
            };
            collector = collector.scheduled(schedule, offset);
        }
        let exporter = Exporter::new(collector, metrics, account.exposition.clone());
        Ok(Target {
            account,
            exporter: Arc::new(exporter),
            requests: (self.max_requests > 0)
                .then(|| Arc::new(Semaphore::new(self.max_requests as usize))),
        })
    }
}

/// Where a reload reads the accounts from.
pub struct FromFile {
    pub path: PathBuf,
    pub defaults: AccountDefaults,
    pub env: EnvLookup,
    pub metrics: Arc<ProcessMetrics>,
}

/// The accounts being probed, by name.
pub struct Probes {
    current: RwLock<Arc<BTreeMap<String, Arc<Target>>>>,
    shared: Resources,
    /// `None` for a set that never changes (`--demo`).
    source: Option<FromFile>,
}

impl Probes {
    pub fn new(
        accounts: Vec<Account>,
        shared: Resources,
        source: Option<FromFile>,
    ) -> Result<Self, TargetError> {
        let targets = accounts
            .into_iter()
            .map(|a| Ok((a.name.clone(), Arc::new(shared.target(a, None)?))))
            .collect::<Result<BTreeMap<_, _>, TargetError>>()?;
        if let Some(source) = &source {
            source.metrics.set_accounts(targets.len());
        }
        Ok(Probes {
            current: RwLock::new(Arc::new(targets)),
            shared,
            source,
        })
    }

    /// The accounts file the accounts come from; `None` for `--demo`'s.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.source.as_ref().map(|source| source.path.as_path())
    }

    /// The accounts now, by name.
    pub fn targets(&self) -> Arc<BTreeMap<String, Arc<Target>>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Target>> {
        self.targets().get(name).cloned()
    }

    /// Reads the accounts file again, without applying it: `None` for a set that never changes
    /// (`--demo`). The caller applies it with [`Probes::swap`] ([`crate::web::reload`]).
    pub async fn load(&self) -> Option<Result<(Vec<Account>, Vec<String>), LoadError>> {
        let source = self.source.as_ref()?;
        let (path, defaults, env) = (
            source.path.clone(),
            source.defaults.clone(),
            source.env.clone(),
        );
        // Secrets files are read from disk: off the async threads.
        let loaded = tokio::task::spawn_blocking(move || {
            let mut warnings = Vec::new();
            accounts::load(&path, &defaults, &env, &mut warnings).map(|a| (a, warnings))
        })
        .await;
        Some(match loaded {
            Ok(loaded) => loaded.map_err(LoadError::Accounts),
            Err(error) => Err(LoadError::Failed {
                path: source.path.clone(),
                error,
            }),
        })
    }

    /// Makes `accounts` the set served, reusing every target whose account did not change; an
    /// account that cannot be set up leaves the set in use unchanged. Returns what changed.
    pub fn swap(&self, accounts: Vec<Account>) -> Result<Swapped, TargetError> {
        let old = self.targets();
        let (mut kept, mut added, mut changed) = (0, 0, 0);
        let mut next = BTreeMap::new();
        for account in accounts {
            let target = match old.get(&account.name) {
                Some(target) if target.account == account => {
                    kept += 1;
                    target.clone()
                }
                previous => {
                    if previous.is_some() {
                        changed += 1;
                    } else {
                        added += 1;
                    }
                    let target = self.shared.target(account, previous.map(|t| &**t));
                    Arc::new(target?)
                }
            };
            next.insert(target.account.name.clone(), target);
        }
        let removed = old.keys().filter(|name| !next.contains_key(*name)).count();
        let served = next.len();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        if let Some(source) = &self.source {
            source.metrics.set_accounts(served);
        }
        Ok(Swapped {
            served,
            kept,
            added,
            changed,
            removed,
        })
    }
}

/// What a reload of the accounts file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swapped {
    pub served: usize,
    pub kept: usize,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}
