//! Who is who: looking users up in the server's directory, pinning their
//! identity keys on first sight (a later change is flagged, never taken
//! silently), safety numbers, verification marks and the members list.

use quicproquo_protocol::errors::ErrorCode;
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

impl Agent {
    /// Looks a user up on the server and pins (or checks) their identity key.
    pub(crate) async fn resolve_contact(&self, name: &str) -> AgentResult<(Username, IdentityKey)> {
        let username =
            Username::parse(name).map_err(|e| AgentError::InvalidInput(e.to_string()))?;
        let link = self.link()?;
        let identity_key = link
            .request(wire::ResolveUser {
                auth: self.token()?,
                username: username.clone(),
            })
            .await
            .map_err(|e| match e {
                LinkError::Call(quicproquo_protocol::client::ClientError::Server(w))
                    if w.code == ErrorCode::UnknownUser =>
                {
                    AgentError::NotFound(format!("no user `{username}` on the server"))
                }
                other => other.into(),
            })?;
        let name = username.to_string();
        let events = self
            .core()?
            .run(move |c| pin_identity(c, &name, identity_key.as_bytes()))
            .await?;
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
        let mine = self.me()?.identity;
        let number = safety_number(&mine, &theirs);
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        if let Some(compared) = compared.filter(|_| confirm) {
            if digits(compared) != digits(&number) {
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
                    conversations::set_verified(c.db(), &u)?;
                }
                conversations::contact(c.db(), &u)
            })
            .await?
            .ok_or_else(|| AgentError::internal("contact vanished"))?;
        Ok(VerifyResult {
            username: username.to_string(),
            safety_number: number,
            verified: contact.verified,
            key_changed: contact.key_changed,
            matches_directory: true,
        })
    }

    pub async fn members(&self, r: &ConversationRef) -> AgentResult<Vec<IpcMember>> {
        let r = r.clone();
        self.core()?
            .run(move |c| {
                let conv = super::history::find(c, &r)?;
                members(c, &conv)
            })
            .await
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
        out.push(IpcMember {
            username: m.username.to_string(),
            identity: m.identity,
            verified: k.as_ref().is_some_and(|k| k.verified),
            key_changed: k.as_ref().is_some_and(|k| k.key_changed),
        });
    }
    Ok(out)
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

/// Pins every member but ourselves (members seen in a Welcome or a commit).
pub(crate) fn pin_members(
    c: &Core,
    members: &[crate::mls::Member],
) -> rusqlite::Result<Vec<Notification>> {
    let me = c.engine_ref().map(|e| e.identity_key());
    let mut out = Vec::new();
    for m in members {
        if Some(m.identity) == me {
            continue;
        }
        out.extend(pin_identity(c, m.username.as_str(), m.identity.as_bytes())?);
    }
    Ok(out)
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
