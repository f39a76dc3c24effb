//! `group create/add/remove/leave/rekey` and `members`, seen from every side.

use serde_json::Value;

use crate::harness::{eventually, Server, User};

fn names(members: &Value) -> Vec<String> {
    let mut v: Vec<String> = members
        .as_array()
        .expect("an array")
        .iter()
        .map(|m| match m {
            Value::String(s) => s.clone(),
            m => m["username"].as_str().expect("username").to_owned(),
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_create_add_remove_rekey_leave() {
    let srv = Server::start().await;
    let root = crate::harness::root();
    let [alice, bob, carol] = User::registered(root.path(), &srv, ["alice", "bob", "carol"]).await;

    let team = alice.json(&["group", "create", "team", "bob"]).await;
    assert_eq!(team["kind"], "group");
    assert_eq!(team["name"], "team");
    assert_eq!(team["ciphersuite"], "hybrid");
    assert_eq!(names(&team["members"]), ["alice", "bob"]);

    let added = alice.json(&["group", "add", "team", "carol"]).await;
    assert_eq!(added["id"], team["id"]);
    assert_eq!(names(&added["members"]), ["alice", "bob", "carol"]);
    let members = alice.json(&["members", "team"]).await;
    assert_eq!(names(&members), ["alice", "bob", "carol"]);
    assert!(members[0]["identity"].as_str().unwrap().len() == 64);
    let table = alice.ok(&["members", "team"]).await;
    assert!(table.starts_with("USERNAME"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");

    eventually("bob and carol see all three", || async {
        for u in [&bob, &carol] {
            let r = u.run(&["--json", "members", "team"]).await;
            if r.code != 0 || names(&r.json()) != ["alice", "bob", "carol"] {
                return false;
            }
        }
        true
    })
    .await;

    alice.ok(&["send", "team", "hello team"]).await;
    carol.wait_for_text("team", "hello team").await;
    bob.wait_for_text("team", "hello team").await;
    let got = carol.json(&["recv", "--conversation", "team"]).await;
    assert_eq!(crate::harness::texts(&got), ["hello team"]);
    assert_eq!(got[0]["conversation_name"], "team");

    // Remove carol; the rest go on without her.
    let removed = alice.json(&["group", "remove", "team", "carol"]).await;
    assert_eq!(names(&removed["members"]), ["alice", "bob"]);
    eventually("carol is out", || async {
        let r = carol.run(&["--json", "members", "team"]).await;
        r.code != 0 || !names(&r.json()).contains(&"carol".to_owned())
    })
    .await;
    let refused = carol
        .run(&["send", "team", "am I still here?"])
        .await
        .expect(5);
    assert!(refused.stderr.contains("team"), "{}", refused.stderr);

    // Re-key: the epoch moves forward every time.
    let e1 = alice.json(&["group", "rekey", "team"]).await["epoch"]
        .as_u64()
        .unwrap();
    let e2 = alice.json(&["group", "rekey", "team"]).await["epoch"]
        .as_u64()
        .unwrap();
    assert!(e2 > e1, "{e1} then {e2}");
    let human = alice.ok(&["group", "rekey", "team"]).await;
    assert!(human.starts_with("re-keyed team: epoch "), "{human}");
    // bob may re-key too (his commit is ordered by the server).
    eventually("bob re-keys after alice", || async {
        bob.run(&["group", "rekey", "team"]).await.code == 0
    })
    .await;

    alice.ok(&["send", "team", "after carol left"]).await;
    bob.wait_for_text("team", "after carol left").await;
    assert!(
        !carol
            .texts("team")
            .await
            .contains(&"after carol left".to_owned()),
        "a removed member reads nothing new"
    );

    // bob leaves; alice sees it.
    assert_eq!(
        bob.json(&["group", "leave", "team"]).await,
        serde_json::json!({})
    );
    eventually("alice sees bob leave", || async {
        names(&alice.json(&["members", "team"]).await) == ["alice"]
    })
    .await;

    // A classic-suite group, created with members in one go.
    let classic = alice
        .json(&[
            "group",
            "create",
            "ops",
            "bob",
            "carol",
            "--ciphersuite",
            "classic",
        ])
        .await;
    assert_eq!(classic["ciphersuite"], "classic");
    assert_eq!(names(&classic["members"]), ["alice", "bob", "carol"]);
}
