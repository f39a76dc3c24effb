//! Bad IPC input, the passphrase path, and who may connect.

use quicproquo_testkit::agent::eventually;
use quicproquo_testkit::process::{output, output_blocking};
use quicproquo_testkit::skip::skip;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use quicproquo_protocol::ipc::client::IpcClient;
use quicproquo_protocol::ipc::error::IpcErrorCode;
use quicproquo_protocol::ipc::methods::{method, NoParams, UnlockParams};
use quicproquo_protocol::ipc::values::{KeystoreState, Secret};
use serde_json::Value;

use crate::harness::{paths_for, Daemon, Server};

fn roundtrip(s: &mut BufReader<UnixStream>, line: &[u8]) -> Value {
    s.get_mut().write_all(line).unwrap();
    let mut out = String::new();
    s.read_line(&mut out).unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_and_the_connection_stays_usable() {
    let root = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), "alice").await;
    let socket = paths_for(&d.home).socket;
    let stream = UnixStream::connect(&socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut s = BufReader::new(stream);
    let code = |v: &Value| v["error"]["code"].as_i64().unwrap_or(0);

    // Not hello first.
    let v = roundtrip(
        &mut s,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\n",
    );
    assert_eq!(code(&v), -32600, "{v}");
    let v = roundtrip(
        &mut s,
        b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"hello\",\"params\":{\"client\":\"t\",\"client_version\":\"0\",\"protocol\":99}}\n",
    );
    assert_eq!(code(&v), -32010, "{v}");
    // A hello that failed does not open the connection.
    let v = roundtrip(
        &mut s,
        b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"status\"}\n",
    );
    assert_eq!(code(&v), -32600, "{v}");
    let v = roundtrip(
        &mut s,
        b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"hello\",\"params\":{\"client\":\"t\",\"client_version\":\"0\",\"protocol\":1}}\n",
    );
    assert!(v["result"].is_object(), "{v}");
    // Garbage, wrong shapes, unknown methods, wrong types.
    assert_eq!(code(&roundtrip(&mut s, b"this is not json\n")), -32700);
    assert_eq!(code(&roundtrip(&mut s, b"[1,2,3]\n")), -32600);
    assert_eq!(
        code(&roundtrip(
            &mut s,
            b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"fly\"}\n"
        )),
        -32601
    );
    let v = roundtrip(
        &mut s,
        b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"send\",\"params\":{\"conversation\":7,\"text\":\"x\"}}\n",
    );
    assert_eq!(code(&v), -32602);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("conversation"),
        "{v}"
    );
    // A huge line is refused and skipped.
    let mut huge = vec![b'x'; 2 * 1024 * 1024];
    huge.push(b'\n');
    assert_eq!(code(&roundtrip(&mut s, &huge)), -32600);
    // Not logged in yet: a clear error, not a crash.
    let v = roundtrip(
        &mut s,
        b"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"send\",\"params\":{\"conversation\":\"@bob\",\"text\":\"x\"}}\n",
    );
    assert!(code(&v) == -32002 || code(&v) == -32001, "{v}");
    // Still serving.
    let v = roundtrip(
        &mut s,
        b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"status\"}\n",
    );
    assert_eq!(v["result"]["profile"], "default", "{v}");
}

/// A request naming `id` and `method` twice: serde_json alone keeps the
/// last `method`, so a wrapper that checked the first (`status`) would let a
/// `shutdown` through. The daemon refuses the line and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_member_cannot_smuggle_a_shutdown() {
    let root = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), "alice").await;
    let stream = UnixStream::connect(paths_for(&d.home).socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut s = BufReader::new(stream);
    let v = roundtrip(
        &mut s,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hello\",\"params\":{\"client\":\"t\",\"client_version\":\"0\",\"protocol\":1}}\n",
    );
    assert!(v["result"].is_object(), "{v}");
    for line in [
        &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"status\",\"method\":\"shutdown\"}\n"[..],
        b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"status\",\"params\":{},\"method\":\"shutdown\"}\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"search\",\"params\":{\"query\":\"a\",\"query\":\"b\"}}\n",
    ] {
        let v = roundtrip(&mut s, line);
        assert_eq!(v["error"]["code"], -32600, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("duplicate member")),
            "{v}"
        );
    }
    // Still running and serving, on this connection and a new one.
    let v = roundtrip(
        &mut s,
        b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"status\"}\n",
    );
    assert_eq!(v["result"]["profile"], "default", "{v}");
    let client = IpcClient::connect(&paths_for(&d.home)).await.unwrap();
    client.request::<method::Status>(NoParams {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_passphrase_locks_and_unlock_opens() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(root.path(), "alice").await;
    d.register(&srv).await;
    send_self_check(&d).await;
    // Stop, then start with a wrong passphrase: the daemon runs locked.
    d.stop().await;
    let (child, client) = Daemon::spawn(&d.home, "alice", Some("not the passphrase")).await;
    d.child = Some(child);
    let st = client.request::<method::Status>(NoParams {}).await.unwrap();
    assert_eq!(st.keystore, KeystoreState::Locked);
    let e = client
        .request::<method::Conversations>(NoParams {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(IpcErrorCode::Locked));
    let e = client
        .request::<method::Unlock>(UnlockParams {
            passphrase: Secret::new("still wrong"),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(IpcErrorCode::Locked), "{e}");
    unlock_opens_the_same_state(&client, &d).await;
}

/// `unlock` with `d`'s passphrase opens the state that has `d`'s account.
async fn unlock_opens_the_same_state(client: &IpcClient, d: &Daemon) {
    client
        .request::<method::Unlock>(UnlockParams {
            passphrase: Secret::new(d.passphrase.clone()),
        })
        .await
        .unwrap();
    let st = client.request::<method::Status>(NoParams {}).await.unwrap();
    assert_eq!(st.keystore, KeystoreState::Passphrase);
    assert_eq!(
        st.account.unwrap().username,
        d.name,
        "the same state, not a fresh one"
    );
}

/// Regression: the Argon2id salt lived only in `keystore.json`, so deleting
/// that file lost the state (the next start made a new salt, and the
/// passphrase never opened the state again). The copy beside the state
/// restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_keystore_json_is_restored_and_the_passphrase_still_opens() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(root.path(), "alice").await;
    d.register(&srv).await;
    d.stop().await;
    let manifest = paths_for(&d.home).data_dir.join("keystore.json");
    let before = std::fs::read(&manifest).unwrap();
    std::fs::remove_file(&manifest).unwrap();

    // Started locked (no passphrase), then unlocked: the passphrase opens
    // the same state.
    let (child, client) = Daemon::spawn(&d.home, "alice", None).await;
    d.child = Some(child);
    unlock_opens_the_same_state(&client, &d).await;
    assert_eq!(std::fs::read(&manifest).unwrap(), before, "written again");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&manifest).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// With a Secret Service running (CI: gnome-keyring under dbus-run-session),
/// a new profile keeps its key in the keyring and reopens without any
/// passphrase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyring_holds_the_state_key_when_there_is_one() {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        skip(
            "the_keyring_holds_the_state_key_when_there_is_one",
            "no D-Bus session bus, so no Secret Service (CI runs this under dbus-run-session)",
        );
        return;
    }
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("kr");
    std::fs::create_dir_all(home.join("run")).unwrap();
    let (child, client) = Daemon::spawn(&home, "keyring-user", None).await;
    let st = client.request::<method::Status>(NoParams {}).await.unwrap();
    assert_eq!(st.keystore, KeystoreState::Keyring);
    let mut d = Daemon {
        name: "kruser".into(),
        home: home.clone(),
        passphrase: String::new(),
        child: Some(child),
        client,
    };
    d.register(&srv).await;
    d.stop().await;
    let (_child, client) = Daemon::spawn(&home, "keyring-user", None).await;
    let st = client.request::<method::Status>(NoParams {}).await.unwrap();
    assert_eq!(st.keystore, KeystoreState::Keyring);
    assert_eq!(
        st.account.unwrap().username,
        "kruser",
        "reopened from the keyring"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_for_the_profile_refuses_to_start() {
    let root = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), "alice").await;
    let out = output(
        tokio::process::Command::new(crate::harness::QPQD)
            .arg("--foreground")
            .env("QPQ_DATA_DIR", d.home.join("data"))
            .env("XDG_RUNTIME_DIR", d.home.join("run"))
            .env("QPQ_PASSPHRASE", &d.passphrase),
    )
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running"), "{err}");
    // The first one still answers.
    IpcClient::connect(&paths_for(&d.home)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_connect() {
    let runuser = std::path::Path::new("/usr/sbin/runuser");
    if !runuser.exists() || !rustix_is_root() {
        skip(
            "another_user_cannot_connect",
            "needs root and runuser to act as another user",
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let d = Daemon::start(root.path(), "alice").await;
    let socket = paths_for(&d.home).socket;
    // Let `nobody` traverse to the socket, so the daemon's own uid check is
    // what refuses it (the 0700 runtime directory would stop it earlier).
    use std::os::unix::fs::PermissionsExt;
    for dir in [root.path(), &d.home, &d.home.join("run")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let qdir = socket.parent().unwrap();
    std::fs::set_permissions(qdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Prints CONNECTED once the socket accepted it, then what came back:
    // the daemon's answer, or CLOSED when it hung up without one.
    let script = format!(
        "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(5)\ns.connect({:?})\n\
         print('CONNECTED', flush=True)\n\
         try:\n  s.sendall(b'{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hello\",\"params\":{{\"client\":\"x\",\"client_version\":\"0\",\"protocol\":1}}}}\\n')\n  data=s.recv(4096)\n\
         except (ConnectionResetError, BrokenPipeError):\n  data=b''\n\
         sys.stdout.write(data.decode() or 'CLOSED')\n",
        socket.display().to_string()
    );
    let run_as = |user: &'static str| {
        let script = script.clone();
        async move {
            let out = output(
                tokio::process::Command::new(runuser)
                    .args(["-u", user, "--", "python3", "-c", &script]),
            )
            .await;
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                out.status.success(),
                "the probe as {user} ran: {said} {err}"
            );
            said
        }
    };
    // The probe works: as the daemon's own user it gets an answer.
    let own = run_as("root").await;
    assert!(
        own.starts_with("CONNECTED\n") && own.contains("\"result\""),
        "{own}"
    );
    // As another user it reaches the socket and is hung up on, unanswered.
    let other = run_as("nobody").await;
    assert_eq!(other, "CONNECTED\nCLOSED", "another uid must get no answer");
}

fn rustix_is_root() -> bool {
    output_blocking(std::process::Command::new("id").arg("-u"))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The account is there and usable.
async fn send_self_check(d: &Daemon) {
    let st = d
        .client
        .request::<method::Status>(NoParams {})
        .await
        .unwrap();
    assert_eq!(st.account.unwrap().username, d.name);
}

/// `QPQ_PASSPHRASE=` (set, empty) is a mistake, not a passphrase: qpqd says
/// so and exits instead of encrypting the state with an empty passphrase.
#[test]
fn an_empty_passphrase_variable_is_refused() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("run")).unwrap();
    let out = output_blocking(
        std::process::Command::new(crate::harness::QPQD)
            .arg("--foreground")
            .env_clear()
            .env("QPQ_DATA_DIR", home.path().join("data"))
            .env("XDG_RUNTIME_DIR", home.path().join("run"))
            .env("HOME", home.path())
            .env("QPQ_PASSPHRASE", ""),
    )
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("QPQ_PASSPHRASE is set but empty"),
        "{stderr}"
    );
    assert!(
        !home.path().join("data/default/qpq-state.bin").exists(),
        "no state was created"
    );
}

/// A server whose certificate no longer matches the pin is a hard error the
/// user can see: `status` says why the daemon stays disconnected (it used to
/// say only "reconnecting"). A `login` with the new pin then reconnects the
/// running daemon (it used to keep the old pin until restarted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_server_certificate_is_shown_in_status() {
    use quicproquo_protocol::ipc::values::ConnectionState;

    let mut srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice] = Daemon::registered(root.path(), &srv, ["alice"]).await;
    srv.stop().await;
    // Same address, new self-signed certificate.
    std::fs::remove_dir_all(srv.config.data_dir.join("tls")).unwrap();
    srv.start_again().await;
    let mut last = None;
    for _ in 0..200 {
        let st = alice
            .client
            .request::<method::Status>(NoParams {})
            .await
            .unwrap();
        if st.connection_detail.contains("server certificate changed") {
            assert_ne!(st.connection, ConnectionState::Online);
            last = None;
            break;
        }
        last = Some(st);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        last.is_none(),
        "status never named the certificate change: {last:?}"
    );
    // The user checks the new fingerprint with the operator and logs in
    // with it: the running daemon reconnects, no restart needed.
    alice
        .client
        .request::<method::Login>(quicproquo_protocol::ipc::methods::AccountParams {
            server: srv.addr.to_string(),
            server_fingerprint: quicproquo_protocol::parse_fingerprint(&srv.fingerprint),
            username: "alice".into(),
            password: Secret::new("alice login password".to_string()),
        })
        .await
        .unwrap();
    let mut st = None;
    for _ in 0..200 {
        let s = alice
            .client
            .request::<method::Status>(NoParams {})
            .await
            .unwrap();
        if s.connection == ConnectionState::Online {
            assert_eq!(s.connection_detail, "");
            return;
        }
        st = Some(s);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon did not reconnect after login with the new pin: {st:?}");
}

/// CA verification (`QPQ_USE_CA_CERT=1`) against a server certificate issued
/// by a CA the daemon trusts (`SSL_CERT_FILE`, as a private CA is trusted),
/// for a server given by IP address: the certificate is checked for that
/// address (it used to be checked for the name `localhost`). A daemon that
/// does not trust that CA is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_verification_checks_the_ip_address_it_was_given() {
    let (pki, srv) = server_with_a_private_ca().await;
    let root = tempfile::tempdir().unwrap();
    let alice =
        Daemon::start_with_env(root.path(), "alice", &ca_env(&pki.path().join("ca.pem"))).await;
    let account = register_unpinned(&alice, &srv).await.unwrap();
    assert_eq!(account.username, "alice");

    // Another CA in the trust store: the same server is refused.
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let other = pki.path().join("other-ca.pem");
    let mut other_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other_ca = other_params
        .self_signed(&KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(&other, other_ca.pem()).unwrap();
    let mallory = Daemon::start_with_env(root.path(), "mallory", &ca_env(&other)).await;
    let e = register_unpinned(&mallory, &srv).await.unwrap_err();
    assert_eq!(e.code(), Some(IpcErrorCode::NetworkDown), "{e}");
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");
}

/// An account registered with CA verification keeps it: a `login` from a
/// daemon started without `QPQ_USE_CA_CERT` still checks the certificate
/// chain. It used to fall back to trust on first use, so whoever answered
/// at the server's address that moment was accepted and pinned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_keeps_the_ca_verification_the_account_was_registered_with() {
    use quicproquo_protocol::ipc::values::ConnectionState;

    let (pki, mut srv) = server_with_a_private_ca().await;
    let ca_pem = pki.path().join("ca.pem");
    let root = tempfile::tempdir().unwrap();
    let mut alice = Daemon::start_with_env(root.path(), "alice", &ca_env(&ca_pem)).await;
    register_unpinned(&alice, &srv).await.unwrap();
    alice.stop().await;
    // The same profile, the CA still trusted, the variable gone: the
    // account's own mode brings it online.
    let alice = Daemon::start_with_env(
        root.path(),
        "alice",
        &[("SSL_CERT_FILE", ca_pem.as_os_str().to_owned())],
    )
    .await;
    eventually("alice is online through CA verification", || async {
        let st = alice
            .client
            .request::<method::Status>(NoParams {})
            .await
            .ok()?;
        (st.connection == ConnectionState::Online).then_some(())
    })
    .await
    .unwrap();

    // An impostor at the server's address, with a self-signed certificate.
    srv.stop().await;
    srv.config.tls = quicproquo_server::config::TlsSource::SelfSigned {
        dir: srv.config.data_dir.join("tls"),
        hostnames: vec!["localhost".into()],
    };
    srv.start_again().await;
    let e = alice
        .client
        .request::<method::Login>(quicproquo_protocol::ipc::methods::AccountParams {
            server: srv.addr.to_string(),
            server_fingerprint: None,
            username: "alice".into(),
            password: Secret::new("alice login password".to_string()),
        })
        .await
        .expect_err("the impostor's certificate is not accepted");
    assert_eq!(e.code(), Some(IpcErrorCode::NetworkDown), "{e}");
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");
}

/// A private CA, and a server on 127.0.0.1 whose certificate it issued for
/// that address. The CA's certificate is `ca.pem` in the returned directory.
async fn server_with_a_private_ca() -> (tempfile::TempDir, Server) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    let pki = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &Issuer::from_params(&ca_params, &ca_key))
        .unwrap();
    let (cert_pem, key_pem) = (pki.path().join("cert.pem"), pki.path().join("key.pem"));
    std::fs::write(pki.path().join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(&cert_pem, server_cert.pem()).unwrap();
    std::fs::write(&key_pem, server_key.serialize_pem()).unwrap();
    let srv = Server::start_with(|c| {
        c.tls = quicproquo_server::config::TlsSource::Files {
            cert: cert_pem,
            key: key_pem,
        };
    })
    .await;
    (pki, srv)
}

/// The environment of a daemon that verifies servers against the system's
/// CA roots, here the one CA in `file`.
fn ca_env(file: &std::path::Path) -> [(&'static str, std::ffi::OsString); 2] {
    [
        ("QPQ_USE_CA_CERT", "1".into()),
        ("SSL_CERT_FILE", file.as_os_str().to_owned()),
    ]
}

async fn register_unpinned(
    d: &Daemon,
    srv: &Server,
) -> Result<quicproquo_protocol::ipc::values::Account, quicproquo_protocol::ipc::client::CallError>
{
    d.client
        .request::<method::Register>(quicproquo_protocol::ipc::methods::AccountParams {
            server: srv.addr.to_string(),
            server_fingerprint: None,
            username: d.name.clone(),
            password: Secret::new(format!("{} login password", d.name)),
        })
        .await
}

/// Regression: registration refilled the key-package stock twice at once
/// (its own refill and the one when the connection came up), so the server
/// held 40 + 10 packages instead of 20 + 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_uploads_one_stock_of_key_packages() {
    let mut srv = Server::start().await;
    let db = rusqlite::Connection::open(srv.config.database.sqlite_path().unwrap()).unwrap();
    // A test hook in the server's database: every last-resort upload is
    // logged. Each refill begins each suite with one, so the log says how
    // far the refills got.
    db.execute_batch(
        "CREATE TABLE test_last_resort_log (suite INTEGER);
         CREATE TRIGGER test_log_insert AFTER INSERT ON last_resort_key_packages
         BEGIN INSERT INTO test_last_resort_log VALUES (new.suite); END;
         CREATE TRIGGER test_log_update AFTER UPDATE ON last_resort_key_packages
         BEGIN INSERT INTO test_last_resort_log VALUES (new.suite); END;",
    )
    .unwrap();
    let uploads = || -> i64 {
        db.query_row("SELECT count(*) FROM test_last_resort_log", [], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let root = tempfile::tempdir().unwrap();
    let [_alice] = Daemon::registered(root.path(), &srv, ["alice"]).await;
    let count = || -> Vec<(i64, i64)> {
        pairs(
            &db,
            "SELECT suite, count(*) FROM key_packages GROUP BY suite ORDER BY suite",
        )
    };
    // Registration's refill and the connection's have both begun their
    // last suite (two suites each)...
    eventually("both refills reach their last suite", || async {
        (uploads() >= 4).then_some(())
    })
    .await
    .unwrap();
    // ...and a third refill, after a reconnect, has begun: refills take
    // turns, so the second one is finished, whatever it uploaded.
    srv.restart().await;
    eventually("the reconnect's refill begins", || async {
        (uploads() >= 6).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(count(), [(0x0001, 5), (0x004F, 20)]);
}

/// The last-resort key package is re-sent on each connection, not made
/// anew: a new one every time kept new private keys forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_keeps_the_last_resort_key_package() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [mut alice] = Daemon::registered(root.path(), &srv, ["alice"]).await;
    let db = rusqlite::Connection::open(srv.config.database.sqlite_path().unwrap()).unwrap();
    let last_resort = || -> Vec<(i64, Vec<u8>)> {
        pairs(
            &db,
            "SELECT suite, data FROM last_resort_key_packages ORDER BY suite",
        )
    };
    let before = eventually("one last-resort package per suite", || async {
        let now = last_resort();
        (now.len() == 2).then_some(now)
    })
    .await
    .unwrap();
    // With the daemon stopped, the rows are removed: their return is the
    // reconnect's upload, not an earlier one still settling.
    alice.stop().await;
    db.execute("DELETE FROM last_resort_key_packages", [])
        .unwrap();
    alice.start_again().await;
    let after = eventually(
        "the reconnect re-sends the last-resort packages",
        || async {
            let now = last_resort();
            (now.len() == 2).then_some(now)
        },
    )
    .await
    .unwrap();
    assert_eq!(after, before, "the same packages, byte for byte");
}

/// The rows of a two-column query on the server's database.
fn pairs<A: rusqlite::types::FromSql, B: rusqlite::types::FromSql>(
    db: &rusqlite::Connection,
    sql: &str,
) -> Vec<(A, B)> {
    let mut st = db.prepare(sql).unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A daemon whose socket (or data directory) is removed cannot be reached
/// and may have lost its files: it notices within seconds and exits
/// cleanly, instead of running on unseen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_whose_socket_is_removed_exits() {
    let root = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(root.path(), "gone").await;
    std::fs::remove_file(paths_for(&d.home).socket).unwrap();
    let child = d.child.as_mut().unwrap();
    let status = tokio::time::timeout(quicproquo_testkit::WAIT, child.wait())
        .await
        .expect("qpqd exits once its socket is gone")
        .unwrap();
    assert!(status.success(), "{status}");
    d.child = None;
}
