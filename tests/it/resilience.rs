//! Faults the API really has, injected by the simulator, and what the exporter makes of them:
//! retries that help, deadlines that hold, scrapes that share one pass over the API, limits that
//! protect the exporter, and lists that change while they are paged.

use crate::common;

use std::time::{Duration, Instant};

use clouddevice_exporter::clock::Clock;
use clouddevice_simulator::{ErrorShape, Fault, FaultKind, SimConfig};
use common::{sim_and_exporter, sim_and_exporter_on, Scraped, TestExporter};

fn fleet(instances: usize) -> SimConfig {
    SimConfig::new(instances, 21)
}

fn on_page(page: u64, times: Option<u32>, kind: FaultKind) -> Fault {
    Fault {
        page: Some(page),
        times,
        kind,
    }
}

fn errors(m: &Scraped, code: &str) -> Option<f64> {
    m.errors(code)
}

/// A scrape as Prometheus sends it, with its timeout header.
async fn scrape_with_timeout(exporter: &TestExporter, seconds: f64) -> (Scraped, Duration) {
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(exporter.url("/metrics"))
        .header("X-Prometheus-Scrape-Timeout-Seconds", seconds.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    (Scraped(text), started.elapsed())
}

#[tokio::test]
async fn one_transient_500_is_retried_alone_and_the_scrape_succeeds() {
    let (sim, exporter) = sim_and_exporter(fleet(300), &[]).await;
    let kind = FaultKind::Status {
        status: 500,
        code: None,
    };
    sim.inject(on_page(2, Some(1), kind));
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert_eq!(m.sum("clouddevice_instances"), 300.0);
    assert_eq!(sim.page_requests(2), 2, "the failed page is asked again");
    assert_eq!(
        (sim.page_requests(1), sim.page_requests(3)),
        (1, 1),
        "the others are kept"
    );
    assert_eq!(errors(&m, "http_500"), Some(1.0));
}

#[tokio::test]
async fn a_permanent_500_gives_up_within_the_deadline() {
    let (sim, exporter) = sim_and_exporter(fleet(300), &[]).await;
    let kind = FaultKind::Status {
        status: 500,
        code: Some("KOOPHONE.API.9999".into()),
    };
    sim.inject(on_page(2, None, kind));
    let (m, elapsed) = scrape_with_timeout(&exporter, 2.0).await;
    assert_eq!(m.up(), 0.0);
    assert!(
        elapsed < Duration::from_secs(2),
        "answered after {elapsed:?}"
    );
    assert_eq!(sim.page_requests(2), 3, "the first try and two retries");
    assert_eq!(errors(&m, "KOOPHONE.API.9999"), Some(3.0));
}

#[tokio::test]
async fn throttling_is_retried_after_the_wait_the_service_asks_for() {
    let (sim, exporter) = sim_and_exporter(fleet(300), &[]).await;
    sim.inject(on_page(
        3,
        Some(1),
        FaultKind::Throttle {
            retry_after: Some(1),
        },
    ));
    let started = Instant::now();
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(errors(&m, "throttled"), Some(1.0));
    assert_eq!(sim.page_requests(3), 2);
}

#[tokio::test]
async fn business_errors_are_not_retried() {
    let (sim, exporter) = sim_and_exporter(fleet(300), &[]).await;
    let kind = FaultKind::ApiError {
        code: "KOOPHONE.API.1001".into(),
    };
    sim.inject(on_page(2, None, kind));
    assert_eq!(exporter.scrape().await.up(), 0.0);
    assert_eq!(sim.page_requests(2), 1);
}

#[tokio::test]
async fn a_2s_scrape_timeout_with_a_30s_slow_page_answers_in_under_2s() {
    // --scrape.timeout matches the scraper's: a collection has at least that long, whoever
    // starts it.
    let (sim, exporter) = sim_and_exporter(fleet(300), &["--scrape.timeout", "2s"]).await;
    sim.inject(on_page(2, None, FaultKind::Delay(Duration::from_secs(30))));
    let (m, elapsed) = scrape_with_timeout(&exporter, 2.0).await;
    assert!(
        elapsed < Duration::from_secs(2),
        "answered after {elapsed:?}"
    );
    assert_eq!(m.up(), 0.0);
    assert!(m.samples("clouddevice_instances").is_empty());
    assert_eq!(errors(&m, "timeout"), Some(1.0), "{}", m.0);
    // The exporter still serves, and recovers once the page is fast again.
    sim.clear_faults();
    let (m, _) = scrape_with_timeout(&exporter, 2.0).await;
    assert_eq!(m.up(), 1.0);
}

#[tokio::test]
async fn without_the_header_the_scrape_timeout_flag_is_the_deadline() {
    let (sim, exporter) = sim_and_exporter(fleet(300), &["--scrape.timeout", "1s"]).await;
    sim.inject(on_page(2, None, FaultKind::Delay(Duration::from_secs(30))));
    let started = Instant::now();
    assert_eq!(exporter.scrape().await.up(), 0.0);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn twenty_concurrent_scrapes_cost_one_pass_over_the_pages() {
    let config = SimConfig {
        latency: Duration::from_millis(200),
        ..fleet(300)
    };
    let (sim, exporter) = sim_and_exporter(config, &["--web.max-requests", "20"]).await;
    let scrapes = futures::future::join_all((0..20).map(|_| exporter.scrape())).await;
    for m in &scrapes {
        assert_eq!(m.up(), 1.0);
        assert_eq!(m.sum("clouddevice_instances"), 300.0);
    }
    assert_eq!(
        sim.requests(),
        3,
        "one pass: three pages, whatever the number of scrapes"
    );
}

#[tokio::test]
async fn scrapes_beyond_the_request_limit_get_503() {
    let config = SimConfig {
        latency: Duration::from_millis(300),
        ..fleet(100)
    };
    let (_sim, exporter) = sim_and_exporter(config, &["--web.max-requests", "2"]).await;
    let answers = futures::future::join_all((0..5).map(|_| exporter.get("/metrics"))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503, 503, 503]);
    let refused = answers.into_iter().find(|r| r.status() == 503).unwrap();
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("--web.max-requests=2"));
}

#[tokio::test]
async fn a_recent_collection_is_reused_within_the_min_interval() {
    let (sim, exporter) = sim_and_exporter(fleet(250), &["--scrape.min-interval", "30s"]).await;
    let first = exporter.scrape().await;
    let second = exporter.scrape().await;
    assert_eq!(sim.requests(), 3, "the second scrape read nothing");
    assert_eq!(second.up(), 1.0);
    assert_eq!(second.sum("clouddevice_instances"), 250.0);
    let stamp = "clouddevice_exporter_last_collection_timestamp_seconds";
    assert_eq!(first.value(stamp), second.value(stamp));
    assert!(second.contains(
        "# HELP clouddevice_instances Number of instances, by region and SKU. May come from a collection up to 30s old (--scrape.min-interval)."
    ));
}

#[tokio::test]
async fn without_a_min_interval_every_scrape_reads_the_list() {
    let (sim, exporter) = sim_and_exporter(fleet(250), &[]).await;
    exporter.scrape().await;
    let m = exporter.scrape().await;
    assert_eq!(sim.requests(), 6);
    assert!(!m.contains("May come from a collection"));
}

#[tokio::test]
async fn a_list_that_shifts_while_paged_is_read_again_and_counted_right() {
    let (sim, exporter) = sim_and_exporter(fleet(500), &["--clouddevice.concurrency", "1"]).await;
    sim.inject(on_page(3, Some(1), FaultKind::DeleteFirst));
    let m = exporter.scrape().await;
    assert_eq!(sim.live_instances(), 499);
    assert_eq!(m.up(), 1.0);
    assert_eq!(
        m.sum("clouddevice_instances"),
        499.0,
        "never 500, never 498"
    );
    assert_eq!(sim.requests(), 10, "two passes of five pages");
}

#[tokio::test]
async fn a_list_that_keeps_shifting_is_refused_not_miscounted() {
    let (sim, exporter) = sim_and_exporter(fleet(500), &[]).await;
    sim.inject(on_page(2, None, FaultKind::DeleteFirst));
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert!(m.samples("clouddevice_instances").is_empty());
    assert_eq!(errors(&m, "list_changed"), Some(1.0));
}

#[tokio::test]
async fn duplicated_rows_are_noticed_and_the_list_read_again() {
    let (sim, exporter) = sim_and_exporter(fleet(300), &[]).await;
    sim.inject(on_page(2, Some(1), FaultKind::DuplicateRow));
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert_eq!(m.sum("clouddevice_instances"), 300.0);
    assert_eq!(m.samples("clouddevice_instance_info").len(), 300);
    // The count alone cannot tell: the copy takes the place of the row it hides. The whole
    // list is read a second time.
    let reads: Vec<u64> = (1..=3).map(|page| sim.page_requests(page)).collect();
    assert_eq!(reads, [2, 2, 2], "every page read twice");
}

/// A scrape of 300 phones under a 200,000-byte cap whose page 2 is `kind`: it fails as too large,
/// with page 2 asked once (too large is not transient). The simulator, for what it sent.
async fn refused_as_too_large(kind: FaultKind) -> clouddevice_simulator::SimHandle {
    let flags = ["--clouddevice.max-response-bytes", "200000"];
    let (sim, exporter) = sim_and_exporter(fleet(300), &flags).await;
    sim.inject(on_page(2, None, kind));
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert_eq!(errors(&m, "too_large"), Some(1.0));
    assert_eq!(sim.page_requests(2), 1, "too large is not transient");
    sim
}

#[tokio::test]
async fn an_oversized_body_is_refused_without_reading_it_all() {
    // Chunked, without a Content-Length: only the cap on what is read can refuse it.
    let sim = refused_as_too_large(FaultKind::OversizeChunked(50 << 20)).await;
    // The exporter stops reading past its cap: the rest of the 50 MiB is never even made (the
    // socket buffers on both sides hold a few MiB at most).
    let sent = sim.chunked_bytes();
    assert!(sent < 16 << 20, "{sent} bytes of 50 MiB were taken");
}

#[tokio::test]
async fn a_body_whose_length_is_over_the_cap_is_refused_before_it_is_read() {
    refused_as_too_large(FaultKind::Oversize(50 << 20)).await;
}

#[tokio::test]
async fn upstream_latency_is_observed_per_api() {
    let (_sim, exporter) = sim_and_exporter(fleet(250), &[]).await;
    let m = exporter.scrape().await;
    assert_eq!(
        m.value(r#"clouddevice_exporter_api_request_duration_seconds_count{api="batch_query"}"#),
        Some(3.0)
    );
}

/// A failed collection in `--scrape.serve-stale-for` serves the last good fleet with `up 0`, its
/// age in the HELP texts and the collection's timestamp; past the window, nothing of the fleet.
#[tokio::test]
async fn a_failed_scrape_serves_the_last_good_fleet_within_the_stale_window() {
    let clock = Clock::manual();
    let (sim, exporter) = sim_and_exporter_on(
        fleet(150),
        &[
            "--scrape.serve-stale-for",
            "3s",
            "--clouddevice.max-retries",
            "0",
        ],
        clock.clone(),
    )
    .await;
    let good = exporter.scrape().await;
    assert_eq!(good.up(), 1.0);
    let collected_at = good
        .value("clouddevice_exporter_last_collection_timestamp_seconds")
        .expect("a timestamp");
    let error = FaultKind::ApiError {
        code: "KOOPHONE.API.1001".into(),
    };
    sim.inject(on_page(1, None, error));

    let stale = exporter.scrape().await;
    assert_eq!(stale.up(), 0.0, "this scrape failed, and says so");
    assert_eq!(stale.sum("clouddevice_instances"), 150.0);
    assert_eq!(stale.samples("clouddevice_instance_info").len(), 150);
    assert_eq!(
        stale.value("clouddevice_exporter_last_collection_timestamp_seconds"),
        Some(collected_at),
        "the timestamp is the served collection's"
    );
    assert!(stale.contains("served from the last successful collection"));
    assert_eq!(errors(&stale, "KOOPHONE.API.1001"), Some(1.0));

    clock.advance(Duration::from_millis(3_100));
    let gone = exporter.scrape().await;
    assert_eq!(gone.up(), 0.0);
    assert_eq!(
        gone.samples("clouddevice_instances").len(),
        0,
        "past the window"
    );
    assert_eq!(gone.samples("clouddevice_instance_info").len(), 0);

    sim.clear_faults();
    let back = exporter.scrape().await;
    assert_eq!(back.up(), 1.0);
    assert!(!back.contains("served from the last successful collection"));
}

#[tokio::test]
async fn without_serve_stale_for_a_failed_scrape_serves_no_fleet() {
    let (sim, exporter) = sim_and_exporter(fleet(150), &["--clouddevice.max-retries", "0"]).await;
    assert_eq!(exporter.scrape().await.up(), 1.0);
    let error = FaultKind::ApiError {
        code: "KOOPHONE.API.1001".into(),
    };
    sim.inject(on_page(1, None, error));
    let failed = exporter.scrape().await;
    assert_eq!(failed.up(), 0.0);
    assert_eq!(failed.samples("clouddevice_instances").len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_tiny_timeout_cannot_fail_the_scrapes_it_shares_a_collection_with() {
    // Three pages of 400 ms each, one at a time: a collection takes about 1.2 s.
    let config = SimConfig {
        latency: Duration::from_millis(400),
        ..fleet(300)
    };
    let (_sim, exporter) = sim_and_exporter(config, &["--clouddevice.concurrency", "1"]).await;
    // A client asking for 0.3 s ten times a second, as long as the real scrapes go on.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hostile = {
        let (url, stop) = (exporter.url("/metrics"), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 1_000 {
                let request = http
                    .get(&url)
                    .header("X-Prometheus-Scrape-Timeout-Seconds", "0.3");
                tokio::spawn(request.send());
                sent += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // Prometheus, with its 10 s timeout, scrapes five times: every one joins or starts a
    // collection that runs to its own end, never to the hostile client's 0.3 s.
    let mut up = Vec::new();
    for _ in 0..5 {
        let (m, _) = scrape_with_timeout(&exporter, 10.0).await;
        up.push(m.up());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    hostile.await.unwrap();
    assert_eq!(up, [1.0; 5]);
}

/// One scrape of a 300-phone fleet whose page 2 always answers `status` with `code` written in
/// `shape`: what it counted, how often page 2 was asked, and what the landing page says.
async fn refused_with(status: u16, code: &str, shape: ErrorShape) -> (Scraped, u64, String) {
    let (sim, exporter) = sim_and_exporter(fleet(300), &[]).await;
    let kind = FaultKind::Shaped {
        status,
        code: code.into(),
        shape,
    };
    sim.inject(on_page(2, None, kind));
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0, "{code}");
    let said = exporter.last_collection().await;
    (m, sim.page_requests(2), said)
}

#[tokio::test]
async fn a_permission_code_is_a_permission_error_whatever_the_status() {
    let (m, asked, said) = refused_with(401, "KOOPHONE.API.1001", ErrorShape::Reference).await;
    assert_eq!(asked, 1, "not retried, and no token renewal for it");
    assert_eq!(errors(&m, "KOOPHONE.API.1001"), Some(1.0));
    let grant = "grant the IAM user koophone:cloudphoneResource:queryInstanceBatch";
    common::assert_holds(&said, &["Insufficient instance permissions.", grant]);
    assert!(!said.contains("credentials are wrong"), "{said}");
}

#[tokio::test]
async fn business_codes_under_http_500_are_not_retried_but_9999_is() {
    for (code, retried) in [
        ("KOOPHONE.API.1000", false),
        ("KOOPHONE.API.0000", false),
        ("KPAPI.2209", false),
        ("KOOPHONE.API.9999", true),
    ] {
        let (m, asked, _) = refused_with(500, code, ErrorShape::Reference).await;
        assert_eq!(asked, if retried { 3 } else { 1 }, "{code}");
        assert_eq!(errors(&m, code), Some(asked as f64), "{code}");
    }
}

#[tokio::test]
async fn codes_in_any_case_and_every_shape_the_sdk_reads_are_understood() {
    let (m, asked, said) = refused_with(401, "KooPhone.API.1001", ErrorShape::Camel).await;
    assert_eq!(asked, 1);
    assert_eq!(
        errors(&m, "KOOPHONE.API.1001"),
        Some(1.0),
        "labelled in the reference's spelling"
    );
    assert!(
        said.contains("Insufficient instance permissions."),
        "{said}"
    );
    // The dedicated gateway's throttle, its message under another name: a throttle, retried.
    let (m, asked, said) = refused_with(429, "APIG.0308", ErrorShape::ErrorMessage).await;
    assert_eq!(asked, 3);
    assert_eq!(errors(&m, "throttled"), Some(3.0));
    assert!(
        said.contains("The throttling threshold has been reached"),
        "{said}"
    );
    // IAM's nested shape, and the envelope of the reference's tables.
    let (m, asked, said) = refused_with(500, "KPAPI.2209", ErrorShape::Nested).await;
    assert_eq!((asked, errors(&m, "KPAPI.2209")), (1, Some(1.0)));
    assert!(said.contains("No device can be assigned."), "{said}");
    let (m, _, _) = refused_with(400, "KOOPHONE.API.5002", ErrorShape::Data).await;
    assert_eq!(errors(&m, "KOOPHONE.API.5002"), Some(1.0));
    // Another service's lower-case code keeps a label of its own.
    let (m, asked, said) = refused_with(400, "common.00000400", ErrorShape::CodeMessage).await;
    assert_eq!((asked, errors(&m, "common.00000400")), (1, Some(1.0)));
    assert!(
        said.contains("API error common.00000400: Simulated error."),
        "{said}"
    );
}

#[tokio::test]
async fn a_project_that_does_not_exist_is_said_with_what_to_check() {
    let (m, asked, said) = refused_with(200, "KOOPHONE.API.0004", ErrorShape::Reference).await;
    assert_eq!((asked, errors(&m, "KOOPHONE.API.0004")), (1, Some(1.0)));
    assert!(said.contains("check --clouddevice.project-id"), "{said}");
}
