//! Fake daemons a front-end must not talk to. Each records every byte it
//! receives; the attack succeeds if the client sends it anything (today's
//! `hello` would be followed by a password or a passphrase).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ipc::client::{ClientOptions, ConnectError, IpcClient};
use crate::paths::tests::TempDir;
use crate::paths::Paths;

use super::Untrusted;

/// A listener that takes connections one after another and keeps what each
/// sent (up to its first newline: a whole request) until it is told `END`.
struct Recorder {
    socket: PathBuf,
    thread: std::thread::JoinHandle<Vec<Vec<u8>>>,
}

impl Recorder {
    fn listen(socket: &Path) -> Recorder {
        let listener = UnixListener::bind(socket).unwrap();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for stream in listener.incoming() {
                let mut line = Vec::new();
                let _ = BufReader::new(stream.unwrap()).read_until(b'\n', &mut line);
                if line == b"END" {
                    break;
                }
                seen.push(line);
            }
            seen
        });
        Recorder {
            socket: socket.to_owned(),
            thread,
        }
    }

    /// What each connection before this call sent.
    async fn received(self) -> Vec<Vec<u8>> {
        let mut end = UnixStream::connect(&self.socket).unwrap();
        end.write_all(b"END").unwrap();
        drop(end);
        tokio::task::spawn_blocking(move || self.thread.join().unwrap())
            .await
            .unwrap()
    }
}

fn paths_with_socket(tmp: &TempDir, socket: PathBuf) -> Paths {
    let dir = tmp.0.clone();
    let mut paths = Paths::resolve_with(Some("test"), move |name| match name {
        "XDG_DATA_HOME" => Some(dir.join("data").into()),
        "XDG_CONFIG_HOME" => Some(dir.join("config").into()),
        "XDG_RUNTIME_DIR" => Some(dir.join("run").into()),
        _ => None,
    })
    .unwrap();
    paths.runtime_dir = socket.parent().unwrap().to_owned();
    paths.socket = socket;
    paths
}

fn opts() -> ClientOptions {
    ClientOptions {
        call_timeout: Duration::from_secs(2),
        ..ClientOptions::new("trust-test")
    }
}

/// Connects to `paths` and returns the refusal, after checking the fake
/// daemon got nothing.
async fn refused(paths: &Paths, fake: Recorder) -> ConnectError {
    let result = IpcClient::connect_with(paths, &opts()).await;
    let received = fake.received().await;
    assert!(
        received.iter().all(Vec::is_empty),
        "the fake daemon received {:?}",
        received
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
    );
    let err = result.expect_err("a fake daemon must be refused");
    let text = err.to_string();
    assert!(
        text.contains("refusing") && text.contains("nothing was sent"),
        "{text}"
    );
    err
}

#[tokio::test]
async fn a_fake_daemon_in_a_directory_others_can_enter_gets_nothing() {
    let tmp = TempDir::new("trust-mode");
    let dir = tmp.0.join("run/quicproquo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let paths = paths_with_socket(&tmp, dir.join("test.sock"));
    let fake = Recorder::listen(&paths.socket);
    let err = refused(&paths, fake).await;
    let ConnectError::Untrusted {
        reason: Untrusted::Directory { problem, .. },
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(problem.contains("0755"), "{problem}");
}

#[tokio::test]
async fn a_fake_daemon_in_another_users_directory_gets_nothing() {
    let tmp = TempDir::new("trust-owner");
    let me = rustix::process::getuid().as_raw();
    let (socket, _cleanup) = if me == 0 {
        // Root hands a private directory to `nobody` (as a squatter would
        // have created it) and can still bind in it.
        let dir = tmp.0.join("run/quicproquo");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        rustix::fs::chown(&dir, Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
        (dir.join("test.sock"), None)
    } else {
        // Anyone else: `/tmp` is root's.
        let socket = PathBuf::from(format!("/tmp/qpq-trust-{}.sock", std::process::id()));
        (socket.clone(), Some(RemoveOnDrop(socket)))
    };
    let paths = paths_with_socket(&tmp, socket);
    let fake = Recorder::listen(&paths.socket);
    let err = refused(&paths, fake).await;
    assert!(err.to_string().contains("owned by uid"), "{err}");
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
