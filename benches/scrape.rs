//! End-to-end scrape benchmark: the simulator and the exporter run as separate release processes,
//! and each scrape of /metrics is measured from outside: wall time, the exporter's CPU time (from
//! /proc), its peak resident memory, and the body size plain and gzipped.
//!
//!     cargo bench --bench scrape
//!     BENCH_SIZES=1000,10000,100000 BENCH_LATENCY=50ms BENCH_CONCURRENCY=16 cargo bench --bench scrape
//!     BENCH_ACCEPT='application/openmetrics-text;version=1.0.0' cargo bench --bench scrape
//!
//! Prints a Markdown table. Linux only (reads /proc).

use std::time::{Duration, Instant};

mod common;
mod floor;

use common::{clock_ticks, cpu_seconds, start, status_mb};

// The exporter's allocator, so the decode floor below is measured as the exporter would pay it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
/// Scrapes per measurement: CPU is read in 10 ms clock ticks, so enough to average them out.
const SCRAPES: usize = 10;

/// The floor: the CPU it takes just to parse the same pages into the wire structs (borrowed
/// strings, nothing kept, no conversion into the exporter's own types), in this process, with no
/// HTTP, no paging logic, no metrics. Pages are fetched first, untimed.
async fn decode_floor(client: &reqwest::Client, endpoint: &str, instances: usize) -> f64 {
    let mut pages = Vec::new();
    for page_no in 1..=instances.div_ceil(100).max(1) {
        let url = format!("{endpoint}/v1/instances/batch-query?x-request-id=bench&page_no={page_no}&page_size=100");
        let body = client
            .get(&url)
            .header("X-Auth-Token", "bench")
            .send()
            .await
            .expect("page");
        pages.push(body.bytes().await.expect("page body"));
    }
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let decoded: usize = pages.iter().map(|p| floor::parse_floor(p)).sum();
        best = best.min(started.elapsed().as_secs_f64());
        assert_eq!(decoded, instances);
    }
    best
}

struct Row {
    instances: usize,
    floor: f64,
    instance_metrics: bool,
    wall: Duration,
    cpu: f64,
    cpu_gzip: f64,
    peak_rss_mb: f64,
    /// Resident memory before the first scrape, and after the last one.
    start_rss_mb: f64,
    after_rss_mb: f64,
    body_mb: f64,
    gzip_mb: f64,
}

/// A scrape request, with the `Accept` header of `BENCH_ACCEPT` when it is set (e.g. what
/// Prometheus sends, to measure the OpenMetrics answer).
fn request(client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    match std::env::var("BENCH_ACCEPT") {
        Ok(accept) => client.get(url).header("Accept", accept),
        Err(_) => client.get(url),
    }
}

async fn scrape(client: &reqwest::Client, url: &str) -> String {
    let response = request(client, url).send().await.expect("scrape");
    response.text().await.expect("body")
}

async fn measure(
    instances: usize,
    latency: &str,
    concurrency: &str,
    instance_metrics: bool,
) -> Row {
    let (_sim, endpoint) = common::simulator(instances, &["--latency", latency]);
    let floor = if instance_metrics {
        decode_floor(&reqwest::Client::new(), &endpoint, instances).await
    } else {
        f64::NAN
    };
    let metrics_flag = format!(
        "--collector.instance-metrics={}",
        if instance_metrics { "all" } else { "none" }
    );
    let (exporter, address) = start(&[
        "--web.listen-address",
        "127.0.0.1:0",
        "--clouddevice.endpoint",
        &endpoint,
        "--clouddevice.concurrency",
        concurrency,
        "--clouddevice.timeout",
        "60s",
        // Every scrape measured reads the list: no reuse window.
        "--scrape.min-interval=0s",
        &metrics_flag,
    ]);
    let pid = exporter.0.id();
    let ticks = clock_ticks();
    let client = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    let url = format!("http://{address}/metrics");

    let start_rss_mb = status_mb(pid, "VmRSS:");
    // One warm-up scrape: connection pools, allocator arenas.
    let body = scrape(&client, &url).await;
    assert!(
        body.contains("clouddevice_up 1"),
        "warm-up scrape failed:\n{}",
        &body[..body.len().min(2000)]
    );

    let mut walls = Vec::new();
    let cpu_before = cpu_seconds(pid, ticks);
    let mut body_len = 0;
    for _ in 0..SCRAPES {
        let start = Instant::now();
        let text = scrape(&client, &url).await;
        walls.push(start.elapsed());
        assert!(text.contains("clouddevice_up 1"));
        body_len = text.len();
    }
    let cpu = (cpu_seconds(pid, ticks) - cpu_before) / SCRAPES as f64;
    // Prometheus always asks for gzip: what a scrape costs with it.
    let cpu_before_gzip = cpu_seconds(pid, ticks);
    let mut gzip = Default::default();
    for _ in 0..SCRAPES {
        gzip = request(&client, &url)
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .expect("gzip scrape")
            .bytes()
            .await
            .expect("gzip body");
    }
    let cpu_gzip = (cpu_seconds(pid, ticks) - cpu_before_gzip) / SCRAPES as f64;
    std::thread::sleep(Duration::from_millis(500));
    walls.sort();
    Row {
        instances,
        floor,
        instance_metrics,
        wall: walls[SCRAPES / 2],
        cpu,
        cpu_gzip,
        peak_rss_mb: status_mb(pid, "VmHWM:"),
        start_rss_mb,
        after_rss_mb: status_mb(pid, "VmRSS:"),
        body_mb: body_len as f64 / 1e6,
        gzip_mb: gzip.len() as f64 / 1e6,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("end-to-end benchmark: run it with `cargo bench --bench scrape`");
        return;
    }
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let latency = std::env::var("BENCH_LATENCY").unwrap_or_else(|_| "0s".into());
    let concurrency = std::env::var("BENCH_CONCURRENCY").unwrap_or_else(|_| "4".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("latency per page: {latency}, concurrency: {concurrency}, {SCRAPES} scrapes each (median wall, mean CPU)\n");
    println!("| instances | per-instance | wall (median) | exporter CPU / scrape | decode floor | CPU / floor | CPU / gzip scrape | RSS at start | peak RSS | RSS after | body | body gzip |");
    println!("|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &instances in &sizes {
        for instance_metrics in [true, false] {
            let r = runtime.block_on(measure(instances, &latency, &concurrency, instance_metrics));
            let (floor, ratio) = if r.floor.is_nan() {
                ("".to_string(), "".to_string())
            } else {
                (
                    format!("{:.3} s", r.floor),
                    format!("{:.1}×", r.cpu / r.floor),
                )
            };
            println!(
                "| {} | {} | {:.3} s | {:.3} s | {floor} | {ratio} | {:.3} s | {:.1} MB | {:.1} MB | {:.1} MB | {:.2} MB | {:.2} MB |",
                r.instances,
                if r.instance_metrics { "on" } else { "off" },
                r.wall.as_secs_f64(),
                r.cpu,
                r.cpu_gzip,
                r.start_rss_mb,
                r.peak_rss_mb,
                r.after_rss_mb,
                r.body_mb,
                r.gzip_mb
            );
        }
    }
}
