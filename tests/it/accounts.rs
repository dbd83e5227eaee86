//! Many accounts from one exporter (`--config.file`): each probed on `/probe?target=NAME` against
//! a simulator that serves several accounts with their own credentials and fleets; `/sd` lists
//! them; one account's failure or slowness stays its own; the cap on requests in flight holds
//! over all accounts; SIGHUP reloads the file and keeps unchanged accounts' IAM tokens.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clouddevice_exporter::cli::account::EnvLookup;
use clouddevice_exporter::secret::Secret;
use clouddevice_simulator::{self, Fault, FaultKind, SimConfig, SimHandle, SimIamUser};
use common::{exporter, Running, Scraped, TestExporter};
use tokio::net::TcpListener;

/// Three accounts, one per sign-in mode, each with a fleet of its own.
async fn three_account_simulator(retail_latency: Duration) -> SimHandle {
    let retail = SimConfig {
        token: Some(String::from("tok-retail")),
        latency: retail_latency,
        ..SimConfig::new(120, 11)
    };
    let games = SimConfig {
        iam_user: Some(SimIamUser {
            name: "metrics-reader".into(),
            domain: "games-corp".into(),
            password: String::from("pw-games"),
        }),
        ..SimConfig::new(250, 12)
    };
    let labs = SimConfig {
        access_key: Some(("AK-labs".into(), String::from("SK-labs"))),
        ..SimConfig::new(75, 13)
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tenants = vec![
        ("retail".to_string(), retail),
        ("games".to_string(), games),
        ("labs".to_string(), labs),
    ];
    clouddevice_simulator::start_accounts(tenants, listener).unwrap()
}

/// A folder with the secrets files and the accounts file.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Files {
        let files = Files(tempfile::tempdir().unwrap());
        files.secret("retail.token", "tok-retail");
        files.secret("games.password", "pw-games");
        files
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn secret(&self, name: &str, text: &str) {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    /// Writes the accounts file from its account entries and returns its path.
    fn accounts(&self, entries: &[String]) -> String {
        let path = self.path("accounts.yml");
        std::fs::write(&path, format!("accounts:\n{}", entries.concat())).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn retail(&self, url: &str) -> String {
        let token = self.path("retail.token");
        format!(
            "  retail:\n    endpoint: {url}\n    token_file: {}\n",
            token.display()
        )
    }

    fn games(&self, url: &str, extra: &str) -> String {
        let password = self.path("games.password");
        format!(
            "  games:\n    endpoint: {url}\n    iam: {{endpoint: {url}, username: metrics-reader, domain: games-corp,\n          project: cn-north-4, password_file: {}}}\n{extra}",
            password.display()
        )
    }

    fn labs(url: &str) -> String {
        format!("  labs:\n    endpoint: {url}\n    access_key: {{access_key_env: LABS_AK, secret_key_env: LABS_SK}}\n    project_id: p-labs\n")
    }
}

fn labs_env() -> EnvLookup {
    EnvLookup::of([
        ("LABS_AK".into(), Secret::new("AK-labs")),
        ("LABS_SK".into(), Secret::new("SK-labs")),
    ])
}

async fn start(config: &str, flags: &[&str]) -> TestExporter {
    let args: Vec<&str> = ["--config.file", config]
        .into_iter()
        .chain(flags.iter().copied())
        .collect();
    TestExporter::start_flags(&args, labs_env()).await
}

async fn probe(exporter: &TestExporter, target: &str) -> Scraped {
    let response = exporter.get(&format!("/probe?target={target}")).await;
    assert_eq!(response.status(), 200, "probe of {target}");
    Scraped(response.text().await.unwrap())
}

/// Instances per region, as the simulator serves them to one account.
fn regions_of(sim: &SimHandle) -> BTreeMap<String, f64> {
    let mut regions = BTreeMap::new();
    for instance in sim.fleet().iter() {
        *regions.entry(instance.region.clone()).or_default() += 1.0;
    }
    regions
}

/// Instances per region, as one scrape exports them.
fn regions_in(scraped: &Scraped) -> BTreeMap<String, f64> {
    let mut regions = BTreeMap::new();
    for (labels, value) in scraped.samples("clouddevice_instances") {
        let region = labels
            .split(',')
            .find_map(|l| l.strip_prefix("region=\""))
            .map(|r| r.trim_end_matches('"').to_string())
            .expect("a region label");
        *regions.entry(region).or_default() += value;
    }
    regions
}

#[tokio::test]
async fn three_accounts_in_three_sign_in_modes_each_get_exactly_their_own_fleet() {
    let sim = three_account_simulator(Duration::ZERO).await;
    let files = Files::new();
    let url = sim.url();
    let config = files.accounts(&[files.retail(&url), files.games(&url, ""), Files::labs(&url)]);
    let exporter = start(&config, &[]).await;
    for name in ["retail", "games", "labs"] {
        let scraped = probe(&exporter, name).await;
        let tenant = sim.account(name).unwrap();
        assert_eq!(scraped.up(), 1.0, "{name}: {}", scraped.0);
        assert_eq!(
            scraped.sum("clouddevice_instances"),
            tenant.fleet().len() as f64,
            "{name}"
        );
        assert_eq!(regions_in(&scraped), regions_of(&tenant), "{name}");
        // The account's own requests, and none of another's: only games signs in with IAM.
        let iam_requests = scraped
            .samples("clouddevice_exporter_api_requests_total")
            .iter()
            .filter(|(labels, _)| labels.contains("api=\"iam_token\""))
            .count();
        assert_eq!(iam_requests > 0, name == "games", "{name}: {}", scraped.0);
        // The process's own metrics are on /metrics, not in every probe.
        assert!(!scraped.contains("process_"), "{name}");
    }
    // Each account's credentials went to its own fleet only: the simulator routes by
    // credentials, and every account was asked for its pages.
    for name in ["retail", "games", "labs"] {
        assert!(sim.account(name).unwrap().requests() > 0, "{name}");
    }
    assert_eq!(sim.account("games").unwrap().iam_requests(), 1);
    assert!(!sim.account("labs").unwrap().signatures().is_empty());

    // /metrics is the exporter's own.
    let own = exporter.scrape().await;
    assert_eq!(own.value("clouddevice_exporter_accounts"), Some(3.0));
    assert!(own.value("clouddevice_up").is_none(), "{}", own.0);
    assert!(own.contains("clouddevice_exporter_build_info{"));

    // Service discovery lists every account, probed at the address asked.
    let sd: serde_json::Value =
        serde_json::from_str(&exporter.get("/sd").await.text().await.unwrap()).unwrap();
    let groups = sd.as_array().unwrap();
    assert_eq!(groups.len(), 3);
    for (group, name) in groups.iter().zip(["games", "labs", "retail"]) {
        assert_eq!(group["targets"][0], exporter.addr.to_string());
        assert_eq!(group["labels"]["account"], name);
        assert_eq!(group["labels"]["__param_target"], name);
        assert_eq!(group["labels"]["__metrics_path__"], "/probe");
    }
}

#[tokio::test]
async fn unknown_or_missing_targets_are_400_naming_them_and_collect_works_on_probes() {
    let sim = three_account_simulator(Duration::ZERO).await;
    let files = Files::new();
    let config = files.accounts(&[files.retail(&sim.url())]);
    let exporter = start(&config, &[]).await;
    let response = exporter.get("/probe?target=wholesale").await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("\"wholesale\"") && text.contains("/sd"),
        "{text}"
    );
    let response = exporter.get("/probe").await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("target=ACCOUNT"));
    let response = exporter.get("/probe?target=retail&target=retail").await;
    assert_eq!(response.status(), 400);
    let response = exporter
        .get("/probe?target=retail&collect[]=aggregates")
        .await;
    assert_eq!(response.status(), 200);
    let scraped = Scraped(response.text().await.unwrap());
    assert_eq!(scraped.sum("clouddevice_instances"), 120.0);
    assert!(!scraped.contains("clouddevice_instance_info"));
    let response = exporter
        .get("/probe?target=retail&collect[]=everything")
        .await;
    assert_eq!(response.status(), 400);
}

/// The first target `/sd` lists when asked with these `Host` headers, with its probe path.
async fn sd_target(exporter: &TestExporter, hosts: &[&str]) -> String {
    let mut request = reqwest::Client::new().get(exporter.url("/sd"));
    for host in hosts {
        request = request.header(reqwest::header::HOST, *host);
    }
    let text = request.send().await.unwrap().text().await.unwrap();
    let sd: serde_json::Value = serde_json::from_str(&text).unwrap();
    let path = sd[0]["labels"]["__metrics_path__"].as_str().unwrap();
    format!("{}{path}", sd[0]["targets"][0].as_str().unwrap())
}

#[tokio::test]
async fn sd_lists_only_addresses_the_exporter_was_configured_with_whatever_host_is_sent() {
    let sim = three_account_simulator(Duration::ZERO).await;
    let files = Files::new();
    let config = files.accounts(&[files.retail(&sim.url())]);
    let exporter = start(&config, &[]).await;
    let here = exporter.addr.to_string();
    let probed_here = format!("{here}/probe");
    for hostile in [
        vec!["evil.example.com:443"],
        vec!["169.254.169.254:80"],
        vec!["evil.example.com:443", here.as_str()],
        vec![here.as_str(), "evil.example.com:443"],
    ] {
        assert_eq!(
            sd_target(&exporter, &hostile).await,
            probed_here,
            "{hostile:?}"
        );
    }
    assert_eq!(sd_target(&exporter, &[]).await, probed_here);

    let exporter = start(
        &config,
        &["--web.external-url", "https://exporter.example/clouddevice"],
    )
    .await;
    assert_eq!(
        sd_target(&exporter, &["evil.example.com:443"]).await,
        "exporter.example:443/clouddevice/probe",
        "probes through the external URL go under its path"
    );
    let here = exporter.addr.to_string();
    assert_eq!(
        sd_target(&exporter, &[here.as_str()]).await,
        format!("{here}/probe"),
        "a Host naming where the request arrived is kept"
    );
}

#[tokio::test]
async fn wrong_credentials_fail_only_their_own_account() {
    let sim = three_account_simulator(Duration::ZERO).await;
    let files = Files::new();
    files.secret("retail.token", "tok-from-last-year");
    let url = sim.url();
    let config = files.accounts(&[files.retail(&url), files.games(&url, ""), Files::labs(&url)]);
    let exporter = start(&config, &[]).await;
    let retail = probe(&exporter, "retail").await;
    assert_eq!(retail.up(), 0.0);
    assert!(retail.samples("clouddevice_instances").is_empty());
    assert!(
        retail.contains("clouddevice_exporter_api_errors_total{error_code=\"APIGW.0301\"} 1"),
        "{}",
        retail.0
    );
    for name in ["games", "labs"] {
        let scraped = probe(&exporter, name).await;
        assert_eq!(scraped.up(), 1.0, "{name}");
        assert!(!scraped.contains("APIGW.0301"), "{name}: {}", scraped.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_account_does_not_hold_up_the_others() {
    // Every page of retail takes a minute; the others answer at once.
    let sim = three_account_simulator(Duration::from_secs(60)).await;
    let files = Files::new();
    let url = sim.url();
    let config = files.accounts(&[files.retail(&url), files.games(&url, ""), Files::labs(&url)]);
    let exporter = std::sync::Arc::new(start(&config, &["--scrape.timeout", "50s"]).await);
    let slow = {
        let exporter = exporter.clone();
        tokio::spawn(async move { exporter.get("/probe?target=retail").await })
    };
    // Retail's collection is under way (its first page is in the simulator) before the others
    // are probed.
    let retail = sim.account("retail").unwrap();
    tokio::time::timeout(Duration::from_secs(30), retail.requests_reach(1))
        .await
        .expect("retail's first page reaches the simulator");
    for name in ["games", "labs", "games"] {
        let scraped = probe(&exporter, name).await;
        assert_eq!(scraped.up(), 1.0, "{name}");
    }
    assert!(
        !slow.is_finished(),
        "the others were answered while retail was still being read"
    );
    slow.abort();
}

/// Three accounts of 1,000 phones at ten pages each, each token its own, on one simulator
/// that answers every page after 100 ms; each account reads four pages at a time.
async fn three_paging_accounts() -> (SimHandle, Files, String) {
    let tenants = (1..=3)
        .map(|k| {
            let config = SimConfig {
                token: Some(format!("tok-{k}")),
                latency: Duration::from_millis(100),
                ..SimConfig::new(1_000, k)
            };
            (format!("a{k}"), config)
        })
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = clouddevice_simulator::start_accounts(tenants, listener).unwrap();
    let files = Files::new();
    let entries: Vec<String> = (1..=3)
        .map(|k| {
            files.secret(&format!("a{k}.token"), &format!("tok-{k}"));
            format!(
                "  a{k}:\n    endpoint: {}\n    token_file: {}\n    concurrency: 4\n",
                sim.url(),
                files.path(&format!("a{k}.token")).display()
            )
        })
        .collect();
    let config = files.accounts(&entries);
    (sim, files, config)
}

#[tokio::test]
async fn requests_in_flight_stay_under_the_cap_over_all_accounts() {
    // Twelve at once without the cap; with a cap of 3, three shared and each account's own.
    let (sim, _files, config) = three_paging_accounts().await;
    let exporter = start(&config, &["--clouddevice.max-requests-in-flight", "3"]).await;
    for _round in 0..3 {
        let (a, b, c) = tokio::join!(
            probe(&exporter, "a1"),
            probe(&exporter, "a2"),
            probe(&exporter, "a3")
        );
        for scraped in [a, b, c] {
            assert_eq!(scraped.sum("clouddevice_instances"), 1_000.0);
        }
    }
    let most = sim.most_in_flight();
    assert!(most <= 3 + 3, "{most} requests were in flight at once");
    assert!(most >= 2, "the probes ran side by side ({most} at most)");
}

#[tokio::test]
async fn accounts_share_one_pool_of_connections() {
    let (sim, _files, config) = three_paging_accounts().await;
    let exporter = start(&config, &[]).await;
    // One account after another, four requests at a time: a pool per account would open four
    // connections for each, twelve in all. One pool keeps about four: each request in flight
    // holds one, and each may have started one more that lost the race to a connection freed
    // meanwhile.
    for _round in 0..2 {
        for account in ["a1", "a2", "a3"] {
            assert_eq!(
                probe(&exporter, account).await.sum("clouddevice_instances"),
                1_000.0
            );
        }
    }
    let connections = sim.connections();
    assert!(
        connections <= 8,
        "{connections} connections for 4 requests in flight"
    );
}

/// A runtime for the simulator beside the exporter binary.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

use common::get;

fn rewrite(config: &Path, text: &str) {
    std::fs::write(config, text).unwrap();
}

#[test]
fn sighup_adds_and_removes_accounts_and_keeps_unchanged_ones_signed_in() {
    let rt = runtime();
    let sim = rt.block_on(three_account_simulator(Duration::ZERO));
    let files = Files::new();
    let url = sim.url();
    let config = files.accounts(&[files.retail(&url), files.games(&url, "")]);
    let mut running = Running::start(
        exporter(&[
            "--config.file",
            &config,
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .env("LABS_AK", "AK-labs")
        .env("LABS_SK", "SK-labs"),
    );
    let address = running.listening_address();
    let probe = |target: &str| get(&format!("http://{address}/probe?target={target}"));
    let (status, games) = probe("games");
    assert_eq!(status, 200);
    assert!(games.contains("clouddevice_up 1"), "{games}");
    assert_eq!(probe("retail").0, 200);
    let games_sim = sim.account("games").unwrap();
    assert_eq!(games_sim.iam_requests(), 1);

    // retail goes, labs comes, games stays as it was.
    let next = format!("accounts:\n{}{}", files.games(&url, ""), Files::labs(&url));
    rewrite(Path::new(&config), &next);
    running.hangup();
    running.wait_for("reloaded the configuration");
    assert_eq!(
        probe("retail").0,
        400,
        "a removed account is no longer served"
    );
    let (status, labs) = probe("labs");
    assert_eq!(status, 200);
    assert!(labs.contains("clouddevice_up 1"), "{labs}");
    let (_, games) = probe("games");
    assert!(games.contains("clouddevice_up 1"), "{games}");
    assert_eq!(games_sim.iam_requests(), 1, "games kept its IAM token");
    let (_, sd) = get(&format!("http://{address}/sd"));
    assert!(
        sd.contains("\"labs\"") && !sd.contains("\"retail\""),
        "{sd}"
    );

    // A file that does not load is refused, and the accounts in use kept.
    rewrite(
        Path::new(&config),
        "accounts:\n  games:\n    tokn_file: /x\n",
    );
    running.hangup();
    let line = running.wait_for("cannot reload the configuration");
    assert!(
        line.contains("tokn_file") && line.contains("games"),
        "{line}"
    );
    assert_eq!(probe("labs").0, 200);
    let (_, own) = get(&format!("http://{address}/metrics"));
    assert!(
        own.contains("clouddevice_exporter_config_last_reload_successful 0"),
        "{own}"
    );

    // A changed account is set up afresh: it signs in again.
    let changed = format!("accounts:\n{}", files.games(&url, "    page_size: 50\n"));
    rewrite(Path::new(&config), &changed);
    running.hangup();
    running.wait_for("reloaded the configuration");
    let (_, games) = probe("games");
    assert!(games.contains("clouddevice_up 1"), "{games}");
    assert_eq!(games_sim.iam_requests(), 2);
    let (_, own) = get(&format!("http://{address}/metrics"));
    assert!(own.contains("clouddevice_exporter_accounts 1"), "{own}");
    assert!(own.contains("clouddevice_exporter_config_last_reload_successful 1"));
    assert!(running.terminate().success());
}

#[test]
fn secret_files_that_are_not_regular_files_fail_the_reload_and_never_hang_it() {
    let rt = runtime();
    let sim = rt.block_on(three_account_simulator(Duration::ZERO));
    let files = Files::new();
    let url = sim.url();
    let config = files.accounts(&[files.retail(&url)]);
    let fifo = files.path("retail.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut running = Running::start(&mut exporter(&[
        "--config.file",
        &config,
        "--web.listen-address",
        "127.0.0.1:0",
    ]));
    let address = running.listening_address();
    let own = || get(&format!("http://{address}/metrics")).1;
    // A FIFO nobody writes to: a blocking open would hang the reload, and every later one.
    for (path, kind) in [
        (fifo.to_str().unwrap(), "a FIFO"),
        ("/dev/zero", "a character device"),
    ] {
        let entry = format!("  retail:\n    endpoint: {url}\n    token_file: {path}\n");
        rewrite(Path::new(&config), &format!("accounts:\n{entry}"));
        running.hangup();
        let line = running.wait_for("cannot reload the configuration");
        assert!(line.contains(kind) && line.contains("token_file"), "{line}");
        assert!(
            own().contains("clouddevice_exporter_config_last_reload_successful 0"),
            "{}",
            own()
        );
    }
    // The next reload is applied, and SIGTERM ends the process (within 10 s, or this fails).
    rewrite(
        Path::new(&config),
        &format!("accounts:\n{}", files.retail(&url)),
    );
    running.hangup();
    running.wait_for("reloaded the configuration");
    assert!(own().contains("clouddevice_exporter_config_last_reload_successful 1"));
    assert!(running.terminate().success());

    // The accounts file itself as a FIFO stops the start, naming it.
    let out = exporter(&["--config.file", fifo.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("it is a FIFO, not a regular file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bad_accounts_file_stops_the_start_with_one_line_naming_account_and_key() {
    let files = Files::new();
    let config =
        files.accounts(&["  retail:\n    token_file: /nonexistent/retail.token\n".to_string()]);
    let out = exporter(&["--config.file", &config]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("\"retail\"") && stderr.contains("token_file"),
        "{stderr}"
    );
    let config = files.accounts(&[format!(
        "  games:\n    token_env: GAMES_TOKEN\n    iam: {{username: u, domain: d, project: p, password_file: {}}}\n",
        files.path("games.password").display()
    )]);
    let out = exporter(&["--config.file", &config])
        .env("GAMES_TOKEN", "t")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"games\"") && stderr.contains("keep exactly one"),
        "{stderr}"
    );
    // The sign-in flags are for one account; with a file, every account is in the file.
    let config = files.accounts(&[files.retail("http://127.0.0.1:1")]);
    let out = exporter(&["--config.file", &config])
        .env("CLOUDDEVICE_AUTH_TOKEN", "t")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config.file and the sign-in flags"));
}

#[test]
fn the_demo_serves_two_accounts_on_probe_beside_its_metrics() {
    let (mut demo, address) = common::demo();
    let count = |path: &str| {
        let (status, body) = get(&format!("http://{address}{path}"));
        assert_eq!(status, 200, "{path}");
        let scraped = Scraped(body);
        assert_eq!(scraped.up(), 1.0, "{path}");
        scraped.sum("clouddevice_instances")
    };
    let metrics = count("/metrics");
    let retail = count("/probe?target=retail");
    let games = count("/probe?target=games");
    assert_eq!(metrics, retail, "/metrics is the retail account");
    assert_ne!(retail, games, "each account has its own fleet");
    let (_, sd) = get(&format!("http://{address}/sd"));
    assert!(
        sd.contains("\"games\"") && sd.contains("\"retail\""),
        "{sd}"
    );
    assert!(demo.terminate().success());
}

/// Loads an accounts file whose secrets live under /etc/clouddevice_exporter/, with those paths
/// moved into a temporary folder holding `secrets`; returns the account names.
fn load_example(text: &str, secrets: &[(&str, &str)]) -> Vec<String> {
    let files = Files::new();
    for (name, value) in secrets {
        files.secret(name, value);
    }
    let folder = format!("{}/", files.0.path().display());
    let path = files.path("example.yml");
    std::fs::write(&path, text.replace("/etc/clouddevice_exporter/", &folder)).unwrap();
    let path = path.to_string_lossy().into_owned();
    let args = ["clouddevice_exporter", "--config.file", &path];
    let config = clouddevice_exporter::run::Cli::from_args(args)
        .unwrap()
        .exporter
        .validate(EnvLookup::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let accounts = config.accounts.expect("the accounts file").accounts;
    accounts.into_iter().map(|a| a.name).collect()
}

#[test]
fn the_documented_and_kubernetes_accounts_files_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("docs/accounts.md")).unwrap();
    let start = readme
        .find("# /etc/clouddevice_exporter/accounts.yml\n")
        .expect("the accounts file of docs/accounts.md");
    let block = &readme[start..];
    let block = &block[..block.find("```").unwrap()];
    let names = load_example(
        block,
        &[
            ("retail.token", "tok"),
            ("games.password", "pw"),
            (
                "labs.credentials.csv",
                "User Name,Access Key Id,Secret Access Key\nbot,AK,SK\n",
            ),
        ],
    );
    assert_eq!(names, ["games", "labs", "retail"]);

    // The ConfigMap's accounts file, with the secrets of the Secret beside it.
    let read = |name: &str| {
        let text = std::fs::read_to_string(root.join("examples/kubernetes").join(name)).unwrap();
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text).unwrap()
    };
    let configmap = read("configmap.yaml");
    let secret = read("secret.yaml");
    let file = configmap["data"]["accounts.yml"].as_str().unwrap();
    let secrets: Vec<(&str, &str)> = secret["stringData"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap(), v.as_str().unwrap()))
        .collect();
    assert_eq!(load_example(file, &secrets), ["labs", "retail"]);
}

/// `POST /-/reload` (with `--web.enable-lifecycle`) reloads the web configuration and the
/// accounts file together, as SIGHUP does: both or neither, one reload state for both.
#[tokio::test]
async fn post_reload_reloads_the_web_configuration_and_the_accounts_file_together() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, accounts, write) = common::token_accounts(dir.path()).await;
    let web = dir.path().join("web.yml");
    write(&["retail"]);
    let users = |name: &str, hash: &str| format!("basic_auth_users:\n  {name}: {hash}\n");
    std::fs::write(&web, users("alice", &common::hash("a-pass"))).unwrap();
    let flags = [
        "--config.file",
        accounts.to_str().unwrap(),
        "--web.config.file",
        web.to_str().unwrap(),
        "--web.enable-lifecycle",
    ];
    let exporter = TestExporter::start_flags(&flags, EnvLookup::default()).await;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, user: &str, password: &str| {
        http.request(method, exporter.url(path))
            .basic_auth(user, Some(password))
            .send()
    };
    let sd_accounts = |body: String| -> usize {
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .len()
    };

    // The landing page names both files and how the last reload went.
    let landing = |user: &'static str, password: &'static str| {
        let request = call(reqwest::Method::GET, "/", user, password);
        async move { request.await.unwrap().text().await.unwrap() }
    };
    let page = landing("alice", "a-pass").await;
    assert!(
        page.contains(&format!(
            "Accounts file: {} (1 account served).",
            accounts.display()
        )) && page.contains(&format!("Web configuration: {}.", web.display()))
            && page.contains("Last reload: none since the exporter started"),
        "{page}"
    );

    // Only POST reloads.
    let get = call(reqwest::Method::GET, "/-/reload", "alice", "a-pass")
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");

    // Both files changed: both applied.
    write(&["retail", "games"]);
    std::fs::write(&web, users("bob", &common::hash("b-pass"))).unwrap();
    let post = call(reqwest::Method::POST, "/-/reload", "alice", "a-pass")
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    let body = post.text().await.unwrap();
    assert!(
        body.contains("2 accounts") && body.contains("the web configuration"),
        "{body}"
    );
    let sd = call(reqwest::Method::GET, "/sd", "bob", "b-pass")
        .await
        .unwrap();
    assert_eq!(sd_accounts(sd.text().await.unwrap()), 2);
    let alice = call(reqwest::Method::GET, "/sd", "alice", "a-pass")
        .await
        .unwrap();
    assert_eq!(
        alice.status(),
        401,
        "alice left with the old web configuration"
    );
    let page = landing("bob", "b-pass").await;
    assert!(
        page.contains("(2 accounts served).")
            && page.contains(": succeeded: the accounts file (2 accounts: 1 kept, 1 added"),
        "{page}"
    );

    // The web configuration broken, the accounts file changed: neither is applied.
    write(&["retail"]);
    std::fs::write(&web, users("bob", "not-a-hash")).unwrap();
    let post = call(reqwest::Method::POST, "/-/reload", "bob", "b-pass")
        .await
        .unwrap();
    assert_eq!(post.status(), 500);
    let body = post.text().await.unwrap();
    assert!(
        body.contains("the web configuration") && body.contains("basic_auth_users.bob"),
        "{body}"
    );
    let sd = call(reqwest::Method::GET, "/sd", "bob", "b-pass")
        .await
        .unwrap();
    assert_eq!(
        sd_accounts(sd.text().await.unwrap()),
        2,
        "the accounts in use are kept"
    );
    let own = call(reqwest::Method::GET, "/metrics", "bob", "b-pass")
        .await
        .unwrap();
    let own = own.text().await.unwrap();
    assert!(
        own.contains("clouddevice_exporter_config_last_reload_successful 0"),
        "{own}"
    );
    assert!(own.contains("clouddevice_exporter_accounts 2"), "{own}");
    let page = landing("bob", "b-pass").await;
    let failed = page
        .lines()
        .find(|line| line.contains("Last reload at"))
        .unwrap_or_default();
    assert!(
        failed.contains(": failed, so the configuration read before is still in use: ")
            && failed.contains("basic_auth_users.bob")
            && page.contains("(2 accounts served)."),
        "{page}"
    );
}

#[tokio::test]
async fn post_reload_is_refused_without_the_lifecycle_flag() {
    let sim = common::simulator(SimConfig::new(10, 5)).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "any-token").unwrap();
    let accounts = dir.path().join("accounts.yml");
    let entry = format!(
        "accounts:\n  retail:\n    endpoint: http://{}\n    token_file: {}\n",
        sim.addr(),
        token.display()
    );
    std::fs::write(&accounts, entry).unwrap();
    let flags = ["--config.file", accounts.to_str().unwrap()];
    let exporter = TestExporter::start_flags(&flags, EnvLookup::default()).await;
    let post = reqwest::Client::new()
        .post(exporter.url("/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    let body = post.text().await.unwrap();
    assert!(body.contains("--web.enable-lifecycle"), "{body}");
}

/// A simulator of 1,000 phones whose pages after the first answer only after a minute: an
/// account reading it one phone a page keeps every request it may in flight.
async fn slow_paging_api() -> SimHandle {
    let sim = common::simulator(SimConfig::new(1_000, 7)).await;
    for page in 2..=200 {
        sim.inject(Fault {
            page: Some(page),
            times: None,
            kind: FaultKind::Delay(Duration::from_secs(60)),
        });
    }
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_account_is_read_beside_sixteen_slow_or_rate_limited_ones() {
    let slow = slow_paging_api().await;
    let healthy = common::simulator(SimConfig::new(50, 3)).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "any-token").unwrap();
    let token = token.display();
    // Eight slow accounts at concurrency 64 (each could take the whole shared cap of 64), and
    // eight held by a rate of one request in ten seconds, with 64 pages waiting for their turns.
    let mut file = String::from("accounts:\n");
    for k in 0..16 {
        let rate = if k < 8 {
            ""
        } else {
            "\n    requests_per_second: 0.1"
        };
        file.push_str(&format!(
            "  slow{k}:\n    endpoint: {}\n    token_file: {token}\n    page_size: 1\n    concurrency: 64{rate}\n",
            slow.url()
        ));
    }
    file.push_str(&format!(
        "  healthy:\n    endpoint: {}\n    token_file: {token}\n",
        healthy.url()
    ));
    let accounts = dir.path().join("accounts.yml");
    std::fs::write(&accounts, file).unwrap();
    let exporter = TestExporter::start_flags(
        &["--config.file", accounts.to_str().unwrap()],
        EnvLookup::default(),
    )
    .await;
    let http = reqwest::Client::new();
    let probe = |target: String, timeout: &'static str| {
        http.get(exporter.url(&format!("/probe?target={target}")))
            .header("X-Prometheus-Scrape-Timeout-Seconds", timeout)
            .send()
    };
    let mut pending = Vec::new();
    for k in 0..16 {
        pending.push(tokio::spawn(probe(format!("slow{k}"), "120")));
    }
    // Until the slow accounts hold every shared slot (after each one's page 1), as the
    // simulator counts requests; a cap that stopped them short would fail the test here.
    let filled = tokio::time::timeout(Duration::from_secs(30), slow.requests_reach(16 + 64));
    filled.await.expect("the slow accounts fill the shared cap");
    let answer = probe("healthy".into(), "3").await.unwrap();
    let m = Scraped(answer.text().await.unwrap());
    assert_eq!(m.up(), 1.0, "{}", m.0);
    assert_eq!(m.sum("clouddevice_instances"), 50.0);
    for p in pending {
        p.abort();
    }
}

#[tokio::test]
async fn accounts_signing_in_as_one_iam_user_fail_at_most_twice_in_fifteen_minutes() {
    let sim = three_account_simulator(Duration::ZERO).await;
    let url = sim.url();
    let files = Files::new();
    files.secret("games.password", "not-pw-games");
    let names = ["games", "games-eu", "games-us"];
    let entries: Vec<String> = names
        .iter()
        .map(|name| {
            files
                .games(&url, "")
                .replacen("  games:", &format!("  {name}:"), 1)
        })
        .collect();
    let config = files.accounts(&entries);
    let clock = clouddevice_exporter::clock::Clock::manual();
    let exporter =
        TestExporter::start_flags_on(&["--config.file", &config], labs_env(), clock.clone()).await;
    let games = sim.account("games").unwrap();
    let probe_all = |up: f64| {
        let exporter = &exporter;
        async move {
            for name in names {
                for _ in 0..3 {
                    assert_eq!(probe(exporter, name).await.up(), up, "{name}");
                }
            }
        }
    };
    probe_all(0.0).await;
    assert_eq!(
        games.iam_requests(),
        2,
        "three accounts, one IAM user: two failed logins"
    );
    clock.advance(Duration::from_secs(10 * 60 + 1));
    probe_all(0.0).await;
    assert_eq!(
        games.iam_requests(),
        2,
        "the accounts' own holds are over, the user's fifteen minutes are not"
    );
    clock.advance(Duration::from_secs(5 * 60));
    probe_all(0.0).await;
    assert_eq!(games.iam_requests(), 4);
    // The password fixed and reloaded: each account signs in at once.
    files.secret("games.password", "pw-games");
    exporter.reload.reload().await.unwrap();
    probe_all(1.0).await;
    assert_eq!(games.iam_requests(), 7);
}
