//! Everything that talks to Huawei Cloud: sign-in (static token, IAM, AK/SK), the HTTP plumbing,
//! the batch-query API and its paging, the wire format, the errors, the retry policy and the
//! rate limit. Hands the layers above a [`Source`]. Of Prometheus it knows only the exporter's
//! own counters ([`crate::self_metrics::ExporterMetrics`]: requests, errors, latency, token
//! expiry, waits for the rate limit), which it counts as it goes; nothing here knows of the
//! exposition or of the exporter's server.

use tokio::time::Instant;

use futures::future::BoxFuture;

use crate::fleet::Fleet;

pub mod api_time;
pub mod auth;
pub mod batch_query;
pub mod codes;
pub mod credentials;
pub mod error;
pub mod error_body;
pub mod http;
pub mod iam;
pub mod paging;
pub mod project;
pub mod rate;
pub mod redact;
pub mod repair;
pub mod retry;
pub mod settings;
pub mod sign;
pub mod slots;
pub mod wire;

pub use error::ApiError;

/// Where fleets come from: one complete read of an API's instance list, before `deadline`.
/// The batch-query API is one; a second API is one more implementation. A source counts and
/// logs the failures of the requests it makes; the failure it returns is counted by the caller
/// only if it is the collection's own ([`ApiError::is_collection_failure`]).
pub trait Source: Send + Sync + 'static {
    fn read(&self, deadline: Instant) -> BoxFuture<'_, Result<Fleet, ApiError>>;
}
