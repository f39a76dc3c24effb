//! Login-start timing for an existing and an unknown user (the plan's item
//! 1.4, username enumeration): if the two differ measurably, an attacker can
//! tell registered usernames apart by timing `opaqueLoginStart`.
//!
//! Measured in-process, without sockets: [`Service::handle`] with a
//! `SqliteStore` on a temporary file and no rate limits, i.e. the whole
//! request path past the decoder (rate-limit checks, the account lookup on
//! the database thread, opaque-ke, the pending-login table). Beside it, the
//! bare opaque-ke `ServerLogin::start` with `Some(record)` and with `None`,
//! and the parsing of a stored record (which only the existing-user path does).
//!
//! Each timed login start for one name follows an untimed one for the other,
//! so both see the same conditions; every start is followed by an untimed
//! `opaqueLoginFinish` with a bogus finalization, which removes the pending
//! login, so the table does not grow over the run.
//!
//! Run: `cargo bench -p quicproquo-server --bench login`.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ed25519_dalek::{Signer, SigningKey};
use opaque_ke::{
    ClientLogin, ClientRegistration, CredentialRequest, RegistrationUpload, ServerLogin,
    ServerLoginParameters, ServerRegistration, ServerSetup,
};
use quicproquo_protocol::opaque::{registration_upload, Suite, CONTEXT};
use quicproquo_protocol::types::{IdentityKey, Username};
use quicproquo_protocol::wire::{identity_proof_message, Request, Response};
use quicproquo_server::config::{Config, RateLimits};
use quicproquo_server::service::{Now, Service};
use quicproquo_server::store::sqlite::SqliteStore;
use rand::rngs::OsRng;
use tokio::runtime::Runtime;
use tokio::sync::watch;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PASSWORD: &[u8] = b"correct horse battery staple";
/// Both names have the same length, so only existence differs.
const EXISTING: &str = "alice-0001";
const UNKNOWN: &str = "nobody-001";

/// The service with one registered user, and a credential request to replay.
struct Fixture {
    rt: Runtime,
    service: Service<SqliteStore>,
    request: Vec<u8>,
    _dir: tempfile::TempDir,
    _shutdown: watch::Sender<bool>,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_tests(dir.path());
        config.rate_limits = RateLimits::unlimited();
        // Thousands of starts from one address: no cap on pending logins.
        config.network.pending_logins_per_address = u32::MAX;
        let store = SqliteStore::open(config.database.sqlite_path().expect("SQLite"))
            .expect("open the database");
        let (shutdown, shutdown_rx) = watch::channel(false);
        let service = rt
            .block_on(Service::new(store, &config, shutdown_rx))
            .expect("service");
        let fixture = Self {
            rt,
            service,
            request: ClientLogin::<Suite>::start(&mut OsRng, PASSWORD)
                .expect("client login start")
                .message
                .serialize()
                .to_vec(),
            _dir: dir,
            _shutdown: shutdown,
        };
        fixture.register(EXISTING);
        fixture
    }

    fn handle(&self, req: Request) -> Response {
        self.rt
            .block_on(self.service.handle(req, PEER, Now::current()))
    }

    /// Registers `name` through the service, as a client would.
    fn register(&self, name: &str) {
        let username = Username::parse(name).expect("valid username");
        let start = ClientRegistration::<Suite>::start(&mut OsRng, PASSWORD).expect("start");
        let resp = self.handle(Request::OpaqueRegisterStart {
            username: username.clone(),
            request: start.message.serialize().to_vec(),
        });
        let Response::OpaqueRegisterStart { response } = resp else {
            panic!("opaqueRegisterStart: {resp:?}");
        };
        let upload = registration_upload(start.state, PASSWORD, &response).expect("registration");
        let signing = SigningKey::generate(&mut OsRng);
        let resp = self.handle(Request::OpaqueRegisterFinish {
            identity_key: IdentityKey(signing.verifying_key().to_bytes()),
            identity_proof: signing.sign(&identity_proof_message(&username)).to_bytes(),
            username,
            upload,
        });
        assert_eq!(resp, Response::OpaqueRegisterFinish, "registration");
    }

    /// One login start for `name`, its pending login discarded afterwards;
    /// returns how long the start took.
    fn login_start(&self, name: &Username) -> Duration {
        let req = Request::OpaqueLoginStart {
            username: name.clone(),
            request: self.request.clone(),
        };
        let t = Instant::now();
        let resp = black_box(self.handle(req));
        let took = t.elapsed();
        let Response::OpaqueLoginStart { login_id, .. } = resp else {
            panic!("opaqueLoginStart: {resp:?}");
        };
        let discard = self.handle(Request::OpaqueLoginFinish {
            login_id,
            finalization: vec![0; 64],
        });
        assert!(matches!(discard, Response::Error(_)), "{discard:?}");
        took
    }

    /// Times `iters` login starts for `timed`, each after an untimed one for
    /// `other`: both names see the same conditions (caches, clock drift).
    fn time_login_starts(&self, timed: &Username, other: &Username, iters: u64) -> Duration {
        (0..iters)
            .map(|_| {
                self.login_start(other);
                self.login_start(timed)
            })
            .sum()
    }
}

/// A bare opaque-ke setup and one password file, for the baseline.
fn bare_record(setup: &ServerSetup<Suite>, name: &[u8]) -> ServerRegistration<Suite> {
    let start = ClientRegistration::<Suite>::start(&mut OsRng, PASSWORD).expect("start");
    let response = ServerRegistration::<Suite>::start(setup, start.message, name)
        .expect("server registration start")
        .message
        .serialize();
    let upload = registration_upload(start.state, PASSWORD, &response).expect("registration");
    ServerRegistration::finish(RegistrationUpload::deserialize(&upload).expect("upload"))
}

fn login_start(c: &mut Criterion) {
    let fixture = Fixture::new();
    let existing = Username::parse(EXISTING).expect("valid username");
    let unknown = Username::parse(UNKNOWN).expect("valid username");

    let mut group = c.benchmark_group("login_start");
    group.bench_function("service/existing_user", |b| {
        b.iter_custom(|iters| fixture.time_login_starts(&existing, &unknown, iters))
    });
    group.bench_function("service/unknown_user", |b| {
        b.iter_custom(|iters| fixture.time_login_starts(&unknown, &existing, iters))
    });

    let setup = ServerSetup::<Suite>::new(&mut OsRng);
    let record = bare_record(&setup, EXISTING.as_bytes());
    let request = CredentialRequest::<Suite>::deserialize(&fixture.request).expect("request");
    let params = || ServerLoginParameters {
        context: Some(CONTEXT),
        ..Default::default()
    };
    group.bench_function("opaque_ke/some_record", |b| {
        b.iter(|| {
            ServerLogin::start(
                &mut OsRng,
                &setup,
                Some(record.clone()),
                request.clone(),
                EXISTING.as_bytes(),
                params(),
            )
            .expect("server login start")
        })
    });
    group.bench_function("opaque_ke/no_record", |b| {
        b.iter(|| {
            ServerLogin::start(
                &mut OsRng,
                &setup,
                None,
                request.clone(),
                UNKNOWN.as_bytes(),
                params(),
            )
            .expect("server login start")
        })
    });
    // What the service does for an existing user only: parse the stored record.
    let stored = record.serialize().to_vec();
    group.bench_function("opaque_ke/deserialize_record", |b| {
        b.iter(|| ServerRegistration::<Suite>::deserialize(black_box(&stored)).expect("record"))
    });
    group.finish();
}

criterion_group!(benches, login_start);
criterion_main!(benches);
