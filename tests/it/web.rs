//! `--web.config.file` with real TLS clients on loopback: HTTPS with a CA made here, plain HTTP
//! refused on the TLS port, client certificates required, basic auth on every path but
//! `/-/healthy`, extra headers, and a SIGHUP that swaps the users without a restart.

use crate::common;

use common::{exporter, hash, make_pki, start_with_web_config as start, tls_handshake, Pki};

fn client(pki: &Pki, with_identity: bool) -> reqwest::Client {
    client_as(pki, with_identity.then_some(pki.client_identity.as_str()))
}

fn client_as(pki: &Pki, identity: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca.as_bytes()).unwrap()]);
    if let Some(identity) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_works_with_the_test_ca_and_plain_http_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let (mut running, address) = start(
        dir.path(),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\n",
        &[],
    );
    let https = client(&pki, false)
        .get(format!("https://{address}/metrics"))
        .send()
        .await
        .expect("an HTTPS answer");
    assert_eq!(https.status(), 200);
    assert!(https.text().await.unwrap().contains("clouddevice_up 1"));
    let plain = reqwest::get(format!("http://{address}/metrics")).await;
    assert!(
        plain.is_err() || plain.unwrap().status() != 200,
        "plain HTTP must not be served"
    );
    assert!(running.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_refused_when_one_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let (mut running, address) = start(
        dir.path(),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
        &[],
    );
    let url = format!("https://{address}/-/healthy");
    assert!(
        client(&pki, false).get(&url).send().await.is_err(),
        "no certificate, no answer"
    );
    let with_cert = client(&pki, true)
        .get(&url)
        .send()
        .await
        .expect("an answer");
    assert_eq!(with_cert.status(), 200);
    assert!(running.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_every_path_but_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "basic_auth_users:\n  prometheus: {}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        hash("right-password")
    );
    let (mut running, address) = start(dir.path(), &yaml, &[]);
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{address}{path}");
    let ok = http
        .get(url("/metrics"))
        .basic_auth("prometheus", Some("right-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-frame-options"], "deny");
    for (user, password) in [("prometheus", "wrong"), ("nobody", "right-password")] {
        let refused = http
            .get(url("/metrics"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{user}");
    }
    for path in ["/metrics", "/", "/-/ready"] {
        let missing = http.get(url(path)).send().await.unwrap();
        assert_eq!(missing.status(), 401, "{path}");
        assert!(missing.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
    }
    assert_eq!(
        http.get(url("/-/healthy")).send().await.unwrap().status(),
        200
    );
    assert!(running.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_users_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, address) = start(
        dir.path(),
        &format!("basic_auth_users:\n  alice: {}\n", hash("a-pass")),
        &[],
    );
    let url = format!("http://{address}/metrics");
    let status = |user, password| common::status_as(&url, user, password);
    assert_eq!(status("alice", "a-pass").await, 200);
    assert_eq!(status("bob", "b-pass").await, 401);

    std::fs::write(
        dir.path().join("web.yml"),
        format!("basic_auth_users:\n  bob: {}\n", hash("b-pass")),
    )
    .unwrap();
    running.hangup();
    running.wait_for("reloaded the configuration");
    assert_eq!(status("bob", "b-pass").await, 200);
    assert_eq!(status("alice", "a-pass").await, 401);

    // A broken file is logged and the working configuration kept.
    std::fs::write(
        dir.path().join("web.yml"),
        "basic_auth_users:\n  bob: not-a-hash\n",
    )
    .unwrap();
    running.hangup();
    let line = running.wait_for("cannot reload the configuration");
    assert!(line.contains("basic_auth_users.bob"), "{line}");
    assert_eq!(status("bob", "b-pass").await, 200);
    assert!(running.terminate().success());
}

#[test]
fn a_web_config_with_an_unknown_key_stops_the_start_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yml");
    std::fs::write(
        &file,
        "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  cipher_suitez: [x]\n",
    )
    .unwrap();
    let out = exporter(&["--demo", "--web.config.file", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cipher_suitez"), "{stderr}");
    std::fs::write(
        &file,
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
    )
    .unwrap();
    let out = exporter(&["--demo", "--web.config.file", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.crt"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_client_certificates_with_an_allowed_san_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let (mut running, address) = start(
        dir.path(),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [prometheus.example]\n",
        &[],
    );
    let url = format!("https://{address}/-/healthy");
    let allowed = client_as(&pki, Some(&pki.client_identity))
        .get(&url)
        .send()
        .await
        .expect("an answer");
    assert_eq!(allowed.status(), 200);
    assert!(
        client_as(&pki, Some(&pki.other_identity))
            .get(&url)
            .send()
            .await
            .is_err(),
        "a certificate the CA signed, but for another name, is refused"
    );
    assert!(running.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_suite_and_curve_are_the_configured_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let (mut running, address) = start(
        dir.path(),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [CurveP384]\n",
        &[],
    );
    let negotiated = tokio::task::spawn_blocking(move || {
        // A client that offers everything, preferring other choices than the server's.
        let (tls, _socket) = tls_handshake(&pki.ca, &address);
        (
            format!("{:?}", tls.protocol_version().unwrap()),
            format!("{:?}", tls.negotiated_cipher_suite().unwrap().suite()),
            format!("{:?}", tls.negotiated_key_exchange_group().unwrap().name()),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        negotiated,
        (
            "TLSv1_2".to_string(),
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".to_string(),
            "secp384r1".to_string()
        )
    );
    assert!(running.terminate().success());
}

#[tokio::test]
async fn a_reload_posted_by_a_page_of_another_site_is_refused() {
    let (_sim, exporter) = common::sim_and_exporter(
        clouddevice_simulator::SimConfig::new(5, 1),
        &["--web.enable-lifecycle"],
    )
    .await;
    let http = reqwest::Client::new();
    let post = |origin: Option<String>| {
        let mut request = http.post(exporter.url("/-/reload"));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // A cross-site form POST: refused. A sandboxed page's `null` too.
    assert_eq!(post(Some("http://evil.example".into())).await, 403);
    assert_eq!(post(Some("null".into())).await, 403);
    let other_port = format!("http://127.0.0.1:{}", exporter.addr.port() + 1);
    assert_eq!(post(Some(other_port)).await, 403);
    // curl (no Origin) and the exporter's own pages: reloaded.
    assert_eq!(post(None).await, 200);
    assert_eq!(post(Some(format!("http://{}", exporter.addr))).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_tls_port_says_to_write_https() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let (mut running, address) = start(
        dir.path(),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        &[],
    );
    // An exporter whose API endpoint is that TLS port, written http://.
    let exporter = common::TestExporter::start(&format!("http://{address}"), &[]).await;
    assert_eq!(exporter.scrape().await.up(), 0.0);
    let landing = exporter.get("/").await.text().await.unwrap();
    assert!(
        landing.contains("got no HTTP answer to a plain http:// request")
            && landing
                .contains("if that port speaks TLS, write https:// in --clouddevice.endpoint"),
        "{landing}"
    );
    assert!(running.terminate().success());
}

#[tokio::test]
async fn the_web_configuration_is_the_reloaders_before_anything_is_served() {
    use clouddevice_exporter::cli::account::{EnvLookup, TOKEN_ENV};
    use clouddevice_exporter::run::{build, Cli};
    use clouddevice_exporter::secret::Secret;
    use clouddevice_exporter::web::Serving;
    // What the exporter does before it logs `listening`, and so before a SIGHUP is acted on.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yml");
    std::fs::write(
        &file,
        format!("basic_auth_users:\n  alice: {}\n", hash("a-pass")),
    )
    .unwrap();
    let args = [
        "clouddevice_exporter",
        "--web.config.file",
        file.to_str().unwrap(),
    ];
    let env = EnvLookup::of([(TOKEN_ENV.into(), Secret::new("t"))]);
    let config = Cli::from_args(args)
        .unwrap()
        .exporter
        .validate(env)
        .unwrap();
    let app = build(&config).unwrap();
    assert_eq!(app.reloader.files().0, None, "nothing is served yet");
    let _serving = Serving::new(config.conn_limits, config.web.clone(), &app.reloader);
    assert_eq!(app.reloader.files().0, Some(file));
    let said = app.reloader.reload().await.unwrap();
    assert!(said.contains("the web configuration"), "{said}");
}
