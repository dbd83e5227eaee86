//! The exporter's HTTP face (axum): the telemetry path, the landing page and the health probes,
//! gzip when asked for. Handlers stay thin; a scrape is `scrape::Exporter`. Serving it on a
//! socket (TLS, basic auth, limits, reloads) is [`serve`].

pub mod config;
pub mod connection;
pub mod serve;
pub mod signals;
pub mod tls;

pub use serve::{serve, Serving};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::exposition::Families;
use crate::logging::Throttle;
use crate::scrape::Exporter;

/// What the HTTP side needs to know of the configuration.
pub struct WebOptions {
    pub telemetry_path: String,
    /// Used when the scraper does not send `X-Prometheus-Scrape-Timeout-Seconds`.
    pub scrape_timeout: Duration,
    /// Most /metrics requests served at once; zero for no limit.
    pub max_requests: u32,
}

#[derive(Clone)]
struct AppState {
    exporter: Arc<Exporter>,
    telemetry_path: Arc<str>,
    scrape_timeout: Duration,
    /// `None` when unlimited.
    slots: Option<Arc<Semaphore>>,
    max_requests: u32,
}

/// The router, without a socket, so tests can drive it directly.
pub fn app(exporter: Arc<Exporter>, options: &WebOptions) -> Router {
    let state = AppState {
        exporter,
        telemetry_path: options.telemetry_path.as_str().into(),
        scrape_timeout: options.scrape_timeout,
        slots: (options.max_requests > 0)
            .then(|| Arc::new(Semaphore::new(options.max_requests as usize))),
        max_requests: options.max_requests,
    };
    Router::new()
        .route("/", get(landing))
        .route(&options.telemetry_path, get(metrics))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
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

async fn metrics(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let names = query
        .iter()
        .filter(|(name, _)| name == "collect[]")
        .map(|(_, value)| value.as_str());
    let families = match Families::from_names(names) {
        Ok(families) => families,
        Err(error) => return (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    };
    // Held until the body is sent: the scrapes beyond the limit are turned away, not queued.
    let slot = match &state.slots {
        Some(slots) => match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                static THROTTLE: Throttle = Throttle::new(Duration::from_secs(60));
                if let Some(held_back) = THROTTLE.allow() {
                    tracing::warn!(
                        max_requests = state.max_requests,
                        held_back,
                        "too many concurrent scrapes; answering 503"
                    );
                }
                let text = format!(
                    "too many concurrent scrapes (--web.max-requests={}); scrape less often or raise the limit\n",
                    state.max_requests
                );
                return (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
            }
        },
        None => None,
    };
    let timeout = scrape_timeout(&headers, state.scrape_timeout);
    match state.exporter.scrape(timeout, families).await {
        Ok(exposition) => {
            // Streamed: a large fleet's body is written as it is sent, never held whole.
            let chunks = futures::stream::iter(exposition).map(move |chunk| {
                let _held = &slot;
                Ok::<_, std::convert::Infallible>(chunk)
            });
            let body = axum::body::Body::from_stream(chunks);
            ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            let text = format!("cannot encode metrics: {e}\n");
            (StatusCode::INTERNAL_SERVER_ERROR, text).into_response()
        }
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let last = match state.exporter.last_collection() {
        None => "No collection yet: the first scrape of the telemetry path starts one.".to_string(),
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
    };
    let path = escape_html(&state.telemetry_path);
    Html(format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>CloudDevice Exporter</title></head>\n\
         <body>\n<h1>CloudDevice Exporter</h1>\n<p>Version {version}</p>\n\
         <p><a href=\"{path}\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a></p>\n\
         <p>{last}</p>\n</body>\n</html>\n",
        version = env!("CARGO_PKG_VERSION"),
        last = escape_html(&last),
    ))
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
