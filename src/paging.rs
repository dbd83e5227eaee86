//! Reads the whole instance list: page 1 first, then the remaining pages concurrently, into one
//! [`Fleet`] snapshot. Any failed page fails the whole read: partial counts would fire false alerts.

use std::collections::BTreeMap;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::client::{ApiError, Client};
use crate::fleet::{Fleet, Instance};

/// Reads every page of the list and returns each instance once.
///
/// The page size is what page 1 actually held, not what was asked for: the service may cap it.
/// With `total_count` the number of pages is known; without it, paging ends at the first short
/// page. Either way an empty page ends the list early.
pub async fn collect_fleet(client: &Client) -> Result<Fleet, ApiError> {
    let config = client.config();
    let max_pages = u64::from(config.max_pages);
    let first = client.fetch_page(1).await?;
    let total = first.total_count;
    let per_page = first.instances.len() as u64;
    let done_after_first = per_page == 0 || total.is_some_and(|t| per_page >= t);
    if done_after_first {
        let mut fleet = Fleet::with_capacity(first.instances.len());
        first.instances.into_iter().for_each(|i| {
            fleet.insert(i);
        });
        return Ok(fleet);
    }

    let known_last = total.map(|t| t.div_ceil(per_page));
    let too_many = ApiError::TooManyPages {
        max: config.max_pages,
        per_page,
    };
    if known_last.is_some_and(|last| last > max_pages) {
        client.report(&too_many);
        return Err(too_many);
    }
    // Inclusive; lowered when a page shows the list ends sooner.
    let mut last = known_last.unwrap_or(max_pages);
    let mut pages: BTreeMap<u64, Vec<Instance>> = BTreeMap::new();
    pages.insert(1, first.instances);
    let mut next = 2;
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < config.concurrency && next <= last {
            let page_no = next;
            in_flight.push(async move { (page_no, client.fetch_page(page_no).await) });
            next += 1;
        }
        let Some((page_no, result)) = in_flight.next().await else {
            break;
        };
        // Returning drops the pages still in flight, which cancels their requests.
        let page = result?;
        let len = page.instances.len() as u64;
        if len == 0 || (total.is_none() && len < per_page) {
            let end = if len == 0 { page_no - 1 } else { page_no };
            last = last.min(end);
        }
        pages.insert(page_no, page.instances);
    }
    let ended_at_limit = pages
        .get(&max_pages)
        .is_some_and(|p| p.len() as u64 == per_page);
    if total.is_none() && last == max_pages && ended_at_limit {
        client.report(&too_many);
        return Err(too_many);
    }

    // Sized from what arrived, never from total_count: an upstream's number is not to be trusted
    // with an allocation.
    let mut fleet = Fleet::with_capacity(pages.values().map(Vec::len).sum());
    let mut duplicates = 0usize;
    // In page order, so which copy of a duplicate is kept does not depend on arrival order.
    for rows in pages.into_values() {
        for instance in rows {
            if !fleet.insert(instance) {
                duplicates += 1;
            }
        }
    }
    if duplicates > 0 {
        tracing::debug!(
            duplicates,
            "instances seen on more than one page were counted once"
        );
    }
    if let Some(total) = total.filter(|t| *t != fleet.len() as u64) {
        tracing::warn!(
            total_count = total,
            instances = fleet.len(),
            "the list held a different number of instances than its total_count said; it may have changed while it was paged"
        );
    }
    Ok(fleet)
}
