//! `qpq-server` on PostgreSQL over real QUIC: what a user does first
//! (register, log in, a DM) works against a server started with a
//! `postgres://` database, and a restarted node keeps its certificate and
//! its users (both are in the database). Skipped (a failure in CI) where no
//! PostgreSQL is installed.

use quicproquo_protocol::wire::{Delivery, Request, Response};
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
