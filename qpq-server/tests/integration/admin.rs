//! `qpq-server admin` against a running server: the command-line binary
//! talks to the test server's admin socket while its users keep their QUIC
//! connections open, so each change is seen on connections already there.

use std::path::Path;
use std::process::Output;

use quicproquo_protocol::client::ClientError;
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::types::Username;
use quicproquo_protocol::wire::{Request, Response};
use quicproquo_testkit::agent::eventually;
use quicproquo_testkit::process::output;
use quicproquo_testkit::skip::skip;
use serde_json::Value;

use crate::harness::{app_message, code, Register, TestServer, User};

const BIN: &str = env!("CARGO_BIN_EXE_qpq-server");

/// Runs `qpq-server admin --data-dir DIR ARGS…` to completion.
async fn admin(dir: &Path, args: &[&str]) -> Output {
    output(
        tokio::process::Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("QPQ_LOG", "warn")
            .arg("admin")
            .arg("--data-dir")
            .arg(dir)
            .args(args),
    )
    .await
}

/// [`admin`] with `--json`, which must succeed: its one JSON object.
async fn admin_json(dir: &Path, args: &[&str]) -> Value {
    let out = admin(dir, &[args, &["--json"]].concat()).await;
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn user<'a>(users: &'a Value, name: &str) -> Option<&'a Value> {
    users["users"]
        .as_array()
        .expect("a users array")
        .iter()
        .find(|u| u["username"] == name)
}

/// A request that needs the session, on the user's open connection.
async fn whoami(u: &User) -> Result<Response, ClientError> {
    u.call(Request::Fetch {
        auth: u.auth(),
        channel: None,
        limit: 0,
    })
    .await
}

fn login_code(r: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Server(e)) => e.code,
        other => panic!("expected a refused login, got {other:?}"),
    }
}

/// alice and bob, logged in; one message from bob waits for alice.
async fn mail_for_alice(srv: &TestServer) -> (User, User) {
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let dm = bob.channel_with(&alice).await;
    bob.send(&alice, dm, app_message(b"for alice"))
        .await
        .unwrap();
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_queues_and_revoke_sessions() {
    let srv = TestServer::start().await;
    let dir = srv.config.data_dir.clone();
    let (alice, bob) = mail_for_alice(&srv).await;

    let users = admin_json(&dir, &["users"]).await;
    let a = user(&users, "alice").expect("alice is listed");
    assert_eq!(a["sessions"], 1);
    assert_eq!(a["mail_count"], 1);
    assert_eq!(a["disabled"], false);
    assert_eq!(a["identity_key"], hex::encode(alice.identity.0));
    assert!(user(&users, "bob").is_some());
    let queues = admin_json(&dir, &["queues", "--top", "5"]).await;
    assert_eq!(queues["queues"][0]["username"], "alice", "{queues}");
    assert_eq!(queues["queues"].as_array().map(Vec::len), Some(1));
    let table = admin(&dir, &["users"]).await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.starts_with("USER") && text.contains("alice") && text.contains("active"),
        "{text}"
    );

    assert!(whoami(&alice).await.is_ok());
    let revoked = admin_json(&dir, &["revoke-sessions", "alice"]).await;
    assert_eq!(revoked["sessions_ended"], 1, "{revoked}");
    assert_eq!(
        code(whoami(&alice).await),
        ErrorCode::Unauthenticated,
        "the next request on the open connection is refused at once"
    );
    assert!(whoami(&bob).await.is_ok(), "bob's session stays");
    alice
        .client
        .login(&alice.username, alice.password.as_bytes())
        .await
        .expect("alice may log in again");

    let unknown = admin(&dir, &["revoke-sessions", "mallory"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("mallory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_refuses_login_and_enable_restores_it() {
    let srv = TestServer::start().await;
    let dir = srv.config.data_dir.clone();
    let bob = srv.register("bob").await;
    assert!(whoami(&bob).await.is_ok());

    admin_json(&dir, &["disable", "bob"]).await;
    assert_eq!(code(whoami(&bob).await), ErrorCode::Unauthenticated);
    assert_eq!(
        login_code(
            bob.client
                .login(&bob.username, bob.password.as_bytes())
                .await
        ),
        ErrorCode::AccountDisabled,
        "the right password gets E050"
    );
    assert_eq!(
        login_code(bob.client.login(&bob.username, b"a wrong guess").await),
        ErrorCode::LoginFailed,
        "a wrong password learns nothing about the account's state"
    );
    let users = admin_json(&dir, &["users"]).await;
    assert_eq!(user(&users, "bob").expect("bob")["disabled"], true);

    admin_json(&dir, &["enable", "bob"]).await;
    let session = bob
        .client
        .login(&bob.username, bob.password.as_bytes())
        .await
        .expect("enabled again: login works");
    assert!(bob
        .call(Request::Fetch {
            auth: session.token,
            channel: None,
            limit: 0,
        })
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_sessions_and_mail_and_retires_the_name() {
    let srv = TestServer::start().await;
    let dir = srv.config.data_dir.clone();
    let (alice, _bob) = mail_for_alice(&srv).await;
    assert_eq!(srv.queued_mail(), 1);

    let unconfirmed = admin(&dir, &["delete", "alice"]).await;
    assert_eq!(
        unconfirmed.status.code(),
        Some(2),
        "no terminal and no --yes: nothing deleted"
    );
    assert!(whoami(&alice).await.is_ok());

    admin_json(&dir, &["delete", "alice", "--yes"]).await;
    assert_eq!(code(whoami(&alice).await), ErrorCode::Unauthenticated);
    assert_eq!(srv.queued_mail(), 0, "her waiting mail is gone");
    let users = admin_json(&dir, &["users"]).await;
    assert!(user(&users, "alice").is_none());
    let again = srv.client().await;
    let name = Username::parse("alice").unwrap();
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let identity = quicproquo_protocol::types::IdentityKey(signing.verifying_key().to_bytes());
    let proof = ed25519_dalek::Signer::sign(
        &signing,
        &quicproquo_protocol::wire::identity_proof_message(&name),
    )
    .to_bytes();
    let taken = again
        .register(&name, b"another password", identity, proof)
        .await;
    assert_eq!(
        login_code(taken),
        ErrorCode::UsernameTaken,
        "the name is never registered again"
    );
    let twice = admin(&dir, &["delete", "alice", "--yes"]).await;
    assert_eq!(twice.status.code(), Some(1), "already gone: no such user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_socket_is_replaced_and_removed_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let missing = admin(dir.path(), &["users"]).await;
    assert_eq!(missing.status.code(), Some(3));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains(&format!(
            "no qpq-server is running on {} (admin.sock missing)",
            dir.path().display()
        )),
        "{err}"
    );
    // What a killed server leaves: a socket file nobody listens on.
    let socket = dir.path().join("admin.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let stale = admin(dir.path(), &["users"]).await;
    assert_eq!(stale.status.code(), Some(3), "a stale socket is no server");

    let mut srv = TestServer::start_in(dir.path()).await.unwrap();
    admin_json(dir.path(), &["users"]).await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    srv.stop().await;
    assert!(!socket.exists(), "removed at shutdown");
}

/// Only the server's user (or root) is served: `nobody` reaches the socket
/// (its modes opened for the test) and gets a refusal line, logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_is_refused() {
    let runuser = Path::new("/usr/sbin/runuser");
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
        .unwrap_or(false);
    if !runuser.exists() || !root {
        skip(
            "another_user_is_refused",
            "needs root and runuser to act as another user",
        );
        return;
    }
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("data");
    let srv = TestServer::start_in(&dir).await.unwrap();
    use std::os::unix::fs::PermissionsExt;
    for d in [top.path(), dir.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let socket = dir.join("admin.sock");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let as_nobody = output(tokio::process::Command::new(runuser).args([
        "-u",
        "nobody",
        "--",
        BIN,
        "admin",
        "--socket",
        &socket.display().to_string(),
        "users",
        "--json",
    ]))
    .await;
    assert_eq!(
        as_nobody.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&as_nobody.stderr)
    );
    let said: Value = serde_json::from_slice(&as_nobody.stdout).unwrap();
    assert_eq!(said["error"]["code"], "not-permitted");
    // The same command as root is served.
    admin_json(&dir, &["users"]).await;
    drop(srv);
}

/// The socket's bounds: a line past 64 KiB is refused and the connection
/// closed; what is not a request gets a bad-request answer; a fifth
/// connection while four are held is told to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_bounded() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixStream;

    let srv = TestServer::start().await;
    let socket = srv.config.data_dir.join("admin.sock");
    let answer = |stream: UnixStream| async move {
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await.unwrap();
        serde_json::from_str::<Value>(&line).unwrap()
    };

    let mut s = UnixStream::connect(&socket).await.unwrap();
    s.write_all(b"{\"command\":\"fly\"}\n").await.unwrap();
    let said = answer(s).await;
    assert_eq!(said["code"], "bad-request", "{said}");

    let mut s = UnixStream::connect(&socket).await.unwrap();
    let mut long = vec![b' '; 64 * 1024 + 1];
    long.push(b'\n');
    // The server may stop reading once it has refused the line.
    let _ = s.write_all(&long).await;
    let said = answer(s).await;
    assert_eq!(said["code"], "bad-request", "{said}");
    assert!(
        said["message"].as_str().unwrap().contains("65536"),
        "{said}"
    );

    let mut held = Vec::new();
    for _ in 0..4 {
        // Answered, so the connection is being served (holding its slot);
        // the connections above may still hold theirs for a moment.
        let served = eventually("a connection is served", || async {
            let mut s = UnixStream::connect(&socket).await.ok()?;
            let _ = s.write_all(b"{\"command\":\"queues\",\"top\":1}\n").await;
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).await.ok()?;
            line.contains("\"queues\"").then_some(r)
        })
        .await
        .unwrap();
        held.push(served);
    }
    let said = answer(UnixStream::connect(&socket).await.unwrap()).await;
    assert_eq!(said["code"], "busy", "{said}");
    drop(held);
    // The slots come back as the server sees the hang-ups.
    let dir = srv.config.data_dir.clone();
    eventually("a slot is free again", || async {
        admin(&dir, &["users"]).await.status.success().then_some(())
    })
    .await
    .unwrap();
}
