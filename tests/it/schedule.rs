//! Collection on a schedule (`--collection.interval`): scrapes answer at once from the latest
//! collection and never read the list; readiness waits for the first collection; the HELP texts
//! say where the data comes from. The schedule's timing itself (offsets, intervals, no overlap)
//! is tested on paused time in `collect.rs`.

use crate::common;

use std::time::Duration;

use clouddevice_exporter::probe::Probes;
use clouddevice_simulator::{Fault, SimConfig};
use common::{sim_and_exporter, TestExporter};
use std::path::Path;
use std::sync::Arc;

/// 500 phones, 3 pages of 200, each answered after 200 ms.
fn slow_fleet() -> SimConfig {
    SimConfig {
        latency: Duration::from_millis(200),
        max_page_size: 200,
        ..SimConfig::new(500, 9)
    }
}

#[tokio::test]
async fn scrapes_report_the_latest_collection_and_never_read_the_list() {
    let (sim, exporter) = sim_and_exporter(slow_fleet(), &["--collection.interval", "1h"]).await;
    let account = exporter.account.clone().unwrap();
    // The first collection needs at least two 200 ms round trips: not ready yet.
    let response = exporter.get("/-/ready").await;
    assert_eq!(response.status(), 503);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("first scheduled collection"));
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0, "nothing collected yet");
    assert!(m.value("clouddevice_collection_age_seconds").is_none());

    account.collected().await;
    assert_eq!(exporter.get("/-/ready").await.status(), 200);
    let read = sim.requests();
    assert_eq!(read, 3);
    for _ in 0..5 {
        let m = exporter.scrape().await;
        assert_eq!(m.up(), 1.0);
        assert_eq!(m.sum("clouddevice_instances"), 500.0);
        assert!(m.value("clouddevice_collection_age_seconds").unwrap() >= 0.0);
        assert!(m.value("clouddevice_collection_duration_seconds").unwrap() >= 0.4);
        // A scrape takes no round trip to the API.
        assert!(m.value("clouddevice_scrape_duration_seconds").unwrap() < 0.2);
        assert!(m.contains(
            "# HELP clouddevice_instances Number of instances, by region and SKU. Read by a collection every 3600s (--collection.interval), not by this scrape"
        ));
        assert!(m.contains("# HELP clouddevice_up Whether the latest scheduled collection"));
    }
    assert_eq!(sim.requests(), read, "scrapes read nothing");
}

#[tokio::test]
async fn a_failed_collection_is_reported_until_the_next_one() {
    let sim_config = SimConfig::new(300, 4);
    let (sim, exporter) = sim_and_exporter(
        sim_config,
        &[
            "--collection.interval",
            "1h",
            "--clouddevice.max-retries",
            "0",
        ],
    )
    .await;
    sim.inject(Fault::every_page(500, Some("KOOPHONE.API.9999")));
    exporter.account.clone().unwrap().collected().await;
    // Ready: there is a collection to report, a failed one.
    assert_eq!(exporter.get("/-/ready").await.status(), 200);
    let read = sim.requests();
    for _ in 0..3 {
        let m = exporter.scrape().await;
        assert_eq!(m.up(), 0.0);
        assert!(m.value("clouddevice_instances").is_none());
        // No data has been read whole yet: no age to give it.
        assert!(m.value("clouddevice_collection_age_seconds").is_none());
        assert!(m.value("clouddevice_collection_duration_seconds").is_some());
    }
    assert_eq!(
        sim.requests(),
        read,
        "a failed collection is not retried by scrapes"
    );
}

#[tokio::test]
async fn a_timeout_without_an_interval_is_refused() {
    let args = [
        "clouddevice_exporter",
        "--collection.timeout",
        "30s",
        "--demo",
    ];
    let err = clouddevice_exporter::run::Cli::from_args(args)
        .unwrap()
        .exporter
        .validate(Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("set --collection.interval too"), "{err}");
}

/// The exporter serving the accounts file `accounts`, collecting every `interval`.
async fn collecting(accounts: &Path, interval: &str) -> (TestExporter, Arc<Probes>) {
    let flags = [
        "--config.file",
        accounts.to_str().unwrap(),
        "--collection.interval",
        interval,
    ];
    let exporter = TestExporter::start_flags(&flags, Default::default()).await;
    let probes = exporter.probes.clone().expect("an accounts file's probes");
    (exporter, probes)
}

#[tokio::test]
async fn a_reload_starts_collecting_for_an_added_account_and_stops_a_removed_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, accounts, write) = common::token_accounts(dir.path()).await;
    write(&["retail"]);
    // Each account starts at its own point of a 2 s interval.
    let (exporter, probes) = collecting(&accounts, "2s").await;
    let retail = probes.get("retail").unwrap();
    retail.exporter.collected().await;
    assert_eq!(exporter.get("/-/ready").await.status(), 200);

    write(&["games"]);
    exporter.reload.reload().await.unwrap();
    let games = probes.get("games").unwrap();
    assert!(!games.exporter.ready(), "games has not collected yet");
    // Not ready until the added account's first collection has ended.
    assert_eq!(exporter.get("/-/ready").await.status(), 503);
    games.exporter.collected().await;
    assert_eq!(exporter.get("/-/ready").await.status(), 200);
    let probe = exporter
        .get("/probe?target=games")
        .await
        .text()
        .await
        .unwrap();
    assert!(probe.contains("clouddevice_up 1"), "{probe}");
    // The removed account's collector, and with it its schedule, is gone once nothing holds it.
    let removed = std::sync::Arc::downgrade(&retail);
    drop(retail);
    assert!(removed.upgrade().is_none(), "retail is still collecting");
}

/// Collections every 200 ms, none retried, and a failed one served from the last good fleet.
const STALE: &[&str] = &[
    "--collection.interval",
    "200ms",
    "--scrape.serve-stale-for",
    "1h",
    "--clouddevice.max-retries",
    "0",
];

#[tokio::test]
async fn a_failed_collection_serves_the_last_good_fleet_within_the_stale_window() {
    let flags = [STALE, &["--collector.instance-metrics", "problems"]].concat();
    let (sim, exporter) = sim_and_exporter(SimConfig::new(300, 4), &flags).await;
    let account = exporter.account.clone().unwrap();
    account.collected().await;
    let good = exporter.scrape().await;
    assert_eq!(good.up(), 1.0);
    sim.inject(Fault::every_page(503, None));
    // A collection that began after the fault fails: wait for the one after the one under way.
    account.next_collection().await;
    account.next_collection().await;
    let stale = exporter.scrape().await;
    assert_eq!(stale.up(), 0.0);
    assert_eq!(
        stale.sum("clouddevice_instances"),
        300.0,
        "the last good fleet"
    );
    assert!(
        stale.contains("The latest collection failed: served from the last successful collection")
    );
    // collect[] and the per-instance mode apply as on scrapes.
    let only = exporter
        .get("/metrics?collect[]=aggregates")
        .await
        .text()
        .await
        .unwrap();
    assert!(only.contains("clouddevice_instances{") && !only.contains("clouddevice_instance_info"));
    let in_trouble = good.samples("clouddevice_instance_info").len();
    assert!(in_trouble > 0 && in_trouble < 300, "{in_trouble} of 300");
}

#[tokio::test]
async fn the_age_is_that_of_the_fleet_served_not_of_the_collection_that_failed() {
    let clock = clouddevice_exporter::clock::Clock::manual();
    let (sim, exporter) =
        common::sim_and_exporter_on(SimConfig::new(300, 4), STALE, clock.clone()).await;
    let account = exporter.account.clone().unwrap();
    account.collected().await;
    sim.inject(Fault::every_page(503, None));
    // The last good fleet is 17 s old when the collections after it fail.
    account.next_collection().await;
    clock.advance(Duration::from_secs(17));
    account.next_collection().await;
    account.next_collection().await;
    let stale = exporter.scrape().await;
    assert_eq!(stale.up(), 0.0);
    assert_eq!(stale.sum("clouddevice_instances"), 300.0);
    let age = stale.value("clouddevice_collection_age_seconds").unwrap();
    assert!((17.0..18.0).contains(&age), "{age}");
}

#[tokio::test]
async fn a_reload_that_changes_an_account_keeps_serving_its_fleet_and_collects_at_once() {
    let sim = common::simulator(SimConfig::new(30, 5)).await;
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("accounts.yml");
    let token = dir.path().join("token");
    std::fs::write(&token, "any-token").unwrap();
    let write = |page_size: u32| {
        let entry = format!(
            "accounts:\n  retail-3639:\n    endpoint: {}\n    token_file: {}\n    page_size: {page_size}\n",
            sim.url(),
            token.display()
        );
        std::fs::write(&accounts, entry).unwrap();
    };
    write(100);
    // An hour between collections. The account's name puts its point of the schedule 1.44 s
    // into the interval (`Schedule::offset`): a collector made afresh by the reload would
    // answer up 0 and leave /-/ready for that long.
    let (exporter, probes) = collecting(&accounts, "1h").await;
    probes
        .get("retail-3639")
        .unwrap()
        .exporter
        .collected()
        .await;
    let read = sim.requests();

    // A routine change (here the page size; a rotated token alike).
    write(50);
    let summary = exporter.reload.reload().await.unwrap();
    assert!(summary.contains("1 changed"), "{summary}");
    assert_eq!(exporter.get("/-/ready").await.status(), 200, "still ready");
    let probe = exporter
        .get("/probe?target=retail-3639")
        .await
        .text()
        .await
        .unwrap();
    let m = common::Scraped(probe);
    // The fleet read before the reload, marked as such (or, on a fast machine, the new one).
    assert_eq!(m.up(), 1.0, "{}", m.0);
    assert!(
        m.contains("before the last reload") || sim.requests() > read,
        "{}",
        m.0
    );
    assert_eq!(m.sum("clouddevice_instances"), 30.0);
    // The new settings' first collection starts now, not in up to an hour.
    tokio::time::timeout(Duration::from_secs(10), sim.requests_reach(read + 1))
        .await
        .expect("collected at once after the reload");
}
