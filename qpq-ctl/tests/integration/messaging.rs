//! DMs: `dm`, `send` from an argument and from stdin, `recv` once and
//! followed (also across a daemon restart), `history --limit`, `search`,
//! `verify`, and a reader that goes away.

use serde_json::Value;

use crate::harness::{eventually, next_json, terminate, texts, Server, User};

const MULTILINE: &str =
    "first line\n\n  indented — ünïcödé, 世界, 👋🏽, שלום, e\u{301}\n\"quoted\" \\ and $HOME";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_send_from_argument_and_stdin_and_recv_exactly_that() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let alice = User::new(root.path(), "alice");
    let bob = User::new(root.path(), "bob");
    let registered = alice.register(&srv).await;
    assert_eq!(registered["username"], "alice");
    bob.register(&srv).await;
    let me = alice.json(&["whoami"]).await;
    assert_eq!(me["username"], "alice");
    assert_eq!(me["identity"], registered["identity"]);
    // `status` names the node the daemon is connected to.
    alice.wait_online().await;
    let st = alice.ok(&["status"]).await;
    let node = srv.addr.to_string();
    assert!(
        st.lines()
            .any(|l| l.starts_with("node:") && l.trim_end().ends_with(&node)),
        "{st}"
    );

    let dm = alice.json(&["dm", "bob"]).await;
    assert_eq!(dm["kind"], "dm");
    assert_eq!(
        alice.json(&["dm", "bob"]).await["id"],
        dm["id"],
        "dm opens the same conversation every time"
    );

    // bob follows before anything is sent.
    let (mut follow, mut lines) = bob.spawn(&["recv", "--follow", "--json"]);

    let sent = alice.json(&["send", "@bob", "hello bob"]).await;
    assert_eq!(sent["text"], "hello bob");
    assert_eq!(sent["outgoing"], true);
    assert_eq!(sent["conversation"], dm["id"]);
    alice
        .run_stdin(&["send", "@bob"], Some(format!("{MULTILINE}\n").as_bytes()))
        .await
        .expect(0);
    alice
        .run_stdin(
            &["send", dm["id"].as_str().unwrap(), "-"],
            Some(b"from a pipe, by id\r\n"),
        )
        .await
        .expect(0);

    let mut got = Vec::new();
    for _ in 0..3 {
        let m = next_json(&mut lines).await;
        for key in ["conversation", "id", "sender", "timestamp", "text", "seq"] {
            assert!(!m[key].is_null(), "{key} missing in {m}");
        }
        assert_eq!(m["sender"], "alice");
        // qpqd names a DM it joined `group-<hex>` until the creator's
        // `meta` message arrives, which can come after the first texts.
        let name = m["conversation_name"].as_str().unwrap();
        assert!(name == "@alice" || name.starts_with("group-"), "{m}");
        assert_eq!(m["outgoing"], false);
        got.push(m);
    }
    assert_eq!(
        got.iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["hello bob", MULTILINE, "from a pipe, by id"]
    );
    assert_eq!(got[0]["id"], sent["id"], "ids are the same on both sides");
    // Nothing else came in between: the next line is the next message, and
    // once bob's daemon knows the DM's name, the stream shows it.
    eventually("bob's daemon names the DM", || async {
        bob.run(&["members", "@alice"]).await.code == 0
    })
    .await;
    alice.ok(&["send", "@bob", "marker"]).await;
    let marker = next_json(&mut lines).await;
    assert_eq!(marker["text"], "marker");
    assert_eq!(marker["conversation_name"], "@alice");
    // bob's own messages are not "received".
    bob.ok(&["send", "@alice", "from bob"]).await;
    alice.wait_for_text("@bob", "from bob").await;
    alice.ok(&["send", "@bob", "marker 2"]).await;
    assert_eq!(next_json(&mut lines).await["text"], "marker 2");
    assert_eq!(
        terminate(&mut follow).await,
        0,
        "SIGTERM ends --follow with success"
    );

    // The followed messages moved the cursor: a plain recv has nothing new,
    // then exactly what came after.
    assert_eq!(bob.json(&["recv"]).await, Value::Array(vec![]));
    alice.ok(&["send", "@bob", "after the follow"]).await;
    bob.wait_for_text("@alice", "after the follow").await;
    let batch = bob.json(&["recv"]).await;
    assert_eq!(texts(&batch), ["after the follow"]);
    assert_eq!(bob.json(&["recv"]).await, Value::Array(vec![]));
    let people = bob
        .ok(&["recv", "--since", "0", "--conversation", "@alice"])
        .await;
    assert!(people.contains("alice  hello bob"), "{people}");
    assert!(people.contains("  indented — ünïcödé"), "{people}");

    // --since replays without touching the cursor, seq strictly increasing.
    let all = bob.json(&["recv", "--since", "0"]).await;
    assert_eq!(
        texts(&all),
        [
            "hello bob",
            MULTILINE,
            "from a pipe, by id",
            "marker",
            "marker 2",
            "after the follow"
        ]
    );
    let seqs: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let after = bob.json(&["recv", "--since", &seqs[3].to_string()]).await;
    assert_eq!(texts(&after), ["marker 2", "after the follow"]);
    assert_eq!(bob.json(&["recv"]).await, Value::Array(vec![]));

    // history --limit: the latest N, oldest first, own messages included.
    let last2 = alice.json(&["history", "@bob", "--limit", "2"]).await;
    assert_eq!(texts(&last2), ["marker 2", "after the follow"]);
    let table = alice.ok(&["history", "@bob", "--limit", "3"]).await;
    let lines_: Vec<&str> = table.lines().collect();
    assert_eq!(lines_.len(), 3, "{table}");
    assert!(lines_[0].ends_with("from bob"), "{table}");

    // search finds across conversations, in both output forms.
    let found = bob.json(&["search", "pipe"]).await;
    assert_eq!(texts(&found), ["from a pipe, by id"]);
    assert_eq!(found[0]["conversation_name"], "@alice");
    let found = bob.ok(&["search", "marker", "--limit", "1"]).await;
    assert_eq!(found.lines().count(), 1, "{found}");

    // list shows the DM with its unread count.
    let list = bob.json(&["list"]).await;
    let conv = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "@alice")
        .unwrap();
    assert_eq!(conv["kind"], "dm");
    assert!(conv["unread"].as_u64().unwrap() >= 1, "{conv}");
    let table = bob.ok(&["list"]).await;
    assert!(table.starts_with("ID "), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_survives_a_daemon_restart_losing_and_repeating_nothing() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_with(&bob, "m1").await;

    // --no-autostart: the stream waits for the daemon to come back.
    let (mut follow, mut lines) = bob.spawn(&[
        "--no-autostart",
        "--json",
        "recv",
        "--follow",
        "--since",
        "0",
    ]);
    assert_eq!(next_json(&mut lines).await["text"], "m1");

    let stopped = bob.ok(&["daemon", "stop"]).await;
    assert!(stopped.contains("stopped"), "{stopped}");
    bob.run(&["--no-autostart", "daemon", "status"])
        .await
        .expect(3);
    // Sent while bob's daemon is down: queued on the server.
    alice.ok(&["send", "@bob", "m2"]).await;
    alice.ok(&["send", "@bob", "m3"]).await;
    let started = bob.json(&["daemon", "start"]).await;
    assert_eq!(started["running"], true);
    assert_eq!(started["changed"], true, "{started}");
    alice.ok(&["send", "@bob", "m4"]).await;

    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            next_json(&mut lines).await["text"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(got, ["m2", "m3", "m4"]);

    // And once more with autostart: killed, not stopped; the stream starts
    // the daemon again itself. (The plain recv first skips the backlog:
    // the second stream starts at the cursor.)
    assert_eq!(
        crate::harness::texts(&bob.json(&["recv"]).await),
        ["m1", "m2", "m3", "m4"]
    );
    let (mut follow2, mut lines2) = bob.spawn(&["--json", "recv", "--follow"]);
    alice.ok(&["send", "@bob", "both streams run"]).await;
    assert_eq!(next_json(&mut lines2).await["text"], "both streams run");
    assert_eq!(next_json(&mut lines).await["text"], "both streams run");
    let pid = bob.daemon_pid().unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    alice.ok(&["send", "@bob", "m5"]).await;
    assert_eq!(next_json(&mut lines2).await["text"], "m5");
    assert_eq!(
        next_json(&mut lines).await["text"],
        "m5",
        "the first stream is back too"
    );
    alice.ok(&["send", "@bob", "m6"]).await;
    assert_eq!(next_json(&mut lines).await["text"], "m6");
    assert_eq!(next_json(&mut lines2).await["text"], "m6");
    assert_eq!(terminate(&mut follow).await, 0);
    assert_eq!(terminate(&mut follow2).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_going_away_ends_qpq_ctl_quietly_with_success() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.ok(&["dm", "bob"]).await;
    for text in ["one", "two", "three"] {
        alice.ok(&["send", "@bob", text]).await;
    }
    bob.wait_for_text("@alice", "three").await;
    let all = bob.json(&["recv", "--since", "0"]).await;
    let before_three = all[1]["seq"].as_u64().unwrap();

    let last_only = format!(
        r#"set -o pipefail; "$CTL" --json recv --follow --since {before_three} | head -n 1"#
    );
    for (pipeline, lines) in [
        // head leaves after two of three messages: the next write fails.
        (
            r#"set -o pipefail; "$CTL" recv --follow --since 0 | head -n 2"#,
            2,
        ),
        // head leaves after the last message and nothing more comes:
        // qpq-ctl notices the closed pipe without writing.
        (last_only.as_str(), 1),
        (r#"set -o pipefail; "$CTL" completions bash | head -n 1"#, 1),
        (r#"set -o pipefail; "$CTL" man | head -n 1"#, 1),
    ] {
        let mut cmd = bob.command_for("bash");
        cmd.args(["-c", pipeline]);
        let out = tokio::time::timeout(crate::harness::WAIT, cmd.output())
            .await
            .expect("the pipeline ends")
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(0), "{pipeline}: {stderr}");
        assert_eq!(stderr, "", "{pipeline}: quiet");
        assert_eq!(stdout.lines().count(), lines, "{pipeline}: {stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_gives_the_same_safety_number_on_both_sides() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_with(&bob, "hi").await;

    let a = alice.json(&["verify", "bob"]).await;
    let b = bob.json(&["verify", "alice"]).await;
    assert_eq!(a["safety_number"], b["safety_number"]);
    let number = a["safety_number"].as_str().unwrap();
    let groups: Vec<&str> = number.split(' ').collect();
    assert_eq!(groups.len(), 12, "{number}");
    assert!(groups
        .iter()
        .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit())));
    assert_eq!(a["verified"], false);

    let human = alice.ok(&["verify", "bob"]).await;
    assert!(human.contains(&groups[..4].join(" ")), "{human}");
    assert!(human.contains("qpq-ctl verify bob --confirm"), "{human}");

    // A confirmation bound to a number that is not the current one (the key
    // changed since it was compared) marks nothing: status 11.
    let wrong = "00000 ".repeat(12);
    let refused = alice
        .run(&[
            "verify",
            "bob",
            "--confirm",
            "--safety-number",
            wrong.trim(),
        ])
        .await
        .expect(11);
    assert!(
        refused.stderr.contains("no longer the one you compared"),
        "{}",
        refused.stderr
    );
    assert_eq!(alice.json(&["verify", "bob"]).await["verified"], false);
    let confirmed = alice
        .json(&["verify", "bob", "--confirm", "--safety-number", number])
        .await;
    assert_eq!(confirmed["verified"], true);
    assert_eq!(confirmed["safety_number"], a["safety_number"]);
    eventually("members shows bob verified", || async {
        let members = alice.json(&["members", "@bob"]).await;
        members
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["username"] == "bob" && m["verified"] == true)
    })
    .await;
}

/// `retry` and `discard` act only on a failed message: one that went is
/// invalid input (9) and is left alone, an unknown id is not found (5), a
/// malformed one a usage error (2). (The failed path itself, through the
/// same IPC methods, is in qpqd's outbox tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_and_discard_only_take_a_failed_message() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_with(&bob, "went fine").await;
    let history = alice.json(&["history", "@bob"]).await;
    let id = history[0]["id"].as_str().unwrap().to_owned();
    assert!(history[0].get("failure").is_none(), "{history}");

    for verb in ["retry", "discard"] {
        let run = alice.run(&[verb, &id]).await.expect(9);
        assert!(
            run.stderr.contains("only a failed message"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(
        texts(&alice.json(&["history", "@bob"]).await),
        ["went fine"]
    );
    alice.run(&["retry", &"0".repeat(32)]).await.expect(5);
    alice.run(&["discard", "not-an-id"]).await.expect(2);
}
