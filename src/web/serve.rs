//! Serving the router on a socket: plain or TLS, every connection under the time limits of
//! [`connection`](super::connection), basic auth and headers from the web configuration (which
//! [`reload`](super::reload) re-reads), and a graceful shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio::net::TcpListener;

use crate::logging::Throttle;
use crate::web::config::{Access, Login, PasswordChecks, WebConfig};
use crate::web::connection::{ConnLimits, LimitedAcceptor};
use crate::web::reload::{Reloader, WebReload};

/// How the server runs: its connection limits, and the web configuration (TLS, basic auth,
/// headers) as served, shared with the reloader that swaps it, if there is one.
pub struct Serving {
    limits: ConnLimits,
    web: Option<WebReload>,
}

impl Serving {
    /// What [`serve`] serves with. The web configuration and its file are handed to `reloader`
    /// here, before anything is served: a reload asked for from now on (a SIGHUP sent as soon as
    /// the exporter says it listens) re-reads them too.
    pub fn new(limits: ConnLimits, web: Option<(PathBuf, WebConfig)>, reloader: &Reloader) -> Self {
        let web = web.map(|(path, web)| {
            let served = WebReload {
                path,
                access: Arc::new(RwLock::new(web.access.clone())),
                tls: web.tls.map(RustlsConfig::from_config),
            };
            reloader.serve_web(served.clone());
            served
        });
        Serving { limits, web }
    }
}

/// How long the answers under way have to finish once the server is told to stop: enough for
/// any client that reads, and well inside Kubernetes' default grace period of 30 s. Scrapes that
/// still wait on the API are answered at once (see `web::Stopping`); slower readers are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves until `shutdown` completes, then lets the answers under way finish (for at most
/// [`SHUTDOWN_GRACE`]). Every connection is under [`ConnLimits`]. With a web configuration: basic auth on every
/// path but `/-/healthy`, the configured headers on every answer, and TLS when the file asks for
/// it.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    serving: Serving,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    let guard = LimitedAcceptor::new(serving.limits);
    let listener = listener.into_std()?;
    let Some(WebReload { access, tls, .. }) = serving.web else {
        let server = axum_server::from_tcp(listener)?.acceptor(guard);
        return run(server, handle, app).await;
    };
    let guarded = Guarded {
        access,
        checks: PasswordChecks::default(),
    };
    let app = app.layer(middleware::from_fn_with_state(guarded, guard_access));
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

/// The most requests one HTTP/2 connection has open at once (hyper's default is 200); with
/// HTTP/1.1 a connection has one.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 4;

/// The router with each request's client address.
type WithPeer = axum::middleware::AddExtension<Router, ConnectInfo<SocketAddr>>;

/// Runs one server until its handle shuts it down.
async fn run<A>(
    server: axum_server::Server<std::net::SocketAddr, A>,
    handle: axum_server::Handle<std::net::SocketAddr>,
    app: Router,
) -> std::io::Result<()>
where
    A: axum_server::accept::Accept<tokio::net::TcpStream, WithPeer> + Clone + Send + Sync + 'static,
    A::Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    A::Service: axum_server::service::SendService<Request<hyper::body::Incoming>> + Send,
    A::Future: Send,
{
    let mut server = server;
    // HTTP/2 lets one connection carry many requests at once: each takes a --web.max-requests
    // slot, so one client must not hold more than a few of them.
    server
        .http_builder()
        .http2()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    server
        .handle(handle)
        .accept_error_handler(log_accept_error)
        // The client's address bounds its share of the password checks (see `Access::allows`).
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
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

/// What guards one server's routes: the users and headers in use (which reloads replace), and
/// the password checks, which outlive reloads so that unchanged users keep their logins.
#[derive(Clone)]
pub(super) struct Guarded {
    access: Arc<RwLock<Arc<Access>>>,
    checks: PasswordChecks,
}

/// Basic auth and the configured headers, in front of every route.
pub(super) async fn guard_access(
    State(guarded): State<Guarded>,
    request: Request,
    next: Next,
) -> Response {
    let access = guarded
        .access
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let open = request.uri().path() == "/-/healthy";
    let login = if open || !access.requires_login() {
        Login::Allowed
    } else {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let authorization = request.headers().get(header::AUTHORIZATION);
        access.allows(&guarded.checks, authorization, peer).await
    };
    let mut response = match login {
        Login::Allowed => next.run(request).await,
        Login::Refused => (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"clouddevice_exporter\", charset=\"UTF-8\"",
            )],
            "Unauthorized\n",
        )
            .into_response(),
        Login::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "too many password checks are waiting; try again in a second\n",
        )
            .into_response(),
    };
    for (name, value) in &access.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}
