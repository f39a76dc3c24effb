//! Conversation names for output, and local resolution of a conversation
//! reference where the daemon does not resolve it for us (`recv
//! --conversation` filters a stream the daemon does not filter).
//!
//! Resolution follows the daemon's rules (ipc.md "Values"): 32 hex digits are
//! an id, `@user` is the DM with that user, anything else a name, the most
//! recently active conversation winning when several share it.

use std::collections::{HashMap, HashSet};

use quicproquo_protocol::ipc::client::IpcClient;
use quicproquo_protocol::ipc::methods::{method, NoParams};
use quicproquo_protocol::ipc::values::{
    Conversation, ConversationId, ConversationKind, ConversationRef,
};

use crate::error::CtlError;

pub struct Names {
    client: IpcClient,
    conversations: HashMap<ConversationId, Conversation>,
    /// Ids the daemon did not list at the last refresh: asked about once.
    unknown: HashSet<ConversationId>,
}

impl Names {
    pub async fn load(client: &IpcClient) -> Result<Names, CtlError> {
        let mut names = Names {
            client: client.clone(),
            conversations: HashMap::new(),
            unknown: HashSet::new(),
        };
        names.refresh().await?;
        Ok(names)
    }

    /// Uses another connection from now on (after a reconnect).
    pub fn set_client(&mut self, client: &IpcClient) {
        self.client = client.clone();
    }

    /// Asks the daemon again: names change (a DM joined a moment ago is
    /// named once its creator's first message arrives).
    pub async fn refresh(&mut self) -> Result<(), CtlError> {
        let list = self
            .client
            .request::<method::Conversations>(NoParams {})
            .await?;
        self.conversations = list.into_iter().map(|c| (c.id, c)).collect();
        self.unknown.clear();
        Ok(())
    }

    /// The conversation's name; asks the daemon again for one it has not
    /// seen (a group joined a moment ago). Its id when it has no name.
    pub async fn name(&mut self, id: ConversationId) -> Result<String, CtlError> {
        if !self.conversations.contains_key(&id) && !self.unknown.contains(&id) {
            self.refresh().await?;
            if !self.conversations.contains_key(&id) {
                self.unknown.insert(id);
            }
        }
        Ok(self
            .conversations
            .get(&id)
            .map(|c| c.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.to_hex()))
    }

    pub fn resolve(&self, r: &ConversationRef) -> Option<ConversationId> {
        resolve(self.conversations.values(), r)
    }

    /// The conversation as the daemon listed it at the last refresh.
    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations.get(&id)
    }

    /// Every conversation listed at the last refresh, by name.
    pub fn all(&self) -> Vec<&Conversation> {
        let mut all: Vec<&Conversation> = self.conversations.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.to_hex().cmp(&b.id.to_hex())));
        all
    }
}

fn resolve<'a>(
    conversations: impl Iterator<Item = &'a Conversation> + Clone,
    r: &ConversationRef,
) -> Option<ConversationId> {
    let latest = |it: &mut dyn Iterator<Item = &'a Conversation>| {
        it.max_by_key(|c| c.last_activity_ms).map(|c| c.id)
    };
    match r {
        ConversationRef::Id(id) => conversations
            .clone()
            .find(|c| c.id == *id)
            .map(|c| c.id)
            // A group may be named with 32 hex digits.
            .or_else(|| {
                latest(&mut conversations.filter(|c| c.name.eq_ignore_ascii_case(&id.to_hex())))
            }),
        ConversationRef::Dm(user) => latest(
            &mut conversations
                .filter(|c| c.kind == ConversationKind::Dm && c.members.iter().any(|m| m == user)),
        ),
        ConversationRef::Name(name) => latest(&mut conversations.filter(|c| &c.name == name)),
    }
}

#[cfg(test)]
mod tests {
    use quicproquo_protocol::ipc::values::Ciphersuite;

    use super::*;

    fn conv(id: u8, name: &str, kind: ConversationKind, members: &[&str], at: u64) -> Conversation {
        Conversation {
            id: ConversationId([id; 16]),
            name: name.into(),
            kind,
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            unread: 0,
            ciphersuite: Ciphersuite::Hybrid,
            last_activity_ms: at,
        }
    }

    #[test]
    fn references_resolve_like_the_daemon() {
        let all = [
            conv(1, "team", ConversationKind::Group, &["alice", "bob"], 5),
            conv(2, "team", ConversationKind::Group, &["alice", "carol"], 9),
            conv(3, "bob", ConversationKind::Dm, &["alice", "bob"], 1),
        ];
        let r = |s: &str| resolve(all.iter(), &ConversationRef::parse(s).unwrap());
        assert_eq!(r("team"), Some(ConversationId([2; 16])), "latest wins");
        assert_eq!(r("@bob"), Some(ConversationId([3; 16])));
        assert_eq!(r("@carol"), None, "a group is not a DM");
        assert_eq!(r(&"01".repeat(16)), Some(ConversationId([1; 16])));
        assert_eq!(r(&"07".repeat(16)), None);
        assert_eq!(r("nope"), None);
    }
}
