//! The signals the exporter and the simulator answer, and the listening socket they bind.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A listening socket that could not be opened, with the flag that named its address.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {flag} {address}: {source}; choose another address or stop what is using it"
)]
pub struct BindError {
    flag: &'static str,
    address: String,
    source: std::io::Error,
}

/// Binds the address `flag` gave: `:PORT` is every interface, IPv4 and IPv6, as Go's `:PORT`
/// is; anything else is the address it names.
pub async fn bind(address: &str, flag: &'static str) -> Result<TcpListener, BindError> {
    let bound = match address.strip_prefix(':').map(str::parse::<u16>) {
        Some(Ok(port)) => every_interface(port),
        _ => TcpListener::bind(address).await,
    };
    bound.map_err(|source| BindError {
        flag,
        address: address.to_string(),
        source,
    })
}

/// One IPv6 socket that takes IPv4 too (IPV6_V6ONLY off, whatever the system's default), or
/// IPv4 alone on a machine without IPv6.
fn every_interface(port: u16) -> std::io::Result<TcpListener> {
    use std::io::ErrorKind::{AddrInUse, PermissionDenied};
    use std::net::{Ipv4Addr, Ipv6Addr};
    match listen(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)), true) {
        // In use or not allowed is so for IPv4 too; anything else is a machine without IPv6.
        Err(e) if ![AddrInUse, PermissionDenied].contains(&e.kind()) => {
            listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), false)
        }
        bound => bound,
    }
}

/// A listening socket on `address`; `dual_stack` takes IPv4 on an IPv6 socket too.
fn listen(address: SocketAddr, dual_stack: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    // As tokio's `TcpListener::bind` does: a restart may bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// A channel that receives a message on every SIGHUP, the signal to re-read the web
/// configuration and the accounts file ([`super::reload::Reloader`]). Installed at once, like [`shutdown_signal`].
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

/// A future that completes on SIGINT or SIGTERM (what `docker stop` and Kubernetes send); a
/// second one then ends the process at once, as an impatient operator expects.
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
            tracing::info!("shutting down; a second SIGINT or SIGTERM exits at once");
            tokio::spawn(async move {
                tokio::select! {
                    _ = interrupt.recv() => {},
                    _ = terminate.recv() => {},
                }
                tracing::warn!("a second signal: exiting now");
                std::process::exit(1);
            });
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    /// Whether this machine can use IPv6 loopback at all.
    fn has_ipv6() -> bool {
        std::net::TcpListener::bind("[::1]:0").is_ok()
    }

    /// A listener bound on `address`, and its port, once a connection to it from `from` went
    /// through.
    async fn bound(address: &str, from: &str) -> (TcpListener, u16) {
        let listener = bind(address, "--web.listen-address").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        TcpStream::connect((from, port)).await.unwrap();
        (listener, port)
    }

    #[tokio::test]
    async fn a_bare_port_takes_ipv4_and_ipv6() {
        let (_listener, port) = bound(":0", "127.0.0.1").await;
        if has_ipv6() {
            TcpStream::connect(("::1", port)).await.unwrap();
        } else {
            eprintln!("no IPv6 on this machine: only 127.0.0.1 was tried");
        }
    }

    #[tokio::test]
    async fn a_host_and_port_takes_that_address_alone() {
        let (_v4, port) = bound("127.0.0.1:0", "127.0.0.1").await;
        if has_ipv6() {
            assert!(TcpStream::connect(("::1", port)).await.is_err());
            let (_v6, port) = bound("[::1]:0", "::1").await;
            assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
        }
    }

    #[tokio::test]
    async fn an_address_in_use_names_the_flag() {
        let first = bind("127.0.0.1:0", "--web.listen-address").await.unwrap();
        let taken = first.local_addr().unwrap().to_string();
        let err = bind(&taken, "--web.listen-address").await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on --web.listen-address {taken}: ")),
            "{err}"
        );
    }
}
