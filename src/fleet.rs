//! The domain model: one snapshot of the tenant's fleet and the status mapping of the reference.
//! Knows nothing of HTTP or of Prometheus; everything here is plain data and pure functions.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

/// The six status dimensions the API reports for every instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Running,
    Frozen,
    Login,
    Assign,
    Backup,
    Restore,
}

/// Label of the bucket that holds codes the reference does not document, and missing codes.
pub const UNDOCUMENTED: &str = "undocumented";

impl Dimension {
    pub const ALL: [Dimension; 6] = [
        Dimension::Running,
        Dimension::Frozen,
        Dimension::Login,
        Dimension::Assign,
        Dimension::Backup,
        Dimension::Restore,
    ];

    /// The documented statuses, indexed by their raw code (the reference numbers them from 0).
    pub fn statuses(self) -> &'static [&'static str] {
        match self {
            Dimension::Running => &[
                "unknown",
                "stopped",
                "running",
                "going_offline",
                "starting",
                "shut_down",
            ],
            Dimension::Frozen => &["normal", "frozen"],
            Dimension::Login => &["not_logged_in", "logged_in"],
            Dimension::Assign => &["unassigned", "assigned"],
            Dimension::Backup | Dimension::Restore => {
                &["preparing", "executing", "successful", "failed", "others"]
            }
        }
    }

    /// The documented codes and what they mean, as HELP texts write them:
    /// `0=unknown 1=stopped 2=running ...`.
    pub fn legend(self) -> String {
        self.statuses()
            .iter()
            .enumerate()
            .map(|(code, status)| format!("{code}={status}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The word that names the dimension in metric names (`clouddevice_instances_by_<name>_status`).
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Running => "running",
            Dimension::Frozen => "frozen",
            Dimension::Login => "login",
            Dimension::Assign => "assign",
            Dimension::Backup => "backup",
            Dimension::Restore => "restore",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The bucket a raw code falls in: its index in [`Dimension::statuses`], or `None` for a code
    /// the reference does not document (or no code at all).
    pub fn bucket(self, code: Option<i64>) -> Option<usize> {
        let code = usize::try_from(code?).ok()?;
        (code < self.statuses().len()).then_some(code)
    }
}

/// One cloud phone as the exporter sees it. Strings are already cleaned of the API's `"null"`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instance {
    pub identity: Identity,
    // Values that repeat across the fleet are shared, not copied per instance.
    pub region: Arc<str>,
    pub region_name: Arc<str>,
    pub sku: Arc<str>,
    pub project_id: Arc<str>,
    pub project_name: Arc<str>,
    pub billing_mode: Arc<str>,
    /// Raw status codes, indexed like [`Dimension::ALL`]; `None` when the API sent none.
    pub status: [Option<i64>; 6],
    /// `backup_time` as Unix seconds, when present and parsable.
    pub backup_time: Option<i64>,
    /// `restore_time` as Unix seconds, when present and parsable.
    pub restore_time: Option<i64>,
}

impl Instance {
    pub fn instance_id(&self) -> &str {
        self.identity.id()
    }

    pub fn instance_name(&self) -> &str {
        self.identity.name()
    }

    pub fn phone_id(&self) -> &str {
        self.identity.phone()
    }

    pub fn status(&self, dim: Dimension) -> Option<i64> {
        self.status[dim.index()]
    }

    /// Whether the instance is in trouble, the rule of `--collector.instance-metrics=problems`:
    /// frozen, a failed backup or restore, or any status code missing or not documented.
    pub fn in_trouble(&self) -> bool {
        const FROZEN: i64 = 1;
        const FAILED: i64 = 3;
        self.status(Dimension::Frozen) == Some(FROZEN)
            || self.status(Dimension::Backup) == Some(FAILED)
            || self.status(Dimension::Restore) == Some(FAILED)
            || Dimension::ALL
                .iter()
                .any(|dim| dim.bucket(self.status(*dim)).is_none())
    }
}

/// `instance_id`, `instance_name` and `phone_id`, kept one after the other in one allocation
/// instead of three; with the id's hash, taken while the id is fresh in the cache, for
/// recognising the instance again across pages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    text: Box<str>,
    id_end: u32,
    name_end: u32,
    id_hash: u64,
}

impl Identity {
    /// The id, the name and the phone id one after the other: what a search of all three at
    /// once looks at.
    pub fn joined(&self) -> &str {
        &self.text
    }

    pub fn new(instance_id: &str, instance_name: &str, phone_id: &str) -> Self {
        // Seeded once per process, at random, like the standard library's maps.
        static SEED: OnceLock<RandomState> = OnceLock::new();
        let len = |s: &str| u32::try_from(s.len()).unwrap_or(u32::MAX);
        Identity {
            text: [instance_id, instance_name, phone_id].concat().into(),
            id_end: len(instance_id),
            name_end: len(instance_id).saturating_add(len(instance_name)),
            id_hash: SEED.get_or_init(RandomState::new).hash_one(instance_id),
        }
    }

    fn id(&self) -> &str {
        self.text.get(..self.id_end as usize).unwrap_or_default()
    }

    fn name(&self) -> &str {
        let (from, to) = (self.id_end as usize, self.name_end as usize);
        self.text.get(from..to).unwrap_or_default()
    }

    fn phone(&self) -> &str {
        self.text.get(self.name_end as usize..).unwrap_or_default()
    }
}

/// An instance's id in the set of ids seen, hashed by the hash it already carries.
struct SeenId<'a>(&'a Identity);

impl Hash for SeenId<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.id_hash);
    }
}

impl PartialEq for SeenId<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.id_hash == other.0.id_hash && self.0.id() == other.0.id()
    }
}

impl Eq for SeenId<'_> {}

/// Passes on a hash already taken (see [`SeenId`]).
#[derive(Default)]
struct TakenHash(u64);

impl Hasher for TakenHash {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The instances of one complete read of the list, each counted once.
#[derive(Debug, Default, Clone)]
pub struct Fleet {
    /// The instances, page by page as they were read: keeping the pages' own vectors saves
    /// moving every instance into one big vector (and holding both at once).
    pages: Vec<Vec<Instance>>,
    len: usize,
}

impl Fleet {
    /// The fleet of these pages, in order, each instance counted once: where an id shows up
    /// again, the first sighting is kept. Instances without an id cannot be recognised again,
    /// so each one counts. Returns the fleet and how many repeats were left out.
    pub fn from_pages(pages: impl IntoIterator<Item = Vec<Instance>>) -> (Fleet, usize) {
        let mut pages: Vec<Vec<Instance>> = pages.into_iter().collect();
        // (page, row) of each repeat. The set borrows the ids rather than copying 100,000 of
        // them, so it lives only for this pass.
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        {
            let mut seen: HashSet<SeenId<'_>, BuildHasherDefault<TakenHash>> =
                HashSet::with_capacity_and_hasher(
                    pages.iter().map(Vec::len).sum(),
                    BuildHasherDefault::default(),
                );
            for (p, page) in pages.iter().enumerate() {
                for (r, instance) in page.iter().enumerate() {
                    let id = &instance.identity;
                    if !id.id().is_empty() && !seen.insert(SeenId(id)) {
                        repeats.push((p, r));
                    }
                }
            }
        }
        if !repeats.is_empty() {
            for (p, page) in pages.iter_mut().enumerate() {
                let mut r = 0;
                page.retain(|_| {
                    r += 1;
                    repeats.binary_search(&(p, r - 1)).is_err()
                });
            }
        }
        pages.retain(|p| !p.is_empty());
        let len = pages.iter().map(Vec::len).sum();
        (Fleet { pages, len }, repeats.len())
    }

    /// The instances for which `keep` holds, in the order read.
    pub fn only(&self, keep: impl Fn(&Instance) -> bool) -> Fleet {
        let kept: Vec<Instance> = self.instances().filter(|i| keep(i)).cloned().collect();
        let len = kept.len();
        let pages = if kept.is_empty() {
            Vec::new()
        } else {
            vec![kept]
        };
        Fleet { pages, len }
    }

    /// Every instance, in the order read.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> + Clone {
        self.pages.iter().flatten()
    }

    /// The instances as the pages that hold them.
    pub fn pages(&self) -> &[Vec<Instance>] {
        &self.pages
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Per (region, sku), in label order: how many instances' last backups are at most each of
    /// `bounds` seconds old at Unix time `now`, cumulative like a histogram's buckets.
    pub fn backup_ages(&self, now: i64, bounds: &[u64]) -> BTreeMap<(&str, &str), BackupAges> {
        let mut groups: BTreeMap<(&str, &str), BackupAges> = BTreeMap::new();
        for instance in self.instances() {
            let ages = groups
                .entry((&*instance.region, &*instance.sku))
                .or_insert_with(|| BackupAges {
                    at_most: vec![0; bounds.len()],
                    ..BackupAges::default()
                });
            let Some(at) = instance.backup_time else {
                ages.without_time += 1;
                continue;
            };
            ages.with_time += 1;
            let age = u64::try_from(now.saturating_sub(at)).unwrap_or(0);
            for (n, bound) in ages.at_most.iter_mut().zip(bounds) {
                if age <= *bound {
                    *n += 1;
                }
            }
        }
        groups
    }

    /// Counts per (region, sku), in label order, so the exposition is stable from scrape to scrape.
    pub fn aggregate(&self) -> BTreeMap<(&str, &str), Counts> {
        let mut groups: BTreeMap<(&str, &str), Counts> = BTreeMap::new();
        for instance in self.instances() {
            groups
                .entry((&*instance.region, &*instance.sku))
                .or_default()
                .add(instance);
        }
        groups
    }
}

/// The counts of one (region, sku) group.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    /// Per dimension: one slot per documented status, then the undocumented bucket last.
    by_status: [[u64; MAX_STATUSES + 1]; 6],
}

/// How old the last backups of a group of instances are (see [`Fleet::backup_ages`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupAges {
    /// Per bound, in the order given: instances whose last backup is at most that old (a
    /// backup time in the future counts as age 0).
    pub at_most: Vec<u64>,
    /// Instances with a backup time at all: the `+Inf` bucket.
    pub with_time: u64,
    /// Instances without a (readable) backup time.
    pub without_time: u64,
}

impl BackupAges {
    /// Adds another group's ages to these (with the same bounds).
    pub fn absorb(&mut self, other: &BackupAges) {
        if self.at_most.len() < other.at_most.len() {
            self.at_most.resize(other.at_most.len(), 0);
        }
        for (mine, theirs) in self.at_most.iter_mut().zip(&other.at_most) {
            *mine += theirs;
        }
        self.with_time += other.with_time;
        self.without_time += other.without_time;
    }
}

/// The most documented statuses any dimension has (running status has six).
const MAX_STATUSES: usize = 6;

impl Counts {
    /// Adds another group's counts to these.
    pub fn absorb(&mut self, other: &Counts) {
        self.total += other.total;
        for (mine, theirs) in self.by_status.iter_mut().zip(&other.by_status) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
    }

    fn add(&mut self, instance: &Instance) {
        self.total += 1;
        for dim in Dimension::ALL {
            let slot = dim.bucket(instance.status(dim)).unwrap_or(MAX_STATUSES);
            self.by_status[dim.index()][slot] += 1;
        }
    }

    /// The count of each documented status of `dim`, in code order, zeros included.
    pub fn documented(&self, dim: Dimension) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        dim.statuses()
            .iter()
            .zip(self.by_status[dim.index()])
            .map(|(name, n)| (*name, n))
    }

    /// How many instances had a code the reference does not document for `dim`.
    pub fn undocumented(&self, dim: Dimension) -> u64 {
        self.by_status[dim.index()][MAX_STATUSES]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_ages_count_cumulatively_against_hand_computed_values() {
        const DAY: i64 = 86_400;
        let now = 1_800_000_000;
        let at = |ago: Option<i64>, sku: &str| Instance {
            region: "r".into(),
            sku: sku.into(),
            backup_time: ago.map(|a| now - a),
            identity: Identity::new(&format!("{ago:?}{sku}"), "", ""),
            ..Instance::default()
        };
        let fleet = Fleet::from_pages([vec![
            at(Some(3600), "a"),     // 1 hour
            at(Some(2 * DAY), "a"),  // 2 days
            at(Some(3 * DAY), "a"),  // exactly 3 days: in the 3d bucket
            at(Some(10 * DAY), "a"), // 10 days
            at(Some(40 * DAY), "a"), // 40 days: only in +Inf
            at(Some(-5 * DAY), "a"), // in the future: age 0
            at(None, "a"),           // no backup time
            at(Some(DAY + 1), "b"),  // just over a day, another SKU
        ]])
        .0;
        let bounds = [DAY as u64, 3 * DAY as u64, 7 * DAY as u64, 30 * DAY as u64];
        let ages = fleet.backup_ages(now, &bounds);
        // Per SKU: the count at most each bound old, then with a backup time, then without.
        let of = |sku| {
            let a = &ages[&("r", sku)];
            (a.at_most.as_slice(), a.with_time, a.without_time)
        };
        assert_eq!(of("a"), (&[2, 4, 4, 5][..], 6, 1));
        assert_eq!(of("b"), (&[0, 1, 1, 1][..], 1, 0));
    }

    #[test]
    fn the_problems_rule_exactly() {
        let healthy = [Some(2), Some(0), Some(1), Some(1), Some(2), Some(2)];
        let with = |dim: Dimension, code: Option<i64>| {
            let mut status = healthy;
            status[dim.index()] = code;
            Instance {
                status,
                ..Instance::default()
            }
        };
        assert!(!with(Dimension::Running, Some(2)).in_trouble(), "healthy");
        assert!(with(Dimension::Frozen, Some(1)).in_trouble(), "frozen");
        assert!(
            with(Dimension::Backup, Some(3)).in_trouble(),
            "failed backup"
        );
        assert!(
            with(Dimension::Restore, Some(3)).in_trouble(),
            "failed restore"
        );
        assert!(
            with(Dimension::Running, Some(9)).in_trouble(),
            "undocumented"
        );
        assert!(with(Dimension::Login, None).in_trouble(), "missing");
        assert!(with(Dimension::Assign, Some(-1)).in_trouble(), "negative");
        // Documented, not failed: stopped, logged out, unassigned, backup in progress.
        for (dim, code) in [
            (Dimension::Running, 1),
            (Dimension::Login, 0),
            (Dimension::Assign, 0),
            (Dimension::Backup, 1),
            (Dimension::Restore, 4),
        ] {
            assert!(!with(dim, Some(code)).in_trouble(), "{dim:?} {code}");
        }
    }

    fn instance(id: &str, region: &str, status: [Option<i64>; 6]) -> Instance {
        Instance {
            region: region.into(),
            sku: "s".into(),
            status,
            identity: Identity::new(id, "", ""),
            ..Instance::default()
        }
    }

    #[test]
    fn every_documented_code_maps_to_its_contract_name() {
        let running: Vec<_> = (0..6)
            .map(|c| Dimension::Running.statuses()[Dimension::Running.bucket(Some(c)).unwrap()])
            .collect();
        assert_eq!(
            running,
            [
                "unknown",
                "stopped",
                "running",
                "going_offline",
                "starting",
                "shut_down"
            ]
        );
        assert_eq!(Dimension::Frozen.statuses(), ["normal", "frozen"]);
        assert_eq!(Dimension::Login.statuses(), ["not_logged_in", "logged_in"]);
        assert_eq!(Dimension::Assign.statuses(), ["unassigned", "assigned"]);
        for dim in [Dimension::Backup, Dimension::Restore] {
            assert_eq!(
                dim.statuses(),
                ["preparing", "executing", "successful", "failed", "others"]
            );
        }
    }

    #[test]
    fn undocumented_and_missing_codes_have_no_documented_bucket() {
        assert_eq!(Dimension::Running.bucket(Some(6)), None);
        assert_eq!(Dimension::Frozen.bucket(Some(2)), None);
        assert_eq!(Dimension::Backup.bucket(Some(-1)), None);
        assert_eq!(Dimension::Backup.bucket(Some(i64::MAX)), None);
        assert_eq!(Dimension::Login.bucket(None), None);
        assert_eq!(Dimension::Backup.bucket(Some(4)), Some(4));
    }

    fn fleet(instances: Vec<Instance>) -> Fleet {
        Fleet::from_pages([instances]).0
    }

    #[test]
    fn an_instance_seen_twice_counts_once() {
        let (fleet, repeats) = Fleet::from_pages([
            vec![
                instance("a", "r", [Some(2); 6]),
                instance("b", "r", [Some(1); 6]),
                instance("a", "r", [Some(3); 6]),
            ],
            vec![],
            vec![instance("a", "r", [Some(1); 6])],
            vec![
                instance("c", "r", [Some(1); 6]),
                instance("b", "r", [None; 6]),
            ],
        ]);
        assert_eq!(repeats, 3);
        assert_eq!(fleet.len(), 3);
        let ids: Vec<&str> = fleet.instances().map(Instance::instance_id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(fleet.pages().len(), 2, "a page left empty is dropped");
        // The first sighting wins, so the counts do not depend on which duplicate arrived later.
        let first = fleet.instances().next().unwrap();
        assert_eq!(first.status(Dimension::Running), Some(2));
    }

    #[test]
    fn different_ids_with_the_same_hash_are_both_kept() {
        let same_hash = |id: &str| {
            let mut i = instance(id, "r", [Some(2); 6]);
            i.identity.id_hash = 7;
            i
        };
        let (fleet, repeats) =
            Fleet::from_pages([vec![same_hash("a"), same_hash("b"), same_hash("a")]]);
        assert_eq!((fleet.len(), repeats), (2, 1));
    }

    #[test]
    fn instances_without_an_id_are_all_counted() {
        let (fleet, repeats) = Fleet::from_pages([vec![
            instance("", "r", [Some(0); 6]),
            instance("", "r", [Some(0); 6]),
        ]]);
        assert_eq!((fleet.len(), repeats), (2, 0));
    }

    #[test]
    fn per_dimension_statuses_add_up_to_the_group_total() {
        let codes = [
            None,
            Some(-3),
            Some(0),
            Some(1),
            Some(2),
            Some(3),
            Some(4),
            Some(5),
            Some(9),
        ];
        let mut instances = Vec::new();
        for (i, a) in codes.iter().enumerate() {
            for (j, b) in codes.iter().enumerate() {
                let region = if (i + j) % 2 == 0 { "r1" } else { "r2" };
                let id = format!("{i}-{j}");
                instances.push(instance(&id, region, [*a, *b, *a, *b, *a, *b]));
            }
        }
        let fleet = fleet(instances);
        let groups = fleet.aggregate();
        assert_eq!(groups.len(), 2);
        let mut grand_total = 0;
        for counts in groups.values() {
            grand_total += counts.total;
            for dim in Dimension::ALL {
                let documented: u64 = counts.documented(dim).map(|(_, n)| n).sum();
                assert_eq!(
                    documented + counts.undocumented(dim),
                    counts.total,
                    "{dim:?}"
                );
                assert_eq!(counts.documented(dim).count(), dim.statuses().len());
            }
        }
        assert_eq!(grand_total, (codes.len() * codes.len()) as u64);
    }

    #[test]
    fn counts_land_in_the_right_status() {
        let fleet = fleet(vec![
            instance(
                "a",
                "r",
                [Some(2), Some(1), Some(0), Some(1), Some(3), Some(7)],
            ),
            instance(
                "b",
                "r",
                [Some(2), Some(0), None, Some(1), Some(2), Some(2)],
            ),
        ]);
        let groups = fleet.aggregate();
        let counts = &groups[&("r", "s")];
        let running: Vec<_> = counts.documented(Dimension::Running).collect();
        assert_eq!(running[2], ("running", 2));
        assert_eq!(
            counts.documented(Dimension::Frozen).collect::<Vec<_>>(),
            [("normal", 1), ("frozen", 1)]
        );
        assert_eq!(counts.undocumented(Dimension::Login), 1);
        assert_eq!(
            counts.documented(Dimension::Backup).nth(3),
            Some(("failed", 1))
        );
        assert_eq!(counts.undocumented(Dimension::Restore), 1);
    }
}
