//! Engine scenarios, each run for every suite we offer: every member has its
//! own engine on its own SQLite file, bytes move by hand, and a tiny
//! [`Server`] accepts at most one commit per group epoch, like qpq-server.

use std::collections::HashMap;
use std::path::PathBuf;

use quicproquo_protocol::types::Username;
use rusqlite::Connection;
use tempfile::TempDir;

use super::*;

/// Runs a scenario `fn(Suite)` once per suite, as `name::hybrid` and
/// `name::classic` (the idea of openmls' `#[openmls_test]`).
macro_rules! for_each_suite {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn hybrid() {
                super::$name(super::Suite::Hybrid)
            }
            #[test]
            fn classic() {
                super::$name(super::Suite::Classic)
            }
        }
    )*};
}

for_each_suite!(
    lifecycle,
    concurrent_commits_do_not_fork,
    past_epoch_window,
    past_sender_survives_leaf_reuse,
    restart_continues_the_group,
    daemon_rollback_is_respected,
    garbage_is_an_error,
    leave_is_committed_by_another_member,
    key_package_kinds,
    key_packages_must_belong_to_who_they_were_fetched_for,
    the_server_can_follow_the_group,
);

struct Client {
    name: &'static str,
    seed: [u8; 32],
    db: PathBuf,
    engine: MlsEngine,
}

impl Client {
    fn new(dir: &TempDir, name: &'static str) -> Self {
        let seed: [u8; 32] = rand::random();
        let db = dir.path().join(format!("{name}.db"));
        let engine = open(&db, name, &seed);
        Self {
            name,
            seed,
            db,
            engine,
        }
    }

    /// Drops the engine and opens the same database again.
    fn restart(&mut self) {
        let placeholder = open_in_memory(self.name);
        drop(std::mem::replace(&mut self.engine, placeholder));
        self.engine = open(&self.db, self.name, &self.seed);
    }

    fn member(&self) -> Member {
        Member {
            username: user(self.name),
            identity: self.engine.identity_key(),
        }
    }

    fn kp(&mut self, suite: Suite) -> Vec<u8> {
        self.engine.key_packages(suite, 1).unwrap().remove(0)
    }

    fn send(&mut self, group: GroupId, text: &str) -> Vec<u8> {
        self.engine.encrypt(group, text.as_bytes()).unwrap()
    }

    /// Processes an application message and checks sender and text.
    fn expect_text(&mut self, msg: &[u8], from: &Client, text: &str) {
        match self.engine.process(msg) {
            Ok(Processed::Application {
                sender, plaintext, ..
            }) => {
                assert_eq!(sender, from.member(), "{} got a message", self.name);
                assert_eq!(plaintext, text.as_bytes());
            }
            other => panic!(
                "{} expected {text:?} from {}, got {other:?}",
                self.name, from.name
            ),
        }
    }

    fn expect_commit(&mut self, msg: &[u8]) -> CommitSummary {
        match self.engine.process(msg) {
            Ok(Processed::Commit(s)) => s,
            other => panic!("{} expected a commit, got {other:?}", self.name),
        }
    }
}

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn open(db: &std::path::Path, name: &str, seed: &[u8; 32]) -> MlsEngine {
    let conn = Connection::open(db).unwrap();
    MlsEngine::new(conn, Identity::from_seed(user(name), seed)).unwrap()
}

fn open_in_memory(name: &str) -> MlsEngine {
    let conn = Connection::open_in_memory().unwrap();
    MlsEngine::new(conn, Identity::from_seed(user(name), &[0; 32])).unwrap()
}

/// The part of qpq-server that matters here: one commit per group epoch.
#[derive(Default)]
struct Server {
    next: HashMap<GroupId, Epoch>,
}

impl Server {
    fn submit(&mut self, staged: &Staged) -> bool {
        let next = self.next.entry(staged.group).or_insert(staged.epoch);
        if *next == staged.epoch {
            *next = Epoch(staged.epoch.0 + 1);
            true
        } else {
            false
        }
    }
}

/// `owner` creates a group and adds `others` (one commit); everyone joins.
fn group_of(
    suite: Suite,
    server: &mut Server,
    owner: &mut Client,
    others: &mut [&mut Client],
) -> GroupId {
    let group = owner.engine.create_group(suite).unwrap();
    assert_eq!(owner.engine.suite(group).unwrap(), suite);
    let kps: Vec<Vec<u8>> = others.iter_mut().map(|c| c.kp(suite)).collect();
    let staged = owner.engine.add_members(group, &kps).unwrap();
    assert_eq!(staged.epoch, Epoch(0));
    assert!(server.submit(&staged));
    let summary = owner.engine.merge_pending(group).unwrap();
    assert_eq!(summary.epoch, Epoch(1));
    assert_eq!(
        summary.added,
        others.iter().map(|c| c.member()).collect::<Vec<_>>()
    );
    let welcome = staged.welcome.unwrap();
    let size = others.len() + 1;
    for c in others.iter_mut() {
        let joined = c.engine.join(&welcome).unwrap();
        assert_eq!(joined.group, group);
        assert_eq!(joined.suite, suite);
        assert_eq!(joined.epoch, Epoch(1));
        assert_eq!(joined.inviter, owner.member());
        assert_eq!(joined.members.len(), size);
    }
    group
}

/// Asserts that all clients agree on the group's epoch and members.
fn assert_in_sync(group: GroupId, clients: &[&Client]) {
    let epoch = clients[0].engine.epoch(group).unwrap();
    let members = clients[0].engine.members(group).unwrap();
    for c in clients {
        assert_eq!(c.engine.epoch(group).unwrap(), epoch, "{}'s epoch", c.name);
        assert_eq!(
            c.engine.members(group).unwrap(),
            members,
            "{}'s members",
            c.name
        );
    }
}

fn lifecycle(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::default();
    let (mut alice, mut bob, mut carol) = (
        Client::new(&dir, "alice"),
        Client::new(&dir, "bob"),
        Client::new(&dir, "carol"),
    );
    let g = group_of(suite, &mut server, &mut alice, &mut [&mut bob, &mut carol]);
    assert_in_sync(g, &[&alice, &bob, &carol]);
    assert_eq!(alice.engine.groups().unwrap(), vec![g]);

    let m = alice.send(g, "hello");
    bob.expect_text(&m, &alice, "hello");
    carol.expect_text(&m, &alice, "hello");
    let m = bob.send(g, "hi alice");
    alice.expect_text(&m, &bob, "hi alice");
    carol.expect_text(&m, &bob, "hi alice");

    // Remove carol.
    let staged = alice
        .engine
        .remove_members(g, &[Who::Username(user("carol"))])
        .unwrap();
    assert!(staged.welcome.is_none());
    assert!(server.submit(&staged));
    let s = alice.engine.merge_pending(g).unwrap();
    assert_eq!(s.removed, vec![carol.member()]);
    assert_eq!(s.committer, alice.member());
    let s = bob.expect_commit(&staged.commit);
    assert_eq!(s.removed, vec![carol.member()]);
    assert!(!s.we_were_removed);
    let s = carol.expect_commit(&staged.commit);
    assert!(s.we_were_removed);
    assert!(!carol.engine.is_active(g).unwrap());

    // Carol reads nothing sent after.
    let m = alice.send(g, "without carol");
    bob.expect_text(&m, &alice, "without carol");
    assert!(matches!(carol.engine.process(&m), Err(MlsError::NotMember(x)) if x == g));
    assert!(matches!(
        carol.engine.encrypt(g, b"x"),
        Err(MlsError::NotMember(_))
    ));

    // Bob rekeys; everyone continues.
    let staged = bob.engine.self_update(g).unwrap();
    assert!(server.submit(&staged));
    let s = bob.engine.merge_pending(g).unwrap();
    assert_eq!(s.updated, vec![bob.member()]);
    let s = alice.expect_commit(&staged.commit);
    assert_eq!(s.committer, bob.member());
    assert_eq!(s.updated, vec![bob.member()]);
    assert!(s.added.is_empty() && s.removed.is_empty());
    assert!(matches!(
        carol.engine.process(&staged.commit),
        Err(MlsError::NotMember(_))
    ));
    assert_in_sync(g, &[&alice, &bob]);
    assert_eq!(
        alice.engine.members(g).unwrap(),
        vec![alice.member(), bob.member()]
    );
    let m = alice.send(g, "after rekey");
    bob.expect_text(&m, &alice, "after rekey");
    let m = bob.send(g, "ack");
    alice.expect_text(&m, &bob, "ack");

    // Carol can drop the group.
    carol.engine.forget(g).unwrap();
    assert!(carol.engine.groups().unwrap().is_empty());
    assert!(matches!(
        carol.engine.epoch(g),
        Err(MlsError::UnknownGroup(_))
    ));
}

fn concurrent_commits_do_not_fork(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::default();
    let (mut alice, mut bob, mut carol) = (
        Client::new(&dir, "alice"),
        Client::new(&dir, "bob"),
        Client::new(&dir, "carol"),
    );
    let g = group_of(suite, &mut server, &mut alice, &mut [&mut bob, &mut carol]);

    // Round 1: alice and bob both commit in epoch 1; alice's wins.
    let a = alice.engine.self_update(g).unwrap();
    let b = bob
        .engine
        .remove_members(g, &[Who::Identity(carol.engine.identity_key())])
        .unwrap();
    assert_eq!(a.epoch, b.epoch);
    assert!(matches!(
        bob.engine.self_update(g),
        Err(MlsError::PendingCommit(_))
    ));
    assert!(server.submit(&a));
    assert!(!server.submit(&b));
    alice.engine.merge_pending(g).unwrap();
    bob.engine.clear_pending(g).unwrap();
    assert!(!bob.engine.has_pending_commit(g).unwrap());
    let s = bob.expect_commit(&a.commit);
    assert!(!s.dropped_own_commit);
    carol.expect_commit(&a.commit);
    // Bob rebases his commit on the new epoch.
    let b = bob
        .engine
        .remove_members(g, &[Who::Identity(carol.engine.identity_key())])
        .unwrap();
    assert_eq!(b.epoch, Epoch(a.epoch.0 + 1));
    assert!(server.submit(&b));
    bob.engine.merge_pending(g).unwrap();
    assert_eq!(alice.expect_commit(&b.commit).removed, vec![carol.member()]);
    assert!(carol.expect_commit(&b.commit).we_were_removed);
    assert_in_sync(g, &[&alice, &bob]);

    // Round 2: this time the loser processes the winner before hearing from
    // the server, which discards its pending commit.
    let a = alice.engine.self_update(g).unwrap();
    let b = bob.engine.self_update(g).unwrap();
    assert!(server.submit(&b));
    assert!(!server.submit(&a));
    bob.engine.merge_pending(g).unwrap();
    let s = alice.expect_commit(&b.commit);
    assert!(s.dropped_own_commit);
    alice.engine.clear_pending(g).unwrap(); // the refusal arrives: a no-op now
    assert!(matches!(
        alice.engine.merge_pending(g),
        Err(MlsError::NoPendingCommit(_))
    ));
    // The losing commit, if delivered anyway, is recognisably stale.
    assert!(matches!(
        bob.engine.process(&a.commit),
        Err(MlsError::StaleHandshake { .. })
    ));
    assert_in_sync(g, &[&alice, &bob]);
    let m = alice.send(g, "still one group");
    bob.expect_text(&m, &alice, "still one group");
    let m = bob.send(g, "yes");
    alice.expect_text(&m, &bob, "yes");
}

fn past_epoch_window(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::default();
    let (mut alice, mut bob, mut carol) = (
        Client::new(&dir, "alice"),
        Client::new(&dir, "bob"),
        Client::new(&dir, "carol"),
    );
    let g = group_of(suite, &mut server, &mut alice, &mut [&mut bob, &mut carol]);

    // Bob writes in epoch 1 while alice's commit is in flight.
    let early = bob.send(g, "sent before the commit");
    let old = bob.send(g, "will be too old");
    let c = alice.engine.self_update(g).unwrap();
    assert!(server.submit(&c));
    alice.engine.merge_pending(g).unwrap();
    carol.expect_commit(&c.commit);
    bob.expect_commit(&c.commit);
    // Processed after the commit, it still decrypts (max_past_epochs).
    carol.expect_text(&early, &bob, "sent before the commit");
    match alice.engine.process(&early) {
        Ok(Processed::Application { epoch, .. }) => assert_eq!(epoch, Epoch(1)),
        other => panic!("{other:?}"),
    }
    // The same message again is a replay.
    assert!(matches!(
        carol.engine.process(&early),
        Err(MlsError::Replay(_))
    ));

    // A message from the future (bob is ahead of carol by one commit).
    let c = bob.engine.self_update(g).unwrap();
    assert!(server.submit(&c));
    bob.engine.merge_pending(g).unwrap();
    let ahead = bob.send(g, "from epoch 3");
    assert!(matches!(
        carol.engine.process(&ahead),
        Err(MlsError::FutureEpoch {
            message: Epoch(3),
            current: Epoch(2),
            ..
        })
    ));
    alice.expect_commit(&c.commit);
    carol.expect_commit(&c.commit);
    carol.expect_text(&ahead, &bob, "from epoch 3");

    // Move the group MAX_PAST_EPOCHS more epochs on: epoch 1 is out of reach.
    for _ in 0..MAX_PAST_EPOCHS {
        let c = alice.engine.self_update(g).unwrap();
        assert!(server.submit(&c));
        alice.engine.merge_pending(g).unwrap();
        carol.expect_commit(&c.commit);
        bob.expect_commit(&c.commit);
    }
    let current = carol.engine.epoch(g).unwrap();
    assert_eq!(current, Epoch(3 + MAX_PAST_EPOCHS as u64));
    match carol.engine.process(&old) {
        Err(MlsError::TooOld {
            group,
            message,
            current: at,
        }) => {
            assert_eq!((group, message, at), (g, Epoch(1), current));
        }
        other => panic!("expected TooOld, got {other:?}"),
    }
    // ... while the window's oldest epoch still works.
    assert_in_sync(g, &[&alice, &bob, &carol]);
}

fn past_sender_survives_leaf_reuse(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::default();
    let (mut alice, mut bob, mut carol, mut dave) = (
        Client::new(&dir, "alice"),
        Client::new(&dir, "bob"),
        Client::new(&dir, "carol"),
        Client::new(&dir, "dave"),
    );
    let g = group_of(suite, &mut server, &mut alice, &mut [&mut bob, &mut carol]);
    let from_bob = bob.send(g, "last words");
    // Alice removes bob, then adds dave, who takes bob's (leftmost free) leaf.
    let c = alice
        .engine
        .remove_members(g, &[Who::Username(user("bob"))])
        .unwrap();
    assert!(server.submit(&c));
    alice.engine.merge_pending(g).unwrap();
    carol.expect_commit(&c.commit);
    let kp = dave.kp(suite);
    let c = alice.engine.add_members(g, &[kp]).unwrap();
    assert!(server.submit(&c));
    alice.engine.merge_pending(g).unwrap();
    assert_eq!(carol.expect_commit(&c.commit).added, vec![dave.member()]);
    dave.engine.join(&c.welcome.unwrap()).unwrap();
    assert_eq!(
        carol.engine.members(g).unwrap(),
        vec![alice.member(), dave.member(), carol.member()],
        "dave sits in bob's old leaf"
    );
    // Bob's message from two epochs ago is still bob's, not dave's.
    carol.expect_text(&from_bob, &bob, "last words");
    // Dave cannot read from before he joined.
    assert!(matches!(
        dave.engine.process(&from_bob),
        Err(MlsError::TooOld { .. })
    ));
    let m = dave.send(g, "hi");
    carol.expect_text(&m, &dave, "hi");
    alice.expect_text(&m, &dave, "hi");
}

fn restart_continues_the_group(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::default();
    let (mut alice, mut bob) = (Client::new(&dir, "alice"), Client::new(&dir, "bob"));
    let g = group_of(suite, &mut server, &mut alice, &mut [&mut bob]);
    let m = alice.send(g, "before restart");
    bob.expect_text(&m, &alice, "before restart");

    bob.restart();
    alice.restart();
    assert_eq!(bob.engine.groups().unwrap(), vec![g]);
    let m = alice.send(g, "after restart");
    bob.expect_text(&m, &alice, "after restart");
    let m = bob.send(g, "me too");
    alice.expect_text(&m, &bob, "me too");

    // A pending commit survives a restart, and so does the server's verdict.
    let c = bob.engine.self_update(g).unwrap();
    bob.restart();
    assert!(bob.engine.has_pending_commit(g).unwrap());
    assert!(server.submit(&c));
    bob.engine.merge_pending(g).unwrap();
    alice.expect_commit(&c.commit);
    bob.restart();
    assert_in_sync(g, &[&alice, &bob]);
    let m = bob.send(g, "rekeyed");
    alice.expect_text(&m, &bob, "rekeyed");

    // So does an unused key package: a Welcome made before the restart opens.
    let mut carol = Client::new(&dir, "carol");
    let kp = carol.kp(suite);
    carol.restart();
    let c = alice.engine.add_members(g, &[kp]).unwrap();
    assert!(server.submit(&c));
    alice.engine.merge_pending(g).unwrap();
    bob.expect_commit(&c.commit);
    carol.engine.join(&c.welcome.unwrap()).unwrap();
    let m = carol.send(g, "joined");
    alice.expect_text(&m, &carol, "joined");
    bob.expect_text(&m, &carol, "joined");
}

fn daemon_rollback_is_respected(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::default();
    let (mut alice, mut bob) = (Client::new(&dir, "alice"), Client::new(&dir, "bob"));
    let g = group_of(suite, &mut server, &mut alice, &mut [&mut bob]);
    let m = alice.send(g, "exactly once");
    // The daemon processes inside its own transaction, then fails to store
    // the plaintext and rolls back: the message must be readable again.
    bob.engine.connection().execute_batch("BEGIN").unwrap();
    bob.expect_text(&m, &alice, "exactly once");
    bob.engine.connection().execute_batch("ROLLBACK").unwrap();
    bob.expect_text(&m, &alice, "exactly once");
    assert!(matches!(bob.engine.process(&m), Err(MlsError::Replay(_))));
    // Likewise for a commit: rolled back, the group is back in its epoch.
    let c = alice.engine.self_update(g).unwrap();
    assert!(server.submit(&c));
    alice.engine.merge_pending(g).unwrap();
    let epoch = bob.engine.epoch(g).unwrap();
    bob.engine.connection().execute_batch("BEGIN").unwrap();
    bob.expect_commit(&c.commit);
    bob.engine.connection().execute_batch("ROLLBACK").unwrap();
    assert_eq!(bob.engine.epoch(g).unwrap(), epoch);
    bob.expect_commit(&c.commit);
    assert_in_sync(g, &[&alice, &bob]);
    let m = bob.send(g, "in sync");
    alice.expect_text(&m, &bob, "in sync");
}

/// A server handing out its own key package for bob, or mallory publishing
/// packages that name bob, is refused before anything is staged: the
/// package's leaf must carry the username and identity key asked for.
fn key_packages_must_belong_to_who_they_were_fetched_for(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let (mut alice, mut bob, mut mallory) = (
        Client::new(&dir, "alice"),
        Client::new(&dir, "bob"),
        Client::new(&dir, "mallory"),
    );
    let g = alice.engine.create_group(suite).unwrap();
    // mallory's package offered as bob's: another username and key.
    let swapped = [(bob.member(), mallory.kp(suite))];
    let e = alice.engine.add_members_of(g, &swapped).unwrap_err();
    assert!(
        matches!(&e, MlsError::InvalidKeyPackage(why) if why.contains("fetched for bob") && why.contains("mallory")),
        "{e}"
    );
    // bob's name with another identity key (a substituted key).
    let mut wrong_key = bob.member();
    wrong_key.identity = mallory.member().identity;
    let e = alice
        .engine
        .add_members_of(g, &[(wrong_key, bob.kp(suite))])
        .unwrap_err();
    assert!(matches!(e, MlsError::InvalidKeyPackage(_)), "{e}");
    assert!(
        !alice.engine.has_pending_commit(g).unwrap(),
        "nothing staged"
    );
    // The right owner is added.
    let c = alice
        .engine
        .add_members_of(g, &[(bob.member(), bob.kp(suite))])
        .unwrap();
    alice.engine.merge_pending(g).unwrap();
    bob.engine.join(&c.welcome.unwrap()).unwrap();
    assert_in_sync(g, &[&alice, &bob]);
}

fn garbage_is_an_error(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::default();
    let (mut alice, mut bob) = (Client::new(&dir, "alice"), Client::new(&dir, "bob"));
    let g = group_of(suite, &mut server, &mut alice, &mut [&mut bob]);
    let good = alice.send(g, "good");

    let mut inputs: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0xff; 64], b"hello world".to_vec()];
    for _ in 0..32 {
        let len = rand::random::<usize>() % 512;
        inputs.push((0..len).map(|_| rand::random::<u8>()).collect());
    }
    for cut in [1, 2, 4, 8, good.len() / 2, good.len() - 1] {
        inputs.push(good[..cut].to_vec());
    }
    let mut longer = good.clone();
    longer.push(0);
    inputs.push(longer);
    for bytes in &inputs {
        assert!(bob.engine.process(bytes).is_err(), "{bytes:02x?}");
        assert!(bob.engine.join(bytes).is_err());
        assert!(bob.engine.add_members(g, &[bytes]).is_err());
        let _ = classify(bytes); // must not panic
    }
    // Flipping any single byte of a real message never yields a message.
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        assert!(
            !matches!(bob.engine.process(&bad), Ok(Processed::Application { .. })),
            "flipped byte {i} still decrypted"
        );
    }
    // None of that disturbed the group.
    bob.expect_text(&good, &alice, "good");

    // Typed refusals for well-formed but wrong inputs.
    assert!(matches!(classify(&[]), Err(MlsError::Malformed(_))));
    let c = alice.engine.self_update(g).unwrap();
    assert_eq!(
        classify(&c.commit).unwrap(),
        Incoming::Group {
            group: g,
            epoch: c.epoch,
            content: ContentType::Commit
        }
    );
    alice.engine.clear_pending(g).unwrap();
    let kp = bob.kp(suite);
    assert_eq!(classify(&kp).unwrap(), Incoming::KeyPackage);
    assert!(matches!(
        bob.engine.process(&kp),
        Err(MlsError::Malformed(_))
    ));
    let mut eve = Client::new(&dir, "eve");
    let other = eve.engine.create_group(suite).unwrap();
    let stranger = eve.send(other, "not for you");
    assert!(matches!(
        bob.engine.process(&stranger),
        Err(MlsError::UnknownGroup(x)) if x == other
    ));
    let c = eve.engine.add_members(other, &[bob.kp(suite)]).unwrap();
    let welcome = c.welcome.unwrap();
    assert_eq!(classify(&welcome).unwrap(), Incoming::Welcome);
    assert!(matches!(
        bob.engine.process(&welcome),
        Err(MlsError::UnexpectedWelcome)
    ));
    assert!(matches!(
        alice.engine.join(&welcome),
        Err(MlsError::WelcomeNotForUs)
    ));
    assert!(matches!(
        alice
            .engine
            .remove_members(g, &[Who::Username(user("eve"))]),
        Err(MlsError::MemberNotFound(_))
    ));
    assert!(matches!(
        alice
            .engine
            .remove_members(g, &[Who::Username(user("alice"))]),
        Err(MlsError::RemoveSelf)
    ));
    assert!(matches!(
        alice.engine.add_members(g, &[bob.kp(suite)]),
        Err(MlsError::InvalidKeyPackage(_))
    ));
    let unknown = GroupId::from_slice(&[9; 16]).unwrap();
    assert!(matches!(
        alice.engine.encrypt(unknown, b"x"),
        Err(MlsError::UnknownGroup(_))
    ));
    let m = alice.send(g, "still fine");
    bob.expect_text(&m, &alice, "still fine");
}

fn leave_is_committed_by_another_member(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::default();
    let (mut alice, mut bob, mut carol) = (
        Client::new(&dir, "alice"),
        Client::new(&dir, "bob"),
        Client::new(&dir, "carol"),
    );
    let g = group_of(suite, &mut server, &mut alice, &mut [&mut bob, &mut carol]);

    let proposal = carol.engine.leave(g).unwrap();
    assert_eq!(
        classify(&proposal).unwrap(),
        Incoming::Group {
            group: g,
            epoch: Epoch(1),
            content: ContentType::Proposal
        }
    );
    for c in [&mut alice, &mut bob] {
        match c.engine.process(&proposal) {
            Ok(Processed::Proposal { sender, kind, .. }) => {
                assert_eq!(sender, carol.member());
                assert_eq!(kind, ProposalKind::Remove(carol.member()));
            }
            other => panic!("{other:?}"),
        }
    }
    // While it is queued, nobody can send until it is committed.
    assert!(matches!(
        alice.engine.encrypt(g, b"x"),
        Err(MlsError::PendingProposals(_))
    ));

    // Alice and bob both commit it, alice naming carol explicitly too (not
    // a duplicate removal); bob's commit wins.
    let a = alice
        .engine
        .remove_members(g, &[Who::Username(user("carol"))])
        .unwrap();
    let c = bob.engine.commit_pending_proposals(g).unwrap();
    assert!(server.submit(&c));
    assert!(!server.submit(&a));
    alice.engine.clear_pending(g).unwrap();
    let s = bob.engine.merge_pending(g).unwrap();
    assert_eq!(s.removed, vec![carol.member()]);
    let s = alice.expect_commit(&c.commit);
    assert_eq!(s.removed, vec![carol.member()]);
    assert_eq!(s.committer, bob.member());
    assert!(carol.expect_commit(&c.commit).we_were_removed);
    assert!(!carol.engine.is_active(g).unwrap());
    assert_in_sync(g, &[&alice, &bob]);
    assert_eq!(
        bob.engine.members(g).unwrap(),
        vec![alice.member(), bob.member()]
    );
    let m = alice.send(g, "bye carol");
    bob.expect_text(&m, &alice, "bye carol");
    assert!(matches!(
        carol.engine.process(&m),
        Err(MlsError::NotMember(_))
    ));

    // Carol is invited back: her stale state of the group is replaced.
    let kp = carol.kp(suite);
    let c = alice.engine.add_members(g, &[kp]).unwrap();
    assert!(server.submit(&c));
    alice.engine.merge_pending(g).unwrap();
    assert_eq!(bob.expect_commit(&c.commit).added, vec![carol.member()]);
    let joined = carol.engine.join(&c.welcome.unwrap()).unwrap();
    assert_eq!(joined.group, g);
    assert!(carol.engine.is_active(g).unwrap());
    assert_eq!(carol.engine.groups().unwrap(), vec![g]);
    assert_in_sync(g, &[&alice, &bob, &carol]);
    let m = carol.send(g, "back");
    alice.expect_text(&m, &carol, "back");
    bob.expect_text(&m, &carol, "back");
}

#[test]
fn engine_can_move_to_its_owner_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<MlsEngine>();
}

fn key_package_kinds(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::default();
    let (mut alice, mut bob, mut carol) = (
        Client::new(&dir, "alice"),
        Client::new(&dir, "bob"),
        Client::new(&dir, "carol"),
    );
    let kps = carol.engine.key_packages(suite, 3).unwrap();
    assert_eq!(kps.len(), 3);
    let last_resort = carol.engine.last_resort_key_package(suite).unwrap();

    // A one-use key package opens one Welcome only.
    let g1 = alice.engine.create_group(suite).unwrap();
    let c = alice.engine.add_members(g1, &[&kps[0]]).unwrap();
    assert!(server.submit(&c));
    alice.engine.merge_pending(g1).unwrap();
    let g2 = bob.engine.create_group(suite).unwrap();
    let c2 = bob.engine.add_members(g2, &[&kps[0]]).unwrap();
    assert!(server.submit(&c2));
    bob.engine.merge_pending(g2).unwrap();
    carol.engine.join(&c.welcome.unwrap()).unwrap();
    assert!(matches!(
        carol.engine.join(&c2.welcome.unwrap()),
        Err(MlsError::WelcomeNotForUs)
    ));

    // The last-resort one opens any number.
    for owner in [&mut alice, &mut bob] {
        let g = owner.engine.create_group(suite).unwrap();
        let c = owner.engine.add_members(g, &[&last_resort]).unwrap();
        assert!(server.submit(&c));
        owner.engine.merge_pending(g).unwrap();
        assert_eq!(carol.engine.join(&c.welcome.unwrap()).unwrap().group, g);
        let m = carol.send(g, "via last resort");
        owner.expect_text(&m, &carol, "via last resort");
    }
    assert_eq!(carol.engine.groups().unwrap().len(), 3);

    // A key package of the other suite does not fit the group.
    let other = match suite {
        Suite::Hybrid => Suite::Classic,
        Suite::Classic => Suite::Hybrid,
    };
    let g = alice.engine.create_group(suite).unwrap();
    assert!(matches!(
        alice.engine.add_members(g, &[bob.kp(other)]),
        Err(MlsError::InvalidKeyPackage(_))
    ));
}

/// A GroupInfo as the server receives it: the message and the ratchet tree
/// from its extension.
fn read_group_info(
    bytes: &[u8],
) -> (
    openmls::messages::group_info::VerifiableGroupInfo,
    openmls::prelude::RatchetTreeIn,
) {
    use openmls::prelude::tls_codec::Deserialize as _;
    use openmls::prelude::{MlsMessageBodyIn, MlsMessageIn};
    let msg = MlsMessageIn::tls_deserialize_exact(bytes).unwrap();
    let MlsMessageBodyIn::GroupInfo(gi) = msg.extract() else {
        panic!("not a GroupInfo");
    };
    let tree = gi
        .extensions()
        .ratchet_tree()
        .expect("the ratchet tree extension")
        .ratchet_tree()
        .clone();
    (gi, tree)
}

/// A handshake message as the server receives it: it must be a
/// PublicMessage (the server cannot read a PrivateMessage).
fn public_message(bytes: &[u8]) -> openmls::prelude::ProtocolMessage {
    use openmls::prelude::tls_codec::Deserialize as _;
    use openmls::prelude::{MlsMessageBodyIn, MlsMessageIn};
    match MlsMessageIn::tls_deserialize_exact(bytes)
        .unwrap()
        .extract()
    {
        MlsMessageBodyIn::PublicMessage(m) => m.into(),
        other => panic!("a handshake message the server cannot check: {other:?}"),
    }
}

/// The server's side of a commit, as qpq-server does it with openmls'
/// `PublicGroup`: validate, apply, and check the GroupInfo it came with.
fn server_accepts(
    server: &openmls_rust_crypto::OpenMlsRustCrypto,
    public: &mut openmls::prelude::PublicGroup,
    staged: &Staged,
) {
    use openmls::prelude::ProcessedMessageContent;
    use openmls_traits::OpenMlsProvider as _;
    let processed = public
        .process_message(server.crypto(), public_message(&staged.commit))
        .expect("the server validates the commit");
    let ProcessedMessageContent::StagedCommitMessage(commit) = processed.into_content() else {
        panic!("not a commit");
    };
    public.merge_commit(server.storage(), *commit).unwrap();
    let (gi, _) = read_group_info(&staged.group_info);
    assert_eq!(gi.epoch(), public.group_context().epoch());
    assert_eq!(gi.group_context(), public.group_context());
}

/// What the server sees of a group is enough to follow it: the creator's
/// GroupInfo (with the ratchet tree, listing the server's removal key as
/// external sender) builds a public group; every commit is a PublicMessage
/// it validates, with the GroupInfo of the epoch it creates; application
/// messages stay PrivateMessages. Leaves advertise our two suites only.
fn the_server_can_follow_the_group(suite: Suite) {
    use openmls::prelude::tls_codec::Deserialize as _;
    use openmls::prelude::{
        BasicCredential, ExternalSender, MlsMessageBodyIn, MlsMessageIn, ProposalStore, PublicGroup,
    };
    use openmls_traits::OpenMlsProvider as _;

    let dir = tempfile::tempdir().unwrap();
    let (mut alice, mut bob, mut carol) = (
        Client::new(&dir, "alice"),
        Client::new(&dir, "bob"),
        Client::new(&dir, "carol"),
    );
    let removal_key = Identity::from_seed(user("server"), &[7; 32]).identity_key();
    let g = alice
        .engine
        .create_group_with_info(suite, None, removal_key.as_bytes())
        .unwrap();

    let server = openmls_rust_crypto::OpenMlsRustCrypto::default();
    let (gi, tree) = read_group_info(&alice.engine.group_info(g).unwrap());
    assert_eq!(gi.group_id().as_slice(), g.as_bytes());
    let senders = gi
        .group_context()
        .extensions()
        .external_senders()
        .expect("the server's removal key");
    let expected = ExternalSender::new(
        removal_key.as_bytes().to_vec().into(),
        BasicCredential::new(SERVER_SENDER_NAME.to_vec()).into(),
    );
    assert_eq!(senders.as_slice(), [expected]);
    let (mut public, _) = PublicGroup::from_external(
        server.crypto(),
        server.storage(),
        tree,
        gi,
        ProposalStore::default(),
    )
    .expect("the server builds the group from its GroupInfo");

    let bob_kp = bob.kp(suite);
    let MlsMessageBodyIn::KeyPackage(kp) = MlsMessageIn::tls_deserialize_exact(&bob_kp)
        .unwrap()
        .extract()
    else {
        panic!("not a key package");
    };
    let kp = kp
        .validate(server.crypto(), openmls::prelude::ProtocolVersion::Mls10)
        .unwrap();
    let advertised: Vec<u16> = kp
        .leaf_node()
        .capabilities()
        .ciphersuites()
        .iter()
        .map(|c| c.value())
        .collect();
    let ours: Vec<u16> = Suite::ALL.iter().map(|s| s.code()).collect();
    assert_eq!(advertised, ours, "only the suites qpqd supports");

    let add = alice.engine.add_members(g, &[bob_kp]).unwrap();
    server_accepts(&server, &mut public, &add);
    alice.engine.merge_pending(g).unwrap();
    bob.engine.join(add.welcome.as_ref().unwrap()).unwrap();

    // A joiner's commits are public too (the join config sets the policy),
    // and so is a remove.
    let update = bob.engine.self_update(g).unwrap();
    server_accepts(&server, &mut public, &update);
    bob.engine.merge_pending(g).unwrap();
    alice.expect_commit(&update.commit);
    let add = bob.engine.add_members(g, &[carol.kp(suite)]).unwrap();
    server_accepts(&server, &mut public, &add);
    bob.engine.merge_pending(g).unwrap();
    alice.expect_commit(&add.commit);
    carol.engine.join(add.welcome.as_ref().unwrap()).unwrap();
    let remove = carol
        .engine
        .remove_members(g, &[Who::Username(user("alice"))])
        .unwrap();
    server_accepts(&server, &mut public, &remove);
    assert_eq!(public.members().count(), 2);

    let m = bob.send(g, "private");
    match MlsMessageIn::tls_deserialize_exact(&m).unwrap().extract() {
        MlsMessageBodyIn::PrivateMessage(_) => {}
        other => panic!("an application message in the clear: {other:?}"),
    }
}
