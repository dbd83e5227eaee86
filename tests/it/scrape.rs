//! The exporter against the built-in simulator on loopback: whole fleets, the service's paging
//! quirks, every kind of failed page, and recovery on the next scrape.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use clouddevice_exporter::clock::Clock;
use clouddevice_simulator::{Fault, FaultKind, PagingFields, SimConfig};
use common::{sim_and_exporter, sim_and_exporter_on, Scraped};

fn fleet(instances: usize) -> SimConfig {
    SimConfig::new(instances, 11)
}

#[tokio::test]
async fn a_multi_page_fleet_is_read_completely() {
    let (sim, exporter) = sim_and_exporter(fleet(250), &[]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert_eq!(m.sum("clouddevice_instances"), 250.0);
    assert_eq!(m.samples("clouddevice_instance_info").len(), 250);
    assert_eq!(sim.requests(), 3, "100 + 100 + 50");
    assert_eq!(
        m.value(r#"clouddevice_exporter_api_requests_total{api="batch_query",code="200"}"#),
        Some(3.0)
    );
}

#[tokio::test]
async fn aggregates_match_the_fleet_exactly() {
    let (sim, exporter) = sim_and_exporter(fleet(333), &["--clouddevice.concurrency", "3"]).await;
    let m = exporter.scrape().await;
    // Count the simulator's own fleet independently of the exporter's code.
    let mut frozen: HashMap<(String, String), f64> = HashMap::new();
    let mut failed_backups: HashMap<(String, String), f64> = HashMap::new();
    let mut total: HashMap<(String, String), f64> = HashMap::new();
    for i in sim.fleet().iter() {
        let key = (i.region.clone(), i.instance_sku.clone());
        *total.entry(key.clone()).or_default() += 1.0;
        *frozen.entry(key.clone()).or_default() += f64::from(i.frozen_status == 1);
        *failed_backups.entry(key).or_default() += f64::from(i.backup_status == 3);
    }
    for ((region, sku), n) in &total {
        let labels = format!(r#"region="{region}",sku="{sku}""#);
        assert_eq!(
            m.value(&format!("clouddevice_instances{{{labels}}}")),
            Some(*n)
        );
        let frozen_series =
            format!(r#"clouddevice_instances_by_frozen_status{{{labels},status="frozen"}}"#);
        assert_eq!(
            m.value(&frozen_series),
            Some(frozen[&(region.clone(), sku.clone())])
        );
        let failed_series =
            format!(r#"clouddevice_instances_by_backup_status{{{labels},status="failed"}}"#);
        assert_eq!(
            m.value(&failed_series),
            Some(failed_backups[&(region.clone(), sku.clone())])
        );
    }
    assert_eq!(m.samples("clouddevice_instances").len(), total.len());
    // Per dimension the statuses add up to the instance count, undocumented included.
    for dim in ["running", "frozen", "login", "assign", "backup", "restore"] {
        let name = format!("clouddevice_instances_by_{dim}_status");
        assert_eq!(m.sum(&name), 333.0, "{dim}");
    }
    let undocumented = sim.fleet().iter().filter(|i| i.running_status > 5).count() as f64;
    assert!(undocumented > 0.0);
    let exported: f64 = m
        .samples("clouddevice_instances_by_running_status")
        .iter()
        .filter(|(labels, _)| labels.ends_with(r#"status="undocumented""#))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(exported, undocumented);
}

#[tokio::test]
async fn the_page_size_the_service_returns_is_followed() {
    let config = SimConfig {
        max_page_size: 30,
        ..fleet(250)
    };
    let (sim, exporter) = sim_and_exporter(config, &["--clouddevice.page-size", "100"]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert_eq!(m.sum("clouddevice_instances"), 250.0);
    assert_eq!(sim.requests(), 9, "ceil(250 / 30) pages of 30");
}

#[tokio::test]
async fn paging_fields_inside_data_are_followed() {
    let config = SimConfig {
        paging_fields: PagingFields::Data,
        ..fleet(120)
    };
    let (sim, exporter) = sim_and_exporter(config, &["--clouddevice.page-size", "50"]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert_eq!(m.sum("clouddevice_instances"), 120.0);
    assert_eq!(sim.requests(), 3);
}

#[tokio::test]
async fn an_empty_fleet_is_up_with_no_series() {
    let (_sim, exporter) = sim_and_exporter(fleet(0), &[]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert!(m.samples("clouddevice_instances").is_empty());
}

/// Injects `kind` on page 2 once; with retries off the scrape fails with `error_code`, and the
/// next one succeeds.
async fn failed_page_then_recovery(kind: FaultKind, flags: &[&str], error_code: &str) -> Scraped {
    let mut flags = flags.to_vec();
    flags.extend(["--clouddevice.max-retries", "0"]);
    let (sim, exporter) = sim_and_exporter(fleet(300), &flags).await;
    sim.inject(Fault {
        page: Some(2),
        times: Some(1),
        kind,
    });
    let failed = exporter.scrape().await;
    assert_eq!(failed.up(), 0.0, "{}", failed.0);
    for name in [
        "clouddevice_instances",
        "clouddevice_instances_by_frozen_status",
        "clouddevice_instance_info",
    ] {
        assert!(
            failed.samples(name).is_empty(),
            "{name} exported after a failed page"
        );
    }
    assert_eq!(failed.errors(error_code), Some(1.0), "{}", failed.0);

    let recovered = exporter.scrape().await;
    assert_eq!(recovered.up(), 1.0);
    assert_eq!(recovered.sum("clouddevice_instances"), 300.0);
    assert_eq!(
        recovered.errors(error_code),
        Some(1.0),
        "the counter keeps its count"
    );
    failed
}

#[tokio::test]
async fn http_500_fails_the_scrape_and_the_next_one_recovers() {
    let kind = FaultKind::Status {
        status: 500,
        code: None,
    };
    failed_page_then_recovery(kind, &[], "http_500").await;
}

#[tokio::test]
async fn a_documented_500_error_is_counted_by_its_code() {
    let kind = FaultKind::Status {
        status: 500,
        code: Some("KOOPHONE.API.9999".into()),
    };
    let m = failed_page_then_recovery(kind, &[], "KOOPHONE.API.9999").await;
    assert_eq!(
        m.value(r#"clouddevice_exporter_api_requests_total{api="batch_query",code="500"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn http_200_with_a_koophone_error_is_a_failure() {
    let kind = FaultKind::ApiError {
        code: "KOOPHONE.API.1001".into(),
    };
    failed_page_then_recovery(kind, &[], "KOOPHONE.API.1001").await;
}

#[tokio::test]
async fn truncated_json_is_a_decode_failure() {
    failed_page_then_recovery(FaultKind::Truncate, &[], "decode").await;
}

#[tokio::test]
async fn a_slow_page_past_the_timeout_fails_the_scrape() {
    let kind = FaultKind::Delay(Duration::from_secs(5));
    failed_page_then_recovery(kind, &["--clouddevice.timeout", "300ms"], "timeout").await;
}

#[tokio::test]
async fn a_failure_on_every_page_keeps_failing_until_it_clears() {
    let (sim, exporter) = sim_and_exporter(fleet(50), &[]).await;
    sim.inject(Fault::every_page(401, Some("APIGW.0307")));
    for _ in 0..2 {
        assert_eq!(exporter.scrape().await.up(), 0.0);
    }
    sim.clear_faults();
    assert_eq!(exporter.scrape().await.up(), 1.0);
}

#[tokio::test]
async fn instance_metrics_can_be_turned_off() {
    let (_sim, exporter) =
        sim_and_exporter(fleet(40), &["--collector.instance-metrics=false"]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert_eq!(m.sum("clouddevice_instances"), 40.0);
    assert!(!m.contains("clouddevice_instance_"), "{}", m.0);
}

#[tokio::test]
async fn per_instance_series_carry_the_raw_codes() {
    let (sim, exporter) = sim_and_exporter(fleet(300), &[]).await;
    let m = exporter.scrape().await;
    let served = sim.fleet();
    let frozen = served
        .iter()
        .find(|i| i.frozen_status == 1)
        .expect("a frozen instance");
    let series = m
        .samples("clouddevice_instance_frozen_status")
        .into_iter()
        .find(|(labels, _)| labels.contains(&format!("instance_id=\"{}\"", frozen.instance_id)))
        .expect("the frozen instance has a series");
    assert_eq!(series.1, 1.0);
    let with_backup = sim
        .fleet()
        .iter()
        .filter(|i| !i.backup_time.is_empty() && i.backup_time != "null")
        .count();
    assert_eq!(
        m.samples("clouddevice_instance_backup_timestamp_seconds")
            .len(),
        with_backup
    );
}

#[tokio::test]
async fn the_filters_reach_the_api() {
    let (sim, exporter) =
        sim_and_exporter(fleet(200), &["--clouddevice.pool-scene-tag", "CLOUD_APP"]).await;
    let m = exporter.scrape().await;
    let apps = sim
        .fleet()
        .iter()
        .filter(|i| i.pool_scene_tag == "CLOUD_APP")
        .count();
    assert!(apps > 0 && apps < 200);
    assert_eq!(m.sum("clouddevice_instances"), apps as f64);
}

#[tokio::test]
async fn a_wrong_token_is_reported_with_the_gateway_code() {
    let config = SimConfig {
        token: Some("another-token".into()),
        ..fleet(10)
    };
    let (_sim, exporter) = sim_and_exporter(config, &[]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert_eq!(m.errors("APIGW.0301"), Some(1.0));
    assert!(!m.contains(common::TOKEN));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_transport_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exporter = common::TestExporter::start(&format!("http://127.0.0.1:{port}"), &[]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    // The first try and the two default retries.
    assert_eq!(m.errors("transport"), Some(3.0));
    assert_eq!(
        m.value(r#"clouddevice_exporter_api_requests_total{api="batch_query",code="error"}"#),
        Some(3.0)
    );
}

#[tokio::test]
async fn gzip_is_served_when_accepted() {
    let (_sim, exporter) = sim_and_exporter(fleet(100), &[]).await;
    let raw = reqwest::Client::new()
        .get(exporter.url("/metrics"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-encoding"], "gzip");
    assert!(raw.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let compressed = raw.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut text,
    )
    .unwrap();
    let m = Scraped(text);
    assert_eq!(m.up(), 1.0);
    assert_eq!(m.sum("clouddevice_instances"), 100.0);
    let plain = exporter.get("/metrics").await;
    assert!(plain.headers().get("content-encoding").is_none());
}

/// What Prometheus 2.42 sends: OpenMetrics first, the text format as a fallback.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[tokio::test]
async fn openmetrics_when_the_scraper_asks_for_it_text_otherwise() {
    let (_sim, exporter) = sim_and_exporter(fleet(100), &[]).await;
    let http = reqwest::Client::new();
    let scrape = |accept: Option<&'static str>, gzip: bool| {
        let mut request = http.get(exporter.url("/metrics"));
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        if gzip {
            request = request.header("Accept-Encoding", "gzip");
        }
        async move {
            let answer = request.send().await.unwrap();
            let kind = answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            let encoded = answer.headers().get("content-encoding").is_some();
            let bytes = answer.bytes().await.unwrap();
            let mut text = String::new();
            if encoded {
                std::io::Read::read_to_string(
                    &mut flate2::read::GzDecoder::new(&bytes[..]),
                    &mut text,
                )
                .unwrap();
            } else {
                text = String::from_utf8(bytes.to_vec()).unwrap();
            }
            (kind, text)
        }
    };
    for gzip in [false, true] {
        let (kind, om) = scrape(Some(PROMETHEUS_ACCEPT), gzip).await;
        assert_eq!(
            kind,
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert!(om.ends_with("\n# EOF\n"), "{}", &om[om.len() - 200..]);
        assert_eq!(om.matches("# EOF").count(), 1);
        // A counter's metadata names it without _total; its samples keep it.
        assert!(om.contains("# TYPE clouddevice_exporter_api_requests counter\n"));
        assert!(om.contains("\nclouddevice_exporter_api_requests_total{"));
        assert!(om.contains("# UNIT clouddevice_scrape_duration_seconds seconds\n"));
        assert!(om.contains("\nclouddevice_up 1.0\n"), "gauges as floats");
        let m = Scraped(om.clone());
        assert_eq!(m.sum("clouddevice_instances"), 100.0);
        assert_eq!(
            om.matches("\nclouddevice_instance_frozen_status{").count(),
            100
        );

        let (kind, text) = scrape(None, gzip).await;
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
        assert!(text.contains("# TYPE clouddevice_exporter_api_requests_total counter\n"));
        assert_eq!(Scraped(text).sum("clouddevice_instances"), 100.0);
    }
    let (kind, _) = scrape(Some("text/plain;version=0.0.4"), false).await;
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
}

#[tokio::test]
async fn landing_page_and_probes_answer() {
    let (_sim, exporter) =
        sim_and_exporter(fleet(5), &["--web.telemetry-path", "/custom/metrics"]).await;
    let landing = exporter.get("/").await.text().await.unwrap();
    assert!(
        landing.contains(r#"<a href="/custom/metrics">"#),
        "{landing}"
    );
    assert!(landing.contains("No collection yet"), "{landing}");
    assert_eq!(exporter.get("/-/healthy").await.status(), 200);
    assert_eq!(exporter.get("/-/ready").await.status(), 200);
    assert_eq!(exporter.get("/metrics").await.status(), 404);
    let m = Scraped(exporter.get("/custom/metrics").await.text().await.unwrap());
    assert_eq!(m.up(), 1.0);
    let landing = exporter.get("/").await.text().await.unwrap();
    assert!(landing.contains("succeeded, 5 instances"), "{landing}");
}

#[tokio::test]
async fn concurrent_scrapes_each_get_a_complete_answer() {
    let (_sim, exporter) = sim_and_exporter(fleet(500), &[]).await;
    let scrapes = (0..5).map(|_| exporter.scrape());
    for m in futures::future::join_all(scrapes).await {
        assert_eq!(m.up(), 1.0);
        assert_eq!(m.sum("clouddevice_instances"), 500.0);
    }
}

#[tokio::test]
async fn every_documented_error_code_fails_the_scrape_under_its_own_label() {
    let codes = [
        (400, "KOOPHONE.API.1000"),
        (400, "KOOPHONE.API.1001"),
        (400, "KOOPHONE.API.1004"),
        (400, "KOOPHONE.API.5002"),
        (400, "KOOPHONE.API.5004"),
        (400, "KOOPHONE.API.9999"),
        (500, "KOOPHONE.API.0000"),
        (500, "KPAPI.2209"),
        (200, "KOOPHONE.API.1001"),
        (401, "APIGW.0307"),
    ];
    for (status, code) in codes {
        let config = SimConfig {
            error: Some((status, code.to_string())),
            ..fleet(10)
        };
        let (_sim, exporter) = sim_and_exporter(config, &[]).await;
        let m = exporter.scrape().await;
        assert_eq!(m.up(), 0.0, "{status} {code}");
        // The code decides, whatever the status: only the service's failure (9999) is tried
        // three times; every other business code once.
        let tries = if code == "KOOPHONE.API.9999" {
            3.0
        } else {
            1.0
        };
        assert_eq!(m.errors(code), Some(tries), "{status} {code}: {}", m.0);
        let requests = format!(
            r#"clouddevice_exporter_api_requests_total{{api="batch_query",code="{status}"}}"#
        );
        assert_eq!(m.value(&requests), Some(tries), "{status} {code}");
    }
}

/// The backup timestamps scraped, by instance id.
fn backup_times(m: &Scraped) -> HashMap<String, f64> {
    m.samples("clouddevice_instance_backup_timestamp_seconds")
        .into_iter()
        .map(|(labels, value)| {
            let id = labels
                .strip_prefix("instance_id=\"")
                .and_then(|rest| rest.split('"').next())
                .unwrap()
                .to_string();
            (id, value)
        })
        .collect()
}

#[tokio::test]
async fn backup_times_written_in_another_zone_are_read_in_it() {
    // The simulator writes its times at UTC+8, as a service in Beijing might.
    let config = SimConfig {
        time_zone: time::macros::offset!(+8),
        ..fleet(60)
    };
    let (sim, exporter) =
        sim_and_exporter(config.clone(), &["--clouddevice.time-zone", "+08:00"]).await;
    let expected: HashMap<String, f64> = sim
        .fleet()
        .iter()
        .filter_map(|i| {
            let t = time::PrimitiveDateTime::parse(
                &i.backup_time,
                clouddevice_exporter::upstream::api_time::API_TIME_FORMAT,
            )
            .ok()?;
            Some((
                i.instance_id.clone(),
                t.assume_utc().unix_timestamp() as f64,
            ))
        })
        .collect();
    assert!(expected.len() > 40);
    assert_eq!(backup_times(&exporter.scrape().await), expected);

    // Read as UTC, the same text is eight hours late.
    let (_sim, utc) = sim_and_exporter(config, &[]).await;
    let off = backup_times(&utc.scrape().await);
    for (id, t) in &expected {
        assert_eq!(off[id], t + 8.0 * 3600.0, "{id}");
    }
}

/// The ids with a `clouddevice_instance_info` series.
fn info_ids(m: &Scraped) -> Vec<String> {
    let mut ids: Vec<String> = m
        .samples("clouddevice_instance_info")
        .into_iter()
        .filter_map(|(labels, _)| {
            let start = labels.find("instance_id=\"")? + "instance_id=\"".len();
            Some(labels[start..].split('"').next()?.to_string())
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn problems_mode_exports_exactly_the_instances_in_trouble() {
    let (sim, exporter) =
        sim_and_exporter(fleet(400), &["--collector.instance-metrics=problems"]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert_eq!(
        m.sum("clouddevice_instances"),
        400.0,
        "aggregates stay whole"
    );
    // The rule, from the reference's codes: frozen, a failed backup or restore, or a code
    // outside the documented ones (every generated instance has all six codes).
    let documented = |code: i64, count: i64| (0..count).contains(&code);
    let mut expected: Vec<String> = sim
        .fleet()
        .iter()
        .filter(|i| {
            i.frozen_status == 1
                || i.backup_status == 3
                || i.restore_status == 3
                || !documented(i.running_status, 6)
                || !documented(i.frozen_status, 2)
                || !documented(i.login_status, 2)
                || !documented(i.assign_status, 2)
                || !documented(i.backup_status, 5)
                || !documented(i.restore_status, 5)
        })
        .map(|i| i.instance_id.clone())
        .collect();
    expected.sort();
    assert!(!expected.is_empty() && expected.len() < 200);
    assert_eq!(info_ids(&m), expected);
}

#[tokio::test]
async fn collect_chooses_families_and_names_an_unknown_one() {
    let (_sim, exporter) = sim_and_exporter(fleet(40), &[]).await;
    let get = |query: &'static str| {
        let exporter = &exporter;
        async move {
            let response = exporter.get(&format!("/metrics?{query}")).await;
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, aggregates) = get("collect[]=aggregates").await;
    assert_eq!(status, 200);
    assert!(aggregates.contains("\nclouddevice_up 1\n"));
    assert!(aggregates.contains("clouddevice_instances_by_frozen_status{"));
    assert!(!aggregates.contains("clouddevice_instance_info{"));
    assert!(!aggregates.contains("clouddevice_exporter_api_requests_total"));
    assert!(!aggregates.contains("process_"));

    let (_, both) = get("collect[]=instances&collect[]=exporter").await;
    assert!(both.contains("clouddevice_instance_info{"));
    assert!(both.contains("clouddevice_exporter_api_requests_total"));
    assert!(!both.contains("clouddevice_instances_by_frozen_status"));

    let (status, error) = get("collect[]=aggregates&collect[]=everything").await;
    assert_eq!(status, 400);
    assert!(error.contains("\"everything\""), "{error}");
}

#[tokio::test]
async fn scrapes_of_different_families_share_one_collection() {
    let config = SimConfig {
        latency: Duration::from_millis(500),
        ..fleet(40)
    };
    let (sim, exporter) = sim_and_exporter(config, &[]).await;
    let (a, b) = tokio::join!(
        exporter.get("/metrics?collect[]=aggregates"),
        exporter.get("/metrics?collect[]=instances")
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert_eq!(sim.requests(), 1, "one page, read once for both");
}

#[tokio::test]
async fn instance_names_can_stay_on_the_info_metric_or_go_entirely() {
    let (_sim, info_only) =
        sim_and_exporter(fleet(30), &["--collector.instance-name", "info"]).await;
    let m = info_only.scrape().await;
    assert!(m
        .samples("clouddevice_instance_info")
        .iter()
        .all(|(labels, _)| labels.contains("instance_name=\"")));
    for family in [
        "clouddevice_instance_running_status",
        "clouddevice_instance_backup_timestamp_seconds",
    ] {
        let samples = m.samples(family);
        assert!(!samples.is_empty());
        assert!(
            samples.iter().all(|(l, _)| !l.contains("instance_name")),
            "{family}"
        );
    }
    let (_sim, nowhere) =
        sim_and_exporter(fleet(30), &["--collector.instance-name", "nowhere"]).await;
    let m = nowhere.scrape().await;
    assert!(m.samples("clouddevice_instance_info").len() == 30);
    assert!(!m.contains("instance_name"), "{}", m.0);
}

#[tokio::test]
async fn a_frozen_region_has_every_phone_frozen_and_the_others_keep_theirs() {
    let config = SimConfig {
        frozen_region: Some("cn-south-1".into()),
        ..fleet(300)
    };
    let (sim, exporter) = sim_and_exporter(config, &[]).await;
    let m = exporter.scrape().await;
    let count = |name: &str, region: &str| -> f64 {
        m.samples(name)
            .iter()
            .filter(|(labels, _)| labels.contains(&format!(r#"region="{region}""#)))
            .filter(|(labels, _)| {
                name == "clouddevice_instances" || labels.contains(r#"status="frozen""#)
            })
            .map(|(_, v)| v)
            .sum()
    };
    let south = count("clouddevice_instances", "cn-south-1");
    assert!(south > 0.0);
    assert_eq!(
        count("clouddevice_instances_by_frozen_status", "cn-south-1"),
        south
    );
    let north_frozen = sim
        .fleet()
        .iter()
        .filter(|i| i.region == "cn-north-4" && i.frozen_status == 1)
        .count() as f64;
    assert!(north_frozen < count("clouddevice_instances", "cn-north-4"));
    assert_eq!(
        count("clouddevice_instances_by_frozen_status", "cn-north-4"),
        north_frozen
    );
}

#[tokio::test]
async fn a_moving_fleet_moves_between_scrapes_and_each_scrape_matches_it() {
    let config = SimConfig {
        change_every: Some(Duration::from_millis(1_500)),
        ..fleet(500)
    };
    let clock = Clock::manual();
    let (sim, exporter) = sim_and_exporter_on(config, &[], clock.clone()).await;
    let frozen = |m: &Scraped| {
        m.samples("clouddevice_instances_by_frozen_status")
            .iter()
            .filter(|(labels, _)| labels.contains(r#"status="frozen""#))
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    let (mut seen, mut checked) = (Vec::new(), 0);
    for _ in 0..3 {
        // Read what the simulator serves, then scrape, within the same 1.5 s epoch: each
        // scrape counts exactly the fleet of its moment.
        clock.advance(Duration::from_millis(1_600));
        let served = sim.fleet();
        let m = exporter.scrape().await;
        if Arc::ptr_eq(&served, &sim.fleet()) && m.up() == 1.0 {
            assert_eq!(m.sum("clouddevice_instances"), served.len() as f64);
            let frozen_served = served.iter().filter(|i| i.frozen_status == 1).count();
            assert_eq!(frozen(&m), frozen_served as f64);
            checked += 1;
        }
        seen.push((m.sum("clouddevice_instances"), frozen(&m)));
    }
    assert!(checked > 0, "no scrape fell within one epoch");
    seen.dedup();
    assert!(seen.len() > 1, "the fleet never moved: {seen:?}");
}

#[tokio::test]
async fn a_list_longer_than_max_instances_is_up_0_naming_the_flag() {
    let (sim, exporter) = sim_and_exporter(
        SimConfig::new(300, 2),
        &["--clouddevice.max-instances", "200"],
    )
    .await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert!(m.value("clouddevice_instances").is_none());
    assert_eq!(m.errors("too_many_instances"), Some(1.0));
    assert_eq!(sim.requests(), 1, "refused on page 1's total_count");
    let landing = exporter.get("/").await.text().await.unwrap();
    assert!(
        landing.contains("more than 200 instances (300 by total_count)")
            && landing.contains("raise --clouddevice.max-instances"),
        "{landing}"
    );
}

#[tokio::test]
async fn a_wrong_path_in_the_endpoint_names_the_url_asked_and_the_flag() {
    let sim = common::simulator(fleet(10)).await;
    let endpoint = format!("{}/koophone/", sim.url());
    let exporter = common::TestExporter::start(&endpoint, &[]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert_eq!(m.errors("http_404"), Some(1.0), "not retried");
    let said = exporter.last_collection().await;
    let asked = format!("{}/koophone/v1/instances/batch-query", sim.url());
    assert!(
        said.contains(&format!("the API is not at {asked}:")),
        "{said}"
    );
    assert!(said.contains("set --clouddevice.endpoint"), "{said}");
    assert!(!said.contains("page_no="), "no query string: {said}");
}

#[tokio::test]
async fn https_to_a_plain_http_port_says_to_write_http() {
    let sim = common::simulator(fleet(10)).await;
    let endpoint = sim.url().replacen("http://", "https://", 1);
    let exporter = common::TestExporter::start(&endpoint, &[]).await;
    assert_eq!(exporter.scrape().await.up(), 0.0);
    let said = exporter.last_collection().await;
    assert!(
        said.contains("was answered in plain HTTP to a TLS (https://) request; the endpoint speaks plain HTTP there: write http:// in --clouddevice.endpoint"),
        "{said}"
    );
    assert!(
        !said.contains("InvalidContentType"),
        "no TLS library jargon: {said}"
    );
}
