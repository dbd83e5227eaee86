//! One collection of the fleet shared by every scrape that wants it: a scrape starts one, joins
//! the one in progress, or reuses a recent one (`--scrape.min-interval`); when one fails, the last
//! successful one may stand in for it (`--scrape.serve-stale-for`). On a [`Schedule`]
//! (`--collection.interval`) collections run every interval instead, and a scrape reports the
//! latest at once, never waiting on the API and never starting a read. Collections run on a
//! thread of their own, read from a [`Source`], and count the failures that are theirs alone.
//! Knows nothing of HTTP or of the text format.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use futures::future::{BoxFuture, FutureExt, Shared};

use crate::clock::Clock;
use crate::fleet::Fleet;
use crate::self_metrics::ExporterMetrics;
use crate::upstream::error::Progress;
use crate::upstream::{ApiError, Source};

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
    /// The collection in progress, and the deadline it ends by.
    running: Option<(Running, Instant)>,
    /// The last successful collection. Kept only with a reuse window or a stale window:
    /// otherwise it would hold a whole fleet in memory for nothing while the next collection
    /// builds another.
    last_good: Option<Arc<Collection>>,
    /// When the last successful collection finished.
    last_success_at: Option<SystemTime>,
    last: Option<LastCollection>,
    /// The latest collection that ended, failed or not: on a schedule what scrapes report, and
    /// within `--scrape.min-interval` what they reuse. Kept only for those.
    latest: Option<Arc<Collection>>,
    /// Set while `latest` is the collection of the account's settings before a reload changed
    /// them ([`Collector::take_over`]), until the first collection with the new ones ends.
    before_reload: bool,
}

/// The thread collections run on, with a single-threaded runtime of its own. A collection is a
/// stream of small upstream responses, each parsed as it arrives; on the server's multi-threaded
/// runtime every response woke another worker, and those wake-ups cost more CPU than they saved
/// (measured in BENCHMARKS.md). The upstream connections live here too, since they are made
/// where they are first used.
struct CollectorThread {
    runtime: tokio::runtime::Handle,
    /// Dropped with the last collector using the thread, which ends the thread and cancels what
    /// it still runs.
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

/// How long a collection runs and how long a successful one may serve scrapes; zero turns each
/// use off.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retention {
    /// Served instead of collecting again (`--scrape.min-interval`).
    pub min_interval: Duration,
    /// Served, with `clouddevice_up 0`, when a collection fails (`--scrape.serve-stale-for`).
    pub serve_stale_for: Duration,
    /// The least time a collection has, whichever scrape starts it: the budget of
    /// `--scrape.timeout`. A client's own timeout header bounds how long that client waits,
    /// never a collection other scrapes share.
    pub least_time: Duration,
}

/// The most time a collection has, unless `--scrape.timeout` gives more: a client asking for an
/// hour must not keep a stuck collection in place of fresh ones for that long.
pub const MAX_COLLECTION_TIME: Duration = Duration::from_secs(600);

/// Collections on a schedule (`--collection.interval`) rather than on scrapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// From the start of one collection to the start of the next; a collection that runs longer
    /// delays the next rather than overlap it.
    pub interval: Duration,
    /// Each collection's deadline (`--collection.timeout`).
    pub timeout: Duration,
}

impl Schedule {
    /// When the collector of the account `name` first collects after it starts: the point of
    /// the interval its name picks, so that many accounts are spread over the interval rather
    /// than start together, and an account keeps its point across reloads.
    pub fn offset(&self, name: &str) -> Duration {
        // FNV-1a: fixed across runs and platforms, unlike std's hasher.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        self.interval.mul_f64((hash % 10_000) as f64 / 10_000.0)
    }
}

/// Calls `collect` with each collection's deadline: first after `offset`, then every interval
/// from the previous start, or at once when a collection ran longer than the interval (never two
/// at a time). On tokio's clock, which tests pause.
pub async fn on_schedule<F, R>(schedule: Schedule, offset: Duration, mut collect: F)
where
    F: FnMut(tokio::time::Instant) -> R,
    R: std::future::Future<Output = ()>,
{
    let first = tokio::time::Instant::now() + offset;
    let mut ticks = tokio::time::interval_at(first, schedule.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // From now: a late tick reports when it was due, not when it came.
        collect(tokio::time::Instant::now() + schedule.timeout).await;
    }
}

/// Stops a collector's schedule when the collector goes (an account removed by a reload).
struct ScheduleGuard(tokio::task::AbortHandle);

impl Drop for ScheduleGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Collector threads shared by many collectors (one per account): as many threads as cores,
/// handed out in turn, rather than a thread per account.
pub struct CollectorPool {
    threads: Vec<Arc<CollectorThread>>,
    next: std::sync::atomic::AtomicUsize,
}

impl CollectorPool {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = (0..threads.max(1))
            .map(|_| CollectorThread::start().map(Arc::new))
            .collect::<std::io::Result<_>>()?;
        Ok(CollectorPool {
            threads,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// As many threads as the machine has cores.
    pub fn per_core() -> std::io::Result<Self> {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    fn take(&self) -> Arc<CollectorThread> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.threads[n % self.threads.len()].clone()
    }
}

/// Shares collections between scrapes.
pub struct Collector {
    /// What the reuse and stale windows are measured on.
    clock: Clock,
    thread: Arc<CollectorThread>,
    source: Arc<dyn Source>,
    metrics: Arc<ExporterMetrics>,
    min_interval: Duration,
    serve_stale_for: Duration,
    least_time: Duration,
    state: Arc<Mutex<State>>,
    /// Set when collections run on a schedule.
    schedule: Option<Schedule>,
    /// Ends the schedule's task with the collector; `None` on the task's own copy.
    _guard: Option<Arc<ScheduleGuard>>,
    /// Woken when a collection ends.
    ended: Arc<tokio::sync::Notify>,
    /// How a failed collection is told, in the log and on the landing page.
    explain: fn(&ApiError) -> String,
}

impl Collector {
    pub fn new(
        source: Arc<dyn Source>,
        metrics: Arc<ExporterMetrics>,
        keep: Retention,
    ) -> std::io::Result<Self> {
        Ok(Self::on(
            Arc::new(CollectorThread::start()?),
            source,
            metrics,
            keep,
        ))
    }

    /// A collector whose collections run on one of `pool`'s threads.
    pub fn in_pool(
        pool: &CollectorPool,
        source: Arc<dyn Source>,
        metrics: Arc<ExporterMetrics>,
        keep: Retention,
    ) -> Self {
        Self::on(pool.take(), source, metrics, keep)
    }

    fn on(
        thread: Arc<CollectorThread>,
        source: Arc<dyn Source>,
        metrics: Arc<ExporterMetrics>,
        keep: Retention,
    ) -> Self {
        Collector {
            clock: Clock::system(),
            thread,
            source,
            metrics,
            min_interval: keep.min_interval,
            serve_stale_for: keep.serve_stale_for,
            least_time: keep.least_time,
            state: Arc::new(Mutex::new(State::default())),
            schedule: None,
            _guard: None,
            ended: Arc::new(tokio::sync::Notify::new()),
            explain: |error| error.to_string(),
        }
    }

    /// Tells failed collections with `explain`, which adds what the operator can change (the
    /// layer that knows the flags has it); by default they say what happened alone. Call before
    /// [`Collector::scheduled`].
    pub fn explained_by(mut self, explain: fn(&ApiError) -> String) -> Self {
        self.explain = explain;
        self
    }

    /// Collects on `schedule`, first after `offset` ([`Schedule::offset`]), until the collector
    /// is dropped; scrapes then only report the latest collection. Call once, after
    /// [`Collector::with_clock`].
    pub fn scheduled(mut self, schedule: Schedule, offset: Duration) -> Self {
        self.schedule = Some(schedule);
        let copy = self.copy();
        let task = self
            .thread
            .runtime
            .spawn(on_schedule(schedule, offset, move |deadline| {
                let running = copy.start_collection(deadline, schedule.timeout);
                async move {
                    running.await;
                }
            }));
        self._guard = Some(Arc::new(ScheduleGuard(task.abort_handle())));
        self
    }

    /// Takes over what `previous` collected: the same account before a reload changed its
    /// settings (a rotated token, say). Its last good fleet still stands in for a failure
    /// (`--scrape.serve-stale-for`), and on a schedule its latest collection is reported, marked
    /// as read before the reload, until the first collection with the new settings ends, so
    /// the account neither drops to `up 0` nor leaves `/-/ready` meanwhile. Call before
    /// [`Collector::scheduled`].
    pub fn take_over(self, previous: &Collector) -> Self {
        let old = lock(&previous.state);
        let mut state = lock(&self.state);
        state.last_good = old.last_good.clone();
        state.last_success_at = old.last_success_at;
        state.last = old.last.clone();
        // Without a schedule the next scrape reads with the new settings at once: a reuse
        // window must not serve it what the old ones read.
        if previous.schedule.is_some() {
            state.latest = old.latest.clone();
            state.before_reload = state.latest.is_some();
        }
        drop((old, state));
        self
    }

    /// Whether scrapes report a collection made with the settings before a reload.
    pub fn before_reload(&self) -> bool {
        lock(&self.state).before_reload
    }

    /// The same collector without the guard: what the schedule's task holds.
    fn copy(&self) -> Collector {
        Collector {
            clock: self.clock.clone(),
            thread: self.thread.clone(),
            source: self.source.clone(),
            metrics: self.metrics.clone(),
            min_interval: self.min_interval,
            serve_stale_for: self.serve_stale_for,
            least_time: self.least_time,
            state: self.state.clone(),
            schedule: self.schedule,
            _guard: None,
            ended: self.ended.clone(),
            explain: self.explain,
        }
    }

    /// The schedule, when collections run on one.
    pub fn schedule(&self) -> Option<Schedule> {
        self.schedule
    }

    /// Whether scrapes have something to report: always, unless on a schedule whose first
    /// collection has not ended yet (`/-/ready`).
    pub fn ready(&self) -> bool {
        self.schedule.is_none() || lock(&self.state).latest.is_some()
    }

    /// Returns once there is a collection to report: at once on a schedule that has one, else
    /// when the next collection ends. What tests wait on instead of sleeping.
    pub async fn collected(&self) {
        let ended = self.ended.notified();
        if self.schedule.is_some() && lock(&self.state).latest.is_some() {
            return;
        }
        ended.await;
    }

    /// Returns when the next collection ends: one that may have begun before the call.
    pub async fn next_collection(&self) {
        self.ended.notified().await;
    }

    /// Measures the reuse and stale windows, and stamps collections, on `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock the windows are measured on.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The reuse window, when there is one.
    pub fn reuse_window(&self) -> Option<Duration> {
        (!self.min_interval.is_zero()).then_some(self.min_interval)
    }

    /// When the last successful collection finished.
    pub fn last_success_at(&self) -> Option<SystemTime> {
        lock(&self.state).last_success_at
    }

    /// The last successful collection, to serve in place of one that failed, if it is younger
    /// than `--scrape.serve-stale-for`.
    pub fn stale_stand_in(&self) -> Option<Arc<Collection>> {
        lock(&self.state)
            .last_good
            .as_ref()
            .filter(|c| self.clock.since(c.finished) < self.serve_stale_for)
            .cloned()
    }

    /// The collection a scrape with this deadline reports: a recent successful one within
    /// `--scrape.min-interval`, else the one in progress, else a new one. `None` when the
    /// deadline passes first. A new collection runs to its own deadline: this scrape's, but no
    /// sooner than [`Retention::least_time`] from now and no later than the longer of that and
    /// [`MAX_COLLECTION_TIME`]; a scrape that gives up leaves it running for the others.
    pub async fn collection(&self, deadline: Instant, budget: Duration) -> Option<Arc<Collection>> {
        if self.schedule.is_some() {
            // On a schedule a scrape never waits on the API: the latest collection, or none yet.
            return lock(&self.state).latest.clone();
        }
        let (running, ends_by) = {
            let mut state = lock(&self.state);
            // A failed collection is reused too: a client looping on the telemetry path must
            // not turn a failing API into a storm of requests that fail again.
            let recent = state
                .latest
                .as_ref()
                .filter(|c| self.clock.since(c.finished) < self.min_interval);
            if let Some(recent) = recent {
                return Some(recent.clone());
            }
            match &state.running {
                Some(running) => running.clone(),
                None => {
                    // Measured from when this scrape started, as its own deadline is.
                    let started = deadline.checked_sub(budget).unwrap_or_else(Instant::now);
                    let ends_by = deadline.clamp(
                        started + self.least_time,
                        started + self.least_time.max(MAX_COLLECTION_TIME),
                    );
                    let budget = ends_by.saturating_duration_since(started);
                    let running = (self.start_collection(ends_by, budget), ends_by);
                    state.running = Some(running.clone());
                    running
                }
            }
        };
        if ends_by <= deadline {
            // It ends, failed or not, by this scrape's deadline: wait for its outcome, which
            // then includes the failure it counted.
            return Some(running.await);
        }
        match tokio::time::timeout_at(deadline, running).await {
            Ok(collection) => Some(collection),
            Err(_) => {
                // Joined a collection that started with a later deadline than this scrape has.
                // Not counted: the collection counts its own outcome when it ends.
                tracing::warn!(
                    budget_seconds = budget.as_secs_f64(),
                    "the scrape's deadline passed while it waited for a collection another scrape started; reporting clouddevice_up 0"
                );
                None
            }
        }
    }

    /// Starts a collection in its own task, so that it finishes (within its deadline) and is
    /// shared even if the scrape that started it goes away.
    fn start_collection(&self, deadline: Instant, budget: Duration) -> Running {
        let source = self.source.clone();
        let metrics = self.metrics.clone();
        let state = self.state.clone();
        let keep = !self.min_interval.is_zero() || !self.serve_stale_for.is_zero();
        let scheduled = self.schedule.is_some();
        let reused = !self.min_interval.is_zero();
        let ended = self.ended.clone();
        let clock = self.clock.clone();
        let explain = self.explain;
        let task = self.thread.runtime.spawn(async move {
            let started = Instant::now();
            let read = tokio::time::timeout_at(deadline, source.read(deadline));
            let mut result = read.await.unwrap_or(Err(ApiError::Deadline {
                progress: Progress {
                    elapsed: budget,
                    ..Progress::default()
                },
            }));
            if let Err(ApiError::Deadline { progress }) = &mut result {
                progress.scheduled = scheduled;
            }
            // Requests count their own failures; the collection counts only its own.
            if let Err(error) = &result {
                if error.is_collection_failure() {
                    metrics.api_error(&error.cause());
                }
            }
            let duration = started.elapsed();
            let result = result.map_err(|e| explain(&e));
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
                    // A failure said once: the same one again (IAM held back after refusing the
                    // credentials, a permission still missing) is not said on every scrape.
                    let again = lock(&state)
                        .last
                        .as_ref()
                        .is_some_and(|last| last.outcome.as_ref().err() == Some(error));
                    if again {
                        tracing::debug!(%error, "collection failed again the same way");
                    } else {
                        tracing::error!(%error, duration_seconds = duration.as_secs_f64(), "collection failed; reporting clouddevice_up 0");
                    }
                    Err(error.clone())
                }
            };
            let collection = Arc::new(Collection {
                fleet: result.map(Arc::new),
                finished: clock.instant(),
                finished_at: clock.now(),
            });
            let mut state = lock(&state);
            state.running = None;
            if collection.fleet.is_ok() {
                state.last_success_at = Some(collection.finished_at);
                if keep {
                    state.last_good = Some(collection.clone());
                }
            }
            state.last = Some(LastCollection {
                finished: collection.finished_at,
                duration_seconds: duration.as_secs_f64(),
                outcome,
            });
            if scheduled || reused {
                state.latest = Some(collection.clone());
            }
            state.before_reload = false;
            drop(state);
            ended.notify_waiters();
            collection
        });
        let state = self.state.clone();
        let clock = self.clock.clone();
        async move {
            task.await.unwrap_or_else(|e| {
                // Only a panic in the collection gets here; keep serving, and let the next
                // scrape start afresh.
                lock(&state).running = None;
                tracing::error!(error = %e, "the collection task failed");
                Arc::new(Collection {
                    fleet: Err(format!("the collection task failed: {e}")),
                    finished: clock.instant(),
                    finished_at: clock.now(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{Identity, Instance};
    use crate::upstream::error::RequestFailure;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A source whose reads take `delay` and then give one instance, or fail while `fail` is set.
    struct FakeSource {
        reads: AtomicUsize,
        delay: Duration,
        fail: AtomicBool,
    }

    impl FakeSource {
        fn new(delay: Duration, fail: bool) -> Arc<Self> {
            Arc::new(FakeSource {
                reads: AtomicUsize::new(0),
                delay,
                fail: AtomicBool::new(fail),
            })
        }
    }

    impl Source for FakeSource {
        fn read(&self, _deadline: Instant) -> BoxFuture<'_, Result<Fleet, ApiError>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(self.delay).await;
                if self.fail.load(Ordering::SeqCst) {
                    // A request-level failure: counted by the source, not again here.
                    let refused = RequestFailure::Transport("refused".into());
                    return Err(ApiError::request(1, "r", refused));
                }
                let instance = Instance {
                    identity: Identity::new("a", "", ""),
                    ..Instance::default()
                };
                Ok(Fleet::from_pages([vec![instance]]).0)
            }
            .boxed()
        }
    }

    fn collector(
        source: Arc<FakeSource>,
        min_interval: Duration,
    ) -> (Collector, Arc<ExporterMetrics>) {
        let keep = Retention {
            min_interval,
            ..Retention::default()
        };
        let metrics = Arc::new(ExporterMetrics::new().unwrap());
        let collector = Collector::new(source, metrics.clone(), keep).unwrap();
        (collector, metrics)
    }

    /// `clouddevice_exporter_api_errors_total{error_code=label}`.
    fn errors(metrics: &ExporterMetrics, label: &str) -> f64 {
        metrics
            .gather()
            .iter()
            .filter(|f| f.name() == "clouddevice_exporter_api_errors_total")
            .flat_map(|f| f.get_metric())
            .filter(|m| m.get_label().iter().any(|l| l.value() == label))
            .map(|m| m.get_counter().value())
            .sum()
    }

    fn budget(ms: u64) -> (Instant, Duration) {
        let budget = Duration::from_millis(ms);
        (Instant::now() + budget, budget)
    }

    #[tokio::test]
    async fn concurrent_scrapes_share_one_read() {
        let source = FakeSource::new(Duration::from_millis(200), false);
        let (collector, _) = collector(source.clone(), Duration::ZERO);
        let (deadline, b) = budget(5_000);
        let (one, two) = tokio::join!(
            collector.collection(deadline, b),
            collector.collection(deadline, b)
        );
        assert!(one.unwrap().fleet.is_ok() && two.unwrap().fleet.is_ok());
        assert_eq!(source.reads.load(Ordering::SeqCst), 1);
        // Without a reuse window, the next scrape reads again.
        collector.collection(deadline, b).await.unwrap();
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_recent_success_is_reused_within_the_window() {
        let source = FakeSource::new(Duration::ZERO, false);
        let (collector, _) = collector(source.clone(), Duration::from_secs(600));
        let (deadline, b) = budget(5_000);
        collector.collection(deadline, b).await.unwrap();
        collector.collection(deadline, b).await.unwrap();
        assert_eq!(source.reads.load(Ordering::SeqCst), 1);
        assert!(collector.last_success_at().is_some());
    }

    #[tokio::test]
    async fn a_failed_collection_is_reused_within_the_window_too() {
        let source = FakeSource::new(Duration::ZERO, true);
        let metrics = Arc::new(ExporterMetrics::new().unwrap());
        let clock = Clock::manual();
        let keep = Retention {
            min_interval: Duration::from_secs(10),
            ..Retention::default()
        };
        let collector = Collector::new(source.clone(), metrics, keep)
            .unwrap()
            .with_clock(clock.clone());
        let (deadline, b) = budget(5_000);
        for _ in 0..5 {
            assert!(collector
                .collection(deadline, b)
                .await
                .unwrap()
                .fleet
                .is_err());
        }
        assert_eq!(
            source.reads.load(Ordering::SeqCst),
            1,
            "one read per window"
        );
        clock.advance(Duration::from_secs(10));
        collector.collection(deadline, b).await.unwrap();
        assert_eq!(
            source.reads.load(Ordering::SeqCst),
            2,
            "read again after it"
        );
    }

    #[tokio::test]
    async fn the_last_success_stands_in_for_a_failure_only_within_the_stale_window() {
        let source = FakeSource::new(Duration::ZERO, false);
        let keep = Retention {
            serve_stale_for: Duration::from_secs(1),
            ..Retention::default()
        };
        let metrics = Arc::new(ExporterMetrics::new().unwrap());
        let clock = Clock::manual();
        let collector = Collector::new(source.clone(), metrics, keep)
            .unwrap()
            .with_clock(clock.clone());
        let (deadline, b) = budget(5_000);
        assert!(
            collector.stale_stand_in().is_none(),
            "nothing succeeded yet"
        );
        let good = collector.collection(deadline, b).await.unwrap();
        source.fail.store(true, Ordering::SeqCst);
        let failed = collector.collection(deadline, b).await.unwrap();
        assert!(failed.fleet.is_err(), "a failure is still read afresh");
        let stand_in = collector.stale_stand_in().expect("within the window");
        assert!(Arc::ptr_eq(&stand_in, &good));
        clock.advance(Duration::from_millis(1_100));
        assert!(collector.stale_stand_in().is_none(), "past the window");
    }

    #[tokio::test]
    async fn without_a_stale_window_no_fleet_is_kept() {
        let source = FakeSource::new(Duration::ZERO, false);
        let (collector, _) = collector(source, Duration::ZERO);
        let (deadline, b) = budget(5_000);
        collector.collection(deadline, b).await.unwrap();
        assert!(collector.stale_stand_in().is_none());
    }

    #[tokio::test]
    async fn a_passed_deadline_is_counted_once_however_many_scrapes_waited() {
        let source = FakeSource::new(Duration::from_secs(30), false);
        let (collector, metrics) = collector(source, Duration::ZERO);
        let (late, late_budget) = budget(400);
        let (early, early_budget) = budget(100);
        // The first scrape starts the collection (join! polls it first); the second joins it
        // with an earlier deadline and gives up first.
        let (first, joined) = tokio::join!(
            collector.collection(late, late_budget),
            collector.collection(early, early_budget)
        );
        assert!(joined.is_none(), "the joiner gave up at its deadline");
        let first = first.expect("the starter waits for the outcome");
        assert!(first.fleet.is_err());
        assert_eq!(errors(&metrics, "timeout"), 1.0);
    }

    #[tokio::test]
    async fn a_client_with_a_short_timeout_cannot_shorten_the_collection_others_share() {
        let source = FakeSource::new(Duration::from_millis(300), false);
        let keep = Retention {
            least_time: Duration::from_secs(5),
            ..Retention::default()
        };
        let metrics = Arc::new(ExporterMetrics::new().unwrap());
        let collector = Collector::new(source.clone(), metrics.clone(), keep).unwrap();
        // A hostile client starts the collection with a 50 ms deadline; Prometheus joins it
        // with its own 5 s.
        let (short, short_budget) = budget(50);
        let (long, long_budget) = budget(5_000);
        let (hostile, real) = tokio::join!(
            collector.collection(short, short_budget),
            collector.collection(long, long_budget)
        );
        assert!(
            hostile.is_none(),
            "the short client gives up at its own deadline"
        );
        let real = real.expect("the real scrape gets the collection");
        assert!(real.fleet.is_ok(), "the collection ran to its own deadline");
        assert_eq!(source.reads.load(Ordering::SeqCst), 1);
        assert_eq!(errors(&metrics, "timeout"), 0.0, "no doomed collection");
    }

    #[tokio::test]
    async fn a_request_failure_is_not_counted_again_by_the_collection() {
        let source = FakeSource::new(Duration::ZERO, true);
        let (collector, metrics) = collector(source, Duration::ZERO);
        let (deadline, b) = budget(5_000);
        let collection = collector.collection(deadline, b).await.unwrap();
        assert!(collection.fleet.is_err());
        assert_eq!(errors(&metrics, "transport"), 0.0);
        assert!(collector.last_collection().unwrap().outcome.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_schedule_starts_at_its_offset_then_every_interval_and_never_overlaps() {
        let schedule = Schedule {
            interval: Duration::from_secs(120),
            timeout: Duration::from_secs(100),
        };
        let start = tokio::time::Instant::now();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let seen = calls.clone();
        // The third collection runs 200 s, past the next start.
        let task = tokio::spawn(on_schedule(
            schedule,
            Duration::from_secs(30),
            move |deadline| {
                let mut seen = seen.lock().unwrap();
                let n = seen.len();
                seen.push((tokio::time::Instant::now() - start, deadline - start));
                async move {
                    let took = if n == 2 { 200 } else { 10 };
                    tokio::time::sleep(Duration::from_secs(took)).await;
                }
            },
        ));
        tokio::time::sleep(Duration::from_secs(600)).await;
        task.abort();
        let secs = |d: Duration| d.as_secs();
        let calls: Vec<(u64, u64)> = calls
            .lock()
            .unwrap()
            .iter()
            .map(|(at, deadline)| (secs(*at), secs(*deadline)))
            .collect();
        // At 30, 150, 270 (runs to 470), then at once at 470, and 590: each with its deadline.
        assert_eq!(
            calls,
            [(30, 130), (150, 250), (270, 370), (470, 570), (590, 690)]
        );
    }

    #[test]
    fn accounts_are_spread_over_the_interval_and_keep_their_point() {
        let schedule = Schedule {
            interval: Duration::from_secs(120),
            timeout: Duration::from_secs(120),
        };
        let offsets: Vec<Duration> = (0..50)
            .map(|k| schedule.offset(&format!("account-{k}")))
            .collect();
        assert!(offsets.iter().all(|o| *o < schedule.interval));
        assert_eq!(schedule.offset("account-7"), offsets[7]);
        // Fifty accounts in twelve 10 s slices: none holds more than a quarter of them.
        let mut slices = [0; 12];
        for offset in &offsets {
            slices[(offset.as_secs() / 10) as usize] += 1;
        }
        assert!(slices.iter().all(|n| *n <= 12), "{slices:?}");
    }

    #[tokio::test]
    async fn on_a_schedule_a_scrape_reports_the_latest_collection_and_never_reads() {
        let source = FakeSource::new(Duration::ZERO, false);
        let metrics = Arc::new(ExporterMetrics::new().unwrap());
        let schedule = Schedule {
            interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
        };
        let collector = Collector::new(source.clone(), metrics, Retention::default())
            .unwrap()
            .scheduled(schedule, Duration::ZERO);
        collector.collected().await;
        assert!(collector.ready());
        let (deadline, b) = budget(5_000);
        for _ in 0..3 {
            let latest = collector.collection(deadline, b).await.unwrap();
            assert!(latest.fleet.is_ok());
        }
        assert_eq!(
            source.reads.load(Ordering::SeqCst),
            1,
            "scrapes read nothing"
        );
        // Dropping the collector ends its schedule (and with it the thread).
        let thread = Arc::downgrade(&collector.thread);
        drop(collector);
        while thread.upgrade().is_some() {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn on_a_schedule_nothing_is_ready_before_the_first_collection_ends() {
        let source = FakeSource::new(Duration::from_secs(3600), false);
        let metrics = Arc::new(ExporterMetrics::new().unwrap());
        let schedule = Schedule {
            interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(7200),
        };
        let collector = Collector::new(source, metrics, Retention::default())
            .unwrap()
            .scheduled(schedule, Duration::ZERO);
        assert!(!collector.ready());
        let (deadline, b) = budget(5_000);
        assert!(collector.collection(deadline, b).await.is_none());
    }
}
