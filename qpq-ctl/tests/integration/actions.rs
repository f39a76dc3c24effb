//! Issue 17 from the shell: each action taken with qpq-ctl on one member's
//! side is seen on the other's, as a typed line of `recv --follow --json`
//! and in `history`; what only a message's sender may do is refused to the
//! others with status 6; a message deleted for everyone leaves the other
//! member's search; mentions, typing and the disappearing timer.
//!
//! A message is named across members by its id (the same everywhere) and
//! each member's own name for the conversation (`team` on both sides here,
//! though its id differs).

use serde_json::Value;
use tokio::io::{BufReader, Lines};
use tokio::process::ChildStdout;

use crate::harness::{eventually, next_json, terminate, Server, User};

/// The next line of `kind` (`"type"`) on a followed stream; lines of other
/// kinds in between (the messages that carried the actions, notices) are
/// passed over, and a line of this kind about something else fails.
async fn next_of(lines: &mut Lines<BufReader<ChildStdout>>, kind: &str) -> Value {
    loop {
        let line = next_json(lines).await;
        assert!(line["type"].is_string(), "every line is typed: {line}");
        assert_eq!(line["conversation_name"], "team", "{line}");
        if line["type"] == kind {
            return line;
        }
    }
}

/// The message `id` in `user`'s history of team.
pub(crate) async fn message(user: &User, id: &str) -> Value {
    let history = user.json(&["history", "team", "--limit", "500"]).await;
    history
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {}'s history: {history}", user.name))
        .clone()
}

/// A group of alice and bob, called `team` on both sides, with one message
/// from bob that both have; returns its id.
pub(crate) async fn team(alice: &User, bob: &User) -> String {
    alice.ok(&["group", "create", "team", "bob"]).await;
    eventually("bob is in team", || async {
        bob.run(&["members", "team"]).await.code == 0
    })
    .await;
    let sent = bob.json(&["send", "team", "meet today?"]).await;
    alice.wait_for_text("team", "meet today?").await;
    sent["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_action_reaches_the_other_member_and_only_the_sender_edits_or_deletes() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    let question = team(&alice, &bob).await;
    // bob watches from here on.
    bob.json(&["recv"]).await;
    let (mut follow, mut lines) = bob.spawn(&["recv", "--follow", "--json"]);

    // A reply: quoted on bob's side, stream and history alike.
    let reply = alice
        .json(&["send", "team", "sure, at 3", "--reply-to", &question])
        .await;
    assert_eq!(reply["reply_to"]["id"], question.as_str(), "{reply}");
    let answer = reply["id"].as_str().unwrap().to_owned();
    let got = next_of(&mut lines, "message").await;
    assert_eq!(got["id"], answer.as_str());
    assert_eq!(got["reply_to"]["id"], question.as_str(), "{got}");
    assert_eq!(got["reply_to"]["sender"], "bob");
    assert_eq!(got["reply_to"]["excerpt"], "meet today?");
    let people = bob.ok(&["history", "team"]).await;
    assert!(people.contains("alice  > bob: meet today?\n"), "{people}");

    // A reaction, then taking it back.
    let reacted = alice.json(&["react", "team", &question, "👍"]).await;
    assert_eq!(reacted["reactions"][0]["by"][0], "alice", "{reacted}");
    let r = next_of(&mut lines, "reaction").await;
    assert_eq!(
        (&r["id"], &r["emoji"], &r["by"], &r["removed"]),
        (
            &Value::from(question.as_str()),
            &Value::from("👍"),
            &Value::from("alice"),
            &Value::from(false)
        ),
        "{r}"
    );
    assert_eq!(
        message(&bob, &question).await["reactions"],
        serde_json::json!([{"emoji": "👍", "by": ["alice"]}])
    );
    assert!(bob.ok(&["history", "team"]).await.contains("👍 1 alice"));
    alice
        .ok(&["react", "team", &question, "👍", "--remove"])
        .await;
    let r = next_of(&mut lines, "reaction").await;
    assert_eq!(r["removed"], true, "{r}");
    assert!(message(&bob, &question).await.get("reactions").is_none());

    // An edit from stdin: the new text, `(edited)`, the old one in `edits`.
    alice
        .run_stdin(&["edit", "team", &answer, "-"], Some(b"sure, at teatime\n"))
        .await
        .expect(0);
    let e = next_of(&mut lines, "edit").await;
    assert_eq!(
        (&e["id"], &e["text"]),
        (
            &Value::from(answer.as_str()),
            &Value::from("sure, at teatime")
        )
    );
    let m = message(&bob, &answer).await;
    assert_eq!(
        (&m["text"], &m["edited"]),
        (&Value::from("sure, at teatime"), &Value::from(true))
    );
    let versions = bob.json(&["edits", "team", &answer]).await;
    assert_eq!(versions[0]["text"], "sure, at 3", "{versions}");
    assert!(bob
        .ok(&["history", "team"])
        .await
        .contains("sure, at teatime (edited)"));

    // bob may not edit or delete alice's message: status 6, nothing sent.
    for args in [
        &["--json", "edit", "team", &answer, "hijacked"][..],
        &["--json", "delete", "team", &answer],
    ] {
        let refused = bob.run(args).await.expect(6);
        let err: Value = serde_json::from_str(&refused.stderr).unwrap();
        assert_eq!(err["error"]["kind"], "refused", "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("only its sender"),
            "{err}"
        );
        assert!(err["error"]["hint"].as_str().unwrap().contains("--for-me"));
    }
    let human = bob
        .run(&["edit", "team", &answer, "hijacked"])
        .await
        .expect(6);
    assert!(
        human.stderr.starts_with("qpq-ctl: error: "),
        "{}",
        human.stderr
    );
    assert_eq!(message(&alice, &answer).await["text"], "sure, at teatime");

    // Deleted for everyone: gone from bob's history text and search.
    let found = bob.json(&["search", "teatime"]).await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    alice.ok(&["delete", "team", &answer]).await;
    let d = next_of(&mut lines, "delete").await;
    assert_eq!(
        (&d["id"], &d["scope"], &d["by"]),
        (
            &Value::from(answer.as_str()),
            &Value::from("everyone"),
            &Value::from("alice")
        )
    );
    let m = message(&bob, &answer).await;
    assert_eq!(
        (&m["text"], &m["deleted"]),
        (&Value::from(""), &Value::from(true)),
        "{m}"
    );
    assert_eq!(bob.json(&["search", "teatime"]).await, Value::Array(vec![]));
    assert!(bob
        .ok(&["history", "team"])
        .await
        .contains("alice  (message deleted)"));

    // What bob does himself is not "received" on his own stream: his
    // reaction comes after his own delete-for-me, and the next line is
    // alice's message, not either of them.
    bob.ok(&["react", "team", &question, "🎉"]).await;
    bob.ok(&["delete", "team", &question, "--for-me"]).await;
    assert_eq!(
        bob.run(&["edits", "team", &question]).await.code,
        5,
        "gone for bob"
    );
    alice.ok(&["send", "team", "marker"]).await;
    let next = next_json(&mut lines).await;
    assert_eq!(
        (&next["type"], &next["text"]),
        (&Value::from("message"), &Value::from("marker")),
        "{next}"
    );
    assert_eq!(terminate(&mut follow).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_typing_and_the_timer_reach_the_other_member() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    team(&alice, &bob).await;

    // Mentions: `mentions` and `recv --mentions` keep only what names us.
    bob.ok(&["send", "team", "@alice look at this"]).await;
    bob.ok(&["send", "team", "not for alice@elsewhere"]).await;
    alice.wait_for_text("team", "not for alice@elsewhere").await;
    let mentions = alice.json(&["mentions"]).await;
    assert_eq!(crate::harness::texts(&mentions), ["@alice look at this"]);
    assert_eq!(mentions[0]["mentions_me"], true);
    let only = alice.json(&["recv", "--mentions"]).await;
    assert_eq!(crate::harness::texts(&only), ["@alice look at this"]);
    // --mentions keeps a cursor of its own: a plain recv still has it all.
    let all = alice.json(&["recv"]).await;
    assert!(
        crate::harness::texts(&all).contains(&"not for alice@elsewhere".to_owned()),
        "{all}"
    );

    // Settings: off by default; typing goes out once alice turns it on.
    let defaults = alice.json(&["get", "--default"]).await;
    assert_eq!(
        (&defaults["read_receipts"], &defaults["typing"]),
        (&Value::from(false), &Value::from(false))
    );
    let set = alice.json(&["set", "team", "typing", "on"]).await;
    assert_eq!(set["typing"], true, "{set}");
    assert_eq!(
        alice.ok(&["get", "team"]).await.lines().nth(1),
        Some("typing          on")
    );
    bob.json(&["recv"]).await;
    let (mut follow, mut lines) = bob.spawn(&["recv", "--follow", "--json"]);
    alice.ok(&["typing", "team", "on"]).await;
    let t = next_of(&mut lines, "typing").await;
    assert_eq!(
        (&t["by"], &t["on"]),
        (&Value::from("alice"), &Value::from(true)),
        "{t}"
    );

    // The timer is the conversation's: bob is told, and sees it in `get`.
    let set = alice.json(&["set", "team", "timer", "1d"]).await;
    assert_eq!(set["timer_seconds"], 86_400);
    let t = next_of(&mut lines, "timer").await;
    assert_eq!(
        (&t["by"], &t["seconds"]),
        (&Value::from("alice"), &Value::from(86_400)),
        "{t}"
    );
    let bobs = bob.json(&["get", "team"]).await;
    assert_eq!(bobs["timer_seconds"], 86_400, "{bobs}");
    let people = bob.ok(&["get", "team"]).await;
    assert!(
        people.contains(&format!("{:<16}1d (1 day)", "timer")),
        "{people}"
    );
    alice.ok(&["send", "team", "gone tomorrow"]).await;
    // The timer's notice ("alice set messages to disappear…") may come
    // first.
    let m = loop {
        let m = next_of(&mut lines, "message").await;
        if m["text"] == "gone tomorrow" {
            break m;
        }
    };
    assert!(m["expires_at_ms"].as_u64().is_some(), "{m}");
    assert_eq!(terminate(&mut follow).await, 0);

    // Bad words are usage errors that say what is accepted; nothing is set.
    let bad = alice.run(&["set", "team", "timer", "1y"]).await.expect(2);
    assert!(bad.stderr.contains("not a duration"), "{}", bad.stderr);
    let bad = alice
        .run(&["set", "--default", "timer", "1d"])
        .await
        .expect(2);
    assert!(bad.stderr.contains("no default"), "{}", bad.stderr);
    assert_eq!(alice.json(&["get", "team"]).await["timer_seconds"], 86_400);

    // Read receipts: once bob turns them on, his `read` tells alice, and
    // her message shows who read it.
    alice.json(&["recv"]).await;
    let (mut follow, mut lines) = alice.spawn(&["recv", "--follow", "--json"]);
    bob.ok(&["set", "team", "read-receipts", "on"]).await;
    let left = bob.json(&["read", "team"]).await;
    assert_eq!(left["unread"], 0, "{left}");
    let r = next_of(&mut lines, "read").await;
    assert_eq!(r["by"], "bob", "{r}");
    let read = message(&alice, r["up_to"].as_str().unwrap()).await;
    assert_eq!(read["text"], "gone tomorrow", "{read}");
    assert_eq!(read["read_by"], serde_json::json!(["bob"]));
    let people = alice.ok(&["history", "team"]).await;
    assert!(
        people.contains("gone tomorrow (read by bob) (disappears "),
        "{people}"
    );
    assert_eq!(terminate(&mut follow).await, 0);
}
