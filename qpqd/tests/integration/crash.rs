//! Crashes and signals on the daemon's side of what the README and the book
//! promise: a message is stored before it is acknowledged, so `kill -9`
//! while a burst arrives loses and repeats nothing; SIGTERM and SIGINT stop
//! qpqd cleanly — exit 0, its socket removed, its outbox kept.

use std::sync::atomic::{AtomicUsize, Ordering};

use quicproquo_testkit::agent::eventually;
use rustix::process::{kill_process, Pid, Signal};

use crate::conversations::outbox;
use crate::harness::{paths_for, Daemon, Server};

/// How many messages alice sends in the burst bob is killed during.
const BURST: usize = 30;

fn burst_texts(history: Vec<quicproquo_protocol::ipc::values::Message>) -> Vec<String> {
    history
        .into_iter()
        .map(|m| m.text)
        .filter(|t| t.starts_with("burst "))
        .collect()
}

/// The receiving side of kill -9: bob's daemon dies (SIGKILL) once some but
/// not all of alice's burst has reached his history. What he stored before
/// the kill was acknowledged to the server only after it was stored, and
/// what he had not acknowledged is fetched again after the restart: every
/// message is in his history exactly once, in the order alice sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_a_burst_arrives_loses_and_repeats_nothing() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, mut bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    quicproquo_testkit::agent::first_dm(&alice.client, &bob.client, "hello")
        .await
        .unwrap();

    let sent: Vec<String> = (0..BURST).map(|i| format!("burst {i}")).collect();
    let sent_count = AtomicUsize::new(0);
    let sending = async {
        for text in &sent {
            alice.send("@bob", text).await.unwrap();
            sent_count.fetch_add(1, Ordering::SeqCst);
        }
    };
    let killing = async {
        eventually("the burst starts arriving at bob", || async {
            (!burst_texts(bob.history("@alice").await).is_empty()).then_some(())
        })
        .await
        .unwrap();
        // Waiting on alice's side, not on bob's history (which answers
        // only between two of bob's stores), puts the kill anywhere in
        // bob's fetch–store–acknowledge cycle, mostly inside a store.
        let at_kill = eventually("alice is half way through the burst", || async {
            let n = sent_count.load(Ordering::SeqCst);
            (n >= BURST / 2).then_some(n)
        })
        .await
        .unwrap();
        bob.kill9_and_restart().await;
        at_kill
    };
    let ((), sent_at_kill) = tokio::join!(sending, killing);
    assert!(
        sent_at_kill < BURST,
        "bob was killed after alice had sent all {BURST}: the kill came too late to test anything"
    );

    bob.wait_for("@alice", &sent[BURST - 1]).await;
    assert_eq!(
        burst_texts(bob.history("@alice").await),
        sent,
        "after kill -9 at {sent_at_kill} of {BURST} sent, every message once and in order"
    );
}

/// SIGTERM and SIGINT stop qpqd the way the book says: it exits 0, removes
/// its socket, and what it told a front-end was queued (the server is down,
/// so nothing can leave) is still queued after the restart — and delivered
/// once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_exit_0_remove_the_socket_and_keep_the_outbox() {
    let mut srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [mut alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    quicproquo_testkit::agent::first_dm(&alice.client, &bob.client, "hello")
        .await
        .unwrap();
    alice.wait_outbox_empty().await;
    let socket = paths_for(&alice.home).socket;

    srv.stop().await;
    let mut queued = Vec::new();
    for signal in [Signal::TERM, Signal::INT] {
        let text = format!("queued before {signal:?}");
        alice.send("@bob", &text).await.unwrap();
        queued.push(text);
        assert_eq!(
            outbox(&alice).await,
            queued.len() as u64,
            "queued at the {signal:?}"
        );
        assert!(
            socket.exists(),
            "{} is there while qpqd runs",
            socket.display()
        );

        let mut child = alice.child.take().unwrap();
        let pid = Pid::from_raw(child.id().unwrap() as i32).unwrap();
        kill_process(pid, signal).unwrap();
        let status = tokio::time::timeout(quicproquo_testkit::WAIT, child.wait())
            .await
            .unwrap_or_else(|_| panic!("qpqd did not exit after {signal:?}"))
            .unwrap();
        assert_eq!(
            status.code(),
            Some(0),
            "qpqd's exit after {signal:?}: {status}"
        );
        assert!(
            !socket.exists(),
            "{} is left after {signal:?}",
            socket.display()
        );

        alice.start_again().await;
        assert_eq!(
            outbox(&alice).await,
            queued.len() as u64,
            "the outbox after {signal:?} and a restart"
        );
        let texts: Vec<String> = alice
            .history("@bob")
            .await
            .into_iter()
            .map(|m| m.text)
            .collect();
        for text in &queued {
            assert!(
                texts.contains(text),
                "{text:?} is in alice's history: {texts:?}"
            );
        }
    }

    srv.start_again().await;
    for text in &queued {
        bob.wait_for("@alice", text).await;
    }
}
