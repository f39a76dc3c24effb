//! Files (issue 18) from the shell: `send --file` by one member, `download`
//! by two others, byte-identical; JSON and people's output; `recv`; and every
//! refusal a script must be able to tell apart (missing file, directory,
//! a download path already there, bad combinations of options).

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{BufReader, Lines};
use tokio::process::ChildStdout;

use crate::harness::{eventually, next_json, on_path, terminate, Run, Server, User};

/// `len` bytes that are not all alike (a chunk swapped or repeated would
/// show) and the same every run.
fn contents(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            // xorshift64: cheap, deterministic, no repeating pattern at chunk sizes.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Scripts' stderr carries no drawing: no carriage return, no escape.
#[track_caller]
fn no_progress_bar(run: &Run) {
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\u{1b}'),
        "piped stderr has progress bar bytes: {:?}",
        run.stderr
    );
}

/// The next `transfer` line of a followed stream: the end (the stream
/// shows no steps) of the transfer of message `id`, going `direction`.
async fn transfer_end(
    lines: &mut Lines<BufReader<ChildStdout>>,
    direction: &str,
    id: &str,
) -> Value {
    loop {
        let line = next_json(lines).await;
        if line["type"] == "transfer" {
            assert_eq!(line["direction"], direction, "{line}");
            assert_eq!(line["id"], id, "{line}");
            return line;
        }
    }
}

/// A group of alice, bob and carol that all three know as `team`.
async fn team(alice: &User, bob: &User, carol: &User) {
    alice
        .json(&["group", "create", "team", "bob", "carol"])
        .await;
    alice.ok(&["send", "team", "files follow"]).await;
    for u in [bob, carol] {
        u.wait_for_text("team", "files follow").await;
    }
}

async fn sent_file(root: &Path, size: usize) {
    let srv = Server::start().await;
    let [alice, bob, carol] = User::registered(root, &srv, ["alice", "bob", "carol"]).await;
    team(&alice, &bob, &carol).await;
    let (mut follow, mut lines) = bob.spawn(&["recv", "--follow", "--json"]);

    // A path relative to where qpq-ctl runs (qpqd has another directory).
    let bytes = contents(size);
    let sha = sha256_hex(&bytes);
    std::fs::write(alice.home.join("report.bin"), &bytes).unwrap();
    let sent = alice
        .run_in(
            &alice.home,
            &[
                "--json",
                "send",
                "team",
                "--file",
                "report.bin",
                "--caption",
                "the numbers",
            ],
        )
        .await
        .expect(0);
    no_progress_bar(&sent);
    assert_eq!(sent.stderr, "", "success says nothing on stderr");
    let m = sent.json();
    assert_eq!(m["text"], "the numbers");
    assert_eq!(m["outgoing"], true);
    let a = &m["attachment"];
    assert_eq!(a["name"], "report.bin");
    assert_eq!(a["size"], size as u64);
    assert_eq!(a["sha256"], sha);
    assert_eq!(a["state"], "uploaded", "send waited for the upload: {m}");
    assert!(a["content_type"].is_string(), "{m}");
    let id = m["id"].as_str().unwrap().to_owned();

    // bob's stream carries the attachment with the message.
    let got = loop {
        let line = next_json(&mut lines).await;
        if line["type"] == "message" && line["id"] == id.as_str() {
            break line;
        }
    };
    assert_eq!(got["text"], "the numbers");
    for key in ["name", "size", "content_type", "sha256"] {
        assert_eq!(got["attachment"][key], a[key], "{key}: {got}");
    }
    assert_eq!(got["attachment"]["state"], "available");

    // bob: the default, ./NAME in his working directory, printed.
    let downloaded = bob
        .run_in(&bob.home, &["download", "team", &id])
        .await
        .expect(0);
    no_progress_bar(&downloaded);
    let path = bob.home.join("report.bin");
    assert_eq!(downloaded.stdout.trim_end(), path.to_str().unwrap());
    assert!(std::fs::read(&path).unwrap() == bytes, "bob's copy differs");
    // His stream reports the end of his own download (not the steps).
    let end = transfer_end(&mut lines, "down", &id).await;
    assert_eq!(end["state"], "downloaded", "{end}");
    assert_eq!(terminate(&mut follow).await, 0);

    // Again without -o: a new name, the first copy untouched.
    let again = bob
        .run_in(&bob.home, &["download", "team", &id])
        .await
        .expect(0);
    assert_eq!(
        again.stdout.trim_end(),
        bob.home.join("report (1).bin").to_str().unwrap()
    );

    // carol, with JSON and -o: the Attachment, downloaded.
    let out = carol.home.join("copy.bin");
    let carol_run = carol
        .run(&[
            "--json",
            "download",
            "team",
            &id,
            "-o",
            out.to_str().unwrap(),
        ])
        .await
        .expect(0);
    no_progress_bar(&carol_run);
    let got = carol_run.json();
    assert_eq!(got["state"], "downloaded", "{got}");
    assert_eq!(got["path"], out.to_str().unwrap());
    assert_eq!(got["sha256"], sha);
    let copy = std::fs::read(&out).unwrap();
    assert_eq!(sha256_hex(&copy), sha);
    assert!(copy == bytes, "carol's copy differs");

    // To an existing file without --force: status 9, the file as it was.
    std::fs::write(&out, b"keep me").unwrap();
    let refused = carol
        .run(&["download", "team", &id, "-o", out.to_str().unwrap()])
        .await
        .expect(9);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    carol
        .ok(&[
            "download",
            "team",
            &id,
            "-o",
            out.to_str().unwrap(),
            "--force",
        ])
        .await;
    assert!(std::fs::read(&out).unwrap() == bytes);

    // To stdout, through a pipe: the bytes and nothing else.
    let mut cmd = carol.command();
    cmd.args(["download", "team", &id, "-o", "-"]);
    let piped = quicproquo_testkit::process::output(&mut cmd).await;
    assert_eq!(piped.status.code(), Some(0), "{piped:?}");
    assert!(piped.stdout == bytes, "stdout is the file");
    assert!(piped.stderr.is_empty(), "{:?}", piped.stderr);
    let leftovers: Vec<_> = std::fs::read_dir(carol.home.join("data/default"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("qpq-ctl-stdout")
        })
        .collect();
    assert!(leftovers.is_empty(), "the scratch copy is removed");

    // recv and history show it: JSON fields, people's line.
    let batch = carol.json(&["recv", "--conversation", "team"]).await;
    let with_file = batch
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .expect("recv has the message");
    assert_eq!(with_file["attachment"]["sha256"], sha);
    assert_eq!(with_file["attachment"]["state"], "downloaded");
    let people = bob.ok(&["history", "team"]).await;
    let shown = format!("📎 report.bin ({}", human_size(size));
    assert!(people.contains(&shown), "{people}");
    assert!(people.contains("the numbers"), "{people}");
}

/// What `qpq-ctl` prints for a size (decimal units, one decimal).
fn human_size(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// A file of a few MiB from alice, downloaded byte-identical by bob and
/// carol, every way a script downloads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sent_by_one_is_downloaded_identical_by_two() {
    let root = crate::harness::root();
    sent_file(root.path(), 3 * 1024 * 1024 + 12_345).await;
}

/// The figure of 50 MiB (a few seconds of crypto in the test
/// profile, but three copies of it on disk): `--ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "50 MiB: run with --ignored"]
async fn a_50_mib_file_is_downloaded_identical_by_two() {
    let root = crate::harness::root();
    sent_file(root.path(), 50 * 1024 * 1024).await;
}

/// `--no-wait` answers while the upload may still run; the stream tells
/// when it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_returns_at_once_and_recv_reports_the_end() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_with(&bob, "hi").await;
    let (mut follow, mut lines) = alice.spawn(&["recv", "--follow", "--json"]);
    let file = alice.home.join("notes.txt");
    std::fs::write(&file, "some notes\n").unwrap();
    let m = alice
        .run_stdin(
            &[
                "--json",
                "send",
                "@bob",
                "--file",
                file.to_str().unwrap(),
                "--no-wait",
                "--type",
                "text/plain",
                "--name",
                "renamed.txt",
                "--caption",
                "-",
            ],
            Some("a caption\nfrom stdin\n".as_bytes()),
        )
        .await
        .expect(0)
        .json();
    assert_eq!(m["text"], "a caption\nfrom stdin", "{m}");
    let a = &m["attachment"];
    assert_eq!(a["name"], "renamed.txt");
    assert_eq!(a["content_type"], "text/plain");
    assert!(a["state"] == "uploading" || a["state"] == "uploaded", "{m}");
    let end = transfer_end(&mut lines, "up", m["id"].as_str().unwrap()).await;
    assert_eq!(end["state"], "uploaded", "{end}");
    assert_eq!(terminate(&mut follow).await, 0);
    eventually("bob has the file's message", || async {
        let h = bob.json(&["history", "@alice"]).await;
        h.as_array()
            .unwrap()
            .iter()
            .any(|x| x["attachment"]["name"] == "renamed.txt")
    })
    .await;
    // On a terminal (script(1) gives it one), the wait draws a bar.
    if !on_path("script") {
        quicproquo_testkit::skip::skip("the progress bar on a terminal", "no script(1)");
        return;
    }
    let big = alice.home.join("big.bin");
    std::fs::write(&big, contents(2 * 1024 * 1024)).unwrap();
    let mut cmd = alice.command_for("script");
    // No TERM is a dumb terminal, where nothing is drawn either.
    cmd.env("TERM", "xterm").args([
        "-qefc",
        &format!("\"$CTL\" send @bob --file {}", big.display()),
        "/dev/null",
    ]);
    let tty = quicproquo_testkit::process::output(&mut cmd).await;
    let seen = String::from_utf8_lossy(&tty.stdout);
    assert_eq!(tty.status.code(), Some(0), "{seen}");
    assert!(
        seen.contains("big.bin") && (seen.contains('\r') || seen.contains('\u{1b}')),
        "a bar was drawn: {seen:?}"
    );
}

/// Refusals a script tells apart by status, said before anything is sent
/// (no daemon needed for these: none is started).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_and_options_are_refused_before_anything_is_sent() {
    let root = crate::harness::root();
    let alice = User::new(root.path(), "alice");
    let missing = alice
        .run(&["send", "team", "--file", "/nonexistent/x.pdf"])
        .await;
    missing.expect(9);
    let missing = alice
        .run(&["send", "team", "--file", "/nonexistent/x.pdf"])
        .await;
    assert!(
        missing.stderr.contains("/nonexistent/x.pdf") && missing.stderr.contains("no such file"),
        "{}",
        missing.stderr
    );
    let dir = alice
        .run(&[
            "--json",
            "send",
            "team",
            "--file",
            root.path().to_str().unwrap(),
        ])
        .await
        .expect(9);
    let err: Value = serde_json::from_str(&dir.stderr).unwrap();
    assert_eq!(err["error"]["kind"], "invalid_input");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is a directory"),
        "{err}"
    );
    // A relative path is resolved where qpq-ctl runs.
    let rel = alice
        .run_in(root.path(), &["send", "team", "--file", "no-such.txt"])
        .await
        .expect(9);
    let expected = root.path().join("no-such.txt");
    assert!(
        rel.stderr.contains(expected.to_str().unwrap()),
        "{}",
        rel.stderr
    );

    for args in [
        &["send", "team", "text", "--file", "/etc/hostname"][..],
        &["send", "team", "--caption", "x"],
        &["send", "team", "hi", "--no-wait"],
        &["download", "team"],
        &["download", "team", "not-an-id"],
    ] {
        alice.run(args).await.expect(2);
    }
    let both = alice
        .run(&["--json", "download", "team", &"ab".repeat(16), "-o", "-"])
        .await
        .expect(2);
    assert!(both.stderr.contains("--json"), "{}", both.stderr);
    assert!(alice.daemon_pid().is_none(), "no daemon was started");
}

/// A message without a file, and one that is not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_of_what_is_not_a_file() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_with(&bob, "just text").await;
    let history = bob.json(&["history", "@alice"]).await;
    let id = history[0]["id"].as_str().unwrap().to_owned();
    let r = bob
        .run_in(&bob.home, &["download", "@alice", &id])
        .await
        .expect(9);
    assert!(r.stderr.contains("no attachment"), "{}", r.stderr);
    let r = bob
        .run(&["download", "@alice", &"ab".repeat(16)])
        .await
        .expect(5);
    assert!(r.stderr.contains("no message"), "{}", r.stderr);
}

/// `download --json` of alice's file `id` into `target` ends with `status`
/// and the JSON error of that `kind`.
async fn download_refused(bob: &User, id: &str, target: &Path, status: i32, kind: &str) {
    let target = target.to_str().unwrap();
    let r = bob
        .run(&["--json", "download", "@alice", id, "-o", target])
        .await
        .expect(status);
    let err: Value = serde_json::from_str(&r.stderr).unwrap();
    assert_eq!(err["error"]["kind"], kind, "{err}");
}

/// A file changed on the server fails its check on the way down: status 14,
/// and nothing at the path, not even a part of it. A file the server no
/// longer has: status 15.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_file_is_corrupt_and_a_deleted_one_expired() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_with(&bob, "a file follows").await;
    let file = alice.home.join("ledger.bin");
    std::fs::write(&file, contents(300 * 1024)).unwrap();
    let m = alice
        .json(&["send", "@bob", "--file", file.to_str().unwrap()])
        .await;
    let id = m["id"].as_str().unwrap().to_owned();

    // The server's copy: the one finished blob file in its blob directory.
    let blobs = srv.config.data_dir.join("blobs");
    let stored: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            !name.contains("sqlite") && !name.ends_with(".part")
        })
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let mut bytes = std::fs::read(&stored[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&stored[0], &bytes).unwrap();

    bob.wait_for_file(&id).await;
    let target = bob.home.join("ledger.bin");
    let r = bob
        .run(&["download", "@alice", &id, "-o", target.to_str().unwrap()])
        .await
        .expect(14);
    assert!(r.stderr.contains("integrity check"), "{}", r.stderr);
    download_refused(&bob, &id, &target, 14, "corrupt").await;
    let left: Vec<_> = std::fs::read_dir(&bob.home)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("ledger"))
        .collect();
    assert!(left.is_empty(), "nothing written: {left:?}");

    // Gone from the server (as expiry leaves it): status 15 when the
    // download finds out, and again at once when asked after that.
    let db = rusqlite::Connection::open(blobs.join("blobs.sqlite3")).unwrap();
    db.execute("DELETE FROM blobs", []).unwrap();
    drop(db);
    std::fs::remove_file(&stored[0]).unwrap();
    for _ in 0..2 {
        download_refused(&bob, &id, &target, 15, "expired").await;
        assert!(!target.exists());
    }
    let people = bob.ok(&["history", "@alice"]).await;
    assert!(
        people.contains("[expired: the server no longer has it]"),
        "{people}"
    );
}

/// The server's size limit and quota: status 6 with the E-code and a hint
/// naming the setting; nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_limit_and_quota_are_refusals_naming_the_limit() {
    let srv = Server::start_with(|c| {
        c.quotas.blobs.max_blob_bytes = 1024 * 1024;
        c.quotas.blobs.quota_bytes = 1536 * 1024;
    })
    .await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_with(&bob, "limits").await;
    let big = alice.home.join("big.bin");
    std::fs::write(&big, contents(1024 * 1024 + 1)).unwrap();
    let r = alice
        .run(&["--json", "send", "@bob", "--file", big.to_str().unwrap()])
        .await
        .expect(6);
    let err: Value = serde_json::from_str(&r.stderr).unwrap();
    assert_eq!(err["error"]["server_code"], "E052", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1048576"),
        "the message names the limit: {err}"
    );
    assert!(
        err["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("blob_max_mib"),
        "{err}"
    );
    let part = alice.home.join("part.bin");
    std::fs::write(&part, contents(900 * 1024)).unwrap();
    alice
        .ok(&["send", "@bob", "--file", part.to_str().unwrap()])
        .await;
    let r = alice
        .run(&["send", "@bob", "--file", part.to_str().unwrap()])
        .await
        .expect(6);
    assert!(
        r.stderr.contains("[E053]") && r.stderr.contains("quota"),
        "{}",
        r.stderr
    );
    let history = alice.json(&["history", "@bob"]).await;
    let files = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["attachment"].is_object())
        .count();
    assert_eq!(files, 1, "the refused files are not in the history");
}

/// `send --file` waiting on an upload survives a `kill -9` of its daemon:
/// it starts qpqd again, which resumes the upload, and ends with success
/// when it is done; the member gets the file byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_send_survives_a_daemon_killed_mid_upload() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [mut alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_with(&bob, "a big one follows").await;
    // Slow pieces (one at a time, 100 ms each), so that the upload is still
    // going on once `attach` answered: attach starts uploading while it
    // encrypts, and a daemon killed before it answered sent nothing.
    alice
        .restart_daemon_with(&[("QPQ_TEST_TRANSFER_DELAY_MS", "100")])
        .await;
    let bytes = contents(8 * 1024 * 1024);
    let file = alice.home.join("big.bin");
    std::fs::write(&file, &bytes).unwrap();
    let (mut send, mut lines) =
        alice.spawn(&["--json", "send", "@bob", "--file", file.to_str().unwrap()]);

    // Mid-upload: `attach` answered (the message is in alice's history)
    // and the server holds part of it. Should the upload still win the
    // race, the test checks the rest, and says so.
    let attached = || async {
        let r = alice.run(&["--json", "history", "@bob"]).await;
        r.code == 0
            && r.json()
                .as_array()
                .is_some_and(|all| all.iter().any(|m| m["attachment"]["state"] == "uploading"))
    };
    let blobs = srv.config.data_dir.join("blobs");
    let part_held = || {
        std::fs::read_dir(&blobs).is_ok_and(|dir| {
            dir.filter_map(Result::ok).any(|e| {
                e.file_name().to_string_lossy().ends_with(".part")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            })
        })
    };
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    let mut killed = None;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no upload reached the server"
        );
        if send.try_wait().unwrap().is_some() {
            eprintln!("the upload ended before it could be interrupted");
            break;
        }
        if part_held() && attached().await {
            let pid = alice.daemon_pid().expect("alice's daemon runs");
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).unwrap(),
                rustix::process::Signal::KILL,
            )
            .unwrap();
            killed = Some(pid);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }

    let m = next_json(&mut lines).await;
    let status = tokio::time::timeout(crate::harness::WAIT, send.wait())
        .await
        .expect("send ends")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(m["attachment"]["state"], "uploaded", "{m}");
    if let Some(pid) = killed {
        assert_ne!(alice.daemon_pid(), Some(pid), "a new daemon finished it");
    }
    let id = m["id"].as_str().unwrap();
    bob.wait_for_file(id).await;
    let out = bob.home.join("big.bin");
    bob.ok(&["download", "@alice", id, "-o", out.to_str().unwrap()])
        .await;
    assert!(std::fs::read(&out).unwrap() == bytes, "bob's copy differs");
}
