//! The local socket: one task per front-end connection reads JSON-RPC lines
//! (the codec and types live in `protocol::ipc`), answers each request in
//! order through the agent, and — after `subscribe` — streams notifications.
//! A malformed line, unknown method or bad params gets its JSON-RPC error and
//! the connection stays usable. One writer task owns each connection's write
//! half; requests and the notification forwarder send it lines.

use std::sync::Arc;

use interprocess::local_socket::tokio::{Listener, Stream};
use quicproquo_protocol::ipc::codec::{LineBuffer, LineError};
use quicproquo_protocol::ipc::error::{ErrorObject, IpcError, IpcErrorCode};
use quicproquo_protocol::ipc::jsonrpc::{Id, IncomingRequest, Response};
use quicproquo_protocol::ipc::methods::{
    Call, Empty, HelloResult, ReadResult, RekeyResult, SubscribeResult,
};
use quicproquo_protocol::ipc::values::Seq;
use quicproquo_protocol::ipc::IPC_PROTOCOL_VERSION;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use crate::agent::{Agent, AgentResult};

mod error;
use crate::lifecycle;

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
            let response = match IncomingRequest::parse(&line) {
                Err(e) => e.to_response(),
                Ok(req) => {
                    if !greeted && !matches!(req.call, Call::Hello(_)) {
                        Response::error(
                            Some(req.id),
                            ErrorObject::new(
                                IpcErrorCode::InvalidRequest,
                                "the first call on a connection must be `hello`",
                            ),
                        )
                    } else {
                        let hello = matches!(req.call, Call::Hello(_));
                        let id = req.id.clone();
                        if let Call::Subscribe(p) = req.call {
                            if let Some(f) = forwarder.take() {
                                f.abort();
                            }
                            match subscribe(&agent, p.since, id, &tx).await {
                                Ok(f) => {
                                    forwarder = Some(f);
                                    continue;
                                }
                                Err(response) => response,
                            }
                        } else {
                            match handle(&agent, req.call).await {
                                Ok(value) => {
                                    // Only a hello that succeeded opens the
                                    // connection (a version mismatch does not).
                                    greeted |= hello;
                                    Response::result(id, value)
                                }
                                Err(e) => Response::error(Some(id), e),
                            }
                        }
                    }
                }
            };
            if tx.send(response.to_line()).await.is_err() {
                break 'conn;
            }
        }
    }
    if let Some(f) = forwarder {
        f.abort();
    }
    drop(tx);
    let _ = writer.await;
}

fn json<T: serde::Serialize>(v: AgentResult<T>) -> Result<serde_json::Value, ErrorObject> {
    v.map_err(ErrorObject::from).and_then(|v| {
        serde_json::to_value(v).map_err(|e| ErrorObject::new(IpcErrorCode::Internal, e.to_string()))
    })
}

async fn handle(agent: &Arc<Agent>, call: Call) -> Result<serde_json::Value, ErrorObject> {
    match call {
        Call::Hello(p) => {
            p.check_version()?;
            json(Ok(HelloResult {
                daemon_version: env!("CARGO_PKG_VERSION").into(),
                protocol: IPC_PROTOCOL_VERSION,
                profile: agent.profile.clone(),
            }))
        }
        Call::Status(_) => json(agent.status().await),
        Call::Unlock(p) => {
            let pass = Zeroizing::new(p.passphrase.expose().to_owned());
            json(agent.unlock(pass).await.map(|()| Empty {}))
        }
        Call::Register(p) => json(agent.register(p).await),
        Call::Login(p) => json(agent.login(p).await),
        Call::Logout(_) => json(agent.logout().await.map(|()| Empty {})),
        Call::Whoami(_) => json(agent.whoami().await),
        Call::Conversations(_) => json(agent.conversations().await),
        Call::DmOpen(p) => json(agent.dm_open(&p.username).await),
        Call::GroupCreate(p) => json(agent.group_create(p).await),
        Call::GroupAdd(p) => json(agent.group_add(&p.conversation, &p.members).await),
        Call::GroupRemove(p) => json(agent.group_remove(&p.conversation, &p.members).await),
        Call::GroupLeave(p) => json(agent.group_leave(&p.conversation).await.map(|()| Empty {})),
        Call::GroupRekey(p) => json(
            agent
                .group_rekey(&p.conversation)
                .await
                .map(|epoch| RekeyResult { epoch }),
        ),
        Call::Members(p) => json(agent.members(&p.conversation).await),
        Call::Send(p) => json(
            agent
                .send(&p.conversation, &p.text, p.confirm_changed_keys)
                .await,
        ),
        Call::History(p) => json(
            agent
                .history(&p.conversation, p.before, p.limit.get() as u32)
                .await,
        ),
        Call::Search(p) => json(
            agent
                .search(&p.query, p.conversation.as_ref(), p.limit.get() as u32)
                .await,
        ),
        Call::Read(p) => json(
            agent
                .read(&p.conversation, p.up_to)
                .await
                .map(|unread| ReadResult { unread }),
        ),
        Call::Verify(p) => json(
            agent
                .verify(&p.username, p.confirm, p.safety_number.as_deref())
                .await,
        ),
        Call::Subscribe(_) => Err(ErrorObject::new(
            IpcErrorCode::Internal,
            "subscribe is handled by the connection",
        )),
        Call::Shutdown(_) => {
            agent.request_shutdown();
            json(Ok(Empty {}))
        }
    }
}

/// Answers `subscribe`, then replays what the client missed and streams live
/// notifications, never repeating one (live events up to the last replayed
/// sequence number are skipped).
async fn subscribe(
    agent: &Arc<Agent>,
    since: Option<Seq>,
    id: Id,
    tx: &mpsc::Sender<Vec<u8>>,
) -> Result<tokio::task::JoinHandle<()>, Response> {
    let (latest, backlog, mut live) = agent
        .subscribe(since)
        .await
        .map_err(|e| Response::error(Some(id.clone()), e.into()))?;
    let answer = Response::success(id.clone(), &SubscribeResult { seq: latest });
    if tx.send(answer.to_line()).await.is_err() {
        return Err(Response::error(
            Some(id),
            ErrorObject::new(IpcErrorCode::Internal, "connection closed"),
        ));
    }
    let tx = tx.clone();
    let mut last = since.map(|s| s.0).unwrap_or(latest.0);
    Ok(tokio::spawn(async move {
        for n in backlog {
            last = last.max(n.seq().0);
            match n.to_line() {
                Ok(l) => {
                    if tx.send(l).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!(error = %e, "notification encoding"),
            }
        }
        loop {
            match live.recv().await {
                Ok(n) if n.seq().0 > last => {
                    last = n.seq().0;
                    match n.to_line() {
                        Ok(l) => {
                            if tx.send(l).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "notification encoding"),
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    // The client fell behind; it resumes with `subscribe
                    // since` and loses nothing. Closing tells it to.
                    tracing::warn!(skipped = n, "a subscriber lagged; ending its stream");
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }))
}
