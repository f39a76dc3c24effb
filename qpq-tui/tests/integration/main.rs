//! qpq-tui end to end, in a real terminal: tmux runs the `qpq-tui` binary
//! against a real qpq-server (loopback QUIC, SQLite) and real agents (the
//! daemon's code, in this process, each on its own socket). One test binary
//! for the crate (see docs/src/contributing/testing.md). Skips with a
//! printed reason without tmux.

// Test helpers may unwrap: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod actions;
mod attachments;
mod tmux;
mod walkthrough;

use quicproquo_testkit::skip::skip;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quicproquo_protocol::ipc::methods::{method, SendParams};
use quicproquo_protocol::ipc::values::ConversationRef;
use quicproquo_testkit::agent::{first_dm, register, wait_for_message};
use quicproquo_testkit::{home, InProcessDaemon, TestServer};
use quicproquo_tui::wrap::width;

use tmux::Tmux;

/// `qpq-ctl` built next to this test binary (as `cargo test --workspace`
/// does), run for the profile under `home`.
struct QpqCtl {
    program: PathBuf,
    home: PathBuf,
}

impl QpqCtl {
    fn find(home: &Path) -> Option<QpqCtl> {
        let exe = std::env::current_exe().ok()?;
        let dir = exe.parent()?;
        let dir = if dir.ends_with("deps") {
            dir.parent()?
        } else {
            dir
        };
        let program = dir.join("qpq-ctl");
        program.is_file().then(|| QpqCtl {
            program,
            home: home.to_owned(),
        })
    }

    async fn output(&self, args: &[&str]) -> std::process::Output {
        quicproquo_testkit::process::output(
            tokio::process::Command::new(&self.program)
                .arg("--no-autostart")
                .args(args)
                .envs(home::env(&self.home)),
        )
        .await
    }

    async fn run(&self, args: &[&str]) {
        let out = self.output(args).await;
        assert!(
            out.status.success(),
            "qpq-ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs until stdout contains `text` (at most 15 s); returns stdout.
    async fn wait_for(&self, args: &[&str], text: &str) -> String {
        let mut last = String::new();
        for _ in 0..150 {
            let out = self.output(args).await;
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() && last.contains(text) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("qpq-ctl {args:?} never showed {text:?}: {last}");
    }
}

/// Two agents in this process on a real test server, registered as alice
/// and bob, with their DM open ("hi bob"): where each terminal test starts.
struct Pair {
    dir: tempfile::TempDir,
    server: TestServer,
    alice_home: PathBuf,
    bob_home: PathBuf,
    alice: InProcessDaemon,
    bob: InProcessDaemon,
    ac: quicproquo_protocol::ipc::client::IpcClient,
    bc: quicproquo_protocol::ipc::client::IpcClient,
}

impl Pair {
    async fn in_a_dm() -> Pair {
        let dir = home::root();
        let server = TestServer::start().await;
        let alice_home = dir.path().join("alice");
        let alice = InProcessDaemon::start(&alice_home, "alice's passphrase")
            .await
            .unwrap();
        let bob_home = dir.path().join("bob");
        let bob = InProcessDaemon::start(&bob_home, "bob's passphrase")
            .await
            .unwrap();
        let ac = alice.client().await.unwrap();
        let bc = bob.client().await.unwrap();
        register(&ac, &server, "alice").await.unwrap();
        register(&bc, &server, "bob").await.unwrap();
        first_dm(&ac, &bc, "hi bob").await.unwrap();
        Pair {
            dir,
            server,
            alice_home,
            bob_home,
            alice,
            bob,
            ac,
            bc,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_in_a_real_terminal() {
    let Some(tmux) = Tmux::available() else {
        skip("chat_in_a_real_terminal", "tmux is not installed");
        return;
    };
    let Pair {
        dir: _dir,
        mut server,
        alice_home,
        bob_home,
        mut alice,
        mut bob,
        ac: _ac,
        bc,
    } = Pair::in_a_dm().await;

    // alice's qpq-tui in a 100×30 terminal.
    let mut term = tmux
        .start(env!("CARGO_BIN_EXE_qpq-tui"), &alice_home, 100, 30)
        .unwrap();
    let screen = term.wait_for("@bob").await;
    assert!(screen.contains("● online"), "{screen}");
    assert!(
        screen.contains("PQ✓"),
        "the DM is marked post-quantum: {screen}"
    );

    // alice types; bob's agent receives it.
    let text = "hello from tmux, 日本語 ✓";
    term.type_text(text);
    term.keys(&["Enter"]);
    let got = wait_for_message(&bc, "@alice", text).await.unwrap();
    assert_eq!(got.sender, "alice");
    let bob_ctl = QpqCtl::find(&bob_home);
    match &bob_ctl {
        Some(ctl) => {
            // And through qpq-ctl, the peer's shell-facing front-end.
            let out = ctl.wait_for(&["history", "@alice"], text).await;
            assert!(out.contains("alice"), "{out}");
        }
        None => eprintln!(
            "qpq-ctl is not built next to this test: the peer checks through the IPC client only"
        ),
    }
    // Her own message is on her screen with its delivery state.
    term.wait_for("hello from tmux").await;

    // bob answers (with qpq-ctl when there is one); it appears on alice's
    // screen without any key pressed.
    match &bob_ctl {
        Some(ctl) => ctl.run(&["send", "@alice", "answer from bob"]).await,
        None => {
            bc.request::<method::Send>(SendParams {
                conversation: ConversationRef::parse("@alice").unwrap(),
                text: "answer from bob".into(),
                confirm_changed_keys: false,
                reply_to: None,
            })
            .await
            .unwrap();
        }
    }
    term.wait_for("answer from bob").await;

    // Resize: the screen redraws cleanly at the new size.
    term.resize(60, 20);
    let screen = term
        .wait_until(|s| s.lines().count() == 20 && s.contains("answer from bob"))
        .await;
    for line in screen.lines() {
        assert!(width(line) <= 60, "line wider than the pane: {line:?}");
    }
    assert!(
        screen.lines().last().unwrap().contains("alice@"),
        "{screen}"
    );
    term.resize(100, 30);
    term.wait_until(|s| s.lines().count() == 30 && s.contains("answer from bob"))
        .await;

    // The server goes down: the UI stays up and says so; it comes back
    // by itself when the server does.
    server.stop().await;
    term.wait_until(|s| !s.contains("● online")).await;
    server.start_again().await;
    term.wait_for("● online").await;
    assert!(term.screen().contains("answer from bob"));

    // The daemon goes away: the UI says so, keeps the conversation on
    // screen, and reconnects (replaying what it missed) when it is back.
    alice.stop().await;
    drop(alice);
    term.wait_for("qpqd gone").await;
    let alice = InProcessDaemon::start(&alice_home, "alice's passphrase")
        .await
        .unwrap();
    bc.request::<method::Send>(SendParams {
        conversation: ConversationRef::parse("@alice").unwrap(),
        text: "sent while you were away".into(),
        confirm_changed_keys: false,
        reply_to: None,
    })
    .await
    .unwrap();
    term.wait_until(|s| s.contains("● online") && s.contains("sent while you were away"))
        .await;

    // F1 help and Esc, then Ctrl+Q: qpq-tui exits and gives the terminal back.
    term.keys(&["F1"]);
    term.wait_for("Commands (Tab completes)").await;
    term.keys(&["Escape"]);
    term.wait_until(|s| !s.contains("Commands (Tab completes)"))
        .await;
    term.keys(&["C-q"]);
    term.wait_for_exit().await;

    let mut alice = alice;
    alice.stop().await;
    bob.stop().await;
    server.stop().await;
}

/// The TUI's own autostart: with no daemon running for the profile, qpq-tui
/// starts qpqd itself (the one `QPQ_DAEMON` names, as a user's would be
/// found next to qpq-tui), connects, and shows the first-run screen the
/// fresh daemon asks for; the daemon outlives the TUI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tui_starts_qpqd_when_none_runs() {
    use quicproquo_protocol::ipc::client::IpcClient;
    use quicproquo_protocol::ipc::methods::NoParams;

    let Some(tmux) = Tmux::available() else {
        skip(
            "the_tui_starts_qpqd_when_none_runs",
            "tmux is not installed",
        );
        return;
    };
    let dir = home::root();
    let carol_home = dir.path().join("carol");
    std::fs::create_dir_all(&carol_home).unwrap();
    let paths = home::paths(&carol_home).unwrap();
    assert!(
        IpcClient::connect(&paths).await.is_err(),
        "no qpqd runs for the profile before the TUI"
    );

    let mut term = tmux
        .start_with(
            env!("CARGO_BIN_EXE_qpq-tui"),
            &carol_home,
            100,
            30,
            quicproquo_testkit::qpqd_binary(),
            "export QPQ_PASSPHRASE='carol state passphrase'\n",
        )
        .unwrap();
    term.wait_for("has no account yet").await;
    term.keys(&["C-q"]);
    term.wait_for_exit().await;

    // The qpqd the TUI started is still there, and it is a fresh one.
    let client = IpcClient::connect(&paths).await.unwrap();
    let status = client.request::<method::Status>(NoParams {}).await.unwrap();
    assert!(status.account.is_none(), "{status:?}");
    let _ = client.request::<method::Shutdown>(NoParams {}).await;
    quicproquo_testkit::agent::eventually("the autostarted qpqd stops", || async {
        IpcClient::connect(&paths).await.is_err().then_some(())
    })
    .await
    .unwrap();
}
