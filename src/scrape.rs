//! One scrape, start to end: get a collection of the fleet (start one, join the one already
//! running, or reuse a recent one), within the scrape's deadline; turn it into families; encode.
//! Also keeps what the landing page shows of the last collection, and owns the thread that
//! collections run on. Knows nothing of HTTP.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::future::{BoxFuture, FutureExt, Shared};

use crate::client::Client;
use crate::error::ApiError;
use crate::exposition::Exposition;
use crate::fleet::Fleet;
use crate::metrics::{self, ExporterMetrics, Scrape};
use crate::paging;

/// How long before the scraper's own timeout the answer is sent, so that a slow API costs an
/// `up 0`, not a failed scrape with a gap in every series.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// One read of the list, shared by every scrape that waited for it.
pub struct Collection {
    /// The fleet, or why it could not be read (already counted and logged where it arose).
    pub fleet: Result<Arc<Fleet>, String>,
    pub finished: Instant,
    pub finished_at: SystemTime,
}

/// What the landing page reports of the most recent collection.
#[derive(Debug, Clone)]
pub struct LastCollection {
    pub finished: SystemTime,
    pub duration_seconds: f64,
    /// Instances read, or the error that failed the collection.
    pub outcome: Result<usize, String>,
}

type Running = Shared<BoxFuture<'static, Arc<Collection>>>;

#[derive(Default)]
struct State {
    running: Option<Running>,
    /// Kept only with a reuse window: otherwise it would hold a whole fleet in memory for
    /// nothing while the next collection builds another.
    reusable: Option<Arc<Collection>>,
    /// When the last successful collection finished.
    last_success_at: Option<SystemTime>,
    last: Option<LastCollection>,
}

pub struct Exporter {
    collector: CollectorThread,
    client: Arc<Client>,
    metrics: Arc<ExporterMetrics>,
    instance_metrics: bool,
    min_interval: Duration,
    state: Arc<Mutex<State>>,
}

/// The thread collections run on, with a single-threaded runtime of its own. A collection is a
/// stream of small upstream responses, each parsed as it arrives; on the server's multi-threaded
/// runtime every response woke another worker, and those wake-ups cost more CPU than they saved
/// (BENCHMARKS.md). The upstream connections live here too, since they are made where they are
/// first used.
struct CollectorThread {
    runtime: tokio::runtime::Handle,
    /// Dropped with the exporter, which ends the thread and cancels what it still runs.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl CollectorThread {
    fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || {
                let _ = runtime.block_on(stopped);
            })?;
        Ok(CollectorThread {
            runtime: handle,
            _stop: stop,
        })
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A poisoned lock only means another scrape panicked mid-write; the value is still usable.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Exporter {
    pub fn new(
        client: Client,
        metrics: Arc<ExporterMetrics>,
        instance_metrics: bool,
        min_interval: Duration,
    ) -> std::io::Result<Self> {
        Ok(Exporter {
            collector: CollectorThread::start()?,
            client: Arc::new(client),
            metrics,
            instance_metrics,
            min_interval,
            state: Arc::new(Mutex::new(State::default())),
        })
    }

    /// Answers a scrape whose scraper gives up after `timeout`. A failed or late collection is
    /// not an error here: it is `clouddevice_up 0` in the text, with the exporter's own metrics.
    pub async fn scrape(&self, timeout: Duration) -> Result<Exposition, prometheus::Error> {
        let started = Instant::now();
        let budget = timeout.saturating_sub(DEADLINE_MARGIN.min(timeout / 4));
        let deadline = started + budget;
        let collection = self.collection(deadline, budget).await;
        let fleet = collection
            .as_ref()
            .and_then(|c| c.fleet.as_ref().ok())
            .cloned();
        let last_success = match collection.as_ref().filter(|c| c.fleet.is_ok()) {
            Some(c) => Some(c.finished_at),
            None => lock(&self.state).last_success_at,
        };
        let scrape = Scrape {
            fleet,
            duration_seconds: started.elapsed().as_secs_f64(),
            timeout_seconds: timeout.as_secs_f64(),
            instance_metrics: self.instance_metrics,
            cached_for: (!self.min_interval.is_zero()).then_some(self.min_interval),
            last_success,
        };
        metrics::render(&scrape, self.metrics.gather())
    }

    /// The collection this scrape reports: a recent successful one within `--scrape.min-interval`,
    /// else the one in progress, else a new one. `None` when the deadline passes first.
    async fn collection(&self, deadline: Instant, budget: Duration) -> Option<Arc<Collection>> {
        let running = {
            let mut state = lock(&self.state);
            let recent = state
                .reusable
                .as_ref()
                .filter(|c| c.finished.elapsed() < self.min_interval);
            if let Some(recent) = recent {
                return Some(recent.clone());
            }
            match &state.running {
                Some(running) => running.clone(),
                None => {
                    let running = self.start_collection(deadline, budget);
                    state.running = Some(running.clone());
                    running
                }
            }
        };
        match tokio::time::timeout_at(deadline.into(), running).await {
            Ok(collection) => Some(collection),
            Err(_) => {
                // Joined a collection that started with a later deadline than this scrape has.
                let error = ApiError::Deadline { budget };
                self.client.report(&error);
                None
            }
        }
    }

    /// Starts a collection in its own task, so that it finishes (within its deadline) and is
    /// shared even if the scrape that started it goes away.
    fn start_collection(&self, deadline: Instant, budget: Duration) -> Running {
        let client = self.client.clone();
        let state = self.state.clone();
        let keep_for_reuse = !self.min_interval.is_zero();
        let task = self.collector.runtime.spawn(async move {
            let started = Instant::now();
            let read =
                tokio::time::timeout_at(deadline.into(), paging::collect_fleet(&client, deadline));
            let result = match read.await {
                Ok(result) => result,
                Err(_) => {
                    let error = ApiError::Deadline { budget };
                    client.report(&error);
                    Err(error)
                }
            };
            let duration = started.elapsed();
            let outcome = match &result {
                Ok(fleet) => {
                    tracing::debug!(
                        instances = fleet.len(),
                        duration_seconds = duration.as_secs_f64(),
                        "collection finished"
                    );
                    Ok(fleet.len())
                }
                Err(error) => {
                    tracing::error!(%error, duration_seconds = duration.as_secs_f64(), "collection failed; reporting clouddevice_up 0");
                    Err(error.to_string())
                }
            };
            let collection = Arc::new(Collection {
                fleet: result.map(Arc::new).map_err(|e| e.to_string()),
                finished: Instant::now(),
                finished_at: SystemTime::now(),
            });
            let mut state = lock(&state);
            state.running = None;
            if collection.fleet.is_ok() {
                state.last_success_at = Some(collection.finished_at);
                if keep_for_reuse {
                    state.reusable = Some(collection.clone());
                }
            }
            state.last = Some(LastCollection {
                finished: collection.finished_at,
                duration_seconds: duration.as_secs_f64(),
                outcome,
            });
            collection
        });
        let state = self.state.clone();
        async move {
            task.await.unwrap_or_else(|e| {
                // Only a panic in the collection gets here; keep serving, and let the next
                // scrape start afresh.
                lock(&state).running = None;
                tracing::error!(error = %e, "the collection task failed");
                Arc::new(Collection {
                    fleet: Err(format!("the collection task failed: {e}")),
                    finished: Instant::now(),
                    finished_at: SystemTime::now(),
                })
            })
        }
        .boxed()
        .shared()
    }

    pub fn last_collection(&self) -> Option<LastCollection> {
        lock(&self.state).last.clone()
    }
}
