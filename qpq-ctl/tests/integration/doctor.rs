//! `qpq-ctl doctor` on the three machines a new user meets: nothing started
//! yet, everything working, and a server that went away.

use crate::harness::{root, Server, User};

/// The checks of a `doctor --json` run, as `check: ok` pairs.
fn verdicts(report: &serde_json::Value) -> Vec<(String, bool)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| (c["check"].as_str().unwrap().to_owned(), c["ok"] == true))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_what_is_wrong_and_how_to_fix_it() {
    let root = root();
    let mut srv = Server::start().await;

    let fresh = User::new(root.path(), "fresh");
    let none = fresh.run(&["doctor"]).await.expect(1);
    assert!(
        none.stdout.contains("✗ daemon: qpqd is not running")
            && none.stdout.contains("fix: qpq-ctl daemon start"),
        "{}",
        none.stdout
    );
    assert!(
        fresh.daemon_pid().is_none(),
        "doctor does not start the daemon"
    );

    let [alice] = User::registered(root.path(), &srv, ["alice"]).await;
    let healthy = alice.run(&["--json", "doctor"]).await.expect(0);
    let report = healthy.json();
    assert_eq!(report["ok"], true, "{report}");
    let checks = verdicts(&report);
    for expected in [
        "data directory",
        "runtime directory",
        "daemon",
        "keystore",
        "account",
        "server",
        "clock",
        "session",
        "key packages",
    ] {
        assert!(
            checks.iter().any(|(c, ok)| c == expected && *ok),
            "{expected} passes: {report}"
        );
    }
    let text = alice.ok(&["doctor"]).await;
    assert!(
        text.contains("✓ server:") && text.contains("pinned and matching"),
        "{text}"
    );

    srv.stop().await;
    let down = alice.run(&["doctor"]).await.expect(1);
    assert!(down.stdout.contains("✗ server:"), "{}", down.stdout);
    assert!(down.stdout.contains("fix:"), "{}", down.stdout);
}
