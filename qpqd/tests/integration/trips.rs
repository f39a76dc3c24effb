//! The agent's flows held to their budget of core-thread trips (each trip is
//! a hop to the thread that owns the database and the MLS state, and each
//! write trip an fsync). Agents run in this process so the test can read
//! their trip counters.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quicproquo_daemon::agent::Agent;
use quicproquo_protocol::ipc::methods::GroupCreateParams;
use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::{
    Ciphersuite, ConversationRef, DeliveryState, MembershipEvent,
};
use quicproquo_testkit::{agent::register, InProcessDaemon};
use tokio::sync::broadcast;

use crate::harness::Server;

/// An agent in this process, registered on `srv`.
async fn agent(root: &Path, srv: &Server, name: &str) -> (InProcessDaemon, Arc<Agent>) {
    let d = InProcessDaemon::start(&root.join(name), &format!("{name} passphrase"))
        .await
        .unwrap();
    register(&d.client().await.unwrap(), srv, name)
        .await
        .unwrap();
    let agent = Arc::clone(d.agent());
    (d, agent)
}

async fn next(rx: &mut broadcast::Receiver<Notification>) -> Notification {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a notification in time")
        .unwrap()
}

/// Sending: at most three trips per message (queue it; encrypt it with its
/// recipients' channels; record it sent and look at the next). The old agent
/// took eleven for one DM message. Receipts (DMs only) would add trips of
/// their own, so the burst goes to a group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_costs_at_most_three_core_trips_per_message() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let (mut alice_daemon, alice) = agent(root.path(), &srv, "alice").await;
    let (mut bob_daemon, bob) = agent(root.path(), &srv, "bob").await;
    let (_, mut alice_events) = alice.subscribe().await.unwrap();
    alice
        .group_create(GroupCreateParams {
            name: "team".into(),
            members: vec!["bob".into()],
            ciphersuite: Ciphersuite::Hybrid,
        })
        .await
        .unwrap();
    // Bob joins and re-keys (his leaf came from a published key package);
    // once alice has processed that commit the group is quiet.
    loop {
        if let Notification::Membership(m) = next(&mut alice_events).await {
            if m.event == MembershipEvent::Rekeyed && m.members == ["bob"] {
                break;
            }
        }
    }
    let team = ConversationRef::parse("team").unwrap();
    let (_, mut bob_events) = bob.subscribe().await.unwrap();
    const N: u64 = 20;
    let before = alice.core_trips();
    let bob_before = bob.core_trips();
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(
            alice
                .send(&team, &format!("message {i}"), false)
                .await
                .unwrap()
                .id,
        );
    }
    let mut sent = 0;
    while sent < N {
        if let Notification::Delivery(d) = next(&mut alice_events).await {
            if d.state == DeliveryState::Sent && ids.contains(&d.id) {
                sent += 1;
            }
        }
    }
    let trips = alice.core_trips() - before;
    assert!(
        trips <= 3 * N,
        "{trips} core trips to send {N} messages (budget {})",
        3 * N
    );
    // Bob has them all, in order.
    let mut received = Vec::new();
    while received.len() < N as usize {
        if let Notification::Message(m) = next(&mut bob_events).await {
            if !m.message.outgoing {
                received.push(m.message.text);
            }
        }
    }
    let want: Vec<String> = (0..N).map(|i| format!("message {i}")).collect();
    assert_eq!(received, want);
    // For the record (`--nocapture`): how many trips each side took.
    eprintln!(
        "core trips: alice sent {N} messages in {trips}; bob received them in {}",
        bob.core_trips() - bob_before
    );
    for d in [&mut alice_daemon, &mut bob_daemon] {
        d.stop().await;
    }
}
