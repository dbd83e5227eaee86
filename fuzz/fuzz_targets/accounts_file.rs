//! Any text as an accounts file: accepted or refused with an error naming the file, never a
//! panic, never an error that shows a secret the environment holds, and never slow however the
//! text nests (the budget of `clouddevice_exporter::yaml`). The secret files it names are in a
//! folder that does not exist, so none is read.
#![no_main]

use std::path::Path;

use clouddevice_exporter::cli::account::{AccountDefaults, EnvLookup};
use clouddevice_exporter::cli::accounts::parse;
use clouddevice_exporter::secret::Secret;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-s3cret-value";

fuzz_target!(|text: &str| {
    let defaults = AccountDefaults::example();
    // Every variable the file names holds the same secret.
    let env = EnvLookup::new(|_| Some(Secret::new(SECRET)));
    let path = Path::new("/nonexistent-fuzz-dir/accounts.yml");
    if let Err(e) = parse(text, path, &defaults, &env, &mut Vec::new()) {
        let e = e.to_string();
        assert!(e.contains("--config.file"), "{e}");
        assert!(!e.contains(SECRET), "{e}");
    }
});
