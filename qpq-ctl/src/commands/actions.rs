//! What a member does to a message once it is sent: `react`, `edit`,
//! `delete`, and reading what they left: `edits` (the earlier versions) and
//! `mentions`; `typing` tells the members we type and `read` what we read.
//!
//! A message is named by its conversation (this profile's name or id for
//! it) and its id, which is the same on every member's side. Only the
//! sender may `edit` a message or `delete` it for everyone: the daemon
//! refuses the others with `-32013` (exit status 6, `refused`).

use quicproquo_protocol::ipc::methods::{
    method, DeleteParams, EditParams, MentionsParams, MessageRefParams, ReactParams, ReadParams,
    TypingParams,
};

use super::messages::{print_changed, print_messages, text_argument};
use crate::cli::{
    DeleteArgs, EditArgs, MentionsArgs, MessageArgs, ReactArgs, ReadArgs, TypingArgs,
};
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{local_time, sanitize, Out, Paint};
use crate::session::Session;

pub async fn react(session: &Session, out: &mut Out, args: ReactArgs) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let m = client
        .request::<method::React>(ReactParams {
            conversation: args.message.conversation,
            id: args.message.id,
            emoji: args.emoji,
            remove: args.remove,
        })
        .await?;
    print_changed(&client, out, &m).await
}

pub async fn edit(session: &Session, out: &mut Out, args: EditArgs) -> Result<Exit, CtlError> {
    let text = text_argument(Some(args.text), out).await?;
    let client = session.connect().await?;
    let m = client
        .request::<method::Edit>(EditParams {
            conversation: args.message.conversation,
            id: args.message.id,
            text,
        })
        .await?;
    print_changed(&client, out, &m).await
}

pub async fn delete(session: &Session, out: &mut Out, args: DeleteArgs) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    client
        .request::<method::Delete>(DeleteParams {
            conversation: args.message.conversation,
            id: args.message.id,
            for_me: args.for_me,
        })
        .await?;
    if out.is_json() {
        out.json(&serde_json::json!({}))?;
    }
    Ok(Exit::Ok)
}

/// `edits`: the earlier versions, oldest first, as `TIME  TEXT`.
pub async fn edits(session: &Session, out: &mut Out, args: MessageArgs) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let versions = client
        .request::<method::MessageEdits>(MessageRefParams {
            conversation: args.conversation,
            id: args.id,
        })
        .await?;
    if out.is_json() {
        out.json(&versions)?;
        return Ok(Exit::Ok);
    }
    if versions.is_empty() {
        out.line("not edited: no earlier versions")?;
        return Ok(Exit::Ok);
    }
    let style = out.style();
    for v in &versions {
        let time = local_time(v.timestamp_ms);
        let pad = " ".repeat(time.len() + 2);
        let text = sanitize(&v.text).replace('\n', &format!("\n{pad}"));
        out.line(&format!("{}  {text}", style.paint(Paint::Dim, &time)))?;
    }
    Ok(Exit::Ok)
}

pub async fn mentions(
    session: &Session,
    out: &mut Out,
    args: MentionsArgs,
) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let messages = client
        .request::<method::Mentions>(MentionsParams {
            conversation: args.conversation,
            before: None,
            limit: args.limit,
        })
        .await?;
    print_messages(&client, out, &messages, true, args.ids).await
}

pub async fn typing(session: &Session, out: &mut Out, args: TypingArgs) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    client
        .request::<method::Typing>(TypingParams {
            conversation: args.conversation,
            on: args.state,
        })
        .await?;
    if out.is_json() {
        out.json(&serde_json::json!({}))?;
    }
    Ok(Exit::Ok)
}

/// `read`: silent for people; scripts get `{unread}`, what is left unread.
pub async fn read(session: &Session, out: &mut Out, args: ReadArgs) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let r = client
        .request::<method::Read>(ReadParams {
            conversation: args.conversation,
            up_to: args.up_to,
        })
        .await?;
    if out.is_json() {
        out.json(&r)?;
    }
    Ok(Exit::Ok)
}
