//! A CloudDevice batch-query API on loopback: a fleet generated from a seed and a size, served as
//! the reference describes it, with the service's quirks (capped page size, paging fields in
//! either place, HTTP-200 errors) and faults injected on demand. Used by `simulate`, `--demo`,
//! the tests and the benchmarks; never by a real scrape.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod auth;
mod fleet;
mod gateway;
mod throttle;

pub use throttle::Stats as GatewayStats;

pub use auth::SimIamUser;
pub use fleet::{generate_fleet, SimInstance};

/// Where a page's `page_no`, `page_size`, `total_count` and `error_code` are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PagingFields {
    /// At the top level, beside `data`, as the reference's example response has them.
    Top,
    /// Inside `data`, as the reference's tables list them.
    Data,
}

/// The time the simulator reads: the system's, or a test's that it shares with the exporter
/// under test, so that both see the same jumps.
pub trait TimeSource: Send + Sync {
    /// Wall-clock time: when issued tokens expire.
    fn now(&self) -> std::time::SystemTime;
    /// Monotonic time: how long a moving fleet has run.
    fn instant(&self) -> tokio::time::Instant;
}

/// The system's time, as it passes.
pub struct SystemTime;

impl TimeSource for SystemTime {
    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }
    fn instant(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
}

/// What the simulator serves and accepts. Not `Debug`: it holds the credentials it accepts.
#[derive(Clone)]
pub struct SimConfig {
    pub instances: usize,
    pub seed: u64,
    /// The most rows a page holds, whatever `page_size` asks for.
    pub max_page_size: u32,
    pub paging_fields: PagingFields,
    /// Added to every response.
    pub latency: Duration,
    /// The only static token accepted (beside the tokens it issued); `None` accepts any.
    pub token: Option<String>,
    /// The user the IAM endpoint accepts; `None` accepts any user and password.
    pub iam_user: Option<SimIamUser>,
    /// How long an issued token lives.
    pub token_lifetime: Duration,
    /// With temporary keys: the security token every signed request must carry, and sign.
    pub security_token: Option<String>,
    /// The key pair signatures are checked against; `None` refuses signed requests.
    pub access_key: Option<(String, String)>,
    /// Answer every request with this error: (HTTP status, error code).
    pub error: Option<(u16, String)>,
    /// Backup and restore times are generated in the 30 days before this Unix time.
    pub now: i64,
    /// The zone backup and restore times are written in.
    pub time_zone: time::UtcOffset,
    /// The share of instances in trouble, in percent; `None` keeps the default fleet's mixture.
    pub trouble_percent: Option<f64>,
    /// Every instance of this region frozen, as an overdue bill freezes an account's phones.
    pub frozen_region: Option<String>,
    /// A moving fleet: statuses change, and phones go and come back, every this long
    /// ([`fleet::evolve`]); `None` (or zero) serves the same fleet for ever.
    pub change_every: Option<Duration>,
    /// What issued tokens expire by: the system's time, or a test's clock, shared with the
    /// exporter under test so that both see the same jumps.
    pub clock: Arc<dyn TimeSource>,
    /// The gateway's limit of requests a second for this account; `None` for none.
    pub rate_limit: Option<u32>,
    /// The projects IAM lists for the access key, (name, id); `None` lists one of any name
    /// asked for, with the id `project-of-<name>`.
    pub projects: Option<Vec<(String, String)>>,
    /// IAM's login policy for the user.
    pub iam_lockout: Lockout,
}

/// IAM's login authentication policy: this many failed logins within `window` lock the user
/// (while the failures stay in the window, as a lock that lasts the window does). IAM's default
/// is 5 in 15 minutes; an administrator may set 3 to 10.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    pub failures: u32,
    pub window: Duration,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout {
            failures: 5,
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl SimConfig {
    pub fn new(instances: usize, seed: u64) -> Self {
        SimConfig {
            instances,
            seed,
            max_page_size: 100,
            paging_fields: PagingFields::Top,
            latency: Duration::ZERO,
            token: None,
            iam_user: None,
            token_lifetime: Duration::from_secs(24 * 3600),
            access_key: None,
            security_token: None,
            error: None,
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
            time_zone: time::UtcOffset::UTC,
            trouble_percent: None,
            frozen_region: None,
            change_every: None,
            clock: Arc::new(SystemTime),
            rate_limit: None,
            projects: None,
            iam_lockout: Lockout::default(),
        }
    }
}

/// A fault injected into the answers for one page (or every page), a number of times or forever.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The page it applies to; `None` for every page.
    pub page: Option<u64>,
    /// How many answers it spoils; `None` for all of them.
    pub times: Option<u32>,
    pub kind: FaultKind,
}

impl Fault {
    /// Every page answered with HTTP `status` (with the documented error body of `code`, when
    /// given), until the faults are cleared.
    pub fn every_page(status: u16, code: Option<&str>) -> Fault {
        Fault {
            page: None,
            times: None,
            kind: FaultKind::Status {
                status,
                code: code.map(str::to_string),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub enum FaultKind {
    /// This HTTP status, with a documented error body when a code is given.
    Status { status: u16, code: Option<String> },
    /// HTTP 200 with this `error_code` in the body, as the service answers many errors.
    ApiError { code: String },
    /// This HTTP status, with `code` and its message written in `shape`: the ways Huawei's
    /// services and gateways write errors, as its SDKs read them.
    Shaped {
        status: u16,
        code: String,
        shape: ErrorShape,
    },
    /// The first half of the normal body only.
    Truncate,
    /// The normal answer, this much later.
    Delay(Duration),
    /// Revokes every issued token just before the request is checked, as a password change does.
    RevokeTokens,
    /// HTTP 429 `APIGW.0308`, with `Retry-After` in seconds when given.
    Throttle { retry_after: Option<u64> },
    /// The normal answer padded with whitespace to this many bytes.
    Oversize(usize),
    /// The same, sent chunked without a `Content-Length`, so that only reading it tells its size.
    OversizeChunked(usize),
    /// Deletes the first instance of the list just before answering: every later row moves up
    /// by one, so a paging client sees a gap and a new `total_count`.
    DeleteFirst,
    /// The page's last row replaced by a copy of its first.
    DuplicateRow,
}

/// How an error answer writes its code and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error_code", "error_msg"}`, as the reference does.
    Reference,
    /// `{"error_code", "error_message"}`, as other Huawei services do.
    ErrorMessage,
    /// `{"errorCode", "errorMsg"}`.
    Camel,
    /// `{"code", "message"}`.
    CodeMessage,
    /// `{"error": {"code", "message"}}`, as IAM does.
    Nested,
    /// `{"data": {"error_code", "error_msg"}}`, in the envelope the reference's tables give.
    Data,
}

impl ErrorShape {
    fn body(self, code: &str, message: &str) -> String {
        use serde_json::json;
        match self {
            ErrorShape::Reference => json!({ "error_code": code, "error_msg": message }),
            ErrorShape::ErrorMessage => json!({ "error_code": code, "error_message": message }),
            ErrorShape::Camel => json!({ "errorCode": code, "errorMsg": message }),
            ErrorShape::CodeMessage => json!({ "code": code, "message": message }),
            ErrorShape::Nested => json!({ "error": { "code": code, "message": message } }),
            ErrorShape::Data => json!({ "data": { "error_code": code, "error_msg": message } }),
        }
        .to_string()
    }
}

/// What a moving fleet (`--change-every`) evolves from, and when.
struct Moving {
    /// The fleet generated at start.
    base: Vec<SimInstance>,
    every: Duration,
    started: tokio::time::Instant,
}

/// The fleet as served in one epoch of a moving simulator (the only one otherwise).
struct Served {
    epoch: u64,
    fleet: Arc<Vec<SimInstance>>,
    /// Each instance already as JSON, so a page costs a copy, not a serialisation.
    rows: Arc<Vec<String>>,
}

impl Served {
    fn new(epoch: u64, fleet: Vec<SimInstance>, zone: time::UtcOffset) -> Self {
        let rows = fleet
            .iter()
            .map(|i| serde_json::to_string(&i.in_zone(zone)).unwrap_or_default())
            .collect();
        Served {
            epoch,
            fleet: Arc::new(fleet),
            rows: Arc::new(rows),
        }
    }
}

struct SimState {
    config: SimConfig,
    /// Set for a moving fleet only: a fixed one keeps no second copy.
    moving: Option<Moving>,
    served: Mutex<Served>,
    faults: Mutex<Vec<Fault>>,
    requests: AtomicU64,
    page_requests: Mutex<HashMap<u64, u64>>,
    /// Instances deleted from the front of the list by `DeleteFirst`.
    deleted: AtomicUsize,
    issued: Mutex<auth::Issued>,
    iam_requests: AtomicU64,
    /// IAM project lists asked for.
    project_requests: AtomicU64,
    /// IAM's failed logins of the user, within its lockout window.
    iam_failures: Mutex<Vec<std::time::SystemTime>>,
    /// Logins refused because the user was locked.
    iam_locked_answers: AtomicU64,
    iam_down: AtomicBool,
    /// The IAM user's password since an administrator changed it, if one did.
    iam_password: Mutex<Option<String>>,
    /// Every signature received, so tests can check none leaked.
    signatures: Mutex<Vec<String>>,
    /// The canonical request the gateway rebuilt for each signed request.
    canonical_requests: Mutex<Vec<String>>,
    /// The decoded query of the last batch-query request.
    last_query: Mutex<Vec<(String, String)>>,
    /// Bytes of `OversizeChunked` bodies handed to the connection so far.
    chunked_bytes: Arc<AtomicU64>,
    /// Woken on every batch-query request, for [`SimHandle::requests_reach`].
    request_arrived: tokio::sync::Notify,
    /// The gateway's count of this account's requests, second by second.
    throttle: Mutex<throttle::Throttle>,
}

impl SimState {
    /// The Unix second now, on the simulator's clock.
    fn unix_second(&self) -> u64 {
        self.config
            .clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The fleet and its rows as served now: for a moving fleet, those of the current epoch,
    /// made on the first request of the epoch.
    fn now_serving(&self) -> (Arc<Vec<SimInstance>>, Arc<Vec<String>>) {
        let mut served = lock(&self.served);
        if let Some(moving) = &self.moving {
            let since = (self.config.clock.instant()).saturating_duration_since(moving.started);
            let epoch = (since.as_nanos() / moving.every.as_nanos()) as u64;
            if epoch != served.epoch {
                let fleet = fleet::evolve(&moving.base, self.config.seed, epoch);
                *served = Served::new(epoch, fleet, self.config.time_zone);
            }
        }
        (served.fleet.clone(), served.rows.clone())
    }
}

/// The accounts one simulator serves, each with its own credentials and fleet. A request goes
/// to the account its credentials belong to; with a single account, to that one.
struct Tenants {
    accounts: Vec<(String, Arc<SimState>)>,
    /// Batch-query requests being answered now, over all accounts, and the most there were.
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// The client connections batch-query requests came on (their peer addresses).
    connections: Mutex<std::collections::HashSet<SocketAddr>>,
}

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a Tenants);

impl<'a> InFlight<'a> {
    fn new(tenants: &'a Tenants) -> Self {
        let now = tenants.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        tenants.most_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(tenants)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Tenants {
    fn only(&self) -> Option<&Arc<SimState>> {
        match self.accounts.as_slice() {
            [(_, state)] => Some(state),
            _ => None,
        }
    }

    /// The account a batch-query request's credentials belong to.
    fn owner(&self, headers: &HeaderMap) -> Option<&Arc<SimState>> {
        if let Some(state) = self.only() {
            return Some(state);
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let states = self.accounts.iter().map(|(_, state)| state);
        if let Some(authorization) = header("authorization") {
            let access_key = auth::access_key_of(authorization)?;
            return states.into_iter().find(|s| {
                s.config
                    .access_key
                    .as_ref()
                    .is_some_and(|(ak, _)| ak == access_key)
            });
        }
        let token = header("x-auth-token")?;
        states.into_iter().find(|s| {
            lock(&s.issued).holds(token) || s.config.token.as_ref().is_some_and(|t| t == token)
        })
    }

    /// The account whose IAM user a token request names.
    fn iam_owner(&self, user: &str, domain: &str) -> Option<&Arc<SimState>> {
        if let Some(state) = self.only() {
            return Some(state);
        }
        self.accounts.iter().map(|(_, s)| s).find(|s| {
            s.config
                .iam_user
                .as_ref()
                .is_some_and(|u| u.name == user && u.domain == domain)
        })
    }
}

/// The server task, stopped when the last handle on it is dropped.
struct Server {
    task: JoinHandle<()>,
    tenants: Arc<Tenants>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running simulator, seen from one of its accounts (the first, unless [`SimHandle::account`]
/// chose another). Dropping every handle stops the server.
#[derive(Clone)]
pub struct SimHandle {
    addr: SocketAddr,
    state: Arc<SimState>,
    server: Arc<Server>,
}

impl SimHandle {
    /// The most batch-query requests the simulator answered at once, over all its accounts.
    pub fn most_in_flight(&self) -> usize {
        self.server.tenants.most_in_flight.load(Ordering::SeqCst)
    }

    /// The client connections batch-query requests have come on so far, over all accounts.
    pub fn connections(&self) -> usize {
        lock(&self.server.tenants.connections).len()
    }

    /// The same simulator, seen from the account `name`.
    pub fn account(&self, name: &str) -> Option<SimHandle> {
        let (_, state) = self
            .server
            .tenants
            .accounts
            .iter()
            .find(|(n, _)| n == name)?;
        Some(SimHandle {
            addr: self.addr,
            state: state.clone(),
            server: self.server.clone(),
        })
    }

    /// Base URL to give the exporter as `--clouddevice.endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fleet as served now.
    pub fn fleet(&self) -> Arc<Vec<SimInstance>> {
        self.state.now_serving().0
    }

    pub fn inject(&self, fault: Fault) {
        lock(&self.state.faults).push(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
    }

    /// Batch-query requests answered so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Instances in the list now (the fleet less those `DeleteFirst` removed).
    pub fn live_instances(&self) -> usize {
        let deleted = self.state.deleted.load(Ordering::Relaxed);
        self.fleet().len().saturating_sub(deleted)
    }

    /// Token requests the IAM endpoint answered so far.
    pub fn iam_requests(&self) -> u64 {
        self.state.iam_requests.load(Ordering::Relaxed)
    }

    /// Makes every issued token expire now, as a password change does.
    pub fn revoke_tokens(&self) {
        lock(&self.state.issued).revoke_all();
    }

    /// While down, the IAM endpoint answers 503.
    pub fn set_iam_down(&self, down: bool) {
        self.state.iam_down.store(down, Ordering::Relaxed);
    }

    /// Changes the IAM user's password, as an administrator does: logins with the old one are
    /// refused from now on (tokens already issued still work).
    pub fn set_iam_password(&self, password: &str) {
        *lock(&self.state.iam_password) = Some(password.to_string());
    }

    /// Logins IAM refused because too many had failed before: the user was locked.
    pub fn iam_locked_answers(&self) -> u64 {
        self.state.iam_locked_answers.load(Ordering::Relaxed)
    }

    /// IAM project lists the simulator answered (`GET /v3/projects`).
    pub fn project_requests(&self) -> u64 {
        self.state.project_requests.load(Ordering::Relaxed)
    }

    /// Every token the IAM endpoint issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.state.issued).tokens()
    }

    /// Every AK/SK signature received.
    /// The canonical requests the gateway rebuilt from signed requests, in arrival order.
    pub fn canonical_requests(&self) -> Vec<String> {
        lock(&self.state.canonical_requests).clone()
    }

    /// The query of the last batch-query request, decoded as the gateway decodes it.
    pub fn last_query(&self) -> Vec<(String, String)> {
        lock(&self.state.last_query).clone()
    }

    pub fn signatures(&self) -> Vec<String> {
        lock(&self.state.signatures).clone()
    }

    /// Returns once at least `n` batch-query requests have arrived: a test waits on the
    /// simulator's own news instead of polling it.
    pub async fn requests_reach(&self, n: u64) {
        loop {
            // Made before the check, so a request between the two still wakes it.
            let arrived = self.state.request_arrived.notified();
            if self.requests() >= n {
                return;
            }
            arrived.await;
        }
    }

    /// Bytes of `OversizeChunked` bodies the client took so far (at most one chunk more than it
    /// read: the stream makes each chunk only when the connection asks for it).
    pub fn chunked_bytes(&self) -> u64 {
        self.state.chunked_bytes.load(Ordering::Relaxed)
    }

    /// The gateway's counts of this account's requests in the last `seconds` seconds (up to
    /// ten minutes): let through, throttled, and the busiest second.
    pub fn gateway_stats(&self, seconds: u64) -> GatewayStats {
        let since = self
            .state
            .unix_second()
            .saturating_sub(seconds.saturating_sub(1));
        lock(&self.state.throttle).stats(since)
    }

    /// Requests for one page so far.
    pub fn page_requests(&self, page: u64) -> u64 {
        lock(&self.state.page_requests)
            .get(&page)
            .copied()
            .unwrap_or(0)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts a simulator of one account on `listener` and serves until the handle is dropped.
pub fn start(config: SimConfig, listener: TcpListener) -> std::io::Result<SimHandle> {
    start_accounts(vec![("default".to_string(), config)], listener)
}

/// Starts a simulator of several accounts, each with its own fleet and credentials (which must
/// tell them apart: a token, an IAM user or an access key of its own), on `listener`.
pub fn start_accounts(
    accounts: Vec<(String, SimConfig)>,
    listener: TcpListener,
) -> std::io::Result<SimHandle> {
    let addr = listener.local_addr()?;
    let accounts: Vec<(String, Arc<SimState>)> = accounts
        .into_iter()
        .map(|(name, config)| (name, Arc::new(SimState::new(config))))
        .collect();
    let first = accounts
        .first()
        .map(|(_, state)| state.clone())
        .ok_or_else(|| std::io::Error::other("a simulator needs at least one account"))?;
    let tenants = Arc::new(Tenants {
        accounts,
        in_flight: AtomicUsize::new(0),
        most_in_flight: AtomicUsize::new(0),
        connections: Mutex::new(std::collections::HashSet::new()),
    });
    let app = router(tenants.clone());
    let task = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "simulator stopped");
        }
    });
    Ok(SimHandle {
        addr,
        state: first,
        server: Arc::new(Server { task, tenants }),
    })
}

impl SimState {
    fn new(config: SimConfig) -> Self {
        let mut fleet = generate_fleet(config.seed, config.instances, config.now);
        if let Some(percent) = config.trouble_percent {
            fleet = fleet::with_trouble(fleet, percent, config.seed);
        }
        if let Some(region) = &config.frozen_region {
            for instance in fleet.iter_mut().filter(|i| &i.region == region) {
                instance.frozen_status = 1;
            }
        }
        let (served, moving) = match config.change_every.filter(|every| !every.is_zero()) {
            Some(every) => {
                let first = fleet::evolve(&fleet, config.seed, 0);
                let moving = Moving {
                    base: fleet,
                    every,
                    started: config.clock.instant(),
                };
                (Served::new(0, first, config.time_zone), Some(moving))
            }
            None => (Served::new(0, fleet, config.time_zone), None),
        };
        SimState {
            config,
            moving,
            served: Mutex::new(served),
            faults: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            page_requests: Mutex::new(HashMap::new()),
            deleted: AtomicUsize::new(0),
            issued: Mutex::new(auth::Issued::default()),
            iam_requests: AtomicU64::new(0),
            project_requests: AtomicU64::new(0),
            iam_failures: Mutex::new(Vec::new()),
            iam_locked_answers: AtomicU64::new(0),
            iam_down: AtomicBool::new(false),
            iam_password: Mutex::new(None),
            signatures: Mutex::new(Vec::new()),
            canonical_requests: Mutex::new(Vec::new()),
            last_query: Mutex::new(Vec::new()),
            chunked_bytes: Arc::new(AtomicU64::new(0)),
            request_arrived: tokio::sync::Notify::new(),
            throttle: Mutex::new(throttle::Throttle::default()),
        }
    }
}

fn router(tenants: Arc<Tenants>) -> Router {
    Router::new()
        .route("/v1/instances/batch-query", get(batch_query))
        .route("/v3/auth/tokens", post(auth::issue_token))
        .route("/v3/projects", get(projects))
        .with_state(tenants)
}

fn error_response(status: u16, code: &str, message: &str) -> Response {
    shaped_error(status, code, message, ErrorShape::Reference)
}

fn shaped_error(status: u16, code: &str, message: &str, shape: ErrorShape) -> Response {
    let body = shape.body(code, message);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [("content-type", "application/json")], body).into_response()
}

/// The messages the reference gives for its codes (and the gateway's for its own).
fn message_for(code: &str) -> &'static str {
    match code.to_ascii_uppercase().as_str() {
        "KOOPHONE.API.0000" => "The tenant does not exist.",
        "KOOPHONE.API.0002" => "The x-request-id is missing.",
        "KOOPHONE.API.1000" => "The request parameter is incorrect.",
        "KOOPHONE.API.1001" => "Insufficient instance permissions.",
        "KOOPHONE.API.1004" => "The service is not subscribed to.",
        "KOOPHONE.API.5002" => "The time request format is incorrect.",
        "KOOPHONE.API.5004" => "The query end date is earlier than the query start date.",
        "KOOPHONE.API.9999" => "Internal service error.",
        "KPAPI.2209" => "No device can be assigned.",
        "APIGW.0301" => "Incorrect IAM authentication information.",
        "APIGW.0303" => "Incorrect app authentication information: signature expired.",
        "APIGW.0307" => "The token must be updated.",
        "APIGW.0308" | "APIG.0308" => "The throttling threshold has been reached.",
        "KOOPHONE.API.0004" => "The project does not exist.",
        _ => "Simulated error.",
    }
}

fn api_error(status: u16, code: &str) -> Response {
    error_response(status, code, message_for(code))
}

/// Takes the first fault armed for `page`, using up one of its tries.
fn take_fault(state: &SimState, page: u64) -> Option<FaultKind> {
    let mut faults = lock(&state.faults);
    let index = faults
        .iter()
        .position(|f| f.page.is_none_or(|p| p == page))?;
    let kind = faults[index].kind.clone();
    match &mut faults[index].times {
        Some(1) => {
            faults.remove(index);
        }
        Some(n) => *n -= 1,
        None => {}
    }
    Some(kind)
}

fn valid_time(s: &str) -> bool {
    time::PrimitiveDateTime::parse(s, fleet::TIME_FORMAT).is_ok()
}

/// IAM's KeystoneListProjects, signed with the account's access key: the projects named as
/// asked, of those the account has (by default, one of any name asked for).
async fn projects(State(tenants): State<Arc<Tenants>>, headers: HeaderMap, uri: Uri) -> Response {
    let Some(state) = tenants.owner(&headers).cloned() else {
        return api_error(401, "APIGW.0301");
    };
    state.project_requests.fetch_add(1, Ordering::Relaxed);
    if let Err(code) = auth::check(&state, &headers, &uri) {
        return api_error(401, code);
    }
    let query: HashMap<String, String> = gateway::decode_query(uri.query()).into_iter().collect();
    let name = query.get("name").cloned().unwrap_or_default();
    let projects: Vec<serde_json::Value> = match &state.config.projects {
        None => vec![serde_json::json!({ "id": format!("project-of-{name}"), "name": name })],
        Some(projects) => projects
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(n, id)| serde_json::json!({ "id": id, "name": n }))
            .collect(),
    };
    let body = serde_json::json!({ "projects": projects }).to_string();
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

async fn batch_query(
    State(tenants): State<Arc<Tenants>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let _counted = InFlight::new(&tenants);
    lock(&tenants.connections).insert(peer);
    // Credentials no account holds are refused as the gateway refuses unknown ones.
    let Some(state) = tenants.owner(&headers).cloned() else {
        return api_error(401, "APIGW.0301");
    };
    state.requests.fetch_add(1, Ordering::Relaxed);
    state.request_arrived.notify_waiters();
    let limit = state.config.rate_limit;
    if let throttle::Verdict::Throttled { retry_after } =
        lock(&state.throttle).arrive(state.unix_second(), limit)
    {
        let message = format!(
            "The throttling threshold has been reached: policy user over ratelimit,limit:{},time:1 second",
            limit.unwrap_or_default()
        );
        let mut response = error_response(429, "APIGW.0308", &message);
        response
            .headers_mut()
            .insert("retry-after", retry_after.into());
        return response;
    }
    let pairs = gateway::decode_query(uri.query());
    let query: HashMap<String, String> = pairs.iter().cloned().collect();
    *lock(&state.last_query) = pairs;
    if !state.config.latency.is_zero() {
        tokio::time::sleep(state.config.latency).await;
    }
    // Faults are taken before the gateway's checks, so a revocation hits this very request.
    let requested_page = query.get("page_no").and_then(|p| p.parse::<u64>().ok());
    let mut fault = requested_page.and_then(|page| take_fault(&state, page));
    if matches!(fault, Some(FaultKind::RevokeTokens)) {
        lock(&state.issued).revoke_all();
        fault = None;
    }
    if let Err(code) = auth::check(&state, &headers, &uri) {
        return api_error(401, code);
    }
    if query.get("x-request-id").is_none_or(|v| v.is_empty()) {
        return api_error(400, "KOOPHONE.API.0002");
    }
    let number = |name: &str| {
        query
            .get(name)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n > 0)
    };
    let (Some(page_no), Some(page_size)) = (number("page_no"), number("page_size")) else {
        return api_error(400, "KOOPHONE.API.1000");
    };
    let start_time = query.get("query_start_time");
    let end_time = query.get("query_end_time");
    if [start_time, end_time]
        .into_iter()
        .flatten()
        .any(|t| !valid_time(t))
    {
        return api_error(400, "KOOPHONE.API.5002");
    }
    if let (Some(start), Some(end)) = (start_time, end_time) {
        if end < start {
            return api_error(400, "KOOPHONE.API.5004");
        }
    }
    let tag = query.get("pool_scene_tag").map(String::as_str);
    if tag.is_some_and(|t| t != "CLOUD_APP" && t != "CLOUD_PHONE") {
        return api_error(400, "KOOPHONE.API.1000");
    }
    if let Some((status, code)) = &state.config.error {
        return api_error(*status, code);
    }
    *lock(&state.page_requests).entry(page_no).or_default() += 1;

    match &fault {
        Some(FaultKind::Status { status, code }) => {
            return match code {
                Some(code) => api_error(*status, code),
                None => {
                    let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                    (status, "simulated failure").into_response()
                }
            };
        }
        Some(FaultKind::ApiError { code }) => return api_error(200, code),
        Some(FaultKind::Shaped {
            status,
            code,
            shape,
        }) => return shaped_error(*status, code, message_for(code), *shape),
        Some(FaultKind::Throttle { retry_after }) => {
            let mut response = api_error(429, "APIGW.0308");
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from(*seconds));
            }
            return response;
        }
        Some(FaultKind::Delay(d)) => tokio::time::sleep(*d).await,
        _ => {}
    }

    if matches!(fault, Some(FaultKind::DeleteFirst)) {
        state.deleted.fetch_add(1, Ordering::Relaxed);
    }
    // Deleted instances are gone from the front of the list; the rest move up.
    let (fleet, rows) = state.now_serving();
    let deleted = state.deleted.load(Ordering::Relaxed).min(rows.len());
    let (fleet, rows) = (&fleet[deleted..], &rows[deleted..]);
    let size = page_size.min(u64::from(state.config.max_page_size));
    let page = |total: usize| {
        let from = (page_no - 1).saturating_mul(size).min(total as u64) as usize;
        let to = page_no.saturating_mul(size).min(total as u64) as usize;
        (from..to, total as u64)
    };
    let placement = state.config.paging_fields;
    let id = query.get("instance_id");
    let name = query.get("instance_name");
    let mut body = if id.is_none() && name.is_none() && tag.is_none() {
        let (range, total) = page(rows.len());
        page_body(
            &rows[range],
            placement,
            page_no,
            size,
            total,
            fault.as_ref(),
        )
    } else {
        let selected: Vec<&String> = fleet
            .iter()
            .zip(rows)
            .filter(|(i, _)| id.is_none_or(|v| *v == i.instance_id))
            .filter(|(i, _)| name.is_none_or(|v| *v == i.instance_name))
            .filter(|(i, _)| tag.is_none_or(|v| v == i.pool_scene_tag))
            .map(|(_, row)| row)
            .collect();
        let (range, total) = page(selected.len());
        page_body(
            &selected[range],
            placement,
            page_no,
            size,
            total,
            fault.as_ref(),
        )
    };
    match fault {
        Some(FaultKind::Truncate) => {
            let mut cut = body.len() / 2;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
        }
        Some(FaultKind::Oversize(bytes)) => {
            // Trailing whitespace keeps the JSON valid: only the size is wrong.
            body.extend(std::iter::repeat_n(' ', bytes.saturating_sub(body.len())));
        }
        Some(FaultKind::OversizeChunked(bytes)) => {
            return chunked(body, bytes, state.chunked_bytes.clone());
        }
        _ => {}
    }
    ([("content-type", "application/json")], body).into_response()
}

/// `body` padded with whitespace to `bytes`, streamed in 64 KiB chunks made one at a time as the
/// connection takes them, with no `Content-Length`; `sent` counts what was made.
fn chunked(body: String, bytes: usize, sent: Arc<AtomicU64>) -> Response {
    const CHUNK: usize = 64 << 10;
    let padding = bytes.saturating_sub(body.len());
    let first = futures::stream::once(async move { body.into_bytes() });
    let rest = futures::stream::iter(
        (0..padding.div_ceil(CHUNK)).map(move |k| vec![b' '; CHUNK.min(padding - k * CHUNK)]),
    );
    let stream = futures::StreamExt::map(futures::StreamExt::chain(first, rest), move |chunk| {
        sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok::<_, std::convert::Infallible>(chunk)
    });
    (
        [("content-type", "application/json")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// A page of rows (already JSON), with the paging fields where `placement` puts them.
/// `DuplicateRow` repeats the first row in place of the last, as a flaky list can.
fn page_body<S: AsRef<str>>(
    rows: &[S],
    placement: PagingFields,
    page_no: u64,
    size: u64,
    total: u64,
    fault: Option<&FaultKind>,
) -> String {
    let mut result =
        String::with_capacity(rows.iter().map(|r| r.as_ref().len() + 1).sum::<usize>() + 2);
    result.push('[');
    for (n, row) in rows.iter().enumerate() {
        if n > 0 {
            result.push(',');
        }
        let duplicate =
            matches!(fault, Some(FaultKind::DuplicateRow)) && n + 1 == rows.len() && n > 0;
        result.push_str(if duplicate {
            rows[0].as_ref()
        } else {
            row.as_ref()
        });
    }
    result.push(']');
    let paging = format!(
        r#""page_no":{page_no},"page_size":{size},"total_count":{total},"error_code":"0","error_msg":"OK""#
    );
    match placement {
        PagingFields::Top => format!(r#"{{"data":{{"result":{result}}},{paging}}}"#),
        PagingFields::Data => format!(r#"{{"data":{{"result":{result},{paging}}}}}"#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_fields_go_where_the_placement_says() {
        let fleet = generate_fleet(3, 3, 1_700_000_000);
        let rows: Vec<String> = fleet
            .iter()
            .map(|i| serde_json::to_string(i).unwrap())
            .collect();
        let refs: Vec<&String> = rows.iter().collect();
        for (placement, pointer) in [(PagingFields::Top, ""), (PagingFields::Data, "/data")] {
            let body = page_body(&refs, placement, 2, 3, 7, None);
            let page: serde_json::Value = serde_json::from_str(&body).unwrap();
            let field = |name: &str| page.pointer(&format!("{pointer}/{name}")).cloned();
            assert_eq!(field("page_no"), Some(2.into()), "{body}");
            assert_eq!(field("page_size"), Some(3.into()));
            assert_eq!(field("total_count"), Some(7.into()));
            let result = page
                .pointer("/data/result")
                .and_then(|r| r.as_array())
                .unwrap();
            assert_eq!(result.len(), 3);
            assert_eq!(result[0]["instance_id"], fleet[0].instance_id.as_str());
        }
    }
}
