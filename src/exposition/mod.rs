//! What a scrape answers: the families built afresh from a fleet snapshot (health, aggregates),
//! the exporter's own metrics, and the per-instance series, all streamed as text by [`body`].
//! No I/O and no state.

use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

use std::sync::Arc;

use std::collections::{BTreeMap, BTreeSet};

use crate::fleet::{BackupAges, Counts, Dimension, Fleet, UNDOCUMENTED};

mod body;
mod format;

pub use body::{Exposition, InstanceName};
pub use format::Format;

/// Which instances get per-instance series (`--collector.instance-metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceMetrics {
    /// Every instance.
    All,
    /// Only the instances in trouble ([`crate::fleet::Instance::in_trouble`]).
    Problems,
    /// None: aggregates only.
    None,
}

/// What the flags say the exposition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpositionConfig {
    pub instance_metrics: InstanceMetrics,
    pub instance_name: InstanceName,
    /// The bounds of the backup-age buckets, in seconds, ascending (`+Inf` is implied).
    pub backup_age_buckets: Arc<[u64]>,
    /// The most (region, SKU) groups exported (`--collector.max-groups`): an upstream sending a
    /// new region or SKU with every instance must not make series without end.
    pub max_groups: usize,
}

/// The region and SKU of the group that counts every pair past [`ExpositionConfig::max_groups`].
pub const OTHER_GROUP: &str = "other";

/// Which families a scrape asks for (`/metrics?collect[]=…`), so that one Prometheus job can
/// take the aggregates often and the per-instance series seldom. `clouddevice_up` and the
/// scrape's own duration, timeout and data age are always there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    /// `clouddevice_fleet_instances`, `clouddevice_instances` and `clouddevice_instances_by_*`.
    pub aggregates: bool,
    /// `clouddevice_instance_*`.
    pub instances: bool,
    /// The exporter's own metrics: `clouddevice_exporter_*` and `process_*`.
    pub exporter: bool,
}

impl Families {
    pub const ALL: Families = Families {
        aggregates: true,
        instances: true,
        exporter: true,
    };

    /// The families `collect[]` names; none named means all. An unknown name is an error
    /// that names it.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Families, String> {
        let mut chosen = Families {
            aggregates: false,
            instances: false,
            exporter: false,
        };
        let mut any = false;
        for name in names {
            any = true;
            match name {
                "aggregates" => chosen.aggregates = true,
                "instances" => chosen.instances = true,
                "exporter" => chosen.exporter = true,
                other => {
                    return Err(format!(
                        "unknown collect[] name {other:?}; use aggregates, instances or exporter"
                    ))
                }
            }
        }
        Ok(if any { chosen } else { Families::ALL })
    }
}

/// What the per-instance HELP texts add in `problems` mode.
const PROBLEMS_NOTE: &str = "Only instances in trouble (--collector.instance-metrics=problems): frozen, a failed backup or restore, or a status code missing or undocumented.";

/// What one scrape produced, the input of [`render`].
pub struct Scrape {
    /// Whether this scrape read the whole list.
    pub up: bool,
    /// The fleet: this scrape's, or with `stale_for` an earlier one's; `None` when there is none
    /// to serve.
    pub fleet: Option<Arc<Fleet>>,
    /// Set when the fleet is the last successful collection's, served because this scrape's
    /// failed (`--scrape.serve-stale-for`): that collection's age.
    pub stale_for: Option<std::time::Duration>,
    pub duration_seconds: f64,
    /// The timeout the scrape worked to.
    pub timeout_seconds: f64,
    /// What the flags say the exposition holds.
    pub config: ExpositionConfig,
    /// The families asked for.
    pub families: Families,
    /// Now, as Unix seconds: what backup ages are measured from.
    pub now: i64,
    /// Set when a scrape may be served from an earlier collection (`--scrape.min-interval`).
    pub cached_for: Option<std::time::Duration>,
    /// When the data last read successfully was collected.
    pub last_success: Option<std::time::SystemTime>,
    /// Set when the list is read on a schedule (`--collection.interval`), not by scrapes.
    pub scheduled: Option<Scheduled>,
    /// What was already worked out from `fleet` ([`FleetParts::of`]); `None` works it out now.
    pub prepared: Option<Arc<FleetParts>>,
}

/// What a scrape works out from its fleet alone: the aggregate families (without the notes a
/// scrape adds to their HELP) and the instances it exports one by one. A scrape on a schedule
/// reuses those of the collection it reports instead of going over 100,000 phones again.
pub struct FleetParts {
    aggregates: Vec<MetricFamily>,
    instances: Option<Arc<Fleet>>,
}

impl FleetParts {
    /// The parts of `fleet` under `config`, with backup ages measured at `now` (Unix seconds).
    pub fn of(fleet: &Arc<Fleet>, config: &ExpositionConfig, now: i64) -> FleetParts {
        let mut aggregates = Vec::new();
        let groups = fleet.aggregate();
        let folded = folded_groups(&groups, config.max_groups);
        aggregates.push(family(
            "clouddevice_exporter_folded_groups",
            "Region and SKU pairs past --collector.max-groups in this scrape, counted together under region=\"other\",sku=\"other\".",
            vec![gauge(&[], folded.len() as f64)],
        ));
        // Without labels, so that an empty list is a 0 an alert can compare, where the
        // labelled families have no series at all.
        aggregates.push(family(
            "clouddevice_fleet_instances",
            "Number of instances in the whole list, every region and SKU together; 0 when the list is empty.",
            vec![gauge(&[], fleet.len() as f64)],
        ));
        aggregate_families(fold(groups, &folded, Counts::absorb), &mut aggregates);
        backup_age_families(fleet, config, now, &folded, &mut aggregates);
        let instances = match config.instance_metrics {
            InstanceMetrics::None => None,
            InstanceMetrics::All => Some(fleet.clone()),
            InstanceMetrics::Problems => Some(Arc::new(fleet.only(|i| i.in_trouble()))),
        };
        FleetParts {
            aggregates,
            instances,
        }
    }
}

/// The scheduled collection a scrape reports.
#[derive(Debug, Clone, Copy)]
pub struct Scheduled {
    pub interval: std::time::Duration,
    /// How old the data is: since the collection whose fleet the scrape serves ended (fresh or
    /// stale), else since the last successful one; `None` before one has succeeded.
    pub age: Option<std::time::Duration>,
    /// How long the latest collection took.
    pub duration_seconds: Option<f64>,
    /// The collection reported was made with the account's settings before a reload.
    pub before_reload: bool,
}

impl Scrape {
    /// A scrape that read the whole of `fleet` in 0.25 s of its 10 s, at a fixed time
    /// (2027-01-15): the one the tests and benchmarks render.
    #[doc(hidden)]
    pub fn whole(fleet: Arc<Fleet>, config: ExpositionConfig) -> Scrape {
        Scrape {
            up: true,
            stale_for: None,
            fleet: Some(fleet),
            duration_seconds: 0.25,
            timeout_seconds: 10.0,
            config,
            families: Families::ALL,
            now: 1_800_000_000,
            cached_for: None,
            last_success: None,
            scheduled: None,
            prepared: None,
        }
    }
}

/// Builds the families of one scrape. Without a fleet, only `clouddevice_up 0` and the duration:
/// no instance data at all, since partial counts would fire false alerts. A stale fleet is whole,
/// just old, and says so.
fn scrape_families(scrape: &Scrape, parts: Option<&FleetParts>) -> Vec<MetricFamily> {
    let up_help = match scrape.scheduled {
        None => "Whether this scrape read every page of the instance list (1) or not (0).",
        Some(_) => "Whether the latest scheduled collection (--collection.interval) read every page of the instance list (1) or not (0).",
    };
    let mut families = vec![
        family(
            "clouddevice_up",
            up_help,
            vec![gauge(&[], if scrape.up { 1.0 } else { 0.0 })],
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
    if let Some(scheduled) = &scrape.scheduled {
        if let Some(age) = scheduled.age {
            families.push(family(
                "clouddevice_collection_age_seconds",
                "Age of the data: time since the scheduled collection (--collection.interval) whose fleet this scrape serves ended, or, when it serves none, since the last one that succeeded.",
                vec![gauge(&[], age.as_secs_f64())],
            ));
        }
        if let Some(seconds) = scheduled.duration_seconds {
            families.push(family(
                "clouddevice_collection_duration_seconds",
                "Time the latest scheduled collection spent reading the instance list.",
                vec![gauge(&[], seconds)],
            ));
        }
    }
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
    if let Some(parts) = parts.filter(|_| scrape.families.aggregates) {
        let start = families.len();
        families.extend(parts.aggregates.iter().cloned());
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
    let scheduled = scrape.scheduled.map(|s| {
        let reload = match s.before_reload {
            true => " Read with the account's settings before the last reload: the first collection with the new ones is under way.",
            false => "",
        };
        format!(
            "Read by a collection every {}s (--collection.interval), not by this scrape: clouddevice_collection_age_seconds says how long ago.{reload}",
            s.interval.as_secs_f64()
        )
    });
    let stale = scrape.stale_for.map(|age| {
        let failed = match scrape.scheduled {
            Some(_) => "The latest collection failed",
            None => "This scrape failed",
        };
        format!(
            "{failed}: served from the last successful collection, {}s old (--scrape.serve-stale-for).",
            age.as_secs()
        )
    });
    match (scheduled, stale) {
        (Some(scheduled), Some(stale)) => Some(format!("{scheduled} {stale}")),
        (scheduled, stale) => scheduled.or(stale).or_else(|| {
            scrape.cached_for.map(|window| {
                format!(
                    "May come from a collection up to {}s old (--scrape.min-interval).",
                    window.as_secs_f64()
                )
            })
        }),
    }
}

/// The body of a scrape: its own families, the per-instance series when they are on, and
/// `own` (the exporter's self-metrics), in name order.
pub fn render(
    scrape: &Scrape,
    own: Vec<MetricFamily>,
    format: Format,
) -> Result<Exposition, prometheus::Error> {
    let wanted = scrape.families.aggregates || scrape.families.instances;
    let parts = match (&scrape.prepared, &scrape.fleet) {
        (Some(parts), Some(_)) => Some(parts.clone()),
        (None, Some(fleet)) if wanted => {
            Some(Arc::new(FleetParts::of(fleet, &scrape.config, scrape.now)))
        }
        _ => None,
    };
    let mut families = scrape_families(scrape, parts.as_deref());
    if scrape.families.exporter {
        families.extend(own);
    }
    let instances = parts
        .as_ref()
        .filter(|_| scrape.families.instances)
        .and_then(|p| p.instances.clone());
    let note = (instances.is_some() && scrape.config.instance_metrics == InstanceMetrics::Problems)
        .then_some(PROBLEMS_NOTE);
    let notes: Vec<String> = note
        .map(str::to_string)
        .into_iter()
        .chain(cache_note(scrape))
        .collect();
    let suffix = (!notes.is_empty()).then(|| notes.join(" "));
    Exposition::new(
        families,
        instances,
        suffix.as_deref(),
        scrape.config.instance_name,
        format,
    )
}

/// The groups to fold when there are more than `max`: all but the `max - 1` largest (ties by
/// label order), so that with the `other` group there are `max` at most. The largest are kept:
/// they hold most of the fleet, and a group's size changes little from scrape to scrape.
fn folded_groups<'a>(
    groups: &BTreeMap<(&'a str, &'a str), Counts>,
    max: usize,
) -> BTreeSet<(&'a str, &'a str)> {
    if groups.len() <= max {
        return BTreeSet::new();
    }
    let mut by_size: Vec<(&(&str, &str), u64)> = groups.iter().map(|(k, c)| (k, c.total)).collect();
    by_size.sort_by_key(|(_, total)| std::cmp::Reverse(*total));
    by_size
        .into_iter()
        .skip(max.saturating_sub(1))
        .map(|(k, _)| *k)
        .collect()
}

/// `groups` with those in `folded` merged into one (`other`, `other`).
fn fold<'a, T: Default>(
    mut groups: BTreeMap<(&'a str, &'a str), T>,
    folded: &BTreeSet<(&'a str, &'a str)>,
    merge: fn(&mut T, &T),
) -> BTreeMap<(&'a str, &'a str), T> {
    if folded.is_empty() {
        return groups;
    }
    let mut other = T::default();
    for key in folded {
        if let Some(group) = groups.remove(key) {
            merge(&mut other, &group);
        }
    }
    // A real group named other/other is counted with the folded ones.
    if let Some(group) = groups.remove(&(OTHER_GROUP, OTHER_GROUP)) {
        merge(&mut other, &group);
    }
    groups.insert((OTHER_GROUP, OTHER_GROUP), other);
    groups
}

fn aggregate_families(groups: BTreeMap<(&str, &str), Counts>, out: &mut Vec<MetricFamily>) {
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
            // At 0 too, like every status, so its series never appears from nothing.
            let undocumented = counts.undocumented(dim);
            let labels = [("region", *region), ("sku", *sku), ("status", UNDOCUMENTED)];
            metrics.push(gauge(&labels, undocumented as f64));
        }
        out.push(family(
            &format!("clouddevice_instances_by_{}_status", dim.name()),
            &format!(
                "Number of instances by {} status, codes {}; a code the API reference does not document, or none, counts as undocumented.",
                dim.name(),
                dim.legend()
            ),
            metrics,
        ));
    }
}

/// How old the last backups are, per region and SKU, without per-instance series: staleness can
/// be alerted on in every mode.
fn backup_age_families(
    fleet: &Fleet,
    config: &ExpositionConfig,
    now: i64,
    folded: &BTreeSet<(&str, &str)>,
    out: &mut Vec<MetricFamily>,
) {
    let bounds = &config.backup_age_buckets;
    let groups = fold(fleet.backup_ages(now, bounds), folded, BackupAges::absorb);
    let mut buckets = Vec::new();
    let mut without = Vec::new();
    for ((region, sku), ages) in &groups {
        let bound_texts = bounds.iter().map(u64::to_string);
        let counts = ages.at_most.iter().copied();
        for (bound, n) in bound_texts
            .chain(["+Inf".to_string()])
            .zip(counts.chain([ages.with_time]))
        {
            let labels = [
                ("max_age_seconds", bound.as_str()),
                ("region", *region),
                ("sku", *sku),
            ];
            buckets.push(gauge(&labels, n as f64));
        }
        let labels = [("region", *region), ("sku", *sku)];
        without.push(gauge(&labels, ages.without_time as f64));
    }
    out.push(family(
        "clouddevice_instances_by_backup_age",
        "Number of instances whose last backup is at most max_age_seconds old, by region and SKU, cumulative like histogram buckets; max_age_seconds=\"+Inf\" counts every instance with a backup time, and a time in the future counts as age 0.",
        buckets,
    ));
    out.push(family(
        "clouddevice_instances_without_backup_time",
        "Number of instances without a readable backup_time, by region and SKU.",
        without,
    ));
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
    Ok(render(scrape, Vec::new(), Format::Text)?.into_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{Identity, Instance};

    fn fleet(instances: Vec<Instance>) -> Fleet {
        Fleet::from_pages([instances]).0
    }

    fn render(fleet: Option<&Fleet>, instance_metrics: InstanceMetrics) -> String {
        render_with_groups(fleet, instance_metrics, 1_000)
    }

    fn render_with_groups(
        fleet: Option<&Fleet>,
        instance_metrics: InstanceMetrics,
        max_groups: usize,
    ) -> String {
        let config = ExpositionConfig {
            instance_metrics,
            instance_name: InstanceName::Everywhere,
            backup_age_buckets: Arc::from([86_400u64]),
            max_groups,
        };
        render_text(&Scrape {
            up: fleet.is_some(),
            fleet: fleet.map(|f| Arc::new(f.clone())),
            ..Scrape::whole(Arc::default(), config)
        })
        .unwrap()
    }

    #[test]
    fn an_empty_list_is_a_fleet_of_zero_and_a_failed_one_is_no_fleet_at_all() {
        let empty = render(Some(&fleet(vec![])), InstanceMetrics::All);
        assert!(
            empty.contains("\nclouddevice_fleet_instances 0\n"),
            "{empty}"
        );
        assert!(!empty.contains("clouddevice_instances{"), "{empty}");
        let two = fleet(vec![Instance::default(), Instance::default()]);
        let text = render(Some(&two), InstanceMetrics::None);
        assert!(text.contains("\nclouddevice_fleet_instances 2\n"), "{text}");
        // A scrape that could not read the list says nothing of the fleet's size.
        let failed = render(None, InstanceMetrics::All);
        assert!(!failed.contains("clouddevice_fleet_instances"), "{failed}");
    }

    #[test]
    fn groups_past_the_cap_are_counted_together_and_none_is_lost() {
        // Region r0 has 4 instances, r1 3, r2 2, r3 and r4 one each; one of r4's is frozen.
        let mut instances = Vec::new();
        for (region, n) in [("r0", 4), ("r1", 3), ("r2", 2), ("r3", 1), ("r4", 1)] {
            for i in 0..n {
                instances.push(Instance {
                    region: region.into(),
                    sku: "s".into(),
                    status: [
                        Some(2),
                        Some(i64::from(region == "r4")),
                        None,
                        None,
                        None,
                        None,
                    ],
                    backup_time: (region == "r3").then_some(1_800_000_000 - 60),
                    identity: Identity::new(&format!("{region}-{i}"), "", ""),
                    ..Instance::default()
                });
            }
        }
        let f = fleet(instances);
        let text = render_with_groups(Some(&f), InstanceMetrics::None, 3);
        for line in [
            r#"clouddevice_instances{region="r0",sku="s"} 4"#,
            r#"clouddevice_instances{region="r1",sku="s"} 3"#,
            r#"clouddevice_instances{region="other",sku="other"} 4"#,
            r#"clouddevice_instances_by_frozen_status{region="other",sku="other",status="frozen"} 1"#,
            r#"clouddevice_instances_by_backup_age{max_age_seconds="+Inf",region="other",sku="other"} 1"#,
            r#"clouddevice_instances_without_backup_time{region="other",sku="other"} 3"#,
            "clouddevice_exporter_folded_groups 3",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
        assert!(!text.contains(r#"region="r2""#), "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("clouddevice_instances{"))
                .count(),
            3,
            "at most --collector.max-groups groups"
        );
        let all = render_with_groups(Some(&f), InstanceMetrics::None, 5);
        assert!(all.contains("clouddevice_exporter_folded_groups 0"));
        assert!(!all.contains(r#"{region="other""#), "{all}");
    }

    #[test]
    fn a_failed_scrape_exports_up_zero_and_no_instance_data() {
        assert_eq!(
            render(None, InstanceMetrics::All),
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
        let text = render(Some(&f), InstanceMetrics::All);
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
        let text = render(Some(&f), InstanceMetrics::All);
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
    fn problems_mode_exports_only_instances_in_trouble_and_complete_aggregates() {
        let healthy = [Some(2), Some(0), Some(1), Some(1), Some(2), Some(2)];
        let instance = |id: &str, frozen: i64| {
            let mut status = healthy;
            status[1] = Some(frozen);
            Instance {
                region: "r".into(),
                sku: "s".into(),
                status,
                identity: Identity::new(id, id, ""),
                ..Instance::default()
            }
        };
        let f = fleet(vec![
            instance("ok", 0),
            instance("frozen", 1),
            instance("ok2", 0),
        ]);
        let text = render(Some(&f), InstanceMetrics::Problems);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("clouddevice_instance_info{"))
                .count(),
            1,
            "{text}"
        );
        assert!(text.contains(r#"instance_id="frozen""#));
        assert!(!text.contains(r#"instance_id="ok""#));
        assert!(text.contains(PROBLEMS_NOTE), "the HELP texts say so");
        assert!(text.contains(r#"clouddevice_instances{region="r",sku="s"} 3"#));
        assert!(text.contains(
            r#"clouddevice_instances_by_frozen_status{region="r",sku="s",status="frozen"} 1"#
        ));
        // With no instance in trouble, no per-instance family at all.
        let calm = fleet(vec![instance("ok", 0)]);
        assert!(!render(Some(&calm), InstanceMetrics::Problems).contains("clouddevice_instance_"));
    }

    #[test]
    fn backup_ages_are_buckets_per_region_and_sku() {
        let f = fleet(vec![
            Instance {
                region: "r".into(),
                sku: "s".into(),
                backup_time: Some(1_800_000_000 - 3600),
                identity: Identity::new("a", "", ""),
                ..Instance::default()
            },
            Instance {
                region: "r".into(),
                sku: "s".into(),
                backup_time: Some(1_800_000_000 - 2 * 86_400),
                identity: Identity::new("b", "", ""),
                ..Instance::default()
            },
            Instance {
                region: "r".into(),
                sku: "s".into(),
                identity: Identity::new("c", "", ""),
                ..Instance::default()
            },
        ]);
        let text = render(Some(&f), InstanceMetrics::None);
        for line in [
            r#"clouddevice_instances_by_backup_age{max_age_seconds="86400",region="r",sku="s"} 1"#,
            r#"clouddevice_instances_by_backup_age{max_age_seconds="+Inf",region="r",sku="s"} 2"#,
            r#"clouddevice_instances_without_backup_time{region="r",sku="s"} 1"#,
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
    }

    #[test]
    fn collect_names_choose_families_and_an_unknown_one_is_named() {
        assert_eq!(Families::from_names([]), Ok(Families::ALL));
        assert_eq!(
            Families::from_names(["aggregates", "exporter"]),
            Ok(Families {
                aggregates: true,
                instances: false,
                exporter: true
            })
        );
        let error = Families::from_names(["instances", "everything"]).unwrap_err();
        assert!(error.contains("\"everything\""), "{error}");
    }

    #[test]
    fn instance_metrics_off_leaves_only_aggregates() {
        let f = fleet(vec![Instance {
            status: [Some(1); 6],
            identity: Identity::new("a", "", ""),
            ..Instance::default()
        }]);
        let text = render(Some(&f), InstanceMetrics::None);
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
        let text = render(Some(&f), InstanceMetrics::None);
        for dim in Dimension::ALL {
            for status in dim.statuses() {
                let line = format!(
                    "clouddevice_instances_by_{}_status{{region=\"r\",sku=\"s\",status=\"{status}\"}} ",
                    dim.name()
                );
                assert!(text.contains(&line), "missing {line}");
            }
        }
        assert!(text.contains(r#"status="undocumented"} 0"#));
    }
}
