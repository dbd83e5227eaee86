//! The floor of the decoding benchmarks: the cost of parsing the batch-query pages into plain
//! serde structs (borrowed strings, nothing kept, no conversion into the exporter's own types),
//! what any decoder of these pages pays before doing its own work.

use std::borrow::Cow;

use serde::Deserialize;

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow, default)]
    result: Option<Vec<Row<'a>>>,
}

/// The fields the exporter reads, each as the simulator writes it. A `Cow` field, not inside an
/// `Option`, is borrowed from the body where it holds no escape.
#[derive(Deserialize)]
#[allow(dead_code)] // parsed, never read: what the floor measures
struct Row<'a> {
    #[serde(borrow, default)]
    instance_id: Cow<'a, str>,
    #[serde(borrow, default)]
    instance_name: Cow<'a, str>,
    #[serde(borrow, default)]
    region: Cow<'a, str>,
    #[serde(borrow, default)]
    region_name: Cow<'a, str>,
    #[serde(borrow, default)]
    instance_sku: Cow<'a, str>,
    #[serde(borrow, default)]
    project_id: Cow<'a, str>,
    #[serde(borrow, default)]
    project_name: Cow<'a, str>,
    #[serde(borrow, default)]
    phone_id: Cow<'a, str>,
    #[serde(borrow, default)]
    billing_mode: Cow<'a, str>,
    running_status: Option<i64>,
    frozen_status: Option<i64>,
    login_status: Option<i64>,
    assign_status: Option<i64>,
    backup_status: Option<i64>,
    #[serde(borrow, default)]
    backup_time: Cow<'a, str>,
    restore_status: Option<i64>,
    #[serde(borrow, default)]
    restore_time: Cow<'a, str>,
}

/// Parses one page and returns its number of rows.
pub fn parse_floor(body: &[u8]) -> usize {
    let text = std::str::from_utf8(body).expect("the simulator writes UTF-8");
    let body: Body = serde_json::from_str(text).expect("the simulator's page parses");
    body.data
        .and_then(|d| d.result)
        .map_or(0, |rows| rows.len())
}
