//! The exporter against a scripted upstream (wiremock): the exact shape of each request, and
//! answers the simulator does not give: duplicates, early empty pages, missing total_count,
//! instances that vanish between scrapes, absurd counts.

use crate::common;

use common::{TestExporter, TOKEN};
use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PATH: &str = "/v1/instances/batch-query";

fn row(id: &str) -> Value {
    json!({"instance_id": id, "instance_name": format!("name-{id}"), "region": "cn-north-4",
           "instance_sku": "sku-a", "frozen_status": 0, "running_status": 2, "login_status": 1,
           "assign_status": 1, "backup_status": 2, "restore_status": 2})
}

fn page(ids: &[&str], page_size: u64, total: Option<u64>) -> ResponseTemplate {
    let mut body = json!({"data": {"result": ids.iter().map(|i| row(i)).collect::<Vec<_>>()},
                          "page_size": page_size, "error_code": "0", "error_msg": "OK"});
    if let Some(total) = total {
        body["total_count"] = json!(total);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

async fn serve_page(server: &MockServer, page_no: u64, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(PATH))
        .and(query_param("page_no", page_no.to_string()))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn every_request_carries_a_fresh_request_id_the_token_and_the_filters() {
    let server = MockServer::start().await;
    serve_page(&server, 1, page(&["a", "b"], 2, Some(4))).await;
    serve_page(&server, 2, page(&["c", "d"], 2, Some(4))).await;
    let flags = [
        "--clouddevice.page-size",
        "2",
        "--clouddevice.pool-scene-tag",
        "CLOUD_PHONE",
        "--clouddevice.instance-name",
        "name with spaces",
        "--clouddevice.query-start-time",
        "2023-08-15 14:30:45",
        "--clouddevice.query-end-time",
        "2023-08-16 00:00:00",
    ];
    let exporter = TestExporter::start(&server.uri(), &flags).await;
    assert_eq!(exporter.scrape().await.up(), 1.0);

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let mut ids = Vec::new();
    for request in &requests {
        assert_eq!(request.url.path(), PATH);
        let query: std::collections::HashMap<_, _> =
            request.url.query_pairs().into_owned().collect();
        let id = &query["x-request-id"];
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert_eq!(request.headers["x-request-id"], id.as_str());
        assert_eq!(request.headers["x-auth-token"], TOKEN);
        assert_eq!(query["page_size"], "2");
        assert_eq!(query["pool_scene_tag"], "CLOUD_PHONE");
        assert_eq!(query["instance_name"], "name with spaces");
        assert_eq!(query["query_start_time"], "2023-08-15 14:30:45");
        assert_eq!(query["query_end_time"], "2023-08-16 00:00:00");
        assert!(!query.contains_key("instance_id"));
        ids.push(id.clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 2, "each request has its own id");
}

#[tokio::test]
async fn an_instance_on_two_pages_counts_once() {
    let server = MockServer::start().await;
    // total_count 3 at 2 a page: page 2 repeats b, but every instance is there.
    serve_page(&server, 1, page(&["a", "b"], 2, Some(3))).await;
    serve_page(&server, 2, page(&["b", "c"], 2, Some(3))).await;
    let exporter = TestExporter::start(&server.uri(), &["--clouddevice.page-size", "2"]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert_eq!(m.sum("clouddevice_instances"), 3.0);
    assert_eq!(m.samples("clouddevice_instance_info").len(), 3);
}

#[tokio::test]
async fn overlapping_pages_that_leave_a_gap_are_read_again_then_refused() {
    let server = MockServer::start().await;
    // total_count 4, but the pages hold only 3 distinct instances: one was missed.
    serve_page(&server, 1, page(&["a", "b"], 2, Some(4))).await;
    serve_page(&server, 2, page(&["b", "c"], 2, Some(4))).await;
    let exporter = TestExporter::start(&server.uri(), &["--clouddevice.page-size", "2"]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert!(m.samples("clouddevice_instances").is_empty());
    assert_eq!(m.errors("list_changed"), Some(1.0));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        4,
        "read twice"
    );
}

#[tokio::test]
async fn an_early_empty_page_ends_the_list_and_is_a_list_change() {
    let server = MockServer::start().await;
    serve_page(&server, 1, page(&["a", "b"], 2, Some(10))).await;
    // Every later page is empty: the list shrank after total_count was computed.
    Mock::given(method("GET"))
        .and(path(PATH))
        .respond_with(page(&[], 2, Some(2)))
        .with_priority(10)
        .mount(&server)
        .await;
    let exporter = TestExporter::start(
        &server.uri(),
        &[
            "--clouddevice.page-size",
            "2",
            "--clouddevice.concurrency",
            "1",
        ],
    )
    .await;
    let m = exporter.scrape().await;
    // Two instances where total_count promised ten: not exported as if complete.
    assert_eq!(m.up(), 0.0);
    assert_eq!(m.errors("list_changed"), Some(1.0));
    // With one request in flight, nothing is asked after the empty page 2, in either pass.
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn without_total_count_paging_ends_at_the_first_short_page() {
    let server = MockServer::start().await;
    serve_page(&server, 1, page(&["a", "b"], 2, None)).await;
    serve_page(&server, 2, page(&["c", "d"], 2, None)).await;
    serve_page(&server, 3, page(&["e"], 2, None)).await;
    Mock::given(method("GET"))
        .and(path(PATH))
        .respond_with(page(&[], 2, None))
        .with_priority(10)
        .mount(&server)
        .await;
    let exporter = TestExporter::start(&server.uri(), &["--clouddevice.page-size", "2"]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    assert_eq!(m.sum("clouddevice_instances"), 5.0);
}

#[tokio::test]
async fn a_vanished_instance_is_not_exported() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PATH))
        .respond_with(page(&["keep", "gone"], 100, Some(2)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(PATH))
        .respond_with(page(&["keep"], 100, Some(1)))
        .with_priority(2)
        .mount(&server)
        .await;
    let exporter = TestExporter::start(&server.uri(), &[]).await;
    let first = exporter.scrape().await;
    assert!(first.contains(r#"instance_id="gone""#));
    let second = exporter.scrape().await;
    assert_eq!(second.up(), 1.0);
    assert!(!second.contains(r#"instance_id="gone""#), "{}", second.0);
    assert_eq!(second.sum("clouddevice_instances"), 1.0);
}

#[tokio::test]
async fn an_absurd_total_count_fails_the_scrape_without_trying() {
    let server = MockServer::start().await;
    serve_page(&server, 1, page(&["a"], 1, Some(1_000_000_000_000))).await;
    let exporter = TestExporter::start(&server.uri(), &[]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    // More phones than --clouddevice.max-instances, which is looked at before the pages.
    assert_eq!(m.errors("too_many_instances"), Some(1.0));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_error_inside_data_with_http_200_is_a_failure() {
    let server = MockServer::start().await;
    let body = json!({"data": {"result": [], "error_code": "KOOPHONE.API.1004",
                               "error_msg": "The service is not subscribed to."}});
    serve_page(&server, 1, ResponseTemplate::new(200).set_body_json(body)).await;
    let exporter = TestExporter::start(&server.uri(), &[]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert_eq!(m.errors("KOOPHONE.API.1004"), Some(1.0));
}

#[tokio::test]
async fn a_non_json_error_page_from_a_proxy_is_counted_by_status() {
    let server = MockServer::start().await;
    serve_page(
        &server,
        1,
        ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"),
    )
    .await;
    let exporter = TestExporter::start(&server.uri(), &[]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert_eq!(
        m.errors("http_502"),
        Some(3.0),
        "a 502 is tried three times"
    );
}

/// HTTP 200 carrying the gateway's throttle code, with `Retry-After`.
fn throttled_200(retry_after: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("Retry-After", retry_after)
        .set_body_json(
            json!({"error_code": "APIGW.0308", "error_msg": "policy user over ratelimit"}),
        )
}

#[tokio::test]
async fn a_throttle_answered_with_http_200_holds_the_account_for_its_retry_after() {
    let server = MockServer::start().await;
    serve_page(&server, 1, throttled_200("30")).await;
    let exporter = TestExporter::start(
        &server.uri(),
        &["--scrape.timeout", "5s", "--scrape.min-interval", "0s"],
    )
    .await;
    // The 30 s asked for pass both scrapes' deadlines: no retry, and the second scrape's
    // request waits for the hold rather than go out.
    assert_eq!(exporter.scrape().await.up(), 0.0);
    assert_eq!(exporter.scrape().await.up(), 0.0);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
