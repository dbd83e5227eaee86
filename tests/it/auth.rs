//! The three credential modes against the simulator on loopback: IAM tokens that renew
//! themselves (once per renewal, shared by concurrent scrapes, recovered when revoked), wrong
//! passwords and IAM outages, AK/SK signatures the simulator verifies, and a sweep of every log
//! line and every scraped text for the secrets involved.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use clouddevice_exporter::cli::account::{
    EnvLookup, ACCESS_KEY_ENV, PASSWORD_ENV, SECRET_KEY_ENV, SECURITY_TOKEN_ENV,
};
use clouddevice_exporter::clock::Clock;
use clouddevice_exporter::secret::Secret;
use clouddevice_exporter::self_metrics::ExporterMetrics;
use clouddevice_exporter::upstream::credentials::{IamCredentials, ProjectScope};
use clouddevice_exporter::upstream::iam::IamSession;
use clouddevice_exporter::upstream::retry::RetryPolicy;
use clouddevice_simulator::{Fault, FaultKind, SimConfig, SimHandle, SimIamUser};
use common::{simulator, Scraped, TestExporter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const USER: &str = "metrics-reader";
const DOMAIN: &str = "acme-corp";
const PASSWORD: &str = "Pa55word-do-not-leak";
const AK: &str = "HPUAK2TESTACCESSKEY0";
const SK: &str = "sk-Zq9a7XWn3kfhq8MCYQzL1s0uQx-do-not-leak";
const SECURITY_TOKEN: &str = "st-gQpJaW52-do-not-leak";

/// Every log line of this test binary, in logfmt, as the exporter writes them in production.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let layer = tracing_logfmt::builder()
            .layer()
            .with_writer(move || Capture(writer.clone()));
        let filter = tracing_subscriber::EnvFilter::new("clouddevice_exporter=debug");
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .try_init();
        buffer
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

fn iam_fleet(instances: usize, lifetime: Duration) -> SimConfig {
    iam_fleet_on(instances, lifetime, Clock::system())
}

/// An IAM fleet whose tokens expire by `clock`, which the test moves instead of sleeping.
fn iam_fleet_on(instances: usize, lifetime: Duration, clock: Clock) -> SimConfig {
    SimConfig {
        iam_user: Some(SimIamUser {
            name: USER.into(),
            domain: DOMAIN.into(),
            password: String::from(PASSWORD),
        }),
        token_lifetime: lifetime,
        clock: std::sync::Arc::new(clock),
        ..SimConfig::new(instances, 5)
    }
}

/// A simulator of `instances` phones whose IAM issues tokens that live `lifetime` on a manual
/// clock, and an exporter on that clock signed in to it with the right password.
async fn signed_in_on_a_manual_clock(
    instances: usize,
    lifetime: Duration,
) -> (Clock, SimHandle, TestExporter) {
    let clock = Clock::manual();
    let sim = simulator(iam_fleet_on(instances, lifetime, clock.clone())).await;
    let exporter = iam_exporter_on(&sim, PASSWORD, &[], clock.clone()).await;
    (clock, sim, exporter)
}

async fn iam_exporter(sim: &SimHandle, password: &str, flags: &[&str]) -> TestExporter {
    iam_exporter_on(sim, password, flags, Clock::system()).await
}

/// An exporter signing in to `sim`'s IAM, measuring token lifetimes on `clock`.
async fn iam_exporter_on(
    sim: &SimHandle,
    password: &str,
    flags: &[&str],
    clock: Clock,
) -> TestExporter {
    logs();
    let url = sim.url();
    let mut all = vec![
        "--iam.endpoint",
        &url,
        "--iam.username",
        USER,
        "--iam.domain",
        DOMAIN,
        "--iam.project",
        "cn-north-4",
    ];
    all.extend_from_slice(flags);
    let env = EnvLookup::of([(PASSWORD_ENV.into(), Secret::new(password))]);
    TestExporter::start_on(&url, &all, env, clock).await
}

async fn aksk_exporter(
    sim: &SimHandle,
    secret_key: &str,
    security_token: Option<&str>,
) -> TestExporter {
    aksk_exporter_with(sim, secret_key, security_token, &[]).await
}

async fn aksk_exporter_with(
    sim: &SimHandle,
    secret_key: &str,
    security_token: Option<&str>,
    extra: &[&str],
) -> TestExporter {
    logs();
    let mut env = vec![
        (ACCESS_KEY_ENV.into(), Secret::new(AK)),
        (SECRET_KEY_ENV.into(), Secret::new(secret_key)),
    ];
    env.extend(security_token.map(|t| (SECURITY_TOKEN_ENV.into(), Secret::new(t))));
    let env = EnvLookup::of(env);
    let mut flags = vec![
        "--clouddevice.project-id",
        "9d71ec45aef04d84a991c12250227b5c",
    ];
    flags.extend_from_slice(extra);
    TestExporter::start_with(&sim.url(), &flags, env).await
}

fn iam_fetches(m: &Scraped, code: &str) -> Option<f64> {
    m.value(&format!(
        r#"clouddevice_exporter_api_requests_total{{api="iam_token",code="{code}"}}"#
    ))
}

#[tokio::test]
async fn an_iam_token_is_renewed_across_scrapes_once_per_renewal() {
    let (clock, sim, exporter) = signed_in_on_a_manual_clock(150, Duration::from_secs(3)).await;
    let first = exporter.scrape().await;
    assert_eq!(first.up(), 1.0, "{}", first.0);
    assert_eq!(sim.iam_requests(), 1);
    assert_eq!(iam_fetches(&first, "201"), Some(1.0));
    let expiry = first
        .value("clouddevice_exporter_token_expiry_timestamp_seconds")
        .expect("the expiry gauge is set");
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(
        (now..now + 4.0).contains(&expiry),
        "expiry {expiry} vs now {now}"
    );

    assert_eq!(exporter.scrape().await.up(), 1.0);
    assert_eq!(sim.iam_requests(), 1, "a fresh token is reused");

    // Past half of the lifetime, well before expiry: renewed once.
    clock.advance(Duration::from_millis(1700));
    let renewed = exporter.scrape().await;
    assert_eq!(renewed.up(), 1.0);
    assert_eq!(sim.iam_requests(), 2);
    assert!(
        renewed
            .value("clouddevice_exporter_token_expiry_timestamp_seconds")
            .unwrap()
            > expiry
    );
    assert_eq!(exporter.scrape().await.up(), 1.0);
    assert_eq!(sim.iam_requests(), 2);
}

#[tokio::test]
async fn ten_concurrent_scrapes_after_expiry_share_one_iam_call() {
    let (clock, sim, exporter) = signed_in_on_a_manual_clock(300, Duration::from_secs(2)).await;
    assert_eq!(exporter.scrape().await.up(), 1.0);
    assert_eq!(sim.iam_requests(), 1);
    clock.advance(Duration::from_millis(2200));
    let scrapes = futures::future::join_all((0..10).map(|_| exporter.scrape())).await;
    for m in &scrapes {
        assert_eq!(m.up(), 1.0);
        assert_eq!(m.sum("clouddevice_instances"), 300.0);
    }
    assert_eq!(sim.iam_requests(), 2, "ten scrapes, one renewal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_after_expiry_share_one_renewal() {
    // Scrapes coalesce into one collection, so the test above cannot tell whether renewal itself
    // is shared; this asks the session directly, from ten tasks at once.
    let clock = Clock::manual();
    let sim = simulator(iam_fleet_on(1, Duration::from_secs(1), clock.clone())).await;
    let credentials = IamCredentials {
        endpoint: sim.url().parse().unwrap(),
        username: USER.into(),
        domain: DOMAIN.into(),
        project: ProjectScope::Name("cn-north-4".into()),
        password: Secret::new(PASSWORD),
    };
    let metrics = Arc::new(ExporterMetrics::new().unwrap());
    let session = Arc::new(
        IamSession::new(
            &credentials,
            reqwest::Client::new(),
            Duration::from_secs(5),
            RetryPolicy { max_retries: 2 },
            metrics,
            Default::default(),
        )
        .with_clock(clock.clone()),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let first = session.token(deadline).await.unwrap();
    assert_eq!(sim.iam_requests(), 1);
    clock.advance(Duration::from_millis(1200));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.token(deadline).await.map(|l| l.generation) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), first.generation + 1);
    }
    assert_eq!(sim.iam_requests(), 2, "ten callers, one renewal");
}

#[tokio::test]
async fn a_token_revoked_mid_scrape_is_replaced_within_that_scrape() {
    let sim = simulator(iam_fleet(500, Duration::from_secs(3600))).await;
    let exporter = iam_exporter(&sim, PASSWORD, &[]).await;
    sim.inject(Fault {
        page: Some(3),
        times: Some(1),
        kind: FaultKind::RevokeTokens,
    });
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0, "{}", m.0);
    assert_eq!(m.sum("clouddevice_instances"), 500.0);
    assert_eq!(
        sim.iam_requests(),
        2,
        "one token at start, one after the revocation"
    );
    assert!(m.errors("APIGW.0307") >= Some(1.0));
}

#[tokio::test]
async fn a_wrong_password_fails_the_scrape_with_a_readable_log_line() {
    let sim = simulator(iam_fleet(10, Duration::from_secs(3600))).await;
    let exporter = iam_exporter(&sim, "not-the-password", &[]).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert!(m.samples("clouddevice_instances").is_empty());
    assert_eq!(m.errors("IAM.0101"), Some(1.0));
    assert_eq!(iam_fetches(&m, "401"), Some(1.0));
    assert_eq!(sim.requests(), 0, "no API request without a token");
    let logs = log_text();
    let line = logs
        .lines()
        .find(|l| l.contains("IAM.0101") && l.contains("collection failed"))
        .expect("the failure is logged, with what to check");
    assert!(
        line.contains("The username or password is wrong;"),
        "{line}"
    );
    assert!(line.contains("check --iam.username"), "{line}");
    // The next scrape does not try again: a wrong password locks the IAM user.
    assert_eq!(exporter.scrape().await.up(), 0.0);
    assert_eq!(sim.iam_requests(), 1);
}

#[tokio::test]
async fn a_refused_password_is_tried_again_after_ten_minutes_then_after_twenty() {
    let clock = Clock::manual();
    let sim = simulator(iam_fleet_on(10, Duration::from_secs(3600), clock.clone())).await;
    let exporter = iam_exporter_on(&sim, "not-the-password", &[], clock.clone()).await;
    for _ in 0..30 {
        assert_eq!(exporter.scrape().await.up(), 0.0);
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(
        sim.iam_requests(),
        1,
        "30 scrapes a second apart, one failed login"
    );
    let m = exporter.scrape().await;
    assert_eq!(
        m.errors("IAM.0101"),
        Some(1.0),
        "scrapes held back ask nothing"
    );
    let unix_now = |clock: &Clock| {
        let since = clock.now().duration_since(std::time::UNIX_EPOCH);
        since.unwrap().as_secs_f64()
    };
    let next = m
        .value("clouddevice_exporter_iam_next_attempt_timestamp_seconds")
        .expect("when IAM is asked next");
    assert!((next - unix_now(&clock) - 570.0).abs() < 5.0, "{next}");
    let landing = exporter.get("/").await.text().await.unwrap();
    assert!(
        landing.contains("IAM is not asked again before"),
        "the refusal is what the scrapes say: {landing}"
    );
    clock.advance(Duration::from_secs(9 * 60 - 30));
    exporter.scrape().await;
    assert_eq!(sim.iam_requests(), 1);
    clock.advance(Duration::from_secs(61));
    exporter.scrape().await;
    assert_eq!(sim.iam_requests(), 2, "asked again after ten minutes");
    // The hold doubles: twenty minutes now.
    clock.advance(Duration::from_secs(19 * 60));
    exporter.scrape().await;
    assert_eq!(sim.iam_requests(), 2);
    clock.advance(Duration::from_secs(61));
    exporter.scrape().await;
    assert_eq!(sim.iam_requests(), 3, "asked again after twenty more");
}

#[tokio::test]
async fn a_password_refused_while_a_token_still_works_is_not_tried_every_30_seconds() {
    let (clock, sim, exporter) = signed_in_on_a_manual_clock(10, Duration::from_secs(1000)).await;
    assert_eq!(exporter.scrape().await.up(), 1.0);
    // IAM's password changes (an administrator rotated it): renewals are refused.
    sim.set_iam_password("rotated");
    clock.advance(Duration::from_secs(505));
    for _ in 0..5 {
        assert_eq!(exporter.scrape().await.up(), 1.0, "the token still serves");
        clock.advance(Duration::from_secs(31));
    }
    assert_eq!(sim.iam_requests(), 2, "one token, one refused renewal");
}

#[tokio::test]
async fn when_iam_is_down_the_current_token_serves_until_it_expires() {
    let (clock, sim, exporter) = signed_in_on_a_manual_clock(20, Duration::from_secs(4)).await;
    assert_eq!(exporter.scrape().await.up(), 1.0);
    sim.set_iam_down(true);
    clock.advance(Duration::from_millis(2200));
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0, "the old token is still valid");
    assert_eq!(sim.iam_requests(), 2, "renewal was tried");
    assert_eq!(m.errors("IAM.0002"), Some(1.0));
    assert_eq!(exporter.scrape().await.up(), 1.0);
    assert_eq!(
        sim.iam_requests(),
        2,
        "a failed renewal is not retried on every scrape"
    );
    clock.advance(Duration::from_millis(2000));
    assert_eq!(
        exporter.scrape().await.up(),
        0.0,
        "expired, and IAM still down"
    );
    sim.set_iam_down(false);
    assert_eq!(exporter.scrape().await.up(), 1.0);
}

fn aksk_fleet() -> SimConfig {
    SimConfig {
        access_key: Some((AK.into(), String::from(SK))),
        ..SimConfig::new(250, 9)
    }
}

#[tokio::test]
async fn aksk_signed_requests_are_accepted_by_the_verifier() {
    let sim = simulator(aksk_fleet()).await;
    let exporter = aksk_exporter(&sim, SK, None).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 1.0, "{}", m.0);
    assert_eq!(m.sum("clouddevice_instances"), 250.0);
    assert_eq!(sim.signatures().len(), 3, "every page request is signed");
    assert_eq!(sim.iam_requests(), 0);
}

#[tokio::test]
async fn temporary_keys_sign_their_security_token_too() {
    // The gateway refuses temporary keys whose token is missing or not signed.
    let sim = simulator(SimConfig {
        security_token: Some(String::from(SECURITY_TOKEN)),
        ..aksk_fleet()
    })
    .await;
    let exporter = aksk_exporter(&sim, SK, Some(SECURITY_TOKEN)).await;
    assert_eq!(exporter.scrape().await.up(), 1.0);
    let canonical = sim.canonical_requests();
    assert!(
        canonical[0].contains(&format!("\nx-security-token:{SECURITY_TOKEN}\n")),
        "{canonical:?}"
    );
    let without = aksk_exporter(&sim, SK, None).await;
    assert_eq!(without.scrape().await.up(), 0.0);
}

/// Filter values with every character class that encodings disagree on.
const AWKWARD_NAME: &str = "a b+c*d~e%f/g?h&i=j#云";

#[tokio::test]
async fn filters_with_reserved_characters_are_signed_as_the_gateway_reads_them() {
    let sim = simulator(aksk_fleet()).await;
    let flags = [
        "--clouddevice.instance-name",
        AWKWARD_NAME,
        "--clouddevice.query-start-time",
        "2023-08-15 14:30:45",
        "--clouddevice.query-end-time",
        "2023-08-16 00:00:00",
    ];
    let exporter = aksk_exporter_with(&sim, SK, None, &flags).await;
    assert_eq!(
        exporter.scrape().await.up(),
        1.0,
        "the gateway accepts the signature"
    );
    // What the gateway decoded is exactly what the flags said.
    let query = sim.last_query();
    let value = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(value("instance_name"), Some(AWKWARD_NAME));
    assert_eq!(value("query_start_time"), Some("2023-08-15 14:30:45"));
    assert_eq!(value("query_end_time"), Some("2023-08-16 00:00:00"));
    let canonical = &sim.canonical_requests()[0];
    assert!(
        canonical.contains("instance_name=a%20b%2Bc%2Ad~e%25f%2Fg%3Fh%26i%3Dj%23%E4%BA%91&"),
        "{canonical}"
    );
    assert!(
        canonical.contains("query_start_time=2023-08-15%2014%3A30%3A45"),
        "{canonical}"
    );
}

#[tokio::test]
async fn filters_reach_the_api_unchanged_with_a_token_too() {
    let sim = simulator(SimConfig::new(20, 3)).await;
    let flags = ["--clouddevice.instance-name", AWKWARD_NAME];
    let exporter = TestExporter::start(&sim.url(), &flags).await;
    assert_eq!(exporter.scrape().await.up(), 1.0);
    let query = sim.last_query();
    assert!(
        query.contains(&("instance_name".to_string(), AWKWARD_NAME.to_string())),
        "{query:?}"
    );
}

#[tokio::test]
async fn a_wrong_secret_key_is_refused_and_not_retried() {
    let sim = simulator(aksk_fleet()).await;
    let exporter = aksk_exporter(&sim, "not-the-secret-key", None).await;
    let m = exporter.scrape().await;
    assert_eq!(m.up(), 0.0);
    assert_eq!(m.errors("APIGW.0301"), Some(1.0));
    assert_eq!(
        sim.requests(),
        1,
        "a signature that failed once fails again"
    );
}

#[tokio::test]
async fn no_secret_appears_in_any_log_line_or_scraped_text() {
    let mut texts = Vec::new();
    let mut secrets = vec![
        PASSWORD.to_string(),
        SK.to_string(),
        SECURITY_TOKEN.to_string(),
        common::TOKEN.to_string(),
    ];

    let iam = simulator(iam_fleet(120, Duration::from_secs(3600))).await;
    iam.inject(Fault {
        page: Some(2),
        times: Some(1),
        kind: FaultKind::RevokeTokens,
    });
    let good = iam_exporter(&iam, PASSWORD, &[]).await;
    let bad = iam_exporter(&iam, "Wr0ng-Pa55word-do-not-leak", &[]).await;
    secrets.push("Wr0ng-Pa55word-do-not-leak".into());
    for exporter in [&good, &bad] {
        texts.push(exporter.scrape().await.0);
        texts.push(exporter.get("/").await.text().await.unwrap());
    }

    let aksk = simulator(aksk_fleet()).await;
    let signed = aksk_exporter(&aksk, SK, Some(SECURITY_TOKEN)).await;
    let wrong = aksk_exporter(&aksk, "sk-wrong-do-not-leak", None).await;
    secrets.push("sk-wrong-do-not-leak".into());
    for exporter in [&signed, &wrong] {
        texts.push(exporter.scrape().await.0);
        texts.push(exporter.get("/").await.text().await.unwrap());
    }

    let static_token = common::sim_and_exporter(
        SimConfig {
            token: Some(String::from("a-different-token")),
            ..SimConfig::new(5, 1)
        },
        &[],
    )
    .await;
    texts.push(static_token.1.scrape().await.0);

    secrets.extend(iam.issued_tokens());
    secrets.extend(aksk.signatures());
    assert!(iam.issued_tokens().len() >= 2 && aksk.signatures().len() >= 2);
    texts.push(log_text());
    assert!(
        texts.last().unwrap().contains("IAM.0101"),
        "the logs were captured"
    );
    for secret in &secrets {
        for text in &texts {
            assert!(
                !text.contains(secret.as_str()),
                "a secret leaked into:\n{text}"
            );
        }
    }
}

/// An access-key exporter of `sim` without a project id, in `region`.
async fn aksk_exporter_in(sim: &SimHandle, region: &str) -> TestExporter {
    logs();
    let env = EnvLookup::of([
        (ACCESS_KEY_ENV.into(), Secret::new(AK)),
        (SECRET_KEY_ENV.into(), Secret::new(SK)),
    ]);
    let url = sim.url();
    let flags = ["--clouddevice.region", region, "--iam.endpoint", &url];
    TestExporter::start_with(&url, &flags, env).await
}

#[tokio::test]
async fn without_a_project_id_the_project_of_the_region_is_looked_up_once_and_sent() {
    let sim = simulator(aksk_fleet()).await;
    let exporter = aksk_exporter_in(&sim, "cn-north-4").await;
    for _ in 0..3 {
        assert_eq!(exporter.scrape().await.up(), 1.0);
    }
    assert_eq!(sim.project_requests(), 1, "looked up once, for the process");
    let canonical = sim.canonical_requests();
    let with_project = canonical
        .iter()
        .filter(|c| c.contains("\nx-project-id:project-of-cn-north-4\n"))
        .count();
    assert_eq!(
        with_project, 9,
        "every page of three scrapes: {canonical:?}"
    );
    assert!(log_text().contains("found the project of the access key"));
}

#[tokio::test]
async fn a_region_without_exactly_one_project_fails_naming_what_to_set() {
    let two = vec![
        ("cn-south-1".to_string(), "p1".to_string()),
        ("cn-south-1".to_string(), "p2".to_string()),
    ];
    for (projects, said) in [
        (
            vec![],
            r#"IAM knows no project named "cn-south-1" for this access key"#,
        ),
        (
            two,
            r#"IAM knows 2 projects named "cn-south-1" for this access key, not one"#,
        ),
    ] {
        let sim = simulator(SimConfig {
            projects: Some(projects),
            ..aksk_fleet()
        })
        .await;
        let exporter = aksk_exporter_in(&sim, "cn-south-1").await;
        assert_eq!(exporter.scrape().await.up(), 0.0);
        assert_eq!(sim.requests(), 0, "no page is asked for without a project");
        let landing = exporter
            .get("/")
            .await
            .text()
            .await
            .unwrap()
            .replace("&quot;", "\"");
        assert!(landing.contains(said), "{landing}");
        assert!(landing.contains("set --clouddevice.region"), "{landing}");
    }
}

#[tokio::test]
async fn two_hours_of_scrapes_with_a_wrong_password_never_lock_the_iam_user() {
    // IAM set to its strictest policy: 3 failed logins in 15 minutes lock the user.
    let clock = Clock::manual();
    let lockout = clouddevice_simulator::Lockout {
        failures: 3,
        window: Duration::from_secs(15 * 60),
    };
    let sim = simulator(SimConfig {
        iam_lockout: lockout,
        ..iam_fleet_on(10, Duration::from_secs(3600), clock.clone())
    })
    .await;
    let exporter = iam_exporter_on(&sim, "not-the-password", &[], clock.clone()).await;
    for _ in 0..120 {
        assert_eq!(exporter.scrape().await.up(), 0.0);
        clock.advance(Duration::from_secs(60));
    }
    assert_eq!(sim.iam_locked_answers(), 0, "the user was never locked");
    // 0, 10, 30, 70 minutes: holds of 10, 20 and 40 minutes.
    assert_eq!(sim.iam_requests(), 4);
    // The simulated policy does lock: three more failures in a row, and the fourth is refused.
    let http = reqwest::Client::new();
    let login = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": USER, "password": "wrong", "domain": {"name": DOMAIN}}}},
        "scope": {"project": {"name": "cn-north-4"}}}});
    for _ in 0..4 {
        let url = format!("{}/v3/auth/tokens", sim.url());
        http.post(url).body(login.to_string()).send().await.unwrap();
    }
    assert_eq!(sim.iam_locked_answers(), 1);
}

#[tokio::test]
async fn iams_refusal_is_logged_once_per_hold_not_once_per_scrape() {
    const ONCE: &str = "log-once-reader";
    let clock = Clock::manual();
    let sim = simulator(SimConfig {
        iam_user: Some(SimIamUser {
            name: ONCE.into(),
            domain: DOMAIN.into(),
            password: PASSWORD.into(),
        }),
        clock: std::sync::Arc::new(clock.clone()),
        ..SimConfig::new(10, 5)
    })
    .await;
    logs();
    let url = sim.url();
    let flags = [
        "--iam.endpoint",
        &url,
        "--iam.username",
        ONCE,
        "--iam.domain",
        DOMAIN,
        "--iam.project",
        "cn-north-4",
    ];
    let env = EnvLookup::of([(PASSWORD_ENV.into(), Secret::new("not-the-password"))]);
    let exporter = TestExporter::start_on(&url, &flags, env, clock.clone()).await;
    let said = || {
        let logs = log_text();
        let refusals = logs
            .lines()
            .filter(|l| l.contains("IAM refused the credentials") && l.contains(ONCE))
            .count();
        refusals
    };
    for _ in 0..10 {
        exporter.scrape().await;
    }
    assert_eq!(said(), 1, "one line for ten scrapes");
    clock.advance(Duration::from_secs(601));
    for _ in 0..10 {
        exporter.scrape().await;
    }
    assert_eq!(said(), 2, "one more when IAM was asked again");
}
