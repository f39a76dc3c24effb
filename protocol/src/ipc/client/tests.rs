//! The client against a small in-test daemon serving a real socket in a
//! temp dir with the same codec and request parser `qpqd` uses.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::AtomicUsize;

use interprocess::local_socket::tokio::Listener;
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::ListenerOptions;
use serde_json::json;
use tokio::process::Command;
use tokio::sync::Notify;

use super::*;
use crate::ipc::jsonrpc::{IncomingRequest, Response};
use crate::ipc::methods::{method, Call, ConversationParams, NoParams, StatusResult};
use crate::ipc::notifications::{ConnectionChange, Notification};
use crate::ipc::values::{Ciphersuite, ConnectionState, KeystoreState};
use crate::ipc::{IpcError, MAX_LINE};
use crate::paths::tests::TempDir;

/// What the fake daemon does for one request.
enum Step {
    Send(Vec<u8>),
    Sleep(Duration),
    /// Close the connection.
    Hangup,
    Signal(Arc<Notify>),
    Wait(Arc<Notify>),
}

type Handler = dyn Fn(&IncomingRequest) -> Vec<Step> + Send + Sync;

/// A daemon serving `paths.socket` until dropped; counts connections and
/// tells when one closes.
struct FakeDaemon {
    _task: tokio::task::JoinHandle<()>,
    closed: Arc<Notify>,
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self._task.abort();
    }
}

impl FakeDaemon {
    fn start(paths: &Paths, handler: Arc<Handler>) -> FakeDaemon {
        crate::paths::ensure_private_dir(&paths.runtime_dir).unwrap();
        let name = paths
            .socket
            .clone()
            .to_fs_name::<GenericFilePath>()
            .unwrap();
        let listener = ListenerOptions::new().name(name).create_tokio().unwrap();
        let closed = Arc::new(Notify::new());
        let task = tokio::spawn(serve(listener, handler, Arc::clone(&closed)));
        FakeDaemon {
            _task: task,
            closed,
        }
    }
}

async fn serve(listener: Listener, handler: Arc<Handler>, closed: Arc<Notify>) {
    let mut conns = JoinSet::new();
    while let Ok(stream) = listener.accept().await {
        conns.spawn(connection(
            stream,
            Arc::clone(&handler),
            Arc::clone(&closed),
        ));
    }
}

async fn connection(stream: Stream, handler: Arc<Handler>, closed: Arc<Notify>) {
    let stream = Arc::new(stream);
    let (out, mut out_rx) = mpsc::channel::<Option<Vec<u8>>>(16);
    let writer = {
        let stream = Arc::clone(&stream);
        async move {
            let mut w = &*stream;
            while let Some(Some(line)) = out_rx.recv().await {
                if w.write_all(&line).await.is_err() {
                    break;
                }
            }
        }
    };
    let reader = async move {
        let mut r = &*stream;
        let mut lines = LineBuffer::new();
        let mut chunk = vec![0u8; 4096];
        let mut scripts = JoinSet::new();
        loop {
            let n = match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            lines.extend(&chunk[..n]);
            while let Some(line) = lines.next_line() {
                let steps = match line.map_err(|_| IpcError::line_too_long()) {
                    Ok(line) => match IncomingRequest::parse(line) {
                        Ok(req) => handler(&req),
                        Err(e) => vec![Step::Send(e.to_response().to_line())],
                    },
                    Err(e) => vec![Step::Send(e.to_response().to_line())],
                };
                let out = out.clone();
                scripts.spawn(async move {
                    for step in steps {
                        match step {
                            Step::Send(line) => {
                                let _ = out.send(Some(line)).await;
                            }
                            Step::Sleep(d) => tokio::time::sleep(d).await,
                            Step::Hangup => {
                                let _ = out.send(None).await;
                            }
                            Step::Signal(n) => n.notify_one(),
                            Step::Wait(n) => n.notified().await,
                        }
                    }
                });
            }
        }
    };
    // The connection ends when the client closes it or a script hangs up.
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
    closed.notify_one();
}

fn reply<T: Serialize>(req: &IncomingRequest, result: T) -> Step {
    Step::Send(Response::success(req.id.clone(), &result).to_line())
}

fn error(req: &IncomingRequest, e: ErrorObject) -> Step {
    Step::Send(Response::error(Some(req.id.clone()), e).to_line())
}

fn hello_result(protocol: u32) -> HelloResult {
    HelloResult {
        daemon_version: "0.1.0-fake".into(),
        protocol,
        profile: "test".into(),
    }
}

fn status() -> StatusResult {
    StatusResult {
        profile: "test".into(),
        account: None,
        server: None,
        node: None,
        connection: ConnectionState::Offline,
        connection_detail: String::new(),
        keystore: KeystoreState::Keyring,
        ciphersuite: Ciphersuite::Hybrid,
        outbox: 0,
        unread: 7,
        new_state: false,
        integrity: Default::default(),
        integrity_detail: String::new(),
        storage: Default::default(),
        storage_detail: String::new(),
    }
}

fn note(seq: u64) -> Vec<u8> {
    Notification::Connection(ConnectionChange {
        seq: Seq(seq),
        state: ConnectionState::Online,
        detail: format!("n{seq}"),
    })
    .to_line()
    .unwrap()
}

/// The fake daemon's usual behaviour: hello, a fast `status`, a slow
/// `whoami`, and `subscribe` replaying a log of `log_len` notifications.
fn standard(log_len: u64) -> Arc<Handler> {
    Arc::new(move |req: &IncomingRequest| match &req.call {
        Call::Hello(h) => vec![match h.check_version() {
            Ok(()) => reply(req, hello_result(IPC_PROTOCOL_VERSION)),
            Err(e) => error(req, e),
        }],
        Call::Status(_) => vec![reply(req, status())],
        Call::Whoami(_) => vec![
            Step::Sleep(Duration::from_millis(300)),
            reply(
                req,
                json!({"username": "alice", "identity": "11".repeat(32), "server": "h:1"}),
            ),
        ],
        Call::Subscribe(p) => {
            let mut steps = vec![reply(req, SubscribeResult { seq: Seq(log_len) })];
            let from = p.since.map_or(log_len, |s| s.0) + 1;
            steps.extend((from..=log_len).map(|seq| Step::Send(note(seq))));
            steps
        }
        _ => vec![error(
            req,
            ErrorObject::new(IpcErrorCode::NotLoggedIn, "log in first"),
        )],
    })
}

fn test_paths(tmp: &TempDir) -> Paths {
    let dir = tmp.0.clone();
    Paths::resolve_with(Some("test"), move |name| match name {
        "XDG_DATA_HOME" => Some(dir.join("data").into()),
        "XDG_CONFIG_HOME" => Some(dir.join("config").into()),
        "XDG_RUNTIME_DIR" => Some(dir.join("run").into()),
        _ => None,
    })
    .unwrap()
}

fn opts() -> ClientOptions {
    ClientOptions {
        call_timeout: Duration::from_secs(5),
        ..ClientOptions::new("client-test")
    }
}

#[tokio::test]
async fn no_daemon_is_not_running() {
    let tmp = TempDir::new("client-none");
    let paths = test_paths(&tmp);
    let err = IpcClient::connect(&paths).await.unwrap_err();
    assert!(matches!(err, ConnectError::NotRunning { .. }), "{err}");
    assert!(err.to_string().contains("test.sock"), "{err}");
}

#[tokio::test]
async fn hello_is_said_and_calls_work() {
    let tmp = TempDir::new("client-hello");
    let paths = test_paths(&tmp);
    let _daemon = FakeDaemon::start(&paths, standard(0));
    let client = IpcClient::connect_with(&paths, &opts()).await.unwrap();
    assert_eq!(client.hello(), &hello_result(1));
    let s: StatusResult = client.call("status", NoParams {}).await.unwrap();
    assert_eq!(s, status());
    let s = client.request::<method::Status>(NoParams {}).await.unwrap();
    assert_eq!(s.unread, 7);
}

#[tokio::test]
async fn hello_version_mismatch_is_a_clear_error() {
    let tmp = TempDir::new("client-mismatch");
    let paths = test_paths(&tmp);

    // A daemon that refuses our version, as ipc.md says it does.
    let daemon = FakeDaemon::start(
        &paths,
        Arc::new(|req: &IncomingRequest| {
            vec![error(
                req,
                ErrorObject::version_mismatch(2, IPC_PROTOCOL_VERSION),
            )]
        }),
    );
    let err = IpcClient::connect_with(&paths, &opts()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::VersionMismatch {
                client: 1,
                daemon: Some(2)
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("IPC protocol 2") && text.contains("IPC protocol 1"),
        "{text}"
    );
    assert!(text.contains("qpq-ctl shutdown"), "{text}");
    drop(daemon);

    // An older daemon that answers hello with its own version.
    std::fs::remove_file(&paths.socket).ok();
    let _daemon = FakeDaemon::start(
        &paths,
        Arc::new(|req: &IncomingRequest| {
            vec![reply(req, json!({"protocol": 0, "something": "else"}))]
        }),
    );
    let err = IpcClient::connect_with(&paths, &opts()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::VersionMismatch {
                daemon: Some(0),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_routed_by_id_while_notifications_stream() {
    let tmp = TempDir::new("client-route");
    let paths = test_paths(&tmp);
    // `whoami` is answered only once `status` has been.
    let status_sent = Arc::new(Notify::new());
    // `status` is sent only once the daemon holds `whoami`, so the first
    // call sent is known to be the one answered last.
    let whoami_held = Arc::new(Notify::new());
    let held = Arc::clone(&whoami_held);
    let inner = standard(200);
    let _daemon = FakeDaemon::start(
        &paths,
        Arc::new(move |req: &IncomingRequest| match &req.call {
            Call::Status(_) => vec![reply(req, status()), Step::Signal(Arc::clone(&status_sent))],
            Call::Whoami(_) => {
                held.notify_one();
                let mut steps = vec![Step::Wait(Arc::clone(&status_sent))];
                steps.extend(inner(req));
                steps
            }
            _ => inner(req),
        }),
    );
    let client = IpcClient::connect_with(&paths, &opts()).await.unwrap();
    let mut sub = client.subscribe(Some(Seq(0))).await.unwrap();

    // The first call sent is answered last.
    let order = Mutex::new(Vec::new());
    let slow = async {
        let w = client.request::<method::Whoami>(NoParams {}).await.unwrap();
        order.lock().unwrap().push("whoami");
        w
    };
    let fast = async {
        whoami_held.notified().await;
        let s = client.request::<method::Status>(NoParams {}).await.unwrap();
        order.lock().unwrap().push("status");
        s
    };
    let notes = async {
        let mut seqs = Vec::new();
        while seqs.len() < 200 {
            seqs.push(sub.next().await.unwrap().seq().0);
        }
        seqs
    };
    let (w, s, seqs) = tokio::join!(slow, fast, notes);
    assert_eq!(w.username, "alice");
    assert_eq!(s, status());
    assert_eq!(*order.lock().unwrap(), ["status", "whoami"]);
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    assert_eq!(sub.last_seq(), Seq(200));
    assert!(matches!(
        client.subscribe(None).await,
        Err(CallError::AlreadySubscribed)
    ));
}

#[tokio::test]
async fn daemon_errors_keep_code_message_and_data() {
    let tmp = TempDir::new("client-rpcerr");
    let paths = test_paths(&tmp);
    let _daemon = FakeDaemon::start(
        &paths,
        Arc::new(|req: &IncomingRequest| match &req.call {
            Call::Hello(_) => vec![reply(req, hello_result(1))],
            _ => vec![error(
                req,
                ErrorObject::server_refused(&crate::errors::WireError::bare(
                    crate::errors::ErrorCode::ChannelDenied,
                )),
            )],
        }),
    );
    let client = IpcClient::connect_with(&paths, &opts()).await.unwrap();
    let err = client
        .request::<method::GroupLeave>(ConversationParams {
            conversation: "team".parse().unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(IpcErrorCode::ServerRefused));
    let CallError::Rpc(obj) = err else { panic!() };
    assert_eq!(
        obj.server_code(),
        Some(crate::errors::ErrorCode::ChannelDenied)
    );
    assert!(obj.message.contains("not authorized"));

    // The daemon's own refusal of a malformed request comes back the same way.
    let err = client
        .call::<_, Value>("group.leave", json!({"conversation": 5}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(IpcErrorCode::InvalidParams), "{err}");
    let err = client
        .call::<_, Value>("no.such.method", NoParams {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(IpcErrorCode::MethodNotFound), "{err}");
    // Too long for a line: refused before it is sent.
    let err = client
        .call::<_, Value>(
            "send",
            json!({"conversation": "t", "text": "x".repeat(MAX_LINE)}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::TooLarge { .. }), "{err}");
}

#[tokio::test]
async fn malformed_server_lines_are_survived() {
    let tmp = TempDir::new("client-malformed");
    let paths = test_paths(&tmp);
    let _daemon = FakeDaemon::start(
        &paths,
        Arc::new(|req: &IncomingRequest| {
            let Id::Num(id) = req.id else { panic!() };
            match &req.call {
                Call::Hello(_) => vec![reply(req, hello_result(1))],
                // Garbage, an over-long line, a response to nobody, then the answer.
                Call::Status(_) => vec![
                    Step::Send(b"this is not json\n".to_vec()),
                    Step::Send([vec![b'x'; MAX_LINE + 5], b"\n".to_vec()].concat()),
                    Step::Send(b"{\"jsonrpc\":\"2.0\",\"id\":99999,\"result\":{}}\n".to_vec()),
                    Step::Send(
                        b"{\"jsonrpc\":\"2.0\",\"method\":\"typing\",\"params\":{}}\n".to_vec(),
                    ),
                    reply(req, status()),
                ],
                // A response with our id that is not a response.
                Call::Whoami(_) => vec![Step::Send(
                    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"bogus\":1}}\n").into_bytes(),
                )],
                // A well-formed response whose result has the wrong shape.
                _ => vec![reply(req, json!({"unexpected": true}))],
            }
        }),
    );
    let client = IpcClient::connect_with(&paths, &opts()).await.unwrap();
    let s = client.request::<method::Status>(NoParams {}).await.unwrap();
    assert_eq!(s, status());

    let err = client
        .request::<method::Whoami>(NoParams {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Protocol { method, .. } if method == "whoami"),
        "{err}"
    );

    let err = client
        .request::<method::Conversations>(NoParams {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Protocol { method, .. } if method == "conversations"),
        "{err}"
    );

    // Still usable.
    assert_eq!(
        client.request::<method::Status>(NoParams {}).await.unwrap(),
        status()
    );
}

#[tokio::test]
async fn unanswered_call_times_out_and_the_connection_stays_usable() {
    let tmp = TempDir::new("client-timeout");
    let paths = test_paths(&tmp);
    let _daemon = FakeDaemon::start(
        &paths,
        Arc::new(|req: &IncomingRequest| match &req.call {
            Call::Hello(_) => vec![reply(req, hello_result(1))],
            Call::Status(_) => vec![reply(req, status())],
            _ => vec![],
        }),
    );
    let options = ClientOptions {
        call_timeout: Duration::from_millis(200),
        ..opts()
    };
    let client = IpcClient::connect_with(&paths, &options).await.unwrap();
    let err = client
        .request::<method::Whoami>(NoParams {})
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("whoami"), "{err}");
    assert!(client.request::<method::Status>(NoParams {}).await.is_ok());
}

#[tokio::test]
async fn daemon_gone_fails_waiting_and_later_calls() {
    let tmp = TempDir::new("client-gone");
    let paths = test_paths(&tmp);
    let _daemon = FakeDaemon::start(
        &paths,
        Arc::new(|req: &IncomingRequest| match &req.call {
            Call::Hello(_) => vec![reply(req, hello_result(1))],
            Call::Subscribe(_) => vec![reply(req, SubscribeResult { seq: Seq(0) })],
            _ => vec![Step::Sleep(Duration::from_millis(50)), Step::Hangup],
        }),
    );
    let client = IpcClient::connect_with(&paths, &opts()).await.unwrap();
    let mut sub = client.subscribe(None).await.unwrap();
    // Disconnected, not Timeout: the waiting call learns at once.
    let err = client
        .request::<method::Whoami>(NoParams {})
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Disconnected), "{err}");
    let err = client
        .request::<method::Status>(NoParams {})
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Disconnected), "{err}");
    assert!(matches!(sub.next().await, Err(CallError::Disconnected)));
}

#[tokio::test]
async fn dropping_the_client_closes_the_connection() {
    let tmp = TempDir::new("client-drop");
    let paths = test_paths(&tmp);
    let daemon = FakeDaemon::start(&paths, standard(0));
    let client = IpcClient::connect_with(&paths, &opts()).await.unwrap();
    let sub = client.subscribe(None).await.unwrap();
    let closed = daemon.closed.notified();
    drop(client);
    // The subscription still holds the connection.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), daemon.closed.notified())
            .await
            .is_err()
    );
    drop(sub);
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the connection was not closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_resubscribes_without_loss_or_repeats() {
    let tmp = TempDir::new("client-lag");
    let paths = test_paths(&tmp);
    let total = 3 * NOTIFICATION_QUEUE as u64 + 17;
    let subscribes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&subscribes);
    let inner = standard(total);
    let _daemon = FakeDaemon::start(
        &paths,
        Arc::new(move |req: &IncomingRequest| {
            if matches!(req.call, Call::Subscribe(_)) {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            inner(req)
        }),
    );
    let client = IpcClient::connect_with(&paths, &opts()).await.unwrap();
    let mut sub = client.subscribe(Some(Seq(0))).await.unwrap();
    // Read nothing until the queue has overflowed: it is full exactly when
    // the reader has put the lag marker in its last slot.
    tokio::time::timeout(Duration::from_secs(10), async {
        while sub.rx.len() < NOTIFICATION_QUEUE {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the notification queue never filled");
    let mut seqs = Vec::new();
    while seqs.len() < total as usize {
        let n = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("stream stalled")
            .unwrap();
        seqs.push(n.seq().0);
        if seqs.len() % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    assert!(subscribes.load(Ordering::SeqCst) >= 2, "never lagged");
}

/// A launcher that counts starts and brings the fake daemon up a little
/// later, as a real one would.
fn fake_launcher(starts: Arc<AtomicUsize>, daemons: Arc<Mutex<Vec<FakeDaemon>>>) -> DaemonLauncher {
    DaemonLauncher::new(move |paths| {
        starts.fetch_add(1, Ordering::SeqCst);
        let paths = paths.clone();
        let daemons = Arc::clone(&daemons);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let daemon = FakeDaemon::start(&paths, standard(0));
            daemons.lock().unwrap().push(daemon);
        });
        Ok(None)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_starters_make_one_daemon() {
    let tmp = TempDir::new("client-spawn");
    let paths = test_paths(&tmp);
    let starts = Arc::new(AtomicUsize::new(0));
    let daemons = Arc::new(Mutex::new(Vec::new()));
    let launcher = Arc::new(fake_launcher(Arc::clone(&starts), Arc::clone(&daemons)));
    let mut starters = JoinSet::new();
    for _ in 0..10 {
        let (paths, launcher) = (paths.clone(), Arc::clone(&launcher));
        starters.spawn(async move {
            let client = IpcClient::connect_or_start_with(&paths, &launcher, &opts()).await?;
            client
                .request::<method::Status>(NoParams {})
                .await
                .map_err(ConnectError::Hello)
        });
    }
    while let Some(done) = starters.join_next().await {
        assert_eq!(done.unwrap().unwrap(), status());
    }
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    assert_eq!(daemons.lock().unwrap().len(), 1);
    // The runtime dir was created private.
    crate::paths::check_private_dir(&paths.runtime_dir).unwrap();

    // Once running, starters just connect.
    IpcClient::connect_or_start_with(&paths, &launcher, &opts())
        .await
        .unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_daemon_that_exits_at_start_is_reported_at_once() {
    let tmp = TempDir::new("client-exit");
    let paths = test_paths(&tmp);
    let launcher =
        DaemonLauncher::new(|_| Command::new("sh").arg("-c").arg("exit 3").spawn().map(Some));
    let options = ClientOptions {
        start_timeout: Duration::from_secs(30),
        ..opts()
    };
    // DaemonExited, not StartTimeout: reported without waiting the 30 s.
    let err = IpcClient::connect_or_start_with(&paths, &launcher, &options)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::DaemonExited { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("3") && text.contains("qpqd.log"), "{text}");
}

#[tokio::test]
async fn a_daemon_that_never_answers_times_out() {
    let tmp = TempDir::new("client-never");
    let paths = test_paths(&tmp);
    let launcher = DaemonLauncher::new(|_| Ok(None));
    let options = ClientOptions {
        start_timeout: Duration::from_millis(300),
        ..opts()
    };
    let err = IpcClient::connect_or_start_with(&paths, &launcher, &options)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::StartTimeout { .. }), "{err}");

    let launcher = DaemonLauncher::new(|_| {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "qpqd was found nowhere",
        ))
    });
    let err = IpcClient::connect_or_start_with(&paths, &launcher, &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("qpqd was found nowhere"), "{err}");
}

fn write_program(path: &Path, script: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn daemon_is_located_by_override_then_beside_then_path() {
    let tmp = TempDir::new("client-locate");
    let bin = tmp.0.join("bin");
    let deps = bin.join("deps");
    let path_dir = tmp.0.join("path");
    let exe = deps.join("qpq-ctl-test");
    let env = |vars: Vec<(&'static str, OsString)>| {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        }
    };
    let path_var = std::env::join_paths([tmp.0.join("empty"), path_dir.clone()]).unwrap();

    let err = locate_daemon(env(vec![("PATH", path_var.clone())]), Some(&exe)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("QPQ_DAEMON"), "{err}");

    write_program(&path_dir.join("qpqd"), "#!/bin/sh\n");
    assert_eq!(
        locate_daemon(env(vec![("PATH", path_var.clone())]), Some(&exe)).unwrap(),
        path_dir.join("qpqd")
    );
    // Not executable: skipped.
    write_program(&bin.join("qpqd"), "");
    std::fs::set_permissions(bin.join("qpqd"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        locate_daemon(env(vec![("PATH", path_var.clone())]), Some(&exe)).unwrap(),
        path_dir.join("qpqd")
    );
    // Beside the executable (one up from cargo's deps/) wins over PATH.
    std::fs::set_permissions(bin.join("qpqd"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        locate_daemon(env(vec![("PATH", path_var.clone())]), Some(&exe)).unwrap(),
        bin.join("qpqd")
    );
    write_program(&deps.join("qpqd"), "#!/bin/sh\n");
    assert_eq!(
        locate_daemon(env(vec![("PATH", path_var.clone())]), Some(&exe)).unwrap(),
        deps.join("qpqd")
    );
    // The override wins over everything.
    assert_eq!(
        locate_daemon(
            env(vec![("PATH", path_var), ("QPQ_DAEMON", "/opt/qpqd".into())]),
            Some(&exe)
        )
        .unwrap(),
        PathBuf::from("/opt/qpqd")
    );
}

#[tokio::test]
async fn spawned_daemon_is_detached_in_its_own_process_group() {
    let tmp = TempDir::new("client-detach");
    let paths = test_paths(&tmp);
    let out = tmp.0.join("args");
    let program = tmp.0.join("fake-qpqd");
    write_program(
        &program,
        &format!(
            "#!/bin/sh\necho \"$@\" > {}\nexec sleep 30\n",
            out.display()
        ),
    );
    let mut child = spawn_detached(&program, &paths).unwrap();
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    let pgid = rustix::process::getpgid(Some(pid)).unwrap();
    assert_eq!(pgid, pid, "not the leader of its own group");
    assert_ne!(pgid, rustix::process::getpgrp());
    // Until the whole line is written (the file exists before it is).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut args = String::new();
    while !args.ends_with('\n') && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        args = std::fs::read_to_string(&out).unwrap_or_default();
    }
    assert_eq!(args, "--profile test\n");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
