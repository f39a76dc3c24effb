//! The local socket: one task per front-end connection reads JSON-RPC lines
//! (the codec and types live in `protocol::ipc`), answers each request in
//! order through the agent, and — after `subscribe` — streams notifications.
//! A malformed line, unknown method or bad params gets its JSON-RPC error and
//! the connection stays usable. One writer task owns each connection's write
//! half; requests and the notification forwarder send it lines through a
//! queue bounded in bytes (`queue`): while a connection has 4 MiB of answers
//! unread the daemon reads no more of its requests, so no client can make
//! the daemon hold more than that for it.
//!
//! Submodules: `handler` (each method's agent call, behind the method table's
//! `Handler` trait), `error` (the one mapping of agent failures to IPC error
//! objects), `queue` (the bounded write queue) and `subscription` (the
//! notification stream).

mod error;
mod handler;
mod queue;
mod subscription;

use std::sync::Arc;

use interprocess::local_socket::tokio::{Listener, Stream};
use quicproquo_protocol::ipc::codec::{LineBuffer, LineError};
use quicproquo_protocol::ipc::error::{ErrorObject, IpcError, IpcErrorCode};
use quicproquo_protocol::ipc::jsonrpc::{IncomingRequest, Response};
use quicproquo_protocol::ipc::methods::Call;
use quicproquo_protocol::ipc::MAX_LINE;
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;

use crate::agent::Agent;
use crate::lifecycle;
use handler::AgentHandler;
use queue::WriteQueue;

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
    let (mut read, write) = tokio::io::split(stream);
    let (tx, writer) = WriteQueue::start(write);
    // The writer and the notification stream end with this task, also when
    // it is aborted at shutdown: each holds the connection (and the stream
    // the agent), so a front-end would never see the daemon go.
    let writer = AbortOnDropHandle::new(writer);
    let mut buf = LineBuffer::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let handler = AgentHandler::new(agent.clone());
    let mut greeted = false;
    let mut deleted = false;
    let mut forwarder: Option<AbortOnDropHandle<()>> = None;
    'conn: loop {
        let n = tokio::select! {
            r = read.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            // Closed for falling behind: its last line is queued.
            _ = tx.closed() => break,
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
            let delete = matches!(req.call, Call::AccountDelete(_));
            let id = req.id.clone();
            if matches!(req.call, Call::Subscribe(_)) {
                // A new subscription replaces the old one; stopping the old
                // first means no notification is written twice.
                drop(forwarder.take());
            }
            let response = if !greeted && !hello {
                Response::error(
                    Some(id.clone()),
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
                        Response::result(id.clone(), value)
                    }
                    Err(e) => Response::error(Some(id.clone()), e),
                }
            };
            // Sending waits while the connection's queue is full: this loop
            // reads nothing more from a client that does not read.
            deleted |= delete && agent.profile_deleted();
            if tx.send(fitted(response, &id)).await.is_err() || deleted {
                break 'conn;
            }
            if let Some(opened) = handler.take_subscription() {
                forwarder = Some(AbortOnDropHandle::new(opened.start(tx.clone())));
            }
        }
    }
    drop(forwarder);
    drop(tx);
    let _ = writer.await;
    // Only once the answer is written: stopping aborts every connection.
    if deleted {
        agent.request_shutdown();
    }
}

/// The response as a line, or — if it would still be longer than a line may
/// be (answers are capped below it; a request id of nearly 1 MiB is not) —
/// an error the client can read instead of a line it would drop.
fn fitted(response: Response, id: &quicproquo_protocol::ipc::jsonrpc::Id) -> Vec<u8> {
    let line = response.to_line();
    if line.len() <= MAX_LINE + 1 {
        return line;
    }
    Response::error(
        Some(id.clone()),
        ErrorObject::new(
            IpcErrorCode::Internal,
            format!(
                "the answer is {} bytes, longer than a line may be ({MAX_LINE}); \
                 ask for fewer (a smaller `limit`)",
                line.len() - 1
            ),
        ),
    )
    .to_line()
}
