//! End-to-end figures through a real `qpq-server` on loopback and real
//! `qpqd` processes (the `bench` profile build), each beside a baseline
//! measured in the same run:
//!
//! - `latency`: `send` on alice's daemon → bob's subscribed front-end gets the
//!   `message` notification (DM, hybrid suite), one message at a time.
//!   Baseline: the same server path without the daemons — a raw QUIC client
//!   enqueues an MLS ciphertext of the same size and another raw client,
//!   parked in `fetchWait`, gets it.
//! - `add250`: alice adds dave to a 250-member hybrid group; time until
//!   dave's front-end sees `membership joined`, and until it gets a message
//!   alice sends right after `group.add` returns (dave can read). The other
//!   248 members are accounts whose key packages come from the daemon's MLS
//!   engine in this process; they never fetch (they would not change alice's
//!   or dave's work). Baseline: the engine-level add + join at the same size
//!   in this process (no server, no IPC).
//! - `idle-rss`: qpqd's resident memory, idle, logged in with no
//!   conversation (baseline) and then with 100 DMs, one message sent in each.
//! - `actions`: a reaction, an edit and a delete each cost no more than a
//!   message, end to end: per sample alice sends a message (baseline:
//!   `send` → bob's client has the `message` notification), then reacts to
//!   it (`react` → bob's `reaction`), edits it (`edit` → `edit`) and
//!   deletes it for everyone (`delete` → `delete`), interleaved so the four
//!   figures share the run's conditions.
//! - `files`: 100 MiB (`QPQ_BENCH_FILE_MIB` to change) attached by alice
//!   (`attach` → the `transfer` that says `uploaded`) and downloaded by bob
//!   (`download` → `downloaded`, then compared byte for byte), with
//!   `qpq-server` in its own process (build it first: `cargo build --profile
//!   bench -p quicproquo-server`) so its memory is its own; the daemons' and
//!   the server's resident memory sampled every 10 ms, the peak reported
//!   above what each held idle just before. Baseline: one bare quinn stream
//!   each way with the same TLS and transport settings, in this run.
//!
//! `cargo bench -j2 -p quicproquo-daemon --bench e2e [-- latency|add250|idle-rss|actions|files]`
//! Prints its figures; writes nothing.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use quicproquo_daemon::mls::{GroupId, Identity, MlsEngine, Suite};
use quicproquo_protocol::client::Client;
use quicproquo_protocol::ipc::client::Subscription;
use quicproquo_protocol::ipc::methods::{method, GroupMembersParams};
use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::{
    Ciphersuite, ConversationId, ConversationRef, MembershipEvent,
};
use quicproquo_protocol::padding;
use quicproquo_protocol::types::{IdempotencyKey, SessionToken, Username};
use quicproquo_protocol::wire;
use quicproquo_testkit::agent::{first_dm, register_at};
use quicproquo_testkit::bulk::{mib_per_s, BareBulk};
use quicproquo_testkit::server_process::{self, ServerProcess};
use quicproquo_testkit::{wire as kit, TestDaemon as Daemon, TestServer as Server, WAIT};
use rusqlite::Connection;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let rt = quicproquo_testkit::bench::runtime();
    println!(
        "e2e: {} UTC, load average {}",
        now_utc(),
        quicproquo_testkit::bench::load_average()
    );
    if wanted("latency") {
        rt.block_on(latency(50, 1000));
    }
    if wanted("add250") {
        rt.block_on(add_to_large_group(250, 5));
    }
    if wanted("idle-rss") {
        rt.block_on(idle_rss(100));
    }
    if wanted("actions") {
        rt.block_on(actions(20, 300));
    }
    if wanted("files") {
        let mib = std::env::var("QPQ_BENCH_FILE_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        rt.block_on(files(mib));
    }
    println!(
        "e2e: done {} UTC, load average {}",
        now_utc(),
        quicproquo_testkit::bench::load_average()
    );
}

// ----------------------------------------------------------------- latency

async fn latency(warm_up: usize, samples: usize) {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    first_dm(&alice.client, &bob.client, "hello").await.unwrap();
    let mut sub = bob.client.subscribe(None).await.unwrap();

    let text = |i: usize| format!("latency sample {i:06} {}", "x".repeat(100));
    let mut ack = Vec::with_capacity(samples);
    let mut recv = Vec::with_capacity(samples);
    for i in 0..warm_up + samples {
        let t = text(i);
        let t0 = Instant::now();
        alice.send("@bob", &t).await.unwrap();
        let acked = t0.elapsed();
        next_message(&mut sub, &t).await;
        if i >= warm_up {
            ack.push(acked);
            recv.push(t0.elapsed());
        }
    }
    report("latency/qpqd send returned (in the outbox)", &mut ack);
    report(
        "latency/qpqd send -> peer's subscribed client has it",
        &mut recv,
    );

    // Baseline: the server path alone, same server, same payload size.
    let client = Arc::new(srv.client().await);
    let a = Silent::register(&client, "base-a", Suite::Hybrid).await;
    let mut b = Silent::register(&client, "base-b", Suite::Hybrid).await;
    let mut a_engine = a.engine;
    let group = a_engine.create_group(Suite::Hybrid).unwrap();
    // Protocol 2: the group is registered and b added by a commit the
    // server checks; messages then go to the group with enqueueGroup.
    client
        .request(wire::RegisterGroup {
            auth: a.token.clone(),
            group_info: a_engine.group_info(group).unwrap(),
        })
        .await
        .unwrap();
    let kp = b.engine.key_packages(Suite::Hybrid, 1).unwrap();
    let staged = a_engine.add_members(group, &kp).unwrap();
    client
        .request(wire::EnqueueGroup {
            auth: a.token.clone(),
            group: group.as_bytes().to_vec(),
            payload: padding::pad(&staged.commit),
            idempotency_key: IdempotencyKey(rand::random()),
            group_info: Some(staged.group_info.clone()),
            welcome: staged.welcome.as_deref().map(padding::pad),
        })
        .await
        .unwrap();
    a_engine.merge_pending(group).unwrap();
    let receiver = Arc::new(srv.client().await);
    // The Welcome is waiting for b: take it out of the way.
    let waiting = receiver
        .request(wire::Fetch {
            auth: b.token.clone(),
            channel: None,
            limit: 10,
        })
        .await
        .unwrap();
    receiver
        .request(wire::Ack {
            auth: b.token.clone(),
            seqs: waiting.iter().map(|m| m.seq).collect(),
        })
        .await
        .unwrap();
    let mut wake = Vec::with_capacity(samples);
    for i in 0..warm_up + samples {
        let body = padding::pad(&a_engine.encrypt(group, text(i).as_bytes()).unwrap());
        let (r, token) = (Arc::clone(&receiver), b.token.clone());
        let parked = tokio::spawn(async move {
            let list = r
                .request(wire::FetchWait {
                    auth: token.clone(),
                    channel: None,
                    limit: 1,
                    timeout_ms: 10_000,
                })
                .await
                .unwrap();
            let at = Instant::now();
            let seqs = list.iter().map(|m| m.seq).collect();
            r.request(wire::Ack { auth: token, seqs }).await.unwrap();
            (at, list.len())
        });
        // Let the fetchWait reach the server and park.
        tokio::time::sleep(Duration::from_millis(3)).await;
        let t0 = Instant::now();
        client
            .request(wire::EnqueueGroup {
                auth: a.token.clone(),
                group: group.as_bytes().to_vec(),
                payload: body,
                idempotency_key: IdempotencyKey(rand::random()),
                group_info: None,
                welcome: None,
            })
            .await
            .unwrap();
        let (at, n) = parked.await.unwrap();
        assert_eq!(n, 1, "the parked fetchWait got the message");
        if i >= warm_up {
            wake.push(at.saturating_duration_since(t0));
        }
    }
    report(
        "latency/baseline raw enqueueGroup -> parked fetchWait returns (no daemons)",
        &mut wake,
    );
    drop(sub);
}

async fn next_message(sub: &mut Subscription, text: &str) {
    loop {
        match tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap()
        {
            Notification::Message(m) if m.message.text == text => return,
            _ => {}
        }
    }
}

// ------------------------------------------------------------------ add250

async fn add_to_large_group(size: usize, samples: usize) {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, dave] = Daemon::registered(root.path(), &srv, ["alice", "dave"]).await;
    let client = Arc::new(srv.client().await);
    let t = Instant::now();
    let others = Silent::register_many(&client, "m", size - 1, Suite::Hybrid).await;
    println!(
        "add{size}: {} accounts registered with key packages in {:?}",
        others.len(),
        t.elapsed()
    );
    let names: Vec<&str> = others.iter().map(|s| s.name.as_str()).collect();
    let t = Instant::now();
    let conv = alice.create_group("big", &names, Ciphersuite::Hybrid).await;
    println!(
        "add{size}: group.create with {} members (alice + {}) returned in {:?}",
        conv.members.len(),
        names.len(),
        t.elapsed()
    );
    assert_eq!(conv.members.len(), size);
    let conv_ref = ConversationRef::Id(conv.id);
    let mut sub = dave.client.subscribe(None).await.unwrap();
    let (mut returned, mut joined, mut read) = (Vec::new(), Vec::new(), Vec::new());
    for sample in 0..samples {
        let t0 = Instant::now();
        alice
            .client
            .request::<method::GroupAdd>(GroupMembersParams {
                conversation: conv_ref.clone(),
                members: vec!["dave".into()],
            })
            .await
            .unwrap();
        returned.push(t0.elapsed());
        let text = format!("welcome, dave ({sample})");
        alice.send(&conv.id.to_string(), &text).await.unwrap();
        let daves = next_membership(&mut sub, None, MembershipEvent::Joined).await;
        joined.push(t0.elapsed());
        next_message(&mut sub, &text).await;
        read.push(t0.elapsed());
        alice
            .client
            .request::<method::GroupRemove>(GroupMembersParams {
                conversation: conv_ref.clone(),
                members: vec!["dave".into()],
            })
            .await
            .unwrap();
        next_membership(&mut sub, Some(daves), MembershipEvent::Removed).await;
    }
    report(
        &format!("add{size}/group.add returned (commit accepted)"),
        &mut returned,
    );
    report(
        &format!("add{size}/dave's client sees `joined`"),
        &mut joined,
    );
    report(
        &format!("add{size}/dave's client has alice's next message (can read)"),
        &mut read,
    );

    // Baseline: the engine alone, same size, both parties in this process.
    let mut creator = engine("alice");
    let group = creator.create_group(Suite::Hybrid).unwrap();
    let kps: Vec<Vec<u8>> = (0..size - 1)
        .map(|i| {
            engine(&format!("b{i}"))
                .key_packages(Suite::Hybrid, 1)
                .unwrap()
                .remove(0)
        })
        .collect();
    creator.add_members(group, &kps).unwrap();
    creator.merge_pending(group).unwrap();
    let mut bare = Vec::new();
    for _ in 0..samples {
        let mut new = engine("dave");
        let kp = new.key_packages(Suite::Hybrid, 1).unwrap();
        let t0 = Instant::now();
        let staged = creator.add_members(group, &kp).unwrap();
        creator.merge_pending(group).unwrap();
        new.join(&staged.welcome.unwrap()).unwrap();
        bare.push(t0.elapsed());
        remove_dave(&mut creator, group);
    }
    report(
        &format!("add{size}/baseline engine add + merge + join (no server, in-memory)"),
        &mut bare,
    );
}

fn remove_dave(creator: &mut MlsEngine, group: GroupId) {
    use quicproquo_daemon::mls::Who;
    creator
        .remove_members(group, &[Who::Username(Username::parse("dave").unwrap())])
        .unwrap();
    creator.merge_pending(group).unwrap();
}

/// The next `event` (in `conv`, if given: conversation ids are each
/// daemon's own); returns the conversation it happened in.
async fn next_membership(
    sub: &mut Subscription,
    conv: Option<ConversationId>,
    event: MembershipEvent,
) -> ConversationId {
    loop {
        match tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap()
        {
            Notification::Membership(m)
                if m.event == event && conv.is_none_or(|c| c == m.conversation) =>
            {
                return m.conversation
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- idle-rss

async fn idle_rss(conversations: usize) {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice] = Daemon::registered(root.path(), &srv, ["alice"]).await;
    let pid = alice.child.as_ref().unwrap().id().unwrap();
    settle(&alice).await;
    let (base, base_hwm) = rss(pid);
    println!(
        "idle-rss/baseline logged in, 0 conversations: VmRSS {base} KiB, VmHWM {base_hwm} KiB"
    );

    let client = Arc::new(srv.client().await);
    let peers = Silent::register_many(&client, "p", conversations, Suite::Hybrid).await;
    let t = Instant::now();
    for p in &peers {
        alice.dm_open(&p.name).await.unwrap();
        alice
            .send(&format!("@{}", p.name), "one message for the history")
            .await
            .unwrap();
    }
    println!(
        "idle-rss: {conversations} DMs opened and one message sent in each in {:?}",
        t.elapsed()
    );
    assert_eq!(alice.conversations().await.len(), conversations);
    settle(&alice).await;
    let (full, full_hwm) = rss(pid);
    println!(
        "idle-rss/{conversations} conversations: VmRSS {full} KiB ({:.1} MiB), VmHWM {full_hwm} KiB",
        full as f64 / 1024.0
    );
}

/// Waits until the outbox is empty, then 5 s of idleness.
async fn settle(d: &Daemon) {
    d.wait_outbox_empty().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
}

/// (VmRSS, VmHWM) in KiB.
fn rss(pid: u32) -> (u64, u64) {
    (
        server_process::status_kib(pid, "VmRSS:"),
        server_process::status_kib(pid, "VmHWM:"),
    )
}

// ----------------------------------------------------------------- actions

async fn actions(warm_up: usize, samples: usize) {
    use quicproquo_protocol::ipc::methods::{DeleteParams, EditParams, ReactParams};
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    first_dm(&alice.client, &bob.client, "hello").await.unwrap();
    let mut sub = bob.client.subscribe(None).await.unwrap();
    let dm = ConversationRef::Dm("bob".into());
    let (mut send, mut react, mut edit, mut delete) = (
        Vec::with_capacity(samples),
        Vec::with_capacity(samples),
        Vec::with_capacity(samples),
        Vec::with_capacity(samples),
    );
    for i in 0..warm_up + samples {
        let text = format!("action sample {i:06} {}", "x".repeat(100));
        let t0 = Instant::now();
        let m = alice.send("@bob", &text).await.unwrap();
        next_message(&mut sub, &text).await;
        let sent = t0.elapsed();

        let params = ReactParams {
            conversation: dm.clone(),
            id: m.id,
            emoji: "\u{1F44D}".into(),
            remove: false,
        };
        let reacted = timed(
            &mut sub,
            alice.client.request::<method::React>(params),
            |n| matches!(n, Notification::Reaction(r) if r.id == m.id),
        )
        .await;
        let params = EditParams {
            conversation: dm.clone(),
            id: m.id,
            text: format!("{text} (edited)"),
        };
        let edited = timed(
            &mut sub,
            alice.client.request::<method::Edit>(params),
            |n| matches!(n, Notification::Edit(e) if e.id == m.id),
        )
        .await;
        let params = DeleteParams {
            conversation: dm.clone(),
            id: m.id,
            for_me: false,
        };
        let deleted = timed(
            &mut sub,
            alice.client.request::<method::Delete>(params),
            |n| matches!(n, Notification::Delete(d) if d.id == m.id),
        )
        .await;
        if i >= warm_up {
            send.push(sent);
            react.push(reacted);
            edit.push(edited);
            delete.push(deleted);
        }
    }
    report(
        "actions/baseline send -> peer's client has the `message`",
        &mut send,
    );
    report(
        "actions/react -> peer's client has the `reaction`",
        &mut react,
    );
    report("actions/edit -> peer's client has the `edit`", &mut edit);
    report(
        "actions/delete -> peer's client has the `delete`",
        &mut delete,
    );
}

/// From the start of `call` until the first notification `is` picks.
async fn timed<T>(
    sub: &mut Subscription,
    call: impl std::future::Future<Output = Result<T, quicproquo_protocol::ipc::client::CallError>>,
    is: impl Fn(&Notification) -> bool,
) -> Duration {
    let t0 = Instant::now();
    call.await.unwrap();
    loop {
        let n = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap()
            .unwrap();
        if is(&n) {
            return t0.elapsed();
        }
    }
}

// ------------------------------------------------------------------ helpers

/// An account whose MLS work happens in this process: it registers, logs in
/// and uploads one key package, then never fetches.
struct Silent {
    name: String,
    token: SessionToken,
    engine: MlsEngine,
}

impl Silent {
    async fn register(client: &Client, name: &str, suite: Suite) -> Silent {
        let account = kit::register(client, name).await;
        let token = account.session.token.clone();
        let mut engine = MlsEngine::new(
            Connection::open_in_memory().unwrap(),
            Identity::from_seed(account.username.clone(), &account.signing.to_bytes()),
        )
        .unwrap();
        let packages = engine.key_packages(suite, 1).unwrap();
        client
            .request(wire::UploadKeyPackages {
                auth: token.clone(),
                packages,
                last_resort: None,
            })
            .await
            .unwrap();
        Silent {
            name: name.into(),
            token,
            engine,
        }
    }

    /// `n` accounts named `{prefix}000`…, a few at a time (Argon2id runs here).
    async fn register_many(
        client: &Arc<Client>,
        prefix: &str,
        n: usize,
        suite: Suite,
    ) -> Vec<Silent> {
        let mut out = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(4) {
            let mut set = tokio::task::JoinSet::new();
            for &i in chunk {
                let (c, name) = (Arc::clone(client), format!("{prefix}{i:03}"));
                set.spawn(async move { Silent::register(&c, &name, suite).await });
            }
            while let Some(s) = set.join_next().await {
                out.push(s.unwrap());
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

fn engine(name: &str) -> MlsEngine {
    let seed: [u8; 32] = rand::random();
    MlsEngine::new(
        Connection::open_in_memory().unwrap(),
        Identity::from_seed(Username::parse(name).unwrap(), &seed),
    )
    .unwrap()
}

/// Prints n, p50, p90, p99 and max.
fn report(what: &str, xs: &mut [Duration]) {
    xs.sort();
    let q = |p: f64| xs[((xs.len() as f64 * p).ceil() as usize).clamp(1, xs.len()) - 1];
    println!(
        "{what}: n={} p50={:?} p90={:?} p99={:?} max={:?}",
        xs.len(),
        q(0.50),
        q(0.90),
        q(0.99),
        xs[xs.len() - 1]
    );
}

fn now_utc() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%H:%M:%S"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    out
}

// ------------------------------------------------------------------- files

async fn files(mib: usize) {
    use quicproquo_protocol::ipc::methods::{AttachParams, DownloadParams};
    use quicproquo_protocol::ipc::values::TransferState;
    let bytes = mib << 20;

    // Baseline first, while nothing else runs.
    let bare = BareBulk::start();
    let conn = bare.connect().await;
    bare.upload(&conn, 8 << 20).await;
    let bare_up = bare.upload(&conn, bytes).await;
    let bare_down = bare.download(&conn, bytes).await;
    drop(conn);
    println!(
        "files/baseline bare quinn, one stream: up {:.1} MiB/s, down {:.1} MiB/s",
        mib_per_s(bytes, bare_up),
        mib_per_s(bytes, bare_down)
    );

    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&server_process::binary(), data.path(), None, "").await;
    let root = tempfile::tempdir().unwrap();
    let (alice, bob) = (
        Daemon::start(root.path(), "alice").await,
        Daemon::start(root.path(), "bob").await,
    );
    for d in [&alice, &bob] {
        register_at(
            &d.client,
            &server.addr.to_string(),
            server.fingerprint,
            &d.name,
        )
        .await
        .unwrap();
    }
    let dm = first_dm(&alice.client, &bob.client, "a file is coming")
        .await
        .unwrap();
    let file = root.path().join("payload.bin");
    write_file(&file, bytes);
    let mut alice_sub = alice.client.subscribe(None).await.unwrap();
    let mut bob_sub = bob.client.subscribe(None).await.unwrap();
    settle(&alice).await;
    let pids = [
        ("alice's qpqd", alice.child.as_ref().unwrap().id().unwrap()),
        ("bob's qpqd", bob.child.as_ref().unwrap().id().unwrap()),
        ("qpq-server", server.pid),
    ];
    let idle: Vec<u64> = pids.iter().map(|(_, p)| rss(*p).0).collect();
    let (stop, peaks) = sample_rss(pids.iter().map(|(_, p)| *p).collect());

    let t0 = Instant::now();
    let sent = alice
        .client
        .request::<method::Attach>(AttachParams {
            conversation: ConversationRef::Id(dm.id),
            path: file.to_str().unwrap().to_owned(),
            caption: String::new(),
            name: None,
            content_type: None,
            confirm_changed_keys: false,
            reply_to: None,
        })
        .await
        .unwrap();
    let spooled = t0.elapsed();
    transfer_end(&mut alice_sub, sent.id, TransferState::Uploaded).await;
    let up = t0.elapsed();
    // Bob has the message before he can ask for its file.
    loop {
        match tokio::time::timeout(WAIT, bob_sub.next())
            .await
            .unwrap()
            .unwrap()
        {
            Notification::Message(m) if m.message.id == sent.id => break,
            _ => {}
        }
    }
    let into = root.path().join("downloaded.bin");
    let t1 = Instant::now();
    bob.client
        .request::<method::Download>(DownloadParams {
            conversation: ConversationRef::parse("@alice").unwrap(),
            id: sent.id,
            path: Some(into.to_str().unwrap().to_owned()),
            overwrite: false,
        })
        .await
        .unwrap();
    transfer_end(&mut bob_sub, sent.id, TransferState::Downloaded).await;
    let down = t1.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peaks = peaks.await.unwrap();
    assert!(
        same_bytes(&file, &into),
        "bob's copy differs from alice's file"
    );

    println!(
        "files/upload {mib} MiB: attach returned (encrypted into the spool) after {spooled:?}; \
         uploaded after {up:?} = {:.1} MiB/s = {:.2}x bare quinn",
        mib_per_s(bytes, up),
        bare_up.as_secs_f64() / up.as_secs_f64()
    );
    println!(
        "files/download {mib} MiB: downloaded and checked after {down:?} = {:.1} MiB/s = {:.2}x bare quinn",
        mib_per_s(bytes, down),
        bare_down.as_secs_f64() / down.as_secs_f64()
    );
    for (((what, _), idle), peak) in pids.iter().zip(idle).zip(peaks) {
        println!(
            "files/rss {what}: idle {idle} KiB, peak {peak} KiB, +{:.1} MiB",
            peak.saturating_sub(idle) as f64 / 1024.0
        );
    }
    server.stop().await;
}

/// `bytes` of incompressible-looking content (a xorshift stream).
fn write_file(path: &std::path::Path, bytes: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut piece = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for b in piece.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        let n = left.min(piece.len());
        out.write_all(&piece[..n]).unwrap();
        left -= n;
    }
    out.flush().unwrap();
}

fn same_bytes(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::io::Read;
    let (mut a, mut b) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        if n == 0 {
            return b.read(&mut y).unwrap() == 0;
        }
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
    }
}

/// Waits for the `transfer` notification that ends `id`'s transfer in
/// `state` (panics on another end: the figure would be meaningless).
async fn transfer_end(
    sub: &mut Subscription,
    id: quicproquo_protocol::ipc::values::MessageId,
    state: quicproquo_protocol::ipc::values::TransferState,
) {
    use quicproquo_protocol::ipc::values::TransferState as S;
    loop {
        match tokio::time::timeout(Duration::from_secs(600), sub.next())
            .await
            .unwrap()
            .unwrap()
        {
            Notification::Transfer(t) if t.id == id && t.state == state => return,
            Notification::Transfer(t)
                if t.id == id && matches!(t.state, S::Failed | S::Corrupt | S::Expired) =>
            {
                panic!("the transfer ended {:?}: {:?}", t.state, t.error)
            }
            _ => {}
        }
    }
}

/// Samples each pid's VmRSS every 10 ms until `stop`; the peaks, in KiB.
fn sample_rss(
    pids: Vec<u32>,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<Vec<u64>>,
) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut peaks = vec![0; pids.len()];
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            for (peak, pid) in peaks.iter_mut().zip(&pids) {
                *peak = (*peak).max(rss(*pid).0);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peaks
    });
    (stop, task)
}
