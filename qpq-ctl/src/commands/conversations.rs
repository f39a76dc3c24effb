//! `list`, `dm`, `group …` and `members`: conversations and who is in them.

use quicproquo_protocol::ipc::methods::{
    method, ConversationParams, DmOpenParams, GroupCreateParams, GroupMembersParams, NoParams,
};
use quicproquo_protocol::ipc::values::{Conversation, ConversationRef, Member};

use super::word;
use crate::cli::GroupCommand;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{Out, Paint, Table};
use crate::session::Session;

/// Conversations as `list` shows them; one row for the commands that
/// print the conversation they made or changed.
fn conversation_table(conversations: &[Conversation]) -> Table {
    let mut t = Table::new(&["ID", "NAME", "KIND", "UNREAD", "MEMBERS"]);
    for c in conversations {
        t.styled_row(vec![
            (c.id.to_hex(), Some(Paint::Dim)),
            (c.name.clone(), Some(Paint::Conversation)),
            (word(&c.kind), None),
            (c.unread.to_string(), None),
            (c.members.join(", "), None),
        ]);
    }
    t
}

pub async fn list(session: &Session, out: &mut Out) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let mut all = client.request::<method::Conversations>(NoParams {}).await?;
    // Most recently active first, like a chat list.
    all.sort_by_key(|c| std::cmp::Reverse(c.last_activity_ms));
    out.table_or_json(conversation_table(&all), &all)?;
    Ok(Exit::Ok)
}

pub(super) fn print_conversation(out: &mut Out, c: &Conversation) -> Result<Exit, CtlError> {
    out.table_or_json(conversation_table(std::slice::from_ref(c)), c)?;
    Ok(Exit::Ok)
}

pub async fn dm(session: &Session, out: &mut Out, username: String) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let c = client
        .request::<method::DmOpen>(DmOpenParams { username })
        .await?;
    print_conversation(out, &c)
}

pub async fn group(session: &Session, out: &mut Out, cmd: GroupCommand) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    match cmd {
        GroupCommand::Create {
            name,
            usernames,
            ciphersuite,
        } => {
            let c = client
                .request::<method::GroupCreate>(GroupCreateParams {
                    name,
                    members: usernames,
                    ciphersuite,
                })
                .await?;
            print_conversation(out, &c)
        }
        GroupCommand::Add {
            conversation,
            usernames,
        } => {
            let c = client
                .request::<method::GroupAdd>(GroupMembersParams {
                    conversation,
                    members: usernames,
                })
                .await?;
            print_conversation(out, &c)
        }
        GroupCommand::Remove {
            conversation,
            usernames,
        } => {
            let c = client
                .request::<method::GroupRemove>(GroupMembersParams {
                    conversation,
                    members: usernames,
                })
                .await?;
            print_conversation(out, &c)
        }
        GroupCommand::Leave { conversation } => {
            let shown = conversation.to_string();
            let empty = client
                .request::<method::GroupLeave>(ConversationParams { conversation })
                .await?;
            if out.is_json() {
                out.json(&empty)?;
            } else {
                out.line(&format!("left {shown}"))?;
            }
            Ok(Exit::Ok)
        }
        GroupCommand::Rekey { conversation } => {
            let shown = conversation.to_string();
            let r = client
                .request::<method::GroupRekey>(ConversationParams { conversation })
                .await?;
            if out.is_json() {
                out.json(&r)?;
            } else {
                out.line(&format!("re-keyed {shown}: epoch {}", r.epoch))?;
            }
            Ok(Exit::Ok)
        }
    }
}

pub async fn members(
    session: &Session,
    out: &mut Out,
    conversation: ConversationRef,
) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let members = client
        .request::<method::Members>(ConversationParams { conversation })
        .await?;
    out.table_or_json(member_table(&members), &members)?;
    Ok(Exit::Ok)
}

pub(super) fn member_table(members: &[Member]) -> Table {
    let mut t = Table::new(&["USERNAME", "KEY", "IDENTITY"]);
    for m in members {
        // A deleted account's key no longer matters: nobody answers to it.
        let (trust, paint) = if m.deleted {
            ("(deleted account)", Some(Paint::Dim))
        } else if m.key_changed {
            ("CHANGED", Some(Paint::Warn))
        } else if m.verified {
            ("verified", None)
        } else {
            ("unverified", Some(Paint::Dim))
        };
        t.styled_row(vec![
            (m.username.clone(), Some(Paint::Name)),
            (trust.into(), paint),
            (m.identity.to_hex(), None),
        ]);
    }
    t
}
