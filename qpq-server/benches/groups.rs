//! What validating groups costs the server (issue 14's figures in
//! BENCHMARKS.md): `cargo bench -p quicproquo-server --bench groups`.
//!
//! For groups of 10, 250 and 1,000 members of the hybrid suite, built with
//! one bulk add: the server's time to take a re-key commit through
//! `enqueueGroup` — decode, validate against the group's public state
//! (openmls `PublicGroup`), merge, check the GroupInfo, serialize the state
//! and store it with the mail in one SQLite transaction (fsync included) —
//! beside what the same commit costs a member to process with bare openmls
//! (the baseline), and the stored state's size. Then, for a 100-member group,
//! what one application message costs: the bytes the sender uploads and the
//! server's time to store it for 99 members.
//!
//! The store is a real SQLite file; the commits are real (the re-keys of a
//! member, each merged before the next). Plain output; nothing is written to
//! BENCHMARKS.md.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use quicproquo_protocol::padding;
use quicproquo_protocol::types::{Epoch, IdempotencyKey, Username};
use quicproquo_server::delivery::{Delivery, GroupEnqueueRequest};
use quicproquo_server::groups::Groups;
use quicproquo_server::service::Now;
use quicproquo_server::store::sqlite::SqliteStore;
use quicproquo_server::store::{Account, Store};
use quicproquo_testkit::mls::{Member, HYBRID};

const SAMPLES: usize = 10;

struct Bench {
    store: SqliteStore,
    delivery: Delivery,
    groups: Groups,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("qpq.db")).unwrap();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        Bench {
            store,
            delivery: Delivery::new(true, rx),
            groups: Groups::default(),
            _dir: dir,
        }
    }

    async fn account(&self, m: &Member) -> Account {
        let a = Account {
            username: Username::parse(m.account.username.as_str()).unwrap(),
            identity_key: m.account.identity,
            opaque_record: vec![0],
            created_at_ms: 0,
        };
        self.store.create_account(a.clone()).await.unwrap();
        a
    }

    /// The server's whole handling of one `enqueueGroup`; its duration.
    async fn send(
        &self,
        from: &Account,
        group: &[u8],
        mls: &[u8],
        group_info: Option<Vec<u8>>,
        welcome: Option<Vec<u8>>,
    ) -> Duration {
        let req = GroupEnqueueRequest {
            group: group.to_vec(),
            payload: padding::pad(mls),
            idempotency_key: IdempotencyKey(rand::random()),
            group_info,
            welcome: welcome.map(|w| padding::pad(&w)),
        };
        let start = Instant::now();
        self.delivery
            .enqueue_group(&self.store, &self.groups, from, req, Now::current())
            .await
            .unwrap();
        start.elapsed()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A group of `n` on the bench's store: `creator` and `n − 1` others added in
/// one commit; `watcher` (the last one) joined, to process commits.
async fn group_of(b: &Bench, n: usize) -> (Member, Account, Member, Duration) {
    let mut creator = Member::offline("creator");
    let creator_account = b.account(&creator).await;
    let mut others = Vec::new();
    for i in 1..n {
        let m = Member::offline(&format!("m{i}"));
        b.account(&m).await;
        others.push(m);
    }
    let info = creator.create_group(HYBRID, None);
    b.groups
        .register(&b.store, creator_account.identity_key, info, 0)
        .await
        .unwrap();
    let packages: Vec<_> = others.iter().map(|m| m.key_package(HYBRID)).collect();
    let add = creator.add(&packages);
    let group = creator.group_id();
    let add_time = b
        .send(
            &creator_account,
            &group,
            &add.commit,
            Some(add.group_info),
            add.welcome.clone(),
        )
        .await;
    creator.merge();
    let mut watcher = others.pop().unwrap();
    watcher.join(add.welcome.as_deref().unwrap());
    (creator, creator_account, watcher, add_time)
}

async fn commits(b: &Bench, n: usize) {
    let (mut creator, account, mut watcher, add_time) = group_of(b, n).await;
    let group = creator.group_id();
    let (mut server, mut member, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let update = creator.self_update();
        sizes.push(update.commit.len());
        server.push(
            b.send(
                &account,
                &group,
                &update.commit,
                Some(update.group_info),
                None,
            )
            .await,
        );
        creator.merge();
        let start = Instant::now();
        watcher.process(&update.commit);
        member.push(start.elapsed());
    }
    let state = b.store.group(group).await.unwrap().unwrap();
    assert_eq!(state.epoch, Epoch(creator.epoch()));
    println!(
        "commit validation, {n:>4} members: server p50 {:>7.2} ms (validate + apply + store), \
         a member processing it (bare openmls) p50 {:>7.2} ms; commit {:>8} B, stored state {:>9} B; \
         the bulk add of {} took the server {:.1} ms",
        ms(median(server)),
        ms(median(member)),
        sizes[sizes.len() / 2],
        state.state.len(),
        n - 1,
        ms(add_time),
    );
}

async fn fan_out(b: &Bench) {
    let (mut creator, account, _watcher, _) = group_of(b, 100).await;
    let group = creator.group_id();
    let text = vec![b'x'; 1024];
    let mut times = Vec::new();
    let mut upload = 0;
    for _ in 0..SAMPLES * 5 {
        let m = creator.encrypt(&text);
        upload = padding::pad(&m).len();
        times.push(b.send(&account, &group, &m, None, None).await);
    }
    println!(
        "application message to 100 members (1 KiB of text): the sender uploads {upload} B once; \
         server p50 {:.2} ms to check and store it for 99 members",
        ms(median(times))
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for n in [10, 250, 1000] {
            commits(&Bench::new(), n).await;
        }
        fan_out(&Bench::new()).await;
    });
}
