//! Serving `<data dir>/admin.sock`: bound at start (a stale file a killed
//! server left is replaced; one a live server still answers is left to it),
//! mode 0600, removed at shutdown. Each connection's peer must be the
//! server's own user or root (`SO_PEERCRED`); anyone else gets one refusal
//! line and is logged. Bounded: a few connections at once, a request line
//! of at most [`MAX_REQUEST_LINE`] bytes, and an idle timeout.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::wire::{AdminError, AdminRequest, AdminResponse, MAX_REQUEST_LINE};
use super::{ops, SOCKET_NAME};
use crate::service::{Now, Service};
use crate::store::Store;

/// Admin connections served at once; more are told to retry. An operator
/// runs one command at a time; this only stops a loop from piling up.
const MAX_CONNECTIONS: usize = 4;
/// How long a connection may stay silent (before its next request) or take
/// to read an answer.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a probe of an existing socket file waits for a live server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds the admin socket in `data_dir` and serves it until `shutdown`;
/// the returned task removes the socket when it ends. `None` (logged) when
/// there is no socket to serve: another live server answers on it, or it
/// cannot be bound. The server runs on without it either way.
pub async fn start<S: Store>(
    data_dir: &Path,
    service: Arc<Service<S>>,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let path = data_dir.join(SOCKET_NAME);
    match bind(&path).await {
        Ok(Some(listener)) => {
            tracing::info!(socket = %path.display(), "admin socket ready");
            Some(tokio::spawn(serve(listener, path, service, shutdown)))
        }
        Ok(None) => {
            tracing::warn!(
                socket = %path.display(),
                "another qpq-server answers on this admin socket (same data directory?); \
                 this one serves none"
            );
            None
        }
        Err(e) => {
            tracing::warn!(socket = %path.display(), error = %e, "no admin socket");
            None
        }
    }
}

/// Binds `path`, replacing a stale socket file; `None` if a live server
/// answers on it.
async fn bind(path: &Path) -> std::io::Result<Option<UnixListener>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(std::io::Error::other(
                "the path exists and is not a socket; remove it",
            ))
        }
        Ok(_) => {
            let probe = tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await;
            if matches!(probe, Ok(Ok(_))) {
                return Ok(None);
            }
            // Nobody listens: a killed server's leftover.
            std::fs::remove_file(path)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    // The data directory is 0700, so nobody else could reach it before this.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Some(listener))
}

async fn serve<S: Store>(
    listener: UnixListener,
    path: PathBuf,
    service: Arc<Service<S>>,
    mut shutdown: watch::Receiver<bool>,
) {
    // The file this server bound: removed at the end only if still there
    // (a later server may have replaced it).
    let ours = std::fs::metadata(&path).map(|m| (m.dev(), m.ino())).ok();
    let own_uid = rustix::process::geteuid().as_raw();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin socket: accept failed");
                        continue;
                    }
                };
                while conns.try_join_next().is_some() {}
                let slot = slots.clone().try_acquire_owned().ok();
                let service = service.clone();
                conns.spawn(async move {
                    let Some(_slot) = slot else {
                        let busy = AdminResponse::error(
                            AdminError::Busy,
                            "too many admin connections at once; try again",
                        );
                        let _ = answer(&mut stream.into_split().1, &busy).await;
                        return;
                    };
                    serve_connection(stream, own_uid, &service).await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    conns.abort_all();
    let still_ours = std::fs::metadata(&path)
        .map(|m| Some((m.dev(), m.ino())) == ours)
        .unwrap_or(false);
    if still_ours {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(socket = %path.display(), error = %e, "cannot remove the admin socket");
        }
    }
}

/// Checks the peer, then answers its requests in order until it hangs up,
/// goes silent, or sends something unreadable.
async fn serve_connection<S: Store>(stream: UnixStream, own_uid: u32, service: &Service<S>) {
    let peer = stream.peer_cred();
    let (read, mut write) = stream.into_split();
    match peer {
        Ok(cred) if cred.uid() == own_uid || cred.uid() == 0 => {}
        Ok(cred) => {
            tracing::warn!(
                uid = cred.uid(),
                pid = cred.pid(),
                "admin socket: refused a connection from another user"
            );
            let refusal = AdminResponse::error(
                AdminError::NotPermitted,
                "only the server's own user (or root) may use the admin socket",
            );
            let _ = answer(&mut write, &refusal).await;
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "admin socket: cannot read the peer's credentials");
            return;
        }
    }
    let mut read = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let limit = (MAX_REQUEST_LINE + 1) as u64;
        let got = tokio::time::timeout(
            IDLE_TIMEOUT,
            (&mut read).take(limit).read_until(b'\n', &mut line),
        )
        .await;
        match got {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
        if line.len() > MAX_REQUEST_LINE {
            let too_long = AdminResponse::error(
                AdminError::BadRequest,
                format!("a request line is at most {MAX_REQUEST_LINE} bytes"),
            );
            let _ = answer(&mut write, &too_long).await;
            return;
        }
        let response = match serde_json::from_slice::<AdminRequest>(&line) {
            Ok(request) => {
                ops::handle(&service.store, service.auth(), request, Now::current()).await
            }
            Err(e) => {
                AdminResponse::error(AdminError::BadRequest, format!("not an admin request: {e}"))
            }
        };
        if answer(&mut write, &response).await.is_err() {
            return;
        }
    }
}

/// Writes one answer line.
async fn answer(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &AdminResponse,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    line.push(b'\n');
    tokio::time::timeout(IDLE_TIMEOUT, write.write_all(&line))
        .await
        .map_err(|_| std::io::Error::other("the admin client stopped reading"))?
}
