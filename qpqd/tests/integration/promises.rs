//! What the README and the book promise about a daemon's files, pinned by
//! tests that fail when the promise is broken.

use std::os::unix::fs::PermissionsExt;

use quicproquo_testkit::agent::password;

use crate::harness::{paths_for, Daemon, Server};

/// A whole session — register, open a DM, send and receive — and then the
/// daemons' own logs (at debug level) hold neither the account password, nor
/// the state passphrase, nor the text of a message; the state database is
/// readable by its owner only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_session_leaves_no_secret_in_the_logs_and_a_private_state_file() {
    let srv = Server::start().await;
    let root = tempfile::tempdir().unwrap();
    let [alice, bob] = Daemon::registered(root.path(), &srv, ["alice", "bob"]).await;
    let private_text = "the launch code is 0000-tangerine";
    alice.dm_open("bob").await.unwrap();
    alice.send("@bob", private_text).await.unwrap();
    bob.wait_for("@alice", private_text).await;
    bob.send("@alice", "noted").await.unwrap();
    alice.wait_for("@bob", "noted").await;

    for d in [&alice, &bob] {
        let state = paths_for(&d.home).state_file;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}'s {} is {mode:o}", d.name, state.display());

        // The daemon's log: what it wrote to stderr (`--foreground`).
        let mut logs = String::new();
        for entry in std::fs::read_dir(&d.home).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("qpqd-") && name.ends_with(".log") {
                logs.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
        // Positive evidence that these are the session's logs.
        assert!(logs.contains("qpqd ready"), "{}'s log: {logs}", d.name);
        assert!(logs.contains("key packages refilled"), "{}'s log", d.name);
        for (what, secret) in [
            ("the account password", password(&d.name)),
            ("the state passphrase", d.passphrase.clone()),
            ("a message's text", private_text.to_owned()),
        ] {
            assert!(!logs.contains(&secret), "{}'s log contains {what}", d.name);
        }
    }
}
