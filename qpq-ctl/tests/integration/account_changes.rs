//! `passwd` and `account delete` through the real binaries: a server, the
//! users' daemons, and qpq-ctl with its prompts fed on stdin.

use serde_json::Value;

use crate::harness::{eventually, root, Server, User};

const NEW_PASSWORD: &str = "alice's brand new password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwd_changes_the_password_and_account_delete_removes_everything() {
    let root = root();
    let srv = Server::start().await;
    let [alice, bob] = User::registered(root.path(), &srv, ["alice", "bob"]).await;
    let passwd = |stdin: String| {
        let alice = &alice;
        async move {
            alice
                .run_stdin(&["passwd", "--password-stdin"], Some(stdin.as_bytes()))
                .await
        }
    };

    let wrong = passwd(format!("not her password\n{NEW_PASSWORD}\n"))
        .await
        .expect(6);
    assert!(wrong.stderr.contains("E011"), "{}", wrong.stderr);
    let short = passwd(format!("{}\nshort\n", alice.password))
        .await
        .expect(9);
    assert!(short.stderr.contains("at least"), "{}", short.stderr);
    passwd(format!("{}\n{NEW_PASSWORD}\n", alice.password))
        .await
        .expect(0);

    alice.ok(&["logout"]).await;
    alice
        .account_run(&srv, "login", "alice", &alice.password)
        .await
        .expect(6);
    alice
        .account_run(&srv, "login", "alice", NEW_PASSWORD)
        .await
        .expect(0);
    alice.wait_online().await;
    alice
        .dm_with(&bob, "still here after the new password")
        .await;

    let delete = |confirm: &'static str, password: &'static str| {
        let alice = &alice;
        async move {
            alice
                .run_stdin(
                    &[
                        "account",
                        "delete",
                        "--confirm",
                        confirm,
                        "--password-stdin",
                    ],
                    Some(format!("{password}\n").as_bytes()),
                )
                .await
        }
    };
    let typo = delete("alcie", NEW_PASSWORD).await.expect(9);
    assert!(
        typo.stderr.contains("nothing was deleted"),
        "{}",
        typo.stderr
    );
    delete("alice", "not her password").await.expect(6);
    let pid = alice.daemon_pid().expect("alice's daemon runs");
    let deleted = delete("alice", NEW_PASSWORD).await.expect(0);
    assert!(deleted.stdout.contains("deleted"), "{}", deleted.stdout);

    let paths = quicproquo_testkit::home::paths(&alice.home).unwrap();
    eventually("alice's daemon exits and her profile is removed", || {
        let gone = !crate::harness::process_alive(pid as u64) && !paths.data_dir.exists();
        async move { gone }
    })
    .await;
    assert!(
        !paths.stopped_marker.exists(),
        "a deleted profile is not stopped on purpose: the next command starts afresh"
    );

    // The directory no longer knows her, and her name is never given out again.
    let carol = User::new(root.path(), "carol");
    carol.register(&srv).await;
    let gone = carol.run(&["dm", "alice"]).await.expect(6);
    assert!(gone.stderr.contains("E051"), "{}", gone.stderr);
    let taker = User::new(root.path(), "taker");
    let taken = taker
        .account_run(&srv, "register", "alice", "a password for the taker")
        .await
        .expect(6);
    assert!(
        taken.stderr.contains("E012"),
        "the name is taken: {}",
        taken.stderr
    );
}

/// Whether `members` (a `--json members` answer) lists `name` as deleted;
/// `None` when `name` is not listed.
fn deleted_mark(members: &Value, name: &str) -> Option<bool> {
    members
        .as_array()?
        .iter()
        .find(|m| m["username"] == name)
        .map(|m| m["deleted"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_member_shows_as_deleted_until_removed_and_her_name_stays_hers() {
    let root = root();
    let srv = Server::start().await;
    let [alice, bob, carol] = User::registered(root.path(), &srv, ["alice", "bob", "carol"]).await;
    alice
        .json(&["group", "create", "team", "bob", "carol"])
        .await;
    alice.dm_with(&carol, "hello carol").await;

    carol
        .run_stdin(
            &[
                "account",
                "delete",
                "--confirm",
                "carol",
                "--password-stdin",
            ],
            Some(format!("{}\n", carol.password).as_bytes()),
        )
        .await
        .expect(0);

    // Listing the members looks them up again in the background.
    eventually("alice's members list shows carol as deleted", || async {
        let r = alice.run(&["--json", "members", "team"]).await;
        r.code == 0 && deleted_mark(&r.json(), "carol") == Some(true)
    })
    .await;
    let members = alice.json(&["members", "team"]).await;
    assert_eq!(deleted_mark(&members, "bob"), Some(false), "{members}");
    let table = alice.ok(&["members", "team"]).await;
    let line = table
        .lines()
        .find(|l| l.contains("carol"))
        .expect("carol listed");
    assert!(line.contains("(deleted account)"), "{table}");

    // Her DM can no longer be sent to, and says why.
    let refused = alice
        .run(&["send", "@carol", "are you there?"])
        .await
        .expect(6);
    assert!(refused.stderr.contains("E051"), "{}", refused.stderr);
    // A look-up of her name says the account was deleted.
    let looked_up = bob.run(&["dm", "carol"]).await.expect(6);
    assert!(looked_up.stderr.contains("E051"), "{}", looked_up.stderr);

    // Once removed, she (and her mark) are gone from the list.
    alice.json(&["group", "remove", "team", "carol"]).await;
    let members = alice.json(&["members", "team"]).await;
    assert_eq!(deleted_mark(&members, "carol"), None, "{members}");
    assert!(
        !alice.ok(&["members", "team"]).await.contains("deleted"),
        "no member is marked any more"
    );

    // Her name is never given to anyone else.
    let taker = User::new(root.path(), "taker");
    let taken = taker
        .account_run(&srv, "register", "carol", "a password for the taker")
        .await
        .expect(6);
    assert!(taken.stderr.contains("E012"), "{}", taken.stderr);
}
