//! The first hour, scripted (issue 19): a machine without a keyring, an
//! empty profile, and nothing but what the README and the prompts say —
//! `qpq-tui`, the passphrase chosen twice, the first-run form, `/dm`, a
//! first message that arrives.

use quicproquo_protocol::ipc::client::IpcClient;
use quicproquo_protocol::ipc::methods::{method, NoParams};
use quicproquo_testkit::agent::{register, wait_for_message};
use quicproquo_testkit::skip::skip;
use quicproquo_testkit::{home, InProcessDaemon, TestServer};

use crate::tmux::Tmux;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_an_empty_profile_without_a_keyring_to_a_first_message() {
    let Some(tmux) = Tmux::available() else {
        skip(
            "from_an_empty_profile_without_a_keyring_to_a_first_message",
            "tmux is not installed",
        );
        return;
    };
    let dir = home::root();
    let server = TestServer::start().await;
    let bob_home = dir.path().join("bob");
    let mut bob = InProcessDaemon::start(&bob_home, "bob's passphrase")
        .await
        .unwrap();
    let bc = bob.client().await.unwrap();
    register(&bc, &server, "bob").await.unwrap();

    // A new user: no profile, no daemon, no keyring (no D-Bus session), no
    // QPQ_PASSPHRASE. The README says: run qpq-tui.
    let newbie_home = dir.path().join("newbie");
    std::fs::create_dir_all(&newbie_home).unwrap();
    let term = tmux
        .start_with(
            env!("CARGO_BIN_EXE_qpq-tui"),
            &newbie_home,
            100,
            32,
            quicproquo_testkit::qpqd_binary(),
            "unset QPQ_PASSPHRASE DBUS_SESSION_BUS_ADDRESS\n",
        )
        .unwrap();

    // The passphrase is chosen, not just typed: explained, and asked twice.
    let screen = term.wait_for("No keyring found").await;
    assert!(screen.contains("cannot be recovered"), "{screen}");
    let passphrase = "a long passphrase for my state";
    term.type_text(passphrase);
    term.keys(&["Enter"]);
    term.type_text(passphrase);
    term.keys(&["Enter"]);

    // The first-run form: the server (replacing the default), a name, the
    // password twice. The certificate is pinned on first use.
    term.wait_for("has no account yet").await;
    term.keys(&["Up", "Up", "End", "C-u"]);
    term.type_text(&server.addr.to_string());
    term.keys(&["Down", "Down"]);
    term.type_text("newbie");
    let password = "newbie's own password";
    for _ in 0..2 {
        term.keys(&["Tab"]);
        term.type_text(password);
    }
    term.keys(&["Enter"]);
    term.wait_for("No conversation open").await;

    // The first conversation and the first message.
    term.type_text("/dm bob");
    term.keys(&["Enter"]);
    term.wait_for("@bob").await;
    let text = "hello bob, my first message";
    term.type_text(text);
    term.keys(&["Enter"]);
    let got = wait_for_message(&bc, "@newbie", text).await.unwrap();
    assert_eq!(got.sender, "newbie");

    // The qpqd the TUI started stops with the test.
    let paths = home::paths(&newbie_home).unwrap();
    let client = IpcClient::connect(&paths).await.unwrap();
    let _ = client.request::<method::Shutdown>(NoParams {}).await;
    drop(term);
    bob.stop().await;
}
