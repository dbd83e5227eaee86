//! Per-connection time limits of the exporter's server: how long a client may take to send a
//! request head, stay idle between requests, and read a response. Enforced on the socket itself,
//! beneath TLS and HTTP, so a handshake, a half-sent head or a client that never reads all run
//! into the same clock (for HTTP/2, each response also says when it waits on its client, which
//! the socket cannot see); nothing here knows what the requests ask for. Each request is also
//! told the address it arrived on ([`Arrived`]).

use std::future::{ready, Future, Ready};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::http::{Request, Response};
use axum_server::accept::Accept;
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// The limits, each measured from the moment it starts to matter.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// From the first byte of a request (or of the TLS handshake) to its whole head.
    pub read_header: Duration,
    /// From the end of one response to the first byte of the next request.
    pub idle: Duration,
    /// From a response's head to its last byte handed to the socket, and the longest a response
    /// may wait to be asked for its next piece (an HTTP/2 stream its client never opens).
    pub write: Duration,
}

/// The acceptor that puts every accepted connection under [`ConnLimits`]. Used on the raw TCP
/// stream, beneath TLS when TLS is on.
#[derive(Debug, Clone, Copy)]
pub struct LimitedAcceptor {
    limits: ConnLimits,
}

impl LimitedAcceptor {
    pub fn new(limits: ConnLimits) -> Self {
        LimitedAcceptor { limits }
    }
}

/// The address a request arrived on (the listening socket's, as the client reached it), in the
/// request's extensions: `/sd` may list it.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub SocketAddr);

impl<S> Accept<TcpStream, S> for LimitedAcceptor {
    type Stream = Timed<TcpStream>;
    type Service = Tracked<S>;
    type Future = Ready<io::Result<(Timed<TcpStream>, Tracked<S>)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let local = stream.local_addr().ok();
        let (timed, conn) = limited(stream, local, self.limits);
        ready(Ok((
            timed,
            Tracked {
                inner: service,
                conn,
            },
        )))
    }
}

/// `io` under `limits`, with the state its requests report to.
fn limited<S>(io: S, local: Option<SocketAddr>, limits: ConnLimits) -> (Timed<S>, Arc<Conn>) {
    let now = Instant::now();
    let conn = Arc::new(Conn {
        local,
        limits,
        state: Mutex::new(State {
            open: 0,
            sending: 0,
            sending_since: None,
            // A fresh connection owes its first request head from the moment it is taken,
            // as Go's http.Server times it: sending nothing is no cheaper than sending slowly.
            head_since: Some(now),
            last_activity: now,
            read_waiting: None,
            stalled: Vec::new(),
            next_lease: 0,
        }),
    });
    let timed = Timed {
        io,
        conn: conn.clone(),
        sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
    };
    (timed, conn)
}

/// What one connection is doing, as seen from its socket and its requests.
struct Conn {
    /// Where the client reached the exporter.
    local: Option<SocketAddr>,
    limits: ConnLimits,
    state: Mutex<State>,
}

struct State {
    /// Requests handed to the router whose response is not wholly sent.
    open: usize,
    /// Of those, the ones whose response has started.
    sending: usize,
    /// When the response being sent started (with HTTP/2, the latest to start).
    sending_since: Option<Instant>,
    /// When the first byte arrived while no request was open: a head (or handshake) has begun.
    head_since: Option<Instant>,
    /// When a byte last went either way.
    last_activity: Instant,
    /// The task waiting on a read: woken when the last response is gone, so that its wait
    /// starts again under the idle deadline instead of the one it had (none, or a later one).
    read_waiting: Option<Waker>,
    /// Responses that handed out their head or a piece of their body and have not been asked for
    /// the next: their lease and since when. With HTTP/2 a stream that flow control holds is
    /// never asked again, while the socket itself stays free, so only this clock sees a client
    /// that never reads.
    stalled: Vec<(u64, Instant)>,
    /// The number the next lease takes.
    next_lease: u64,
}

impl Conn {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; if something did, the counts are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When a read (or, with `writing`, a write) that must wait fails instead, and why. While a
    /// request is open only a blocked write has one: the scrape's own deadline bounds the
    /// answer, and a large body is written as it is rendered, which is not the client's time.
    fn deadline(&self, writing: bool) -> Option<(Instant, &'static str)> {
        let s = self.state();
        let l = &self.limits;
        if s.open > 0 {
            let blocked = s.sending_since.filter(|_| writing);
            let stalled = s.stalled.iter().map(|(_, since)| *since).min();
            return blocked
                .into_iter()
                .chain(stalled)
                .min()
                .map(|t| (t + l.write, "the client did not read the response in time"));
        }
        Some(match s.head_since {
            Some(t) => (
                t + l.read_header,
                "the client did not send a request in time",
            ),
            None => (s.last_activity + l.idle, "the connection was idle too long"),
        })
    }

    fn read(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let now = Instant::now();
        let mut s = self.state();
        s.last_activity = now;
        if s.open == 0 && s.head_since.is_none() {
            s.head_since = Some(now);
        }
    }

    fn wrote(&self, bytes: usize) {
        if bytes > 0 {
            self.state().last_activity = Instant::now();
        }
    }
}

/// A stream whose reads and writes fail with `TimedOut` once the connection's deadline passes
/// while they wait.
pub struct Timed<S> {
    io: S,
    conn: Arc<Conn>,
    sleep: Pin<Box<Sleep>>,
}

impl<S> Timed<S> {
    /// Counts what a write wrote, or waits on the write deadline.
    fn written(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match poll {
            Poll::Ready(Ok(n)) => {
                self.conn.wrote(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.wait(cx, true),
        }
    }

    /// Called when the stream would wait: waits no later than the deadline.
    fn wait<T>(&mut self, cx: &mut Context<'_>, writing: bool) -> Poll<io::Result<T>> {
        if !writing {
            self.conn.state().read_waiting = Some(cx.waker().clone());
        }
        let Some((deadline, why)) = self.conn.deadline(writing) else {
            return Poll::Pending;
        };
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::debug!(reason = why, "closing a connection");
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.conn.read(buf.filled().len() - before);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.wait(cx, false),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.written(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.written(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.wait(cx, true),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_shutdown(cx) {
            Poll::Pending => this.wait(cx, true),
            ready => ready,
        }
    }
}

/// The connection's service, telling [`Conn`] when a request arrives, when its response starts
/// and when the response is gone (sent, or dropped with the connection).
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S, B, R> Service<Request<R>> for Tracked<S>
where
    S: Service<Request<R>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<HeldBody<B>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<R>) -> Self::Future {
        if let Some(local) = self.conn.local {
            request.extensions_mut().insert(Arrived(local));
        }
        let mut lease = StreamHold::open(self.conn.clone());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            lease.start_sending();
            // Until the body is first asked for, it waits on the client too.
            lease.stall();
            Ok(response.map(|body| HeldBody { body, lease }))
        })
    }
}

/// One request's hold on its connection's state, released when dropped.
struct StreamHold {
    conn: Arc<Conn>,
    id: u64,
    sending: bool,
    stalled: bool,
}

impl StreamHold {
    fn open(conn: Arc<Conn>) -> Self {
        let id = {
            let mut s = conn.state();
            s.open += 1;
            s.head_since = None;
            s.next_lease += 1;
            s.next_lease
        };
        StreamHold {
            conn,
            id,
            sending: false,
            stalled: false,
        }
    }

    /// The body handed out a piece and waits to be asked for the next. The task waiting on the
    /// socket is woken to wait no later than this stall's deadline.
    fn stall(&mut self) {
        if self.stalled {
            return;
        }
        self.stalled = true;
        let waiting = {
            let mut s = self.conn.state();
            let first = s.stalled.is_empty();
            s.stalled.push((self.id, Instant::now()));
            if first {
                s.read_waiting.take()
            } else {
                None
            }
        };
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    /// The body was asked for its next piece.
    fn unstall(&mut self) {
        if self.stalled {
            self.stalled = false;
            let id = self.id;
            self.conn.state().stalled.retain(|(lease, _)| *lease != id);
        }
    }

    fn start_sending(&mut self) {
        let mut s = self.conn.state();
        s.sending += 1;
        s.sending_since = Some(Instant::now());
        self.sending = true;
    }
}

impl Drop for StreamHold {
    fn drop(&mut self) {
        let waiting = {
            let mut s = self.conn.state();
            s.open = s.open.saturating_sub(1);
            if self.stalled {
                let id = self.id;
                s.stalled.retain(|(lease, _)| *lease != id);
            }
            if self.sending {
                s.sending = s.sending.saturating_sub(1);
                if s.sending == 0 {
                    s.sending_since = None;
                }
            }
            s.last_activity = Instant::now();
            if s.open == 0 {
                s.read_waiting.take()
            } else {
                None
            }
        };
        if let Some(waker) = waiting {
            waker.wake();
        }
    }
}

/// A response body that holds its request's [`StreamHold`] until it is dropped, and tells it when
/// the body waits on the client rather than on its own making.
pub struct HeldBody<B> {
    body: B,
    lease: StreamHold,
}

impl<B: Body + Unpin> Body for HeldBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        this.lease.unstall();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            this.lease.stall();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const LIMITS: ConnLimits = ConnLimits {
        read_header: Duration::from_secs(10),
        idle: Duration::from_secs(120),
        write: Duration::from_secs(60),
    };

    /// The server's end of a connection under [`LIMITS`], and the client's end.
    fn connection(buffer: usize) -> (Timed<DuplexStream>, Arc<Conn>, DuplexStream) {
        let (client, server) = tokio::io::duplex(buffer);
        let (timed, conn) = limited(server, None, LIMITS);
        (timed, conn, client)
    }

    /// Reads until the connection's deadline fails the read: how long that took, and why.
    async fn read_until_cut(timed: &mut Timed<DuplexStream>) -> (Duration, String) {
        let started = Instant::now();
        let mut buf = [0u8; 64];
        loop {
            match timed.read(&mut buf).await {
                Ok(0) => panic!("the client closed the connection"),
                Ok(_) => continue,
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                    return (started.elapsed(), e.to_string());
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_connection_owes_its_first_head_within_the_read_header_limit() {
        let (mut timed, _conn, _client) = connection(1024);
        let (took, why) = read_until_cut(&mut timed).await;
        assert_eq!(took, LIMITS.read_header);
        assert_eq!(why, "the client did not send a request in time");
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_response_the_connection_may_idle_for_the_idle_limit() {
        let (mut timed, conn, mut client) = connection(1024);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(timed.read(&mut buf).await.unwrap() > 0);
        // The request is answered and its response gone.
        drop(StreamHold::open(conn.clone()));
        let (took, why) = read_until_cut(&mut timed).await;
        assert_eq!(took, LIMITS.idle);
        assert_eq!(why, "the connection was idle too long");
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_its_client_does_not_read_is_cut_after_the_write_limit() {
        // A socket that takes 16 bytes and no more until the client reads.
        let (mut timed, conn, _client) = connection(16);
        let mut hold = StreamHold::open(conn.clone());
        hold.start_sending();
        let started = Instant::now();
        let error = timed.write_all(&[b'x'; 1024]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), LIMITS.write);
        assert_eq!(
            error.to_string(),
            "the client did not read the response in time"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_its_client_never_asks_for_frees_the_connection_after_the_write_limit() {
        // HTTP/2: the socket is free, but one response has waited for its client to ask for
        // the next piece (flow control) since it was handed out.
        let (mut timed, conn, _client) = connection(1024);
        let mut hold = StreamHold::open(conn.clone());
        hold.stall();
        let (took, why) = read_until_cut(&mut timed).await;
        assert_eq!(took, LIMITS.write);
        assert_eq!(why, "the client did not read the response in time");
        // Asked for its next piece, it no longer bounds the connection: an open request
        // without a waiting response has no deadline of its own.
        hold.unstall();
        assert!(conn.deadline(false).is_none());
    }
}
