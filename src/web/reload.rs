//! Re-reading the configuration while serving: the web configuration (`--web.config.file`) and
//! the accounts file (`--config.file`) together, on SIGHUP or `POST /-/reload`
//! (`--web.enable-lifecycle`), one reload at a time, with one log line and one reload state
//! (`clouddevice_exporter_config_last_reload_successful`) for both.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use axum_server::tls_rustls::RustlsConfig;

use crate::probe::{LoadError, Probes, TargetError};
use crate::self_metrics::ReloadState;
use crate::web::config::{self, Access, WebConfig, WebConfigError};

/// Why a reload applied nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the exporter is shutting down")]
    Stopping,
    #[error("the web configuration {}: {source}", .path.display())]
    Web { path: PathBuf, source: WebLoadError },
    #[error("the accounts file: {0}")]
    Accounts(#[from] LoadError),
    #[error("the accounts file: {0}")]
    Target(#[from] TargetError),
}

/// Why the web configuration file could not be loaded again.
#[derive(Debug, thiserror::Error)]
pub enum WebLoadError {
    #[error(transparent)]
    Config(#[from] WebConfigError),
    #[error("reading it failed: {0}")]
    Failed(#[from] tokio::task::JoinError),
    #[error("turning TLS on or off needs a restart")]
    TlsOnOrOff,
}

/// How the last reload went, for the landing page.
#[derive(Debug, Clone)]
pub struct LastReload {
    pub at: std::time::SystemTime,
    /// What was reloaded, or why nothing was.
    pub outcome: Result<String, String>,
}

/// What a reload re-reads, and where it records how it went.
pub struct Reloader {
    /// Set by [`crate::web::serve`] when there is a web configuration file.
    web: OnceLock<WebReload>,
    probes: Option<Arc<Probes>>,
    state: Option<ReloadState>,
    /// One reload at a time: two at once could each keep what the other replaced.
    one: tokio::sync::Mutex<()>,
    /// Cancelled when the process stops: reloads still queued or under way give up.
    stopping: tokio_util::sync::CancellationToken,
    clock: crate::clock::Clock,
    last: std::sync::Mutex<Option<LastReload>>,
}

impl Reloader {
    /// A reloader of the accounts of `probes` (if they come from a file), recording in `state`.
    pub fn new(
        probes: Option<Arc<Probes>>,
        state: Option<ReloadState>,
        stopping: tokio_util::sync::CancellationToken,
        clock: crate::clock::Clock,
    ) -> Self {
        Reloader {
            web: OnceLock::new(),
            probes,
            state,
            one: tokio::sync::Mutex::new(()),
            stopping,
            clock,
            last: std::sync::Mutex::new(None),
        }
    }

    /// How the last reload went; `None` before the first.
    pub fn last(&self) -> Option<LastReload> {
        self.last.lock().map_or(None, |last| last.clone())
    }

    /// The files a reload re-reads: the web configuration's, then the accounts file's.
    pub fn files(&self) -> (Option<PathBuf>, Option<PathBuf>) {
        let web = self.web.get().map(|web| web.path.clone());
        let accounts = self
            .probes
            .as_ref()
            .and_then(|probes| probes.file().map(PathBuf::from));
        (web, accounts)
    }

    /// The web configuration in use, which later reloads re-read too.
    pub(super) fn serve_web(&self, web: WebReload) {
        // Served once per process: a second call would be a second server, which never happens.
        let _ = self.web.set(web);
    }

    /// Re-reads both files and applies them only if both load: a file that does not load, or an
    /// account that cannot be set up, leaves the whole configuration in use. Logs one line
    /// either way, and returns it.
    pub async fn reload(&self) -> Result<String, ReloadError> {
        let reloading = async {
            let _one = self.one.lock().await;
            self.load_and_apply().await
        };
        // A reload under way when the process stops is dropped whole: it applies nothing.
        let result = tokio::select! {
            biased;
            () = self.stopping.cancelled() => return Err(ReloadError::Stopping),
            result = reloading => result,
        };
        match &result {
            Ok(summary) => tracing::info!(summary = %summary, "reloaded the configuration"),
            Err(error) => {
                tracing::error!(%error, "cannot reload the configuration; keeping the one in use")
            }
        }
        if let Some(state) = &self.state {
            state.record(result.is_ok());
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(LastReload {
                at: self.clock.now(),
                outcome: result
                    .as_ref()
                    .map(String::clone)
                    .map_err(|e| e.to_string()),
            });
        }
        result
    }

    async fn load_and_apply(&self) -> Result<String, ReloadError> {
        let web = match self.web.get() {
            Some(web) => {
                let new = web.load().await.map_err(|source| ReloadError::Web {
                    path: web.path.clone(),
                    source,
                })?;
                Some((web, new))
            }
            None => None,
        };
        let accounts = match &self.probes {
            Some(probes) => match probes.load().await {
                Some(loaded) => {
                    let (accounts, warnings) = loaded?;
                    Some((probes, accounts, warnings))
                }
                None => None,
            },
            None => None,
        };
        let mut done = Vec::new();
        // The accounts first: setting one up can still fail, and then nothing has changed.
        if let Some((probes, accounts, warnings)) = accounts {
            let swapped = probes.swap(accounts)?;
            for warning in &warnings {
                tracing::warn!("{warning}");
            }
            done.push(format!(
                "the accounts file ({} accounts: {} kept, {} added, {} changed, {} removed)",
                swapped.served, swapped.kept, swapped.added, swapped.changed, swapped.removed
            ));
        }
        if let Some((web, new)) = web {
            web.apply(new);
            done.push(format!("the web configuration {}", web.path().display()));
        }
        Ok(if done.is_empty() {
            "nothing to reload: neither --web.config.file nor --config.file is given".into()
        } else {
            done.join(" and ")
        })
    }
}

/// The web configuration in use, and the file a reload reads it from.
#[derive(Clone)]
pub struct WebReload {
    pub(super) path: PathBuf,
    pub(super) access: Arc<RwLock<Arc<Access>>>,
    pub(super) tls: Option<RustlsConfig>,
}

impl WebReload {
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Reads the file again, off the async threads (bcrypt and file reads block), without
    /// applying it.
    pub async fn load(&self) -> Result<WebConfig, WebLoadError> {
        let file = self.path.clone();
        let new = tokio::task::spawn_blocking(move || config::load(&file)).await??;
        if self.tls.is_some() != new.tls.is_some() {
            return Err(WebLoadError::TlsOnOrOff);
        }
        Ok(new)
    }

    /// Makes `new` (from [`WebReload::load`]) the configuration in use.
    pub fn apply(&self, new: WebConfig) {
        if let (Some(current), Some(next)) = (&self.tls, new.tls) {
            current.reload_from_config(next);
        }
        *self.access.write().unwrap_or_else(|e| e.into_inner()) = new.access;
        for warning in &new.warnings {
            tracing::warn!("{warning}");
        }
    }
}
