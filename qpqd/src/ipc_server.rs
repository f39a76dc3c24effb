//! The local socket: one task per front-end connection reads JSON-RPC lines
//! (the codec and types live in `protocol::ipc`), answers each request in
//! order through the agent, and — after `subscribe` — streams notifications.
//! A malformed line, unknown method or bad params gets its JSON-RPC error and
//! the connection stays usable. One writer task owns each connection's write
//! half; requests and the notification forwarder send it lines.
//!
//! Submodules: `handler` (each method's agent call, behind the method table's
//! `Handler` trait), `error` (the one mapping of agent failures to IPC error
//! objects) and `subscription` (the notification stream).

mod error;
mod handler;
mod subscription;

use std::sync::Arc;

use interprocess::local_socket::tokio::{Listener, Stream};
use quicproquo_protocol::ipc::codec::{LineBuffer, LineError};
use quicproquo_protocol::ipc::error::{ErrorObject, IpcError, IpcErrorCode};
use quicproquo_protocol::ipc::jsonrpc::{IncomingRequest, Response};
use quicproquo_protocol::ipc::methods::Call;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::agent::Agent;
use crate::lifecycle;
use handler::AgentHandler;

/// Lines queued for one connection's writer.
const WRITE_QUEUE: usize = 1024;

/// Accepts front-ends until the agent shuts down.
pub async fn serve(listener: Listener, agent: Arc<Agent>) {
    let mut shutdown = agent.shutdown_signal();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = lifecycle::accept(&listener) => match accepted {
                Ok(stream) => {
                    if !lifecycle::peer_allowed(&stream) {
                        continue;
                    }
                    while conns.try_join_next().is_some() {}
                    conns.spawn(serve_connection(stream, agent.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    conns.abort_all();
}

async fn serve_connection(stream: Stream, agent: Arc<Agent>) {
    let (mut read, mut write) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if write.write_all(&line).await.is_err() {
                break;
            }
            let _ = write.flush().await;
        }
    });
    let mut buf = LineBuffer::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let handler = AgentHandler::new(agent);
    let mut greeted = false;
    let mut forwarder: Option<tokio::task::JoinHandle<()>> = None;
    'conn: loop {
        let n = match read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend(&chunk[..n]);
        loop {
            let line = match buf.next_line() {
                None => break,
                Some(Ok(line)) => line.to_vec(),
                Some(Err(LineError::TooLong)) => {
                    if tx
                        .send(IpcError::line_too_long().to_response().to_line())
                        .await
                        .is_err()
                    {
                        break 'conn;
                    }
                    continue;
                }
                Some(Err(LineError::Incomplete)) => break,
            };
            let req = match IncomingRequest::parse(&line) {
                Ok(req) => req,
                Err(e) => {
                    if tx.send(e.to_response().to_line()).await.is_err() {
                        break 'conn;
                    }
                    continue;
                }
            };
            let hello = matches!(req.call, Call::Hello(_));
            if matches!(req.call, Call::Subscribe(_)) {
                // A new subscription replaces the old one; stopping the old
                // first means no notification is written twice.
                if let Some(f) = forwarder.take() {
                    f.abort();
                }
            }
            let response = if !greeted && !hello {
                Response::error(
                    Some(req.id),
                    ErrorObject::new(
                        IpcErrorCode::InvalidRequest,
                        "the first call on a connection must be `hello`",
                    ),
                )
            } else {
                match req.call.dispatch(&handler).await {
                    Ok(value) => {
                        // Only a hello that succeeded opens the connection
                        // (a version mismatch does not).
                        greeted |= hello;
                        Response::result(req.id, value)
                    }
                    Err(e) => Response::error(Some(req.id), e),
                }
            };
            if tx.send(response.to_line()).await.is_err() {
                break 'conn;
            }
            if let Some(opened) = handler.take_subscription() {
                forwarder = Some(opened.start(tx.clone()));
            }
        }
    }
    if let Some(f) = forwarder {
        f.abort();
    }
    drop(tx);
    let _ = writer.await;
}
