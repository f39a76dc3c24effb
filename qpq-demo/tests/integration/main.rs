//! The README's first command, end to end: `qpq-demo` in a real terminal
//! (tmux), greeted by the bot, answered, quit with Ctrl+Q — and nothing
//! left behind. One test binary for the crate (see
//! docs/src/contributing/testing.md). Skips with a printed reason without
//! tmux (a failure under `QPQ_TEST_REQUIRE_ALL=1`).

// Test helpers may unwrap: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

// qpq-tui's tmux driver, shared rather than copied: the demo is the same
// chat in the same terminal.
#[path = "../../../qpq-tui/tests/integration/tmux.rs"]
#[allow(dead_code)] // resize: the TUI's tests use it, the demo's do not
mod tmux;

use std::path::PathBuf;

use quicproquo_testkit::skip::skip;
use tmux::Tmux;

/// `qpq-demo`: the greeting, one exchange with the bot, Ctrl+Q; the process
/// exits 0 and the temporary directory it printed is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_greets_answers_quits_and_removes_its_directory() {
    let Some(tmux) = Tmux::available() else {
        skip("the demo in tmux", "tmux is not installed");
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let mut session = tmux
        .start(env!("CARGO_BIN_EXE_qpq-demo"), home.path(), 120, 40)
        .unwrap();

    session.wait_for("Hi, I'm demo-peer").await;
    session.type_text("hello");
    session.keys(&["Enter"]);
    session
        .wait_for("This reply was decrypted and re-encrypted")
        .await;
    session.keys(&["C-q"]);
    session.wait_for_exit().await;

    let stderr = std::fs::read_to_string(home.path().join("tui.stderr")).unwrap();
    let dir: PathBuf = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("temporary directory "))
        .unwrap_or_else(|| panic!("qpq-demo printed no temporary directory:\n{stderr}"))
        .into();
    assert!(
        stderr.contains(&format!("removed {}", dir.display())),
        "qpq-demo's stderr:\n{stderr}"
    );
    assert!(!dir.exists(), "{} is left after the demo", dir.display());
}
