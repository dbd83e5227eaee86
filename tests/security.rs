//! The exporter attacked as an adversary would: an upstream that redirects, sends bad text or
//! huge errors; clients that hold connections open, never read, or guess passwords. One test (or
//! more) per finding of the security review; the README's "Security" section lists the limits.

mod common;

use common::{Scraped, TestExporter, TOKEN};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use clouddevice_exporter::credentials::SecretEnv;
use clouddevice_exporter::secret::Secret;

const PATH: &str = "/v1/instances/batch-query";

/// A page the exporter would accept: what the other host of a redirect serves, so that following
/// the redirect would show as `clouddevice_up 1`.
fn good_page() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": {"result": [{"instance_id": "stolen", "running_status": 2}]},
        "total_count": 1, "error_code": "0"
    }))
}

/// A server that must never be reached, and would answer as the API does if it were.
async fn elsewhere() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(good_page())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("X-Subject-Token", "token-from-elsewhere")
                .set_body_json(json!({"token": {"expires_at": "2099-01-01T00:00:00Z"}})),
        )
        .mount(&server)
        .await;
    server
}

fn redirect_to(status: u16, target: &MockServer, path: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).insert_header("Location", format!("{}{path}", target.uri()))
}

fn errors(m: &Scraped, label: &str) -> f64 {
    m.value(&format!(
        r#"clouddevice_exporter_api_errors_total{{error_code="{label}"}}"#
    ))
    .unwrap_or(0.0)
}

async fn landing(exporter: &TestExporter) -> String {
    exporter.get("/").await.text().await.unwrap()
}

/// Scrapes an API that redirects every request to `other`, with these secrets.
async fn scrape_through_redirect(status: u16, env: SecretEnv, flags: &[&str]) {
    let other = elsewhere().await;
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PATH))
        .respond_with(redirect_to(status, &other, PATH))
        .mount(&api)
        .await;
    let exporter = TestExporter::start_with(&api.uri(), flags, env).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0, "a redirect fails the scrape");
    assert_eq!(errors(&m, "redirect"), 1.0);
    assert!(
        other.received_requests().await.unwrap().is_empty(),
        "nothing reached the host the redirect named"
    );
    let page = landing(&exporter).await;
    let host = other.address().to_string();
    assert!(
        page.contains(&format!("redirect (HTTP {status}) to {host}")),
        "{page}"
    );
}

#[tokio::test]
async fn a_redirect_does_not_carry_the_static_token_elsewhere() {
    let env = SecretEnv {
        auth_token: Some(Secret::new(TOKEN)),
        ..SecretEnv::default()
    };
    scrape_through_redirect(302, env.clone(), &[]).await;
    scrape_through_redirect(307, env, &[]).await;
}

#[tokio::test]
async fn a_redirect_does_not_carry_a_signed_request_elsewhere() {
    let env = SecretEnv {
        access_key: Some(Secret::new("QTWAOYTTINDUT2QVKYUC")),
        secret_key: Some(Secret::new("MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc")),
        security_token: Some(Secret::new("temporary-token")),
        ..SecretEnv::default()
    };
    let flags = [
        "--clouddevice.project-id",
        "9d71ec45aef04d84a991c12250227b5c",
    ];
    scrape_through_redirect(307, env, &flags).await;
}

#[tokio::test]
async fn a_redirect_from_iam_does_not_carry_the_password_elsewhere() {
    let other = elsewhere().await;
    let iam = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/auth/tokens"))
        .respond_with(redirect_to(307, &other, "/v3/auth/tokens"))
        .mount(&iam)
        .await;
    // The API itself is never asked: there is no token to ask it with.
    let api = MockServer::start().await;
    let env = SecretEnv {
        iam_password: Some(Secret::new("hunter2-password")),
        ..SecretEnv::default()
    };
    let iam_url = iam.uri();
    let flags = [
        "--iam.endpoint",
        &iam_url,
        "--iam.username",
        "metrics",
        "--iam.domain",
        "corp",
        "--iam.project",
        "cn-north-4",
    ];
    let exporter = TestExporter::start_with(&api.uri(), &flags, env).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert_eq!(errors(&m, "iam_redirect"), 1.0);
    assert!(other.received_requests().await.unwrap().is_empty());
    assert!(api.received_requests().await.unwrap().is_empty());
    let page = landing(&exporter).await;
    assert!(page.contains(&other.address().to_string()), "{page}");
}

#[tokio::test]
async fn invalid_text_in_one_name_is_replaced_and_counted_not_fatal() {
    let api = MockServer::start().await;
    let mut body =
        br#"{"data":{"result":[{"instance_id":"a","running_status":2,"instance_name":"bad"#
            .to_vec();
    body.push(0xff);
    body.extend_from_slice(
        br#""},{"instance_id":"b","running_status":2,"instance_name":"lone\ud83d"},
            {"instance_id":"c","running_status":2,"instance_name":"fine"}]},"total_count":3}"#,
    );
    Mock::given(method("GET"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&api)
        .await;
    let exporter = TestExporter::start(&api.uri(), &[]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0, "one bad name does not hide the fleet");
    assert_eq!(m.sum("clouddevice_instances"), 3.0);
    assert_eq!(
        m.value("clouddevice_exporter_invalid_text_total"),
        Some(2.0)
    );
    assert!(
        m.contains(r#"instance_id="a",instance_name="bad�""#),
        "{}",
        m.0
    );
    assert!(
        m.contains(r#"instance_id="b",instance_name="lone�""#),
        "{}",
        m.0
    );
}

#[tokio::test]
async fn a_huge_error_message_is_clipped_in_the_log_and_the_landing_page() {
    let api = MockServer::start().await;
    let message = "x".repeat(100_000);
    Mock::given(method("GET"))
        .and(path(PATH))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error_code": "KOOPHONE.API.1000", "error_msg": message})),
        )
        .mount(&api)
        .await;
    let exporter = TestExporter::start(&api.uri(), &[]).await;
    assert_eq!(exporter.scrape().await.up(), 0.0);
    let page = landing(&exporter).await;
    assert!(page.contains("(100000 bytes in all)"), "{page}");
    assert!(page.len() < 2_000, "{} bytes", page.len());
}
