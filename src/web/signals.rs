//! The signals the exporter and the simulator answer, and the listening socket they bind.

use std::future::Future;

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

/// Binds the address `flag` gave.
pub async fn bind(address: &str, flag: &'static str) -> Result<TcpListener, BindError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| BindError {
            flag,
            address: address.to_string(),
            source,
        })
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
