//! Catch-up: how fast a daemon that was offline works through its backlog.
//!
//! Ten senders (real `qpqd` processes) each open a DM with bob; bob's daemon
//! stops; the senders send `PER_SENDER` messages each (9,000 in all; the
//! server keeps at most 10,000 per mailbox) and wait until their outboxes are
//! empty. Then bob's daemon starts again and the clock runs from its start
//! until (a) its subscribed front-end has seen every message (each is
//! processed, stored in the history and its notification logged before it is
//! published) and (b) the server's mailbox for bob is empty (acknowledged).
//!
//! Baseline in the same run: the same number of messages decrypted by a bare
//! MLS engine in this process (no storage of history, no server), so a slow
//! machine shows as a slow baseline.
//!
//! `cargo bench -j2 -p quicproquo-daemon --bench catchup [-- SENDERS PER_SENDER]`
//! Prints its figures; writes nothing.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use quicproquo_daemon::mls::{Identity, MlsEngine, Suite};
use quicproquo_protocol::ipc::methods::{method, NoParams};
use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::types::Username;
use quicproquo_testkit::{TestDaemon as Daemon, TestServer as Server};

const WAIT: Duration = Duration::from_secs(120);

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let senders = args.first().copied().unwrap_or(10);
    let per_sender = args.get(1).copied().unwrap_or(900);
    let rt = quicproquo_testkit::bench::runtime();
    println!(
        "catchup: load average {}",
        quicproquo_testkit::bench::load_average()
    );
    rt.block_on(catch_up(senders, per_sender));
    baseline(senders * per_sender);
}

async fn catch_up(senders: usize, per_sender: usize) {
    let total = senders * per_sender;
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let mut bob = Daemon::start(root.path(), "bob").await;
    bob.register(&srv).await;
    let mut from = Vec::new();
    for i in 0..senders {
        let name = format!("sender{i}");
        let d = Daemon::start(root.path(), &name).await;
        d.register(&srv).await;
        d.dm_open("bob").await.unwrap();
        from.push(d);
    }
    for i in 0..senders {
        bob.wait_for_conversation(&format!("@sender{i}")).await;
    }
    let since = bob.client.subscribe(None).await.unwrap().last_seq();

    // Bob goes offline.
    bob.client
        .request::<method::Shutdown>(NoParams {})
        .await
        .unwrap();
    let mut child = bob.child.take().unwrap();
    child.wait().await.unwrap();

    let t = Instant::now();
    let sends = from.iter().map(|d| async move {
        for j in 0..per_sender {
            d.send(
                "@bob",
                &format!("catch-up {} {j:05} {}", d.name, "x".repeat(60)),
            )
            .await
            .unwrap();
        }
    });
    futures_join_all(sends).await;
    for d in &from {
        d.wait_outbox_empty().await;
    }
    println!(
        "catchup: {total} messages queued for bob by {senders} senders in {:.1} s (setup)",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(mailbox_depth(&srv), total, "every message waits for bob");

    let t0 = Instant::now();
    let (child, client) = Daemon::spawn(&bob.home, "bob", Some(&bob.passphrase)).await;
    bob.child = Some(child);
    bob.client = client;
    let mut sub = bob.client.subscribe(Some(since)).await.unwrap();
    let mut seen = 0;
    while seen < total {
        match tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("messages keep arriving")
            .unwrap()
        {
            Notification::Message(m) if !m.message.outgoing => seen += 1,
            _ => {}
        }
    }
    let stored = t0.elapsed();
    while mailbox_depth(&srv) > 0 {
        assert!(t0.elapsed() < WAIT, "bob acknowledges his mail");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acked = t0.elapsed();
    println!(
        "catchup/qpqd start -> {total} messages stored and published: {:.2} s ({:.0} msg/s)",
        stored.as_secs_f64(),
        total as f64 / stored.as_secs_f64()
    );
    println!(
        "catchup/qpqd start -> mailbox empty on the server (acknowledged): {:.2} s ({:.0} msg/s)",
        acked.as_secs_f64(),
        total as f64 / acked.as_secs_f64()
    );
    drop(sub);
}

/// Joins futures without a dependency: they run concurrently on this task.
async fn futures_join_all<F: std::future::Future<Output = ()>>(fs: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Mail waiting on the server, read from its database file.
fn mailbox_depth(srv: &Server) -> usize {
    let db = rusqlite::Connection::open_with_flags(
        srv.config.data_dir.join("qpq.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row("SELECT count(*) FROM mail", [], |r| r.get::<_, i64>(0))
        .unwrap() as usize
}

/// The MLS work alone: one engine encrypts `n` messages, another decrypts
/// them (in memory-backed SQLite, no history).
fn baseline(n: usize) {
    let mut a = engine("base-a");
    let mut b = engine("base-b");
    let group = a.create_group(Suite::Hybrid).unwrap();
    let kp = b.key_packages(Suite::Hybrid, 1).unwrap();
    let staged = a.add_members(group, &kp).unwrap();
    a.merge_pending(group).unwrap();
    b.join(&staged.welcome.unwrap()).unwrap();
    let texts: Vec<Vec<u8>> = (0..n)
        .map(|j| {
            a.encrypt(
                group,
                format!("catch-up {j:05} {}", "x".repeat(60)).as_bytes(),
            )
        })
        .collect::<Result<_, _>>()
        .unwrap();
    let t0 = Instant::now();
    for t in &texts {
        b.process(t).unwrap();
    }
    let took = t0.elapsed();
    println!(
        "catchup/baseline bare openmls decrypt of {n} messages: {:.2} s ({:.0} msg/s)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}

fn engine(name: &str) -> MlsEngine {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    MlsEngine::new(conn, Identity::new(Username::parse(name).unwrap(), key)).unwrap()
}
