//! Serve's connections: the accept loop, the header read timeout, and the
//! bounded drain after a shutdown signal. (`axum::serve` has neither bound:
//! one client trickling its headers or body kept serve alive after SIGTERM
//! for as long as the client liked.) The body read timeout is the handlers'
//! (`handlers::json_body`).

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long accepting pauses after a failed accept (out of file descriptors):
/// retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The time limits of serve's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request's header lines must arrive within this (it also closes a
    /// keep-alive connection idle this long).
    pub header_read: Duration,
    /// After the shutdown signal, open connections get this long to finish.
    pub drain: Duration,
}

/// Serve `app` on `listener` until `shutdown` resolves. Then: no new
/// connections, idle ones closed, requests in progress get `limits.drain`
/// to finish, and the connections still open after that are closed (their
/// handlers dropped: rows they had queued are still committed by the writer,
/// but they are not answered).
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = JoinSet::new();
    let (closing, closing_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_one(stream, app.clone(), limits, closing_rx.clone()));
                }
                Err(err) => {
                    tracing::warn!("accepting a connection failed: {err}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = tokio::time::timeout(limits.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "requests still in progress after the drain timeout of {} s \
             (serve.drain_timeout_secs); closing their connections",
            limits.drain.as_secs_f64()
        );
        connections.shutdown().await;
    }
}

/// One HTTP/1 connection until it ends, or until shutdown asks it to finish
/// its request in progress and close.
async fn serve_one(
    stream: TcpStream,
    app: Router,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<bool>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut connection = pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => Some(ended),
        _ = closing.wait_for(|closing| *closing) => None,
    };
    let ended = match ended {
        Some(ended) => ended,
        None => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = ended {
        // Clients going away and slow headers are routine.
        tracing::debug!("connection ended: {err}");
    }
}
