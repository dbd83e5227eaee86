//! clouddevice_exporter: a Prometheus exporter for Huawei Cloud CloudDevice (KooPhone) instances.
//!
//! Data flows one way: [`config`] → [`client`] (one page) → [`paging`] (the whole list) →
//! [`fleet`] (the snapshot) → [`metrics`] (families and encoding) → [`server`] (HTTP).
//! [`simulator`] is a stand-in for the API, for `--demo`, `simulate`, tests and benchmarks.

pub mod auth;
pub mod client;
pub mod config;
pub mod connection;
pub mod credentials;
pub mod error;
pub mod exposition;
pub mod fleet;
pub mod iam;
pub mod logging;
pub mod metrics;
pub mod paging;
pub mod run;
pub mod scrape;
pub mod secret;
pub mod server;
pub mod sign;
pub mod simulator;
pub mod web_config;
pub mod wire;
