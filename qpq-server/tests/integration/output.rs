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
