//! Any text as a web configuration file: accepted or refused with an error, never a panic. The
//! file "lives" in a folder that does not exist, so the files it names are never read.
#![no_main]

use std::path::Path;

use clouddevice_exporter::web::config::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = parse(text, Path::new("/nonexistent-fuzz-dir/web.yml")) {
        // Every refusal names the file it came from.
        assert!(e.to_string().contains("web"));
    }
});
