//! The integration tests, one binary: the exporter and the simulator run in-process on
//! loopback, or as the built binary, and every test talks HTTP to them. One module per area;
//! `common` is the harness (`TestExporter`, the simulator, the binary as a process). Where a new
//! test goes: `docs/contributing.md`.

mod common;

mod accounts;
mod auth;
mod cli;
mod collector;
mod exposition_props;
mod golden;
mod memory;
mod resilience;
mod scale;
mod schedule;
mod scrape;
mod security;
mod soak;
mod throttling;
mod upstream;
mod web;
