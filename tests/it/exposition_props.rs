//! Any fleet, with any text in its labels (quotes, backslashes, newlines, control characters,
//! any script), renders an exposition that Prometheus' own parser accepts (`promtool check
//! metrics`, in a test ignored by default since it needs promtool), in which every status family adds up to the number of instances and every
//! instance with an id has its series.

use crate::common;

use std::sync::Arc;

use clouddevice_exporter::exposition::{
    render_text, ExpositionConfig, InstanceMetrics, InstanceName, Scrape,
};
use clouddevice_exporter::fleet::{Fleet, Identity, Instance};
use common::promtool_accepts;
use proptest::prelude::*;

/// Label text: mostly a few letters, so that ids, regions and SKUs repeat; sometimes anything.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ab]{0,2}",
        1 => r#"[a"\\\n\r\t{}= ,é云\u{0}\u{7f}\u{fffd}]{0,8}"#,
        1 => any::<String>(),
    ]
}

fn code() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![4 => (0i64..6).prop_map(Some), 1 => Just(None), 1 => any::<i64>().prop_map(Some)]
}

fn instance() -> impl Strategy<Value = Instance> {
    (
        (text(), text(), text()),
        (text(), text(), text(), text(), text(), text()),
        proptest::array::uniform6(code()),
        (any::<Option<i64>>(), any::<Option<i64>>()),
    )
        .prop_map(
            |(
                (id, name, phone),
                (region, region_name, sku, pid, pname, billing),
                status,
                times,
            )| {
                Instance {
                    identity: Identity::new(&id, &name, &phone),
                    region: region.into(),
                    region_name: region_name.into(),
                    sku: sku.into(),
                    project_id: pid.into(),
                    project_name: pname.into(),
                    billing_mode: billing.into(),
                    status,
                    backup_time: times.0,
                    restore_time: times.1,
                }
            },
        )
}

/// The sum of the samples of `family` (exactly that name, any labels). A sample's value is
/// after the line's last space: label values may hold spaces, values and names do not.
fn sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

fn count(text: &str, family: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .count()
}

/// The exposition of `pages` as one fleet, with every family.
fn render(pages: Vec<Vec<Instance>>) -> (String, usize, usize) {
    let (fleet, _) = Fleet::from_pages(pages);
    let n = fleet.len();
    let with_id = fleet
        .instances()
        .filter(|i| !i.instance_id().is_empty())
        .count();
    let config = ExpositionConfig {
        instance_metrics: InstanceMetrics::All,
        instance_name: InstanceName::Everywhere,
        backup_age_buckets: std::sync::Arc::from([86_400u64, 604_800]),
        max_groups: 1_000,
    };
    let text = render_text(&Scrape::whole(Arc::new(fleet), config)).unwrap();
    (text, n, with_id)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_fleet_renders_an_exposition_that_adds_up(
        pages in proptest::collection::vec(proptest::collection::vec(instance(), 0..12), 0..4)
    ) {
        let (text, n, with_id) = render(pages);
        prop_assert_eq!(sum(&text, "clouddevice_instances"), n as f64);
        for dim in ["running", "frozen", "login", "assign", "backup", "restore"] {
            let family = format!("clouddevice_instances_by_{dim}_status");
            prop_assert_eq!(sum(&text, &family), n as f64, "{}", family);
        }
        prop_assert_eq!(count(&text, "clouddevice_instance_info"), with_id);
        prop_assert_eq!(sum(&text, "clouddevice_instance_info"), with_id as f64);
    }

    /// Needs promtool (Debian's prometheus package): `.ci/run` installs it and runs the
    /// ignored tests.
    #[test]
    #[ignore = "needs promtool (Debian's prometheus package); .ci/run installs it and runs the ignored tests"]
    fn any_fleet_renders_an_exposition_promtool_accepts(
        pages in proptest::collection::vec(proptest::collection::vec(instance(), 0..12), 0..4)
    ) {
        let (text, _, _) = render(pages);
        prop_assert_eq!(promtool_accepts(&text), Ok(()), "{}", text);
    }
}
