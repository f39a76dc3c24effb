//! [`Service::handle`] without sockets: a service on a temporary SQLite
//! store, a clock the test advances, and clients that speak OPAQUE through
//! opaque-ke with the protocol's [`Suite`] and key-stretching function, as
//! the real client does. One [`Fixture`] serves every test.
//!
//! The QUIC integration tests (`tests/integration/`) cover the same rules
//! through the wire; these pin the rules themselves, including the ones that
//! need time to pass (session expiry, rate limits), in milliseconds.

#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use opaque_ke::errors::ProtocolError;
use opaque_ke::{ClientLogin, ClientRegistration};
use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::limits::{LOGIN_STATE_TTL, MAX_FETCH_LIMIT};
use quicproquo_protocol::opaque::{login_finalization, registration_upload, Suite};
use quicproquo_protocol::padding;
use quicproquo_protocol::types::{
    ChannelId, Ciphersuite, IdempotencyKey, IdentityKey, LoginId, SessionToken, Username,
};
use quicproquo_protocol::wire::{
    identity_proof_message, Delivery, Envelope, Request, Response, UserRef,
};
use quicproquo_testkit::attacker::Attacker;
use rand::rngs::OsRng;
use rand::RngCore;
use tokio::sync::watch;

use super::{Now, Service};
use crate::config::{Config, RateLimits};
use crate::store::sqlite::SqliteStore;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// A second source address, to show a limit is kept per address.
const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
const PASSWORD: &[u8] = b"correct horse battery staple";
const SUITE: u16 = quicproquo_protocol::wire::DEFAULT_SUITE;
/// Long enough that a test finishing in time was woken, not timed out.
const LONG_WAIT_MS: u32 = 60_000;
/// How long a test waits for what should happen at once.
const PATIENCE: Duration = Duration::from_secs(10);

/// A service on a fresh store, with its own clock.
struct Fixture {
    service: Service<SqliteStore>,
    now: Cell<Now>,
    shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// The first step of an OPAQUE exchange.
#[derive(Debug, Clone, Copy)]
enum Opening {
    Login,
    Registration,
}

/// A registered, logged-in user.
struct User {
    name: Username,
    identity: IdentityKey,
    /// The identity key's secret half, which signs the user's key packages.
    signing: SigningKey,
    token: SessionToken,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A fixture whose configuration `tweak` adjusts first.
    async fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path());
        tweak(&mut config);
        let store = SqliteStore::open(config.database.sqlite_path().expect("SQLite")).unwrap();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let service = Service::new(store, &config, shutdown_rx).await.unwrap();
        Self {
            service,
            now: Cell::new(Now {
                mono: Instant::now(),
                unix_ms: 1_800_000_000_000,
            }),
            shutdown,
            _dir: dir,
        }
    }

    fn advance(&self, d: Duration) {
        self.now.set(self.now.get().plus(d));
    }

    async fn handle(&self, req: Request) -> Response {
        self.handle_from(req, PEER).await
    }

    async fn handle_from(&self, req: Request, peer: IpAddr) -> Response {
        self.service.handle(req, peer, self.now.get()).await
    }

    /// The first step of an OPAQUE login or registration of `name` from
    /// `peer`: the step the per-address limits guard.
    async fn open_from(&self, opening: Opening, name: &str, peer: IpAddr) -> Response {
        let username = Username::parse(name).unwrap();
        let req = match opening {
            Opening::Login => Request::OpaqueLoginStart {
                username,
                request: ClientLogin::<Suite>::start(&mut OsRng, PASSWORD)
                    .unwrap()
                    .message
                    .serialize()
                    .to_vec(),
            },
            Opening::Registration => Request::OpaqueRegisterStart {
                username,
                request: ClientRegistration::<Suite>::start(&mut OsRng, PASSWORD)
                    .unwrap()
                    .message
                    .serialize()
                    .to_vec(),
            },
        };
        self.handle_from(req, peer).await
    }

    /// Pins a per-address limit of 2 `opening`s per `window`: a third from
    /// the same address is E004 (each attempt names a different account, so
    /// only the address is shared) while another address is let through; a
    /// sixth of the window (a third of a token) is not enough to be let
    /// through again, the whole window is.
    async fn assert_two_per_window_per_address(&self, opening: Opening, window: Duration) {
        let opened = |resp: &Response| {
            matches!(
                resp,
                Response::OpaqueLoginStart { .. } | Response::OpaqueRegisterStart { .. }
            )
        };
        for name in ["ann", "ben"] {
            let resp = self.open_from(opening, name, PEER).await;
            assert!(opened(&resp), "{resp:?}");
        }
        assert_rate_limited(self.open_from(opening, "cat", PEER).await, window);
        let resp = self.open_from(opening, "cat", ELSEWHERE).await;
        assert!(opened(&resp), "another address: {resp:?}");
        self.advance(window / 6);
        assert_rate_limited(self.open_from(opening, "cat", PEER).await, window);
        self.advance(window);
        let resp = self.open_from(opening, "cat", PEER).await;
        assert!(opened(&resp), "after the window: {resp:?}");
    }

    /// Registers `name` with [`PASSWORD`] and a fresh identity key.
    async fn register(&self, name: &str) -> (Username, IdentityKey) {
        let (username, identity, _) = self.register_keyed(name).await;
        (username, identity)
    }

    /// [`Fixture::register`], also giving the identity key's secret half.
    async fn register_keyed(&self, name: &str) -> (Username, IdentityKey, SigningKey) {
        let username = Username::parse(name).unwrap();
        let start = ClientRegistration::<Suite>::start(&mut OsRng, PASSWORD).unwrap();
        let resp = self
            .handle(Request::OpaqueRegisterStart {
                username: username.clone(),
                request: start.message.serialize().to_vec(),
            })
            .await;
        let Response::OpaqueRegisterStart { response } = resp else {
            panic!("opaqueRegisterStart: {resp:?}");
        };
        let upload = registration_upload(start.state, PASSWORD, &response).unwrap();
        let signing = SigningKey::generate(&mut OsRng);
        let identity = IdentityKey(signing.verifying_key().to_bytes());
        let resp = self
            .handle(Request::OpaqueRegisterFinish {
                identity_key: identity,
                identity_proof: signing.sign(&identity_proof_message(&username)).to_bytes(),
                username: username.clone(),
                upload,
            })
            .await;
        assert_eq!(resp, Response::OpaqueRegisterFinish, "registration");
        (username, identity, signing)
    }

    /// An OPAQUE login of `name` with `password`. A client whose password is
    /// wrong cannot finish the exchange; it sends a finalization anyway (as
    /// a guessing attacker would), so the server's answer is what is tested.
    async fn login(
        &self,
        name: &str,
        password: &[u8],
    ) -> Result<(SessionToken, IdentityKey), ErrorCode> {
        let (login_id, finalization) = self.login_attempt(name, password).await?;
        match self
            .handle(Request::OpaqueLoginFinish {
                login_id,
                finalization,
            })
            .await
        {
            Response::OpaqueLoginFinish {
                token,
                identity_key,
                ..
            } => Ok((token, identity_key)),
            Response::Error(e) => Err(e.code),
            other => panic!("opaqueLoginFinish: {other:?}"),
        }
    }

    /// The client's side of a login of `name` with `password`: started on
    /// the server, finished locally, ready to be sent.
    async fn login_attempt(
        &self,
        name: &str,
        password: &[u8],
    ) -> Result<(LoginId, Vec<u8>), ErrorCode> {
        let start = ClientLogin::<Suite>::start(&mut OsRng, password).unwrap();
        let resp = self
            .handle(Request::OpaqueLoginStart {
                username: Username::parse(name).unwrap(),
                request: start.message.serialize().to_vec(),
            })
            .await;
        let (login_id, response) = match resp {
            Response::OpaqueLoginStart { login_id, response } => (login_id, response),
            Response::Error(e) => return Err(e.code),
            other => panic!("opaqueLoginStart: {other:?}"),
        };
        let finished = login_finalization(start.state, password, &response);
        let finalization = match finished {
            Ok(f) => f,
            Err(ProtocolError::InvalidLoginError) => vec![0; 64],
            Err(e) => panic!("client login finish: {e:?}"),
        };
        Ok((login_id, finalization))
    }

    async fn user(&self, name: &str) -> User {
        let (username, identity, signing) = self.register_keyed(name).await;
        let (token, logged_in_as) = self.login(name, PASSWORD).await.unwrap();
        assert_eq!(logged_in_as, identity, "login names the registered key");
        User {
            name: username,
            identity,
            signing,
            token,
        }
    }

    async fn channel(&self, me: &User, peer: &User) -> ChannelId {
        match self
            .handle(Request::CreateChannel {
                auth: me.token.clone(),
                peer: peer.identity,
            })
            .await
        {
            Response::CreateChannel { channel } => channel,
            other => panic!("createChannel: {other:?}"),
        }
    }

    async fn send(
        &self,
        from: &User,
        to: &User,
        channel: Option<ChannelId>,
        payload: Vec<u8>,
        key: IdempotencyKey,
    ) -> Response {
        self.handle(Request::Enqueue {
            auth: from.token.clone(),
            deliveries: vec![Delivery {
                recipient: to.identity,
                channel,
            }],
            payload,
            idempotency_key: key,
        })
        .await
    }

    async fn fetch(&self, me: &User, channel: Option<ChannelId>) -> Response {
        self.fetching(me, channel, None).await
    }

    async fn fetch_wait(&self, me: &User, channel: Option<ChannelId>) -> Response {
        self.fetching(me, channel, Some(LONG_WAIT_MS)).await
    }

    /// A fetch, or with a timeout a fetchWait, of all that fits.
    async fn fetching(
        &self,
        me: &User,
        channel: Option<ChannelId>,
        wait_ms: Option<u32>,
    ) -> Response {
        let (auth, limit) = (me.token.clone(), MAX_FETCH_LIMIT);
        self.handle(match wait_ms {
            None => Request::Fetch {
                auth,
                channel,
                limit,
            },
            Some(timeout_ms) => Request::FetchWait {
                auth,
                channel,
                limit,
                timeout_ms,
            },
        })
        .await
    }

    /// Returns once a `fetchWait` is parked on an empty mailbox.
    async fn until_parked(&self) {
        let mailboxes = self.service.delivery().mailboxes();
        tokio::time::timeout(PATIENCE, async {
            while mailboxes.waiting() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("a fetchWait parks");
    }

    async fn resolve(&self, me: &User, name: &str) -> Response {
        self.handle(Request::ResolveUser {
            auth: me.token.clone(),
            username: Username::parse(name).unwrap(),
        })
        .await
    }
}

fn code(resp: Response) -> ErrorCode {
    match resp {
        Response::Error(WireError { code, .. }) => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The sequence numbers of a newly stored enqueue.
fn stored(resp: Response) -> Vec<u64> {
    match resp {
        Response::Enqueue {
            duplicate: false,
            seqs,
        } => seqs,
        other => panic!("expected a stored enqueue, got {other:?}"),
    }
}

fn mail(resp: Response) -> Vec<Envelope> {
    match resp {
        Response::Fetch(m) | Response::FetchWait(m) => m,
        other => panic!("expected mail, got {other:?}"),
    }
}

fn idem() -> IdempotencyKey {
    let mut k = [0u8; 16];
    OsRng.fill_bytes(&mut k);
    IdempotencyKey(k)
}

/// A padded MLS PrivateMessage framing (content type 1 application, 3
/// commit); the server reads only the framing.
fn mls(epoch: u64, content_type: u8, body: &[u8]) -> Vec<u8> {
    const GROUP: &[u8] = b"test-group-0001";
    let mut m = vec![0, 1, 0, 2, GROUP.len() as u8];
    m.extend_from_slice(GROUP);
    m.extend_from_slice(&epoch.to_be_bytes());
    m.push(content_type);
    m.extend_from_slice(body);
    padding::pad(&m)
}

/// What the per-recipient path carries: an MLS message that is not a
/// group's (a Welcome framing; group messages go through enqueueGroup).
fn app(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 1, 0, 3];
    m.extend_from_slice(body);
    padding::pad(&m)
}

/// `n` hybrid-suite key packages made as qpqd makes them, by an engine whose
/// credential names `name` and whose signature key is `key`.
fn real_key_packages(name: &str, key: &SigningKey, n: usize) -> Vec<Vec<u8>> {
    Attacker::engine(name, key)
        .key_packages(Ciphersuite::Hybrid, n)
        .unwrap()
}

fn real_last_resort(name: &str, key: &SigningKey) -> Vec<u8> {
    Attacker::engine(name, key)
        .last_resort_key_package(Ciphersuite::Hybrid)
        .unwrap()
}

/// The public framing of a serialized MLS KeyPackage, then `tag`.
fn key_package(tag: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 1, 0, 5, 0, 1];
    v.extend_from_slice(&SUITE.to_be_bytes());
    v.extend_from_slice(tag);
    v
}

// ---- auth ----

#[tokio::test]
async fn a_registered_user_logs_in_and_the_session_authenticates() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    assert_eq!(
        f.resolve(&alice, "alice").await,
        Response::ResolveUser {
            identity_key: alice.identity
        }
    );
    let again = f
        .handle(Request::OpaqueRegisterStart {
            username: alice.name.clone(),
            request: ClientRegistration::<Suite>::start(&mut OsRng, PASSWORD)
                .unwrap()
                .message
                .serialize()
                .to_vec(),
        })
        .await;
    assert_eq!(code(again), ErrorCode::UsernameTaken);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_fail_alike_with_e011() {
    let f = Fixture::new().await;
    f.register("alice").await;
    assert_eq!(
        f.login("alice", b"wrong password").await,
        Err(ErrorCode::LoginFailed)
    );
    assert_eq!(
        f.login("nobody", PASSWORD).await,
        Err(ErrorCode::LoginFailed)
    );
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    assert!(matches!(
        f.resolve(&alice, "alice").await,
        Response::ResolveUser { .. }
    ));
    let resp = f
        .handle(Request::Logout {
            auth: alice.token.clone(),
        })
        .await;
    assert_eq!(resp, Response::Logout);
    assert_eq!(
        code(f.resolve(&alice, "alice").await),
        ErrorCode::Unauthenticated
    );
}

#[tokio::test]
async fn a_session_expires_when_the_clock_passes_its_lifetime() {
    const TTL: Duration = Duration::from_secs(3600);
    let f = Fixture::with(|c| c.session_ttl = TTL).await;
    let alice = f.user("alice").await;
    f.advance(TTL - Duration::from_secs(1));
    assert!(matches!(
        f.resolve(&alice, "alice").await,
        Response::ResolveUser { .. }
    ));
    // Past the session cache's lifetime too, so the store is asked.
    f.advance(Duration::from_secs(60));
    assert_eq!(
        code(f.resolve(&alice, "alice").await),
        ErrorCode::Unauthenticated
    );
}

#[tokio::test]
async fn requests_past_the_accounts_burst_are_e004_until_the_clock_refills_it() {
    let f = Fixture::with(|c| {
        c.rate_limits = RateLimits {
            requests_per_second_per_account: 1,
            request_burst_per_account: 3,
            ..RateLimits::default()
        }
    })
    .await;
    let alice = f.user("alice").await;
    for _ in 0..3 {
        assert!(matches!(
            f.resolve(&alice, "alice").await,
            Response::ResolveUser { .. }
        ));
    }
    assert_rate_limited(f.resolve(&alice, "alice").await, Duration::from_secs(1));
    f.advance(Duration::from_secs(1));
    assert!(matches!(
        f.resolve(&alice, "alice").await,
        Response::ResolveUser { .. }
    ));
}

/// Asserts `resp` is E004 with a retry-after within `window`.
fn assert_rate_limited(resp: Response, window: Duration) {
    match resp {
        Response::Error(e) => {
            assert_eq!(e.code, ErrorCode::RateLimited);
            let ms = u128::from(e.retry_after_ms);
            assert!((1..=window.as_millis()).contains(&ms), "{ms}");
        }
        other => panic!("expected E004, got {other:?}"),
    }
}

#[tokio::test]
async fn logins_past_the_addresss_limit_are_e004_whatever_the_account() {
    let f = Fixture::with(|c| {
        c.rate_limits = RateLimits {
            login_per_address_per_minute: 2,
            ..RateLimits::unlimited()
        }
    })
    .await;
    // Unknown names get a login answer too (from a fake record).
    f.assert_two_per_window_per_address(Opening::Login, Duration::from_secs(60))
        .await;
}

#[tokio::test]
async fn registrations_past_the_addresss_limit_are_e004_until_the_hour_refills_it() {
    let f = Fixture::with(|c| {
        c.rate_limits = RateLimits {
            registrations_per_address_per_hour: 2,
            ..RateLimits::unlimited()
        }
    })
    .await;
    f.assert_two_per_window_per_address(Opening::Registration, Duration::from_secs(3600))
        .await;
}

/// Addresses of one IPv6 /64 share one login limit (a customer holds the
/// whole /64: counting full addresses gave one machine 2^64 limits); the
/// next /64 has its own.
#[tokio::test]
async fn logins_from_one_ipv6_prefix_share_its_limit() {
    let f = Fixture::with(|c| {
        c.rate_limits = RateLimits {
            login_per_address_per_minute: 2,
            ..RateLimits::unlimited()
        }
    })
    .await;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let started = |r: &Response| matches!(r, Response::OpaqueLoginStart { .. });
    for (name, addr) in [("ann", "2001:db8:1:2::1"), ("ben", "2001:db8:1:2:ffff::2")] {
        let r = f.open_from(Opening::Login, name, ip(addr)).await;
        assert!(started(&r), "{r:?}");
    }
    let third = f
        .open_from(Opening::Login, "cat", ip("2001:db8:1:2:1234::3"))
        .await;
    assert_rate_limited(third, Duration::from_secs(60));
    let next = f
        .open_from(Opening::Login, "cat", ip("2001:db8:1:3::1"))
        .await;
    assert!(started(&next), "the next /64: {next:?}");
}

/// One address group has at most `pending_logins_per_address` logins
/// pending, whatever the rate limits say, while other groups still log in.
/// (The pending map used to be global: 100,000 pending starts from anyone
/// refused every login with E004.)
#[tokio::test]
async fn pending_logins_are_capped_per_address_group() {
    let f = Fixture::with(|c| {
        c.rate_limits = RateLimits::unlimited();
        c.network.pending_logins_per_address = 3;
    })
    .await;
    let started = |r: &Response| matches!(r, Response::OpaqueLoginStart { .. });
    for name in ["ann", "ben", "cat"] {
        let r = f.open_from(Opening::Login, name, PEER).await;
        assert!(started(&r), "{r:?}");
    }
    let fourth = f.open_from(Opening::Login, "dan", PEER).await;
    assert_rate_limited(fourth, LOGIN_STATE_TTL);
    let r = f.open_from(Opening::Login, "dan", ELSEWHERE).await;
    assert!(started(&r), "another address: {r:?}");
    // Once the pending ones have expired, the group has room again.
    f.advance(LOGIN_STATE_TTL);
    let r = f.open_from(Opening::Login, "dan", PEER).await;
    assert!(started(&r), "after the login lifetime: {r:?}");
}

// ---- directory ----

#[tokio::test]
async fn key_packages_are_consumed_and_the_last_resort_survives() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let packages = real_key_packages("bob", &bob.signing, 2);
    let last = real_last_resort("bob", &bob.signing);
    let resp = f
        .handle(Request::UploadKeyPackages {
            auth: bob.token.clone(),
            packages: packages.clone(),
            last_resort: Some(last.clone()),
        })
        .await;
    assert_eq!(resp, Response::UploadKeyPackages { available: 2 });

    let fetch = |target| Request::FetchKeyPackage {
        auth: alice.token.clone(),
        target,
        suite: SUITE,
    };
    let mut regular = Vec::new();
    for _ in 0..2 {
        match f.handle(fetch(UserRef::Username(bob.name.clone()))).await {
            Response::FetchKeyPackage {
                key_package,
                identity_key,
                last_resort: false,
            } => {
                assert_eq!(identity_key, bob.identity);
                regular.push(key_package);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(regular == packages, "oldest first, each once");
    // The stock is used up; the last-resort package is handed out again and
    // again, by name or by identity key.
    for target in [
        UserRef::Identity(bob.identity),
        UserRef::Username(bob.name.clone()),
    ] {
        match f.handle(fetch(target)).await {
            Response::FetchKeyPackage {
                key_package,
                identity_key,
                last_resort: true,
            } => assert!(identity_key == bob.identity && key_package == last),
            other => panic!("{other:?}"),
        }
    }
    let nobody = UserRef::Username(Username::parse("nobody").unwrap());
    assert_eq!(code(f.handle(fetch(nobody)).await), ErrorCode::UnknownUser);
}

#[tokio::test]
async fn resolve_user_finds_registered_names_only() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let (_, bob) = f.register("bob").await;
    assert_eq!(
        f.resolve(&alice, "bob").await,
        Response::ResolveUser { identity_key: bob }
    );
    assert_eq!(
        code(f.resolve(&alice, "nobody").await),
        ErrorCode::UnknownUser
    );
}

// ---- delivery ----

#[tokio::test]
async fn enqueued_mail_is_fetched_until_acknowledged() {
    let f = Fixture::new().await;
    let (alice, bob) = (f.user("alice").await, f.user("bob").await);
    let channel = f.channel(&alice, &bob).await;
    let payload = app(b"hello");
    let resp = f
        .send(&alice, &bob, Some(channel), payload.clone(), idem())
        .await;
    let seqs = stored(resp);
    assert_eq!(seqs.len(), 1);

    let got = mail(f.fetch(&bob, None).await);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].seq, seqs[0]);
    assert_eq!(got[0].channel, Some(channel));
    assert_eq!(got[0].payload, payload);
    assert_eq!(
        got[0].enqueued_at_ms,
        f.now.get().unix_ms,
        "stored with the passed-in time"
    );
    // Fetching does not remove; only the ack does.
    assert_eq!(mail(f.fetch(&bob, Some(channel)).await).len(), 1);
    assert!(
        mail(f.fetch(&alice, None).await).is_empty(),
        "routed to bob only"
    );
    let resp = f
        .handle(Request::Ack {
            auth: bob.token.clone(),
            seqs,
        })
        .await;
    assert_eq!(resp, Response::Ack { removed: 1 });
    assert!(mail(f.fetch(&bob, None).await).is_empty());
}

#[tokio::test]
async fn a_third_user_is_refused_the_channel_with_e022() {
    let f = Fixture::new().await;
    let (alice, bob, eve) = (
        f.user("alice").await,
        f.user("bob").await,
        f.user("eve").await,
    );
    let channel = f.channel(&alice, &bob).await;
    // Eve may not send through it, to either member.
    for to in [&alice, &bob] {
        let resp = f.send(&eve, to, Some(channel), app(b"x"), idem()).await;
        assert_eq!(code(resp), ErrorCode::ChannelDenied);
    }
    // Nor may a member send through it to someone else.
    let resp = f.send(&alice, &eve, Some(channel), app(b"x"), idem()).await;
    assert_eq!(code(resp), ErrorCode::ChannelDenied);
    assert_eq!(
        code(f.fetch(&eve, Some(channel)).await),
        ErrorCode::ChannelDenied
    );
    assert_eq!(
        code(f.fetch_wait(&eve, Some(channel)).await),
        ErrorCode::ChannelDenied
    );
    // An unknown channel looks the same.
    let unknown = ChannelId([7; 16]);
    assert_eq!(
        code(f.fetch(&eve, Some(unknown)).await),
        ErrorCode::ChannelDenied
    );
}

#[tokio::test]
async fn an_empty_channel_is_e023_when_channels_are_required() {
    let f = Fixture::new().await;
    let (alice, bob) = (f.user("alice").await, f.user("bob").await);
    let resp = f.send(&alice, &bob, None, app(b"legacy"), idem()).await;
    assert_eq!(code(resp), ErrorCode::LegacyPathDisabled);

    let lax = Fixture::with(|c| c.require_channel_authz = false).await;
    let (alice, bob) = (lax.user("alice").await, lax.user("bob").await);
    let resp = lax.send(&alice, &bob, None, app(b"legacy"), idem()).await;
    stored(resp);
    assert_eq!(mail(lax.fetch(&bob, None).await).len(), 1);
}

#[tokio::test]
async fn a_repeated_idempotency_key_is_stored_once() {
    let f = Fixture::new().await;
    let (alice, bob) = (f.user("alice").await, f.user("bob").await);
    let channel = f.channel(&alice, &bob).await;
    let key = idem();
    let first = f.send(&alice, &bob, Some(channel), app(b"once"), key).await;
    stored(first);
    let retry = f.send(&alice, &bob, Some(channel), app(b"once"), key).await;
    assert_eq!(
        retry,
        Response::Enqueue {
            duplicate: true,
            seqs: Vec::new()
        }
    );
    assert_eq!(mail(f.fetch(&bob, None).await).len(), 1);
}

#[tokio::test]
async fn a_group_message_through_the_per_recipient_path_is_e049() {
    let f = Fixture::new().await;
    let (alice, bob) = (f.user("alice").await, f.user("bob").await);
    let channel = f.channel(&alice, &bob).await;
    for content_type in [1, 2, 3] {
        let sent = f
            .send(
                &alice,
                &bob,
                Some(channel),
                mls(5, content_type, b"a"),
                idem(),
            )
            .await;
        assert_eq!(code(sent), ErrorCode::WrongGroup);
    }
    stored(f.send(&alice, &bob, Some(channel), app(b"b"), idem()).await);
}

#[tokio::test]
async fn a_parked_fetch_wait_wakes_on_an_enqueue() {
    let f = Fixture::new().await;
    let (alice, bob) = (f.user("alice").await, f.user("bob").await);
    let channel = f.channel(&alice, &bob).await;
    let mailboxes = f.service.delivery().mailboxes();
    let (woken, sent) = tokio::time::timeout(PATIENCE, async {
        tokio::join!(f.fetch_wait(&bob, None), async {
            f.until_parked().await;
            f.send(&alice, &bob, Some(channel), app(b"wake"), idem())
                .await
        })
    })
    .await
    .expect("the enqueue wakes the fetchWait long before its timeout");
    stored(sent);
    let got = mail(woken);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, app(b"wake"));
    assert_eq!(mailboxes.waiting(), 0);
    assert_eq!(
        mailboxes.watched(),
        0,
        "the answered fetchWait forgets its mailbox"
    );
}

#[tokio::test]
async fn a_parked_fetch_wait_answers_empty_on_shutdown() {
    let f = Fixture::new().await;
    let bob = f.user("bob").await;
    let (answer, ()) = tokio::time::timeout(PATIENCE, async {
        tokio::join!(f.fetch_wait(&bob, None), async {
            f.until_parked().await;
            f.shutdown.send(true).unwrap();
        })
    })
    .await
    .expect("shutdown ends the fetchWait");
    assert!(mail(answer).is_empty());
}

/// A client that goes away drops its held request; the mailbox must not
/// stay registered (it did before the subscription became a drop guard).
#[tokio::test]
async fn a_cancelled_fetch_wait_forgets_its_mailbox() {
    let f = Fixture::new().await;
    let bob = f.user("bob").await;
    tokio::select! {
        answer = f.fetch_wait(&bob, None) => panic!("answered early: {answer:?}"),
        () = f.until_parked() => {}
    }
    let mailboxes = f.service.delivery().mailboxes();
    assert_eq!(mailboxes.waiting(), 0);
    assert_eq!(mailboxes.watched(), 0);
}

/// Attack: copy the server's database (a backup, a stolen disk) and present
/// the session tokens found in it. The defence: the `sessions` table holds
/// SHA-256 of each token (`SessionToken::hash`), never the token a client
/// presents. Read from the file itself, as the thief would.
#[tokio::test]
async fn a_leaked_session_table_holds_no_usable_token() {
    use sha2::{Digest, Sha256};

    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let database = Config::for_tests(f._dir.path()).database;
    let conn = rusqlite::Connection::open_with_flags(
        database.sqlite_path().expect("SQLite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let rows: Vec<(Vec<u8>, String)> = conn
        .prepare("SELECT token_hash, username FROM sessions")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let raw = alice.token.expose().to_vec();
    let digest = Sha256::digest(&raw).to_vec();
    assert_eq!(
        rows,
        [(digest, "alice".to_string())],
        "one session, stored as the token's SHA-256"
    );
    // Nowhere in the table, in any column, is the token itself.
    let hits: i64 = conn
        .query_row(
            "SELECT count(*) FROM sessions \
             WHERE instr(token_hash, ?1) > 0 OR instr(CAST(username AS BLOB), ?1) > 0",
            [&raw],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hits, 0);
}

mod account_changes;
mod bounds;
