//! `qpq-ctl export` end to end: a conversation holding every kind of
//! message (text, a reply, reactions, an edit, a delete for everyone, lines
//! and characters Markdown and HTML give meaning to, a picture from the other
//! member and a file of one's own, both downloaded byte-identical beside the
//! export, or only listed with `--no-attachments`) exported by a member in
//! the three formats and compared with snapshot files; a group whose
//! peer-chosen name is a path with `<script>` in it gets a safe file name
//! and an escaped page; an earlier export is not overwritten without
//! `--force`; a tampered file is listed as corrupt; an interrupted export
//! leaves no file. And, with `--ignored`, the figure: 100,000 messages.
//!
//! Snapshots (`snapshots/export-team.{jsonl,md,html}`) are compared after
//! [`normalise`]; `QPQ_UPDATE_SNAPSHOTS=1` writes them instead (then read
//! the diff before committing it).

use std::path::Path;

use quicproquo_protocol::ipc::client::IpcClient;
use quicproquo_protocol::ipc::methods::{method, AttachParams};
use serde_json::Value;

use crate::actions::{message, team};
use crate::harness::{eventually, Server, User};

/// The group's name as bob chose it: a path, with markup.
const EVIL: &str = "../<script>alert(1)</script>";
/// What the exporter makes of it.
const EVIL_FILE: &str = "__script_alert(1)__script_";

/// An export's text with what differs between runs replaced, so the rest
/// can be compared with a snapshot exactly:
/// - the test's temporary directory → `<root>`;
/// - each distinct run of exactly 32 hex digits (message and conversation
///   ids) → `<id1>`, `<id2>`… in order of first appearance, so a reply still
///   points at the message it quotes;
/// - times: RFC 3339 (`2026-…T…Z`) and local with offset (`2026-… … +00:00`)
///   → `<time>`, Unix milliseconds (any run of 13 digits) → `<ms>`;
/// - `"unread":N` → `"unread":<n>` (read state is not the export's).
///
/// 64 hex digits (an attachment's SHA-256 of fixed bytes) stay.
pub fn normalise(text: &str, root: &Path) -> String {
    let text = text.replace(&root.display().to_string(), "<root>");
    let chars: Vec<char> = text.chars().collect();
    let mut ids: Vec<String> = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let run =
        |from: usize, f: fn(char) -> bool| chars[from..].iter().take_while(|c| f(**c)).count();
    while i < chars.len() {
        let boundary = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if boundary {
            if let Some(len) = time_at(&chars[i..]) {
                out.push_str("<time>");
                i += len;
                continue;
            }
            let hex = run(i, |c| c.is_ascii_digit() || ('a'..='f').contains(&c));
            let after = chars
                .get(i + hex)
                .is_none_or(|c| !c.is_ascii_alphanumeric());
            if hex == 32 && after {
                let id: String = chars[i..i + 32].iter().collect();
                let n = match ids.iter().position(|x| *x == id) {
                    Some(n) => n + 1,
                    None => {
                        ids.push(id);
                        ids.len()
                    }
                };
                out.push_str(&format!("<id{n}>"));
                i += 32;
                continue;
            }
            let digits = run(i, |c| c.is_ascii_digit());
            if digits == 13 && after_digits(&chars, i + 13) {
                out.push_str("<ms>");
                i += 13;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("\"unread\":") {
        let (head, tail) = rest.split_at(at + "\"unread\":".len());
        result.push_str(head);
        result.push_str("<n>");
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    result.push_str(rest);
    result
}

fn after_digits(chars: &[char], at: usize) -> bool {
    chars.get(at).is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// The length of a time at the start of `s`: `YYYY-MM-DDTHH:MM:SS[.fff]Z`
/// or `YYYY-MM-DD HH:MM:SS ±HH:MM`.
fn time_at(s: &[char]) -> Option<usize> {
    let shape = |pattern: &str, s: &[char]| {
        pattern.len() <= s.len()
            && pattern.chars().zip(s).all(|(p, c)| match p {
                'd' => c.is_ascii_digit(),
                's' => *c == '+' || *c == '-',
                p => p == *c,
            })
    };
    if shape("dddd-dd-dd dd:dd:dd sdd:dd", s) {
        return Some(26);
    }
    if shape("dddd-dd-ddTdd:dd:dd", s) {
        let mut n = 19;
        if s.get(n) == Some(&'.') {
            n += 1 + s[n + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        }
        return (s.get(n) == Some(&'Z')).then_some(n + 1);
    }
    None
}

/// Compares `actual` (normalised) with the snapshot file `name`, or writes
/// it under `QPQ_UPDATE_SNAPSHOTS=1`.
fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration/snapshots")
        .join(name);
    if std::env::var_os("QPQ_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} ({e}): run with QPQ_UPDATE_SNAPSHOTS=1", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from its snapshot at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
             whole export:\n{actual}",
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

/// Waits until `check` holds for the message `id` in `user`'s `team`.
async fn wait_message(user: &User, id: &str, what: &str, check: fn(&Value) -> bool) {
    eventually(&format!("{}: {what}", user.name), || async {
        check(&message(user, id).await)
    })
    .await;
}

/// `user` attaches `file` in `conversation` through the IPC (what `send
/// --file` does); returns the message.
async fn attach(
    user: &User,
    conversation: &str,
    file: &Path,
    caption: &str,
    content_type: Option<&str>,
) -> quicproquo_protocol::ipc::values::Message {
    let ipc = IpcClient::connect(&quicproquo_testkit::home::paths(&user.home).unwrap())
        .await
        .unwrap();
    ipc.request::<method::Attach>(AttachParams {
        conversation: conversation.parse().unwrap(),
        path: file.to_str().unwrap().into(),
        caption: caption.into(),
        name: None,
        content_type: content_type.map(str::to_owned),
        confirm_changed_keys: false,
        reply_to: None,
    })
    .await
    .unwrap()
}

fn id(sent: &Value) -> String {
    sent["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_message_exports_as_its_snapshot_and_peer_names_are_defused() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;

    let question = team(&alice, &bob).await;
    let reply_text = "sure, at 3 — *bring* <b>snacks</b> & `tea` [x](http://e.invalid)";
    let reply = id(&alice
        .json(&["send", "team", reply_text, "--reply-to", &question])
        .await);
    bob.wait_for_text("team", reply_text).await;
    bob.ok(&["react", "team", &reply, "👍"]).await;
    alice.ok(&["react", "team", &question, "🎉"]).await;
    alice
        .ok(&["edit", "team", &reply, "sure, at teatime"])
        .await;
    let oops = id(&bob.json(&["send", "team", "oops, wrong chat"]).await);
    alice.wait_for_text("team", "oops, wrong chat").await;
    bob.ok(&["delete", "team", &oops]).await;
    let lines = "line one\n# not a heading\n1. not a list\n\n    not code <i>";
    bob.ok(&["send", "team", lines]).await;
    alice.wait_for_text("team", lines).await;
    wait_message(&alice, &reply, "bob's reaction", |m| {
        m["reactions"][0]["by"][0] == "bob"
    })
    .await;
    wait_message(&alice, &oops, "the delete", |m| m["deleted"] == true).await;
    // A picture from bob, with a caption, its name with a space.
    let picture: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let source = root.path().join("white board.png");
    std::fs::write(&source, &picture).unwrap();
    attach(&bob, "team", &source, "the plan", Some("image/png")).await;
    alice.wait_for_text("team", "the plan").await;
    // And one of alice's own, without a caption: exported from the server
    // like the others once it is uploaded.
    let notes = root.path().join("notes.txt");
    std::fs::write(&notes, "bring: tea, snacks\n").unwrap();
    let own = attach(&alice, "team", &notes, "", None).await;
    wait_message(&alice, &own.id.to_hex(), "her file uploaded", |m| {
        m["attachment"]["state"] == "uploaded" && m["state"] == "sent"
    })
    .await;

    // A group named by bob with a path and markup, and a message with markup.
    bob.ok(&["group", "create", EVIL, "alice"]).await;
    let script = "<script>alert('x')</script> & <img src=x onerror=alert(2)>";
    eventually("alice is in bob's group", || async {
        alice.run(&["members", EVIL]).await.code == 0
    })
    .await;
    bob.ok(&["send", EVIL, script]).await;
    alice.wait_for_text(EVIL, script).await;

    for (format, ext) in [("jsonl", "jsonl"), ("markdown", "md"), ("html", "html")] {
        let dir = root.path().join(format!("export-{format}"));
        let dir_arg = dir.to_str().unwrap();
        let summary = alice
            .json(&["export", "--format", format, "--out", dir_arg])
            .await;
        let conversations = summary["conversations"].as_array().unwrap();
        assert_eq!(conversations.len(), 2, "{summary}");
        let team = conversations.iter().find(|c| c["name"] == "team").unwrap();
        assert_eq!(team["messages"], 6, "{summary}");
        assert_eq!(team["attachments"]["downloaded"], 2, "{summary}");
        let file = dir.join("team-files/white board.png");
        assert_eq!(std::fs::read(&file).unwrap(), picture, "{}", file.display());
        // The history in plain text: for the owner only.
        let mode = |p: &Path| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("team-files")), 0o700);
        assert_eq!(mode(&file), 0o600, "the daemon writes downloads private");
        let file = dir.join("team-files/notes.txt");
        assert_eq!(std::fs::read(&file).unwrap(), b"bring: tea, snacks\n");
        let team_file = dir.join(format!("team.{ext}"));
        assert_eq!(mode(&team_file), 0o600);
        assert_eq!(team["file"], team_file.to_str().unwrap(), "{summary}");
        let text = std::fs::read_to_string(&team_file).unwrap();
        snapshot(
            &format!("export-team.{ext}"),
            &normalise(&text, root.path()),
        );

        // The peer's group name is one harmless file name, in the directory.
        let evil = dir.join(format!("{EVIL_FILE}.{ext}"));
        let page = std::fs::read_to_string(&evil).unwrap_or_else(|e| {
            let listed: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
            panic!("{} ({e}); the directory holds {listed:?}", evil.display())
        });
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "nothing else written: {names:?}");
        if format == "html" {
            assert!(
                !page.contains("<script") && !page.contains("<img"),
                "{page}"
            );
            assert!(
                page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;")
                    && page.contains("<h1>../&lt;script&gt;alert(1)&lt;/script&gt;</h1>"),
                "{page}"
            );
        }
        if format == "jsonl" {
            let last: Value = serde_json::from_str(page.lines().last().unwrap()).unwrap();
            assert_eq!(last["text"], script, "jsonl keeps the text as written");
        }
    }

    // Not over an earlier export without --force, then with it.
    let dir = root.path().join("export-html");
    let dir_arg = dir.to_str().unwrap();
    let again = alice
        .run(&["export", "team", "--out", dir_arg])
        .await
        .expect(9);
    assert!(
        again.stderr.contains("team.html exists"),
        "{}",
        again.stderr
    );
    let forced = alice
        .json(&["export", "team", "--out", dir_arg, "--force"])
        .await;
    assert_eq!(forced["conversations"][0]["messages"], 6, "{forced}");
    assert_eq!(
        forced["conversations"][0]["attachments"]["downloaded"], 2,
        "{forced}"
    );
    let listed = alice
        .json(&[
            "export",
            "team",
            "--no-attachments",
            "--out",
            root.path().join("bare").to_str().unwrap(),
        ])
        .await;
    assert_eq!(
        listed["conversations"][0]["attachments"]["skipped"], 2,
        "{listed}"
    );
    assert!(!root.path().join("bare/team-files").exists());
    let unknown = alice.run(&["export", "nowhere", "--out", dir_arg]).await;
    assert_eq!(unknown.code, 5, "{}", unknown.stderr);

    // For people: a line per conversation as it is done, then where.
    let dir = root.path().join("for-people");
    let said = alice
        .ok(&[
            "export",
            "team",
            "--format",
            "markdown",
            "--out",
            dir.to_str().unwrap(),
        ])
        .await;
    assert_eq!(
        said,
        format!(
            "team: 6 messages, 2 files → {0}/team.md\nexported 1 conversation to {0}\n",
            dir.display()
        )
    );
}

/// A file whose bytes on the server were tampered with fails its check when
/// the export downloads it: it is listed as corrupt, nothing is kept, and
/// the export still writes the conversation and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_attachment_is_listed_and_the_export_goes_on() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    alice.dm_with(&bob, "hi bob").await;
    let file = root.path().join("report.bin");
    std::fs::write(&file, vec![7u8; 200_000]).unwrap();
    attach(&bob, "@alice", &file, "the report", None).await;
    alice.wait_for_text("@bob", "the report").await;

    // The one finished blob on the server, a byte in its middle flipped.
    let blobs: Vec<_> = std::fs::read_dir(srv.config.data_dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().len() == 32)
        .collect();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let mut bytes = std::fs::read(&blobs[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&blobs[0], bytes).unwrap();

    let dir = root.path().join("export");
    let summary = alice
        .json(&[
            "export",
            "@bob",
            "--format",
            "jsonl",
            "--out",
            dir.to_str().unwrap(),
        ])
        .await;
    let written = &summary["conversations"][0];
    assert_eq!(written["messages"], 2, "{summary}");
    assert_eq!(written["attachments"]["failed"], 1, "{summary}");
    assert_eq!(written["attachments"]["downloaded"], 0, "{summary}");
    let text = std::fs::read_to_string(written["file"].as_str().unwrap()).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let error = last["attachment"]["export_error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.starts_with("corrupt"), "{last}");
    assert!(last["attachment"].get("export_path").is_none(), "{last}");
    // Nothing half-written or unchecked is left beside the export.
    let left: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "jsonl"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn normalising_keeps_what_matters() {
    let root = Path::new("/tmp/qpqXYZ");
    let id1 = "0123456789abcdef0123456789abcdef";
    let id2 = "fedcba9876543210fedcba9876543210";
    let sha = "ab".repeat(32);
    let text = format!(
        "{{\"id\":\"{id1}\",\"reply\":\"{id2}\",\"again\":\"{id1}\",\"sha256\":\"{sha}\",\
         \"timestamp_ms\":1775397723123,\"size\":1234,\"unread\":3,\
         \"timestamp\":\"2026-04-05T14:02:03.123Z\",\"path\":\"/tmp/qpqXYZ/a\"}} \
         2026-04-05 16:02:03 +02:00 <time datetime=\"2026-04-05T14:02:03Z\">"
    );
    assert_eq!(
        normalise(&text, root),
        format!(
            "{{\"id\":\"<id1>\",\"reply\":\"<id2>\",\"again\":\"<id1>\",\"sha256\":\"{sha}\",\
             \"timestamp_ms\":<ms>,\"size\":1234,\"unread\":<n>,\
             \"timestamp\":\"<time>\",\"path\":\"<root>/a\"}} \
             <time> <time datetime=\"<time>\">"
        )
    );
}

/// The figure (BENCHMARKS.md): `export` of one conversation of 10,000 and
/// then 100,000 messages, in each format — wall time and the qpq-ctl
/// process's peak RSS (GNU time's `%M`), which must not grow with the
/// history — beside a baseline from the same run: the same history paged
/// through `history` alone by an IPC client in this process, writing
/// nothing. The history is written straight into alice's stopped daemon's
/// state with qpqd's own db functions (a tenth of the messages replies).
///
/// `cargo test -j2 -p quicproquo-ctl --test integration figure_export -- --ignored --nocapture`
/// (`QPQ_EXPORT_SIZES=1000,5000` for other sizes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a figure for BENCHMARKS.md; takes a minute"]
async fn figure_export_of_a_long_history() {
    use std::time::Instant;

    use quicproquo_protocol::ipc::methods::{method, HistoryParams};
    use quicproquo_protocol::ipc::values::Limit;

    const GNU_TIME: &str = "/usr/bin/time";
    if !Path::new(GNU_TIME).exists() {
        quicproquo_testkit::skip::skip("figure_export", "no GNU time at /usr/bin/time");
        return;
    }
    let sizes: Vec<usize> = std::env::var("QPQ_EXPORT_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    println!(
        "export figure: load average {}",
        quicproquo_testkit::bench::load_average()
    );
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    team(&alice, &bob).await;
    let mut stored = 1;
    for size in sizes {
        alice.ok(&["daemon", "stop"]).await;
        fill(&alice.home, "alice's state passphrase", size - stored);
        stored = size;
        alice.ok(&["daemon", "start"]).await;

        let paths = quicproquo_testkit::home::paths(&alice.home).unwrap();
        let client = quicproquo_protocol::ipc::client::IpcClient::connect(&paths)
            .await
            .unwrap();
        let started = Instant::now();
        let (mut before, mut read) = (None, 0);
        loop {
            let page = client
                .request::<method::History>(HistoryParams {
                    conversation: "team".parse().unwrap(),
                    before,
                    limit: Limit::new(Limit::MAX).unwrap(),
                })
                .await
                .unwrap();
            let Some(oldest) = page.first() else { break };
            before = Some(oldest.id);
            read += page.len();
        }
        let baseline = started.elapsed();
        assert_eq!(read, size);
        println!(
            "{size} messages: history paged alone (baseline) {:.2} s",
            baseline.as_secs_f64()
        );
        for format in ["jsonl", "markdown", "html"] {
            let dir = root.path().join(format!("figure-{size}-{format}"));
            let mut cmd = alice.command_for(GNU_TIME);
            cmd.args(["-f", "%e %M"])
                .arg(crate::harness::CTL)
                .args(["--json", "export", "team", "--format", format, "--out"])
                .arg(&dir);
            let out = tokio::time::timeout(std::time::Duration::from_secs(600), cmd.output())
                .await
                .expect("the export ends within 10 minutes")
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(summary["conversations"][0]["messages"], size, "{summary}");
            let measured = stderr.lines().last().unwrap_or_default();
            let (secs, kib) = measured.split_once(' ').unwrap();
            let bytes = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .sum::<u64>();
            println!(
                "{size} messages: export --format {format:8} {secs} s, peak RSS {:.1} MiB, \
                 file {:.1} MiB",
                kib.parse::<f64>().unwrap() / 1024.0,
                bytes as f64 / (1024.0 * 1024.0)
            );
        }
        let hwm = alice
            .daemon_pid()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
            })
            .unwrap_or_default();
        println!("{size} messages: qpqd's peak RSS since its start {hwm}");
    }
}

/// An export stopped by SIGTERM while it writes leaves nothing behind: the
/// conversation's temporary file goes with it, and no file under the
/// conversation's name claims to be an export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_export_leaves_no_file() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    team(&alice, &bob).await;
    alice.ok(&["daemon", "stop"]).await;
    // Long enough that writing it takes a while, in a debug build too.
    fill(&alice.home, "alice's state passphrase", 30_000);
    alice.ok(&["daemon", "start"]).await;
    let dir = root.path().join("export");
    let (mut child, _stdout) = alice.spawn(&[
        "export",
        "team",
        "--format",
        "html",
        "--out",
        dir.to_str().unwrap(),
    ]);
    // The page is being written once its temporary file is there.
    eventually("the export writes its page", || async {
        std::fs::read_dir(&dir).is_ok_and(|mut entries| {
            entries.any(|e| {
                e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".qpq-export-"))
            })
        })
    })
    .await;
    assert_eq!(crate::harness::terminate(&mut child).await, 1);
    let left = walk(&dir);
    assert!(left.is_empty(), "{left:?}");
}

/// Adds `n` messages to team in the stopped daemon's state in `home`,
/// alternately bob's and alice's, one second apart, every tenth a reply to
/// the one before.
fn fill(home: &Path, passphrase: &str, n: usize) {
    use quicproquo_daemon::db::{self, messages};
    use quicproquo_daemon::{keystore, state};

    let dir = home.join("data/default");
    let (key, _) =
        keystore::obtain(&dir, "default", &keystore::OsKeyring, Some(passphrase)).unwrap();
    let c = state::open(&dir.join("qpq-state.bin"), &key).unwrap();
    let conv = db::conversations::resolve(&c, "team").unwrap().unwrap();
    let words = "the quick brown fox jumps over the lazy dog while the export runs on";
    let start = db::now_ms() - 1000 * n as u64;
    let mut previous = None;
    c.execute_batch("BEGIN").unwrap();
    for i in 0..n {
        let ours = i % 2 == 1;
        let m = messages::Message {
            id: db::Id::random(),
            conversation: conv.id,
            sender: if ours { "alice" } else { "bob" }.into(),
            timestamp_ms: start + 1000 * i as u64,
            text: format!("message {i}: {}", &words[..(i * 7) % words.len()]),
            outgoing: ours,
            state: if ours {
                messages::State::Sent
            } else {
                messages::State::Received
            },
            extra: messages::Extra {
                reply_to: previous.filter(|_| i % 10 == 7),
                ..Default::default()
            },
        };
        messages::insert(&c, &m).unwrap();
        previous = Some((m.id, m.sender));
    }
    c.execute_batch("COMMIT").unwrap();
}
