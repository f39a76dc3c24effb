//! What an operator reads from `qpq-server` when it starts: the banner on
//! stdout and log lines on stderr, the way a supervisor or a log file gets
//! them (a pipe, not a terminal).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::binary::{command, terminate};

#[tokio::test]
async fn the_banner_says_register_and_logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(&dir.path().join("data"))
        .env("QPQ_LOG", "info")
        .stderr(Stdio::piped())
        .args(["--listen", "127.0.0.1:0"])
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("qpq-ctl") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the banner is printed");
    assert!(
        banner.contains("qpq-ctl register --server 127.0.0.1:"),
        "{banner}"
    );
    assert!(!banner.contains("login"), "{banner}");

    assert!(terminate(child).await.success());
    let mut log = String::new();
    stderr.read_to_string(&mut log).await.unwrap();
    // Positive evidence that this is the log: the shutdown line is in it.
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log:?}"
    );
}

/// The server's data directory has a variable of its own,
/// `QPQ_SERVER_DATA_DIR`; the old `QPQ_DATA_DIR` (which clients read as the
/// parent of their profiles) still works, with a deprecation notice, and
/// loses to the new one.
#[tokio::test]
async fn the_server_data_directory_has_its_own_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (new, old) = (dir.path().join("new"), dir.path().join("old"));
    // `command` sets QPQ_SERVER_DATA_DIR; each case sets what it needs.
    let run = |old_var: Option<&std::path::Path>, new_var: Option<&std::path::Path>| {
        let mut c = command(&dir.path().join("unused"));
        c.env_remove("QPQ_SERVER_DATA_DIR")
            .env("QPQ_LOG", "warn")
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("xdg"))
            .stderr(Stdio::piped())
            .args(["--listen", "127.0.0.1:0"]);
        if let Some(p) = old_var {
            c.env("QPQ_DATA_DIR", p);
        }
        if let Some(p) = new_var {
            c.env("QPQ_SERVER_DATA_DIR", p);
        }
        c
    };
    for (old_var, new_var, lands_in, deprecated) in [
        (None, Some(&new), &new, false),
        (Some(&old), None, &old, true),
        (Some(&old), Some(&new), &new, false),
    ] {
        let _ = std::fs::remove_dir_all(&new);
        let _ = std::fs::remove_dir_all(&old);
        let mut child = run(old_var.map(|p| p.as_path()), new_var.map(|p| p.as_path()))
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut data_line = String::new();
        let read = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(d) = line.strip_prefix("data directory: ") {
                    data_line = d.to_owned();
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the banner is printed");
        assert!(terminate(child).await.success());
        let mut log = String::new();
        stderr.read_to_string(&mut log).await.unwrap();
        assert_eq!(std::path::Path::new(&data_line), lands_in.as_path());
        assert!(lands_in.join("qpq.db").exists());
        assert_eq!(
            log.contains("QPQ_SERVER_DATA_DIR instead"),
            deprecated,
            "old={old_var:?} new={new_var:?}: {log}"
        );
    }
}
