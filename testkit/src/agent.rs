//! What a test or the demo does through an agent's IPC client, whichever
//! kind of test daemon runs it: register a user on a test server, open the
//! first DM between two users, read a history, wait for a message.
//!
//! The waits poll the agent: a front-end's subscription would be the event
//! to wait on, but an IPC client has one, and the test may need it.

use std::future::Future;
use std::time::Duration;

use quicproquo_protocol::ipc::client::{CallError, IpcClient};
use quicproquo_protocol::ipc::methods::{
    method, AccountParams, AutoAcceptParams, DmOpenParams, NoParams, SendParams,
};
use quicproquo_protocol::ipc::values::{
    Account, AutoAccept, Conversation, ConversationRef, Message, Secret,
};
use quicproquo_protocol::ipc::IpcErrorCode;

use crate::{TestServer, TestkitError};

/// How often a wait asks again.
const POLL: Duration = Duration::from_millis(50);

/// The password [`register`] gives `username`.
pub fn password(username: &str) -> String {
    format!("{username} login password")
}

/// Registers `username` on `server` through the agent behind `client` (its
/// certificate pinned); the agent is online when this returns. The kit's
/// users accept every invitation without asking (`auto_accept` =
/// `everyone`, as a bot would), so that tests of other things need no
/// consent step; the consent tests set the mode they test.
pub async fn register(
    client: &IpcClient,
    server: &TestServer,
    username: &str,
) -> Result<Account, TestkitError> {
    register_at(client, &server.addr.to_string(), server.pin(), username).await
}

/// [`register`] with the server given as the daemon takes it: `host:port`,
/// or several nodes' addresses (`a:1,b:2`), all pinned to `pin`.
pub async fn register_at(
    client: &IpcClient,
    server: &str,
    pin: quicproquo_protocol::Fingerprint,
    username: &str,
) -> Result<Account, TestkitError> {
    let account = client
        .request::<method::Register>(AccountParams {
            server: server.to_owned(),
            server_fingerprint: Some(pin),
            username: username.to_owned(),
            password: Secret::new(password(username)),
        })
        .await
        .map_err(TestkitError::call("registering"))?;
    set_auto_accept(client, AutoAccept::Everyone).await?;
    Ok(account)
}

/// Sets which invitations the agent behind `client` joins without asking.
pub async fn set_auto_accept(client: &IpcClient, mode: AutoAccept) -> Result<(), TestkitError> {
    client
        .request::<method::AutoAcceptSetting>(AutoAcceptParams { mode: Some(mode) })
        .await
        .map_err(TestkitError::call("setting auto_accept"))?;
    Ok(())
}

/// `from` opens the DM with `to` and sends `text`; returns `from`'s
/// conversation once `to`'s agent has received and stored the message (so
/// both sides have the DM).
pub async fn first_dm(
    from: &IpcClient,
    to: &IpcClient,
    text: &str,
) -> Result<Conversation, TestkitError> {
    let from_name = username(from).await?;
    let to_name = username(to).await?;
    let conversation = from
        .request::<method::DmOpen>(DmOpenParams {
            username: to_name.clone(),
        })
        .await
        .map_err(TestkitError::call("opening the DM"))?;
    from.request::<method::Send>(SendParams {
        conversation: ConversationRef::Id(conversation.id),
        text: text.to_owned(),
        confirm_changed_keys: false,
        reply_to: None,
    })
    .await
    .map_err(TestkitError::call("sending the first message"))?;
    wait_for_message(to, &format!("@{from_name}"), text).await?;
    Ok(conversation)
}

/// The username of the account behind `client`.
async fn username(client: &IpcClient) -> Result<String, TestkitError> {
    let status = client
        .request::<method::Status>(NoParams {})
        .await
        .map_err(TestkitError::call("asking for the status"))?;
    status
        .account
        .map(|a| a.username)
        .ok_or(TestkitError::NoAccount)
}

/// The newest 500 messages of `conversation` (`@name`, `#group` or an id).
/// Every failure is an error — a negative check ("carol got nothing") must
/// rest on a call that succeeded, never on one that failed.
/// Pages on as a front-end does (an answer holds at most
/// `MAX_REPLY_BYTES` of messages).
pub async fn history(client: &IpcClient, conversation: &str) -> Result<Vec<Message>, CallError> {
    let conversation =
        ConversationRef::parse(conversation).expect("a valid conversation reference");
    Ok(client
        .history_pages(&conversation, None, 500)
        .await?
        .messages)
}

/// [`history`], or `None` while the conversation does not exist yet (an
/// invitation still on its way); any other failure is an error.
async fn history_once_it_exists(
    client: &IpcClient,
    conversation: &str,
) -> Result<Option<Vec<Message>>, CallError> {
    match history(client, conversation).await {
        Ok(h) => Ok(Some(h)),
        Err(e) if e.code() == Some(IpcErrorCode::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Waits until `conversation`'s history holds a message with `text`.
pub async fn wait_for_message(
    client: &IpcClient,
    conversation: &str,
    text: &str,
) -> Result<Message, TestkitError> {
    let what = format!("{text:?} arrives in {conversation}");
    let found = eventually(&what, move || async move {
        match history_once_it_exists(client, conversation).await {
            Ok(h) => h?.into_iter().find(|m| m.text == text).map(Ok),
            Err(e) => Some(Err(e)),
        }
    })
    .await?;
    found.map_err(TestkitError::call("reading the history"))
}

/// Waits until the agent has a conversation called `name`.
pub async fn wait_for_conversation(
    client: &IpcClient,
    name: &str,
) -> Result<Conversation, TestkitError> {
    eventually(&format!("conversation {name} exists"), move || async move {
        client
            .request::<method::Conversations>(NoParams {})
            .await
            .ok()?
            .into_iter()
            .find(|c| c.name == name)
    })
    .await
}

/// Asks `check` until it answers `Some`, for at most [`crate::WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T, TestkitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TestkitError::Timeout {
                what: what.to_owned(),
                wait: crate::WAIT,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
