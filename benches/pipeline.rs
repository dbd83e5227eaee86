//! In-process benchmarks of the scrape pipeline's parts, with criterion:
//! decoding a page, aggregating a fleet, rendering a fleet's exposition.
//!
//!     cargo bench --bench pipeline

use std::hint::black_box;

use clouddevice_exporter::exposition::{
    render_text, ExpositionConfig, InstanceMetrics, InstanceName, Scrape,
};
use clouddevice_exporter::fleet::Fleet;
use clouddevice_exporter::upstream::wire;
use clouddevice_simulator::generate_fleet;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod floor;

/// A page of `n` simulated instances, as the API sends it.
fn page_json(n: usize) -> Vec<u8> {
    let rows = generate_fleet(1, n, 1_790_000_000);
    serde_json::to_vec(&serde_json::json!({
        "data": {"result": rows}, "page_no": 1, "page_size": n, "total_count": n,
        "error_code": "0", "error_msg": "OK"
    }))
    .unwrap()
}

/// A decoded fleet of `n` instances.
fn fleet(n: usize) -> Fleet {
    let limits = wire::Decoding {
        max_rows: n,
        expected_rows: n,
        time_zone: time::UtcOffset::UTC,
    };
    let page = wire::decode_page(&page_json(n), limits).unwrap();
    Fleet::from_pages([page.instances]).0
}

fn decode(c: &mut Criterion) {
    let body = page_json(100);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(100));
    // As in a scrape: the page before held as many rows.
    let limits = wire::Decoding {
        max_rows: 100,
        expected_rows: 100,
        time_zone: time::UtcOffset::UTC,
    };
    group.bench_function("page_of_100", |b| {
        b.iter(|| wire::decode_page(black_box(&body), limits).unwrap())
    });
    // The floor of the end-to-end benchmark: parsing alone, into borrowed wire structs.
    group.bench_function("parse_floor_100", |b| {
        b.iter(|| floor::parse_floor(black_box(&body)))
    });
    group.finish();
}

fn aggregate(c: &mut Criterion) {
    let fleet = fleet(100_000);
    let mut group = c.benchmark_group("aggregate");
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("fleet_of_100k", |b| {
        b.iter(|| black_box(&fleet).aggregate().len())
    });
    group.finish();
}

fn render(c: &mut Criterion) {
    let fleet = fleet(10_000);
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(20);
    for (instance_metrics, name) in [
        (InstanceMetrics::All, "fleet_of_10k"),
        (InstanceMetrics::Problems, "fleet_of_10k_problems"),
        (InstanceMetrics::None, "fleet_of_10k_aggregates_only"),
    ] {
        let config = ExpositionConfig {
            instance_metrics,
            instance_name: InstanceName::Everywhere,
            backup_age_buckets: std::sync::Arc::from([86_400u64, 604_800]),
            max_groups: 1_000,
        };
        let scrape = Scrape::whole(std::sync::Arc::new(fleet.clone()), config);
        group.bench_function(name, |b| {
            b.iter(|| render_text(black_box(&scrape)).unwrap().len())
        });
    }
    group.finish();
}

criterion_group!(benches, decode, aggregate, render);
criterion_main!(benches);
