//! The exporter's HTTP face (axum): the telemetry path, the landing page, the health probes,
//! `/-/reload`, and `/probe` and `/sd` for the accounts of a file, gzip when asked for. Handlers
//! stay thin: a scrape is `scrape::Exporter`, a probe `probe::Probes`, a reload
//! [`reload::Reloader`]. Serving it on a socket (TLS, basic auth, limits) is [`serve()`].

pub mod config;
pub mod connection;
pub mod reload;
pub mod sd;
pub mod serve;
pub mod signals;
pub mod tls;

pub use serve::{serve, Serving};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures::StreamExt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::exposition::{Families, Format};
use crate::logging::Throttle;
use crate::probe::Probes;
use crate::scrape::Exporter;
use crate::self_metrics::ProcessMetrics;
use crate::web::reload::Reloader;

/// What the HTTP side needs to know of the configuration.
pub struct WebOptions {
    pub telemetry_path: String,
    /// Used when the scraper does not send `X-Prometheus-Scrape-Timeout-Seconds`.
    pub scrape_timeout: Duration,
    /// Most /metrics requests (and probes of each account) served at once; zero for no limit.
    pub max_requests: u32,
    /// Most /metrics and /probe answers in flight over all accounts; zero for no limit.
    pub max_requests_total: u32,
    /// `--web.external-url`: what `/sd` lists, if set.
    pub external: Option<sd::External>,
    /// `--web.enable-lifecycle`: `POST /-/reload` reloads the configuration.
    pub lifecycle: bool,
    /// Cancelled when the process is told to stop: scrapes still waiting answer at once.
    pub stopping: CancellationToken,
}

/// What the telemetry path serves.
pub enum Telemetry {
    /// The account of the flags, with the process's own metrics.
    Account(Arc<Exporter>),
    /// The process's own metrics, when the accounts are in a file and are probed.
    Process(Arc<ProcessMetrics>),
}

#[derive(Clone)]
struct AppState {
    telemetry: Arc<Telemetry>,
    probes: Option<Arc<Probes>>,
    telemetry_path: Arc<str>,
    scrape_timeout: Duration,
    /// `None` when unlimited.
    slots: Option<Arc<Semaphore>>,
    max_requests: u32,
    /// Over all accounts: what bounds the memory of answers clients are slow to take.
    /// `None` when unlimited.
    all_slots: Option<Arc<Semaphore>>,
    external: Option<Arc<sd::External>>,
    reloader: Arc<Reloader>,
    lifecycle: bool,
    stopping: CancellationToken,
}

/// The router, without a socket ([`serve()`] serves it): the telemetry path, the landing page,
/// the health probes, `/-/reload`, and `/probe` and `/sd` when there are accounts to probe.
pub fn router(
    telemetry: Telemetry,
    probes: Option<Arc<Probes>>,
    reloader: Arc<Reloader>,
    options: &WebOptions,
) -> Router {
    let with_probes = probes.is_some();
    let state = AppState {
        reloader,
        lifecycle: options.lifecycle,
        telemetry: Arc::new(telemetry),
        probes,
        telemetry_path: options.telemetry_path.as_str().into(),
        scrape_timeout: options.scrape_timeout,
        slots: (options.max_requests > 0)
            .then(|| Arc::new(Semaphore::new(options.max_requests as usize))),
        max_requests: options.max_requests,
        all_slots: (options.max_requests_total > 0)
            .then(|| Arc::new(Semaphore::new(options.max_requests_total as usize))),
        external: options.external.clone().map(Arc::new),
        stopping: options.stopping.clone(),
    };
    let mut router = Router::new()
        .route("/", get(landing))
        .route(&options.telemetry_path, get(metrics))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", any(reload));
    if with_probes {
        router = router
            .route(PROBE_PATH, get(probe))
            .route(SD_PATH, get(service_discovery));
    }
    router
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .no_br()
                .no_deflate()
                .no_zstd()
                // Bodies of large fleets are big: the fastest level costs far less CPU than the
                // default for a somewhat larger body (measured in BENCHMARKS.md).
                .quality(CompressionLevel::Fastest),
        )
        .with_state(state)
}

/// Ready once every account has something to report: always when scrapes read the list, and
/// on a schedule once each account's first collection has ended (failed or not).
async fn ready(State(state): State<AppState>) -> Response {
    let mut waiting = match &*state.telemetry {
        Telemetry::Account(exporter) => usize::from(!exporter.ready()),
        Telemetry::Process(_) => 0,
    };
    if let Some(probes) = &state.probes {
        waiting += probes
            .targets()
            .values()
            .filter(|target| !target.exporter.ready())
            .count();
    }
    match waiting {
        0 => (StatusCode::OK, "Ready\n").into_response(),
        n => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Not ready: the first scheduled collection of {n} account(s) has not ended yet\n"
            ),
        )
            .into_response(),
    }
}

/// Where each account is probed, and where Prometheus discovers them.
pub const PROBE_PATH: &str = "/probe";
pub const SD_PATH: &str = "/sd";

/// The scraper's timeout: Prometheus sends it with every scrape.
fn scrape_timeout(headers: &HeaderMap, fallback: Duration) -> Duration {
    headers
        .get("x-prometheus-scrape-timeout-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
        .unwrap_or(fallback)
}

/// The `collect[]` parameters of a request.
fn families(query: &[(String, String)]) -> Result<Families, (StatusCode, String)> {
    let names = query
        .iter()
        .filter(|(name, _)| name == "collect[]")
        .map(|(_, value)| value.as_str());
    Families::from_names(names).map_err(|error| (StatusCode::BAD_REQUEST, format!("{error}\n")))
}

async fn metrics(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    match &*state.telemetry {
        Telemetry::Account(exporter) => {
            let own = state.slots.as_ref();
            scrape(&state, exporter, own, &query, &headers).await
        }
        Telemetry::Process(metrics) => {
            let format = format(&headers);
            let mut text = String::new();
            let encoded: Result<(), prometheus::Error> = metrics
                .gather()
                .iter()
                .try_for_each(|family| format.encode(family, &mut text));
            text.push_str(format.end());
            match encoded {
                Ok(()) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
                Err(e) => {
                    let text = format!("cannot encode metrics: {e}\n");
                    (StatusCode::INTERNAL_SERVER_ERROR, text).into_response()
                }
            }
        }
    }
}

/// `/probe?target=NAME`: one scrape of that account, as `/metrics` is of the flags' account.
async fn probe(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let Some(probes) = &state.probes else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let bad = |text: String| (StatusCode::BAD_REQUEST, text).into_response();
    let named: Vec<&str> = query
        .iter()
        .filter(|(name, _)| name == "target")
        .map(|(_, value)| value.as_str())
        .collect();
    let name = match named.as_slice() {
        [name] => *name,
        [] => {
            return bad(format!(
                "no target: write {PROBE_PATH}?target=ACCOUNT, with an account of the accounts file (listed on {SD_PATH})\n"
            ))
        }
        _ => return bad("several targets: give exactly one target=ACCOUNT\n".into()),
    };
    let Some(target) = probes.get(name) else {
        let shown: String = name.chars().take(80).collect();
        return bad(format!(
            "unknown target {shown:?}: no such account in the accounts file; the accounts are listed on {SD_PATH}\n"
        ));
    };
    let own = target.requests.as_ref();
    scrape(&state, &target.exporter, own, &query, &headers).await
}

/// `answer`, unless the process is told to stop first: then 503 at once, rather than keep the
/// shutdown waiting on a slow API.
async fn unless_stopping(
    stopping: &CancellationToken,
    answer: impl std::future::Future<Output = Response>,
) -> Response {
    tokio::select! {
        biased;
        () = stopping.cancelled() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the exporter is shutting down\n",
        )
            .into_response(),
        response = answer => response,
    }
}

/// The caps a scrape is under: its account's (`--web.max-requests`, `max` of them) and all
/// accounts' together (`--web.max-requests-total`).
struct Limits<'a> {
    own: Option<&'a Arc<Semaphore>>,
    max: u32,
    all: Option<&'a Arc<Semaphore>>,
}

impl Limits<'_> {
    /// A slot of each cap, held until the body is sent; or the flag of the first cap that is
    /// full, with its value where it has one: the scrapes beyond a limit are turned away, not
    /// queued.
    fn take(&self) -> Result<Vec<OwnedSemaphorePermit>, String> {
        let own = (self.own, format!("--web.max-requests={}", self.max));
        let all = (self.all, "--web.max-requests-total".to_string());
        let mut held = Vec::with_capacity(2);
        for (slots, flag) in [own, all] {
            let Some(slots) = slots else { continue };
            held.push(slots.clone().try_acquire_owned().map_err(|_| flag)?);
        }
        Ok(held)
    }
}

/// The format the scraper's `Accept` header asks for.
fn format(headers: &HeaderMap) -> Format {
    Format::negotiate(
        headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok()),
    )
}

/// One scrape of one account as the request asks (`collect[]`, the scrape timeout header,
/// `Accept`), holding a slot of its account's cap (`own`) and of all accounts' until its body is
/// sent, unless the process is told to stop first.
async fn scrape(
    state: &AppState,
    exporter: &Exporter,
    own: Option<&Arc<Semaphore>>,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Response {
    let families = match families(query) {
        Ok(families) => families,
        Err(response) => return response.into_response(),
    };
    let limits = Limits {
        own,
        max: state.max_requests,
        all: state.all_slots.as_ref(),
    };
    let timeout = scrape_timeout(headers, state.scrape_timeout);
    unless_stopping(
        &state.stopping,
        scrape_within(exporter, limits, families, timeout, format(headers)),
    )
    .await
}

/// One scrape of one account, holding a slot of each of `limits` until its body is sent.
async fn scrape_within(
    exporter: &Exporter,
    limits: Limits<'_>,
    families: Families,
    timeout: Duration,
    format: Format,
) -> Response {
    let slot = match limits.take() {
        Ok(slot) => slot,
        Err(flag) => {
            static THROTTLE: Throttle = Throttle::new(Duration::from_secs(60));
            if let Some(held_back) = THROTTLE.allow() {
                tracing::warn!(
                    limit = %flag,
                    held_back,
                    "too many concurrent scrapes; answering 503"
                );
            }
            let text = format!(
                "too many concurrent scrapes ({flag}); scrape less often or raise the limit\n"
            );
            return (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
        }
    };
    match exporter.scrape(timeout, families, format).await {
        Ok(exposition) => {
            // Streamed: a large fleet's body is written as it is sent, never held whole.
            let chunks = futures::stream::iter(exposition).map(move |chunk| {
                let _held = &slot;
                Ok::<_, std::convert::Infallible>(chunk)
            });
            let body = axum::body::Body::from_stream(chunks);
            ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            let text = format!("cannot encode metrics: {e}\n");
            (StatusCode::INTERNAL_SERVER_ERROR, text).into_response()
        }
    }
}

/// `/sd`: the accounts in Prometheus' HTTP service discovery format. Each is a target at the
/// exporter's address ([`sd::address`]: `--web.external-url`, or the address the request
/// arrived on), probed on `/probe` with `target` set to its name, and labelled `account`.
async fn service_discovery(
    State(state): State<AppState>,
    arrived: Option<axum::Extension<connection::Arrived>>,
    headers: HeaderMap,
) -> Response {
    let Some(probes) = &state.probes else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let hosts: Vec<&str> = headers
        .get_all(header::HOST)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let local = arrived.map(|a| a.0 .0);
    let external = state.external.as_deref();
    let Some(listed) = sd::address(&hosts, external, local, PROBE_PATH) else {
        let text = "cannot tell the exporter's address; set --web.external-url\n";
        return (StatusCode::INTERNAL_SERVER_ERROR, text).into_response();
    };
    let groups: Vec<serde_json::Value> = probes
        .targets()
        .keys()
        .map(|name| {
            serde_json::json!({
                "targets": [listed.address],
                "labels": {
                    "__metrics_path__": listed.probe_path,
                    "__param_target": name,
                    "account": name,
                },
            })
        })
        .collect();
    axum::Json(groups).into_response()
}

/// What the landing page says of one exporter's last collection.
fn last_collection(exporter: &Exporter) -> String {
    match exporter.last_collection() {
        None if exporter.scheduled() => {
            "No collection yet: the first scheduled collection is under way.".to_string()
        }
        None => "No collection yet: the first scrape starts one.".to_string(),
        Some(last) => {
            let when = OffsetDateTime::from(last.finished)
                .format(&Rfc3339)
                .unwrap_or_default();
            match last.outcome {
                Ok(n) => format!(
                    "Last collection at {when}: succeeded, {n} instances in {:.3} s.",
                    last.duration_seconds
                ),
                Err(e) => format!(
                    "Last collection at {when}: failed after {:.3} s: {e}",
                    last.duration_seconds
                ),
            }
        }
    }
}

/// What the landing page says of the configuration files: which, how many accounts, and how
/// the last reload went. Nothing when there is no file to reload.
fn configuration(reloader: &Reloader, probes: Option<&crate::probe::Probes>) -> String {
    let (web, accounts) = reloader.files();
    if web.is_none() && accounts.is_none() {
        return String::new();
    }
    let mut lines = Vec::new();
    if let Some(path) = accounts {
        let served = probes.map_or(0, |probes| probes.targets().len());
        let plural = if served == 1 { "" } else { "s" };
        lines.push(format!(
            "Accounts file: {} ({served} account{plural} served).",
            path.display()
        ));
    }
    if let Some(path) = web {
        lines.push(format!("Web configuration: {}.", path.display()));
    }
    lines.push(match reloader.last() {
        None => "Last reload: none since the exporter started; the files are as they were read then.".into(),
        Some(last) => {
            let when = OffsetDateTime::from(last.at)
                .format(&Rfc3339)
                .unwrap_or_default();
            match last.outcome {
                Ok(what) => format!("Last reload at {when}: succeeded: {what}."),
                Err(why) => format!(
                    "Last reload at {when}: failed, so the configuration read before is still in use: {why}"
                ),
            }
        }
    });
    let mut html = String::from("<h2>Configuration</h2>\n");
    for line in lines {
        html.push_str(&format!("<p>{}</p>\n", escape_html(&line)));
    }
    html
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let path = escape_html(&state.telemetry_path);
    let mut body = String::new();
    if let Telemetry::Account(exporter) = &*state.telemetry {
        body.push_str(&format!(
            "<p>{}</p>\n",
            escape_html(&last_collection(exporter))
        ));
    }
    let mut links = format!(
        "<a href=\"{path}\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a>"
    );
    body.push_str(&configuration(&state.reloader, state.probes.as_deref()));
    if let Some(probes) = &state.probes {
        links.push_str(&format!(" · <a href=\"{SD_PATH}\">Service discovery</a>"));
        body.push_str("<h2>Accounts</h2>\n<ul>\n");
        for (name, target) in probes.targets().iter() {
            let name = escape_html(name);
            body.push_str(&format!(
                "<li><a href=\"{PROBE_PATH}?target={name}\">{name}</a>: {}</li>\n",
                escape_html(&last_collection(&target.exporter))
            ));
        }
        body.push_str("</ul>\n");
    }
    Html(format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>CloudDevice Exporter</title></head>\n\
         <body>\n<h1>CloudDevice Exporter</h1>\n<p>Version {version}</p>\n\
         <p>{links}</p>\n{body}</body>\n</html>\n",
        version = env!("CARGO_PKG_VERSION"),
    ))
}

/// Whether a request comes from no web page or from one of the exporter's own: no `Origin`
/// header (curl, Prometheus, scripts), or one naming the host the request was sent to (or
/// `--web.external-url`'s). A page of another site that makes a browser POST a form here sends
/// its own origin, and is refused: a CSRF guard that costs `curl -X POST` nothing.
fn same_origin(headers: &HeaderMap, external: Option<&sd::External>) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(origin) = origin
        .to_str()
        .ok()
        .and_then(|o| reqwest::Url::parse(o).ok())
    else {
        // `null` (a sandboxed page, a file) or anything that is not a URL.
        return false;
    };
    let Some(host) = origin.host_str() else {
        return false;
    };
    let authority = match origin.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let default_port = |h: &str| match h.rsplit_once(':') {
        Some((_, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(']') => {
            h.to_string()
        }
        _ => format!("{h}:{}", origin.port_or_known_default().unwrap_or(80)),
    };
    let own = headers
        .get_all(header::HOST)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .map(default_port)
        .chain(external.map(|e| default_port(&e.address)));
    own.into_iter().any(|h| h.eq_ignore_ascii_case(&authority))
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `POST /-/reload`, as Prometheus has it: reloads the web configuration and the accounts file
/// (as SIGHUP does) and answers how it went, 200 or 500. Only with `--web.enable-lifecycle`, and
/// only POST: 405 otherwise, so that no link or crawler reloads the exporter.
async fn reload(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Response {
    let not_allowed = |text: &'static str| {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST")],
            text,
        )
            .into_response()
    };
    if !state.lifecycle {
        return not_allowed("the lifecycle API is off: start the exporter with --web.enable-lifecycle to reload it over HTTP, or send it SIGHUP\n");
    }
    if method != axum::http::Method::POST {
        return not_allowed("reload with POST /-/reload\n");
    }
    if !same_origin(&headers, state.external.as_deref()) {
        return (
            StatusCode::FORBIDDEN,
            "a reload from a page of another site is refused (its Origin header is not this exporter's); reload with curl -X POST, or send SIGHUP\n",
        )
            .into_response();
    }
    match state.reloader.reload().await {
        Ok(summary) => (StatusCode::OK, format!("reloaded {summary}\n")).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot reload the configuration; keeping the one in use: {error}\n"),
        )
            .into_response(),
    }
}
