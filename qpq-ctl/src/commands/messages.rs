//! `send`, `history`, `search`, and `retry` / `discard` of a failed message.

use std::io::IsTerminal;

use quicproquo_protocol::ipc::methods::{method, MessageParams, SendParams};
use quicproquo_protocol::ipc::values::{Message, MessageId};

use super::names::Names;
use crate::cli::{HistoryArgs, SearchArgs, SendArgs};
use crate::error::CtlError;
use crate::exit::Exit;
use crate::input::{blocking, check_message, read_message};
use crate::output::{message, MessageView, Out};
use crate::session::Session;

pub async fn send(session: &Session, out: &mut Out, args: SendArgs) -> Result<Exit, CtlError> {
    // The text is complete and checked before the daemon is even reached:
    // an empty or oversized message sends nothing.
    let text = match args.text {
        Some(text) if text != "-" => check_message(text)?,
        _ => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() && !out.is_json() {
                crate::report::notice("type the message, then Ctrl-D on a line of its own");
            }
            blocking(move || read_message(stdin.lock())).await?
        }
    };
    let client = session.connect().await?;
    let sent = client
        .request::<method::Send>(SendParams {
            conversation: args.conversation,
            text,
            confirm_changed_keys: args.confirm_changed_keys,
            reply_to: None,
        })
        .await?;
    // For people, success is silence (the message is durable in the
    // outbox); scripts get the message with its id.
    if out.is_json() {
        let mut names = Names::load(&client).await?;
        let name = names.name(sent.conversation).await?;
        out.json(&view(&sent, &name).json())?;
    }
    Ok(Exit::Ok)
}

/// `retry <id>`: a failed message back in the outbox. Like `send`, silent
/// for people; scripts get the message, `queued`.
pub async fn retry(session: &Session, out: &mut Out, id: MessageId) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let queued = client
        .request::<method::MessageRetry>(MessageParams { id })
        .await?;
    if out.is_json() {
        let mut names = Names::load(&client).await?;
        let name = names.name(queued.conversation).await?;
        out.json(&view(&queued, &name).json())?;
    }
    Ok(Exit::Ok)
}

/// `discard <id>`: a failed message out of the outbox and the history.
pub async fn discard(session: &Session, out: &mut Out, id: MessageId) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    client
        .request::<method::MessageDiscard>(MessageParams { id })
        .await?;
    if out.is_json() {
        out.json(&serde_json::json!({}))?;
    }
    Ok(Exit::Ok)
}

fn view<'a>(m: &'a Message, conversation_name: &'a str) -> MessageView<'a> {
    MessageView {
        message: m,
        conversation_name,
        seq: None,
    }
}

/// Prints messages as a JSON array or aligned lines.
async fn print_messages(
    out: &mut Out,
    names: &mut Names,
    messages: &[Message],
    with_conversation: bool,
) -> Result<(), CtlError> {
    let mut conversation_names = Vec::with_capacity(messages.len());
    for m in messages {
        conversation_names.push(names.name(m.conversation).await?);
    }
    let views: Vec<MessageView<'_>> = messages
        .iter()
        .zip(&conversation_names)
        .map(|(m, n)| view(m, n))
        .collect();
    if out.is_json() {
        let json: Vec<_> = views.iter().map(MessageView::json).collect();
        out.json(&json)
    } else {
        let text = message::render(&views, with_conversation, &out.style());
        out.write(&text)
    }
}

pub async fn history(
    session: &Session,
    out: &mut Out,
    args: HistoryArgs,
) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let messages = client
        .history_pages(&args.conversation, None, args.limit.get())
        .await?
        .messages;
    let mut names = Names::load(&client).await?;
    print_messages(out, &mut names, &messages, false).await?;
    Ok(Exit::Ok)
}

pub async fn search(session: &Session, out: &mut Out, args: SearchArgs) -> Result<Exit, CtlError> {
    let query = args.words.join(" ");
    quicproquo_protocol::limits::check_search_query(&query).map_err(CtlError::Usage)?;
    let client = session.connect().await?;
    let messages = client
        .search_pages(&query, args.conversation.as_ref(), args.limit.get())
        .await?;
    let mut names = Names::load(&client).await?;
    print_messages(out, &mut names, &messages, true).await?;
    Ok(Exit::Ok)
}
