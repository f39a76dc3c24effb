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
