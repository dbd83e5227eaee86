//! Test harness: a simulator or mock upstream on loopback, the exporter in front of it on an
//! ephemeral port, and helpers to read the scraped text. Set TEST_LOG=1 to see the logs.

pub mod procfs;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use clouddevice_exporter::cli::account::{EnvLookup, TOKEN_ENV};
use clouddevice_exporter::clock::Clock;
use clouddevice_exporter::probe::Probes;
use clouddevice_exporter::run::Cli;
use clouddevice_exporter::secret::Secret;
use clouddevice_exporter::{logging, run, web};
use clouddevice_simulator::{self, SimConfig, SimHandle};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const TOKEN: &str = "test-token-4f1c";

/// The exporter under test, serving on 127.0.0.1. Dropping it shuts the server down.
pub struct TestExporter {
    pub addr: SocketAddr,
    http: reqwest::Client,
    /// Re-reads the web configuration and the accounts file, as SIGHUP does.
    pub reload: Arc<clouddevice_exporter::web::reload::Reloader>,
    /// The accounts probed, with an accounts file.
    pub probes: Option<Arc<Probes>>,
    /// The flags' account, without one.
    pub account: Option<Arc<clouddevice_exporter::scrape::Exporter>>,
    _stop: oneshot::Sender<()>,
}

impl TestExporter {
    /// Starts the exporter with these flags (plus the endpoint) and the test token.
    pub async fn start(endpoint: &str, flags: &[&str]) -> TestExporter {
        let env = EnvLookup::of([(TOKEN_ENV.into(), Secret::new(TOKEN))]);
        TestExporter::start_with(endpoint, flags, env).await
    }

    /// Starts the exporter with these flags (plus the endpoint) and these secrets.
    pub async fn start_with(endpoint: &str, flags: &[&str], env: EnvLookup) -> TestExporter {
        TestExporter::start_on(endpoint, flags, env, Clock::system()).await
    }

    /// Starts the exporter with these flags (plus the endpoint) and these secrets, measuring
    /// token lifetimes and windows on `clock`, which the test moves instead of sleeping.
    pub async fn start_on(
        endpoint: &str,
        flags: &[&str],
        env: EnvLookup,
        clock: Clock,
    ) -> TestExporter {
        let args: Vec<&str> = ["--clouddevice.endpoint", endpoint]
            .into_iter()
            .chain(flags.iter().copied())
            .collect();
        TestExporter::start_flags_on(&args, env, clock).await
    }

    /// Starts the exporter with exactly these flags and these secrets.
    pub async fn start_flags(flags: &[&str], env: EnvLookup) -> TestExporter {
        TestExporter::start_flags_on(flags, env, Clock::system()).await
    }

    pub async fn start_flags_on(flags: &[&str], env: EnvLookup, clock: Clock) -> TestExporter {
        if std::env::var_os("TEST_LOG").is_some() {
            logging::init(
                clouddevice_exporter::logging::LogLevel::Debug,
                clouddevice_exporter::logging::LogFormat::Logfmt,
            );
        }
        // Most tests check what each scrape reads: they read the API on every scrape unless
        // they set the reuse window themselves. The default window is tested on the binary.
        let every_scrape = ["--scrape.min-interval", "0s"];
        let own_window = flags.iter().any(|f| f.starts_with("--scrape.min-interval"));
        let args = std::iter::once("clouddevice_exporter")
            .chain(every_scrape.into_iter().filter(|_| !own_window))
            .chain(flags.iter().copied());
        let mut config = Cli::from_args(args)
            .expect("test flags parse")
            .exporter
            .validate(env)
            .expect("test config is valid");
        config.clock = clock;
        let built = run::build(&config).expect("app builds");
        let (app, probes, reload, account) =
            (built.router, built.probes, built.reloader, built.account);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = web::Serving::new(config.conn_limits, config.web.clone(), &reload);
        let shutdown = async {
            let _ = stopped.await;
        };
        tokio::spawn(async move { web::serve(listener, app, serving, shutdown).await });
        TestExporter {
            addr,
            http: reqwest::Client::new(),
            reload,
            probes,
            account,
            _stop: stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("exporter answers")
    }

    /// What the landing page says of the last collection: its outcome, or its error with what
    /// to change.
    pub async fn last_collection(&self) -> String {
        let landing = self.get("/").await.text().await.expect("the landing page");
        landing
            .lines()
            .find(|l| l.contains("Last collection"))
            .unwrap_or_default()
            .replace("&#39;", "'")
    }

    /// Scrapes /metrics and returns the text; a scrape always answers 200, even when up is 0.
    pub async fn scrape(&self) -> Scraped {
        let response = self.get("/metrics").await;
        assert_eq!(response.status(), 200);
        Scraped(response.text().await.unwrap())
    }
}

/// A simulator of 30 phones, and an accounts file in `dir` whose accounts all read it with one
/// token; `write(names)` (re)writes the file with these accounts. Returns the simulator, the
/// file's path and `write`.
pub async fn token_accounts(dir: &Path) -> (SimHandle, std::path::PathBuf, impl Fn(&[&str])) {
    let sim = simulator(SimConfig::new(30, 5)).await;
    let token = dir.join("token");
    std::fs::write(&token, "any-token").unwrap();
    let accounts = dir.join("accounts.yml");
    let (path, url) = (accounts.clone(), sim.url());
    let write = move |names: &[&str]| {
        let entries: String = names
            .iter()
            .map(|name| {
                format!(
                    "  {name}:\n    endpoint: {url}\n    token_file: {}\n",
                    token.display()
                )
            })
            .collect();
        std::fs::write(&path, format!("accounts:\n{entries}")).unwrap();
    };
    (sim, accounts, write)
}

/// A simulator on 127.0.0.1:0.
pub async fn simulator(config: SimConfig) -> SimHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    clouddevice_simulator::start(config, listener).unwrap()
}

/// A simulator and an exporter in front of it.
pub async fn sim_and_exporter(config: SimConfig, flags: &[&str]) -> (SimHandle, TestExporter) {
    sim_and_exporter_on(config, flags, Clock::system()).await
}

/// A simulator and an exporter in front of it, both on `clock`, which the test moves instead
/// of sleeping.
pub async fn sim_and_exporter_on(
    config: SimConfig,
    flags: &[&str],
    clock: Clock,
) -> (SimHandle, TestExporter) {
    let sim = simulator(SimConfig {
        clock: std::sync::Arc::new(clock.clone()),
        ..config
    })
    .await;
    let env = EnvLookup::of([(TOKEN_ENV.into(), Secret::new(TOKEN))]);
    let exporter = TestExporter::start_on(&sim.url(), flags, env, clock).await;
    (sim, exporter)
}

/// The text of one scrape, with helpers to read samples from it.
pub struct Scraped(pub String);

impl Scraped {
    /// `clouddevice_exporter_api_errors_total` for one `error_code`, if that series is there.
    pub fn errors(&self, error_code: &str) -> Option<f64> {
        self.value(&format!(
            r#"clouddevice_exporter_api_errors_total{{error_code="{error_code}"}}"#
        ))
    }

    /// The value of the sample whose name and labels are exactly `series`.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
            rest.parse().ok()
        })
    }

    /// The samples of one metric name, as (labels text, value).
    pub fn samples(&self, name: &str) -> Vec<(String, f64)> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|line| {
                let rest = line.strip_prefix(name)?;
                let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
                    let (labels, value) = r.rsplit_once("} ")?;
                    (labels.to_string(), value)
                } else {
                    (String::new(), rest.strip_prefix(' ')?)
                };
                Some((labels, value.parse().ok()?))
            })
            .collect()
    }

    /// The sum of all samples of one metric name.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples(name).iter().map(|(_, v)| v).sum()
    }

    pub fn up(&self) -> f64 {
        self.value("clouddevice_up")
            .expect("clouddevice_up is always exported")
    }

    pub fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }
}

pub const BIN: &str = env!("CARGO_BIN_EXE_clouddevice_exporter");

/// A command with a clean environment: no CLOUDDEVICE_* variable from the caller leaks in.
pub fn exporter(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    clean_env(&mut cmd);
    cmd
}

/// The exporter started by `sh -c script`, which ends with `exec "$0" "$@"` (to set limits
/// first), with a clean environment like [`exporter`].
pub fn exporter_after(script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script, BIN]).args(args);
    clean_env(&mut cmd);
    cmd
}

fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CLOUDDEVICE") {
            cmd.env_remove(key);
        }
    }
}

/// The status of a GET of `url` as `user` with `password`.
pub async fn status_as(url: &str, user: &str, password: &str) -> u16 {
    let request = reqwest::Client::new()
        .get(url)
        .basic_auth(user, Some(password));
    request.send().await.expect("an answer").status().as_u16()
}

/// Fails naming the first of `needles` that `text` does not hold, and the text.
#[track_caller]
pub fn assert_holds(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}

/// An IAM user's flags but its password.
pub const IAM_USER: &[&str] = &[
    "--iam.username",
    "u",
    "--iam.domain",
    "d",
    "--iam.project",
    "p",
];

/// `--demo` on a free port of 127.0.0.1: the running exporter and the address it listens on.
pub fn demo() -> (Running, String) {
    let demo = Running::start(&mut exporter(&[
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
    ]));
    let address = demo.listening_address();
    (demo, address)
}

/// A child process that is killed if the test ends before it does.
pub struct Running {
    pub child: Child,
    lines: std_mpsc::Receiver<String>,
}

impl Running {
    pub fn start(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// Waits for the log line containing `needle` and returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    }

    /// The address from the "listening" log line (logfmt `address=` or JSON `"address":`).
    pub fn listening_address(&self) -> String {
        let line = self.wait_for("listening");
        let start = line.find("address").expect("address field") + "address".len();
        line[start..]
            .trim_start_matches(['=', '"', ':'])
            .split(['"', ' '])
            .next()
            .unwrap()
            .to_string()
    }

    /// Sends SIGHUP: re-read the web configuration and the accounts file.
    pub fn hangup(&self) {
        self.signal("HUP");
    }

    /// Sends SIGTERM and waits for the exit, which must come within 10 s.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.exit_within(Duration::from_secs(10))
    }

    /// The lines logged and not read yet, up to the end of the log: for a process that exited.
    pub fn rest(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Sends the signal named (`TERM`, `INT`, `HUP`...).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, which must come within `limit`.
    pub fn exit_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        // A watchdog kills the process if it has not stopped in time; the wait itself blocks on
        // the exit, so a fast machine does not poll and a slow one is not rushed.
        let (done, watched) = std_mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let late = watched.recv_timeout(limit).is_err();
            if late {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            late
        });
        let status = self.child.wait().unwrap();
        let _ = done.send(());
        assert!(
            !watchdog.join().unwrap(),
            "the process did not stop within {limit:?}"
        );
        status
    }

    /// Everything logged until now. Asks the process for one more line (a SIGHUP, whose reload
    /// it logs at info) and reads up to it: a pipe keeps order, so every earlier line is read by
    /// then, with no guess at how long the reader needs.
    pub fn drain(&self) -> Vec<String> {
        self.hangup();
        let mut lines = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line)
                    if line.contains("reload the configuration")
                        || line.contains("reloaded the configuration") =>
                {
                    return lines
                }
                Ok(line) => lines.push(line),
                Err(e) => panic!("no reload line after SIGHUP: {e}; got {lines:#?}"),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
pub struct Pki {
    pub ca: String,
    /// A client certificate (SAN `prometheus.example`) and its key, signed by the CA.
    pub client_identity: String,
    /// Another one, with SAN `intruder.example`.
    pub other_identity: String,
}

pub fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "clouddevice test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let client = |san: &str| {
        let mut params = CertificateParams::new(vec![san.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, san);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        format!("{}{}", cert.pem(), key.serialize_pem())
    };

    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    Pki {
        ca: ca_cert.pem(),
        client_identity: client("prometheus.example"),
        other_identity: client("intruder.example"),
    }
}

pub fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

/// The demo exporter with this web configuration (written to `dir/web.yml`), and its address.
pub fn start_with_web_config(dir: &Path, web_yaml: &str, flags: &[&str]) -> (Running, String) {
    let file = dir.join("web.yml");
    std::fs::write(&file, web_yaml).unwrap();
    let mut args = vec![
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--web.config.file",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    let running = Running::start(&mut exporter(&args));
    let address = running.listening_address();
    (running, address)
}

/// A TLS 1.2/1.3 handshake with the exporter at `address`, trusting only `ca_pem`, as a client
/// that offers everything rustls has; blocking.
pub fn tls_handshake(
    ca_pem: &str,
    address: &str,
) -> (rustls::ClientConnection, std::net::TcpStream) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = "127.0.0.1".try_into().unwrap();
    let mut tls = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut socket).unwrap();
    }
    (tls, socket)
}

/// Runs `promtool check metrics` on `text`: Prometheus' own parser, strict about the format.
pub fn promtool_accepts(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run promtool ({e}); install Debian's prometheus package (.ci/run does)")
        })?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() && out.stdout.is_empty() && out.stderr.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A GET from a test without a runtime of its own: the status and the body.
pub fn get(url: &str) -> (u16, String) {
    let r = reqwest::blocking::get(url).expect("answer");
    (r.status().as_u16(), r.text().unwrap())
}
