//! When `recv --follow` should end: SIGINT, SIGTERM, or stdout's reader
//! going away (`qpq-ctl recv --follow | head -3`).
//!
//! A closed pipe shows up as a failed write anyway, but only at the next
//! message, which may be hours away while the shell waits for the pipeline.
//! So a thread parks in poll(2) on stdout: a pipe's write end reports
//! POLLERR once its last reader is gone (a socket, POLLHUP), with no events
//! requested and nothing written. Only for pipes and sockets: a terminal or
//! a file never needs it.

use std::future::pending;
use std::io;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::FileType;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Turns `true` when the stream should end. The task ends with its handle.
pub struct Stop {
    rx: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Drop for Stop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stop {
    pub fn new() -> Stop {
        let (tx, rx) = watch::channel(false);
        let gone = stdout_gone();
        let mut int = signal(SignalKind::interrupt()).ok();
        let mut term = signal(SignalKind::terminate()).ok();
        let task = tokio::spawn(async move {
            tokio::select! {
                () = next_signal(&mut int) => {}
                () = next_signal(&mut term) => {}
                () = gone => {}
            }
            let _ = tx.send(true);
        });
        Stop { rx, task }
    }

    /// Resolves once the stream should end (at once, if it already should).
    pub async fn requested(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// Resolves at the next `s` (never when it could not be caught).
pub(crate) async fn next_signal(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => pending().await,
    }
}

/// Resolves when stdout is a pipe or socket whose reader went away; never
/// otherwise.
fn stdout_gone() -> impl std::future::Future<Output = ()> {
    let (tx, rx) = oneshot::channel::<()>();
    let watched = rustix::fs::fstat(io::stdout())
        .map(|st| {
            matches!(
                FileType::from_raw_mode(st.st_mode),
                FileType::Fifo | FileType::Socket
            )
        })
        .unwrap_or(false);
    if watched {
        // Detached: it blocks in poll(2) until the reader goes, or the
        // process ends.
        let _ = std::thread::Builder::new()
            .name("qpq-ctl-stdout".into())
            .spawn(move || {
                let stdout = io::stdout();
                loop {
                    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
                    match poll(&mut fds, None) {
                        Ok(_) => {
                            let ev = fds[0].revents();
                            if ev.intersects(PollFlags::ERR | PollFlags::HUP) {
                                let _ = tx.send(());
                                return;
                            }
                            if !ev.is_empty() {
                                // POLLNVAL or the like: nothing to watch.
                                return;
                            }
                        }
                        Err(rustix::io::Errno::INTR) => {}
                        Err(_) => return,
                    }
                }
            });
    }
    async move {
        if rx.await.is_err() {
            pending::<()>().await;
        }
    }
}
