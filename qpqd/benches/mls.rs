//! MLS operations through qpqd's engine beside the same operations in bare
//! openmls, in the same process, for the hybrid and the classic suite.
//!
//! Both sides use `openmls_sqlite_storage` on a SQLite file (WAL and
//! `synchronous = FULL` as the daemon's state database, but unencrypted;
//! the engine's CBOR codec) and the RustCrypto provider. Bare openmls does what the engine
//! must do for the same operation: one transaction per step (the engine's
//! savepoint; BEGIN/COMMIT around each bare step), so staging a commit and
//! merging it are two transactions on both sides, and key packages arrive as
//! bytes that are parsed and validated on both sides. The measured party
//! always has its own file; members whose work is not measured (the owners of
//! the key packages being added) use in-memory databases. Every commit is
//! merged as if the server had accepted it, so a commit figure is stage +
//! merge. Sizes (bytes of the serialized MLSMessage) are printed once per
//! case (`SIZE ...` lines).
//!
//! `cargo bench -j2 -p quicproquo-daemon --bench mls`
//! (`QPQ_MLS_SETTLED_N=128` adds the settled-tree update size, see
//! `settled_update_size`.)

#![allow(clippy::unwrap_used)]

use quicproquo_daemon::mls::SuiteExt as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, KeyPackage, LeafNodeIndex, LeafNodeParameters,
    MlsGroup, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut,
    ProcessedMessageContent, ProtocolMessage, ProtocolVersion, StagedWelcome,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use openmls_sqlite_storage::SqliteStorageProvider;
use openmls_traits::types::SignatureScheme;
use openmls_traits::OpenMlsProvider;
use quicproquo_daemon::mls::{GroupId, Identity, MlsEngine, Processed, Suite, Who};
use quicproquo_protocol::types::Username;
use rusqlite::Connection;

const SUITES: [(Suite, &str); 2] = [(Suite::Hybrid, "hybrid"), (Suite::Classic, "classic")];
const GROUP_SIZES: [usize; 3] = [2, 10, 100];
/// The group the add/remove/update figures are taken in.
const OPS_GROUP: usize = 10;
/// The group size for the engine-level "add one member until it can read".
const LARGE_GROUP: usize = 250;
const MAX_PAST_EPOCHS: usize = 5;

// ---------------------------------------------------------------- storage

/// The engine's storage encoding, so both sides write the same bytes.
use quicproquo_daemon::mls::CborCodec as StorageCodec;

/// A database file in a directory that lives as long as the bench.
struct Files {
    dir: tempfile::TempDir,
    next: usize,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            next: 0,
        }
    }

    fn open(&mut self) -> Connection {
        self.next += 1;
        let conn = Connection::open(self.dir.path().join(format!("{}.db", self.next))).unwrap();
        // As the daemon opens its state database (state.rs), minus the key.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .unwrap();
        conn
    }
}

/// `cargo bench` passes `--bench`; `cargo test --benches` does not, and then
/// the 100- and 250-member cases are skipped to keep the test run short.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn memory() -> Connection {
    Connection::open_in_memory().unwrap()
}

// ---------------------------------------------------------------- bare openmls

struct BareProvider {
    crypto: RustCrypto,
    conn: Rc<Connection>,
    storage: SqliteStorageProvider<StorageCodec, Rc<Connection>>,
}

impl OpenMlsProvider for BareProvider {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = SqliteStorageProvider<StorageCodec, Rc<Connection>>;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}

/// One bare-openmls member: provider, signer, credential.
struct Bare {
    p: BareProvider,
    signer: SignatureKeyPair,
    cred: CredentialWithKey,
}

impl Bare {
    fn new(mut conn: Connection, name: &str) -> Self {
        SqliteStorageProvider::<StorageCodec, &mut Connection>::new(&mut conn)
            .run_migrations()
            .unwrap();
        let conn = Rc::new(conn);
        let p = BareProvider {
            crypto: RustCrypto::default(),
            conn: conn.clone(),
            storage: SqliteStorageProvider::new(conn),
        };
        let signer = SignatureKeyPair::new(SignatureScheme::ED25519).unwrap();
        let cred = CredentialWithKey {
            credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
            signature_key: signer.public().into(),
        };
        Self { p, signer, cred }
    }

    /// One transaction around `f`, as the engine's savepoint.
    fn tx<T>(&self, f: impl FnOnce(&Self) -> T) -> T {
        self.p.conn.execute_batch("BEGIN").unwrap();
        let out = f(self);
        self.p.conn.execute_batch("COMMIT").unwrap();
        out
    }

    fn key_package(&self, cs: Ciphersuite) -> KeyPackage {
        self.tx(|b| {
            KeyPackage::builder()
                .build(cs, &b.p, &b.signer, b.cred.clone())
                .unwrap()
                .key_package()
                .clone()
        })
    }

    fn create(&self, cs: Ciphersuite) -> MlsGroup {
        self.tx(|b| {
            MlsGroup::builder()
                .ciphersuite(cs)
                .max_past_epochs(MAX_PAST_EPOCHS)
                .use_ratchet_tree_extension(true)
                .build(&b.p, &b.signer, b.cred.clone())
                .unwrap()
        })
    }

    /// Add + merge, as the engine: the key packages arrive as bytes and are
    /// parsed and validated, the commit is staged in one transaction and
    /// merged in a second (after the server's acceptance).
    fn add(&self, g: &mut MlsGroup, kps: &[Vec<u8>]) -> (usize, Vec<u8>) {
        let (commit, welcome) = self.tx(|b| {
            let kps: Vec<KeyPackage> = kps.iter().map(|k| parse_kp(&b.p, k)).collect();
            let (commit, welcome, _) = g.add_members(&b.p, &b.signer, &kps).unwrap();
            (bytes(&commit).len(), bytes(&welcome))
        });
        self.tx(|b| g.merge_pending_commit(&b.p).unwrap());
        (commit, welcome)
    }

    fn remove(&self, g: &mut MlsGroup, name: &[u8]) -> usize {
        let commit = self.tx(|b| {
            let leaf = leaf_of(g, name);
            let (commit, _, _) = g.remove_members(&b.p, &b.signer, &[leaf]).unwrap();
            bytes(&commit).len()
        });
        self.tx(|b| g.merge_pending_commit(&b.p).unwrap());
        commit
    }

    fn update(&self, g: &mut MlsGroup) -> usize {
        let commit = self.tx(|b| {
            let commit = g
                .self_update(&b.p, &b.signer, LeafNodeParameters::default())
                .unwrap()
                .into_commit();
            bytes(&commit).len()
        });
        self.tx(|b| g.merge_pending_commit(&b.p).unwrap());
        commit
    }

    fn join(&self, welcome: &[u8]) -> MlsGroup {
        self.tx(|b| {
            let MlsMessageBodyIn::Welcome(w) = MlsMessageIn::tls_deserialize_exact(welcome)
                .unwrap()
                .extract()
            else {
                panic!("not a welcome")
            };
            let config = MlsGroupJoinConfig::builder()
                .max_past_epochs(MAX_PAST_EPOCHS)
                .use_ratchet_tree_extension(true)
                .build();
            StagedWelcome::new_from_welcome(&b.p, &config, w, None)
                .unwrap()
                .into_group(&b.p)
                .unwrap()
        })
    }

    fn encrypt(&self, g: &mut MlsGroup, plaintext: &[u8]) -> Vec<u8> {
        self.tx(|b| bytes(&g.create_message(&b.p, &b.signer, plaintext).unwrap()))
    }

    fn decrypt(&self, g: &mut MlsGroup, msg: &[u8]) -> Vec<u8> {
        self.tx(|b| {
            let m: ProtocolMessage = MlsMessageIn::tls_deserialize_exact(msg)
                .unwrap()
                .try_into_protocol_message()
                .unwrap();
            match g.process_message(&b.p, m).unwrap().into_content() {
                ProcessedMessageContent::ApplicationMessage(a) => a.into_bytes(),
                _ => panic!("not an application message"),
            }
        })
    }
}

fn parse_kp(p: &BareProvider, bytes: &[u8]) -> KeyPackage {
    let MlsMessageBodyIn::KeyPackage(kp) = MlsMessageIn::tls_deserialize_exact(bytes)
        .unwrap()
        .extract()
    else {
        panic!("not a key package")
    };
    kp.validate(p.crypto(), ProtocolVersion::Mls10).unwrap()
}

fn bytes(m: &MlsMessageOut) -> Vec<u8> {
    m.to_bytes().unwrap()
}

fn leaf_of(g: &MlsGroup, name: &[u8]) -> LeafNodeIndex {
    g.members()
        .find(|m| m.credential.serialized_content() == name)
        .unwrap()
        .index
}

/// Bare key packages of `n` members with in-memory storage.
fn bare_key_packages(cs: Ciphersuite, prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let kp = Bare::new(memory(), &format!("{prefix}{i}")).key_package(cs);
            bytes(&MlsMessageOut::from(kp))
        })
        .collect()
}

// ---------------------------------------------------------------- engine

fn identity(name: &str) -> Identity {
    let seed: [u8; 32] = rand::random();
    Identity::from_seed(Username::parse(name).unwrap(), &seed)
}

fn engine(conn: Connection, name: &str) -> MlsEngine {
    MlsEngine::new(conn, identity(name)).unwrap()
}

/// Engine key packages of `n` members with in-memory storage.
fn engine_key_packages(suite: Suite, prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            engine(memory(), &format!("{prefix}{i}"))
                .key_packages(suite, 1)
                .unwrap()
                .pop()
                .unwrap()
        })
        .collect()
}

/// Add + merge; returns (commit, welcome) sizes.
fn engine_add(e: &mut MlsEngine, g: GroupId, kps: &[Vec<u8>]) -> (usize, Vec<u8>) {
    let s = e.add_members(g, kps).unwrap();
    e.merge_pending(g).unwrap();
    (s.commit.len(), s.welcome.unwrap())
}

fn engine_remove(e: &mut MlsEngine, g: GroupId, name: &str) -> usize {
    let s = e
        .remove_members(g, &[Who::Username(Username::parse(name).unwrap())])
        .unwrap();
    e.merge_pending(g).unwrap();
    s.commit.len()
}

fn engine_update(e: &mut MlsEngine, g: GroupId) -> usize {
    let s = e.self_update(g).unwrap();
    e.merge_pending(g).unwrap();
    s.commit.len()
}

fn engine_decrypt(e: &mut MlsEngine, msg: &[u8]) -> Vec<u8> {
    match e.process(msg).unwrap() {
        Processed::Application { plaintext, .. } => plaintext,
        other => panic!("not an application message: {other:?}"),
    }
}

// ---------------------------------------------------------------- helpers

/// Runs `f` `iters` times and returns the time spent inside the part it
/// reports (each call times itself, so that untimed resets can follow).
fn custom(iters: u64, mut f: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| f()).sum()
}

fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

fn size(what: &str, bytes: usize) {
    println!("SIZE {what}: {bytes} B");
}

fn config<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g
}

// ---------------------------------------------------------------- benches

fn key_package(c: &mut Criterion) {
    let mut files = Files::new();
    let mut g = config(c, "key_package");
    for (suite, sname) in SUITES {
        let cs = suite.ciphersuite();
        let mut e = engine(files.open(), "alice");
        size(
            &format!("key_package/{sname}/engine"),
            e.key_packages(suite, 1).unwrap()[0].len(),
        );
        g.bench_function(BenchmarkId::new("engine", sname), |b| {
            b.iter(|| e.key_packages(suite, 1).unwrap())
        });
        let bare = Bare::new(files.open(), "alice");
        size(
            &format!("key_package/{sname}/bare"),
            bytes(&MlsMessageOut::from(bare.key_package(cs))).len(),
        );
        g.bench_function(BenchmarkId::new("bare", sname), |b| {
            b.iter(|| bare.key_package(cs))
        });
    }
    g.finish();
}

/// Create a group and add N−1 members in one commit (stage + merge).
fn create_group(c: &mut Criterion) {
    let mut files = Files::new();
    let mut g = config(c, "create_group");
    for (suite, sname) in SUITES {
        let cs = suite.ciphersuite();
        for n in GROUP_SIZES {
            if n > OPS_GROUP && !full_run() {
                continue;
            }
            let id = format!("{sname}/{n}");
            let kps = engine_key_packages(suite, "m", n - 1);
            let mut e = engine(files.open(), "alice");
            let mut sizes = (0, 0);
            g.bench_function(BenchmarkId::new("engine", &id), |b| {
                b.iter_custom(|iters| {
                    custom(iters, || {
                        let (t, (commit, welcome)) = timed(|| {
                            let grp = e.create_group(suite).unwrap();
                            engine_add(&mut e, grp, &kps)
                        });
                        sizes = (commit, welcome.len());
                        t
                    })
                })
            });
            size(&format!("create_group/{id}/engine commit"), sizes.0);
            size(&format!("create_group/{id}/engine welcome"), sizes.1);

            let kps = bare_key_packages(cs, "m", n - 1);
            let bare = Bare::new(files.open(), "alice");
            g.bench_function(BenchmarkId::new("bare", &id), |b| {
                b.iter_custom(|iters| {
                    custom(iters, || {
                        let (t, (commit, welcome)) = timed(|| {
                            let mut grp = bare.create(cs);
                            bare.add(&mut grp, &kps)
                        });
                        sizes = (commit, welcome.len());
                        t
                    })
                })
            });
            size(&format!("create_group/{id}/bare commit"), sizes.0);
            size(&format!("create_group/{id}/bare welcome"), sizes.1);
        }
    }
    g.finish();
}

/// Add one member to / remove one member from / self-update in a group of
/// `OPS_GROUP` members. Add is undone by an untimed remove and vice versa.
fn member_ops(c: &mut Criterion) {
    let mut files = Files::new();
    let mut g = config(c, "member_ops");
    for (suite, sname) in SUITES {
        let cs = suite.ciphersuite();
        let id = format!("{sname}/{OPS_GROUP}");

        // Engine.
        let mut e = engine(files.open(), "alice");
        let grp = e.create_group(suite).unwrap();
        engine_add(&mut e, grp, &engine_key_packages(suite, "m", OPS_GROUP - 1));
        let extra = engine_key_packages(suite, "new", 1);
        let mut sz = (0, 0);
        g.bench_function(BenchmarkId::new("add_one/engine", &id), |b| {
            b.iter_custom(|iters| {
                custom(iters, || {
                    let (t, (commit, welcome)) = timed(|| engine_add(&mut e, grp, &extra));
                    sz = (commit, welcome.len());
                    engine_remove(&mut e, grp, "new0");
                    t
                })
            })
        });
        size(&format!("add_one/{id}/engine commit"), sz.0);
        size(&format!("add_one/{id}/engine welcome"), sz.1);
        g.bench_function(BenchmarkId::new("remove_one/engine", &id), |b| {
            b.iter_custom(|iters| {
                custom(iters, || {
                    let (t, commit) = timed(|| engine_remove(&mut e, grp, "m0"));
                    sz.0 = commit;
                    let kp = engine_key_packages(suite, "m", 1);
                    engine_add(&mut e, grp, &kp);
                    t
                })
            })
        });
        size(&format!("remove_one/{id}/engine commit"), sz.0);
        g.bench_function(BenchmarkId::new("self_update/engine", &id), |b| {
            b.iter(|| sz.0 = engine_update(&mut e, grp))
        });
        size(&format!("self_update/{id}/engine commit"), sz.0);

        // Bare.
        let bare = Bare::new(files.open(), "alice");
        let mut grp = bare.create(cs);
        bare.add(&mut grp, &bare_key_packages(cs, "m", OPS_GROUP - 1));
        let extra = bare_key_packages(cs, "new", 1);
        g.bench_function(BenchmarkId::new("add_one/bare", &id), |b| {
            b.iter_custom(|iters| {
                custom(iters, || {
                    let (t, (commit, welcome)) = timed(|| bare.add(&mut grp, &extra));
                    sz = (commit, welcome.len());
                    bare.remove(&mut grp, b"new0");
                    t
                })
            })
        });
        size(&format!("add_one/{id}/bare commit"), sz.0);
        size(&format!("add_one/{id}/bare welcome"), sz.1);
        g.bench_function(BenchmarkId::new("remove_one/bare", &id), |b| {
            b.iter_custom(|iters| {
                custom(iters, || {
                    let (t, commit) = timed(|| bare.remove(&mut grp, b"m0"));
                    sz.0 = commit;
                    let kp = bare_key_packages(cs, "m", 1);
                    bare.add(&mut grp, &kp);
                    t
                })
            })
        });
        size(&format!("remove_one/{id}/bare commit"), sz.0);
        g.bench_function(BenchmarkId::new("self_update/bare", &id), |b| {
            b.iter(|| sz.0 = bare.update(&mut grp))
        });
        size(&format!("self_update/{id}/bare commit"), sz.0);
    }
    g.finish();
}

/// Encrypt 1 KiB at one member, decrypt it at another (both on files).
fn message(c: &mut Criterion) {
    let mut files = Files::new();
    let mut g = config(c, "message_1k");
    let plaintext = vec![0x5a_u8; 1024];
    for (suite, sname) in SUITES {
        let cs = suite.ciphersuite();

        let mut a = engine(files.open(), "alice");
        let mut b_ = engine(files.open(), "bob");
        let grp = a.create_group(suite).unwrap();
        let kp = b_.key_packages(suite, 1).unwrap();
        let (_, welcome) = engine_add(&mut a, grp, &kp);
        b_.join(&welcome).unwrap();
        let mut len = 0;
        g.bench_function(BenchmarkId::new("engine", sname), |b| {
            b.iter(|| {
                let m = a.encrypt(grp, &plaintext).unwrap();
                len = m.len();
                assert_eq!(engine_decrypt(&mut b_, &m), plaintext);
            })
        });
        size(&format!("message_1k/{sname}/engine"), len);

        let alice = Bare::new(files.open(), "alice");
        let bob = Bare::new(files.open(), "bob");
        let mut ga = alice.create(cs);
        let kp = bytes(&MlsMessageOut::from(bob.key_package(cs)));
        let (_, welcome) = alice.add(&mut ga, &[kp]);
        let mut gb = bob.join(&welcome);
        g.bench_function(BenchmarkId::new("bare", sname), |b| {
            b.iter(|| {
                let m = alice.encrypt(&mut ga, &plaintext);
                len = m.len();
                assert_eq!(bob.decrypt(&mut gb, &m), plaintext);
            })
        });
        size(&format!("message_1k/{sname}/bare"), len);
    }
    g.finish();
}

/// Engine level only: add one member to a hybrid group of `LARGE_GROUP`
/// members (stage + merge) and have the new member join from the Welcome
/// (its own file), i.e. until the new member could read. No network.
fn large_add(c: &mut Criterion) {
    if !full_run() {
        return;
    }
    let mut files = Files::new();
    let mut g = config(c, "large_add_join");
    let suite = Suite::Hybrid;
    let mut e = engine(files.open(), "alice");
    let grp = e.create_group(suite).unwrap();
    engine_add(
        &mut e,
        grp,
        &engine_key_packages(suite, "m", LARGE_GROUP - 1),
    );
    let mut sz = (0, 0);
    g.bench_function(
        BenchmarkId::new("engine", format!("hybrid/{LARGE_GROUP}")),
        |b| {
            b.iter_custom(|iters| {
                custom(iters, || {
                    let mut new = engine(files.open(), "new0");
                    let kp = new.key_packages(suite, 1).unwrap();
                    let (t, commit) = timed(|| {
                        let (commit, welcome) = engine_add(&mut e, grp, &kp);
                        sz = (commit, welcome.len());
                        new.join(&welcome).unwrap();
                        commit
                    });
                    sz.0 = commit;
                    engine_remove(&mut e, grp, "new0");
                    t
                })
            })
        },
    );
    size(&format!("large_add_join/hybrid/{LARGE_GROUP} commit"), sz.0);
    size(
        &format!("large_add_join/hybrid/{LARGE_GROUP} welcome"),
        sz.1,
    );
    g.finish();
}

/// Size only, engine level, in-memory storage, hybrid: the self-update
/// commit of the creator of an N-member group
///
/// - right after one bulk add of the N - 1 others (the bare tree: every parent
///   node but the creator's path blank);
/// - after the N - 1 members joined **one at a time** and each self-updated
///   at once (every parent node set, no unmerged leaves: the settled tree the
///   daemon aims for, since a new member self-updates soon after joining).
///
/// The second build keeps only the two members who act in sync: the creator
/// (adds the next member, processes its update) and the newest member (joins,
/// self-updates); members who acted earlier are dropped, since the size of
/// the creator's update depends only on the tree. That is ~4 operations per
/// member instead of N/2 commits each processed by N/2 members, which made
/// N = 1,000 affordable. Runs only when `QPQ_MLS_SETTLED_N` is set.
fn settled_update_size(_: &mut Criterion) {
    let Some(n) = std::env::var("QPQ_MLS_SETTLED_N")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return;
    };
    let suite = Suite::Hybrid;

    let start = Instant::now();
    let mut bulk = engine(memory(), "alice");
    let grp = bulk.create_group(suite).unwrap();
    engine_add(&mut bulk, grp, &engine_key_packages(suite, "m", n - 1));
    let bare = bulk.self_update(grp).unwrap().commit.len();
    drop(bulk);
    size(
        &format!("settled/hybrid/{n} update right after the bulk add"),
        bare,
    );
    println!(
        "settled/hybrid/{n}: bulk add built in {:?}",
        start.elapsed()
    );

    let start = Instant::now();
    let mut creator = engine(memory(), "alice");
    let grp = creator.create_group(suite).unwrap();
    let mut last = 0;
    for i in 0..n - 1 {
        let mut member = engine(memory(), &format!("m{i}"));
        let kp = member.key_packages(suite, 1).unwrap();
        let (_, welcome) = engine_add(&mut creator, grp, &kp);
        member.join(&welcome).unwrap();
        let staged = member.self_update(grp).unwrap();
        member.merge_pending(grp).unwrap();
        creator.process(&staged.commit).unwrap();
        last = staged.commit.len();
        if (i + 2) % 100 == 0 {
            println!(
                "settled/hybrid/{n}: {} members, {:?}",
                i + 2,
                start.elapsed()
            );
        }
    }
    let settled = creator.self_update(grp).unwrap().commit.len();
    creator.clear_pending(grp).unwrap();
    size(&format!("settled/hybrid/{n} last member update"), last);
    size(
        &format!("settled/hybrid/{n} creator update, settled tree"),
        settled,
    );
    println!(
        "settled/hybrid/{n}: joined one by one in {:?}",
        start.elapsed()
    );
}

criterion_group!(
    benches,
    key_package,
    create_group,
    member_ops,
    message,
    large_add,
    settled_update_size
);
criterion_main!(benches);
