//! The exporter's HTTP face (axum): the telemetry path, the landing page and the health probes,
//! gzip when asked for, and graceful shutdown. Handlers stay thin; a scrape is `scrape::Exporter`.

use std::future::Future;
use std::path::PathBuf;

use futures::StreamExt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::sync::mpsc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::connection::{ConnLimits, Guard};
use crate::logging::Throttle;
use crate::scrape::Exporter;
use crate::web_config::{self, Access, WebConfig};

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
                // A 100,000-instance body is 124 MB: the fastest level costs a fraction of the
                // CPU of the default for a body a sixth larger (BENCHMARKS.md).
                .quality(CompressionLevel::Fastest),
        )
        .with_state(state)
}

/// How the server runs: its connection limits, and the web configuration (TLS, basic auth,
/// headers) with the file it came from, if there is one.
pub struct Serving {
    pub limits: ConnLimits,
    pub web: Option<(PathBuf, WebConfig)>,
}

/// Serves until `shutdown` completes, then lets the scrapes in progress finish (for at most
/// 30 s). Every connection is under [`ConnLimits`]. With a web configuration: basic auth on every
/// path but `/-/healthy`, the configured headers on every answer, and TLS when the file asks for
/// it; each message on `reloads` (SIGHUP) re-reads the file, and a file that does not load is
/// logged and the working configuration kept.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    serving: Serving,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reloads: mpsc::Receiver<()>,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(30)));
    });
    let guard = Guard::new(serving.limits);
    let listener = listener.into_std()?;
    let Some((path, web)) = serving.web else {
        let server = axum_server::from_tcp(listener)?.acceptor(guard);
        return run(server, handle, app).await;
    };
    let access = Arc::new(RwLock::new(web.access.clone()));
    let app = app.layer(middleware::from_fn_with_state(access.clone(), guard_access));
    let tls = web.tls.map(RustlsConfig::from_config);
    tokio::spawn(reload_on_signal(path, access, tls.clone(), reloads));
    match tls {
        None => {
            run(
                axum_server::from_tcp(listener)?.acceptor(guard),
                handle,
                app,
            )
            .await
        }
        Some(tls) => {
            // The limits apply beneath TLS, so a handshake counts as the start of a request.
            let acceptor = RustlsAcceptor::new(tls)
                .handshake_timeout(serving.limits.read_header)
                .acceptor(guard);
            run(
                axum_server::from_tcp(listener)?.acceptor(acceptor),
                handle,
                app,
            )
            .await
        }
    }
}

/// Runs one server until its handle shuts it down.
async fn run<A>(
    server: axum_server::Server<std::net::SocketAddr, A>,
    handle: axum_server::Handle<std::net::SocketAddr>,
    app: Router,
) -> std::io::Result<()>
where
    A: axum_server::accept::Accept<tokio::net::TcpStream, Router> + Clone + Send + Sync + 'static,
    A::Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    A::Service: axum_server::service::SendService<Request<hyper::body::Incoming>> + Send,
    A::Future: Send,
{
    server
        .handle(handle)
        .accept_error_handler(log_accept_error)
        .serve(app.into_make_service())
        .await
}

/// Logs why a connection could not be taken. The listener's own errors (out of file
/// descriptors) say what to do, at most once a minute; a failed TLS handshake is the client's
/// problem, logged at debug.
fn log_accept_error(peer: Option<&std::net::SocketAddr>, error: &std::io::Error) {
    static THROTTLE: Throttle = Throttle::new(Duration::from_secs(60));
    match peer {
        Some(peer) => {
            tracing::debug!(%peer, %error, "a connection failed before its first request")
        }
        None => {
            if let Some(held_back) = THROTTLE.allow() {
                tracing::warn!(%error, held_back, "cannot accept connections; if it says too many open files, raise the file limit (LimitNOFILE= in systemd) or find what holds connections open");
            }
        }
    }
}

/// Re-reads the web configuration on every message of `reloads`, off the async threads (bcrypt
/// and file reads block), and swaps in what loads.
async fn reload_on_signal(
    path: PathBuf,
    access: Arc<RwLock<Arc<Access>>>,
    tls: Option<RustlsConfig>,
    mut reloads: mpsc::Receiver<()>,
) {
    while reloads.recv().await.is_some() {
        let file = path.clone();
        let loaded = tokio::task::spawn_blocking(move || web_config::load(&file)).await;
        let new = match loaded {
            Ok(Ok(new)) => new,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot reload the web configuration; keeping the one in use");
                continue;
            }
            Err(error) => {
                tracing::error!(%error, "the web configuration reload failed; keeping the one in use");
                continue;
            }
        };
        match (&tls, new.tls) {
            (Some(current), Some(next)) => current.reload_from_config(next),
            (None, None) => {}
            _ => {
                tracing::error!(path = %path.display(), "turning TLS on or off needs a restart; keeping the web configuration in use");
                continue;
            }
        }
        *access.write().unwrap_or_else(|e| e.into_inner()) = new.access;
        for warning in &new.warnings {
            tracing::warn!("{warning}");
        }
        tracing::info!(path = %path.display(), "reloaded the web configuration");
    }
}

/// Basic auth and the configured headers, in front of every route.
async fn guard_access(
    State(access): State<Arc<RwLock<Arc<Access>>>>,
    request: Request,
    next: Next,
) -> Response {
    let access = access.read().unwrap_or_else(|e| e.into_inner()).clone();
    let open = request.uri().path() == "/-/healthy";
    let mut response = if open
        || !access.requires_login()
        || access
            .allows(request.headers().get(header::AUTHORIZATION))
            .await
    {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"clouddevice_exporter\", charset=\"UTF-8\"",
            )],
            "Unauthorized\n",
        )
            .into_response()
    };
    for (name, value) in &access.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// A channel that receives a message on every SIGHUP, the signal to re-read the web
/// configuration. Installed at once, like [`shutdown_signal`].
pub fn reload_signal() -> std::io::Result<mpsc::Receiver<()>> {
    let (tx, rx) = mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                // A reload already queued covers this one too.
                let _ = tx.try_send(());
            }
        });
    }
    #[cfg(not(unix))]
    drop(tx);
    Ok(rx)
}

/// A future that completes on SIGINT or SIGTERM (what `docker stop` and Kubernetes send).
/// The handlers are installed when this is called, not when the future is first polled, so a
/// signal that arrives while the server is still starting is not lost to the default action.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            tracing::info!("shutting down");
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
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

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
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
    match state.exporter.scrape(timeout).await {
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
