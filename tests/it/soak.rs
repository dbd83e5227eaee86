//! Soak: scrapes in a loop for about a minute while random faults hit random pages, checking that
//! no scrape ever overruns its deadline and that memory stays flat. Ignored by default; CI runs it
//! (`cargo test --test it soak -- --ignored`). SOAK_SECONDS changes the duration.

use crate::common;

use std::time::{Duration, Instant};

use clouddevice_simulator::{Fault, FaultKind, SimConfig};
use common::sim_and_exporter;

/// Resident memory of this process (simulator and exporter both live here), in MB.
fn rss_mb() -> f64 {
    common::procfs::status_mb("self", "VmRSS:")
}

fn random_fault(rng: &mut fastrand::Rng, pages: u64) -> Fault {
    let kind = match rng.u32(0..8) {
        0 => FaultKind::Status {
            status: 500,
            code: None,
        },
        1 => FaultKind::Status {
            status: 503,
            code: Some("KOOPHONE.API.9999".into()),
        },
        2 => FaultKind::Throttle {
            retry_after: Some(rng.u64(0..2)),
        },
        3 => FaultKind::Truncate,
        4 => FaultKind::Delay(Duration::from_millis(rng.u64(100..4000))),
        5 => FaultKind::ApiError {
            code: "KOOPHONE.API.1001".into(),
        },
        6 => FaultKind::DuplicateRow,
        _ => FaultKind::Oversize(4 << 20),
    };
    Fault {
        page: Some(rng.u64(1..=pages)),
        times: Some(rng.u32(1..4)),
        kind,
    }
}

#[tokio::test]
#[ignore = "runs for about a minute; CI runs it with --ignored"]
async fn scrapes_under_random_faults_keep_their_deadline_and_their_memory() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let instances = 2_000;
    let pages = (instances / 100) as u64;
    let flags = ["--clouddevice.max-response-bytes", "1048576"];
    let (sim, exporter) = sim_and_exporter(SimConfig::new(instances, 3), &flags).await;
    let client = reqwest::Client::new();
    let mut rng = fastrand::Rng::with_seed(99);
    let timeout = 2.0;
    let (mut scrapes, mut up, mut worst) = (0u32, 0u32, Duration::ZERO);
    let mut warm_rss = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        sim.clear_faults();
        for _ in 0..rng.usize(0..3) {
            sim.inject(random_fault(&mut rng, pages));
        }
        let t = Instant::now();
        let text = client
            .get(exporter.url("/metrics"))
            .header("X-Prometheus-Scrape-Timeout-Seconds", timeout.to_string())
            .send()
            .await
            .expect("the exporter answers")
            .text()
            .await
            .expect("a whole body");
        let took = t.elapsed();
        worst = worst.max(took);
        assert!(
            took < Duration::from_secs_f64(timeout),
            "scrape {scrapes} took {took:?}"
        );
        let m = common::Scraped(text);
        if m.up() == 1.0 {
            up += 1;
            assert_eq!(
                m.sum("clouddevice_instances"),
                instances as f64,
                "a wrong count with up 1"
            );
        } else {
            assert!(
                m.samples("clouddevice_instances").is_empty(),
                "instance data with up 0"
            );
        }
        scrapes += 1;
        // Memory is compared from after the first 10 s, once allocator arenas have settled.
        if warm_rss.is_none() && started.elapsed() > Duration::from_secs(seconds.min(10)) {
            warm_rss = Some(rss_mb());
        }
    }
    let (warm, end) = (warm_rss.unwrap_or_else(rss_mb), rss_mb());
    println!("soak: {scrapes} scrapes in {seconds} s, {up} up, slowest {worst:?}, RSS {warm:.1} MB after warm-up, {end:.1} MB at the end");
    assert!(scrapes > 20 && up > 0, "{scrapes} scrapes, {up} up");
    assert!(
        end < warm + 32.0,
        "memory grew from {warm:.1} MB to {end:.1} MB"
    );
}
