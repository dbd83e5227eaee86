//! The simulated fleet: generated from a seed and a size, with the awkward cases real fleets have.

use time::format_description::BorrowedFormatItem;

/// How the API writes times: `2024-05-24 17:34:58`.
pub const TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
use serde::Serialize;

/// One generated instance, with every field the reference lists (the personal ones too).
#[derive(Debug, Clone, Serialize)]
pub struct SimInstance {
    pub instance_id: String,
    pub instance_name: String,
    pub region: String,
    pub instance_sku: String,
    pub frozen_status: i64,
    pub running_status: i64,
    pub login_status: i64,
    pub assign_status: i64,
    pub assign_user: String,
    pub billing_mode: String,
    pub project_id: String,
    pub project_name: String,
    pub phone_id: String,
    pub member_name: String,
    pub account_name: String,
    pub region_name: String,
    pub region_name_en: String,
    pub backup_status: i64,
    pub backup_time: String,
    pub restore_status: i64,
    pub restore_time: String,
    #[serde(skip)]
    pub pool_scene_tag: &'static str,
}

const REGIONS: [(&str, &str); 4] = [
    ("cn-north-4", "CN North-Beijing4"),
    ("cn-north-7", "CN North-Ulanqab-2003"),
    ("cn-east-3", "CN East-Shanghai1"),
    ("cn-south-1", "CN South-Guangzhou"),
];

const SKUS: [&str; 3] = [
    "Professional edition | 8 vCPUs | 16 GB | 10 GB storage | Maximum resolution: 720p",
    "Standard edition | 4 vCPUs | 8 GB | 8 GB storage | Maximum resolution: 720p",
    "Enterprise edition | 16 vCPUs | 32 GB | 64 GB storage | Maximum resolution: 1080p",
];

/// Names real tenants have given their phones, which the exposition must escape correctly.
const AWKWARD_NAMES: [&str; 5] = [
    "say \"cheese\"",
    "C:\\phones\\01",
    "two\nlines",
    "云手机-测试",
    "émoji 📱 ok",
];

/// Picks an index by weight.
fn weighted(rng: &mut fastrand::Rng, weights: &[u32]) -> usize {
    let mut n = rng.u32(0..weights.iter().sum::<u32>());
    for (i, w) in weights.iter().enumerate() {
        if n < *w {
            return i;
        }
        n -= w;
    }
    weights.len() - 1
}

impl SimInstance {
    /// This instance with its backup and restore times (generated in UTC) written in `zone`.
    pub fn in_zone(&self, zone: time::UtcOffset) -> SimInstance {
        let shift = |text: &str| {
            time::PrimitiveDateTime::parse(text, TIME_FORMAT)
                .ok()
                .and_then(|t| t.assume_utc().to_offset(zone).format(TIME_FORMAT).ok())
                .unwrap_or_else(|| text.to_string())
        };
        SimInstance {
            backup_time: shift(&self.backup_time),
            restore_time: shift(&self.restore_time),
            ..self.clone()
        }
    }
}

/// The fleet of a seed and a size: the same inputs give the same fleet, byte for byte.
/// A few instances on purpose carry what real fleets have: awkward names, undocumented status
/// codes, `"null"` strings and empty times.
pub fn generate_fleet(seed: u64, size: usize, now: i64) -> Vec<SimInstance> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let stamp = |rng: &mut fastrand::Rng| -> String {
        match rng.u32(0..100) {
            0..=3 => String::new(),
            4..=5 => "null".into(),
            _ => time::OffsetDateTime::from_unix_timestamp(now - rng.i64(0..30 * 86_400))
                .ok()
                .and_then(|t| t.format(TIME_FORMAT).ok())
                .unwrap_or_default(),
        }
    };
    (0..size)
        .map(|i| {
            let id: String = std::iter::repeat_with(|| rng.alphanumeric())
                .take(8)
                .collect();
            let (region, region_name) = REGIONS[weighted(&mut rng, &[4, 3, 2, 1])];
            let sku = SKUS[weighted(&mut rng, &[5, 3, 2])];
            let running_status = if i % 31 == 13 {
                9 // a code the reference does not document
            } else {
                [2, 1, 5, 4, 3, 0][weighted(&mut rng, &[70, 10, 8, 5, 4, 3])]
            };
            let project = rng.u32(0..3);
            SimInstance {
                instance_name: if i % 11 == 7 {
                    AWKWARD_NAMES[(i / 11) % AWKWARD_NAMES.len()].to_string()
                } else {
                    format!("CCTEST-{:05}", i + 1)
                },
                region: region.into(),
                instance_sku: sku.into(),
                frozen_status: i64::from(rng.u32(0..100) < 4),
                login_status: i64::from(running_status == 2 && rng.u32(0..100) < 55),
                assign_status: i64::from(rng.u32(0..100) < 80),
                assign_user: format!("10086{:014}", rng.u64(0..100_000_000_000_000)),
                billing_mode: ["0", "1"][weighted(&mut rng, &[1, 3])].into(),
                project_id: format!(
                    "{:032x}",
                    u128::from(project) * 0x1f2e3d4c5b6a7988 + 0x9d71ec45
                ),
                project_name: format!("project-{project}"),
                phone_id: if rng.u32(0..10) == 0 {
                    "null".into()
                } else {
                    format!("{:016x}", rng.u64(..))
                },
                member_name: format!("member-{}", rng.u32(0..1000)),
                account_name: format!("user{}@example.com", rng.u32(0..1000)),
                region_name: region_name.into(),
                region_name_en: region_name.into(),
                backup_status: if i % 37 == 20 {
                    7 // undocumented too
                } else {
                    [2, 3, 0, 1, 4][weighted(&mut rng, &[80, 6, 4, 6, 4])]
                },
                backup_time: stamp(&mut rng),
                restore_status: [2, 3, 0, 1, 4][weighted(&mut rng, &[90, 3, 2, 3, 2])],
                restore_time: stamp(&mut rng),
                pool_scene_tag: ["CLOUD_PHONE", "CLOUD_APP"][weighted(&mut rng, &[85, 15])],
                running_status,
                instance_id: id,
            }
        })
        .collect()
}

/// The fleet with exactly the trouble `percent` asks for, chosen at random from `seed`: each
/// instance is, with that probability, frozen, or its last backup or restore failed, or it carries
/// an undocumented running status; every other instance is made healthy. (The default fleet's
/// mixture puts about one instance in six in trouble, far more than a real fleet.)
pub fn with_trouble(mut fleet: Vec<SimInstance>, percent: f64, seed: u64) -> Vec<SimInstance> {
    const FAILED: i64 = 3;
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x7e0b_1e5e_ed00_0001);
    for instance in &mut fleet {
        instance.frozen_status = 0;
        if instance.running_status > 5 {
            instance.running_status = 2;
        }
        if instance.backup_status == FAILED || instance.backup_status > 4 {
            instance.backup_status = 2;
        }
        if instance.restore_status == FAILED {
            instance.restore_status = 2;
        }
        if rng.f64() * 100.0 < percent {
            match weighted(&mut rng, &[50, 30, 10, 10]) {
                0 => instance.frozen_status = 1,
                1 => instance.backup_status = FAILED,
                2 => instance.restore_status = FAILED,
                _ => instance.running_status = 9,
            }
        }
    }
    fleet
}

/// How many epochs one change lasts in a moving fleet.
const EPISODE: u64 = 5;

/// A number drawn from `seed`, an instance and a time, the same for the same inputs.
fn draw(seed: u64, instance: usize, time: u64) -> u64 {
    fastrand::Rng::with_seed(
        seed ^ (instance as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ time.wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
    )
    .u64(..)
}

/// The fleet as it stands in `epoch` of a moving simulator (`--change-every`): from `base`,
/// each instance in turn, deterministically from `seed`, is gone for a while (1 %), or frozen or
/// unfrozen (1.5 %), or its backup fails or recovers (2 %), or it is stopped or started (3 %), or
/// its user logs in or out (5 %). A change lasts five epochs, and instances change at staggered
/// epochs, so graphs move a little every epoch.
pub fn evolve(base: &[SimInstance], seed: u64, epoch: u64) -> Vec<SimInstance> {
    const FAILED: i64 = 3;
    base.iter()
        .enumerate()
        .filter_map(|(n, instance)| {
            let stagger = draw(seed, n, u64::MAX) % EPISODE;
            let episode = (epoch + stagger) / EPISODE;
            let mut i = instance.clone();
            match draw(seed, n, episode) % 1000 {
                0..=9 => return None,
                10..=24 => i.frozen_status = i64::from(i.frozen_status != 1),
                25..=44 => i.backup_status = if i.backup_status == FAILED { 2 } else { FAILED },
                45..=74 => i.running_status = if i.running_status == 2 { 1 } else { 2 },
                75..=124 => i.login_status = i64::from(i.login_status != 1),
                _ => {}
            }
            Some(i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_fleet() {
        let a = serde_json::to_string(&generate_fleet(7, 50, 1_700_000_000)).unwrap();
        let b = serde_json::to_string(&generate_fleet(7, 50, 1_700_000_000)).unwrap();
        let c = serde_json::to_string(&generate_fleet(8, 50, 1_700_000_000)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_fleet_carries_the_awkward_cases() {
        let fleet = generate_fleet(1, 200, 1_700_000_000);
        assert!(fleet.iter().any(|i| i.running_status == 9));
        assert!(fleet.iter().any(|i| i.instance_name.contains('"')));
        assert!(fleet.iter().any(|i| i.instance_name.contains('\n')));
        assert!(fleet.iter().any(|i| i.phone_id == "null"));
        assert!(fleet.iter().any(|i| i.backup_time.is_empty()));
        assert!(fleet.iter().any(|i| i.frozen_status == 1));
        assert!(fleet.iter().any(|i| i.backup_status == 3));
    }

    #[test]
    fn a_moving_fleet_changes_a_little_each_epoch_and_the_same_way_each_time() {
        use std::collections::HashMap;
        let base = generate_fleet(1, 5_000, 1_700_000_000);
        let by_id = |f: &[SimInstance]| -> HashMap<String, String> {
            f.iter()
                .map(|i| (i.instance_id.clone(), serde_json::to_string(i).unwrap()))
                .collect()
        };
        let b = by_id(&base);
        let e7 = by_id(&evolve(&base, 1, 7));
        assert_eq!(
            e7,
            by_id(&evolve(&base, 1, 7)),
            "the same epoch, the same fleet"
        );
        let e8 = by_id(&evolve(&base, 1, 8));
        assert_ne!(e7, e8, "something moves from one epoch to the next");
        assert!(
            e7.keys().all(|id| b.contains_key(id)),
            "no phone from nowhere"
        );
        // 1 % gone (50 expected), 11.5 % changed (575 expected): life, not another fleet.
        let gone = b.len() - e7.len();
        assert!((20..=90).contains(&gone), "{gone} gone");
        let changed: Vec<&String> = e7
            .iter()
            .filter(|(id, row)| b[*id] != **row)
            .map(|(id, _)| id)
            .collect();
        assert!(
            (450..=700).contains(&changed.len()),
            "{} changed",
            changed.len()
        );
        // A change lasts five epochs: most of epoch 7's changes are still there at 8.
        let kept = changed
            .iter()
            .filter(|id| e8.get(**id) == e7.get(**id))
            .count();
        assert!(
            kept * 10 >= changed.len() * 6,
            "{kept} of {} kept",
            changed.len()
        );
    }

    #[test]
    fn with_trouble_puts_that_share_of_the_fleet_in_trouble() {
        let trouble = |i: &SimInstance| {
            i.frozen_status == 1
                || i.backup_status == 3
                || i.restore_status == 3
                || i.running_status > 5
                || i.backup_status > 4
        };
        assert!(
            generate_fleet(1, 20_000, 1_700_000_000)
                .iter()
                .filter(|i| trouble(i))
                .count()
                > 2_000
        );
        let fleet = with_trouble(generate_fleet(1, 20_000, 1_700_000_000), 1.0, 1);
        let n = fleet.iter().filter(|i| trouble(i)).count();
        // 200 expected; the binomial's standard deviation is 14.
        assert!((140..=260).contains(&n), "{n} of 20,000 in trouble");
        assert!(fleet.iter().any(|i| i.frozen_status == 1));
        assert!(fleet.iter().any(|i| i.backup_status == 3));
        assert!(fleet.iter().any(|i| i.restore_status == 3));
        assert!(fleet.iter().any(|i| i.running_status == 9));
        let none = with_trouble(generate_fleet(1, 2_000, 1_700_000_000), 0.0, 1);
        assert!(!none.iter().any(trouble));
    }
}
