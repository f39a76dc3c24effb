//! A deployment of several nodes: the daemon is given every node's address
//! and moves to another when its node goes away, losing and repeating
//! nothing. Two nodes are simulated by two UDP relays in front of one
//! server (what one database shared by two servers gives the client: the
//! same accounts, sessions and mail behind either address); cutting a relay
//! is its node dying without a word. The daemons give a silent node up
//! after 1.5 s (30 s in service), so a move takes a second or two.

use std::collections::HashMap;
use std::path::Path;

use quicproquo_protocol::ipc::methods::{method, NoParams, StatusResult};
use quicproquo_protocol::ipc::values::ConnectionState;
use quicproquo_testkit::agent::{eventually, first_dm, register_at};
use quicproquo_testkit::quick_node_moves;
use quicproquo_testkit::relay::UdpRelay;

use crate::harness::{Daemon, Server};

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

/// One server behind two relays: a deployment of two nodes.
struct TwoNodes {
    srv: Server,
    one: UdpRelay,
    two: UdpRelay,
    root: tempfile::TempDir,
}

impl TwoNodes {
    async fn start_with(configure: impl FnOnce(&mut quicproquo_server::config::Config)) -> Self {
        let srv = Server::start_with(configure).await;
        TwoNodes {
            one: UdpRelay::start(srv.addr).await.unwrap(),
            two: UdpRelay::start(srv.addr).await.unwrap(),
            srv,
            root: tempfile::tempdir().unwrap(),
        }
    }

    /// `mover` registered with both nodes (online through the first) and
    /// `other` with the server itself, their DM open.
    async fn users(&self, mover: &str, other: &str) -> (Daemon, Daemon) {
        let servers = format!("{},{}", self.one.addr, self.two.addr);
        let m = user_of(self.root.path(), mover, &servers, &self.srv).await;
        let o = user_of(
            self.root.path(),
            other,
            &self.srv.addr.to_string(),
            &self.srv,
        )
        .await;
        first_dm(&m.client, &o.client, "before").await.unwrap();
        online_at(&m, &self.one.addr.to_string()).await;
        (m, o)
    }
}

/// A daemon that moves quickly, registered with the nodes `servers`.
async fn user_of(root: &Path, name: &str, servers: &str, srv: &Server) -> Daemon {
    let d = Daemon::start_with_env(root, name, &quick_node_moves()).await;
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
    let nodes = TwoNodes::start_with(|_| {}).await;
    let (one, two) = (&nodes.one, &nodes.two);
    let (alice, bob) = nodes.users("alice", "bob").await;

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

    let by_text = received(&bob, "@alice").await;
    let history = bob.history("@alice").await;
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

/// How many times each text `from` sent is in `d`'s history of `conv`.
async fn received(d: &Daemon, conv: &str) -> HashMap<String, usize> {
    let mut by_text = HashMap::new();
    for m in d.history(conv).await.into_iter().filter(|m| !m.outgoing) {
        *by_text.entry(m.text).or_default() += 1;
    }
    by_text
}

/// The node stored the message but its answer died with it: the daemon
/// sends it again through the next node under the same idempotency key,
/// and the server (one database behind both) keeps the first copy only.
#[tokio::test]
async fn a_message_whose_answer_was_lost_with_its_node_is_stored_once() {
    let nodes = TwoNodes::start_with(|_| {}).await;
    let (one, two) = (&nodes.one, &nodes.two);
    let (alice, bob) = nodes.users("alice", "bob").await;
    // The request reaches the server; nothing comes back.
    one.cut_down();
    alice.send("@bob", "in flight").await.expect("queued");
    bob.wait_for("@alice", "in flight").await;
    online_at(&alice, &two.addr.to_string()).await;
    alice.wait_outbox_empty().await;
    alice.send("@bob", "after").await.expect("queued");
    bob.wait_for("@alice", "after").await;
    let got = received(&bob, "@alice").await;
    assert_eq!(got.get("in flight"), Some(&1), "{got:?}");
}

/// The node handed out the mail but never heard the acknowledgement: the
/// next node hands it out again and the daemon stores it once.
#[tokio::test]
async fn mail_fetched_but_not_acknowledged_is_fetched_again_and_stored_once() {
    // A silent client is dropped after 2 s (30 s in service), so the lost
    // acknowledgement ends the connection soon.
    let nodes = TwoNodes::start_with(|c| c.idle_timeout = std::time::Duration::from_secs(2)).await;
    let (srv, one, two) = (&nodes.srv, &nodes.one, &nodes.two);
    let (bob, alice) = nodes.users("bob", "alice").await;
    srv.parked_fetches(2).await.unwrap();
    // Answers reach bob; what he sends (the acknowledgement) does not.
    one.cut_up();
    alice.send("@bob", "unacknowledged").await.expect("queued");
    bob.wait_for("@alice", "unacknowledged").await;
    online_at(&bob, &two.addr.to_string()).await;
    alice.send("@bob", "after").await.expect("queued");
    bob.wait_for("@alice", "after").await;
    let got = received(&bob, "@alice").await;
    assert_eq!(got.get("unacknowledged"), Some(&1), "{got:?}");
    eventually("bob's mailbox is empty", || async {
        (srv.queued_mail() == 0).then_some(())
    })
    .await
    .unwrap();
}
