//! clouddevice_exporter: a Prometheus exporter for Huawei Cloud CloudDevice (KooPhone) instances.
//!
//! Data flows one way: [`cli`] (flags → validated configuration) → [`upstream`] (sign-in, the
//! batch-query API, paging: a [`upstream::Source`] of fleets) → [`fleet`] (the snapshot) →
//! [`collect`] (one collection shared by scrapes) → [`exposition`] (families and the streamed
//! text) → [`scrape`] → [`probe`] (many accounts) → [`web`] (HTTP). [`run`] wires them at
//! start-up. The crate `clouddevice_simulator` (`simulator/`) is a stand-in for the API, for
//! `--demo`, the [`simulate`] subcommand, tests and benchmarks.
//!
//! The imports follow the data, with two kinds of exception, and no cycle between modules: [`cli`] imports the configuration types of the
//! layers it configures (`upstream`, `exposition`, `web`), since it builds them; and every layer
//! that counts something imports [`self_metrics`], the exporter's own counters, which imports
//! nothing of the crate.

pub mod check;
pub mod cli;
pub mod clock;
pub mod collect;
pub mod exposition;
pub mod files;
pub mod flags;
pub mod fleet;
pub mod healthcheck;
pub mod logging;
pub mod probe;
pub mod run;
pub mod scrape;
pub mod secret;
pub mod self_metrics;
pub mod simulate;
pub mod upstream;
pub mod web;
pub mod yaml;
