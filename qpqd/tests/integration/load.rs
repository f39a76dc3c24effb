//! qpqd under heavy use (issue 13, items 2–4): answers that always fit
//! whatever a peer sends, memory bounded per connection whatever a client
//! does (a raw client that never reads), and the `subscribe` backlog paged.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use quicproquo_protocol::ipc::methods::{method, HistoryParams, SearchParams};
use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::{Ciphersuite, ConversationRef, Limit, Seq};
use quicproquo_protocol::ipc::MAX_REPLY_BYTES;
use quicproquo_protocol::limits::MAX_MESSAGE_TEXT_BYTES;
use serde_json::Value;

use crate::harness::{paths_for, Daemon, Server};

/// A message text of the maximum size whose JSON is twice as long: every
/// character after `tag` is one JSON must escape (`"` or `\`).
fn worst(tag: &str) -> String {
    let mut t = format!("{tag} ");
    while t.len() + 2 <= MAX_MESSAGE_TEXT_BYTES {
        t.push_str("\"\\");
    }
    t
}

/// qpqd's resident memory, in KiB.
fn rss_kib(d: &Daemon) -> u64 {
    let pid = d.child.as_ref().and_then(|c| c.id()).expect("qpqd runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A front-end speaking the protocol by hand: it reads only when told to.
struct Raw(BufReader<UnixStream>);

impl Raw {
    fn connect(d: &Daemon) -> Raw {
        let stream = UnixStream::connect(paths_for(&d.home).socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut raw = Raw(BufReader::new(stream));
        raw.send(r#"{"jsonrpc":"2.0","id":0,"method":"hello","params":{"client":"raw","client_version":"0","protocol":1}}"#);
        assert!(raw.line().expect("hello answered")["result"].is_object());
        raw
    }

    fn send(&mut self, line: &str) {
        self.0.get_mut().write_all(line.as_bytes()).unwrap();
        self.0.get_mut().write_all(b"\n").unwrap();
    }

    /// The next line, `None` at the end of the connection.
    fn line(&mut self) -> Option<Value> {
        let mut out = String::new();
        match self.0.read_line(&mut out) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))),
            Err(e) => panic!("reading from qpqd: {e}"),
        }
    }
}

/// alice alone with a group of her own holding `n` worst-case messages.
async fn alice_with_big_messages(root: &std::path::Path, srv: &Server, n: usize) -> Daemon {
    let [alice] = Daemon::registered(root, srv, ["alice"]).await;
    alice.create_group("solo", &[], Ciphersuite::Classic).await;
    for i in 0..n {
        alice
            .send("solo", &worst(&format!("big{i}")))
            .await
            .unwrap();
    }
    alice
}

/// Item 2: a peer's maximum-size messages, doubled by JSON escaping, once
/// made `history` (and `search`) answers longer than the 1 MiB line limit:
/// the client dropped them and the conversation could not be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_make_history_search_or_the_backlog_too_long_to_read() {
    const N: usize = 20;
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    bob.dm_open("alice").await.unwrap();
    let sent: Vec<String> = (0..N).map(|i| worst(&format!("needle{i}"))).collect();
    for t in &sent {
        bob.send("@alice", t).await.unwrap();
    }

    // The backlog from the beginning: every message, whole.
    let mut sub = alice.client.subscribe(Some(Seq(0))).await.unwrap();
    let mut got = Vec::new();
    while got.len() < N {
        match tokio::time::timeout(Duration::from_secs(60), sub.next())
            .await
            .expect("bob's messages arrive")
            .unwrap()
        {
            Notification::Message(m) if m.message.sender == "bob" => got.push(m.message.text),
            _ => {}
        }
    }
    assert_eq!(got, sent);

    // One `history` answer: it fits, holding as many as fit.
    let dm = ConversationRef::parse("@bob").unwrap();
    let page = alice
        .client
        .request::<method::History>(HistoryParams {
            conversation: dm.clone(),
            before: None,
            limit: Limit::new(50).unwrap(),
        })
        .await
        .expect("history answers whatever the messages hold");
    assert!(
        !page.is_empty() && page.len() < N,
        "{} messages",
        page.len()
    );
    assert!(serde_json::to_vec(&page).unwrap().len() <= MAX_REPLY_BYTES);
    assert_eq!(page.last().unwrap().text, sent[N - 1], "the newest first");
    // Paging on reads them all, in order.
    let all: Vec<String> = alice
        .history("@bob")
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(all, sent);

    // Search: one answer fits; paging on finds every match once.
    let found = alice
        .client
        .request::<method::Search>(SearchParams {
            query: "needle".into(),
            conversation: None,
            limit: Limit::new(50).unwrap(),
            offset: 0,
        })
        .await
        .expect("search answers whatever the messages hold");
    assert!(!found.is_empty() && found.len() < N);
    let mut found: Vec<String> = alice
        .client
        .search_pages("needle", None, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    found.sort();
    let mut want = sent.clone();
    want.sort();
    assert_eq!(found, want);
}

/// Item 3: a client that sends `history` requests and never reads once took
/// qpqd from 19 MB to 6 GB; now the daemon stops reading it once 4 MiB of
/// answers wait, and serves everyone else meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_cannot_grow_the_daemon() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let alice = alice_with_big_messages(root.path(), &srv, 8).await;
    let idle = rss_kib(&alice);
    let mut raw = Raw::connect(&alice);
    let request = r##"{"jsonrpc":"2.0","id":1,"method":"history","params":{"conversation":"solo","limit":50}}"##;
    let mut stream = raw.0.get_mut().try_clone().unwrap();
    // The writer stops when the daemon stops reading (its write blocks).
    stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let writer = std::thread::spawn(move || {
        let line = format!("{request}\n").repeat(1000);
        for _ in 0..100 {
            if stream.write_all(line.as_bytes()).is_err() {
                return true;
            }
        }
        false
    });
    let bound = 64 * 1024;
    let mut peak = idle;
    while !writer.is_finished() {
        peak = peak.max(rss_kib(&alice));
        assert!(
            peak < idle + bound,
            "qpqd grew from {idle} KiB to {peak} KiB for one connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        writer.join().unwrap(),
        "qpqd stopped reading the connection"
    );
    peak = peak.max(rss_kib(&alice));
    assert!(peak < idle + bound, "{idle} KiB idle, {peak} KiB peak");
    // Everyone else is served meanwhile.
    let started = Instant::now();
    alice.history("solo").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    // The stalled client still gets its answers once it reads.
    let first = raw.line().expect("an answer");
    assert!(first["result"].is_array(), "{first}");
}

/// Item 3: a subscriber that does not read is disconnected, told why, and
/// resumes from the last sequence number it saw, losing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_cannot_keep_up_is_disconnected_with_a_reason() {
    const N: usize = 64;
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let alice = alice_with_big_messages(root.path(), &srv, 0).await;
    let mut raw = Raw::connect(&alice);
    raw.send(r#"{"jsonrpc":"2.0","id":1,"method":"subscribe"}"#);
    assert!(raw.line().unwrap()["result"]["seq"].is_u64());
    for i in 0..N {
        alice
            .send("solo", &worst(&format!("big{i}")))
            .await
            .unwrap();
    }
    let (mut last, mut lines) = (0, Vec::new());
    while let Some(v) = raw.line() {
        if let Some(seq) = v["params"]["seq"].as_u64() {
            last = seq;
        }
        lines.push(v);
    }
    let end = lines.last().expect("lines before the end");
    assert_eq!(end["error"]["code"], -32012, "{end}");
    assert!(end["id"].is_null(), "{end}");
    assert!(
        end["error"]["message"].as_str().unwrap().contains("since"),
        "{end}"
    );
    let shown = lines.iter().filter(|v| v["method"] == "message").count();
    assert!(shown < N, "all {shown} came: it was not behind");
    // Resuming from the last seen: the rest, once each.
    let mut sub = alice.client.subscribe(Some(Seq(last))).await.unwrap();
    let mut rest = 0;
    while shown + rest < N {
        if let Notification::Message(_) = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .expect("the rest")
            .unwrap()
        {
            rest += 1;
        }
    }
}

/// Item 4: a `since` past the newest sequence number was passed to SQL as
/// −1 and replayed the whole log; it now replays nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_past_the_newest_replays_nothing() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let alice = alice_with_big_messages(root.path(), &srv, 0).await;
    alice.send("solo", "before").await.unwrap();
    let mut raw = Raw::connect(&alice);
    raw.send(
        r#"{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"since":18446744073709551615}}"#,
    );
    let latest = raw.line().unwrap()["result"]["seq"].as_u64().unwrap();
    assert!(latest > 0);
    alice.send("solo", "after").await.unwrap();
    // The first notification is a new one, not a replay.
    let first = raw.line().unwrap();
    assert!(first["params"]["seq"].as_u64().unwrap() > latest, "{first}");
}

/// Not a test: qpqd's resident memory idle and under the loads of items 3
/// and 4, for BENCHMARKS.md (`cargo test -p quicproquo-daemon --test
/// integration peak_rss -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn peak_rss_under_load() {
    use quicproquo_protocol::ipc::methods::NoParams;
    const LOGGED: usize = 300;
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let mut alice = alice_with_big_messages(root.path(), &srv, LOGGED).await;
    alice.wait_outbox_empty().await;

    // Item 4: six subscribers from the beginning of a log of LOGGED 64 KiB
    // messages, never reading; `status` meanwhile. A fresh process each.
    alice.restart().await;
    let idle4 = rss_kib(&alice);
    let mut peak4 = idle4;
    let mut subs = Vec::new();
    for _ in 0..6 {
        let mut raw = Raw::connect(&alice);
        raw.send(r#"{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"since":0}}"#);
        subs.push(raw);
    }
    let mut slowest_status = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        peak4 = peak4.max(rss_kib(&alice));
        let started = Instant::now();
        alice
            .client
            .request::<method::Status>(NoParams {})
            .await
            .unwrap();
        slowest_status = slowest_status.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(subs);

    // Item 3: ten connections sending `history` requests, never reading.
    alice.restart().await;
    let idle3 = rss_kib(&alice);
    let mut peak3 = idle3;
    let mut raws = Vec::new();
    for _ in 0..10 {
        let mut raw = Raw::connect(&alice);
        raw.0
            .get_mut()
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let line = r##"{"jsonrpc":"2.0","id":1,"method":"history","params":{"conversation":"solo","limit":500}}"##;
        for i in 0..20_000 {
            if raw
                .0
                .get_mut()
                .write_all(format!("{line}\n").as_bytes())
                .is_err()
            {
                break;
            }
            if i % 100 == 0 {
                peak3 = peak3.max(rss_kib(&alice));
            }
        }
        raws.push(raw);
    }
    peak3 = peak3.max(rss_kib(&alice));
    println!(
        "qpqd RSS (KiB): item 4, 6 subscribers since 0 over {LOGGED} x 64 KiB never reading: \
         idle {idle4}, peak {peak4} (+{}), slowest status meanwhile {slowest_status:?}; \
         item 3, 10 connections sending history (limit 500) never reading: idle {idle3}, \
         peak {peak3} (+{})",
        peak4 - idle4,
        peak3 - idle3,
    );
}
