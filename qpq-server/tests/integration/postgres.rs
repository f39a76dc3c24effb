//! `qpq-server` on PostgreSQL over real QUIC: what a user does first
//! (register, log in, a DM) works against a server started with a
//! `postgres://` database, and a restarted node keeps its certificate and
//! its users (both are in the database). Skipped (a failure in CI) where no
//! PostgreSQL is installed.

use quicproquo_protocol::wire::{Delivery, Request, Response};
use quicproquo_testkit::process::output;
use quicproquo_testkit::{postgres, wire};

use crate::harness::{app_message, idem, Register, TestServer};

#[tokio::test]
async fn a_server_on_postgres_registers_logs_in_and_delivers_a_dm() {
    let Some(pg) = postgres::for_test("a_server_on_postgres_registers_logs_in_and_delivers_a_dm")
    else {
        return;
    };
    let url = pg.url(&pg.new_database());
    let mut srv = TestServer::start_on_database(&url).await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let channel = wire::first_dm(&alice.client, &alice, &bob).await;
    let sent = alice
        .call(Request::Enqueue {
            auth: alice.auth(),
            deliveries: vec![Delivery {
                recipient: bob.identity,
                channel: Some(channel),
            }],
            payload: app_message(b"hello over postgres"),
            idempotency_key: idem(),
        })
        .await
        .expect("enqueue");
    assert!(matches!(sent, Response::Enqueue { .. }), "{sent:?}");
    let mail = wire::take_mail(&bob.client, &bob).await;
    assert_eq!(mail.len(), 1);
    assert!(mail[0].ends_with(b"hello over postgres"), "{mail:?}");

    // A restart (new TLS directory contents aside) finds everything in the
    // database: the same certificate, the accounts.
    let fingerprint = srv.fingerprint.clone();
    srv.stop().await;
    std::fs::remove_dir_all(srv.config.data_dir.join("tls")).expect("remove the local copy");
    srv.start_again().await;
    assert_eq!(
        srv.fingerprint, fingerprint,
        "the certificate comes from the database"
    );
    let client = srv.client().await;
    client
        .login(&bob.username, bob.password.as_bytes())
        .await
        .expect("bob logs in again");
}

/// `check-config` with a PostgreSQL URL connects and reads the schema
/// version without changing it: an empty database is reported as migrated
/// at the next start (and stays empty), a served one as current, and an
/// unreachable one is a problem named without its password.
#[tokio::test]
async fn check_config_reads_a_postgres_schema_version_without_changing_it() {
    let Some(pg) =
        postgres::for_test("check_config_reads_a_postgres_schema_version_without_changing_it")
    else {
        return;
    };
    let db = pg.new_database();
    let url = pg.url(&db);
    let dir = tempfile::tempdir().unwrap();
    let check = |url: String| {
        let mut c = crate::binary::command(&dir.path().join("data"));
        c.stderr(std::process::Stdio::piped()).args([
            "check-config",
            "--no-bind",
            "--database",
            &url,
        ]);
        c
    };
    let out = output(&mut check(url.clone())).await;
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("schema version 0, migrated to"), "{said}");
    let tables = pg
        .psql(
            &db,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        )
        .unwrap();
    assert_eq!(tables.trim(), "0", "check-config created nothing");

    let served = TestServer::start_on_database(&url).await;
    let out = output(&mut check(url.clone())).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(", current"),
        "{out:?}"
    );
    drop(served);

    let unreachable = format!("postgres://qpq:secret-pw@127.0.0.1:{}/nowhere", free_port());
    let out = output(&mut check(unreachable)).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let problems = String::from_utf8_lossy(&out.stderr);
    assert!(problems.contains("cannot connect"), "{problems}");
    assert!(
        !problems.contains("secret-pw"),
        "the password leaked: {problems}"
    );
}

/// A TCP port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
