//! The daemon's notifications (issue 17 item 9), over real daemons and a
//! real server: the receiving daemon runs a `notify_command` hook
//! (`QPQ_NOTIFY_COMMAND`), a small script that appends the JSON it reads to
//! a file the test watches; and, where `dbus-daemon` exists, desktop
//! notifications to a fake notification server on a private session bus.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use quicproquo_protocol::ipc::client::IpcClient;
use quicproquo_protocol::ipc::methods::{method, ConversationSettingsParams, FocusParams};
use quicproquo_protocol::ipc::values::{Ciphersuite, ConversationRef, NotifyMode};
use quicproquo_testkit::agent::eventually;
use serde_json::Value;

use crate::harness::{paths_for, Daemon, Server};

/// The hook's output file and the environment that makes a daemon run it.
struct Hook {
    out: PathBuf,
    pid: PathBuf,
    env: Vec<(&'static str, OsString)>,
}

impl Hook {
    /// A hook that appends each notification's JSON (one line) to `out`,
    /// and `LEAKED` if it was given the state's passphrase; for a
    /// conversation named `hang` it then hangs (its pid in `pid`).
    fn new(dir: &Path) -> Hook {
        let (out, pid) = (dir.join("notified"), dir.join("hang.pid"));
        let script = dir.join("hook.sh");
        std::fs::write(
            &script,
            format!(
                r#"line=$(cat)
[ -n "$QPQ_PASSPHRASE" ] && echo LEAKED >> '{out}'
printf '%s\n' "$line" >> '{out}'
case "$line" in *'"conversation_name":"hang"'*) echo $$ > '{pid}'; exec sleep 60;; esac
"#,
                out = out.display(),
                pid = pid.display()
            ),
        )
        .unwrap();
        let argv = serde_json::json!(["sh", script]).to_string();
        Hook {
            out,
            pid,
            env: vec![
                ("QPQ_NOTIFY_COMMAND", argv.into()),
                ("QPQ_TEST_NOTIFY_DEADLINE_MS", "1000".into()),
            ],
        }
    }

    /// Every notification so far.
    fn notified(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        assert!(!text.contains("LEAKED"), "the hook saw QPQ_PASSPHRASE");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The notifications for the conversation named `name`.
    fn about(&self, name: &str) -> Vec<Value> {
        self.notified()
            .into_iter()
            .filter(|n| n["conversation_name"] == name)
            .collect()
    }

    /// Waits until `name` has had `n` notifications, and returns them.
    async fn wait_for(&self, name: &str, n: usize) -> Vec<Value> {
        eventually(&format!("{n} notifications about {name}"), || async {
            let about = self.about(name);
            (about.len() >= n).then_some(about)
        })
        .await
        .unwrap()
    }

    /// Messages the notifications about `name` stand for.
    fn counted(&self, name: &str) -> u64 {
        self.about(name)
            .iter()
            .map(|n| n["count"].as_u64().unwrap())
            .sum()
    }
}

async fn focus(client: &IpcClient, conversation: Option<&str>) {
    client
        .request::<method::Focus>(FocusParams {
            conversation: conversation.map(|c| ConversationRef::parse(c).unwrap()),
        })
        .await
        .unwrap();
}

/// Sets `conversation`'s `notify` and `notify_content` on `daemon`.
async fn choose(daemon: &Daemon, conversation: &str, notify: NotifyMode, content: bool) {
    daemon
        .client
        .request::<method::ConversationSettingsMethod>(ConversationSettingsParams {
            conversation: ConversationRef::parse(conversation).unwrap(),
            read_receipts: None,
            typing: None,
            timer_seconds: None,
            notify: Some(notify),
            notify_content: Some(content),
        })
        .await
        .unwrap();
}

/// Hidden content by default, our own messages never, a focused
/// conversation not while it is focused (and again once the connection
/// that focused it closes), and a burst as one notification naming the
/// count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_notify_without_their_content_once_per_burst_and_not_where_focused() {
    let srv = Server::start().await;
    let root = quicproquo_testkit::home::root();
    let hook = Hook::new(root.path());
    let alice = Daemon::start(root.path(), "alice").await;
    alice.register(&srv).await;
    let mut bob = Daemon::start_with_env(root.path(), "bob", &hook.env).await;
    bob.register(&srv).await;

    alice.dm_open("bob").await.unwrap();
    alice.send("@bob", "the secret plan").await.unwrap();
    let dm = hook.wait_for("@alice", 1).await;
    assert_eq!(dm[0]["count"], 1);
    assert_eq!(dm[0]["mentions_me"], false);
    assert!(dm[0]["timestamp_ms"].as_u64().unwrap() > 0);
    assert!(
        dm[0].get("text").is_none() && dm[0].get("sender").is_none(),
        "content hidden by default: {}",
        dm[0]
    );
    let bobs_dm = bob.wait_for("@alice", "the secret plan").await;
    assert_eq!(dm[0]["conversation"], bobs_dm.conversation.to_hex());
    // Bob's own message notifies nobody on his side.
    bob.send("@alice", "noted").await.unwrap();
    alice.wait_for("@bob", "noted").await;

    // A front-end shows the team: nothing about it while it does.
    alice
        .create_group("team", &["bob"], Ciphersuite::Hybrid)
        .await;
    bob.wait_for_conversation("team").await;
    let tui = IpcClient::connect(&paths_for(&bob.home)).await.unwrap();
    focus(&tui, Some("team")).await;
    alice.send("team", "seen in the TUI").await.unwrap();
    bob.wait_for("team", "seen in the TUI").await;
    // The notifier takes events in order: once the DM's notification is
    // there, the team message before it was decided on.
    alice.send("@bob", "a barrier").await.unwrap();
    hook.wait_for("@alice", 2).await;
    assert!(hook.about("team").is_empty(), "{:?}", hook.notified());
    focus(&tui, None).await;
    alice.send("team", "not shown anywhere").await.unwrap();
    hook.wait_for("team", 1).await;

    // The connection that focused goes (the TUI quits): the focus with it.
    focus(&tui, Some("team")).await;
    drop(tui);
    let before = hook.counted("team");
    eventually("the team notifies again after the TUI quit", || async {
        alice.send("team", "are you there?").await.unwrap();
        bob.wait_for("team", "are you there?").await;
        alice.send("@bob", "a barrier").await.unwrap();
        bob.wait_for("@alice", "a barrier").await;
        (hook.counted("team") > before).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        hook.notified().len(),
        hook.about("team").len() + hook.about("@alice").len()
    );

    // 20 messages while bob's daemon is stopped arrive in one catch-up:
    // a notification or two, not twenty.
    bob.stop().await;
    let before = (hook.about("team").len(), hook.counted("team"));
    for i in 0..20 {
        alice.send("team", &format!("burst {i}")).await.unwrap();
    }
    alice.wait_outbox_empty().await;
    bob.start_again_with_env(&hook.env).await;
    bob.wait_for("team", "burst 19").await;
    eventually("all 20 counted", || async {
        (hook.counted("team") >= before.1 + 20).then_some(())
    })
    .await
    .unwrap();
    let burst = &hook.about("team")[before.0..];
    assert!(
        burst.len() <= 3,
        "{} notifications for 20 messages: {burst:?}",
        burst.len()
    );
    assert!(
        burst.iter().any(|n| n["count"].as_u64().unwrap() > 1),
        "{burst:?}"
    );
}

/// A server, alice, and bob whose daemon runs the notify hook, both in the
/// group `name`.
async fn hooked_group(name: &str) -> (Server, tempfile::TempDir, Hook, Daemon, Daemon) {
    let srv = Server::start().await;
    let root = quicproquo_testkit::home::root();
    let hook = Hook::new(root.path());
    let alice = Daemon::start(root.path(), "alice").await;
    alice.register(&srv).await;
    let bob = Daemon::start_with_env(root.path(), "bob", &hook.env).await;
    bob.register(&srv).await;
    alice
        .create_group(name, &["bob"], Ciphersuite::Hybrid)
        .await;
    bob.wait_for_conversation(name).await;
    (srv, root, hook, alice, bob)
}

/// `notify_content` shows the sender and the text; `mentions` lets only
/// a mention through; `none` nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_settings_choose_what_notifies_and_what_it_says() {
    let (_srv, _root, hook, alice, bob) = hooked_group("team").await;

    choose(&bob, "team", NotifyMode::All, true).await;
    alice
        .send("team", "lunch <at> noon & after?")
        .await
        .unwrap();
    let shown = hook.wait_for("team", 1).await;
    assert_eq!(shown[0]["sender"], "alice");
    assert_eq!(
        shown[0]["text"], "lunch <at> noon & after?",
        "as sent: JSON needs no markup escaping"
    );

    choose(&bob, "team", NotifyMode::Mentions, true).await;
    alice.send("team", "nothing for bob").await.unwrap();
    alice.send("team", "hey @bob, look").await.unwrap();
    let mentioned = hook.wait_for("team", 2).await;
    assert_eq!(mentioned[1]["text"], "hey @bob, look");
    assert_eq!(mentioned[1]["mentions_me"], true);
    assert_eq!(
        mentioned[1]["count"], 1,
        "the message without a mention does not count"
    );

    choose(&bob, "team", NotifyMode::None, true).await;
    alice.send("team", "into the void").await.unwrap();
    bob.wait_for("team", "into the void").await;
    alice.dm_open("bob").await.unwrap();
    alice.send("@bob", "a barrier").await.unwrap();
    hook.wait_for("@alice", 1).await;
    assert_eq!(hook.about("team").len(), 2, "{:?}", hook.notified());
}

/// A hook that hangs is killed at its deadline, and notifications go on
/// meanwhile and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_hook_is_killed_and_does_not_stop_the_next() {
    let (_srv, _root, hook, alice, _bob) = hooked_group("hang").await;
    alice.send("hang", "make it hang").await.unwrap();
    hook.wait_for("hang", 1).await;
    let pid = eventually("the hanging hook's pid", || async {
        std::fs::read_to_string(&hook.pid)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
    })
    .await
    .unwrap();
    alice.dm_open("bob").await.unwrap();
    alice.send("@bob", "still notified").await.unwrap();
    hook.wait_for("@alice", 1).await;
    eventually("the hanging hook is killed", || async {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        stat.map_or(true, |s| s.contains(") Z ")).then_some(())
    })
    .await
    .unwrap();
    alice.send("@bob", "and after").await.unwrap();
    hook.wait_for("@alice", 2).await;
}

/// Desktop notifications: `Notify` on the session bus, seen by a fake
/// notification server on a private bus.
#[cfg(all(unix, not(target_os = "macos")))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_notification_goes_over_dbus() {
    use quicproquo_testkit::dbus::{FakeNotifications, SessionBus};
    let bus = match SessionBus::start().await {
        Ok(bus) => bus,
        Err(why) => {
            quicproquo_testkit::skip::skip("a_desktop_notification_goes_over_dbus", &why);
            return;
        }
    };
    let server = FakeNotifications::serve(&bus.address).unwrap();
    let srv = Server::start().await;
    let root = quicproquo_testkit::home::root();
    let alice = Daemon::start(root.path(), "alice").await;
    alice.register(&srv).await;
    // Desktop notifications on (the test kit turns them off for daemons).
    let config = quicproquo_daemon::notifier::config_file(&paths_for(&root.path().join("bob")));
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "desktop = true\n").unwrap();
    let env = [("DBUS_SESSION_BUS_ADDRESS", OsString::from(&bus.address))];
    let bob = Daemon::start_with_env(root.path(), "bob", &env).await;
    bob.register(&srv).await;

    alice
        .create_group("a<b>&c", &["bob"], Ciphersuite::Hybrid)
        .await;
    bob.wait_for_conversation("a<b>&c").await;
    alice.send("a<b>&c", "<i>hidden</i>").await.unwrap();
    let shown = tokio::task::spawn_blocking(move || {
        let n = server.next();
        (n, server)
    })
    .await
    .unwrap();
    let (n, _server) = shown;
    let n = n.expect("a Notify call");
    assert_eq!(n.app_name, "quicproquo");
    assert_eq!(
        n.summary, "New message in a<b>&c",
        "the summary is plain text"
    );
    assert_eq!(n.body, "", "content hidden by default");
    assert_eq!(n.category.as_deref(), Some("im.received"));
}
