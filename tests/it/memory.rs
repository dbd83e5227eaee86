//! What a hostile upstream can make the exporter hold while it reads a page (at most about twice
//! the page's size, whatever the body holds) and while it writes a scrape of what it read (bounded
//! by `--collector.max-groups` and the label-length bounds, however many distinct or long values
//! the upstream sends). Measured with a counting allocator, which counts bytes, not time: the
//! same on every machine. One test in this binary, so no other test's allocations are counted
//! with it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::sync::Arc;

use clouddevice_exporter::exposition::{
    self, ExpositionConfig, InstanceMetrics, InstanceName, Scrape,
};
use clouddevice_exporter::fleet::Fleet;
use clouddevice_exporter::upstream::wire::{decode_page, Decoding};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator; only counts the bytes on the way.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated at the peak of decoding `body`, above what was live before, and whether the
/// page decoded.
fn peak_while_decoding(body: &[u8], page_size: usize) -> (usize, bool) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let limits = Decoding {
        max_rows: page_size,
        expected_rows: page_size,
        time_zone: time::UtcOffset::UTC,
    };
    let decoded = decode_page(body, limits).is_ok();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    println!("{} byte body: {peak} bytes at the peak", body.len());
    (peak, decoded)
}

fn row(i: usize) -> String {
    format!(
        r#"{{"instance_id":"id-{i:08}","instance_name":"CCTEST-{i:08}","region":"cn-north-4","instance_sku":"Professional edition | 8 vCPUs | 16 GB","frozen_status":0,"running_status":2,"login_status":1,"assign_status":1,"assign_user":"1008600000097131912","billing_mode":"1","project_id":"9d71ec45aef04d84a991c12250227b5c","project_name":"cn-north-4","phone_id":"phone-{i:08}","member_name":"test","account_name":"someone@example.com","region_name":"CN North-Beijing4","backup_status":2,"backup_time":"2024-05-24 17:34:58","restore_status":0,"restore_time":"2024-05-24 20:34:58"}}"#
    )
}

/// Decodes pages of `rows` (each a JSON object) as the exporter would, 100 a page, into a fleet.
fn fleet_of(rows: impl Iterator<Item = String>) -> Fleet {
    let rows: Vec<String> = rows.collect();
    let pages = rows.chunks(100).map(|chunk| {
        let body = format!(r#"{{"data":{{"result":[{}]}}}}"#, chunk.join(","));
        let limits = Decoding {
            max_rows: 100,
            expected_rows: 100,
            time_zone: time::UtcOffset::UTC,
        };
        decode_page(body.as_bytes(), limits).unwrap().instances
    });
    Fleet::from_pages(pages).0
}

/// The bytes allocated at the peak of rendering and streaming a scrape of `fleet` with the
/// default flags, above what was live before, and the body's size.
fn peak_while_rendering(fleet: Fleet) -> (usize, usize) {
    let config = ExpositionConfig {
        instance_metrics: InstanceMetrics::All,
        instance_name: InstanceName::Everywhere,
        backup_age_buckets: Arc::from([86_400u64, 3 * 86_400, 7 * 86_400, 30 * 86_400]),
        max_groups: 1_000,
    };
    let scrape = Scrape::whole(Arc::new(fleet), config);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let body: usize = exposition::render(&scrape, Vec::new(), exposition::Format::Text)
        .unwrap()
        .map(|chunk| chunk.len())
        .sum();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    println!("{body} byte body: {peak} bytes at the peak");
    (peak, body)
}

fn what_an_upstream_sends_is_bounded_where_it_becomes_series() {
    // 20,000 instances, each with a region and a SKU of its own: 363 MB at the peak and a 74 MB
    // body before --collector.max-groups.
    let fleet = fleet_of((0..20_000).map(|i| {
        format!(r#"{{"instance_id":"i-{i}","region":"region-{i}","instance_sku":"sku-{i}","running_status":2}}"#)
    }));
    let (peak, body) = peak_while_rendering(fleet);
    assert!(peak < 150 << 20, "{peak} bytes at the peak");
    assert!(body < 20 << 20, "a {body} byte body");

    // 450 instances whose names are a megabyte each.
    let name = "n".repeat(1 << 20);
    let fleet = fleet_of((0..450).map(|i| {
        format!(
            r#"{{"instance_id":"i-{i}","instance_name":"{name}","region":"r","running_status":2}}"#
        )
    }));
    let (_, body) = peak_while_rendering(fleet);
    assert!(body < 20 << 20, "a {body} byte body");
}

#[test]
fn reading_a_page_holds_at_most_about_twice_its_size() {
    what_an_upstream_sends_is_bounded_where_it_becomes_series();

    // An unknown field holding 15 million tiny values (30 MB, under the 32 MB body cap):
    // serde's flatten buffered each one, half a gigabyte in all.
    let mut body = String::from(r#"{"data":{"result":[],"junk":["#);
    body.push_str(&"0,".repeat(15_000_000));
    body.push_str(r#"0]},"extra":{"a":[[],[],{}]},"total_count":0}"#);
    let (peak, ok) = peak_while_decoding(body.as_bytes(), 100);
    assert!(ok);
    assert!(
        peak <= 2 * body.len(),
        "{peak} bytes at the peak for a {} byte body",
        body.len()
    );

    // Two million minimal rows: far more than the page_size asked for, so refused at once.
    let mut body = String::from(r#"{"data":{"result":["#);
    body.push_str(&"{},".repeat(2_000_000));
    body.push_str("{}]}}");
    let (peak, ok) = peak_while_decoding(body.as_bytes(), 10_000);
    assert!(!ok, "a page with more rows than asked for is refused");
    assert!(peak <= 2 * body.len(), "{peak} bytes for {}", body.len());

    // The largest page the exporter asks for, of real rows: what it keeps stays under the body.
    let rows: Vec<String> = (0..10_000).map(row).collect();
    let body = format!(
        r#"{{"data":{{"result":[{}]}},"total_count":10000}}"#,
        rows.join(",")
    );
    let (peak, ok) = peak_while_decoding(body.as_bytes(), 10_000);
    assert!(ok);
    assert!(peak <= 2 * body.len(), "{peak} bytes for {}", body.len());
}
