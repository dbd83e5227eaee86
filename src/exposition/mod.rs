//! What a scrape answers: the families built afresh from a fleet snapshot (health, aggregates),
//! the exporter's own metrics, and the per-instance series, all streamed as text by [`body`].
//! No I/O and no state.

use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

use std::sync::Arc;

use crate::fleet::{Dimension, Fleet, UNDOCUMENTED};

mod body;

pub use body::Exposition;

/// What one scrape produced, the input of [`render`].
pub struct Scrape {
    /// The fleet, or `None` when the list could not be read completely.
    pub fleet: Option<Arc<Fleet>>,
    pub duration_seconds: f64,
    /// The timeout the scrape worked to.
    pub timeout_seconds: f64,
    pub instance_metrics: bool,
    /// Set when a scrape may be served from an earlier collection (`--scrape.min-interval`).
    pub cached_for: Option<std::time::Duration>,
    /// When the data last read successfully was collected.
    pub last_success: Option<std::time::SystemTime>,
}

/// Builds the families of one scrape. Without a fleet, only `clouddevice_up 0` and the duration:
/// no instance data at all, since partial counts would fire false alerts.
fn scrape_families(scrape: &Scrape) -> Vec<MetricFamily> {
    let mut families = vec![
        family(
            "clouddevice_up",
            "Whether this scrape read every page of the instance list (1) or not (0).",
            vec![gauge(&[], if scrape.fleet.is_some() { 1.0 } else { 0.0 })],
        ),
        family(
            "clouddevice_scrape_duration_seconds",
            "Time this scrape spent reading the instance list.",
            vec![gauge(&[], scrape.duration_seconds)],
        ),
        family(
            "clouddevice_scrape_timeout_seconds",
            "Time this scrape had: the scraper's X-Prometheus-Scrape-Timeout-Seconds, or --scrape.timeout.",
            vec![gauge(&[], scrape.timeout_seconds)],
        ),
    ];
    if let Some(at) = scrape.last_success {
        let seconds = at
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        families.push(family(
            "clouddevice_exporter_last_collection_timestamp_seconds",
            "When the last successful read of the instance list finished, as Unix seconds.",
            vec![gauge(&[], seconds)],
        ));
    }
    if let Some(fleet) = &scrape.fleet {
        let start = families.len();
        aggregate_families(fleet, &mut families);
        // The exporter guidelines ask that cached values say so where they are described.
        if let Some(note) = cache_note(scrape) {
            for family in &mut families[start..] {
                let help = format!("{} {note}", family.help());
                family.set_help(help);
            }
        }
    }
    families
}

fn cache_note(scrape: &Scrape) -> Option<String> {
    scrape.cached_for.map(|window| {
        format!(
            "May come from a collection up to {}s old (--scrape.min-interval).",
            window.as_secs_f64()
        )
    })
}

/// The body of a scrape: its own families, the per-instance series when they are on, and
/// `own` (the exporter's self-metrics), in name order.
pub fn render(scrape: &Scrape, own: Vec<MetricFamily>) -> Result<Exposition, prometheus::Error> {
    let mut families = scrape_families(scrape);
    families.extend(own);
    let instances = scrape.fleet.clone().filter(|_| scrape.instance_metrics);
    Exposition::new(families, instances, cache_note(scrape).as_deref())
}

fn aggregate_families(fleet: &Fleet, out: &mut Vec<MetricFamily>) {
    let groups = fleet.aggregate();
    let totals = groups
        .iter()
        .map(|((region, sku), c)| gauge(&[("region", region), ("sku", sku)], c.total as f64))
        .collect();
    out.push(family(
        "clouddevice_instances",
        "Number of instances, by region and SKU.",
        totals,
    ));
    for dim in Dimension::ALL {
        let mut metrics = Vec::new();
        for ((region, sku), counts) in &groups {
            // Every documented status, zeros included, so alerts never see a series vanish.
            for (status, n) in counts.documented(dim) {
                let labels = [("region", *region), ("sku", *sku), ("status", status)];
                metrics.push(gauge(&labels, n as f64));
            }
            let undocumented = counts.undocumented(dim);
            if undocumented > 0 {
                let labels = [("region", *region), ("sku", *sku), ("status", UNDOCUMENTED)];
                metrics.push(gauge(&labels, undocumented as f64));
            }
        }
        out.push(family(
            &format!("clouddevice_instances_by_{}_status", dim.name()),
            &format!(
                "Number of instances by {} status; codes the API reference does not document count as undocumented.",
                dim.name()
            ),
            metrics,
        ));
    }
}

/// Label pairs must be given sorted by name: the encoder writes them in the order given.
fn gauge(labels: &[(&str, &str)], value: f64) -> Metric {
    let mut g = Gauge::new();
    g.set_value(value);
    let mut m = Metric::from_gauge(g);
    m.set_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut lp = LabelPair::new();
                lp.set_name(name.to_string());
                lp.set_value(value.to_string());
                lp
            })
            .collect(),
    );
    m
}

fn family(name: &str, help: &str, metrics: Vec<Metric>) -> MetricFamily {
    let mut mf = MetricFamily::new();
    mf.set_name(name.to_string());
    mf.set_help(help.to_string());
    mf.set_field_type(MetricType::GAUGE);
    mf.set_metric(metrics);
    mf
}

/// The text of one scrape without the exporter's self-metrics: what tests and benchmarks read.
pub fn render_text(scrape: &Scrape) -> Result<String, prometheus::Error> {
    Ok(render(scrape, Vec::new())?.into_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{Identity, Instance};

    fn fleet(instances: Vec<Instance>) -> Fleet {
        Fleet::from_pages([instances]).0
    }

    fn render(fleet: Option<&Fleet>, instance_metrics: bool) -> String {
        render_text(&Scrape {
            fleet: fleet.map(|f| Arc::new(f.clone())),
            duration_seconds: 0.25,
            timeout_seconds: 10.0,
            instance_metrics,
            cached_for: None,
            last_success: None,
        })
        .unwrap()
    }

    #[test]
    fn a_failed_scrape_exports_up_zero_and_no_instance_data() {
        assert_eq!(
            render(None, true),
            "# HELP clouddevice_scrape_duration_seconds Time this scrape spent reading the instance list.\n\
             # TYPE clouddevice_scrape_duration_seconds gauge\n\
             clouddevice_scrape_duration_seconds 0.25\n\
             # HELP clouddevice_scrape_timeout_seconds Time this scrape had: the scraper's X-Prometheus-Scrape-Timeout-Seconds, or --scrape.timeout.\n\
             # TYPE clouddevice_scrape_timeout_seconds gauge\n\
             clouddevice_scrape_timeout_seconds 10\n\
             # HELP clouddevice_up Whether this scrape read every page of the instance list (1) or not (0).\n\
             # TYPE clouddevice_up gauge\n\
             clouddevice_up 0\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let f = fleet(vec![Instance {
            region: "cn-north-4".into(),
            sku: "s".into(),
            status: [Some(2); 6],
            identity: Identity::new("id-1", "say \"hi\"\\path\nnext 云手机", ""),
            ..Instance::default()
        }]);
        let text = render(Some(&f), true);
        assert!(
            text.contains(
                r#"clouddevice_instance_running_status{instance_id="id-1",instance_name="say \"hi\"\\path\nnext 云手机",region="cn-north-4"} 2"#
            ),
            "{text}"
        );
    }

    #[test]
    fn missing_codes_and_times_leave_out_the_per_instance_series() {
        let f = fleet(vec![Instance {
            status: [Some(2), None, Some(0), Some(1), Some(3), Some(0)],
            backup_time: Some(100),
            identity: Identity::new("a", "", ""),
            ..Instance::default()
        }]);
        let text = render(Some(&f), true);
        assert!(
            !text.contains("clouddevice_instance_frozen_status"),
            "{text}"
        );
        assert!(
            !text.contains("clouddevice_instance_restore_timestamp_seconds"),
            "{text}"
        );
        assert!(text.contains(r#"clouddevice_instance_backup_timestamp_seconds{instance_id="a",instance_name="",region=""} 100"#));
        // The missing frozen status is still counted, so the aggregates add up.
        assert!(text.contains(
            r#"clouddevice_instances_by_frozen_status{region="",sku="",status="undocumented"} 1"#
        ));
    }

    #[test]
    fn instance_metrics_off_leaves_only_aggregates() {
        let f = fleet(vec![Instance {
            status: [Some(1); 6],
            identity: Identity::new("a", "", ""),
            ..Instance::default()
        }]);
        let text = render(Some(&f), false);
        assert!(!text.contains("clouddevice_instance_"), "{text}");
        assert!(text.contains("clouddevice_instances_by_running_status"));
    }

    #[test]
    fn every_documented_status_is_zero_filled() {
        let f = fleet(vec![Instance {
            region: "r".into(),
            sku: "s".into(),
            status: [Some(2), Some(0), Some(0), Some(0), Some(2), Some(2)],
            identity: Identity::new("a", "", ""),
            ..Instance::default()
        }]);
        let text = render(Some(&f), false);
        for dim in Dimension::ALL {
            for status in dim.statuses() {
                let line = format!(
                    "clouddevice_instances_by_{}_status{{region=\"r\",sku=\"s\",status=\"{status}\"}} ",
                    dim.name()
                );
                assert!(text.contains(&line), "missing {line}");
            }
        }
        assert!(!text.contains("status=\"undocumented\""));
    }
}
