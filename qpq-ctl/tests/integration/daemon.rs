//! `daemon start | stop | status`, autostart, and many qpq-ctl starting at
//! once. No server needed: a daemon runs without an account.

use crate::harness::User;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_at_once_on_a_cold_profile_start_one_daemon() {
    let root = crate::harness::root();
    let user = User::new(root.path(), "cold");
    // Eight processes at once: all running before any has finished.
    let children: Vec<_> = (0..8)
        .map(|_| {
            let mut cmd = user.command();
            cmd.args(["--json", "status"]);
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = tokio::time::timeout(crate::harness::WAIT, child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status["keystore"], "passphrase");
    }
    let log = std::fs::read_to_string(user.home.join("data/default/qpqd.log")).unwrap();
    assert_eq!(log.matches("qpqd ready").count(), 1, "{log}");
    assert!(!log.contains("already running"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_status() {
    let root = crate::harness::root();
    let user = User::new(root.path(), "d");

    let st = user.run(&["daemon", "status"]).await.expect(3);
    assert!(st.stdout.contains("not running"), "{}", st.stdout);
    let st = user.run(&["--json", "daemon", "status"]).await.expect(3);
    assert_eq!(st.json()["running"], false);
    // --no-autostart never starts one.
    user.run(&["--no-autostart", "status"]).await.expect(3);
    user.run(&["daemon", "status"]).await.expect(3);

    let started = user.json(&["daemon", "start"]).await;
    assert_eq!(started["running"], true);
    assert_eq!(started["changed"], true);
    assert!(started["pid"].as_u64().is_some(), "{started}");
    let again = user.json(&["daemon", "start"]).await;
    assert_eq!(again["changed"], false);
    assert_eq!(again["pid"], started["pid"]);
    let st = user.ok(&["daemon", "status"]).await;
    assert!(st.starts_with("qpqd is running"), "{st}");
    user.ok(&["--no-autostart", "status"]).await;

    let stopped = user.json(&["daemon", "stop"]).await;
    assert_eq!(stopped["running"], false);
    assert_eq!(stopped["changed"], true);
    user.run(&["daemon", "status"]).await.expect(3);
    let pid = started["pid"].as_u64().unwrap();
    assert!(
        !crate::harness::process_alive(pid),
        "stop returns after the daemon has exited"
    );
    let twice = user.json(&["daemon", "stop"]).await;
    assert_eq!(twice["changed"], false);
    // Stopped on purpose, it stays stopped: a one-shot command (cron's
    // `send`) fails at once and says why, instead of starting it again.
    let refused = user.run(&["status"]).await.expect(3);
    assert!(
        refused.stderr.contains("stopped on purpose") && refused.stderr.contains("daemon start"),
        "{}",
        refused.stderr
    );
    user.run(&["daemon", "status"]).await.expect(3);
    // stop, then start at once: no race with the old daemon's lock.
    user.ok(&["daemon", "start"]).await;
    user.ok(&["daemon", "stop"]).await;
    user.ok(&["daemon", "start"]).await;
    user.ok(&["status"]).await;
}

/// Regression: `qpqd.log` and `keystore.json` were created 0644 (world
/// readable wherever the data directory is not 0700, e.g. after a copy).
/// Everything a started daemon creates is private to the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = crate::harness::root();
    let user = User::new(root.path(), "files");
    user.ok(&["status"]).await;
    let paths = quicproquo_testkit::home::paths(&user.home).unwrap();
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    for dir in [&paths.data_dir, &paths.runtime_dir] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    for file in [
        paths.log_file.clone(),
        paths.data_dir.join("keystore.json"),
        paths.data_dir.join("qpq-state.keystore.json"),
        paths.state_file.clone(),
        paths.socket.clone(),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    user.ok(&["daemon", "stop"]).await;
}

/// A follower (`recv --follow`) does not start again a daemon the user
/// stopped: it says it waits, and goes on once the daemon is started
/// explicitly, missing nothing sent meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_waits_for_a_daemon_stopped_on_purpose() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let srv = crate::harness::Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.ok(&["dm", "bob"]).await;
    alice.ok(&["send", "@bob", "m1"]).await;

    let mut cmd = bob.command();
    // Text output: its notices go to stderr (with --json it keeps quiet).
    cmd.args(["recv", "--follow", "--since", "0"]);
    let mut follower = cmd.spawn().unwrap();
    let mut out = BufReader::new(follower.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(follower.stderr.take().unwrap()).lines();
    let first = next_line(&mut out).await;
    assert!(first.contains("m1"), "{first}");

    bob.ok(&["daemon", "stop"]).await;
    let said = tokio::time::timeout(crate::harness::WAIT, async {
        while let Some(line) = err.next_line().await.unwrap() {
            if line.contains("stopped on purpose") {
                return line;
            }
        }
        panic!("the follower ended without saying it waits");
    })
    .await
    .expect("the follower says it waits");
    assert!(said.contains("daemon start"), "{said}");
    // It has tried and decided: the daemon is still stopped.
    bob.run(&["daemon", "status"]).await.expect(3);

    alice.ok(&["send", "@bob", "m2"]).await;
    bob.ok(&["daemon", "start"]).await;
    let second = next_line(&mut out).await;
    assert!(second.contains("m2"), "{second}");
    crate::harness::terminate(&mut follower).await;
}

/// The next line a follower prints, within the kit's wait.
async fn next_line(
    out: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> String {
    tokio::time::timeout(crate::harness::WAIT, out.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("the follower goes on")
}
