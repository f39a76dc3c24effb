//! Opening the state, the account (register, login, logout), status, and
//! identity verification.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use quicproquo_protocol::client::{Client, ClientError, Trust};
use quicproquo_protocol::ipc::error::IpcErrorCode;
use quicproquo_protocol::ipc::methods::{AccountParams, StatusResult, VerifyResult, WhoamiResult};
use quicproquo_protocol::ipc::notifications::{ConnectionChange, Notification};
use quicproquo_protocol::ipc::values::{
    Account as IpcAccount, Ciphersuite, ConnectionState, KeystoreState, Member as IpcMember,
};
use quicproquo_protocol::types::{IdentityKey, Username};
use quicproquo_protocol::wire::{identity_proof_message, Request, Response};
use zeroize::Zeroizing;

use super::{emit, err, from_link, internal, Agent, AgentResult};
use crate::core::{Core, CoreError, CoreHandle};
use crate::db::{account, conversations, messages, now_ms, outbox};
use crate::keystore::{self, KeySource, Keyring, KeystoreError};
use crate::link::{ConnState, Link, Target};
use crate::mls::{Identity, Suite};

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
}

/// One-time key packages kept on the server; refilled below the low mark.
const KEY_PACKAGE_STOCK: usize = 20;
const KEY_PACKAGE_LOW: u32 = 5;
/// How long one last-resort key package is re-used.
const LAST_RESORT_MAX_AGE_MS: u64 = 7 * 24 * 3600 * 1000;

fn map_keystore(e: KeystoreError) -> quicproquo_protocol::ipc::error::ErrorObject {
    match e {
        KeystoreError::NeedPassphrase => err(IpcErrorCode::Locked, e.to_string()),
        KeystoreError::WrongPassphrase => err(IpcErrorCode::Locked, e.to_string()),
        other => err(IpcErrorCode::Locked, other.to_string()),
    }
}

impl Agent {
    /// Opens the state with `passphrase` (or the keyring) and, if an account
    /// with a session exists, connects. Called at start and by `unlock`.
    pub async fn open(self: &Arc<Self>, passphrase: Option<Zeroizing<String>>) -> AgentResult<()> {
        if self.core.get().is_some() {
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
            Ok((conn, source))
        })
        .await
        .map_err(internal)?;
        let (conn, source) = opened.map_err(map_keystore)?;
        *self.key_source.write().await = Some(source);
        let (handle, _thread) = CoreHandle::spawn(Core::new(conn)).map_err(internal)?;
        let account = handle
            .run(|c| -> Result<Option<account::Account>, CoreError> {
                let acct = account::get(c.db())?;
                if let Some(a) = &acct {
                    let username = Username::parse(&a.username).map_err(|e| {
                        CoreError::Db(rusqlite::Error::InvalidParameterName(e.to_string()))
                    })?;
                    c.attach(Identity::from_seed(username, &a.identity_seed))?;
                }
                Ok(acct)
            })
            .await?;
        if self.core.set(handle).is_err() {
            return Ok(());
        }
        tracing::info!(keystore = ?source, "state opened");
        if let Some(a) = account {
            if a.token.is_some() {
                self.go_online(&a).await?;
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
        let addr: SocketAddr = server
            .to_socket_addrs()
            .map_err(|e| {
                err(
                    IpcErrorCode::InvalidInput,
                    format!("server `{server}`: {e}"),
                )
            })?
            .next()
            .ok_or_else(|| {
                err(
                    IpcErrorCode::InvalidInput,
                    format!("server `{server}` has no address"),
                )
            })?;
        let host = server.rsplit_once(':').map(|(h, _)| h).unwrap_or(server);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let use_ca = use_ca || self.options.use_ca;
        let server_name = if host.parse::<std::net::IpAddr>().is_ok() && !use_ca {
            // Self-signed certificates name localhost; pinning checks the
            // certificate itself. Under CA verification an IP address is
            // checked as one (the certificate must list it).
            "localhost".to_string()
        } else {
            host.to_string()
        };
        let trust = if use_ca {
            Trust::SystemRoots
        } else {
            match fingerprint {
                Some(f) => Trust::Pin(f),
                None => Trust::FirstUse,
            }
        };
        Ok(Target {
            addr,
            server_name,
            trust,
        })
    }

    /// Starts the supervised connection and the background loops.
    async fn go_online(self: &Arc<Self>, a: &account::Account) -> AgentResult<()> {
        let target = self.target(&a.server, a.server_fingerprint, a.use_ca)?;
        let (link, _task) = Link::start(target, self.shutdown_signal());
        *self.link.write().await = Some(link.clone());
        self.spawn_loops(link);
        Ok(())
    }

    fn spawn_loops(self: &Arc<Self>, link: Link) {
        let me = self.clone();
        let l = link.clone();
        tokio::spawn(async move { me.connection_events(l).await });
        let me = self.clone();
        let l = link.clone();
        tokio::spawn(async move { me.receive_loop(l).await });
        let me = self.clone();
        tokio::spawn(async move { me.outbox_loop(link).await });
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
                    tracing::warn!(error = %e.message, "key package refill failed");
                }
                self.outbox_kick.notify_one();
            }
            tokio::select! {
                r = w.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
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
        let token = self.token().await?;
        let core = self.core()?;
        // The same last-resort package until it is a week old: a new one on
        // every connection kept new private keys forever.
        let last_resort = core
            .run(move |c| -> Result<Vec<u8>, CoreError> {
                let now = now_ms();
                if let Some(kept) =
                    account::last_resort(c.db(), suite.code(), now, LAST_RESORT_MAX_AGE_MS)?
                {
                    return Ok(kept);
                }
                let fresh = c.engine()?.last_resort_key_package(suite)?;
                account::set_last_resort(c.db(), suite.code(), &fresh, now)?;
                Ok(fresh)
            })
            .await?;
        let r = link
            .call(&Request::UploadKeyPackages {
                auth: token.clone(),
                packages: Vec::new(),
                last_resort: Some(last_resort),
            })
            .await
            .map_err(from_link)?;
        let available = match r {
            Response::UploadKeyPackages { available } => available,
            other => return Err(internal(format!("unexpected answer {other:?}"))),
        };
        if available >= KEY_PACKAGE_LOW.min(stock as u32) {
            return Ok(());
        }
        let packages = core
            .run(move |c| {
                c.engine()?
                    .key_packages(suite, stock)
                    .map_err(CoreError::from)
            })
            .await?;
        link.call(&Request::UploadKeyPackages {
            auth: token,
            packages,
            last_resort: None,
        })
        .await
        .map_err(from_link)?;
        tracing::info!(uploaded = stock, ?suite, "key packages refilled");
        Ok(())
    }

    pub(crate) async fn token(&self) -> AgentResult<quicproquo_protocol::types::SessionToken> {
        let token = self
            .core()?
            .run(|c| account::get(c.db()).map(|a| a.and_then(|a| a.token)))
            .await
            .map_err(internal)?;
        let token =
            token.ok_or_else(|| err(IpcErrorCode::NotLoggedIn, "not logged in: log in first"))?;
        quicproquo_protocol::types::SessionToken::from_slice(&token[..]).map_err(internal)
    }

    async fn connect_once(
        &self,
        p: &AccountParams,
        use_ca: bool,
    ) -> AgentResult<(Client, Option<[u8; 32]>)> {
        let target = self.target(&p.server, p.server_fingerprint, use_ca)?;
        let client = Client::connect(target.addr, &target.server_name, target.trust.clone())
            .await
            .map_err(|e| err(IpcErrorCode::NetworkDown, e.to_string()))?;
        let pin = match target.trust {
            Trust::SystemRoots => None,
            _ => client.server_fingerprint(),
        };
        Ok((client, pin))
    }

    pub async fn register(self: &Arc<Self>, p: AccountParams) -> AgentResult<IpcAccount> {
        let username = Username::parse(&p.username)
            .map_err(|e| err(IpcErrorCode::InvalidInput, e.to_string()))?;
        let core = self.core()?.clone();
        if core
            .run(|c| account::get(c.db()))
            .await
            .map_err(internal)?
            .is_some()
        {
            return Err(err(
                IpcErrorCode::Conflict,
                "this profile already has an account; use another --profile",
            ));
        }
        let (client, pin) = self.connect_once(&p, false).await?;
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        let identity = IdentityKey(signing.verifying_key().to_bytes());
        let proof = signing.sign(&identity_proof_message(&username)).to_bytes();
        let password = p.password.expose().as_bytes();
        client
            .register(&username, password, identity, proof)
            .await
            .map_err(client_error)?;
        let session = client
            .login(&username, password)
            .await
            .map_err(client_error)?;
        client.close().await;
        let seed = Zeroizing::new(signing.to_bytes());
        let acct = account::Account {
            username: username.to_string(),
            identity_seed: seed.clone(),
            server: p.server.clone(),
            server_name: String::new(),
            server_fingerprint: pin,
            use_ca: self.options.use_ca,
            token: Some(Zeroizing::new(*session.token.expose())),
            token_expires_ms: Some(session.expires_at_ms),
        };
        let stored = acct.clone();
        core.run(move |c| -> Result<(), CoreError> {
            account::put(c.db(), &stored, now_ms())?;
            c.attach(Identity::from_seed(username, &seed))?;
            Ok(())
        })
        .await?;
        self.go_online(&acct).await?;
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
        let username = Username::parse(&p.username)
            .map_err(|e| err(IpcErrorCode::InvalidInput, e.to_string()))?;
        let core = self.core()?.clone();
        let existing = core.run(|c| account::get(c.db())).await.map_err(internal)?;
        let Some(mut acct) = existing else {
            return Err(err(
                IpcErrorCode::NotFound,
                "this profile has no identity for that account: an identity lives on the device \
                 that registered it (register a new account in a new profile)",
            ));
        };
        if acct.username != username.as_str() {
            return Err(err(
                IpcErrorCode::Conflict,
                format!(
                    "this profile belongs to `{}`; use another --profile",
                    acct.username
                ),
            ));
        }
        let params = AccountParams {
            server_fingerprint: p.server_fingerprint.or(acct.server_fingerprint),
            ..p
        };
        // An account registered with CA verification keeps it.
        let (client, pin) = self.connect_once(&params, acct.use_ca).await?;
        let session = client
            .login(&username, params.password.expose().as_bytes())
            .await
            .map_err(client_error)?;
        client.close().await;
        let signing = SigningKey::from_bytes(&acct.identity_seed);
        if session.identity_key.0 != signing.verifying_key().to_bytes() {
            return Err(err(
                IpcErrorCode::Conflict,
                "the server has another identity key for this account than this profile holds",
            ));
        }
        acct.server = params.server.clone();
        acct.server_fingerprint = pin.or(acct.server_fingerprint);
        acct.token = Some(Zeroizing::new(*session.token.expose()));
        acct.token_expires_ms = Some(session.expires_at_ms);
        let stored = acct.clone();
        core.run(move |c| account::put(c.db(), &stored, now_ms()))
            .await
            .map_err(internal)?;
        // A running connection moves to what this login used (a new
        // server, or a pin re-established after a certificate change).
        let running = self.link.read().await.clone();
        match running {
            Some(link) => {
                link.retarget(self.target(&acct.server, acct.server_fingerprint, acct.use_ca)?)
            }
            None => self.go_online(&acct).await?,
        }
        Ok(IpcAccount {
            username: acct.username,
            identity: session.identity_key,
        })
    }

    pub async fn logout(&self) -> AgentResult<()> {
        if let (Ok(token), Ok(link)) = (self.token().await, self.link().await) {
            // Best effort: the local token is dropped either way.
            let _ = link.call(&Request::Logout { auth: token }).await;
        }
        self.core()?
            .run(|c| account::set_token(c.db(), None, None))
            .await
            .map_err(internal)?;
        Ok(())
    }

    pub async fn whoami(&self) -> AgentResult<WhoamiResult> {
        let a = self
            .core()?
            .run(|c| account::get(c.db()))
            .await
            .map_err(internal)?
            .ok_or_else(|| err(IpcErrorCode::NotLoggedIn, "no account in this profile"))?;
        let key = SigningKey::from_bytes(&a.identity_seed)
            .verifying_key()
            .to_bytes();
        Ok(WhoamiResult {
            username: a.username,
            identity: IdentityKey(key),
            server: a.server,
        })
    }

    pub async fn status(&self) -> AgentResult<StatusResult> {
        let keystore = match *self.key_source.read().await {
            Some(KeySource::Keyring) => KeystoreState::Keyring,
            Some(KeySource::Passphrase) => KeystoreState::Passphrase,
            None => KeystoreState::Locked,
        };
        let logged_in = self.token().await.is_ok();
        let (connection, connection_detail) = match self.link.read().await.as_ref() {
            _ if !logged_in => (ConnectionState::LoggedOut, String::new()),
            None => (ConnectionState::LoggedOut, String::new()),
            Some(l) => (
                match l.state() {
                    ConnState::Online => ConnectionState::Online,
                    ConnState::Offline => ConnectionState::Offline,
                    ConnState::Reconnecting => ConnectionState::Reconnecting,
                },
                l.detail(),
            ),
        };
        let (account, server, outbox, unread) = match self.core() {
            Err(_) => (None, None, 0, 0),
            Ok(core) => core
                .run(|c| -> rusqlite::Result<_> {
                    let a = account::get(c.db())?;
                    Ok((
                        a.as_ref().map(|a| IpcAccount {
                            username: a.username.clone(),
                            identity: IdentityKey(
                                SigningKey::from_bytes(&a.identity_seed)
                                    .verifying_key()
                                    .to_bytes(),
                            ),
                        }),
                        a.map(|a| a.server),
                        outbox::len(c.db())?,
                        messages::unread_total(c.db())?,
                    ))
                })
                .await
                .map_err(internal)?,
        };
        Ok(StatusResult {
            profile: self.profile.clone(),
            account,
            server,
            connection,
            connection_detail,
            keystore,
            ciphersuite: Ciphersuite::Hybrid,
            outbox,
            unread,
        })
    }

    pub async fn unlock(self: &Arc<Self>, passphrase: Zeroizing<String>) -> AgentResult<()> {
        if self.core.get().is_some() {
            return Ok(());
        }
        self.open(Some(passphrase)).await
    }

    /// Looks a user up on the server and pins (or checks) their identity key.
    pub(crate) async fn resolve_contact(&self, name: &str) -> AgentResult<(Username, IdentityKey)> {
        let username =
            Username::parse(name).map_err(|e| err(IpcErrorCode::InvalidInput, e.to_string()))?;
        let link = self.link().await?;
        let r = link
            .call(&Request::ResolveUser {
                auth: self.token().await?,
                username: username.clone(),
            })
            .await
            .map_err(|e| match e {
                crate::link::LinkError::Call(ClientError::Server(w))
                    if w.code == quicproquo_protocol::errors::ErrorCode::UnknownUser =>
                {
                    err(
                        IpcErrorCode::NotFound,
                        format!("no user `{username}` on the server"),
                    )
                }
                other => from_link(other),
            })?;
        let Response::ResolveUser { identity_key } = r else {
            return Err(internal("unexpected answer to resolveUser"));
        };
        let name = username.to_string();
        let events = self
            .core()?
            .run(move |c| super::pin_identity(c, &name, identity_key.as_bytes()))
            .await
            .map_err(internal)?;
        self.publish(events.into_iter().collect());
        Ok((username, identity_key))
    }

    /// The safety number with `name` (from the key pinned for them, which
    /// the server's current answer may just have replaced and flagged).
    /// `confirm` marks that key verified; with `compared`, only if it is
    /// still the number the user compared.
    pub async fn verify(
        &self,
        name: &str,
        confirm: bool,
        compared: Option<&str>,
    ) -> AgentResult<VerifyResult> {
        let (username, theirs) = self.resolve_contact(name).await?;
        let mine = self.whoami().await?.identity;
        let number = safety_number(&mine, &theirs);
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        if let Some(compared) = compared.filter(|_| confirm) {
            if digits(compared) != digits(&number) {
                return Err(err(
                    IpcErrorCode::IdentityChanged,
                    format!(
                        "not marked verified: the safety number with {username} is no longer the one you compared \
                         (their key changed); compare the new number first"
                    ),
                ));
            }
        }
        let u = username.to_string();
        let contact = self
            .core()?
            .run(move |c| -> rusqlite::Result<_> {
                if confirm {
                    conversations::set_verified(c.db(), &u)?;
                }
                conversations::contact(c.db(), &u)
            })
            .await
            .map_err(internal)?
            .ok_or_else(|| internal("contact vanished"))?;
        Ok(VerifyResult {
            username: username.to_string(),
            safety_number: number,
            verified: contact.verified,
            key_changed: contact.key_changed,
        })
    }

    pub async fn members(
        &self,
        r: &quicproquo_protocol::ipc::values::ConversationRef,
    ) -> AgentResult<Vec<IpcMember>> {
        let conv = self.find(r).await?;
        self.core()?
            .run(move |c| -> Result<Vec<IpcMember>, CoreError> {
                let Some(g) = crate::mls::GroupId::from_slice(&conv.group_id) else {
                    return Ok(Vec::new());
                };
                if !conv.active {
                    return Ok(Vec::new());
                }
                let members = c.engine()?.members(g)?;
                let mut out = Vec::new();
                for m in members {
                    let k = conversations::contact(c.db(), m.username.as_str())?;
                    out.push(IpcMember {
                        username: m.username.to_string(),
                        identity: m.identity,
                        verified: k.as_ref().is_some_and(|k| k.verified),
                        key_changed: k.as_ref().is_some_and(|k| k.key_changed),
                    });
                }
                Ok(out)
            })
            .await
            .map_err(Into::into)
    }

    /// Waits (bounded) until the link is online.
    pub(crate) async fn online_link(&self) -> AgentResult<Link> {
        let link = self.link().await?;
        if !link.wait_online(Duration::from_secs(5)).await {
            return Err(from_link(crate::link::LinkError::Offline));
        }
        Ok(link)
    }
}

fn client_error(e: ClientError) -> quicproquo_protocol::ipc::error::ErrorObject {
    match e {
        ClientError::Server(w) => super::refused(&w),
        other => err(IpcErrorCode::NetworkDown, other.to_string()),
    }
}

/// SHA-256 of an identity key, hex: what `identity` notifications show.
pub(crate) fn fingerprint(key: &[u8; 32]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(key))
}

/// A safety number both users compute identically: 60 digits from both
/// identity keys (in a fixed order), in twelve groups of five.
pub fn safety_number(a: &IdentityKey, b: &IdentityKey) -> String {
    use quicproquo_protocol::compat::HKDF_LABEL_SAFETY_NUMBER;
    let (lo, hi) = if a.0 <= b.0 { (a, b) } else { (b, a) };
    let mut ikm = lo.0.to_vec();
    ikm.extend_from_slice(&hi.0);
    let hk = hkdf::Hkdf::<sha2::Sha512>::new(None, &ikm);
    let mut okm = [0u8; 60];
    hk.expand(HKDF_LABEL_SAFETY_NUMBER.as_bytes(), &mut okm)
        .expect("60 bytes is a valid HKDF-SHA512 length");
    okm.chunks(5)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)) % 100_000;
            format!("{n:05}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_numbers_are_symmetric_and_distinct() {
        let a = IdentityKey([1; 32]);
        let b = IdentityKey([2; 32]);
        let c = IdentityKey([3; 32]);
        let ab = safety_number(&a, &b);
        assert_eq!(ab, safety_number(&b, &a));
        assert_ne!(ab, safety_number(&a, &c));
        assert_eq!(ab.split(' ').count(), 12);
        assert!(ab
            .split(' ')
            .all(|g| g.len() == 5 && g.bytes().all(|d| d.is_ascii_digit())));
    }
}
