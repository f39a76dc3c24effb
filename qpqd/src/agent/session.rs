//! The daemon's lifecycle and the account: opening the state (locked →
//! open), registering and logging in (→ online: the supervised connection and
//! the background loops), logging out, status, and what a fresh connection
//! needs (the key-package stock, `connection` notifications).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use quicproquo_protocol::client::{Client, ClientError, Trust};
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::ipc::methods::{AccountParams, StatusResult, WhoamiResult};
use quicproquo_protocol::ipc::notifications::{ConnectionChange, Notification};
use quicproquo_protocol::ipc::values::{
    Account as IpcAccount, Ciphersuite, ConnectionState, KeystoreState, StorageState,
};
use quicproquo_protocol::types::{IdentityKey, SessionToken, Username};
use quicproquo_protocol::wire::{self, identity_proof_message};
use zeroize::Zeroizing;

use super::{emit, Agent, AgentError, AgentResult, Me, Opened, Phase};
use crate::core::{Core, CoreError, CoreHandle};
use crate::db::{account, messages, now_ms, outbox};
use crate::integrity::{self, CounterFile, Guard};
use crate::keystore::{self, KeySource, Keyring, KeystoreError};
use crate::link::{connect_round, ConnState, Link, Target};
use crate::mls::{Identity, Suite};
use crate::nodes;
use crate::reader::Reader;

/// What the daemon was started with.
#[derive(Clone)]
pub struct StartOptions {
    pub profile: String,
    pub data_dir: PathBuf,
    pub state_file: PathBuf,
    /// `QPQ_PASSPHRASE`, if set.
    pub passphrase: Option<Zeroizing<String>>,
    /// `QPQ_USE_CA_CERT=1`: verify the server against the system roots.
    pub use_ca: bool,
    pub keyring: Arc<dyn Keyring>,
    /// `QPQ_TEST_DISK_FULL=1`, read by test (debug) builds only: the state
    /// file may not grow, as on a full disk ([`crate::core::simulate_full_disk`]).
    pub test_disk_full: bool,
    /// `QPQ_TEST_SEARCH_DELAY_MS`, test (debug) builds only: each search
    /// first waits this long, as one over a large history would take.
    pub test_search_delay: Duration,
    /// How long a silent node is waited for before the daemon moves to
    /// another: [`quicproquo_protocol::client::DEFAULT_IDLE_TIMEOUT`];
    /// test (debug) builds read `QPQ_TEST_NODE_TIMEOUT_MS`.
    pub node_timeout: Duration,
}

/// One-time key packages kept on the server; refilled below the low mark.
const KEY_PACKAGE_STOCK: usize = 20;
const KEY_PACKAGE_LOW: u32 = 5;
/// How long one last-resort key package is re-used.
const LAST_RESORT_MAX_AGE_MS: u64 = 7 * 24 * 3600 * 1000;
/// A stock of one-time packages last uploaded this long ago is topped up
/// with fresh ones whatever its count: halfway through their 84 days, so
/// the server always holds packages with weeks left.
const KEY_PACKAGE_MAX_AGE_MS: u64 = 42 * 24 * 3600 * 1000;
/// While the connection stays up, the stock is checked this often (not only
/// when the connection comes up).
const REFILL_EVERY: Duration = Duration::from_secs(6 * 3600);

/// Whether a suite's one-time stock is topped up: when fewer than the low
/// mark are left, or when the last upload (`uploaded`, never: `None`) is
/// [`KEY_PACKAGE_MAX_AGE_MS`] old, whatever is left.
fn needs_refill(available: u32, stock: usize, uploaded: Option<u64>, now_ms: u64) -> bool {
    let low = KEY_PACKAGE_LOW.min(u32::try_from(stock).unwrap_or(u32::MAX));
    let fresh = uploaded.is_some_and(|t| now_ms.saturating_sub(t) < KEY_PACKAGE_MAX_AGE_MS);
    available < low || !fresh
}

#[cfg(test)]
#[test]
fn the_stock_is_refilled_by_count_and_by_age() {
    let day = 24 * 3600 * 1000;
    let now = 100 * day;
    assert!(
        !needs_refill(20, 20, Some(now - day), now),
        "full and young"
    );
    assert!(
        needs_refill(4, 20, Some(now - day), now),
        "below the low mark"
    );
    assert!(
        !needs_refill(5, 5, Some(now - day), now),
        "a small stock is full at its size"
    );
    assert!(needs_refill(4, 5, Some(now - day), now));
    assert!(
        needs_refill(20, 20, Some(now - 42 * day), now),
        "full but 42 days old"
    );
    assert!(
        needs_refill(20, 20, None, now),
        "never uploaded by this version"
    );
}

impl From<KeystoreError> for AgentError {
    fn from(e: KeystoreError) -> Self {
        AgentError::Locked(e.to_string())
    }
}

/// The account as the agent keeps it in memory.
fn me_of(a: &account::Account) -> Result<Me, CoreError> {
    let username = Username::parse(&a.username)
        .map_err(|e| CoreError::Db(rusqlite::Error::InvalidParameterName(e.to_string())))?;
    let token = match &a.token {
        Some(t) => Some(
            SessionToken::from_slice(&t[..])
                .map_err(|e| CoreError::Db(rusqlite::Error::InvalidParameterName(e.to_string())))?,
        ),
        None => None,
    };
    Ok(Me {
        username,
        identity: IdentityKey(
            SigningKey::from_bytes(&a.identity_seed)
                .verifying_key()
                .to_bytes(),
        ),
        server: a.server.clone(),
        token,
    })
}

/// Core operation: loads the account (if any) and hands the connection to
/// its MLS engine.
fn load_account(c: &mut Core) -> Result<Option<(account::Account, Me)>, CoreError> {
    let Some(a) = account::get(c.db())? else {
        return Ok(None);
    };
    let me = me_of(&a)?;
    c.attach(Identity::from_seed(me.username.clone(), &a.identity_seed))?;
    Ok(Some((a, me)))
}

impl Agent {
    /// Opens the state with `passphrase` (or the keyring) and, if an account
    /// with a session exists, connects. Called at start and by `unlock`.
    pub async fn open(self: &Arc<Self>, passphrase: Option<Zeroizing<String>>) -> AgentResult<()> {
        if !matches!(self.phase(), Phase::Locked) {
            return Ok(());
        }
        let opts = self.options.clone();
        let opened = tokio::task::spawn_blocking(move || -> Result<_, KeystoreError> {
            let (key, source) = keystore::obtain(
                &opts.data_dir,
                &opts.profile,
                opts.keyring.as_ref(),
                passphrase.as_deref().map(|s| s.as_str()),
            )?;
            let conn = crate::state::open(&opts.state_file, &key).map_err(|e| match e {
                crate::state::StateError::WrongKey => KeystoreError::WrongPassphrase,
                other => KeystoreError::Manifest {
                    path: opts.state_file.clone(),
                    reason: other.to_string(),
                },
            })?;
            let counter = CounterFile::new(&opts.state_file, &key);
            let finding =
                integrity::check_at_open(&conn, &counter).map_err(|e| KeystoreError::Manifest {
                    path: opts.state_file.clone(),
                    reason: e.to_string(),
                })?;
            #[cfg(debug_assertions)]
            if opts.test_disk_full {
                crate::core::simulate_full_disk(&conn).map_err(|e| KeystoreError::Manifest {
                    path: opts.state_file.clone(),
                    reason: e.to_string(),
                })?;
            }
            let reader = crate::state::open_reader(&opts.state_file, &key).map_err(|e| {
                KeystoreError::Manifest {
                    path: opts.state_file.clone(),
                    reason: e.to_string(),
                }
            })?;
            let reader = Reader::new(reader, opts.test_search_delay);
            Ok((conn, source, counter, finding, reader))
        })
        .await
        .map_err(AgentError::internal)?;
        let failure = match &opened {
            Ok(_) | Err(KeystoreError::NeedPassphrase) | Err(KeystoreError::WrongPassphrase) => {
                None
            }
            Err(e) => Some(e.to_string()),
        };
        *self.open_failure.lock().unwrap_or_else(|p| p.into_inner()) = failure;
        let (conn, key_source, counter, finding, reader) = opened?;
        let core = Core::new(conn);
        if let Some(f) = &finding {
            tracing::error!(alarm = ?f.alarm, detail = %f.detail, "the state failed its integrity checks; holding the connection");
        }
        let guard = Arc::new(Guard::new(counter, core.commit_counter(), finding));
        let (core, _thread) = CoreHandle::spawn(core).map_err(AgentError::internal)?;
        let account = core.run(load_account).await?;
        {
            let mut phase = self.phase.write().unwrap_or_else(|p| p.into_inner());
            if !matches!(*phase, Phase::Locked) {
                // A concurrent `unlock` won; this core thread ends with its
                // last handle.
                return Ok(());
            }
            *phase = Phase::Open(Opened {
                core,
                reader,
                key_source,
                guard,
                me: account.as_ref().map(|(_, me)| me.clone()),
            });
        }
        tracing::info!(keystore = ?key_source, "state opened");
        // Expired messages go from the start, online or not.
        let me = Arc::clone(self);
        self.spawn(async move { me.expiry_loop().await });
        if let Some((a, me)) = account {
            if me.token.is_some() {
                self.go_online(&a)?;
            }
        }
        Ok(())
    }

    fn target(
        &self,
        server: &str,
        fingerprint: Option<[u8; 32]>,
        use_ca: bool,
    ) -> AgentResult<Target> {
        let nodes = nodes::parse(server).map_err(|e| AgentError::InvalidInput(e.to_string()))?;
        let use_ca = use_ca || self.options.use_ca;
        let trust = if use_ca {
            Trust::SystemRoots
        } else {
            match fingerprint {
                Some(f) => Trust::Pin(f),
                None => Trust::FirstUse,
            }
        };
        Ok(Target {
            nodes,
            use_ca,
            trust,
            idle: self.options.node_timeout,
        })
    }

    /// open → online: starts the supervised connection and the background
    /// loops. A running link is re-pointed instead (a `login` with a new
    /// server or pin). While an integrity finding is unacknowledged the
    /// daemon stays offline (`integrity`).
    fn go_online(self: &Arc<Self>, a: &account::Account) -> AgentResult<()> {
        if self.integrity_finding().is_some() {
            tracing::info!("not connecting: the integrity finding is not acknowledged yet");
            return Ok(());
        }
        self.start_link(a, true)
    }

    /// The link and the loops of [`Agent::go_online`]; the outbox loop only
    /// with `outbox` (after an integrity finding it starts once every group
    /// is re-keyed).
    pub(crate) fn start_link(
        self: &Arc<Self>,
        a: &account::Account,
        outbox: bool,
    ) -> AgentResult<()> {
        let target = self.target(&a.server, a.server_fingerprint, a.use_ca)?;
        let link = {
            let mut phase = self.phase.write().unwrap_or_else(|p| p.into_inner());
            match &*phase {
                Phase::Online(_, link) => {
                    link.retarget(target);
                    return Ok(());
                }
                Phase::Locked => return Err(self.locked()),
                Phase::Open(o) => {
                    let (link, task) = Link::start(target, self.shutdown_signal());
                    self.spawn(async move {
                        let _ = task.await;
                    });
                    *phase = Phase::Online(o.clone(), link.clone());
                    link
                }
            }
        };
        let me = self.clone();
        let l = link.clone();
        self.spawn(async move { me.connection_events(l).await });
        let me = self.clone();
        let l = link.clone();
        self.spawn(async move { me.receive_loop(l).await });
        let me = self.clone();
        let l = link.clone();
        self.spawn(async move { me.upload_loop(l).await });
        if outbox {
            let me = self.clone();
            self.spawn(async move { me.outbox_loop(link).await });
        }
        Ok(())
    }

    /// Turns link state changes into `connection` notifications, and does
    /// what a fresh connection needs (key package stock, outbox drain).
    async fn connection_events(self: Arc<Self>, link: Link) {
        let mut w = link.watch();
        let mut shutdown = self.shutdown_signal();
        loop {
            let state = *w.borrow_and_update();
            let detail = link.detail();
            if let Ok(core) = self.core() {
                let st = match state {
                    ConnState::Online => ConnectionState::Online,
                    ConnState::Offline => ConnectionState::Offline,
                    ConnState::Reconnecting => ConnectionState::Reconnecting,
                };
                let ev = core
                    .run(move |c| {
                        emit(c, |seq| {
                            Notification::Connection(ConnectionChange {
                                seq,
                                state: st,
                                detail,
                            })
                        })
                    })
                    .await;
                if let Ok(ev) = ev {
                    self.publish(vec![ev]);
                }
            }
            if state == ConnState::Online {
                if let Err(e) = self.refill_key_packages(&link).await {
                    tracing::warn!(error = %e, "key package refill failed");
                }
                self.outbox_kick.notify_one();
                let me = Arc::clone(&self);
                self.spawn(async move { me.recreate_legacy().await });
            }
            // Until the state changes; while online, the stock is checked
            // every REFILL_EVERY too.
            let mut refill =
                tokio::time::interval_at(tokio::time::Instant::now() + REFILL_EVERY, REFILL_EVERY);
            loop {
                tokio::select! {
                    r = w.changed() => if r.is_err() { return } else { break },
                    _ = shutdown.changed() => return,
                    _ = refill.tick(), if state == ConnState::Online => {
                        if let Err(e) = self.refill_key_packages(&link).await {
                            tracing::warn!(error = %e, "key package refill failed");
                        }
                    }
                }
            }
        }
    }

    /// Keeps a stock of one-time key packages (and one last-resort package)
    /// on the server, for each ciphersuite a group may use.
    pub(crate) async fn refill_key_packages(&self, link: &Link) -> AgentResult<()> {
        let _one_at_a_time = self.refill.lock().await;
        for (suite, stock) in [
            (Suite::Hybrid, KEY_PACKAGE_STOCK),
            (Suite::Classic, KEY_PACKAGE_STOCK / 4),
        ] {
            self.refill_suite(link, suite, stock).await?;
        }
        Ok(())
    }

    async fn refill_suite(&self, link: &Link, suite: Suite, stock: usize) -> AgentResult<()> {
        let token = self.token()?;
        let core = self.core()?;
        // The same last-resort package until it is a week old: a new one on
        // every connection kept new private keys forever. The one it
        // replaces is remembered, to delete its keys once the new one is up.
        let (last_resort, replaced) = core
            .run(move |c| -> Result<(Vec<u8>, Option<Vec<u8>>), CoreError> {
                let now = now_ms();
                if let Some(kept) =
                    account::last_resort(c.db(), suite.code(), now, LAST_RESORT_MAX_AGE_MS)?
                {
                    return Ok((kept, None));
                }
                let replaced = account::last_resort(c.db(), suite.code(), now, u64::MAX)?;
                let fresh = c.engine()?.last_resort_key_package(suite)?;
                account::set_last_resort(c.db(), suite.code(), &fresh, now)?;
                Ok((fresh, replaced))
            })
            .await?;
        let available = link
            .request(wire::UploadKeyPackages {
                auth: token.clone(),
                packages: Vec::new(),
                last_resort: Some(last_resort),
            })
            .await?;
        if let Some(old) = replaced {
            // The server hands out the new one now: a Welcome for the old
            // one could only come from an adder that fetched it before.
            core.run(move |c| -> Result<bool, CoreError> {
                Ok(c.engine()?.forget_key_package(&old)?)
            })
            .await?;
        }
        // By age as well as by count: packages live 84 days, and the server
        // neither counts nor hands out expired ones.
        let uploaded = core
            .run(move |c| account::key_packages_uploaded(c.db(), suite.code()))
            .await?;
        if !needs_refill(available, stock, uploaded, now_ms()) {
            return Ok(());
        }
        let packages = core
            .run(move |c| {
                c.engine()?
                    .key_packages(suite, stock)
                    .map_err(CoreError::from)
            })
            .await?;
        link.request(wire::UploadKeyPackages {
            auth: token,
            packages,
            last_resort: None,
        })
        .await?;
        core.run(move |c| account::set_key_packages_uploaded(c.db(), suite.code(), now_ms()))
            .await?;
        tracing::info!(uploaded = stock, ?suite, "key packages refilled");
        Ok(())
    }

    async fn connect_once(
        &self,
        p: &AccountParams,
        use_ca: bool,
    ) -> AgentResult<(Client, Option<[u8; 32]>)> {
        let target = self.target(&p.server, p.server_fingerprint, use_ca)?;
        // The first node that answers; with trust on first use, its
        // certificate becomes the pin every node is checked against.
        let client = connect_round(&target, 0)
            .await
            .map_err(AgentError::NetworkDown)?
            .client;
        let pin = match target.trust {
            Trust::SystemRoots => None,
            _ => client.server_fingerprint(),
        };
        Ok((client, pin))
    }

    /// Stores the account and makes it the agent's (in memory too).
    async fn keep_account(&self, acct: account::Account) -> AgentResult<()> {
        let me = me_of(&acct)?;
        let username = me.username.clone();
        self.core()?
            .run(move |c| -> Result<(), CoreError> {
                account::put(c.db(), &acct, now_ms())?;
                c.attach(Identity::from_seed(username, &acct.identity_seed))?;
                Ok(())
            })
            .await?;
        self.update_opened(|o| o.me = Some(me));
        Ok(())
    }

    /// Registers `p.username` with a new identity — stored, marked pending,
    /// before the server creates the account, so a crash in between loses
    /// nothing: `register` again (or `login`) with the same name completes
    /// it with the stored identity.
    pub async fn register(self: &Arc<Self>, p: AccountParams) -> AgentResult<IpcAccount> {
        let username =
            Username::parse(&p.username).map_err(|e| AgentError::InvalidInput(e.to_string()))?;
        if let Some(problem) = quicproquo_protocol::limits::new_secret_problem(
            "password",
            p.password.expose(),
            quicproquo_protocol::limits::MIN_PASSWORD_CHARS,
        ) {
            return Err(AgentError::InvalidInput(problem));
        }
        let existing = self.core()?.run(|c| account::get(c.db())).await?;
        let (signing, resumed) = match existing {
            Some(a) if a.registration_pending && a.username == username.as_str() => {
                (SigningKey::from_bytes(&a.identity_seed), true)
            }
            Some(a) if a.registration_pending => {
                return Err(AgentError::Conflict(format!(
                    "this profile holds an unfinished registration of `{}`: register `{}` again \
                     to finish it, or use another --profile",
                    a.username, a.username
                )))
            }
            Some(_) => {
                return Err(AgentError::Conflict(
                    "this profile already has an account; use another --profile".into(),
                ))
            }
            None => (SigningKey::generate(&mut rand::rngs::OsRng), false),
        };
        let (client, pin) = self.connect_once(&p, false).await?;
        let identity = IdentityKey(signing.verifying_key().to_bytes());
        let proof = signing.sign(&identity_proof_message(&username)).to_bytes();
        let password = p.password.expose().as_bytes();
        let mut acct = account::Account {
            username: username.to_string(),
            identity_seed: Zeroizing::new(signing.to_bytes()),
            server: p.server.clone(),
            server_name: String::new(),
            server_fingerprint: pin,
            use_ca: self.options.use_ca,
            token: None,
            token_expires_ms: None,
            registration_pending: true,
        };
        let pending = acct.clone();
        self.core()?
            .run(move |c| account::put(c.db(), &pending, now_ms()))
            .await?;
        match client.register(&username, password, identity, proof).await {
            Ok(()) => {}
            // The server created the account before a crash cut the first
            // try short: the login below shows whether it holds our key.
            Err(ClientError::Server(w)) if resumed && w.code == ErrorCode::UsernameTaken => {}
            Err(e) => {
                if matches!(e, ClientError::Server(_)) && !resumed {
                    // Refused for good (the name taken, say): nothing was
                    // created, so the profile may register another name.
                    self.core()?
                        .run(|c| account::forget_pending(c.db()))
                        .await?;
                }
                return Err(e.into());
            }
        }
        let session = client.login(&username, password).await?;
        client.close().await;
        if session.identity_key != identity {
            return Err(AgentError::Conflict(format!(
                "`{username}` was registered by someone else meanwhile; use another name in \
                 another --profile"
            )));
        }
        acct.token = Some(Zeroizing::new(*session.token.expose()));
        acct.token_expires_ms = Some(session.expires_at_ms);
        acct.registration_pending = false;
        self.keep_account(acct.clone()).await?;
        self.go_online(&acct)?;
        // Others can add us only once our key packages are on the server:
        // upload them before saying the account is ready.
        let link = self.online_link().await?;
        self.refill_key_packages(&link).await?;
        Ok(IpcAccount {
            username: acct.username,
            identity,
        })
    }

    pub async fn login(self: &Arc<Self>, p: AccountParams) -> AgentResult<IpcAccount> {
        let username =
            Username::parse(&p.username).map_err(|e| AgentError::InvalidInput(e.to_string()))?;
        let existing = self.core()?.run(|c| account::get(c.db())).await?;
        let Some(mut acct) = existing else {
            return Err(AgentError::NotFound(
                "this profile has no identity for that account: an identity lives on the device \
                 that registered it (register a new account in a new profile)"
                    .into(),
            ));
        };
        if acct.username != username.as_str() {
            return Err(AgentError::Conflict(format!(
                "this profile belongs to `{}`; use another --profile",
                acct.username
            )));
        }
        let params = AccountParams {
            server_fingerprint: p.server_fingerprint.or(acct.server_fingerprint),
            ..p
        };
        // An account registered with CA verification keeps it.
        let (client, pin) = self.connect_once(&params, acct.use_ca).await?;
        let session = client
            .login(&username, params.password.expose().as_bytes())
            .await?;
        client.close().await;
        let signing = SigningKey::from_bytes(&acct.identity_seed);
        if session.identity_key.0 != signing.verifying_key().to_bytes() {
            return Err(AgentError::Conflict(
                "the server has another identity key for this account than this profile holds"
                    .into(),
            ));
        }
        acct.server = params.server.clone();
        acct.server_fingerprint = pin.or(acct.server_fingerprint);
        acct.token = Some(Zeroizing::new(*session.token.expose()));
        acct.token_expires_ms = Some(session.expires_at_ms);
        // A registration a crash cut short is complete: the server has the
        // account with our key.
        acct.registration_pending = false;
        self.keep_account(acct.clone()).await?;
        // A running connection moves to what this login used (a new
        // server, or a pin re-established after a certificate change).
        self.go_online(&acct)?;
        Ok(IpcAccount {
            username: acct.username,
            identity: session.identity_key,
        })
    }

    pub async fn logout(&self) -> AgentResult<()> {
        if let (Ok(token), Ok(link)) = (self.token(), self.link()) {
            // Best effort: the local token is dropped either way.
            let _ = link.request(wire::Logout { auth: token }).await;
        }
        self.core()?
            .run(|c| account::set_token(c.db(), None, None))
            .await?;
        self.update_opened(|o| {
            if let Some(me) = &mut o.me {
                me.token = None;
            }
        });
        Ok(())
    }

    pub async fn whoami(&self) -> AgentResult<WhoamiResult> {
        let me = self.me()?;
        Ok(WhoamiResult {
            username: me.username.to_string(),
            identity: me.identity,
            server: me.server,
        })
    }

    pub async fn status(&self) -> AgentResult<StatusResult> {
        let phase = self.phase();
        // Locked with no state file: the passphrase `unlock` gets creates it.
        let new_state = matches!(phase, Phase::Locked) && !self.options.state_file.exists();
        let (keystore, me, link) = match &phase {
            Phase::Locked => (KeystoreState::Locked, None, None),
            Phase::Open(o) => (keystore_state(o.key_source), o.me.clone(), None),
            Phase::Online(o, l) => (keystore_state(o.key_source), o.me.clone(), Some(l)),
        };
        let logged_in = me.as_ref().is_some_and(|m| m.token.is_some());
        let (connection, connection_detail) = match link {
            Some(l) if logged_in => (
                match l.state() {
                    ConnState::Online => ConnectionState::Online,
                    ConnState::Offline => ConnectionState::Offline,
                    ConnState::Reconnecting => ConnectionState::Reconnecting,
                },
                l.detail(),
            ),
            _ => match self.integrity_finding() {
                Some(_) if logged_in => (
                    ConnectionState::Offline,
                    "held until the integrity finding is acknowledged (see `integrity`)".into(),
                ),
                _ => (
                    ConnectionState::LoggedOut,
                    // Locked because the state failed to open: say why.
                    self.open_failure().unwrap_or_default(),
                ),
            },
        };
        let finding = self.integrity_finding();
        let (outbox, unread) = match self.core() {
            Err(_) => (0, 0),
            Ok(core) => {
                core.run(|c| -> rusqlite::Result<_> {
                    Ok((outbox::len(c.db())?, messages::unread_total(c.db())?))
                })
                .await?
            }
        };
        let failing = self.storage.failing();
        Ok(StatusResult {
            profile: self.profile.clone(),
            account: me.as_ref().map(|m| IpcAccount {
                username: m.username.to_string(),
                identity: m.identity,
            }),
            server: me.map(|m| m.server),
            node: match link {
                Some(l) if logged_in && matches!(connection, ConnectionState::Online) => l.node(),
                _ => None,
            },
            connection,
            connection_detail,
            keystore,
            ciphersuite: Ciphersuite::Hybrid,
            outbox,
            unread,
            new_state,
            integrity: super::integrity::integrity_state(finding.as_ref()),
            integrity_detail: finding.map(|f| f.detail).unwrap_or_default(),
            storage: match failing {
                None => StorageState::Ok,
                Some(_) => StorageState::Failing,
            },
            storage_detail: failing.unwrap_or_default(),
        })
    }

    pub async fn unlock(self: &Arc<Self>, passphrase: Zeroizing<String>) -> AgentResult<()> {
        // A new state's passphrase is chosen here, and cannot be recovered.
        if matches!(self.phase(), Phase::Locked) && !self.options.state_file.exists() {
            if let Some(problem) = quicproquo_protocol::limits::new_secret_problem(
                "passphrase",
                &passphrase,
                quicproquo_protocol::limits::MIN_PASSPHRASE_CHARS,
            ) {
                return Err(AgentError::InvalidInput(problem));
            }
        }
        self.open(Some(passphrase)).await
    }

    /// The link once it is online (waits a few seconds for a reconnect).
    pub(crate) async fn online_link(&self) -> AgentResult<Link> {
        let link = self.link()?;
        if !link.wait_online(Duration::from_secs(5)).await {
            return Err(AgentError::offline());
        }
        Ok(link)
    }
}

fn keystore_state(source: KeySource) -> KeystoreState {
    match source {
        KeySource::Keyring => KeystoreState::Keyring,
        KeySource::Passphrase => KeystoreState::Passphrase,
    }
}
