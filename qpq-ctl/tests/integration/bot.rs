//! `examples/qpq-bot.sh`: a bot in a few lines of shell, on `recv --follow
//! --json` and `send`, answering in DMs and groups.

use quicproquo_testkit::skip::skip;
use std::path::Path;

use crate::harness::{eventually, on_path, Server, User, WAIT};

/// Bob's messages in alice's view of `conversation`.
async fn answers(alice: &User, conversation: &str) -> Vec<String> {
    let history = alice
        .json(&["history", conversation, "--limit", "500"])
        .await;
    history
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender"] == "bob")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_bot_answers() {
    if !on_path("jq") {
        skip(
            "the_shell_bot_answers",
            "the example bot needs jq, which is not on PATH",
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/qpq-bot.sh");
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;

    // Asked before the bot runs: answered once it starts (recv's cursor).
    alice.ok(&["dm", "bob"]).await;
    alice.ok(&["send", "@bob", "ping"]).await;

    let mut cmd = bob.command_for("sh");
    cmd.arg(&script).process_group(0);
    let mut bot = cmd.spawn().unwrap();

    eventually("the bot answers ping", || async {
        answers(&alice, "@bob").await == ["pong"]
    })
    .await;
    alice
        .ok(&["send", "@bob", "just chatting, no command"])
        .await;
    alice
        .run_stdin(
            &["send", "@bob"],
            Some("!echo -n two\nlines, ünïcödé 👋🏽".as_bytes()),
        )
        .await
        .expect(0);
    eventually("the bot echoes", || async {
        answers(&alice, "@bob").await.len() == 2
    })
    .await;
    assert_eq!(
        answers(&alice, "@bob").await,
        ["pong", "-n two\nlines, ünïcödé 👋🏽"],
        "nothing for the chat line, the echo verbatim"
    );

    // In a group, the answer goes to the group.
    alice.ok(&["group", "create", "team", "bob"]).await;
    alice.ok(&["send", "team", "ping"]).await;
    eventually("the bot answers in the group", || async {
        answers(&alice, "team").await == ["pong"]
    })
    .await;
    assert_eq!(answers(&alice, "@bob").await.len(), 2, "not in the DM");

    // The bot stops with its process group (qpq-ctl ends with success on
    // SIGTERM; sh and the loop die of it).
    let pgid = rustix::process::Pid::from_raw(bot.id().unwrap() as i32).unwrap();
    rustix::process::kill_process_group(pgid, rustix::process::Signal::TERM).unwrap();
    tokio::time::timeout(WAIT, bot.wait())
        .await
        .unwrap()
        .unwrap();
}
