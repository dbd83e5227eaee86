//! The thread collections run on belongs to its exporter: it is there while the exporter serves,
//! and it ends when the exporter is dropped. Alone in its test binary, so that no other test's
//! exporter is counted.
#![cfg(target_os = "linux")]

use crate::common;

use std::time::{Duration, Instant};

use clouddevice_simulator::SimConfig;

/// Threads of this process named `collector`.
fn collector_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "collector")
        })
        .count()
}

#[tokio::test]
async fn the_collector_thread_lives_and_ends_with_its_exporter() {
    assert_eq!(collector_threads(), 0);
    let (_sim, exporter) = common::sim_and_exporter(SimConfig::new(250, 3), &[]).await;
    let scraped = exporter.scrape().await;
    assert_eq!(scraped.up(), 1.0);
    assert_eq!(scraped.sum("clouddevice_instances"), 250.0);
    assert_eq!(collector_threads(), 1);

    // Dropping the exporter stops its server, which drops the app and the thread's owner.
    drop(exporter);
    let deadline = Instant::now() + Duration::from_secs(10);
    while collector_threads() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        collector_threads(),
        0,
        "the collector thread outlived its exporter"
    );
}
