//! Many accounts from one exporter against one exporter per account: a simulator serves N
//! accounts of M phones each (`simulate --accounts`); one exporter with an accounts file is
//! probed for every account at once, in rounds; then, as before accounts files, one
//! single-account exporter per account is started and scraped once, one after the other. Reports
//! wall time, exporter CPU and peak memory of both.
//!
//!     cargo bench --bench accounts
//!     BENCH_ACCOUNTS=50 BENCH_INSTANCES=2000 BENCH_ROUNDS=3 cargo bench --bench accounts
//!
//! Prints a Markdown table. Linux only (reads /proc).

use std::time::{Duration, Instant};

mod common;

use clouddevice_exporter::simulate::sim_account;
use common::{clock_ticks, cpu_seconds, start_with, status_mb, Proc};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Scrapes `url` as Prometheus would (with a two-minute timeout) and checks it succeeded.
fn scrape(client: &reqwest::blocking::Client, url: &str, instances: usize) {
    let body = client
        .get(url)
        .header("X-Prometheus-Scrape-Timeout-Seconds", "120")
        .send()
        .and_then(|r| r.text())
        .expect("the exporter answers");
    assert!(body.contains("clouddevice_up 1"), "{url} failed");
    let total: f64 = body
        .lines()
        .filter(|l| l.starts_with("clouddevice_instances{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total as usize, instances, "{url}: every instance counted");
}

struct Measured {
    label: String,
    wall: Duration,
    cpu: f64,
    peak_mb: f64,
}

fn main() {
    let accounts = setting("BENCH_ACCOUNTS", 50);
    let instances = setting("BENCH_INSTANCES", 2_000);
    let rounds = setting("BENCH_ROUNDS", 3);
    let ticks = clock_ticks();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("an HTTP client");
    let (_sim, endpoint) = common::simulator(instances, &["--accounts", &accounts.to_string()]);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = common::accounts_file(dir.path(), &endpoint, accounts);

    let mut rows = Vec::new();
    {
        let config = config.to_string_lossy();
        let (exporter, address) = start_with(
            &[
                "--config.file",
                &config,
                "--web.listen-address",
                "127.0.0.1:0",
                "--clouddevice.timeout",
                "60s",
                "--scrape.min-interval=0s",
            ],
            &[],
        );
        let pid = exporter.0.id();
        let idle_mb = status_mb(pid, "VmRSS:");
        for round in 1..=rounds {
            let cpu = cpu_seconds(pid, ticks);
            let started = Instant::now();
            std::thread::scope(|s| {
                for k in 1..=accounts {
                    let (client, address) = (&client, &address);
                    s.spawn(move || {
                        let (name, _) = sim_account(k as u32);
                        let url = format!("http://{address}/probe?target={name}");
                        scrape(client, &url, instances);
                    });
                }
            });
            rows.push(Measured {
                label: format!("one exporter, {accounts} probes at once, round {round}"),
                wall: started.elapsed(),
                cpu: cpu_seconds(pid, ticks) - cpu,
                peak_mb: status_mb(pid, "VmHWM:"),
            });
        }
        println!("one exporter with {accounts} accounts: {idle_mb:.1} MB resident before the first probe");
    }

    let (mut wall, mut cpu, mut peak, mut peaks) = (Duration::ZERO, 0.0, 0.0f64, 0.0);
    for k in 1..=accounts {
        let (_, token) = sim_account(k as u32);
        let (exporter, address): (Proc, String) = start_with(
            &[
                "--clouddevice.endpoint",
                &endpoint,
                "--web.listen-address",
                "127.0.0.1:0",
                "--clouddevice.timeout",
                "60s",
                "--scrape.min-interval=0s",
            ],
            &[("CLOUDDEVICE_AUTH_TOKEN", token.expose())],
        );
        let pid = exporter.0.id();
        let before = cpu_seconds(pid, ticks);
        let started = Instant::now();
        scrape(&client, &format!("http://{address}/metrics"), instances);
        wall += started.elapsed();
        cpu += cpu_seconds(pid, ticks) - before;
        let hwm = status_mb(pid, "VmHWM:");
        peak = peak.max(hwm);
        peaks += hwm;
    }
    rows.push(Measured {
        label: format!("{accounts} single-account exporters, one scrape each, in turn (sum)"),
        wall,
        cpu,
        peak_mb: peak,
    });

    println!("\n{accounts} accounts × {instances} phones\n");
    println!("| run | wall time | exporter CPU | peak resident memory |");
    println!("|:--|--:|--:|--:|");
    for row in &rows {
        println!(
            "| {} | {:.2} s | {:.2} s | {:.1} MB |",
            row.label,
            row.wall.as_secs_f64(),
            row.cpu,
            row.peak_mb
        );
    }
    println!(
        "\nThe {accounts} single-account exporters, had they run side by side: {peaks:.0} MB resident at their peaks together."
    );
}
