//! One account's read settings: every per-account setting of a read but where it goes, how it
//! signs in and what it filters by. Built by `cli`; read by the batch query, paging and retries.

use std::time::Duration;

use crate::upstream::retry::RetryPolicy;

/// Every per-account setting of a read but where it goes, how it signs in and what it filters
/// by: one type, which `cli` builds from the flags or an accounts-file entry and the batch
/// query, paging, retries and the rate limit read as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSettings {
    /// The `page_size` asked for.
    pub page_size: u32,
    /// Most pages asked for at once.
    pub concurrency: usize,
    /// Of each request.
    pub timeout: Duration,
    /// Most pages one read takes; a longer list fails with `too_many_pages`.
    pub max_pages: u32,
    /// Most instances one read holds; a longer list fails with `too_many_instances`.
    pub max_instances: u32,
    /// Retries after the first attempt of a request.
    pub max_retries: u32,
    /// Most requests a second; `None` for no limit.
    pub requests_per_second: Option<f64>,
    /// Largest response body read.
    pub max_response_bytes: u64,
    /// The zone of `backup_time` and `restore_time`.
    pub time_zone: time::UtcOffset,
}

impl AccountSettings {
    /// The flags' defaults, for tests and the fuzz targets.
    #[doc(hidden)]
    pub fn example() -> Self {
        AccountSettings {
            page_size: 100,
            concurrency: 4,
            timeout: Duration::from_secs(10),
            max_pages: 10_000,
            max_instances: 200_000,
            max_retries: 2,
            requests_per_second: None,
            max_response_bytes: 32 << 20,
            time_zone: time::UtcOffset::UTC,
        }
    }

    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
        }
    }
}
