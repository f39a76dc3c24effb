//! The `qpq-server` binary as an operator runs it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use quicproquo_protocol::client::{Client, Trust};
use quicproquo_protocol::wire::{Request, Response};
use quicproquo_testkit::agent::eventually;
use quicproquo_testkit::process::{output, output_blocking};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_qpq-server");

pub(crate) fn command(data_dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("QPQ_SERVER_DATA_DIR", data_dir)
        .env("QPQ_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    c
}

/// Starts the binary and reads the address and fingerprint it prints.
pub(crate) async fn start(data_dir: &Path) -> (Child, std::net::SocketAddr, String) {
    start_command(command(data_dir)).await
}

/// [`start`] for a command the caller adjusted (its log filter, stderr).
pub(crate) async fn start_command(mut cmd: Command) -> (Child, std::net::SocketAddr, String) {
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0"])
        .spawn()
        .expect("spawn qpq-server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut addr, mut fp) = (None, None);
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(a) = line.strip_prefix("qpq-server listening on ") {
                addr = Some(a.parse().unwrap());
            }
            if let Some(f) = line.strip_prefix("certificate SHA-256 fingerprint: ") {
                fp = Some(f.to_string());
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("server printed its address and fingerprint");
    (
        child,
        addr.expect("address line"),
        fp.expect("fingerprint line"),
    )
}

/// Sends `signal` (as `kill` names it: "TERM", "HUP") to the child.
fn send_signal(child: &Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let sent = output_blocking(
        std::process::Command::new("kill").args([format!("-{signal}").as_str(), &pid]),
    )
    .unwrap();
    assert!(sent.status.success(), "kill -{signal}: {sent:?}");
}

pub(crate) async fn terminate(mut child: Child) -> std::process::ExitStatus {
    send_signal(&child, "TERM");
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap()
}

#[tokio::test]
async fn fresh_start_creates_everything_and_restart_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server-data");
    let (child, addr, fp) = start(&data).await;
    for f in ["qpq.db", "tls/cert.pem", "tls/key.pem"] {
        assert!(data.join(f).exists(), "{f} was not created");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "data directory must be private");
    }
    let pin = quicproquo_protocol::parse_fingerprint(&fp).expect("64 hex digits");
    let c = Client::connect(addr, "localhost", Trust::Pin(pin))
        .await
        .unwrap();
    assert_eq!(c.server_fingerprint(), Some(pin));
    assert!(matches!(
        c.call(&Request::Health).await.unwrap(),
        Response::Health { .. }
    ));
    let status = terminate(child).await;
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");

    let (child, _, fp2) = start(&data).await;
    assert_eq!(fp, fp2, "the certificate is kept");
    assert!(terminate(child).await.success());
}

#[tokio::test]
async fn config_errors_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qpq-server.toml");
    std::fs::write(&file, "max_connections = 0\n").unwrap();
    let out = output(command(dir.path()).stderr(Stdio::piped())).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_connections"), "{err}");
    assert!(err.contains("qpq-server.toml"), "{err}");

    // An environment variable overrides the file.
    let out = output(
        command(dir.path())
            .env("QPQ_MAX_CONNECTIONS", "zero")
            .stderr(Stdio::piped()),
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("QPQ_MAX_CONNECTIONS") || err.contains("max-connections"),
        "{err}"
    );
}

#[tokio::test]
async fn help_explains_every_setting() {
    let out = output(Command::new(BIN).arg("--help")).await;
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--tls-cert",
        "--tls-key",
        "--require-channel-authz",
        "--max-connections",
        "QPQ_LISTEN",
        "qpq-server.toml",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

async fn connect(addr: std::net::SocketAddr, fingerprint: &str) -> Client {
    let pin = quicproquo_protocol::parse_fingerprint(fingerprint).expect("64 hex digits");
    Client::connect(addr, "localhost", Trust::Pin(pin))
        .await
        .expect("connects with the printed fingerprint")
}

async fn healthy(c: &Client) -> bool {
    matches!(c.call(&Request::Health).await, Ok(Response::Health { .. }))
}

/// SIGHUP through the signal, as an operator renews a certificate: the
/// files in `tls/` are replaced with a new pair, new connections then see
/// the new certificate, and a connection made before keeps working.
#[tokio::test]
async fn sighup_serves_a_replaced_certificate_to_new_connections() {
    use quicproquo_server::config::TlsSource;
    use quicproquo_server::tls;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server-data");
    let (child, addr, old_fp) = start(&data).await;
    let old = connect(addr, &old_fp).await;

    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (data.join("tls/cert.pem"), data.join("tls/key.pem"));
    std::fs::write(&key, renewed.signing_key.serialize_pem()).unwrap();
    std::fs::write(&cert, renewed.cert.pem()).unwrap();
    let new_fp = tls::fingerprint_hex(&tls::load(&TlsSource::Files { cert, key }).unwrap());
    assert_ne!(new_fp, old_fp);
    let new_pin = quicproquo_protocol::parse_fingerprint(&new_fp).unwrap();

    send_signal(&child, "HUP");
    let fresh = eventually("a new connection is served the new certificate", || async {
        Client::connect(addr, "localhost", Trust::Pin(new_pin))
            .await
            .ok()
    })
    .await
    .unwrap();
    assert!(healthy(&fresh).await);
    assert!(healthy(&old).await, "a connection made before the reload");
    assert!(terminate(child).await.success());
}

/// SIGTERM while a client holds a fetchWait: the wait is answered (empty)
/// before the process exits 0, rather than cut off with the connection.
#[tokio::test]
async fn sigterm_answers_a_held_fetch_wait_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(&dir.path().join("server-data"));
    cmd.env("QPQ_LOG", "warn,quicproquo_server::delivery=debug")
        .stderr(Stdio::piped());
    let (mut child, addr, fp) = start_command(cmd).await;
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    let client = connect(addr, &fp).await;
    let alice = quicproquo_testkit::wire::register(&client, "alice").await;
    let wait = Request::FetchWait {
        auth: alice.session.token.clone(),
        channel: None,
        limit: 0,
        timeout_ms: 60_000,
    };
    let held = tokio::spawn(async move { client.call(&wait).await });
    // The signal must find the wait parked, or the shutdown path is not what
    // answers it; the server says so in its debug log.
    let parked = async {
        while let Some(line) = log.next_line().await.unwrap() {
            if line.contains("fetchWait parked") {
                return;
            }
        }
        panic!("the server's log ended before the wait was parked");
    };
    tokio::time::timeout(quicproquo_testkit::WAIT, parked)
        .await
        .expect("the fetchWait is parked");
    assert!(!held.is_finished(), "a 60 s fetchWait answered early");
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let status = terminate(child).await;
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
    let answer = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("the held fetchWait was answered")
        .unwrap();
    match answer {
        Ok(Response::FetchWait(mail)) => assert!(mail.is_empty(), "{mail:?}"),
        other => panic!("expected an empty fetchWait answer, got {other:?}"),
    }
}
