//! The metrics listener: a minimal, bounded HTTP/1.1 responder on tokio for
//! exactly two requests, `GET /metrics` (Prometheus text) and `GET /health`
//! (for a load balancer: 200 while the node serves and its store answers,
//! 503 while it drains or the store fails).
//!
//! Why not hyper: two fixed GET paths need no router, no keep-alive and no
//! body, and hyper plus hyper-util would be the largest dependency of the
//! server for it. The bounds: a request head of at most
//! [`MAX_HEAD_BYTES`], read within [`READ_TIMEOUT`]; at most
//! [`MAX_CONNECTIONS`] at once (more are closed unanswered); one request per
//! connection (`Connection: close`). The listener should stay on loopback or
//! a monitoring network: the metrics are not secret, but they are not for
//! everyone (request rates tell when people talk).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quicproquo_protocol::types::IdentityKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::service::Service;
use crate::store::Store;

/// Largest request head read (request line and headers).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Time allowed to send the request head, and to take the answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes and probes served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// A store that does not answer a probe read within this is failing.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds the metrics listener (at start-up, so a taken port fails the start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `listener` until `server` (the QUIC accept loop) has finished,
/// answering `/health` with 503 from the moment `shutdown` is set; returns
/// the task to await instead of `server`.
pub fn serve_beside<S: Store>(
    listener: TcpListener,
    service: Arc<Service<S>>,
    shutdown: watch::Receiver<bool>,
    mut server: JoinHandle<()>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            tokio::select! {
                _ = &mut server => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    // Past the cap the connection is dropped: a scraper
                    // retries, and nothing here queues without bound.
                    let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
                    let (service, shutdown) = (service.clone(), shutdown.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        let _ = tokio::time::timeout(
                            READ_TIMEOUT * 2,
                            serve_one(stream, &service, &shutdown),
                        )
                        .await;
                    });
                }
            }
        }
    })
}

/// A parsed request head: what to answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Metrics,
    Health,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Reads one request head from `head` (complete, ending in CRLF CRLF).
pub(crate) fn route(head: &[u8]) -> Route {
    let Some(line) = head.split(|b| *b == b'\n').next() else {
        return Route::BadRequest;
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with(b"HTTP/1.") {
        return Route::BadRequest;
    }
    if method != b"GET" {
        return Route::MethodNotAllowed;
    }
    let path = target.split(|b| *b == b'?').next().unwrap_or(target);
    match path {
        b"/metrics" => Route::Metrics,
        b"/health" => Route::Health,
        _ => Route::NotFound,
    }
}

/// Reads until the end of the head; `None` when it is too long, cut off or
/// too slow.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; MAX_HEAD_BYTES];
    let mut len = 0;
    let read = async {
        while len < buf.len() {
            let n = stream.read(&mut buf[len..]).await.ok()?;
            if n == 0 {
                return None;
            }
            len += n;
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                buf.truncate(len);
                return Some(buf);
            }
        }
        None
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .ok()
        .flatten()
}

async fn serve_one<S: Store>(
    mut stream: TcpStream,
    service: &Service<S>,
    shutdown: &watch::Receiver<bool>,
) {
    let (status, content_type, body) = match read_head(&mut stream).await {
        None => (
            400,
            TEXT,
            "bad request: head too long, cut off or too slow\n".into(),
        ),
        Some(head) => match route(&head) {
            Route::Metrics => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                super::encode(service.delivery().mailboxes().waiting()),
            ),
            Route::Health => health(service, shutdown).await,
            Route::NotFound => (404, TEXT, "only /metrics and /health are here\n".into()),
            Route::MethodNotAllowed => (405, TEXT, "only GET\n".into()),
            Route::BadRequest => (400, TEXT, "bad request\n".into()),
        },
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if status == 405 { "Allow: GET\r\n" } else { "" },
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(READ_TIMEOUT, write).await;
}

const TEXT: &str = "text/plain; charset=utf-8";

/// 200 while serving with a store that answers a read; 503 otherwise, with
/// the reason (never a detail of the error: those go to the log).
async fn health<S: Store>(
    service: &Service<S>,
    shutdown: &watch::Receiver<bool>,
) -> (u16, &'static str, String) {
    if *shutdown.borrow() {
        return (503, TEXT, "draining: the server is shutting down\n".into());
    }
    // A real read through the store's own path (the writer thread for
    // SQLite, the pool for PostgreSQL); the key belongs to nobody.
    let probe = service.store.account_by_identity(&IdentityKey([0; 32]));
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, probe).await {
        Ok(Ok(_)) => (200, TEXT, "ok\n".into()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health probe: the store failed");
            (503, TEXT, "store failing\n".into())
        }
        Err(_) => {
            tracing::warn!("health probe: the store did not answer in time");
            (503, TEXT, "store not answering\n".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_two_gets() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert_eq!(
            route(b"GET /health?probe=1 HTTP/1.0\r\nHost: x\r\n\r\n"),
            Route::Health
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SPDY/3\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Route::BadRequest);
    }
}
