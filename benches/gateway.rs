//! 100,000 phones behind a gateway that throttles: the simulator serves pages of at most 200 rows
//! after 300 ms each and answers past 10 requests a second per account with HTTP 429
//! `APIGW.0308` (`simulate --max-page-size 200 --latency 300ms --rate-limit 10`). Four phases,
//! each with its own exporter process, measured from outside:
//!
//! - `defaults`: the default flags; what a scrape answers, and the landing page's error, quoted;
//! - `on-scrape`: the settings docs/production.md gives for reading on each scrape; scrape
//!   duration against the ideal `pages / min(rate, concurrency / latency)`, throttled answers;
//! - `scheduled`: `--collection.interval 2m`; scrape latency p50/p99 while a collection runs
//!   (to the answer's head and to the body's end), collection duration against the ideal,
//!   throttled answers,
//!   requests against pages × collections, exporter CPU and peak memory;
//! - `accounts`: 50 accounts × 2,000 phones in scheduled mode; the same, per account and in all.
//!
//! Run:
//!
//!     cargo bench --bench gateway
//!     BENCH_PHASES=defaults,on-scrape cargo bench --bench gateway
//!     BENCH_PHASES=scheduled BENCH_INSTANCE_METRICS=all cargo bench --bench gateway
//!
//! Takes about ten minutes (the scheduled phases run whole intervals). Linux only (reads /proc).

use std::time::{Duration, Instant};

mod common;

use clouddevice_exporter::simulate::sim_account;
use common::{clock_ticks, cpu_seconds, start_with, status_mb, Proc};

const LATENCY_MS: u64 = 300;
const LIMIT: u32 = 10;
/// The rate docs/production.md sets against a limit of 10.
const RATE: &str = "10";
const INSTANCES: usize = 100_000;
const PAGE: usize = 200;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("an HTTP client")
}

/// The text at `url`, as Prometheus asks for it with a scrape timeout of `timeout` seconds.
fn get(client: &reqwest::blocking::Client, url: &str, timeout: u64) -> String {
    client
        .get(url)
        .header("X-Prometheus-Scrape-Timeout-Seconds", timeout.to_string())
        .send()
        .and_then(|r| r.text())
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// The sum of the samples whose series starts with `prefix` (name and any labels so far).
fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn simulator(accounts: usize, instances: usize) -> (Proc, String) {
    let flags = [
        "--accounts",
        &accounts.to_string(),
        "--max-page-size",
        &PAGE.to_string(),
        "--latency",
        &format!("{LATENCY_MS}ms"),
        "--rate-limit",
        &LIMIT.to_string(),
    ];
    common::simulator(instances, &flags)
}

/// An exporter of the simulator's one account with these flags.
fn exporter(endpoint: &str, flags: &[&str]) -> (Proc, String) {
    let mut args = vec![
        "--web.listen-address",
        "127.0.0.1:0",
        "--clouddevice.endpoint",
        endpoint,
        // Every scrape on each scrape reads the list: no reuse window.
        "--scrape.min-interval=0s",
    ];
    args.extend_from_slice(flags);
    start_with(&args, &[("CLOUDDEVICE_AUTH_TOKEN", "bench")])
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The landing page's account line, unescaped.
fn landing_error(client: &reqwest::blocking::Client, address: &str) -> String {
    let page = get(client, &format!("http://{address}/"), 10);
    let line = page
        .lines()
        .find(|l| l.contains("Last collection"))
        .unwrap_or_default();
    line.trim_start_matches("<p>")
        .trim_end_matches("</p>")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn defaults(endpoint: &str) {
    let client = client();
    let (_exporter, address) = exporter(endpoint, &[]);
    let started = Instant::now();
    let text = get(&client, &format!("http://{address}/metrics"), 10);
    let wall = started.elapsed().as_secs_f64();
    println!("### defaults (page size 200, concurrency 4, 10 s scrape timeout)\n");
    println!(
        "clouddevice_up {} after {wall:.1} s; {} requests answered, {} throttled.\n",
        sum(&text, "clouddevice_up "),
        sum(&text, "clouddevice_exporter_api_requests_total{"),
        sum(
            &text,
            "clouddevice_exporter_api_errors_total{error_code=\"throttled\"}"
        ),
    );
    println!("Landing page:\n\n> {}\n", landing_error(&client, &address));
}

fn on_scrape(endpoint: &str) {
    let client = client();
    let (exporter, address) = exporter(
        endpoint,
        &[
            "--clouddevice.requests-per-second",
            RATE,
            "--clouddevice.concurrency",
            "4",
            "--clouddevice.timeout",
            "30s",
        ],
    );
    let ticks = clock_ticks();
    let pid = exporter.0.id();
    let pages = INSTANCES.div_ceil(PAGE);
    let rate: f64 = RATE.parse().unwrap_or(1.0);
    let ideal = pages as f64 / rate.min(4.0 / (LATENCY_MS as f64 / 1000.0));
    println!("### on each scrape: --clouddevice.requests-per-second {RATE}, concurrency 4, a 120 s scrape timeout\n");
    println!("| scrape | up | duration | ideal | ratio | throttled | exporter CPU |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut throttled_before = 0.0;
    for n in 1..=2 {
        let cpu_before = cpu_seconds(pid, ticks);
        let started = Instant::now();
        let text = get(&client, &format!("http://{address}/metrics"), 120);
        let wall = started.elapsed().as_secs_f64();
        let throttled = sum(
            &text,
            "clouddevice_exporter_api_errors_total{error_code=\"throttled\"}",
        );
        println!(
            "| {n} | {} | {wall:.1} s | {ideal:.1} s | {:.3} | {} | {:.2} s |",
            sum(&text, "clouddevice_up "),
            wall / ideal,
            throttled - throttled_before,
            cpu_seconds(pid, ticks) - cpu_before,
        );
        throttled_before = throttled;
    }
    println!();
}

struct Scheduled {
    label: String,
    accounts: usize,
    collections: f64,
    collection_seconds: Vec<f64>,
    ideal: f64,
    requests: f64,
    pages: f64,
    throttled_after_first: f64,
    p50_ms: f64,
    p99_ms: f64,
    head_p50_ms: f64,
    head_p99_ms: f64,
    body_mb: f64,
    scrapes: usize,
    cpu: f64,
    peak_mb: f64,
    wall: f64,
}

/// Scrapes `urls` in turn, every 100 ms, until `until`: for each, the milliseconds to the
/// answer's head (the exporter's own latency) and to the end of its body (the body's size on
/// loopback), and the body's bytes.
fn scrape_until(
    client: &reqwest::blocking::Client,
    urls: &[String],
    until: Instant,
) -> (Vec<f64>, Vec<f64>, usize) {
    let (mut heads, mut wholes, mut bytes) = (Vec::new(), Vec::new(), 0);
    let mut n = 0;
    while Instant::now() < until {
        let started = Instant::now();
        let response = client
            .get(&urls[n % urls.len()])
            .header("X-Prometheus-Scrape-Timeout-Seconds", "10")
            .send()
            .expect("the exporter answers");
        heads.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = bytes.max(response.bytes().map_or(0, |b| b.len()));
        wholes.push(started.elapsed().as_secs_f64() * 1000.0);
        n += 1;
        std::thread::sleep(Duration::from_millis(100).saturating_sub(started.elapsed()));
    }
    (heads, wholes, bytes)
}

/// Runs a scheduled exporter for `run` while scraping it, then reads what it counted. With
/// `settle`, scraping starts once every account's first collection has ended (`/-/ready`), so
/// that each probe carries its account's fleet.
fn scheduled(
    label: &str,
    accounts: usize,
    instances: usize,
    run: Duration,
    settle: bool,
    instance_metrics: &str,
) -> Scheduled {
    let (_sim, endpoint) = simulator(accounts, instances);
    let client = client();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let flags = [
        "--collector.instance-metrics",
        instance_metrics,
        "--collection.interval",
        "2m",
        "--clouddevice.requests-per-second",
        RATE,
        "--clouddevice.concurrency",
        "8",
        "--clouddevice.timeout",
        "30s",
    ];
    let (exporter, address, urls) = if accounts == 1 {
        let (exporter, address) = exporter(&endpoint, &flags);
        let url = format!("http://{address}/metrics");
        (exporter, address, vec![url])
    } else {
        let config = common::accounts_file(dir.path(), &endpoint, accounts);
        let config = config.to_string_lossy().into_owned();
        let mut args = vec![
            "--config.file",
            config.as_str(),
            "--web.listen-address",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(&flags);
        let (exporter, address) = start_with(&args, &[]);
        let urls = (1..=accounts)
            .map(|k| format!("http://{address}/probe?target={}", sim_account(k as u32).0))
            .collect();
        (exporter, address, urls)
    };
    let pid = exporter.0.id();
    let ticks = clock_ticks();
    while settle
        && !client
            .get(format!("http://{address}/-/ready"))
            .send()
            .is_ok_and(|r| r.status().is_success())
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    let started = Instant::now();
    let (mut heads, mut latencies, body_bytes) = scrape_until(&client, &urls, started + run);
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid, ticks);
    let peak_mb = status_mb(pid, "VmHWM:");
    let mut collection_seconds = Vec::new();
    let (mut requests, mut throttled) = (0.0, 0.0);
    let mut collections = 0.0;
    let pages_each = instances.div_ceil(PAGE) as f64;
    for url in &urls {
        let text = get(&client, url, 10);
        collection_seconds.push(sum(&text, "clouddevice_collection_duration_seconds "));
        requests += sum(&text, "clouddevice_exporter_api_requests_total{");
        throttled += sum(
            &text,
            "clouddevice_exporter_api_errors_total{error_code=\"throttled\"}",
        );
        // Requests that were not throttled, over the pages of one collection.
        let answered = sum(
            &text,
            "clouddevice_exporter_api_requests_total{api=\"batch_query\",code=\"200\"}",
        );
        collections += (answered / pages_each).round();
    }
    latencies.sort_by(f64::total_cmp);
    heads.sort_by(f64::total_cmp);
    Scheduled {
        head_p50_ms: quantile(&heads, 0.5),
        head_p99_ms: quantile(&heads, 0.99),
        body_mb: body_bytes as f64 / 1e6,
        label: label.to_string(),
        accounts,
        collections,
        collection_seconds,
        // Page 1 alone, the others at the rate, and the last one's answer.
        ideal: (pages_each - 1.0) / RATE.parse::<f64>().unwrap_or(1.0)
            + 2.0 * LATENCY_MS as f64 / 1000.0,
        requests,
        pages: pages_each * accounts as f64,
        throttled_after_first: throttled,
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        scrapes: latencies.len(),
        cpu,
        peak_mb,
        wall,
    }
}

fn report(s: &Scheduled) {
    let mut durations = s.collection_seconds.clone();
    durations.sort_by(f64::total_cmp);
    let (low, high) = (durations[0], durations[durations.len() - 1]);
    println!("### {}\n", s.label);
    println!("| figure | value |\n| --- | --- |");
    println!(
        "| scrapes during the run | {} over {:.0} s, {} account(s) |",
        s.scrapes, s.wall, s.accounts
    );
    println!(
        "| scrape latency to the answer's head, p50 / p99 | {:.1} ms / {:.1} ms |",
        s.head_p50_ms, s.head_p99_ms
    );
    println!(
        "| scrape latency to the body's end, p50 / p99 | {:.1} ms / {:.1} ms (largest body {:.1} MB) |",
        s.p50_ms, s.p99_ms, s.body_mb
    );
    println!(
        "| collection duration (latest, per account) | {low:.1} s to {high:.1} s; ideal (page 1, the rest at the rate, the last answer) {:.1} s, so {:.2}x to {:.2}x |",
        s.ideal,
        low / s.ideal,
        high / s.ideal
    );
    println!(
        "| collections | {} in all; requests {} for {} pages a collection in all |",
        s.collections, s.requests, s.pages
    );
    println!(
        "| throttled answers, whole run | {} |",
        s.throttled_after_first
    );
    println!(
        "| requests per hour at --collection.interval 2m | {:.0} (pages × 30) |",
        s.pages * 30.0
    );
    println!(
        "| exporter CPU, peak RSS | {:.2} s over {:.0} s ({:.1} %), {:.1} MB |\n",
        s.cpu,
        s.wall,
        s.cpu / s.wall * 100.0,
        s.peak_mb
    );
}

fn main() {
    let phases = std::env::var("BENCH_PHASES")
        .unwrap_or_else(|_| "defaults,on-scrape,scheduled,accounts".into());
    let phases: Vec<&str> = phases.split(',').map(str::trim).collect();
    println!("## 100,000 phones behind a gateway: 300 ms a page, pages of 200, 10 requests a second an account\n");
    if phases.contains(&"defaults") {
        let (_sim, endpoint) = simulator(1, INSTANCES);
        defaults(&endpoint);
    }
    if phases.contains(&"on-scrape") {
        let (_sim, endpoint) = simulator(1, INSTANCES);
        on_scrape(&endpoint);
    }
    if phases.contains(&"scheduled") {
        // Two collections: at 0 s and at 2 min, each about 50 s.
        let metrics = std::env::var("BENCH_INSTANCE_METRICS").unwrap_or_else(|_| "problems".into());
        let s = scheduled(
            &format!("scheduled, --collection.interval 2m, one account of 100,000 phones, --collector.instance-metrics {metrics}"),
            1,
            INSTANCES,
            Duration::from_secs(180),
            false,
            &metrics,
        );
        report(&s);
    }
    if phases.contains(&"accounts") {
        // One interval: every account collects once at its own point of it.
        let s = scheduled(
            "scheduled, --collection.interval 2m, 50 accounts of 2,000 phones, --collector.instance-metrics all, scraped once all had collected",
            50,
            2_000,
            Duration::from_secs(125),
            true,
            "all",
        );
        report(&s);
    }
}
