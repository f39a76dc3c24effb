//! `--help`, completions and man pages: generated from the one set of clap
//! definitions, and carrying the exit status table.

use crate::harness::User;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_completions_and_man_pages() {
    let root = crate::harness::root();
    let user = User::new(root.path(), "docs");

    let help = user.ok(&["--help"]).await;
    assert!(help.contains("Exit status:"), "{help}");
    for code in 0..=15 {
        assert!(
            help.contains(&format!("  {code:>2}  ")),
            "status {code} in --help"
        );
    }
    let send = user.ok(&["send", "--help"]).await;
    assert!(send.contains("stdin"), "{send}");
    assert!(
        send.contains("--file") && send.contains("--no-wait"),
        "{send}"
    );
    let download = user.ok(&["download", "--help"]).await;
    assert!(
        download.contains("checks its hash") && download.contains("--force"),
        "{download}"
    );

    for (shell, needle) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef qpq-ctl"),
        ("fish", "complete -c qpq-ctl"),
    ] {
        let script = user.ok(&["completions", shell]).await;
        assert!(script.contains(needle), "{shell}: {script:.200}");
        for word in ["recv", "rekey", "follow", "password-stdin", "download"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    // --json does not apply to generated scripts.
    assert!(user
        .ok(&["--json", "completions", "bash"])
        .await
        .contains("complete -F"));

    let page = user.ok(&["man"]).await;
    assert!(page.contains(".TH qpq-ctl 1"), "{page:.300}");
    assert!(page.contains("EXIT STATUS"));
    let dir = root.path().join("man");
    let written = user.ok(&["man", "--out-dir", dir.to_str().unwrap()]).await;
    for page in [
        "qpq-ctl.1",
        "qpq-ctl-send.1",
        "qpq-ctl-download.1",
        "qpq-ctl-recv.1",
        "qpq-ctl-group-rekey.1",
    ] {
        assert!(dir.join(page).is_file(), "{page} in {written}");
    }
    // Nothing here needed a daemon.
    assert!(user.daemon_pid().is_none());
}
