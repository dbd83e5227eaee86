//! The real binary as an operator runs it: bad input gives one clear line and a non-zero exit,
//! `--demo` serves a fleet, SIGTERM stops it cleanly, and the token never shows in its logs.

use crate::common;

use std::process::{Command, Output, Stdio};

use common::{exporter, Running};

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("the binary runs")
}

/// Asserts a start-up failure: the exit code, and exactly one line on stderr containing `needle`.
fn assert_one_line_error(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line expected, got: {stderr}"
    );
    assert!(stderr.starts_with("clouddevice_exporter: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
}

#[test]
fn a_bad_flag_value_is_one_line_naming_the_flag() {
    let out = run(&mut exporter(&["--clouddevice.page-size", "lots"]));
    assert_one_line_error(&out, 2, "--clouddevice.page-size");
    let out = run(&mut exporter(&["--clouddevice.timeout", "10"]));
    assert_one_line_error(&out, 2, "write a duration such as 10s");
    let out = run(&mut exporter(&["--web.listen-address", "10123", "--demo"]));
    assert_one_line_error(&out, 2, "--web.listen-address");
}

#[test]
fn a_bad_value_from_the_environment_is_refused_too() {
    let out = run(exporter(&["--demo"]).env("CLOUDDEVICE_EXPORTER_CLOUDDEVICE_CONCURRENCY", "0"));
    assert_one_line_error(&out, 2, "--clouddevice.concurrency");
}

#[test]
fn an_unreadable_token_file_is_one_line_naming_the_file() {
    let out = run(&mut exporter(&[
        "--clouddevice.auth-token-file",
        "/nonexistent/token",
    ]));
    assert_one_line_error(&out, 2, "/nonexistent/token");
}

#[test]
fn no_credentials_says_where_to_put_them() {
    let out = run(&mut exporter(&[]));
    assert_one_line_error(&out, 2, "CLOUDDEVICE_AUTH_TOKEN");
}

#[test]
fn two_credential_modes_are_refused_in_one_line() {
    let mut cmd = exporter(common::IAM_USER);
    cmd.env("CLOUDDEVICE_IAM_PASSWORD", "pw")
        .env("CLOUDDEVICE_AUTH_TOKEN", "t");
    let out = run(&mut cmd);
    assert_one_line_error(
        &out,
        2,
        "sign-in: a token (--clouddevice.auth-token-file or CLOUDDEVICE_AUTH_TOKEN) and an IAM user (--iam.username with --iam.password-file or CLOUDDEVICE_IAM_PASSWORD) are set together; keep exactly one",
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("pw"));
}

#[test]
fn a_listen_address_in_use_is_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = run(&mut exporter(&["--demo", "--web.listen-address", &address]));
    assert_one_line_error(
        &out,
        1,
        &format!("cannot listen on --web.listen-address {address}"),
    );
}

#[test]
fn version_and_help() {
    let out = run(&mut exporter(&["--version"]));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = run(&mut exporter(&["--help"]));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--web.listen-address",
        "--clouddevice.endpoint",
        "--collector.instance-metrics",
        "--demo",
    ] {
        assert!(help.contains(flag), "{flag} not in --help");
    }
}

use common::get;

#[test]
fn demo_serves_a_fleet_and_sigterm_stops_it_cleanly() {
    let (mut demo, address) = common::demo();
    let (status, body) = get(&format!("http://{address}/metrics"));
    assert_eq!(status, 200);
    assert!(body.contains("clouddevice_up 1"), "{body}");
    assert!(body.contains("clouddevice_instances{"));
    assert!(body.contains("process_resident_memory_bytes"));
    assert!(body.contains("clouddevice_exporter_build_info{"));
    // What the README's second job asks for: the exporter's own metrics, not the fleet that
    // the first job reads from /probe.
    let (status, own) = get(&format!("http://{address}/metrics?collect[]=exporter"));
    assert_eq!(status, 200);
    assert!(own.contains("clouddevice_exporter_build_info{"), "{own}");
    assert!(!own.contains("clouddevice_instances") && !own.contains("clouddevice_instance_"));
    let exit = demo.terminate();
    assert!(exit.success(), "exit after SIGTERM: {exit}");
}

#[test]
fn a_bare_port_answers_on_ipv4_and_ipv6_loopback() {
    let mut demo = Running::start(&mut exporter(&["--demo", "--web.listen-address", ":0"]));
    let address = demo.listening_address();
    let port = address.rsplit_once(':').expect("HOST:PORT").1;
    let (status, _) = get(&format!("http://127.0.0.1:{port}/-/healthy"));
    assert_eq!(status, 200);
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let (status, _) = get(&format!("http://[::1]:{port}/-/healthy"));
        assert_eq!(status, 200);
    } else {
        eprintln!("no IPv6 on this machine: only 127.0.0.1 was asked");
    }
    assert!(demo.terminate().success());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut demo = Running::start(&mut exporter(&[
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.format",
        "json",
    ]));
    let line = demo.wait_for("listening");
    let parsed: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(parsed["level"], "INFO");
    assert!(parsed["address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(demo.terminate().success());
}

#[test]
fn the_token_never_appears_in_logs_or_metrics() {
    let secret = "sEcReT-t0ken-never-to-be-seen";
    let dir = tempfile::tempdir().unwrap();
    let sim_token = dir.path().join("sim-token");
    std::fs::write(&sim_token, "the-only-token-the-simulator-accepts").unwrap();
    let sim = Running::start(&mut exporter(&[
        "simulate",
        "--listen-address",
        "127.0.0.1:0",
        "--instances",
        "50",
        "--auth-token-file",
        sim_token.to_str().unwrap(),
    ]));
    let sim_address = sim.listening_address();
    let mut exp = Running::start(
        exporter(&[
            "--web.listen-address",
            "127.0.0.1:0",
            "--clouddevice.endpoint",
            &format!("http://{sim_address}"),
            "--log.level",
            "debug",
        ])
        .env("CLOUDDEVICE_AUTH_TOKEN", secret),
    );
    let address = exp.listening_address();
    let (_, body) = get(&format!("http://{address}/metrics"));
    assert!(
        body.contains("clouddevice_up 0"),
        "the simulator refuses this token"
    );
    assert!(body.contains(r#"error_code="APIGW.0301""#));
    let (_, landing) = get(&format!("http://{address}/"));
    let logs = exp.drain().join("\n");
    assert!(logs.contains("APIGW.0301"), "the failure is logged: {logs}");
    assert!(logs.contains("request_id="), "with its request id: {logs}");
    for text in [&body, &landing, &logs] {
        assert!(!text.contains(secret), "the token leaked: {text}");
    }
    assert!(exp.terminate().success());
    drop(sim);
}

#[test]
fn an_endpoint_with_a_password_is_refused_without_printing_it() {
    let out = run(exporter(&["--demo"]).env(
        "CLOUDDEVICE_EXPORTER_CLOUDDEVICE_ENDPOINT",
        "http://user:pw-5ecret@127.0.0.1:1/",
    ));
    assert_one_line_error(&out, 2, "--clouddevice.endpoint");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("5ecret"));
    let out = run(exporter(common::IAM_USER)
        .env("CLOUDDEVICE_IAM_PASSWORD", "x")
        .env(
            "CLOUDDEVICE_EXPORTER_IAM_ENDPOINT",
            "https://u:pw-5ecret@iam.example/",
        ));
    assert_one_line_error(&out, 2, "--iam.endpoint");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("5ecret"));
}

#[test]
fn healthcheck_answers_with_its_exit_code() {
    let (mut demo, address) = common::demo();
    let url = format!("http://{address}/-/healthy");
    let out = run(&mut exporter(&["healthcheck", "--url", &url]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A path that is not the health endpoint: a 404 is unhealthy.
    let wrong = format!("http://{address}/-/nothing");
    assert_one_line_error(
        &run(&mut exporter(&["healthcheck", "--url", &wrong])),
        1,
        "404",
    );
    assert!(demo.terminate().success());
    // Nothing listens any more.
    assert_one_line_error(
        &run(&mut exporter(&["healthcheck", "--url", &url])),
        1,
        &address,
    );
}

#[test]
fn healthcheck_trusts_the_ca_it_is_given_for_https() {
    let dir = tempfile::tempdir().unwrap();
    common::make_pki(dir.path());
    // Basic auth on every path but /-/healthy, which the check needs no password for.
    let web = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: {}\n",
        common::hash("pw")
    );
    let (mut running, address) = common::start_with_web_config(dir.path(), &web, &[]);
    let url = format!("https://{address}/-/healthy");
    let ca = dir.path().join("ca.crt");
    let out = run(&mut exporter(&[
        "healthcheck",
        "--url",
        &url,
        "--tls.ca-file",
        ca.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Without the CA, the certificate is not trusted.
    assert_one_line_error(
        &run(&mut exporter(&["healthcheck", "--url", &url])),
        1,
        "certificate",
    );
    assert!(running.terminate().success());
}

#[test]
fn check_reads_every_demo_account_and_exits_0() {
    let out = run(&mut exporter(&["check", "--demo"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for account in ["retail", "games"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("account {account} ")))
            .unwrap_or_else(|| panic!("no line for {account}: {stdout}"));
        assert!(line.contains("(a static token): OK: "), "{line}");
        assert!(
            line.contains(" phones in ") && line.contains(" request(s), 0 throttled"),
            "{line}"
        );
        assert!(line.contains(" page(s), "), "{line}");
    }
    assert!(stdout.contains("  by region: cn-"), "{stdout}");
    assert!(stdout.contains("  frozen: normal "), "{stdout}");
    let out = run(&mut exporter(&[
        "check",
        "--demo",
        "--account",
        "games",
        "--config-only",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout, "the configuration is valid: 1 account(s): games\n");
}

/// `clouddevice_exporter check` against `sim`, with these flags after the endpoints and these
/// environment variables, run off the async threads; it must exit with `code` and print each of
/// `needles`. Its output and its log.
async fn check_against(
    sim: &clouddevice_simulator::SimHandle,
    flags: &[&str],
    env: &[(&str, &str)],
    (code, needles): (i32, &[&str]),
) -> (String, String) {
    let url = sim.url();
    let mut cmd = exporter(&[
        "check",
        "--clouddevice.endpoint",
        &url,
        "--iam.endpoint",
        &url,
    ]);
    cmd.args(flags);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = tokio::task::spawn_blocking(move || run(&mut cmd))
        .await
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "{stdout}{stderr}");
    common::assert_holds(&stdout, needles);
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_with_a_wrong_password_exits_1_saying_it_was_refused() {
    let sim = common::simulator(clouddevice_simulator::SimConfig {
        iam_user: Some(clouddevice_simulator::SimIamUser {
            name: "reader".into(),
            domain: "corp".into(),
            password: "right-pa55word".into(),
        }),
        ..clouddevice_simulator::SimConfig::new(10, 3)
    })
    .await;
    let flags = [
        "--iam.username",
        "reader",
        "--iam.domain",
        "corp",
        "--iam.project",
        "cn-north-4",
    ];
    let env = [("CLOUDDEVICE_IAM_PASSWORD", "wr0ng-pa55word")];
    let needles = [
        "account default (an IAM user's password): FAILED",
        "The username or password is wrong",
        "check --iam.username",
    ];
    let (stdout, stderr) = check_against(&sim, &flags, &env, (1, &needles)).await;
    assert!(!stdout.contains("wr0ng-pa55word") && !stderr.contains("wr0ng-pa55word"));
    assert_eq!(sim.iam_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_which_project_an_access_key_found() {
    let sim = common::simulator(clouddevice_simulator::SimConfig {
        access_key: Some(("AKCHECK".into(), "sk-check-5ecret".into())),
        ..clouddevice_simulator::SimConfig::new(10, 4)
    })
    .await;
    let env = [
        ("CLOUDDEVICE_ACCESS_KEY", "AKCHECK"),
        ("CLOUDDEVICE_SECRET_KEY", "sk-check-5ecret"),
    ];
    let flags = ["--clouddevice.region", "cn-north-4"];
    let needles = [
        "account default (an access key): OK: 10 phones",
        " 1 page(s), 1 request(s), 0 throttled",
        "  project (X-Project-Id): project-of-cn-north-4",
    ];
    let (stdout, _) = check_against(&sim, &flags, &env, (0, &needles)).await;
    assert!(!stdout.contains("sk-check-5ecret"));
}
