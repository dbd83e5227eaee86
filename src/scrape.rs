//! One scrape, start to end: read the fleet, time it, turn it into families, encode. Also keeps
//! what the landing page shows of the last collection. Knows nothing of HTTP.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::client::Client;
use crate::metrics::{self, ExporterMetrics, Scrape};
use crate::paging;

/// What the landing page reports of the most recent collection.
#[derive(Debug, Clone)]
pub struct LastCollection {
    pub finished: SystemTime,
    pub duration_seconds: f64,
    /// Instances read, or the error that failed the collection.
    pub outcome: Result<usize, String>,
}

pub struct Exporter {
    client: Client,
    metrics: Arc<ExporterMetrics>,
    instance_metrics: bool,
    last: Mutex<Option<LastCollection>>,
}

impl Exporter {
    pub fn new(client: Client, metrics: Arc<ExporterMetrics>, instance_metrics: bool) -> Self {
        Exporter {
            client,
            metrics,
            instance_metrics,
            last: Mutex::new(None),
        }
    }

    /// Reads the whole list and renders the exposition. A failed read is not an error here: it
    /// is `clouddevice_up 0` in the text, and the exporter's own metrics still come with it.
    pub async fn scrape(&self) -> Result<String, prometheus::Error> {
        let start = Instant::now();
        let result = paging::collect_fleet(&self.client).await;
        let duration_seconds = start.elapsed().as_secs_f64();
        let outcome = match &result {
            Ok(fleet) => {
                tracing::debug!(
                    instances = fleet.len(),
                    duration_seconds,
                    "collection finished"
                );
                Ok(fleet.len())
            }
            Err(error) => {
                tracing::error!(%error, duration_seconds, "collection failed; reporting clouddevice_up 0");
                Err(error.to_string())
            }
        };
        let mut families = metrics::scrape_families(&Scrape {
            fleet: result.as_ref().ok(),
            duration_seconds,
            instance_metrics: self.instance_metrics,
        });
        drop(result);
        families.extend(self.metrics.gather());
        self.record(LastCollection {
            finished: SystemTime::now(),
            duration_seconds,
            outcome,
        });
        metrics::encode(families)
    }

    fn record(&self, last: LastCollection) {
        // A poisoned lock only means another scrape panicked mid-write; the value is still usable.
        let mut slot = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(last);
    }

    pub fn last_collection(&self) -> Option<LastCollection> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
