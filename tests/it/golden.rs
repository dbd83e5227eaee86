//! The whole exposition of a fixed simulated fleet, compared with `tests/golden/fleet.prom`, and
//! linted by `promtool check metrics` (those tests are ignored by default: they need promtool,
//! which `.ci/run` installs before it runs them). The golden file is the contract's sample: a diff in it is a
//! change to dashboards and alerts, to be reviewed as such.
//!
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test --test it golden`.

use crate::common;

use std::path::Path;

use clouddevice_simulator::{Fault, SimConfig};
use common::sim_and_exporter;

const GOLDEN: &str = "tests/golden/fleet.prom";

/// The fleet of the golden file: small, several pages, and every awkward case the simulator has.
/// Its backup times lie in the 30 days before `now` (2026-09-21), so against any clock after
/// 2026-10-21 every backup is older than the largest default backup-age bucket: those counts
/// do not change from run to run.
fn golden_fleet() -> SimConfig {
    SimConfig {
        max_page_size: 25,
        now: 1_790_000_000,
        ..SimConfig::new(60, 42)
    }
}

/// Removes what differs between runs and machines: process metrics, durations and times, the
/// build's revision and compiler. Latency buckets all get the request count, which keeps them
/// valid (cumulative) and keeps the count itself compared.
fn normalize(text: &str) -> String {
    const LATENCY: &str = "clouddevice_exporter_api_request_duration_seconds";
    let count_of = |api_labels: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{LATENCY}_count{{{api_labels}}} ")))
            .unwrap_or("0")
            .to_string()
    };
    let mut out = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{LATENCY}_bucket{{")) {
            let (labels, _) = rest.rsplit_once(' ').unwrap();
            let api = labels.split(',').find(|l| l.starts_with("api=")).unwrap();
            out.push_str(&format!("{LATENCY}_bucket{{{labels} {}\n", count_of(api)));
            continue;
        }
        if let Some(rest) = line.strip_prefix(&format!("{LATENCY}_sum")) {
            let (labels, _) = rest.rsplit_once(' ').unwrap();
            out.push_str(&format!("{LATENCY}_sum{labels} 0\n"));
            continue;
        }
        if line.starts_with("clouddevice_exporter_last_collection_timestamp_seconds ") {
            out.push_str("clouddevice_exporter_last_collection_timestamp_seconds 0\n");
            continue;
        }
        if line.starts_with("process_")
            || line.starts_with("# HELP process_")
            || line.starts_with("# TYPE process_")
        {
            continue;
        }
        if line.starts_with("clouddevice_scrape_duration_seconds ") {
            out.push_str("clouddevice_scrape_duration_seconds 0\n");
            continue;
        }
        if line.starts_with("clouddevice_exporter_build_info{") {
            out.push_str(&format!(
                "clouddevice_exporter_build_info{{revision=\"golden\",rustc_version=\"golden\",version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            ));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn exposition_matches_the_golden_file() {
    let (_sim, exporter) =
        sim_and_exporter(golden_fleet(), &["--clouddevice.page-size", "25"]).await;
    let actual = normalize(&exporter.scrape().await.0);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(GOLDEN)
        .unwrap_or_else(|e| panic!("cannot read {GOLDEN}: {e}; create it with UPDATE_GOLDEN=1"));
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or(actual.lines().count().min(expected.lines().count()));
        panic!(
            "exposition differs from {GOLDEN} at line {}:\n  actual:   {:?}\n  expected: {:?}\n\
             If the change is intended, run UPDATE_GOLDEN=1 cargo test --test it golden and review the diff.",
            first + 1,
            actual.lines().nth(first),
            expected.lines().nth(first)
        );
    }
}

/// Runs `promtool check metrics` on `text`; promtool comes with Debian's `prometheus` package.
fn promtool_check(text: &str) {
    if let Err(problems) = common::promtool_accepts(text) {
        panic!("promtool check metrics found problems:\n{problems}");
    }
}

#[test]
#[ignore = "needs promtool (Debian's prometheus package); .ci/run installs it and runs the ignored tests"]
fn the_golden_file_passes_promtool() {
    assert!(Path::new(GOLDEN).exists(), "{GOLDEN} is missing");
    promtool_check(&std::fs::read_to_string(GOLDEN).unwrap());
}

#[tokio::test]
#[ignore = "needs promtool (Debian's prometheus package); .ci/run installs it and runs the ignored tests"]
async fn a_failed_scrape_passes_promtool() {
    let (sim, exporter) = sim_and_exporter(golden_fleet(), &[]).await;
    sim.inject(Fault::every_page(500, Some("KOOPHONE.API.9999")));
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    promtool_check(&m.0);
}

#[test]
fn the_readme_sample_is_taken_from_the_golden_file() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let golden = std::fs::read_to_string(GOLDEN).unwrap();
    let marker = "<!-- sample of tests/golden/fleet.prom";
    let start = readme.find(marker).expect("the README's sample");
    let block = &readme[start..];
    let block = &block[block.find("```text\n").expect("its block") + 8..];
    let block = &block[..block.find("```").expect("its end")];
    let golden_lines: std::collections::HashSet<&str> = golden.lines().collect();
    assert!(block.lines().count() > 5);
    for line in block.lines() {
        assert!(golden_lines.contains(line), "not in {GOLDEN}: {line}");
    }
}
