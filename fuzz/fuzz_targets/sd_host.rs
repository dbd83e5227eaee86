//! Any `Host` headers sent to `/sd`: the address listed is always one the exporter was
//! configured with (`--web.external-url`) or the one the request arrived on, never a made-up one.
#![no_main]

use std::net::SocketAddr;

use clouddevice_exporter::web::sd::{address, External};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<&str>, bool)| {
    let (hosts, with_external) = input;
    let external = External {
        address: "exporter.example:443".into(),
        path_prefix: "/exporter".into(),
    };
    let external = with_external.then_some(&external);
    let local: SocketAddr = "127.0.0.1:10123".parse().unwrap();
    let listed = address(&hosts, external, Some(local), "/probe").unwrap();
    let direct = listed.address == "127.0.0.1:10123" && listed.probe_path == "/probe";
    let through = external
        .is_some_and(|e| listed.address == e.address && listed.probe_path == "/exporter/probe");
    assert!(direct || through, "{listed:?}");
});
