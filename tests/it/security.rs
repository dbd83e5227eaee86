//! The exporter attacked as an adversary would: an upstream that redirects, sends bad text or
//! huge errors; clients that hold connections open, never read, or guess passwords. One test (or
//! more) per finding of the security review; docs/security.md lists the limits.

use crate::common;

use std::time::Duration;

use common::{
    exporter, exporter_after, hash, make_pki, sim_and_exporter, simulator, start_with_web_config,
    tls_handshake, Running, Scraped, TestExporter, TOKEN,
};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use clouddevice_exporter::cli::account::{
    EnvLookup, ACCESS_KEY_ENV, PASSWORD_ENV, SECRET_KEY_ENV, SECURITY_TOKEN_ENV, TOKEN_ENV,
};
use clouddevice_exporter::secret::Secret;
use clouddevice_simulator::{SimConfig, SimHandle};

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

/// The body `url` answers with.
async fn text(http: &reqwest::Client, url: String) -> String {
    let response = http.get(url).send().await.expect("an answer");
    response.text().await.expect("a body")
}

/// Ten phones, each page answered after `latency`.
async fn slow_simulator(latency: Duration) -> SimHandle {
    simulator(SimConfig {
        latency,
        ..SimConfig::new(10, 1)
    })
    .await
}

fn errors(m: &Scraped, label: &str) -> f64 {
    m.errors(label).unwrap_or(0.0)
}

async fn landing(exporter: &TestExporter) -> String {
    exporter.get("/").await.text().await.unwrap()
}

/// Scrapes an API that redirects every request to `other`, with these secrets.
async fn scrape_through_redirect(status: u16, env: EnvLookup, flags: &[&str]) {
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
    let env = EnvLookup::of([(TOKEN_ENV.into(), Secret::new(TOKEN))]);
    scrape_through_redirect(302, env.clone(), &[]).await;
    scrape_through_redirect(307, env, &[]).await;
}

#[tokio::test]
async fn a_redirect_does_not_carry_a_signed_request_elsewhere() {
    let env = EnvLookup::of([
        (ACCESS_KEY_ENV.into(), Secret::new("QTWAOYTTINDUT2QVKYUC")),
        (
            SECRET_KEY_ENV.into(),
            Secret::new("MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"),
        ),
        (SECURITY_TOKEN_ENV.into(), Secret::new("temporary-token")),
    ]);
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
    let env = EnvLookup::of([(PASSWORD_ENV.into(), Secret::new("hunter2-password"))]);
    let flags = iam_flags(&iam);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
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

/// Waits (at most `within`) for the server to close `stream`; true if it did. Anything the
/// server sends first (a response, a 408) is read and dropped.
async fn closed_by_server(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64 * 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_to_end).await.is_ok()
}

async fn connect(exporter: &TestExporter) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(exporter.addr).await.unwrap()
}

/// The exporter over the demo-sized simulator, with short connection limits: each test below
/// shows one limit closing a connection long before the others would.
async fn with_limits(read_header: &str, idle: &str, write: &str) -> (SimHandle, TestExporter) {
    let flags = [
        "--web.read-header-timeout",
        read_header,
        "--web.idle-timeout",
        idle,
        "--web.write-timeout",
        write,
    ];
    sim_and_exporter(SimConfig::new(50, 1), &flags).await
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    // A fresh connection is under the read-header timeout (see below); after a complete
    // exchange, a kept-alive connection waits one idle timeout, no longer.
    let (_sim, exporter) = with_limits("60s", "1s", "60s").await;
    use tokio::io::AsyncWriteExt;
    let mut kept = connect(&exporter).await;
    kept.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut kept, Duration::from_secs(20)).await);
}

#[tokio::test]
async fn a_slowloris_head_is_cut_off_by_the_read_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let (_sim, exporter) = with_limits("1s", "60s", "60s").await;
    let mut stream = connect(&exporter).await;
    let (mut reader, mut writer) = stream.split();
    // One byte of header every 200 ms: each keeps the connection busy, none finishes the head.
    let trickle = async {
        writer.write_all(b"GET /metrics HTTP/1.1\r\n").await?;
        for _ in 0..100 {
            writer.write_all(b"X").await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok::<_, std::io::Error>(())
    };
    let closed = async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            _ = closed => "closed",
            _ = trickle => "trickle finished",
        }
    })
    .await;
    assert_eq!(
        outcome,
        Ok("closed"),
        "20 s of trickling never finished a head"
    );
}

#[tokio::test]
async fn a_half_sent_request_is_dropped_after_the_read_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let (_sim, exporter) = with_limits("1s", "60s", "60s").await;
    let mut stream = connect(&exporter).await;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut stream, Duration::from_secs(20)).await);
}

/// An exporter of `instances` phones with `--web.max-requests` and `--web.write-timeout` as
/// given, whose scrapes are all served from its first collection, already made.
async fn write_limited(
    instances: usize,
    max_requests: &str,
    write_timeout: &str,
) -> (SimHandle, TestExporter) {
    let flags = [
        "--web.max-requests",
        max_requests,
        "--web.write-timeout",
        write_timeout,
        "--scrape.min-interval",
        "10m",
    ];
    let (sim, exporter) = sim_and_exporter(SimConfig::new(instances, 1), &flags).await;
    assert_eq!(exporter.scrape().await.up(), 1.0);
    (sim, exporter)
}

#[tokio::test]
async fn clients_that_never_read_give_their_slots_back_after_the_write_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A body far larger than what the socket buffers on both sides can hold, so a client
    // that never reads leaves the response unsent; served from one collection.
    let (_sim, exporter) = write_limited(30_000, "2", "1s").await;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&exporter).await;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        stalled.push(stream);
    }
    // Both answers have begun, each holding its slot from before its first byte, and their
    // clients read no more of them...
    for stream in &mut stalled {
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
    }
    let status = exporter.get("/metrics").await.status();
    assert_eq!(status, 503, "the stalled clients hold both slots");
    // ...until the write timeout closes their connections and gives the slots back.
    let mut served = false;
    for _ in 0..300 {
        served = exporter.get("/metrics").await.status() == 200;
        if served {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "a scrape is served again");
    for stream in &mut stalled {
        assert!(closed_by_server(stream, Duration::from_secs(10)).await);
    }
}

/// An h2c connection to the exporter that never lets it send a byte of body: its streams'
/// flow-control window is zero and never grows.
async fn never_reading_h2(
    exporter: &TestExporter,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(connect(exporter).await)
        .await
        .unwrap();
    (client, tokio::spawn(connection))
}

fn h2_get(exporter: &TestExporter, path: &str) -> axum::http::Request<()> {
    axum::http::Request::get(exporter.url(path))
        .body(())
        .unwrap()
}

#[tokio::test]
async fn one_http2_connection_cannot_take_more_than_a_few_slots() {
    let flags = ["--web.max-requests", "8", "--scrape.min-interval", "10m"];
    let (_sim, exporter) = sim_and_exporter(SimConfig::new(2_000, 1), &flags).await;
    assert_eq!(exporter.scrape().await.up(), 1.0);
    let (client, _connection) = never_reading_h2(&exporter).await;
    // Forty requests on one connection; the server lets only a few be open at once.
    let opener = {
        let url = h2_get(&exporter, "/metrics");
        tokio::spawn(async move {
            let mut client = client;
            let mut answers = Vec::new();
            for _ in 0..40 {
                client = client.ready().await?;
                let request = axum::http::Request::get(url.uri().clone())
                    .body(())
                    .unwrap();
                answers.push(client.send_request(request, true)?.0);
            }
            Ok::<_, h2::Error>(answers)
        })
    };
    let mut answers = opener.await.unwrap().unwrap().into_iter();
    // The first four are answered (and kept: dropping one would cancel its stream)...
    let mut heads = Vec::new();
    for answer in answers.by_ref().take(4) {
        heads.push(answer.await.unwrap());
    }
    // ...and the fifth waits for one of them to end, or is refused.
    let fifth = tokio::time::timeout(Duration::from_millis(500), answers.next().unwrap()).await;
    assert!(
        !matches!(fifth, Ok(Ok(_))),
        "four streams at once, the rest wait"
    );
    assert_eq!(
        exporter.get("/metrics").await.status(),
        200,
        "one connection holds at most 4 of the 8 slots"
    );
}

#[tokio::test]
async fn http2_streams_that_flow_control_blocks_give_their_slots_back_after_the_write_timeout() {
    let (_sim, exporter) = write_limited(2_000, "4", "5s").await;
    let (mut client, connection) = never_reading_h2(&exporter).await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        client = client.ready().await.unwrap();
        answers.push(
            client
                .send_request(h2_get(&exporter, "/metrics"), true)
                .unwrap()
                .0,
        );
    }
    // The heads are sent; the bodies cannot be. The answers are kept: dropping one would
    // cancel its stream.
    let mut heads = Vec::new();
    for answer in answers {
        let answer = answer.await.unwrap();
        assert_eq!(answer.status(), 200);
        heads.push(answer);
    }
    assert_eq!(
        exporter.get("/metrics").await.status(),
        503,
        "the four blocked streams hold every slot"
    );
    // The write timeout closes the connection, whose streams give their slots back.
    let closed = tokio::time::timeout(Duration::from_secs(30), connection).await;
    assert!(closed.is_ok(), "the server closed the connection");
    assert_eq!(exporter.get("/metrics").await.status(), 200);
}

#[tokio::test]
async fn a_fresh_connection_that_sends_nothing_is_closed_after_the_read_header_timeout() {
    let (_sim, exporter) = with_limits("1s", "60s", "60s").await;
    let mut silent = connect(&exporter).await;
    assert!(
        closed_by_server(&mut silent, Duration::from_secs(20)).await,
        "closed by the read-header timeout, long before the 60 s idle timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_idle_after_its_handshake_is_closed() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let yaml = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let (mut running, address) = start_with_web_config(
        dir.path(),
        yaml,
        &[
            "--web.read-header-timeout",
            "1s",
            "--web.idle-timeout",
            "60s",
        ],
    );
    let closed = tokio::task::spawn_blocking(move || {
        let (mut tls, mut socket) = tls_handshake(&pki.ca, &address);
        // Handshake done; no request follows. The server must hang up, not wait forever.
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = [0u8; 256];
        let mut stream = rustls::Stream::new(&mut tls, &mut socket);
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                }
            }
        }
    })
    .await
    .unwrap();
    assert!(closed, "the server kept an idle TLS connection for 20 s");
    assert!(running.terminate().success());
}

/// The soft and hard "Max open files" of a running process.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit_or_warned_about() {
    let args = ["--demo", "--web.listen-address", "127.0.0.1:0"];
    // systemd's default: a soft limit of 1024 under a high hard one.
    let running = Running::start(&mut exporter_after(
        "ulimit -S -n 256 && exec \"$0\" \"$@\"",
        &args,
    ));
    running.listening_address();
    let (soft, hard) = open_file_limits(running.child.id());
    assert!(hard > 256, "the test needs a hard limit above 256");
    assert_eq!(soft, hard);
    drop(running);

    // A hard limit that is low too: the exporter says so.
    let running = Running::start(&mut exporter_after(
        "ulimit -n 512 && exec \"$0\" \"$@\"",
        &args,
    ));
    let line = running.wait_for("open-file limit is low");
    assert!(line.contains("limit=512"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_scrapes_away_logs_one_line_not_one_per_request() {
    // Each page takes 5 s: the one scrape allowed holds its slot meanwhile.
    let sim = slow_simulator(Duration::from_secs(5)).await;
    let url = sim.url();
    let running = Running::start(
        exporter(&[
            "--clouddevice.endpoint",
            &url,
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.max-requests",
            "1",
        ])
        .env("CLOUDDEVICE_AUTH_TOKEN", TOKEN),
    );
    let metrics = format!("http://{}/metrics", running.listening_address());
    let holder = tokio::spawn(reqwest::get(metrics.clone()));
    // Once the simulator has its request, the one slot is held for the next 5 s.
    let reached = tokio::time::timeout(Duration::from_secs(5), sim.requests_reach(1)).await;
    assert!(reached.is_ok(), "the first scrape reached the simulator");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    let mut refused = 0;
    for _ in 0..30 {
        if http.get(&metrics).send().await.unwrap().status() == 503 {
            refused += 1;
        }
    }
    assert_eq!(refused, 30);
    let warnings: Vec<String> = running
        .drain()
        .into_iter()
        .filter(|l| l.contains("too many concurrent scrapes"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    holder.abort();
}

/// How many threads process `pid` runs now.
fn threads(pid: u32) -> usize {
    common::procfs::status_field(pid, "Threads:").unwrap() as usize
}

/// The most threads process `pid` ran while `work` ran, sampled every 5 ms.
async fn peak_threads<F: std::future::Future>(pid: u32, work: F) -> (usize, F::Output) {
    tokio::pin!(work);
    let mut peak = threads(pid);
    loop {
        tokio::select! {
            out = &mut work => return (peak.max(threads(pid)), out),
            _ = tokio::time::sleep(Duration::from_millis(5)) => peak = peak.max(threads(pid)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_run_few_bcrypt_checks_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Cost 10, as the htpasswd line of docs/security.md makes: tens of milliseconds per check.
    let hash = bcrypt::hash("right", 10).unwrap();
    let yaml = format!("basic_auth_users:\n  alice: {hash}\n");
    let (mut running, address) = start_with_web_config(dir.path(), &yaml, &[]);
    let http = reqwest::Client::new();
    let get = |password: &'static str| {
        let request = http
            .get(format!("http://{address}/-/ready"))
            .basic_auth("alice", Some(password));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("right").await, 200);
    let pid = running.child.id();
    let baseline = threads(pid);
    let storm = futures::future::join_all((0..64).map(|_| get("wrong")));
    let during = async {
        // A scraper with the right password is still let in while the storm goes on.
        let legit = get("right").await;
        (legit, storm.await)
    };
    let (peak, (legit, statuses)) = peak_threads(pid, during).await;
    assert_eq!(legit, 200);
    // Refused, or turned away at once while the first check of that password runs.
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    // One blocking thread per allowed check (half the cores), not one per client.
    let cores = std::thread::available_parallelism().unwrap().get();
    let allowed = (cores / 2).max(1);
    assert!(
        peak <= baseline + allowed + 2,
        "{peak} threads at the peak, {baseline} before"
    );
    assert!(running.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_an_absurd_bcrypt_cost_is_refused_and_later_reloads_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("basic_auth_users:\n  alice: {}\n", hash("a-pass"));
    let (mut running, address) = start_with_web_config(dir.path(), &yaml, &[]);
    let url = format!("http://{address}/-/ready");
    let status = |user, password| common::status_as(&url, user, password);
    let web = dir.path().join("web.yml");
    let absurd = hash("b-pass").replacen("$04$", "$31$", 1);
    std::fs::write(&web, format!("basic_auth_users:\n  bob: {absurd}\n")).unwrap();
    running.hangup();
    let line = running.wait_for("cannot reload the configuration");
    assert!(
        line.contains("basic_auth_users.bob") && line.contains("cost 31"),
        "{line}"
    );
    assert_eq!(status("alice", "a-pass").await, 200);

    std::fs::write(
        &web,
        format!("basic_auth_users:\n  carol: {}\n", hash("c-pass")),
    )
    .unwrap();
    running.hangup();
    running.wait_for("reloaded the configuration");
    assert_eq!(status("carol", "c-pass").await, 200);
    assert!(running.terminate().success());
}

/// Secrets shaped like error codes, so that an upstream echoing one as its `error_code` would
/// make it a label if only the shape were checked.
const ECHO_TOKEN: &str = "Tok3n.Static_4f1c";
const ECHO_PASSWORD: &str = "Passw0rd.Secret_9e2";
const ECHO_ISSUED: &str = "IamIssued.Tok3n_77a";
const ECHO_SECRET_KEY: &str = "SecretKey.MFyfvK41_b2";
const ECHO_SECURITY_TOKEN: &str = "Security.Tok3n_c0d";
const ECHOED: [&str; 5] = [
    ECHO_TOKEN,
    ECHO_PASSWORD,
    ECHO_ISSUED,
    ECHO_SECRET_KEY,
    ECHO_SECURITY_TOKEN,
];

/// Every secret, in a sentence and escaped in JSON, as a hostile upstream would reflect them.
fn echo_text() -> String {
    format!("you sent {} ({:?})", ECHOED.join(" and "), ECHOED)
}

/// A mock server answering every `verb` request to `at` with `answer`.
async fn answering(verb: &str, at: &str, answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method(verb))
        .and(path(at))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

/// A batch-query API that answers every page with `code` as its error code and every secret in
/// its message.
async fn echoing_api(code: &str) -> MockServer {
    let body = json!({"error_code": code, "error_msg": echo_text()});
    answering("GET", PATH, ResponseTemplate::new(400).set_body_json(body)).await
}

/// An IAM that refuses the password, echoing it as its code and every secret in its message.
async fn iam_echoing_the_password() -> MockServer {
    let body = json!({"error": {"code": ECHO_PASSWORD, "message": echo_text()}});
    let answer = ResponseTemplate::new(401).set_body_json(body);
    answering("POST", "/v3/auth/tokens", answer).await
}

/// An IAM that issues [`ECHO_ISSUED`].
async fn iam_issuing_a_token() -> MockServer {
    let answer = ResponseTemplate::new(201)
        .insert_header("X-Subject-Token", ECHO_ISSUED)
        .set_body_json(json!({"token": {"expires_at": "2099-01-01T00:00:00Z"}}));
    answering("POST", "/v3/auth/tokens", answer).await
}

/// Scrapes `paths` of a started exporter, then its landing page, and checks that none of the
/// secrets it `held` is in any answer or in anything it logged, and that the upstream's failure
/// was reported, scrubbed.
async fn nothing_echoed(mut cmd: std::process::Command, paths: &[&str], held: &[&str]) {
    let running = Running::start(cmd.args([
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.level",
        "debug",
    ]));
    let address = running.listening_address();
    let http = reqwest::Client::new();
    let mut shown = String::new();
    for p in paths.iter().chain(&["/"]) {
        shown.push_str(&text(&http, format!("http://{address}{p}")).await);
    }
    assert!(shown.contains("clouddevice_up 0"), "{shown}");
    assert!(
        shown.contains("&lt;redacted&gt;"),
        "the landing page shows the scrubbed error: {shown}"
    );
    let logs = running.drain().join("\n");
    assert!(logs.contains("<redacted>"), "{logs}");
    for secret in held {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
        assert!(!logs.contains(secret), "{secret} logged: {logs}");
    }
}

fn iam_flags(iam: &MockServer) -> Vec<String> {
    [
        "--iam.endpoint",
        &iam.uri(),
        "--iam.username",
        "metrics",
        "--iam.domain",
        "corp",
        "--iam.project",
        "cn-north-4",
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test]
async fn secrets_echoed_by_the_upstream_are_never_republished_in_flag_mode() {
    // A static token, echoed by the API.
    let api = echoing_api(ECHO_TOKEN).await;
    let mut cmd = exporter(&["--clouddevice.endpoint", &api.uri()]);
    cmd.env("CLOUDDEVICE_AUTH_TOKEN", ECHO_TOKEN);
    nothing_echoed(cmd, &["/metrics"], &[ECHO_TOKEN]).await;

    // An IAM password, echoed by IAM.
    let iam = iam_echoing_the_password().await;
    let mut cmd = exporter(&["--clouddevice.endpoint", &api.uri()]);
    cmd.args(iam_flags(&iam))
        .env("CLOUDDEVICE_IAM_PASSWORD", ECHO_PASSWORD);
    nothing_echoed(cmd, &["/metrics"], &[ECHO_PASSWORD]).await;

    // The token IAM issued, echoed by the API.
    let api = echoing_api(ECHO_ISSUED).await;
    let iam = iam_issuing_a_token().await;
    let mut cmd = exporter(&["--clouddevice.endpoint", &api.uri()]);
    cmd.args(iam_flags(&iam))
        .env("CLOUDDEVICE_IAM_PASSWORD", ECHO_PASSWORD);
    nothing_echoed(cmd, &["/metrics"], &[ECHO_PASSWORD, ECHO_ISSUED]).await;

    // An access key pair's secret key and security token, echoed by the API.
    let api = echoing_api(ECHO_SECRET_KEY).await;
    let mut cmd = exporter(&[
        "--clouddevice.endpoint",
        &api.uri(),
        "--clouddevice.project-id",
        "p1",
    ]);
    cmd.env("CLOUDDEVICE_ACCESS_KEY", "QTWAOYTTINDUT2QVKYUC")
        .env("CLOUDDEVICE_SECRET_KEY", ECHO_SECRET_KEY)
        .env("CLOUDDEVICE_SECURITY_TOKEN", ECHO_SECURITY_TOKEN);
    nothing_echoed(cmd, &["/metrics"], &[ECHO_SECRET_KEY, ECHO_SECURITY_TOKEN]).await;
}

#[tokio::test]
async fn secrets_echoed_by_the_upstream_are_never_republished_in_accounts_file_mode() {
    let token_api = echoing_api(ECHO_TOKEN).await;
    let issued_api = echoing_api(ECHO_ISSUED).await;
    let key_api = echoing_api(ECHO_SECURITY_TOKEN).await;
    let refusing_iam = iam_echoing_the_password().await;
    let issuing_iam = iam_issuing_a_token().await;
    let yaml = format!(
        "accounts:
  token:
    endpoint: {token_api}
    token_env: ECHO_TOKEN
  password:
    endpoint: {token_api}
    iam: {{username: u, domain: d, project: p, password_env: ECHO_PASSWORD, endpoint: {refusing_iam}}}
  issued:
    endpoint: {issued_api}
    iam: {{username: u, domain: d, project: p, password_env: ECHO_PASSWORD, endpoint: {issuing_iam}}}
  key:
    endpoint: {key_api}
    access_key: {{access_key_env: ECHO_AK, secret_key_env: ECHO_SK, security_token_env: ECHO_ST}}
    project_id: p1
",
        token_api = token_api.uri(),
        issued_api = issued_api.uri(),
        key_api = key_api.uri(),
        refusing_iam = refusing_iam.uri(),
        issuing_iam = issuing_iam.uri(),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("accounts.yml");
    std::fs::write(&file, yaml).unwrap();
    let mut cmd = exporter(&["--config.file", file.to_str().unwrap()]);
    cmd.env("ECHO_TOKEN", ECHO_TOKEN)
        .env("ECHO_PASSWORD", ECHO_PASSWORD)
        .env("ECHO_AK", "QTWAOYTTINDUT2QVKYUC")
        .env("ECHO_SK", ECHO_SECRET_KEY)
        .env("ECHO_ST", ECHO_SECURITY_TOKEN);
    // The account IAM issues a token to goes first: a token is a secret from when it is issued.
    let probes = [
        "/probe?target=issued",
        "/probe?target=token",
        "/probe?target=password",
        "/probe?target=key",
    ];
    // One upstream may see every account's requests (a proxy): none of them shows anywhere.
    nothing_echoed(cmd, &probes, &ECHOED).await;
}

/// Sixty clients that send wrong passwords for alice from `from` until `stop` is set, each a
/// different password when `distinct`; returns the statuses they got. `answered` counts the
/// answers they got so far.
fn password_storm(
    address: &str,
    from: std::net::IpAddr,
    distinct: bool,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    answered: tokio::sync::watch::Sender<usize>,
) -> tokio::task::JoinHandle<Vec<u16>> {
    let address = address.to_string();
    let stop = stop.clone();
    let answered = std::sync::Arc::new(answered);
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .local_address(from)
            .build()
            .unwrap();
        let clients = (0..60).map(|client| {
            let (http, address, stop) = (http.clone(), address.clone(), stop.clone());
            let answered = answered.clone();
            async move {
                let mut statuses = Vec::new();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 10_000 {
                    n += 1;
                    let password = if distinct {
                        format!("guess-{client}-{n}")
                    } else {
                        "guess".to_string()
                    };
                    let sent = http
                        .get(format!("http://{address}/-/ready"))
                        .basic_auth("alice", Some(password))
                        .send()
                        .await;
                    if let Ok(response) = sent {
                        statuses.push(response.status().as_u16());
                        answered.send_modify(|n| *n += 1);
                    }
                }
                statuses
            }
        });
        futures::future::join_all(clients).await.concat()
    })
}

/// A login of alice with the right password from `from`: its status, or `None` if it took more
/// than 5 s (19 s before the queue of checks was bounded).
async fn login_within_5s(address: &str, from: std::net::IpAddr) -> Option<u16> {
    let http = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let request = http
        .get(format!("http://{address}/-/ready"))
        .basic_auth("alice", Some("right"));
    tokio::time::timeout(Duration::from_secs(5), request.send())
        .await
        .ok()
        .map(|r| r.unwrap().status().as_u16())
}

/// The demo exporter with one user, alice, whose password "right" is hashed at cost 12 (about a
/// quarter of a second a check), and its address.
fn alice_at_cost_12(dir: &std::path::Path) -> (Running, String) {
    let hash = bcrypt::hash("right", 12).unwrap();
    start_with_web_config(dir, &format!("basic_auth_users:\n  alice: {hash}\n"), &[])
}

/// A first login of alice from `login_from` while sixty clients guess from `guessing_from`:
/// its status (`None` past 5 s) and the guesses' statuses.
async fn login_during_a_storm(
    address: &str,
    guessing_from: std::net::IpAddr,
    distinct: bool,
    login_from: std::net::IpAddr,
) -> (Option<u16>, Vec<u16>) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (answered, mut answers) = tokio::sync::watch::channel(0);
    let storm = password_storm(address, guessing_from, distinct, &stop, answered);
    // The login goes in once the storm is at full strength: each client has been answered.
    answers.wait_for(|n| *n >= 60).await.unwrap();
    let login = login_within_5s(address, login_from).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (login, storm.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_login_is_answered_while_sixty_clients_guess_passwords_at_cost_12() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, address) = alice_at_cost_12(dir.path());
    let prometheus: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let attacker: std::net::IpAddr = "127.0.0.2".parse().unwrap();

    // Sixty clients guessing a new password each time, from another address: they take at
    // most a few places in the queue, and the rest of theirs are turned away at once.
    let (login, guesses) = login_during_a_storm(&address, attacker, true, prometheus).await;
    assert_eq!(login, Some(200));
    assert!(guesses.contains(&503), "a full queue answers 503 at once");
    assert!(guesses.iter().all(|s| *s == 401 || *s == 503));

    // The logins checked survive a reload that leaves alice unchanged: with the queue full of
    // guesses from Prometheus' own address, its login is still answered from the cache.
    running.hangup();
    running.wait_for("reloaded the configuration");
    let (login, _) = login_during_a_storm(&address, prometheus, true, prometheus).await;
    assert_eq!(login, Some(200));
    assert!(running.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_wrong_password_costs_one_check_so_a_login_from_the_same_address_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, address) = alice_at_cost_12(dir.path());
    let here: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    // The first try of the wrong password is checked; every repeat is answered from the cache.
    let first = reqwest::Client::new()
        .get(format!("http://{address}/-/ready"))
        .basic_auth("alice", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 401);
    let (login, guesses) = login_during_a_storm(&address, here, false, here).await;
    assert_eq!(login, Some(200));
    assert!(
        guesses.iter().filter(|s| **s == 401).count() > 60,
        "the repeated password is refused from the cache"
    );
    assert!(running.terminate().success());
}

#[tokio::test]
async fn an_endpoint_query_string_never_reaches_the_logs() {
    // Nothing listens on port 1: every request fails, and says so in the log.
    let flags = [
        "--clouddevice.endpoint",
        "http://127.0.0.1:1/gw/?apikey=Qu3ry-s3cret",
        "--iam.endpoint",
        "http://127.0.0.1:1/iam/?apikey=Qu3ry-s3cret",
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.level",
        "debug",
    ];
    let mut cmd = exporter(&[&flags, common::IAM_USER].concat());
    cmd.env("CLOUDDEVICE_IAM_PASSWORD", "pw");
    let running = Running::start(&mut cmd);
    let listening = running.wait_for("listening");
    assert!(listening.contains("http://127.0.0.1:1/gw/"), "{listening}");
    assert!(!listening.contains("Qu3ry-s3cret"), "{listening}");
    let address = listening
        .split_whitespace()
        .find_map(|field| field.strip_prefix("address="))
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();
    let mut shown = String::new();
    for p in ["/metrics", "/"] {
        let answer = http
            .get(format!("http://{address}{p}"))
            .send()
            .await
            .unwrap();
        shown.push_str(&answer.text().await.unwrap());
    }
    let logs = running.drain().join("\n");
    assert!(logs.contains("IAM token request failed"), "{logs}");
    assert!(!logs.contains("Qu3ry-s3cret"), "{logs}");
    assert!(!shown.contains("Qu3ry-s3cret"), "{shown}");
}

#[tokio::test]
async fn one_odd_number_in_one_instance_spoils_only_its_own_field() {
    for odd in ["1e400", "1e19", "3.5", "\"NaN\"", "true", "{}", "[1]"] {
        let rows: Vec<String> = (0..50)
            .map(|n| {
                let running = if n == 7 { odd } else { "2" };
                format!(r#"{{"instance_id":"i-{n}","region":"r","instance_sku":"s","running_status":{running},"frozen_status":0}}"#)
            })
            .collect();
        let body = format!(
            r#"{{"data":{{"result":[{}]}},"total_count":50,"error_code":"0"}}"#,
            rows.join(",")
        );
        let answer = ResponseTemplate::new(200).set_body_raw(body, "application/json");
        let api = answering("GET", PATH, answer).await;
        let exporter = TestExporter::start(&api.uri(), &[]).await;
        let m = exporter.scrape().await;
        assert_eq!(m.up(), 1.0, "{odd}: {}", m.0);
        assert_eq!(m.sum("clouddevice_instances"), 50.0, "{odd}");
        let undocumented =
            r#"clouddevice_instances_by_running_status{region="r",sku="s",status="undocumented"}"#;
        assert_eq!(m.value(undocumented), Some(1.0), "{odd}");
        assert_eq!(
            m.value("clouddevice_exporter_invalid_values_total"),
            Some(1.0),
            "{odd}"
        );
    }
}

#[tokio::test]
async fn by_default_a_client_looping_on_metrics_makes_one_collection_per_window() {
    // 250 phones at 100 a page: one collection is 3 requests. Errors are reused as well, so a
    // failing API is not hammered either.
    let sim = simulator(SimConfig::new(250, 1)).await;
    let (_running, address) = binary_reading(&sim, &[]);
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let mut scrapes = 0;
    // As fast as one client can, for 3 s: well inside the default 10 s window.
    while started.elapsed() < Duration::from_secs(3) {
        let body = text(&http, format!("http://{address}/metrics")).await;
        assert!(body.contains("clouddevice_up 1"), "{body}");
        scrapes += 1;
    }
    assert!(scrapes > 20, "the loop ran: {scrapes} scrapes");
    assert_eq!(sim.requests(), 3, "one collection for {scrapes} scrapes");
}

/// The exporter binary reading `sim`, with the test token, and its address.
fn binary_reading(sim: &SimHandle, flags: &[&str]) -> (Running, String) {
    let url = sim.url();
    let mut args = vec![
        "--clouddevice.endpoint",
        &url,
        "--web.listen-address",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(flags);
    let mut cmd = exporter(&args);
    cmd.env("CLOUDDEVICE_AUTH_TOKEN", TOKEN);
    let running = Running::start(&mut cmd);
    let address = running.listening_address();
    (running, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_a_scrape_waiting_on_a_slow_api_and_exits_within_seconds() {
    let sim = slow_simulator(Duration::from_secs(60)).await;
    let (mut running, address) = binary_reading(&sim, &[]);
    let scrape = tokio::spawn(async move {
        let answer = reqwest::Client::new()
            .get(format!("http://{address}/metrics"))
            .header("X-Prometheus-Scrape-Timeout-Seconds", "120")
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    });
    sim.requests_reach(1).await;
    let status = tokio::task::spawn_blocking(move || running.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let (code, text) = scrape.await.unwrap();
    assert_eq!(
        (code, text.as_str()),
        (503, "the exporter is shutting down\n")
    );
}

/// A client that asks for the metrics of a large fleet and, once the answer has begun, reads
/// no more of it.
async fn stalled_reader(address: &str) -> tokio::net::TcpStream {
    stalled_reader_of(address, "/metrics").await
}

/// The same, of `path`.
async fn stalled_reader_of(address: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_a_client_that_reads_nothing_within_seconds() {
    // 20,000 phones: a body of some 25 MB, far more than the sockets' buffers take.
    let sim = simulator(SimConfig::new(20_000, 1)).await;
    let (mut running, address) = binary_reading(&sim, &[]);
    let _stalled = stalled_reader(&address).await;
    let status = tokio::task::spawn_blocking(move || running.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let sim = simulator(SimConfig::new(20_000, 1)).await;
    let (mut running, address) = binary_reading(&sim, &[]);
    let _stalled = stalled_reader(&address).await;
    let status = tokio::task::spawn_blocking(move || {
        running.signal("TERM");
        running.wait_for("shutting down");
        running.signal("INT");
        running.exit_within(Duration::from_secs(10))
    })
    .await
    .unwrap();
    // Not the graceful exit (0) at the end of the grace: the second signal's.
    assert_eq!(status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_queued_reloads_at_bcrypt_cost_14() {
    let dir = tempfile::tempdir().unwrap();
    // Cost 14: each reload makes the hash for unknown users at that cost, about a second.
    let slow = bcrypt::hash("a-pass", 14).unwrap();
    let yaml = format!("basic_auth_users:\n  alice: {slow}\n");
    let (mut running, address) =
        start_with_web_config(dir.path(), &yaml, &["--web.enable-lifecycle"]);
    let http = reqwest::Client::new();
    let reload = || {
        http.post(format!("http://{address}/-/reload"))
            .basic_auth("alice", Some("a-pass"))
            .send()
    };
    // The first login is checked (a second); the reloads after it find it remembered.
    assert_eq!(reload().await.unwrap().status(), 200);
    let mut reloads = Vec::new();
    for _ in 0..20 {
        reloads.push(tokio::spawn(reload()));
    }
    let (status, after) = tokio::task::spawn_blocking(move || {
        // The reloads are queued once the first has gone through.
        running.wait_for("reloaded the configuration");
        running.signal("TERM");
        running.wait_for("shutting down");
        let status = running.exit_within(Duration::from_secs(10));
        (status, running.rest())
    })
    .await
    .unwrap();
    assert!(status.success(), "{status:?}");
    let late: Vec<&String> = after.iter().filter(|l| l.contains("reloaded")).collect();
    assert!(late.is_empty(), "reloads went on after SIGTERM: {late:?}");
    for reload in reloads {
        reload.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_hold_a_bounded_number_of_answers_over_all_accounts() {
    // Three accounts of 20,000 phones: each answer is far more than the sockets' buffers take,
    // so a client that stops reading holds its answer (about 1 MB of the exporter's memory).
    let tenants = (1..=3)
        .map(|k| {
            let config = SimConfig {
                token: Some(format!("tok-{k}")),
                ..SimConfig::new(20_000, k)
            };
            (format!("a{k}"), config)
        })
        .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = clouddevice_simulator::start_accounts(tenants, listener).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut file = String::from("accounts:\n");
    for k in 1..=3 {
        let token = dir.path().join(format!("a{k}.token"));
        std::fs::write(&token, format!("tok-{k}")).unwrap();
        let (url, token) = (sim.url(), token.display());
        file.push_str(&format!(
            "  a{k}:\n    endpoint: {url}\n    token_file: {token}\n"
        ));
    }
    let accounts = dir.path().join("accounts.yml");
    std::fs::write(&accounts, file).unwrap();
    let flags = [
        "--config.file",
        accounts.to_str().unwrap(),
        "--web.max-requests",
        "2",
        "--web.max-requests-total",
        "3",
    ];
    let exporter = TestExporter::start_flags(&flags, EnvLookup::default()).await;
    let address = exporter.addr.to_string();
    let mut stalled = Vec::new();
    for target in ["a1", "a1", "a2"] {
        stalled.push(stalled_reader_of(&address, &format!("/probe?target={target}")).await);
    }
    // a3 has no answer in flight, but the three stalled ones are all the process allows.
    let answer = exporter.get("/probe?target=a3").await;
    assert_eq!(answer.status(), 503);
    let text = answer.text().await.unwrap();
    assert!(text.contains("--web.max-requests-total"), "{text}");
    drop(stalled);
}

#[tokio::test]
async fn secrets_in_instance_data_and_in_encoded_or_partial_forms_are_never_republished() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(ECHO_TOKEN);
    let url: String = ECHO_TOKEN.bytes().map(|b| format!("%{b:02X}")).collect();
    // Labels: the name, the project and the region carry the token in three forms.
    let row = json!({"instance_id": "i-1", "instance_name": format!("phone {ECHO_TOKEN}"),
                     "project_name": b64, "region": url, "running_status": 2});
    let page = json!({"data": {"result": [row]}, "total_count": 1, "error_code": "0"});
    let server = answering("GET", PATH, ResponseTemplate::new(200).set_body_json(page)).await;
    let env = EnvLookup::of([(TOKEN_ENV.into(), Secret::new(ECHO_TOKEN))]);
    let exporter = TestExporter::start_with(&server.uri(), &[], env.clone()).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0);
    for form in [ECHO_TOKEN, &b64, &url] {
        assert!(!m.0.contains(form), "{form} in a label:\n{}", m.0);
    }
    assert!(m.contains("phone <redacted>"), "{}", m.0);

    // An error code that is a code-shaped piece of the token, and the token encoded in the
    // message: the code is no label, and no form reaches the landing page.
    let piece = &ECHO_TOKEN[..12];
    let body = json!({"error_code": piece, "error_msg": format!("bad {b64} or {url}")});
    let server = answering("GET", PATH, ResponseTemplate::new(400).set_body_json(body)).await;
    let exporter = TestExporter::start_with(&server.uri(), &[], env).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert!(!m.0.contains(piece), "{piece} became a label:\n{}", m.0);
    // Counted by its status, as a code that is no code's shape is.
    assert_eq!(m.errors("http_400"), Some(1.0), "{}", m.0);
    let page = landing(&exporter).await;
    for form in [piece, &b64, &url] {
        assert!(!page.contains(form), "{form} on the landing page: {page}");
    }
}
