//! clouddevice_exporter: a Prometheus exporter for Huawei Cloud CloudDevice (KooPhone) instances.
//!
//! Data flows one way, each layer importing only those before it: [`cli`] (flags → validated
//! configuration) → [`upstream`] (sign-in, the batch-query API, paging: a [`upstream::Source`] of
//! fleets) → [`fleet`] (the snapshot) → [`collect`] (one collection shared by scrapes) →
//! [`exposition`] (families and the streamed text) → [`scrape`] → [`probe`] (many accounts) →
//! [`web`] (HTTP). [`run`] wires them at start-up. [`simulator`] is a stand-in for the API, for
//! `--demo`, `simulate`, tests and benchmarks.

pub mod cli;
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
pub mod simulator;
pub mod upstream;
pub mod web;
pub mod yaml;
