//! One scrape, start to end: a collection of the fleet within the scraper's deadline, turned into
//! the exposition with the exporter's own metrics. Knows nothing of HTTP.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::collect::{Collection, Collector, LastCollection};
use crate::exposition::{
    self, Exposition, ExpositionConfig, Families, FleetParts, Format, Scheduled, Scrape,
};
use crate::self_metrics::ExporterMetrics;

/// How long before the scraper's own timeout the answer is sent, so that a slow API costs an
/// `up 0`, not a failed scrape with a gap in every series.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// The time a scrape whose scraper gives up after `timeout` has for its collection.
pub fn budget(timeout: Duration) -> Duration {
    timeout.saturating_sub(DEADLINE_MARGIN.min(timeout / 4))
}

pub struct Exporter {
    collector: Collector,
    metrics: Arc<ExporterMetrics>,
    config: ExpositionConfig,
    /// On a schedule: what the scrapes worked out from the collection they report, kept with it
    /// until the next one, so that a scrape does not go over the whole fleet again.
    prepared: std::sync::Mutex<Option<(Arc<Collection>, Arc<FleetParts>)>>,
}

impl Exporter {
    pub fn new(
        collector: Collector,
        metrics: Arc<ExporterMetrics>,
        config: ExpositionConfig,
    ) -> Self {
        Exporter {
            collector,
            metrics,
            config,
            prepared: std::sync::Mutex::new(None),
        }
    }

    /// The parts of `collection`'s fleet, worked out once per collection. Backup ages are then
    /// measured at the collection's end rather than at each scrape: the data is as of then.
    fn prepared(&self, collection: &Arc<Collection>) -> Option<Arc<FleetParts>> {
        let fleet = collection.fleet.as_ref().ok()?;
        let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((of, parts)) = prepared.as_ref() {
            if Arc::ptr_eq(of, collection) {
                return Some(parts.clone());
            }
        }
        let at = time::OffsetDateTime::from(collection.finished_at).unix_timestamp();
        let parts = Arc::new(FleetParts::of(fleet, &self.config, at));
        *prepared = Some((collection.clone(), parts.clone()));
        Some(parts)
    }

    /// Answers a scrape of `families` whose scraper gives up after `timeout`. A failed or late collection is
    /// not an error here: it is `clouddevice_up 0` in the text, with the exporter's own metrics.
    pub async fn scrape(
        &self,
        timeout: Duration,
        families: Families,
        format: Format,
    ) -> Result<Exposition, prometheus::Error> {
        let started = Instant::now();
        let budget = budget(timeout);
        let collection = self.collector.collection(started + budget, budget).await;
        let fresh = collection.filter(|c| c.fleet.is_ok());
        let up = fresh.is_some();
        // A failed scrape may still serve the last good fleet (--scrape.serve-stale-for), so
        // alerts hold through it; clouddevice_up 0 and the collection's timestamp say so.
        let served = fresh.or_else(|| self.collector.stale_stand_in());
        let fleet = served.as_ref().and_then(|c| c.fleet.as_ref().ok()).cloned();
        let stale_for = served
            .as_ref()
            .filter(|_| !up)
            .map(|c| self.collector.clock().since(c.finished));
        let last_success = match served.as_ref().filter(|_| up) {
            Some(c) => Some(c.finished_at),
            None => self.collector.last_success_at(),
        };
        let clock = self.collector.clock();
        // The age of the data served: the fresh or stale fleet's, else the last success's.
        let age = match &served {
            Some(c) => Some(clock.since(c.finished)),
            None => last_success.map(|at| clock.now().duration_since(at).unwrap_or_default()),
        };
        let scheduled = self.collector.schedule().map(|schedule| Scheduled {
            interval: schedule.interval,
            age,
            duration_seconds: self.collector.last_collection().map(|c| c.duration_seconds),
            before_reload: self.collector.before_reload(),
        });
        let scrape = Scrape {
            up,
            stale_for,
            fleet,
            duration_seconds: started.elapsed().as_secs_f64(),
            timeout_seconds: timeout.as_secs_f64(),
            config: self.config.clone(),
            families,
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
            cached_for: self.collector.reuse_window(),
            last_success,
            prepared: served
                .as_ref()
                .filter(|_| scheduled.is_some())
                .and_then(|c| self.prepared(c)),
            scheduled,
        };
        exposition::render(&scrape, self.metrics.gather(), format)
    }

    pub fn last_collection(&self) -> Option<LastCollection> {
        self.collector.last_collection()
    }

    /// The collector this exporter reports from.
    pub fn collector(&self) -> &Collector {
        &self.collector
    }

    /// Whether collections run on a schedule rather than on scrapes.
    pub fn scheduled(&self) -> bool {
        self.collector.schedule().is_some()
    }

    /// Whether scrapes have a collection to report (`/-/ready`).
    pub fn ready(&self) -> bool {
        self.collector.ready()
    }

    /// Returns once there is a collection to report ([`Collector::collected`]).
    pub async fn collected(&self) {
        self.collector.collected().await
    }

    /// Returns when the next collection ends ([`Collector::next_collection`]).
    pub async fn next_collection(&self) {
        self.collector.next_collection().await
    }
}
