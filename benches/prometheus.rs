//! What each `--collector.instance-metrics` mode costs Prometheus: a real Prometheus (Debian's
//! package) scrapes the exporter, which reads a simulated fleet with 1 % of its phones in trouble.
//! For each fleet size and mode, with a fresh Prometheus each time, it reports after five scrapes:
//! samples per scrape, Prometheus' head series, Prometheus' resident memory, the mean scrape
//! duration Prometheus saw, and the exporter's CPU per scrape.
//!
//!     cargo bench --bench prometheus
//!     BENCH_SIZES=10000,100000 BENCH_MODES=all,problems,none PROMETHEUS=/usr/bin/prometheus cargo bench --bench prometheus
//!
//! Prints a Markdown table. Linux only (reads /proc); needs `prometheus` on the PATH (or
//! $PROMETHEUS), as `.ci/run` installs it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{clock_ticks, cpu_seconds, start, status_mb, Proc};
const SCRAPES: f64 = 5.0;
const INTERVAL_SECONDS: u64 = 10;
const TROUBLE_PERCENT: &str = "1";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The value of an instant query that returns one series, or None when it returns none.
fn query(client: &reqwest::blocking::Client, prometheus: &str, expr: &str) -> Option<f64> {
    let text = client
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .and_then(|r| r.text())
        .ok()?;
    let body: serde_json::Value = serde_json::from_str(&text).ok()?;
    body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

/// A metric of Prometheus' own /metrics.
fn own_metric(client: &reqwest::blocking::Client, prometheus: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{prometheus}/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("Prometheus' /metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

struct Row {
    instances: usize,
    mode: String,
    samples: f64,
    head_series: f64,
    prometheus_rss_mb: f64,
    scrape_seconds: f64,
    exporter_cpu: f64,
}

fn measure(prometheus_bin: &Path, instances: usize, endpoint: &str, mode: &str) -> Row {
    let metrics_flag = format!("--collector.instance-metrics={mode}");
    let (exporter, address) = start(&[
        "--web.listen-address",
        "127.0.0.1:0",
        "--clouddevice.endpoint",
        endpoint,
        "--clouddevice.timeout",
        "60s",
        // Every scrape reads the list, as it did when these figures were first taken.
        "--scrape.min-interval=0s",
        &metrics_flag,
    ]);
    let exporter_pid = exporter.0.id();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: {INTERVAL_SECONDS}s\n  scrape_timeout: {INTERVAL_SECONDS}s\n\
             scrape_configs:\n  - job_name: clouddevice\n    static_configs:\n      - targets: [\"{address}\"]\n"
        ),
    )
    .expect("write prometheus.yml");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
    let prometheus = Proc(
        Command::new(prometheus_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prometheus_pid = prometheus.0.id();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let ticks = clock_ticks();
    let cpu_before = cpu_seconds(exporter_pid, ticks);

    // Wait for the fifth scrape (the next one is an interval away).
    let deadline = Instant::now() + Duration::from_secs(INTERVAL_SECONDS * 5 + 120);
    let scrapes = "count_over_time(scrape_samples_scraped{job=\"clouddevice\"}[1h])";
    while query(&client, &url, scrapes).unwrap_or(0.0) < SCRAPES {
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape five times; its log: {}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let exporter_cpu = (cpu_seconds(exporter_pid, ticks) - cpu_before) / SCRAPES;
    let prometheus_rss_mb = status_mb(prometheus_pid, "VmRSS:");
    let head_series = own_metric(&client, &url, "prometheus_tsdb_head_series");
    let up = query(&client, &url, "min_over_time(clouddevice_up[1h])").unwrap_or(0.0);
    assert_eq!(up, 1.0, "a scrape of {instances} in mode {mode} failed");
    Row {
        instances,
        mode: mode.to_string(),
        samples: query(&client, &url, "scrape_samples_scraped").unwrap_or(f64::NAN),
        head_series,
        prometheus_rss_mb,
        scrape_seconds: query(&client, &url, "avg_over_time(scrape_duration_seconds[1h])")
            .unwrap_or(f64::NAN),
        exporter_cpu,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("Prometheus benchmark: run it with `cargo bench --bench prometheus`");
        return;
    }
    let prometheus = std::path::PathBuf::from(
        std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".into()),
    );
    if Command::new(&prometheus)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        println!(
            "Prometheus benchmark skipped: no {} to run (install Debian's `prometheus` package, or set PROMETHEUS)",
            prometheus.display()
        );
        return;
    }
    let list = |var: &str, default: &str| -> Vec<String> {
        std::env::var(var)
            .unwrap_or_else(|_| default.into())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let sizes: Vec<usize> = list("BENCH_SIZES", "10000,100000")
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let modes = list("BENCH_MODES", "all,problems,none");
    println!(
        "{TROUBLE_PERCENT} % of the phones in trouble, scrape interval {INTERVAL_SECONDS}s, \
         a fresh Prometheus per row, measured after five scrapes\n"
    );
    println!("| instances | mode | samples / scrape | head series | series / phone | Prometheus RSS | scrape duration (mean) | exporter CPU / scrape |");
    println!("|---:|:---|---:|---:|---:|---:|---:|---:|");
    for &instances in &sizes {
        let flags = ["--trouble-percent", TROUBLE_PERCENT];
        let (_simulator, endpoint) = common::simulator(instances, &flags);
        for mode in &modes {
            let r = measure(&prometheus, instances, &endpoint, mode);
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.3} | {:.0} MB | {:.3} s | {:.3} s |",
                r.instances,
                r.mode,
                r.samples,
                r.head_series,
                r.head_series / r.instances as f64,
                r.prometheus_rss_mb,
                r.scrape_seconds,
                r.exporter_cpu
            );
        }
    }
}
