//! `send`, `history`, `search`, and `retry` / `discard` of a failed message.

use std::io::IsTerminal;

use quicproquo_protocol::ipc::client::IpcClient;
use quicproquo_protocol::ipc::methods::{method, MessageParams, SendParams};
use quicproquo_protocol::ipc::values::{Message, MessageId};

use super::names::Names;
use crate::cli::{HistoryArgs, SearchArgs, SendArgs};
use crate::error::CtlError;
use crate::exit::Exit;
use crate::input::{blocking, check_message, read_message};
use crate::output::message::Columns;
use crate::output::{message, MessageView, Out};
use crate::session::Session;

/// A message's text from the command line, or from stdin when absent or
/// `-`. It is complete and checked before the daemon is even reached: an
/// empty or oversized message sends nothing.
pub async fn text_argument(text: Option<String>, out: &Out) -> Result<String, CtlError> {
    match text {
        Some(text) if text != "-" => check_message(text),
        _ => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() && !out.is_json() {
                crate::report::notice("type the message, then Ctrl-D on a line of its own");
            }
            blocking(move || read_message(stdin.lock())).await
        }
    }
}

pub async fn send(session: &Session, out: &mut Out, args: SendArgs) -> Result<Exit, CtlError> {
    // clap's `requires` does not hold a flag back; a text send has nothing
    // to wait for, so say so rather than ignore it.
    if args.no_wait {
        return Err(CtlError::Usage(
            "--no-wait is for --file: a text send returns as soon as the message is queued".into(),
        ));
    }
    let text = text_argument(args.text, out).await?;
    let client = session.connect().await?;
    let sent = client
        .request::<method::Send>(SendParams {
            conversation: args.conversation,
            text,
            confirm_changed_keys: args.confirm_changed_keys,
            reply_to: args.reply_to,
        })
        .await?;
    print_changed(&client, out, &sent).await
}

/// For people, success is silence (a sent message is durable in the
/// outbox; an action is on its way to the members); scripts get the
/// message with its id.
pub async fn print_changed(
    client: &IpcClient,
    out: &mut Out,
    m: &Message,
) -> Result<Exit, CtlError> {
    if out.is_json() {
        let mut names = Names::load(client).await?;
        let name = names.name(m.conversation).await?;
        out.json(&view(m, &name).json())?;
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
    print_changed(&client, out, &queued).await
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

/// Prints messages as a JSON array or aligned lines; `ids` adds their ids
/// (people only), `with_conversation` the conversation's name.
pub async fn print_messages(
    client: &IpcClient,
    out: &mut Out,
    messages: &[Message],
    with_conversation: bool,
    ids: bool,
) -> Result<Exit, CtlError> {
    let mut names = Names::load(client).await?;
    let columns = Columns {
        conversation: with_conversation,
        ids,
    };
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
        out.json(&json)?;
    } else {
        let text = message::render(&views, columns, &out.style());
        out.write(&text)?;
    }
    Ok(Exit::Ok)
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
    print_messages(&client, out, &messages, false, args.ids).await
}

pub async fn search(session: &Session, out: &mut Out, args: SearchArgs) -> Result<Exit, CtlError> {
    let query = args.words.join(" ");
    quicproquo_protocol::limits::check_search_query(&query).map_err(CtlError::Usage)?;
    let client = session.connect().await?;
    let messages = client
        .search_pages(&query, args.conversation.as_ref(), args.limit.get())
        .await?;
    print_messages(&client, out, &messages, true, args.ids).await
}
