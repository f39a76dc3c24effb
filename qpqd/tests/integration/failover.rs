//! A deployment of several nodes: the daemon is given every node's address
//! and moves to another when its node goes away, losing and repeating
//! nothing. Two nodes are simulated by two UDP relays in front of one
//! server (what one database shared by two servers gives the client: the
//! same accounts, sessions and mail behind either address); cutting a relay
//! is its node dying without a word.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use quicproquo_protocol::ipc::methods::{method, NoParams, StatusResult};
use quicproquo_protocol::ipc::values::ConnectionState;
use quicproquo_testkit::agent::{eventually, first_dm, register_at};
use quicproquo_testkit::relay::UdpRelay;

use crate::harness::{Daemon, Server};

/// A silent node is given up after this (30 s in service), so a move takes
/// a second or two here.
fn quick_moves() -> [(&'static str, OsString); 1] {
    [("QPQ_TEST_NODE_TIMEOUT_MS", "1500".into())]
}

async fn status(d: &Daemon) -> StatusResult {
    d.client
        .request::<method::Status>(NoParams {})
        .await
        .expect("status")
}

/// Waits until `d` is online through the node `addr` names.
async fn online_at(d: &Daemon, addr: &str) -> StatusResult {
    eventually(&format!("{} is online through {addr}", d.name), || async {
        let st = status(d).await;
        (matches!(st.connection, ConnectionState::Online) && st.node.as_deref() == Some(addr))
            .then_some(st)
    })
    .await
    .unwrap_or_else(|e| panic!("{e} (log in {})", d.home.display()))
}

/// A daemon that moves quickly, registered with the nodes `servers`.
async fn user_of(root: &Path, name: &str, servers: &str, srv: &Server) -> Daemon {
    let d = Daemon::start_with_env(root, name, &quick_moves()).await;
    register_at(&d.client, servers, srv.pin(), name)
        .await
        .expect("register");
    d
}

#[tokio::test]
async fn a_dead_first_node_is_passed_over_at_registration_and_at_start() {
    let srv = Server::start().await;
    let dead = UdpRelay::dead(srv.addr).await.unwrap();
    let live = UdpRelay::start(srv.addr).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let servers = format!("{},{}", dead.addr, live.addr);
    let mut alice = user_of(root.path(), "alice", &servers, &srv).await;
    let st = online_at(&alice, &live.addr.to_string()).await;
    assert_eq!(
        st.server.as_deref(),
        Some(servers.as_str()),
        "the list is kept"
    );
    let [bob] = Daemon::registered(root.path(), &srv, ["bob"]).await;
    first_dm(&alice.client, &bob.client, "through the second node")
        .await
        .unwrap();
    // A restarted daemon reads the list from its state and does the same.
    alice.restart().await;
    online_at(&alice, &live.addr.to_string()).await;
}

#[tokio::test]
async fn a_malformed_server_list_is_refused_with_the_entry_named() {
    let root = tempfile::tempdir().unwrap();
    let srv = Server::start().await;
    let d = Daemon::start(root.path(), "alice").await;
    let e = register_at(
        &d.client,
        &format!("{},no-port.example", srv.addr),
        srv.pin(),
        "alice",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("`no-port.example`"), "{e}");
}

#[tokio::test]
async fn a_node_lost_during_a_burst_loses_and_repeats_nothing() {
    let srv = Server::start().await;
    let (one, two) = (
        UdpRelay::start(srv.addr).await.unwrap(),
        UdpRelay::start(srv.addr).await.unwrap(),
    );
    let root = tempfile::tempdir().unwrap();
    let alice = user_of(
        root.path(),
        "alice",
        &format!("{},{}", one.addr, two.addr),
        &srv,
    )
    .await;
    let [bob] = Daemon::registered(root.path(), &srv, ["bob"]).await;
    first_dm(&alice.client, &bob.client, "before")
        .await
        .unwrap();
    online_at(&alice, &one.addr.to_string()).await;

    const BURST: usize = 30;
    for i in 0..BURST {
        if i == BURST / 3 {
            one.cut();
        }
        alice.send("@bob", &format!("m{i}")).await.expect("queued");
    }
    online_at(&alice, &two.addr.to_string()).await;
    alice.wait_outbox_empty().await;
    // Sent after the burst, so it arrives after every copy of the burst
    // the server could still hand out.
    alice.send("@bob", "after").await.expect("queued");
    bob.wait_for("@alice", "after").await;

    let history = bob.history("@alice").await;
    let mut by_text: HashMap<&str, usize> = HashMap::new();
    for m in history.iter().filter(|m| !m.outgoing) {
        *by_text.entry(m.text.as_str()).or_default() += 1;
    }
    for i in 0..BURST {
        assert_eq!(
            by_text.get(format!("m{i}").as_str()),
            Some(&1),
            "m{i} exactly once: {by_text:?}"
        );
    }
    let mut ids: Vec<_> = history.iter().map(|m| m.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), history.len(), "every message id once");
    assert_eq!(history.iter().filter(|m| !m.outgoing).count(), BURST + 2);
}

#[tokio::test]
async fn a_node_with_another_certificate_is_refused() {
    let srv = Server::start().await;
    // Its own data directory, so its own certificate: not a node of this
    // deployment, whatever address it answers on.
    let impostor = Server::start().await;
    assert_ne!(srv.fingerprint, impostor.fingerprint);
    let front = UdpRelay::start(srv.addr).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let alice = user_of(
        root.path(),
        "alice",
        &format!("{},{}", front.addr, impostor.addr),
        &srv,
    )
    .await;
    online_at(&alice, &front.addr.to_string()).await;
    front.cut();
    let st = eventually("alice refuses the impostor", || async {
        let st = status(&alice).await;
        (st.connection_detail.contains("server certificate changed")
            && st.connection_detail.contains(&impostor.addr.to_string()))
        .then_some(st)
    })
    .await
    .unwrap();
    assert!(!matches!(st.connection, ConnectionState::Online), "{st:?}");
    assert_eq!(st.node, None);
    assert_eq!(impostor.account_identity("alice"), None);
}
