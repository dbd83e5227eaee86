//! A 100,000-instance fleet read whole and counted right. Ignored by default because it takes a
//! while in a debug build; CI runs it (`cargo test -- --ignored`).

use crate::common;

use std::collections::HashMap;

use clouddevice_simulator::SimConfig;
use common::sim_and_exporter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 100,000-instance scrape; CI runs it with --ignored"]
async fn a_100k_fleet_is_scraped_complete_and_correct() {
    let flags = ["--clouddevice.concurrency", "8", "--scrape.timeout", "300s"];
    let (sim, exporter) = sim_and_exporter(SimConfig::new(100_000, 2026), &flags).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert_eq!(m.sum("clouddevice_instances"), 100_000.0);
    assert_eq!(m.samples("clouddevice_instance_info").len(), 100_000);

    let mut expected: HashMap<String, [f64; 3]> = HashMap::new();
    for i in sim.fleet().iter() {
        let labels = format!(r#"region="{}",sku="{}""#, i.region, i.instance_sku);
        let e = expected.entry(labels).or_default();
        e[0] += 1.0;
        e[1] += f64::from(i.frozen_status == 1);
        e[2] += f64::from(i.backup_status == 3);
    }
    for (labels, [total, frozen, failed]) in &expected {
        assert_eq!(
            m.value(&format!("clouddevice_instances{{{labels}}}")),
            Some(*total),
            "{labels}"
        );
        let frozen_series =
            format!(r#"clouddevice_instances_by_frozen_status{{{labels},status="frozen"}}"#);
        assert_eq!(m.value(&frozen_series), Some(*frozen), "{labels}");
        let failed_series =
            format!(r#"clouddevice_instances_by_backup_status{{{labels},status="failed"}}"#);
        assert_eq!(m.value(&failed_series), Some(*failed), "{labels}");
    }
    for dim in ["running", "frozen", "login", "assign", "backup", "restore"] {
        assert_eq!(
            m.sum(&format!("clouddevice_instances_by_{dim}_status")),
            100_000.0,
            "{dim}"
        );
    }
    assert_eq!(sim.requests(), 1_000, "one pass of 1,000 pages");
}
