//! Any `Host` headers sent to `/sd`: the address listed is always one the exporter was
//! configured with (`--web.external-url`) or the one the request arrived on, never a made-up one.
#![no_main]

use std::net::SocketAddr;

use clouddevice_exporter::web::sd::address;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<&str>, bool)| {
    let (hosts, with_external) = input;
    let external = with_external.then_some("exporter.example:443");
    let local: SocketAddr = "127.0.0.1:10123".parse().unwrap();
    let listed = address(&hosts, external, Some(local)).unwrap();
    assert!(
        listed == "127.0.0.1:10123" || Some(listed.as_str()) == external,
        "{listed}"
    );
});
