//! Who is who: looking users up in the server's directory, pinning their
//! identity keys on first sight (a later change is flagged, never taken
//! silently), safety numbers, verification marks and the members list.

use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::ipc::methods::VerifyResult;
use quicproquo_protocol::ipc::notifications::{IdentityChange, Notification};
use quicproquo_protocol::ipc::values::{ConversationRef, Member as IpcMember};
use quicproquo_protocol::types::{IdentityKey, Username};
use quicproquo_protocol::wire;

use super::{emit, Agent, AgentError, AgentResult};
use crate::core::{Core, CoreError};
use crate::db::conversations::{self, Conversation};
use crate::link::LinkError;
use crate::mls::GroupId;

/// How long a member looked up for a members list is not looked up again
/// for one (whether their account was deleted).
const RECHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// What the server's directory says of a username.
pub(crate) enum Listed {
    Key(IdentityKey),
    /// No such user (E020).
    Unknown,
    /// The account was deleted (E051); the name is never registered again.
    Deleted,
}

impl Agent {
    /// What the server lists for `username`. A deleted account is marked so
    /// in the state (members lists show it). Pins nothing.
    pub(crate) async fn look_up(&self, username: &Username) -> AgentResult<Listed> {
        let link = self.link()?;
        let refused = match link
            .request(wire::ResolveUser {
                auth: self.token()?,
                username: username.clone(),
            })
            .await
        {
            Ok(k) => return Ok(Listed::Key(k)),
            Err(LinkError::Call(quicproquo_protocol::client::ClientError::Server(w))) => w,
            Err(e) => return Err(e.into()),
        };
        match refused.code {
            ErrorCode::UnknownUser => Ok(Listed::Unknown),
            ErrorCode::AccountDeleted => {
                let name = username.to_string();
                self.core()?
                    .run(move |c| conversations::mark_deleted(c.db(), &name))
                    .await?;
                tracing::info!(user = %username, "a contact's account was deleted");
                Ok(Listed::Deleted)
            }
            _ => Err(AgentError::Refused(refused)),
        }
    }

    /// The identity key the server lists for `username`; `None` when it has
    /// no such user (or it was deleted). Pins nothing.
    pub(crate) async fn listed_key(&self, username: &Username) -> AgentResult<Option<IdentityKey>> {
        Ok(match self.look_up(username).await? {
            Listed::Key(k) => Some(k),
            Listed::Unknown | Listed::Deleted => None,
        })
    }

    /// Looks a user up on the server and pins (or checks) their identity key.
    pub(crate) async fn resolve_contact(&self, name: &str) -> AgentResult<(Username, IdentityKey)> {
        let username =
            Username::parse(name).map_err(|e| AgentError::InvalidInput(e.to_string()))?;
        let identity_key = match self.look_up(&username).await? {
            Listed::Key(k) => k,
            Listed::Unknown => {
                return Err(AgentError::NotFound(format!(
                    "no user `{username}` on the server"
                )))
            }
            Listed::Deleted => {
                return Err(AgentError::Refused(WireError::new(
                    ErrorCode::AccountDeleted,
                    format!("`{username}` deleted their account"),
                )))
            }
        };
        let name = username.to_string();
        let events = self
            .core()?
            .run(move |c| pin_identity(c, &name, identity_key.as_bytes()))
            .await?;
        self.publish(events.into_iter().collect());
        Ok((username, identity_key))
    }

    /// The safety number with `name` for the key they hold in
    /// `conversation` (without one: in our DM with them; with no DM, the key
    /// the server lists) — the key our messages there are encrypted to.
    /// `confirm` marks that key verified: only if it is the key the server
    /// lists for the name (else the conversation holds someone else under
    /// that name) and, with `compared`, only if it is still the number the
    /// user compared. The mark stays with that key.
    pub async fn verify(
        &self,
        name: &str,
        confirm: bool,
        compared: Option<&str>,
        conversation: Option<&ConversationRef>,
    ) -> AgentResult<VerifyResult> {
        let (username, listed) = self.resolve_contact(name).await?;
        let mine = self.me()?.identity;
        let u = username.to_string();
        let r = conversation.cloned();
        let held = self
            .core()?
            .run(move |c| key_held(c, &u, r.as_ref()))
            .await?
            .unwrap_or(listed);
        let number = safety_number(&mine, &held);
        let matches_directory = held == listed;
        if confirm {
            if !matches_directory {
                return Err(AgentError::IdentityChanged(format!(
                    "not marked verified: the key {username} holds there is not the key the server \
                     lists for {username}: someone else is using that name in this conversation"
                )));
            }
            let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
            if compared.is_some_and(|n| digits(n) != digits(&number)) {
                return Err(AgentError::IdentityChanged(format!(
                    "not marked verified: the safety number with {username} is no longer the one you compared \
                     (their key changed); compare the new number first"
                )));
            }
        }
        let u = username.to_string();
        let contact = self
            .core()?
            .run(move |c| -> rusqlite::Result<_> {
                if confirm {
                    conversations::set_verified(c.db(), &u, &held.0)?;
                }
                conversations::contact(c.db(), &u)
            })
            .await?;
        let (verified, key_changed) = conversations::trust(contact.as_ref(), &held.0);
        Ok(VerifyResult {
            username: username.to_string(),
            safety_number: number,
            verified,
            key_changed,
            matches_directory,
        })
    }

    /// A conversation's members. Those not yet known to be deleted are
    /// looked up again in the background (each at most once per
    /// `RECHECK_AFTER`), so a later list shows a deletion.
    pub async fn members(
        self: &std::sync::Arc<Self>,
        r: &ConversationRef,
    ) -> AgentResult<Vec<IpcMember>> {
        let r = r.clone();
        let (list, me) = self
            .core()?
            .run(move |c| {
                let conv = super::history::find(c, &r)?;
                let me = c.engine_ref().map(|e| e.identity_key());
                Ok::<_, AgentError>((members(c, &conv)?, me))
            })
            .await?;
        if self.token().is_err() {
            return Ok(list);
        }
        let due = {
            let mut rechecked = self.rechecked.lock().unwrap_or_else(|p| p.into_inner());
            rechecked.retain(|_, at| at.elapsed() < RECHECK_AFTER);
            let now = std::time::Instant::now();
            list.iter()
                .filter(|m| !m.deleted && Some(m.identity) != me)
                .filter(|m| rechecked.insert(m.username.clone(), now).is_none())
                .map(|m| m.username.clone())
                .collect::<Vec<_>>()
        };
        self.spawn_look_up(due);
        Ok(list)
    }
}

/// Core operation: a conversation's members with their verification state.
fn members(c: &mut Core, conv: &Conversation) -> AgentResult<Vec<IpcMember>> {
    let Some(g) = GroupId::from_slice(&conv.group_id) else {
        return Ok(Vec::new());
    };
    if !conv.active {
        return Ok(Vec::new());
    }
    let members = c.engine()?.members(g).map_err(CoreError::from)?;
    let mut out = Vec::new();
    for m in members {
        let k = conversations::contact(c.db(), m.username.as_str())?;
        let (verified, key_changed) = conversations::trust(k.as_ref(), &m.identity.0);
        out.push(IpcMember {
            username: m.username.to_string(),
            identity: m.identity,
            verified,
            key_changed,
            deleted: conversations::is_deleted(c.db(), m.username.as_str())?,
        });
    }
    Ok(out)
}

/// Core operation: the key `username` holds in the conversation `r` (their
/// DM without one). `None` with no conversation and no DM; an error if they
/// are not in it, or hold two keys there.
fn key_held(
    c: &mut Core,
    username: &str,
    r: Option<&ConversationRef>,
) -> AgentResult<Option<IdentityKey>> {
    let conv = match r {
        Some(r) => super::history::find(c, r)?,
        None => match conversations::dm_with(c.db(), username)? {
            Some(dm) => dm,
            None => return Ok(None),
        },
    };
    let Some(g) = GroupId::from_slice(&conv.group_id).filter(|_| conv.active) else {
        return Err(AgentError::NotFound(format!(
            "{} is not a conversation you are in",
            conv.name
        )));
    };
    let keys: Vec<IdentityKey> = c
        .engine()?
        .members(g)
        .map_err(CoreError::from)?
        .into_iter()
        .filter(|m| m.username.as_str() == username)
        .map(|m| m.identity)
        .collect();
    match keys.as_slice() {
        [] => Err(AgentError::NotFound(format!(
            "{username} is not a member of {}",
            conv.name
        ))),
        [k] => Ok(Some(*k)),
        _ => Err(AgentError::InvalidInput(format!(
            "{username} holds more than one key in {}",
            conv.name
        ))),
    }
}

/// Pins `username`'s identity key on first sight; a different key later is
/// recorded, flagged (`key_changed`, verification cleared) and announced
/// with an `identity` notification — never accepted silently.
pub(crate) fn pin_identity(
    c: &Core,
    username: &str,
    identity: &[u8; 32],
) -> rusqlite::Result<Option<Notification>> {
    match conversations::pin_identity(c.db(), username, identity)? {
        conversations::Pin::Changed { previous } => {
            let ev = emit(c, |seq| {
                Notification::Identity(IdentityChange {
                    seq,
                    username: username.to_owned(),
                    old_fingerprint: fingerprint(&previous),
                    new_fingerprint: fingerprint(identity),
                })
            })?;
            tracing::warn!(user = username, "a contact's identity key changed");
            Ok(Some(ev))
        }
        conversations::Pin::New | conversations::Pin::Same => Ok(None),
    }
}

/// The members (but ourselves) we have pinned no key for: to look up in
/// the directory (a credential's key is never pinned; see
/// [`Agent::spawn_look_up`]).
pub(crate) fn unknown_members(
    c: &Core,
    members: &[crate::mls::Member],
) -> rusqlite::Result<Vec<String>> {
    let me = c.engine_ref().map(|e| e.identity_key());
    let mut out = Vec::new();
    for m in members.iter().filter(|m| Some(m.identity) != me) {
        if conversations::contact(c.db(), m.username.as_str())?.is_none() {
            out.push(m.username.to_string());
        }
    }
    Ok(out)
}

impl Agent {
    /// Pins the keys the server lists for `names` (members we just met in a
    /// group, or members listed again), in the background: what a member's
    /// credential says is compared with that, never pinned. A deleted
    /// account is marked (by [`Agent::look_up`]).
    pub(crate) fn spawn_look_up(self: &std::sync::Arc<Self>, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        let me = self.clone();
        self.spawn(async move {
            // Looked up one by one, pinned together: one core trip for a
            // group of any size.
            let mut found = Vec::with_capacity(names.len());
            for name in names {
                let Ok(username) = Username::parse(&name) else {
                    continue;
                };
                match me.listed_key(&username).await {
                    Ok(Some(key)) => found.push((name, key)),
                    Ok(None) => tracing::info!(user = %name, "a member the server does not know"),
                    Err(e) => {
                        tracing::debug!(user = %name, error = %e, "looking up a new member");
                        return;
                    }
                }
            }
            let Ok(core) = me.core() else { return };
            let pinned = core
                .run(move |c| {
                    // One transaction: one fsync, not one per member.
                    c.atomically(|c| -> rusqlite::Result<Vec<Notification>> {
                        let mut events = Vec::new();
                        for (name, key) in &found {
                            events.extend(pin_identity(c, name, key.as_bytes())?);
                        }
                        Ok(events)
                    })
                })
                .await;
            match pinned {
                Ok(events) => me.publish(events),
                Err(e) => tracing::debug!(error = %e, "pinning new members"),
            }
        });
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
