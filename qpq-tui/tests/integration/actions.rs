//! Issue 17 in two real terminals: alice replies to, reacts to, edits and
//! deletes a selected message in her qpq-tui, mentions bob with Tab
//! completion, types and sets a disappearing timer; bob's qpq-tui (another
//! tmux) shows each one. Real agents and a real server.

use quicproquo_protocol::ipc::methods::{method, SendParams};
use quicproquo_protocol::ipc::values::ConversationRef;
use quicproquo_testkit::agent::wait_for_message;
use quicproquo_testkit::skip::skip;

use crate::tmux::Tmux;
use crate::Pair;

const TEST: &str = "reply_react_edit_delete_and_mention_between_two_terminals";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_react_edit_delete_and_mention_between_two_terminals() {
    let Some(tmux) = Tmux::available() else {
        skip(TEST, "tmux is not installed");
        return;
    };
    let Pair {
        dir: _dir,
        mut server,
        alice_home,
        bob_home,
        mut alice,
        mut bob,
        ac,
        bc,
    } = Pair::in_a_dm().await;
    bc.request::<method::Send>(SendParams {
        conversation: ConversationRef::parse("@alice").unwrap(),
        text: "first from bob".into(),
        confirm_changed_keys: false,
        reply_to: None,
    })
    .await
    .unwrap();
    wait_for_message(&ac, "@bob", "first from bob")
        .await
        .unwrap();
    let at = |h: &std::path::Path| tmux.start(env!("CARGO_BIN_EXE_qpq-tui"), h, 100, 24);
    let a = at(&alice_home).unwrap();
    let b = at(&bob_home).unwrap();
    a.wait_for("first from bob").await;
    b.wait_for("first from bob").await;

    // Reply: select bob's message (the newest), `r`, type, Enter.
    a.keys(&["S-Up", "r"]);
    a.wait_for("replying to bob: first from bob").await;
    a.type_text("a reply");
    a.keys(&["Enter"]);
    b.wait_until(|s| s.contains("↱ bob: first from bob") && s.contains("a reply"))
        .await;

    // React: back to bob's message (two up from the newest, our reply), `e`,
    // Enter picks 👍. (No Escape before a key sequence: sent together, the
    // terminal reads them as one Alt sequence, as it would from a person
    // pressing them that fast.)
    a.keys(&["S-Up", "S-Up", "e"]);
    a.wait_for("React").await;
    a.keys(&["Enter"]);
    b.wait_for("👍 1 alice").await;

    // Edit our reply: select it (one down), `c`, replace the text.
    a.keys(&["S-Down", "c"]);
    a.wait_for("editing your message").await;
    a.keys(&["C-u"]);
    a.type_text("a better reply");
    a.keys(&["Enter"]);
    b.wait_until(|s| s.contains("a better reply") && s.contains("(edited)"))
        .await;

    // Delete it for everyone: select it again (down past the newest, then
    // up), `d`, `e`.
    a.keys(&["S-Down", "S-Up", "d"]);
    a.wait_for("for everyone").await;
    a.keys(&["e"]);
    b.wait_until(|s| s.contains("message deleted") && !s.contains("a better reply"))
        .await;

    // Mention: `@b` Tab completes bob's name.
    a.type_text("see you @b");
    a.keys(&["Tab"]);
    a.wait_for("see you @bob").await;
    a.keys(&["Enter"]);
    let got = wait_for_message(&bc, "@alice", "see you @bob")
        .await
        .unwrap();
    assert!(got.meta.mentions_me, "{got:?}");
    b.wait_for("see you @bob").await;

    // Typing indicators, once both turned them on: bob sees alice typing,
    // and it goes when she stops (5 s idle, `typing off`).
    for t in [&a, &b] {
        t.type_text("/typing on");
        t.keys(&["Enter"]);
        t.wait_for("typing on").await;
    }
    a.type_text("draft");
    b.wait_for("alice is typing…").await;
    a.keys(&["C-u"]);
    b.wait_until(|s| !s.contains("alice is typing…")).await;

    // A disappearing timer set by alice is said on bob's screen.
    a.type_text("/timer 1d");
    a.keys(&["Enter"]);
    b.wait_for("alice set messages to disappear after 1 day")
        .await;

    drop(a);
    drop(b);
    alice.stop().await;
    bob.stop().await;
    server.stop().await;
}
