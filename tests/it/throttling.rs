//! The exporter behind a gateway that throttles each account (the simulator's `rate_limit`, as
//! APIG answers `APIGW.0308` with HTTP 429): `--clouddevice.requests-per-second` keeps under it,
//! and a throttled answer holds every request of the account, not only the refused one.

use crate::common;

use clouddevice_simulator::SimConfig;
use common::sim_and_exporter;

/// 2,000 phones: 10 pages of 200.
fn gateway(limit: u32) -> SimConfig {
    SimConfig {
        rate_limit: Some(limit),
        max_page_size: 200,
        ..SimConfig::new(2_000, 5)
    }
}

#[tokio::test]
async fn a_rate_under_the_gateway_limit_is_never_throttled() {
    let (sim, exporter) = sim_and_exporter(
        gateway(5),
        &[
            "--clouddevice.concurrency",
            "8",
            "--clouddevice.requests-per-second",
            "4",
        ],
    )
    .await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert_eq!(m.sum("clouddevice_instances"), 2_000.0);
    let stats = sim.gateway_stats(600);
    assert_eq!((stats.passed, stats.throttled), (10, 0), "{stats:?}");
    assert!(stats.busiest_second <= 5, "{stats:?}");
    assert_eq!(m.errors("throttled"), Some(0.0));
    // Nine of the ten requests waited for their turn, 0.25 s apart: 2.25 s in all at least.
    assert_eq!(
        m.value("clouddevice_exporter_rate_limit_waits_total"),
        Some(9.0)
    );
    let waited = m
        .value("clouddevice_exporter_rate_limit_wait_seconds_total")
        .unwrap();
    assert!(waited >= 9.0 * 0.2, "{waited}");
}

#[tokio::test]
async fn without_a_rate_the_same_read_is_throttled_and_retried() {
    let (sim, exporter) = sim_and_exporter(gateway(5), &["--clouddevice.concurrency", "8"]).await;
    let m = exporter.scrape().await;
    let stats = sim.gateway_stats(600);
    assert!(stats.throttled > 0, "{stats:?}");
    assert_eq!(m.errors("throttled"), Some(stats.throttled as f64));
    // The refused pages were asked again after the Retry-After, within the scrape.
    assert_eq!(m.up(), 1.0, "{}", m.0);
    assert_eq!(stats.passed, 10);
}

#[tokio::test]
async fn a_rate_over_the_gateway_limit_backs_off_for_every_request_and_the_read_completes() {
    let (sim, exporter) = sim_and_exporter(
        gateway(4),
        &[
            "--clouddevice.concurrency",
            "8",
            "--clouddevice.requests-per-second",
            "8",
            "--scrape.timeout",
            "60s",
        ],
    )
    .await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0, "{}", m.0);
    assert_eq!(m.sum("clouddevice_instances"), 2_000.0);
    let stats = sim.gateway_stats(600);
    // At 8 a second against a limit of 4, the first second alone is throttled; after it the
    // rate is halved for every request, so the answers refused stay few.
    assert!(
        (1..=4).contains(&stats.throttled),
        "throttled {} times: {stats:?}",
        stats.throttled
    );
    assert_eq!(stats.passed, 10);
}

#[tokio::test]
async fn a_read_the_deadline_cuts_short_says_how_far_it_got_and_what_helps() {
    // One request a second and no rate set: 10 pages cannot be read in a 2 s scrape.
    let (_sim, exporter) = sim_and_exporter(
        gateway(1),
        &["--clouddevice.concurrency", "4", "--scrape.timeout", "2s"],
    )
    .await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    let said = exporter.last_collection().await;
    let needles = [
        "the deadline passed after",
        "of 10 pages read",
        "give the scrape more time (Prometheus' scrape_timeout",
        "set --clouddevice.requests-per-second to the gateway's limit for this account (it throttled the read)",
    ];
    common::assert_holds(&said, &needles);
    assert!(!said.contains("--clouddevice.timeout"), "{said}");
}
