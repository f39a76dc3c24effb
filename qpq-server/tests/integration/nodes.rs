//! Several nodes, one database: two `qpq-server`s (this crate's code, in
//! this process, each with its own data directory, port and caches) on one
//! throwaway PostgreSQL behave as one server. Alice uses node A, Bob node
//! B: DMs, a group spread over both, commits racing from both sides, a
//! `fetchWait` on B woken by mail enqueued through A, and a logout on A
//! refusing the token on B. Skipped (a failure in CI) where no PostgreSQL
//! is installed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicproquo_protocol::client::{Client, ClientError, Trust};
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::wire::{Delivery, Request, Response};
use quicproquo_testkit::agent::eventually;
use quicproquo_testkit::mls::{self, Member, HYBRID};
use quicproquo_testkit::{postgres, wire};

use crate::harness::{app_message, idem, Register, TestServer};

/// Two nodes on a new database of the test process's PostgreSQL.
async fn two_nodes(test: &str) -> Option<(TestServer, TestServer)> {
    let pg = postgres::for_test(test)?;
    let url = pg.url(&pg.new_database());
    let a = TestServer::start_on_database(&url).await;
    let b = TestServer::start_on_database(&url).await;
    Some((a, b))
}

fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Server(e)) => e.code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// A fetch of all mail with `auth` through `client`: `Ok` when the session
/// is good there.
async fn fetch_on(
    client: &Client,
    auth: quicproquo_protocol::types::SessionToken,
) -> Result<Response, ClientError> {
    client
        .call(&Request::Fetch {
            auth,
            channel: None,
            limit: 0,
        })
        .await
}

#[tokio::test]
async fn a_dm_through_one_node_wakes_the_fetch_wait_held_on_the_other() {
    let Some((a, b)) =
        two_nodes("a_dm_through_one_node_wakes_the_fetch_wait_held_on_the_other").await
    else {
        return;
    };
    assert_eq!(
        a.fingerprint, b.fingerprint,
        "nodes of one database present one certificate, so a client's pin holds on both"
    );
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let bob_key = bob.identity;

    // Alice's session, made on A, is good on B: one account table.
    let alice_on_b = b.client().await;
    let fetched = fetch_on(&alice_on_b, alice.auth()).await;
    assert!(
        matches!(fetched, Ok(Response::Fetch(ref m)) if m.is_empty()),
        "{fetched:?}"
    );

    let channel = alice.channel_with(&bob).await;
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let answer = bob.fetch_wait(20_000).await;
        (answer, started.elapsed())
    });
    b.parked_fetches(1)
        .await
        .expect("bob's fetchWait is held on B");
    let sent = alice
        .call(Request::Enqueue {
            auth: alice.auth(),
            deliveries: vec![Delivery {
                recipient: bob_key,
                channel: Some(channel),
            }],
            payload: app_message(b"across nodes"),
            idempotency_key: idem(),
        })
        .await;
    assert!(matches!(sent, Ok(Response::Enqueue { .. })), "{sent:?}");
    let (woke, after) = waiting.await.expect("the waiting task");
    match woke {
        Ok(Response::FetchWait(mail)) => assert_eq!(mail.len(), 1, "the DM, across nodes"),
        other => panic!("bob's fetchWait on B answered {other:?}"),
    }
    // The wait was for 20 s: an answer well before is the wake-up's.
    assert!(
        after < Duration::from_secs(15),
        "answered only after {after:?}"
    );
}

#[tokio::test]
async fn a_logout_on_one_node_refuses_the_token_on_the_other_within_a_second() {
    let Some((a, b)) =
        two_nodes("a_logout_on_one_node_refuses_the_token_on_the_other_within_a_second").await
    else {
        return;
    };
    let alice = a.register("alice").await;
    let alice_on_b = b.client().await;
    // B has the session cached now (it is trusted for 30 s without a look-up).
    assert!(fetch_on(&alice_on_b, alice.auth()).await.is_ok());
    assert!(fetch_on(&alice_on_b, alice.auth()).await.is_ok());

    alice
        .client
        .request(quicproquo_protocol::wire::Logout { auth: alice.auth() })
        .await
        .expect("logout on A");
    let logged_out = Instant::now();
    // The bound: B refuses the token within 1 s of the logout's
    // answer. Polled, since B learns of it by the database's notification.
    loop {
        match fetch_on(&alice_on_b, alice.auth()).await {
            Err(ClientError::Server(e)) if e.code == ErrorCode::Unauthenticated => break,
            Ok(_) => assert!(
                logged_out.elapsed() < Duration::from_secs(1),
                "B still honoured the token {:?} after the logout on A",
                logged_out.elapsed()
            ),
            other => panic!("B answered {other:?}"),
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        refused(fetch_on(&a.client().await, alice.auth()).await),
        ErrorCode::Unauthenticated,
        "and A refuses it too"
    );
}

/// Alice (on A) makes a group and adds Bob (on B), then Carol (on B) is
/// added by Bob through B: each node validates against the state the
/// other changed; messages cross in both directions.
#[tokio::test]
async fn a_group_spread_over_two_nodes_is_one_group() {
    let Some((a, b)) = two_nodes("a_group_spread_over_two_nodes_is_one_group").await else {
        return;
    };
    let (on_a, on_b) = (a.client().await, b.client().await);
    let mut alice = Member::register(&on_a, "alice").await;
    let mut bob = Member::register(&on_b, "bob").await;
    let mut carol = Member::register(&on_b, "carol").await;

    alice.create_group(HYBRID, None);
    alice.register_group(&on_a).await.unwrap();
    let add = alice.add(&[bob.key_package(HYBRID)]);
    alice.commit(&on_a, add).await.unwrap();
    bob.join(&bob.take_mail(&on_b).await[0]);

    // A message through A now makes A cache the group at this epoch.
    let hello = alice.encrypt(b"hello from A");
    alice.send(&on_a, &hello, None, None).await.unwrap();
    assert_eq!(
        bob.process(&bob.take_mail(&on_b).await[0]).as_deref(),
        Some(b"hello from A".as_slice())
    );

    // Bob adds Carol through B: the group moves on without A.
    let add = bob.add(&[carol.key_package(HYBRID)]);
    let sent = bob.commit(&on_b, add).await.unwrap();
    assert_eq!(
        mls::delivered(&sent).len(),
        2,
        "alice the commit, carol the Welcome"
    );
    carol.join(&carol.take_mail(&on_b).await[0]);
    assert_eq!(alice.process(&alice.take_mail(&on_a).await[0]), None);
    assert_eq!(alice.epoch(), carol.epoch());

    // Alice, on A, at the epoch B made: A knows it (by the notification or
    // by reading the group again) and fans out to Carol, whom only B added.
    let again = alice.encrypt(b"hello carol");
    let sent = alice.send(&on_a, &again, None, None).await.unwrap();
    let mut to: Vec<_> = sent.members.iter().map(|m| m.member).collect();
    to.sort_unstable_by_key(|k| k.0);
    let mut expected = vec![bob.account.identity, carol.account.identity];
    expected.sort_unstable_by_key(|k| k.0);
    assert_eq!(to, expected);
    assert_eq!(
        carol.process(&carol.take_mail(&on_b).await[0]).as_deref(),
        Some(b"hello carol".as_slice())
    );
}

/// Alice through A and Bob through B commit at the same epoch at the same
/// moment: the database lets exactly one win; the other is told to catch
/// up (E033), does, and the group does not fork.
#[tokio::test]
async fn commits_racing_through_two_nodes_do_not_fork_the_group() {
    let Some((a, b)) = two_nodes("commits_racing_through_two_nodes_do_not_fork_the_group").await
    else {
        return;
    };
    let (on_a, on_b) = (a.client().await, b.client().await);
    let mut alice = Member::register(&on_a, "alice").await;
    let mut bob = Member::register(&on_b, "bob").await;
    alice.create_group(HYBRID, None);
    alice.register_group(&on_a).await.unwrap();
    let add = alice.add(&[bob.key_package(HYBRID)]);
    alice.commit(&on_a, add).await.unwrap();
    bob.join(&bob.take_mail(&on_b).await[0]);

    for round in 0..5 {
        let from_alice = alice.self_update();
        let from_bob = bob.self_update();
        let (ra, rb) = tokio::join!(alice.commit(&on_a, from_alice), bob.commit(&on_b, from_bob));
        // `commit` merged the winner's and discarded the loser's pending commit.
        match (ra, rb) {
            (Ok(_), Err(e)) => {
                assert_eq!(
                    refused::<()>(Err(e)),
                    ErrorCode::StaleCommit,
                    "round {round}"
                );
                assert_eq!(bob.process(&bob.take_mail(&on_b).await[0]), None);
            }
            (Err(e), Ok(_)) => {
                assert_eq!(
                    refused::<()>(Err(e)),
                    ErrorCode::StaleCommit,
                    "round {round}"
                );
                assert_eq!(alice.process(&alice.take_mail(&on_a).await[0]), None);
            }
            (ra, rb) => panic!("round {round}: exactly one commit wins, got {ra:?} and {rb:?}"),
        }
        assert_eq!(
            alice.epoch(),
            bob.epoch(),
            "round {round}: one epoch, no fork"
        );
        let text = format!("round {round}");
        let m = alice.encrypt(text.as_bytes());
        alice.send(&on_a, &m, None, None).await.unwrap();
        assert_eq!(
            bob.process(&bob.take_mail(&on_b).await[0]).as_deref(),
            Some(text.as_bytes()),
            "round {round}: bob reads alice's message of the winning epoch"
        );
    }
}

/// Kill -9 of node A while senders load it: they move to node B, sending
/// again (with the same idempotency key) whatever A never answered. Every
/// answered enqueue is delivered exactly once, and nothing twice. The
/// binaries run as an operator runs them, on one PostgreSQL.
#[tokio::test]
async fn a_node_killed_under_load_loses_and_repeats_nothing() {
    const TEST: &str = "a_node_killed_under_load_loses_and_repeats_nothing";
    let Some(pg) = postgres::for_test(TEST) else {
        return;
    };
    let url = pg.url(&pg.new_database());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node = |dir: &std::path::Path| {
        let mut c = crate::binary::command(dir);
        c.args(["--database", &url]);
        crate::binary::start_command(c)
    };
    let (mut node_a, addr_a, fp_a) = node(dir_a.path()).await;
    let (node_b, addr_b, fp_b) = node(dir_b.path()).await;
    assert_eq!(fp_a, fp_b, "one certificate for the deployment");
    let trust = Trust::Pin(quicproquo_protocol::parse_fingerprint(&fp_a).unwrap());
    let connect = move |addr| {
        let trust = trust.clone();
        async move { Client::connect(addr, "localhost", trust).await }
    };

    // Three senders on A, each with a receiver on B.
    let (on_a, on_b) = (
        connect(addr_a).await.unwrap(),
        connect(addr_b).await.unwrap(),
    );
    let mut pairs = Vec::new();
    for n in 0..3 {
        let sender = wire::register(&on_a, &format!("sender{n}")).await;
        let receiver = wire::register(&on_b, &format!("receiver{n}")).await;
        let channel = wire::first_dm(&on_a, &sender, &receiver).await;
        pairs.push((sender, receiver, channel));
    }

    let answered = Arc::new(AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for (n, (sender, receiver, channel)) in pairs.iter().enumerate() {
        let (auth, to, channel) = (sender.session.token.clone(), receiver.identity, *channel);
        let (answered, connect) = (answered.clone(), connect.clone());
        senders.spawn(async move {
            let mut client = connect(addr_a).await.unwrap();
            let mut on_b = false;
            let mut sent = Vec::new();
            // Until 60 messages went through B after the move.
            let mut after_move = 0;
            for i in 0u32.. {
                assert!(i < 100_000, "sender {n} never moved to node B");
                let req = Request::Enqueue {
                    auth: auth.clone(),
                    deliveries: vec![Delivery {
                        recipient: to,
                        channel: Some(channel),
                    }],
                    payload: app_message(format!("{n}:{i}").as_bytes()),
                    idempotency_key: idem(),
                };
                loop {
                    match client.call(&req).await {
                        Ok(Response::Enqueue { .. }) => break,
                        Ok(other) => panic!("enqueue answered {other:?}"),
                        Err(ClientError::Server(e)) => panic!("enqueue refused: {e:?}"),
                        // A is gone: the same request again, through B.
                        Err(_) if !on_b => {
                            client = connect(addr_b).await.expect("node B answers");
                            on_b = true;
                        }
                        Err(e) => panic!("B failed too: {e}"),
                    }
                }
                sent.push(i);
                answered.fetch_add(1, Ordering::SeqCst);
                if on_b {
                    after_move += 1;
                    if after_move == 60 {
                        return (n, sent);
                    }
                }
            }
            unreachable!("the loop returns")
        });
    }

    // Kill A once it has answered a fair share, mid-load.
    eventually("node A answered 150 enqueues", || async {
        (answered.load(Ordering::SeqCst) >= 150).then_some(())
    })
    .await
    .unwrap();
    node_a.start_kill().expect("kill -9 node A");
    node_a.wait().await.unwrap();

    let mut expected: HashMap<usize, Vec<u32>> = HashMap::new();
    while let Some(done) = senders.join_next().await {
        let (n, sent) = done.expect("a sender");
        expected.insert(n, sent);
    }
    for (n, (_, receiver, _)) in pairs.iter().enumerate() {
        let mut got: Vec<u32> = Vec::new();
        loop {
            let mail = wire::take_mail(&on_b, receiver).await;
            if mail.is_empty() {
                break;
            }
            for m in mail {
                let text = String::from_utf8(m[4..].to_vec()).unwrap();
                let (who, i) = text.split_once(':').unwrap();
                assert_eq!(who, n.to_string(), "mail of another pair");
                got.push(i.parse().unwrap());
            }
        }
        let sent = &expected[&n];
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            got.len(),
            "pair {n}: a message was delivered twice"
        );
        assert_eq!(&sorted, sent, "pair {n}: every answered enqueue, once");
    }
    drop(node_b);
}
