//! The text exposition of one scrape, streamed in chunks. The per-instance families are most of
//! the body (nine series per cloud phone), so they are written straight from the fleet snapshot
//! as the client reads, never built as protobuf messages or as one big string; everything else
//! (aggregates, health, the exporter's own metrics) goes through the prometheus crate.
//!
//! The output is byte for byte what the prometheus crate's `TextEncoder` writes for the same
//! families, in the same name order (a test below compares the two on hostile label values).

use std::sync::Arc;

use axum::body::Bytes;
use prometheus::proto::MetricFamily;

use super::Format;

use crate::fleet::{Dimension, Fleet, Instance};

/// Chunks are cut at about this size: large enough for few syscalls, small enough to keep the
/// memory of a 100,000-instance scrape flat.
const CHUNK: usize = 256 * 1024;

/// One per-instance family.
#[derive(Debug, Clone, Copy)]
enum PerInstance {
    Info,
    Status(Dimension),
    BackupTime,
    RestoreTime,
}

impl PerInstance {
    fn all() -> impl Iterator<Item = PerInstance> {
        [
            PerInstance::Info,
            PerInstance::BackupTime,
            PerInstance::RestoreTime,
        ]
        .into_iter()
        .chain(Dimension::ALL.into_iter().map(PerInstance::Status))
    }

    fn name(self) -> String {
        match self {
            PerInstance::Info => "clouddevice_instance_info".into(),
            PerInstance::Status(dim) => format!("clouddevice_instance_{}_status", dim.name()),
            PerInstance::BackupTime => "clouddevice_instance_backup_timestamp_seconds".into(),
            PerInstance::RestoreTime => "clouddevice_instance_restore_timestamp_seconds".into(),
        }
    }

    fn help(self) -> String {
        match self {
            PerInstance::Info => {
                "Descriptive labels of each instance; the value is always 1.".into()
            }
            PerInstance::Status(dim) => {
                format!(
                    "Raw {} status code of each instance, as the API reports it: {}.",
                    dim.name(),
                    dim.legend()
                )
            }
            PerInstance::BackupTime => {
                "Time of the instance's last backup status change, as Unix seconds.".into()
            }
            PerInstance::RestoreTime => {
                "Time of the instance's last restore status change, as Unix seconds.".into()
            }
        }
    }

    /// The sample value of an instance, or `None` when it has no sample in this family.
    fn value(self, i: &Instance) -> Option<i64> {
        if i.instance_id().is_empty() {
            // Nothing would tell it apart from another instance of the same name.
            return None;
        }
        match self {
            PerInstance::Info => Some(1),
            PerInstance::Status(dim) => i.status(dim),
            PerInstance::BackupTime => i.backup_time,
            PerInstance::RestoreTime => i.restore_time,
        }
    }
}

enum Part {
    /// Already encoded (small families).
    Text(Vec<u8>),
    /// A per-instance family, written row by row: its header, and the fleet it reads.
    Rows {
        header: Vec<u8>,
        name: String,
        family: PerInstance,
    },
}

/// Where the per-instance families carry `instance_name` (`--collector.instance-name`): names
/// are chosen by users and may be personal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceName {
    /// On every per-instance family.
    Everywhere,
    /// On `clouddevice_instance_info` only.
    Info,
    /// Nowhere.
    Nowhere,
}

/// The label set `instance_id="…",instance_name="…",region="…"` of every instance (without the
/// name unless it goes everywhere), escaped once. Eight of the nine per-instance families carry
/// it: written from here, each line is a few copies instead of eight escapes of the same values.
#[derive(Default)]
struct SeriesLabels {
    text: Vec<u8>,
    /// Per instance in fleet order, offsets into `text`: where its id and name part ends, and
    /// where its label set ends. Each set starts where the one before ends.
    ends: Vec<(usize, usize)>,
}

impl SeriesLabels {
    fn new(fleet: &Fleet, with_name: bool) -> Self {
        let mut labels = SeriesLabels {
            text: Vec::with_capacity(fleet.len() * 64),
            ends: Vec::with_capacity(fleet.len()),
        };
        for i in fleet.instances() {
            // With the braces and the space before the value: fewer copies per line.
            label(&mut labels.text, "{instance_id=\"", i.instance_id());
            if with_name {
                label(&mut labels.text, "\",instance_name=\"", i.instance_name());
            }
            labels.text.push(b'"');
            let name_end = labels.text.len();
            label(&mut labels.text, ",region=\"", &i.region);
            labels.text.extend_from_slice(b"\"} ");
            labels.ends.push((name_end, labels.text.len()));
        }
        labels
    }

    /// The `n`-th instance's `{…} ` whole, and its `instance_id="…"[,instance_name="…"]` part.
    fn get(&self, n: usize) -> (&[u8], &[u8]) {
        let start = n
            .checked_sub(1)
            .and_then(|before| self.ends.get(before))
            .map_or(0, |(_, end)| *end);
        let (name_end, end) = self.ends.get(n).copied().unwrap_or_default();
        (
            self.text.get(start..end).unwrap_or_default(),
            self.text.get(start + 1..name_end).unwrap_or_default(),
        )
    }
}

/// The body of one scrape, as an iterator of chunks.
pub struct Exposition {
    parts: Vec<Part>,
    instance_name: InstanceName,
    fleet: Option<Arc<Fleet>>,
    labels: SeriesLabels,
    /// Where the next chunk starts: the part, and in a per-instance part, whether its header is
    /// out, the page and row to write next, and that row's place in the fleet.
    part: usize,
    header_done: bool,
    page: usize,
    row: usize,
    index: usize,
}

impl Exposition {
    /// Orders `families` (encoded by the prometheus crate) and, when `instances` is given, the
    /// per-instance families of that fleet by name, leaving out families without samples.
    /// `help_suffix` is appended to the per-instance HELP texts (the reuse-window note).
    pub fn new(
        families: Vec<MetricFamily>,
        instances: Option<Arc<Fleet>>,
        help_suffix: Option<&str>,
        instance_name: InstanceName,
        format: Format,
    ) -> Result<Self, prometheus::Error> {
        let mut named: Vec<(String, Part)> = Vec::with_capacity(families.len() + 10);
        for family in families.iter().filter(|f| !f.get_metric().is_empty()) {
            let mut text = String::new();
            format.encode(family, &mut text)?;
            named.push((family.name().to_string(), Part::Text(text.into_bytes())));
        }
        if let Some(fleet) = &instances {
            for family in PerInstance::all() {
                if !fleet.instances().any(|i| family.value(i).is_some()) {
                    continue;
                }
                let name = family.name();
                let help = match help_suffix {
                    Some(suffix) => format!("{} {suffix}", family.help()),
                    None => family.help(),
                };
                let header = format.gauge_header(&name, &help).into_bytes();
                named.push((
                    name.clone(),
                    Part::Rows {
                        header,
                        name,
                        family,
                    },
                ));
            }
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let end = Part::Text(format.end().as_bytes().to_vec());
        Ok(Exposition {
            parts: named
                .into_iter()
                .map(|(_, part)| part)
                .chain([end])
                .collect(),
            labels: instances
                .as_deref()
                .map(|fleet| SeriesLabels::new(fleet, instance_name == InstanceName::Everywhere))
                .unwrap_or_default(),
            instance_name,
            fleet: instances,
            part: 0,
            header_done: false,
            page: 0,
            row: 0,
            index: 0,
        })
    }

    /// The whole body as one string (tests and benchmarks).
    pub fn into_string(self) -> String {
        let mut bytes = Vec::new();
        for chunk in self {
            bytes.extend_from_slice(&chunk);
        }
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

impl Iterator for Exposition {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        while buf.len() < CHUNK {
            let Some(part) = self.parts.get(self.part) else {
                break;
            };
            match part {
                Part::Text(text) => {
                    buf.extend_from_slice(text);
                    self.part += 1;
                }
                Part::Rows {
                    header,
                    name,
                    family,
                } => {
                    let pages = self.fleet.as_deref().map_or(&[][..], Fleet::pages);
                    if !self.header_done {
                        buf.extend_from_slice(header);
                        self.header_done = true;
                    }
                    while buf.len() < CHUNK && self.page < pages.len() {
                        let rows = &pages[self.page];
                        while buf.len() < CHUNK && self.row < rows.len() {
                            let labels = self.labels.get(self.index);
                            write_row(
                                &mut buf,
                                (name, *family),
                                &rows[self.row],
                                labels,
                                self.instance_name,
                            );
                            self.row += 1;
                            self.index += 1;
                        }
                        if self.row == rows.len() {
                            self.page += 1;
                            self.row = 0;
                        }
                    }
                    if self.page == pages.len() {
                        self.part += 1;
                        self.header_done = false;
                        self.page = 0;
                        self.row = 0;
                        self.index = 0;
                    }
                }
            }
        }
        (!buf.is_empty()).then(|| Bytes::from(buf))
    }
}

/// One sample line. `labels` is the instance's escaped `{…} ` whole, and its id and name part.
fn write_row(
    buf: &mut Vec<u8>,
    (name, family): (&str, PerInstance),
    i: &Instance,
    (labels, id_and_name): (&[u8], &[u8]),
    instance_name: InstanceName,
) {
    let Some(value) = family.value(i) else {
        return;
    };
    buf.extend_from_slice(name.as_bytes());
    // Label names in alphabetical order, as the prometheus crate's vectors write them.
    match family {
        PerInstance::Info => {
            label(buf, "{billing_mode=\"", &i.billing_mode);
            buf.extend_from_slice(b"\",");
            buf.extend_from_slice(id_and_name);
            if instance_name == InstanceName::Info {
                // The series' labels leave the name out; the info metric has it.
                label(buf, ",instance_name=\"", i.instance_name());
                buf.push(b'"');
            }
            label(buf, ",phone_id=\"", i.phone_id());
            label(buf, "\",project_id=\"", &i.project_id);
            label(buf, "\",project_name=\"", &i.project_name);
            label(buf, "\",region=\"", &i.region);
            label(buf, "\",region_name=\"", &i.region_name);
            label(buf, "\",sku=\"", &i.sku);
            buf.extend_from_slice(b"\"} ");
        }
        _ => buf.extend_from_slice(labels),
    }
    buf.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    buf.push(b'\n');
}

/// Writes `prefix`, then `value` escaped as the text format wants label values: `\` as `\\`,
/// a newline as `\n`, `"` as `\"`.
fn label(buf: &mut Vec<u8>, prefix: &str, value: &str) {
    buf.extend_from_slice(prefix.as_bytes());
    let bytes = value.as_bytes();
    // Most values need no escaping; a vectorised search says so faster than a byte loop.
    if memchr::memchr3(b'\\', b'\n', b'"', bytes).is_none() {
        buf.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'"' => buf.extend_from_slice(b"\\\""),
            _ => buf.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{Identity, Instance};

    fn fleet(n: usize) -> Arc<Fleet> {
        // One instance a page: chunk boundaries fall inside and between pages.
        let pages = (0..n).map(|i| {
            vec![Instance {
                region: "r".into(),
                sku: "s".into(),
                status: [Some(2); 6],
                backup_time: Some(i as i64),
                identity: Identity::new(&format!("id-{i:06}"), &"x".repeat(i % 300), ""),
                ..Instance::default()
            }]
        });
        Arc::new(Fleet::from_pages(pages).0)
    }

    #[test]
    fn every_family_header_is_written_once_whatever_the_chunk_boundaries() {
        // Enough rows for many chunks, with lines of varying length so that boundaries fall
        // everywhere, including right after a header.
        let fleet = fleet(20_000);
        let exposition = || {
            let fleet = Some(fleet.clone());
            Exposition::new(
                Vec::new(),
                fleet,
                None,
                InstanceName::Everywhere,
                Format::Text,
            )
            .unwrap()
        };
        let text = exposition().into_string();
        for name in [
            "clouddevice_instance_info",
            "clouddevice_instance_running_status",
        ] {
            assert_eq!(
                text.matches(&format!("# TYPE {name} gauge\n")).count(),
                1,
                "{name}"
            );
            let rows = text
                .lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .count();
            assert_eq!(rows, 20_000, "{name}");
        }
        assert!(exposition().count() > 10);
    }

    /// The same families built as the prometheus crate's metric families, series in the fleet's
    /// order, and encoded by its `TextEncoder`: what the hand-written rows must equal, byte for
    /// byte. Built as protobuf messages, not
    /// gauge vectors: a vector tells series apart by a hash of their label values run together,
    /// so `("b", "ab", "a")` and `("ba", "", "ba")` would become one series.
    fn reference(fleet: &Fleet, naming: InstanceName) -> String {
        use crate::exposition;
        let mut families = Vec::new();
        for family in PerInstance::all() {
            let mut metrics = Vec::new();
            for i in fleet.instances() {
                let Some(value) = family.value(i) else {
                    continue;
                };
                let is_info = matches!(family, PerInstance::Info);
                let named = match naming {
                    InstanceName::Everywhere => true,
                    InstanceName::Info => is_info,
                    InstanceName::Nowhere => false,
                };
                let mut labels = vec![("instance_id", i.instance_id()), ("region", &*i.region)];
                if named {
                    labels.push(("instance_name", i.instance_name()));
                }
                if is_info {
                    labels.extend([
                        ("region_name", &*i.region_name),
                        ("sku", &*i.sku),
                        ("project_id", &*i.project_id),
                        ("project_name", &*i.project_name),
                        ("phone_id", i.phone_id()),
                        ("billing_mode", &*i.billing_mode),
                    ]);
                }
                labels.sort();
                metrics.push(exposition::gauge(&labels, value as f64));
            }
            if metrics.is_empty() {
                continue;
            }
            families.push(exposition::family(&family.name(), &family.help(), metrics));
        }
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut text = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&families, &mut text)
            .unwrap();
        text
    }

    fn hostile_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "[ab]{0,2}",
            r#"[a"\\\n\r\t{}= ,é云\u{0}\u{7f}]{0,8}"#,
            any::<String>(),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn the_rows_equal_what_the_text_encoder_writes(
            naming in proptest::sample::select(vec![
                InstanceName::Everywhere,
                InstanceName::Info,
                InstanceName::Nowhere,
            ]),
            rows in proptest::collection::vec(
                (
                    proptest::array::uniform3(hostile_text()),
                    proptest::array::uniform6(hostile_text()),
                    proptest::array::uniform6(proptest::option::of(-(1i64 << 53)..(1i64 << 53))),
                    proptest::option::of(0i64..(1i64 << 53)),
                ),
                0..20,
            )
        ) {
            // Values stay within what a float holds exactly: the crate stores gauges as f64.
            let instances = rows
                .into_iter()
                .map(|([id, name, phone], [region, region_name, sku, pid, pname, billing], status, time)| Instance {
                    identity: Identity::new(&id, &name, &phone),
                    region: region.into(),
                    region_name: region_name.into(),
                    sku: sku.into(),
                    project_id: pid.into(),
                    project_name: pname.into(),
                    billing_mode: billing.into(),
                    status,
                    backup_time: time,
                    restore_time: time.map(|t| t / 2),
                })
                .collect();
            let fleet = Arc::new(Fleet::from_pages([instances]).0);
            let ours = Exposition::new(Vec::new(), Some(fleet.clone()), None, naming, Format::Text)
                .unwrap()
                .into_string();
            // Byte for byte, sample order included: both follow the fleet's order.
            proptest::prop_assert_eq!(ours, reference(&fleet, naming));
        }
    }
}
