//! Every documented exit status that a test can provoke, with its message
//! on stderr (and its hint), nothing on stdout, and the JSON form.

use quicproquo_testkit::skip::skip;
use serde_json::Value;

use crate::harness::{Server, User};

/// The exact limit qpq-ctl enforces (`input::MAX_TEXT_BYTES`).
const MAX_TEXT_BYTES: usize = 64 * 1024;

#[track_caller]
fn says(run: &crate::harness::Run, words: &[&str]) {
    for w in words {
        assert!(
            run.stderr.contains(w),
            "stderr lacks {w:?}: {:?}",
            run.stderr
        );
    }
    assert_eq!(run.stdout, "", "errors go to stderr only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_error_has_its_status_and_says_what_to_do() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    let eve = User::new(root.path(), "eve");
    alice.ok(&["dm", "bob"]).await;

    // 2: usage.
    says(&alice.run(&["history"]).await.expect(2), &["Usage"]);
    says(
        &alice
            .run(&["history", "@bob", "--limit", "0"])
            .await
            .expect(2),
        &["1 to 500"],
    );
    says(
        &alice.run(&["frobnicate"]).await.expect(2),
        &["unrecognized subcommand"],
    );
    // No terminal to prompt on (a new session has no controlling terminal).
    if std::path::Path::new("/usr/bin/setsid").exists() {
        let mut cmd = alice.command_for("/usr/bin/setsid");
        cmd.args([
            "-w",
            crate::harness::CTL,
            "login",
            "--server",
            "127.0.0.1:1",
            "alice",
        ]);
        let out = quicproquo_testkit::process::output(&mut cmd).await;
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("--password-stdin"), "{stderr}");
    } else {
        skip("the no-terminal check", "no /usr/bin/setsid");
    }

    // 3: daemon unreachable.
    says(
        &eve.run(&["--no-autostart", "whoami"]).await.expect(3),
        &["qpqd is not running", "qpq-ctl daemon start"],
    );

    // 4: not logged in (eve's daemon starts on demand; she has no account).
    says(
        &eve.run(&["whoami"]).await.expect(4),
        &["no account", "qpq-ctl login"],
    );

    // 5: not found, conversation or user.
    says(
        &alice.run(&["send", "nosuch", "hi"]).await.expect(5),
        &["nosuch", "qpq-ctl list"],
    );
    says(&alice.run(&["dm", "nobody"]).await.expect(5), &["nobody"]);
    says(
        &alice.run(&["members", "@nobody"]).await.expect(5),
        &["@nobody"],
    );
    says(
        &alice
            .run(&["recv", "--conversation", "nosuch"])
            .await
            .expect(5),
        &["nosuch"],
    );

    // 9: a new account's password must be long enough (the server never
    // sees it, so nobody could ever say it is weak).
    let short = eve
        .run_stdin(
            &[
                "register",
                "--server",
                &srv.addr.to_string(),
                "--password-stdin",
                "eve",
            ],
            Some(b"hunter2\n"),
        )
        .await
        .expect(9);
    says(&short, &["password is 7 characters", "at least 10"]);

    // 6: refused by the server, with its E-code.
    let addr = srv.addr.to_string();
    let taken = eve
        .run_stdin(
            &["register", "--server", &addr, "--password-stdin", "alice"],
            Some(b"a long enough password\n"),
        )
        .await
        .expect(6);
    says(
        &taken,
        &["E012", "already registered", "choose another username"],
    );
    let json = eve
        .run_stdin(
            &[
                "--json",
                "register",
                "--server",
                &addr,
                "--password-stdin",
                "alice",
            ],
            Some(b"a long enough password\n"),
        )
        .await
        .expect(6);
    assert_eq!(json.stdout, "");
    let e: Value = serde_json::from_str(&json.stderr).unwrap();
    assert_eq!(e["error"]["exit_code"], 6);
    assert_eq!(e["error"]["kind"], "refused");
    assert_eq!(e["error"]["server_code"], "E012");
    assert!(e["error"]["hint"].is_string());
    alice.ok(&["logout"]).await;
    // 4 again: logged out, so nothing that needs the server works.
    says(
        &alice.run(&["dm", "nobody"]).await.expect(4),
        &["not logged in", "qpq-ctl login"],
    );
    says(
        &alice
            .run_stdin(
                &["login", "--server", &addr, "--password-stdin", "alice"],
                Some(b"wrong\n"),
            )
            .await
            .expect(6),
        &["E011", "password"],
    );
    let password = format!("{}\n", alice.password);
    let back = alice
        .run_stdin(
            &["login", "--server", &addr, "--password-stdin", "alice"],
            Some(password.as_bytes()),
        )
        .await
        .expect(0);
    assert!(
        back.stdout.starts_with("logged in as alice"),
        "{}",
        back.stdout
    );

    // 9: invalid input, refused before anything is sent.
    says(
        &alice.run(&["send", "@bob", ""]).await.expect(9),
        &["empty"],
    );
    says(
        &alice.run(&["send", "@bob", " \n\t "]).await.expect(9),
        &["empty"],
    );
    says(
        &alice
            .run_stdin(&["send", "@bob"], Some(b"\n\n"))
            .await
            .expect(9),
        &["empty"],
    );
    says(
        &alice
            .run_stdin(&["send", "@bob", "-"], Some(b"caf\xe9\n"))
            .await
            .expect(9),
        &["UTF-8"],
    );
    let too_big = "x".repeat(MAX_TEXT_BYTES + 1);
    says(
        &alice
            .run_stdin(&["send", "@bob"], Some(too_big.as_bytes()))
            .await
            .expect(9),
        &["65536"],
    );
    says(
        &alice.run(&["send", "@bob", &too_big]).await.expect(9),
        &["65537 bytes", "65536"],
    );
    // Even with no daemon to ask: checked before connecting.
    let offline = User::new(root.path(), "offline");
    says(
        &offline
            .run_stdin(
                &["--no-autostart", "send", "@bob"],
                Some(too_big.as_bytes()),
            )
            .await
            .expect(9),
        &["nothing was sent"],
    );
    assert!(offline.daemon_pid().is_none(), "no daemon was started");
    // Exactly the limit goes through, intact.
    let max: String = "é".repeat(MAX_TEXT_BYTES / 2);
    alice
        .run_stdin(&["send", "@bob"], Some(max.as_bytes()))
        .await
        .expect(0);
    bob.wait_for_text("@alice", &max).await;
    says(
        &eve.run_stdin(
            &["register", "--server", &addr, "--password-stdin", "Not OK"],
            Some(b"a long enough password\n"),
        )
        .await
        .expect(9),
        &["username"],
    );
    says(
        &eve.run_stdin(
            &["register", "--server", &addr, "--password-stdin", "eve"],
            Some(b"\n"),
        )
        .await
        .expect(9),
        &["password", "empty"],
    );

    // 10: conflict: a second account in one profile.
    says(
        &alice
            .run_stdin(
                &["register", "--server", &addr, "--password-stdin", "alice2"],
                Some(b"a long enough password\n"),
            )
            .await
            .expect(10),
        &["already has an account", "--profile"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_daemon_is_status_8_until_unlocked() {
    let root = crate::harness::root();
    // No QPQ_PASSPHRASE and no keyring (no D-Bus in the environment).
    let user = User::with_passphrase(root.path(), "locked", None);
    let status = user.json(&["status"]).await;
    assert_eq!(status["keystore"], "locked");
    let locked = user.run(&["whoami"]).await.expect(8);
    assert!(
        locked.stderr.contains("qpq-ctl unlock"),
        "{}",
        locked.stderr
    );
    user.run_stdin(&["unlock", "--passphrase-stdin"], Some(b"a passphrase\n"))
        .await
        .expect(0);
    user.run(&["whoami"]).await.expect(4);
    assert_eq!(user.json(&["status"]).await["keystore"], "passphrase");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_status_7() {
    let mut srv = Server::start().await;
    let root = crate::harness::root();
    let alice = User::new(root.path(), "alice");
    alice.register(&srv).await;
    srv.stop().await;
    let down = alice.run(&["dm", "bob"]).await.expect(7);
    assert!(down.stderr.contains("network"), "{}", down.stderr);
}

/// 12: another local user poses as qpqd. A listener run as `nobody` sits at
/// alice's socket path, in a directory that is alice's own and private (as
/// if it had been swapped in after the directory check); qpq-ctl connects,
/// sees the peer's uid, and leaves without sending a byte: the listener
/// records one connection that carried nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_run_by_another_user_gets_nothing() {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

    let runuser = std::path::Path::new("/usr/sbin/runuser");
    if !runuser.exists() || rustix::process::geteuid().as_raw() != 0 {
        skip(
            "a_daemon_run_by_another_user_gets_nothing",
            "needs root and runuser to listen as another user",
        );
        return;
    }
    let root = crate::harness::root();
    let alice = User::new(root.path(), "alice");
    let paths = quicproquo_testkit::home::paths(&alice.home).unwrap();
    quicproquo_protocol::paths::ensure_private_dir(&paths.runtime_dir).unwrap();
    let chmod = |dir: &std::path::Path, mode| {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // `nobody` must reach the directory, and bind in it once.
    for dir in paths.runtime_dir.ancestors().skip(1) {
        if dir.starts_with(root.path()) {
            chmod(dir, 0o755);
        }
    }
    chmod(&paths.runtime_dir, 0o777);
    // Accepts connections one at a time and prints how many bytes each
    // carried (up to a newline: one request), until one says END.
    let script = format!(
        "import socket\n\
         s=socket.socket(socket.AF_UNIX)\ns.settimeout(20)\ns.bind({:?})\ns.listen(8)\n\
         print('READY', flush=True)\n\
         while True:\n  c,_=s.accept()\n  data=b''\n\
         \x20 while not data.endswith(b'\\n'):\n    chunk=c.recv(4096)\n    if not chunk: break\n    data+=chunk\n\
         \x20 c.close()\n  if data==b'END': break\n  print('RECEIVED', len(data), flush=True)\n",
        paths.socket.display().to_string()
    );
    let mut fake = tokio::process::Command::new(runuser)
        .args(["-u", "nobody", "--", "python3", "-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(fake.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(crate::harness::WAIT, lines.next_line())
        .await
        .expect("the fake daemon starts")
        .unwrap();
    assert_eq!(ready.as_deref(), Some("READY"));
    // Private again, and alice's: only the peer's uid gives the fake away.
    chmod(&paths.runtime_dir, 0o700);

    let run = alice.run(&["whoami"]).await.expect(12);
    says(
        &run,
        &[
            "refusing",
            "runs as uid",
            "nothing was sent",
            "posing as qpqd",
        ],
    );
    let json = alice.run(&["--json", "whoami"]).await.expect(12);
    let err: Value = serde_json::from_str(&json.stderr).unwrap();
    assert_eq!(err["error"]["kind"], "untrusted_daemon", "{err}");

    let mut end = std::os::unix::net::UnixStream::connect(&paths.socket).unwrap();
    std::io::Write::write_all(&mut end, b"END").unwrap();
    drop(end);
    let mut rest = String::new();
    tokio::time::timeout(
        crate::harness::WAIT,
        lines.into_inner().read_to_string(&mut rest),
    )
    .await
    .expect("the fake daemon ends")
    .unwrap();
    assert_eq!(
        rest, "RECEIVED 0\nRECEIVED 0\n",
        "qpq-ctl connected twice and sent nothing"
    );
}

/// A state whose counter file was tampered with while qpqd was down:
/// `status` says so on an `integrity:` line and exits 13 (with `--json`
/// too); `ack-integrity` clears it and `status` is 0 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_state_is_status_13_until_acknowledged() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let alice = User::new(root.path(), "alice");
    alice.register(&srv).await;
    assert!(alice.ok(&["status"]).await.contains("integrity:"));
    alice.ok(&["daemon", "stop"]).await;

    let mut counter = quicproquo_testkit::home::paths(&alice.home)
        .unwrap()
        .state_file
        .into_os_string();
    counter.push(".counter");
    let mut bytes = std::fs::read(&counter).unwrap();
    bytes[12] ^= 0x40;
    std::fs::write(&counter, bytes).unwrap();

    alice.ok(&["daemon", "start"]).await;
    let held = alice.run(&["status"]).await.expect(13);
    assert!(
        held.stdout.contains("integrity:")
            && held.stdout.contains("counter_invalid")
            && held.stdout.contains("ack-integrity"),
        "{}",
        held.stdout
    );
    let json = alice.run(&["status", "--json"]).await.expect(13).json();
    assert_eq!(json["integrity"], "counter_invalid", "{json}");

    alice.run(&["ack-integrity"]).await.expect(0);
    let clean = alice.run(&["status"]).await.expect(0);
    assert!(clean.stdout.contains("integrity:"), "{}", clean.stdout);
    assert!(
        !clean.stdout.contains("counter_invalid"),
        "{}",
        clean.stdout
    );
}
