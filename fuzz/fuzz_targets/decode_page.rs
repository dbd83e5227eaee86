//! Any bytes as a batch-query answer: decoded as a page (or refused) without a panic, with no
//! more rows than asked for; the error check of non-2xx answers too.
#![no_main]

use clouddevice_exporter::upstream::error_body;
use clouddevice_exporter::upstream::wire::{decode_page, Decoding};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let limits = Decoding {
        max_rows: 50,
        expected_rows: 10,
        time_zone: time::macros::offset!(+8),
    };
    if let Ok(page) = decode_page(body, limits) {
        assert!(page.instances.len() <= 50);
    }
    let _ = error_body::read(body);
});
