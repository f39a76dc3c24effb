//! The task that talks to qpqd (see docs/src/contributing/architecture.md,
//! one owner per resource and the Elm architecture): it owns the IPC
//! connection and its subscription, carries out [`Request`]s (each call in
//! its own task, so a slow one blocks nothing) and reports everything as
//! [`Action`]s on the event loop's channel. Notifications are pushed to the
//! loop the moment they arrive: there is no polling interval.
//!
//! When the daemon goes away the worker says so, reconnects with back-off
//! (starting the daemon again when it has a launcher) and resubscribes from
//! the last `seq` it saw, so no notification is lost or repeated.

use std::time::Duration;

use quicproquo_protocol::ipc::client::{ClientOptions, DaemonLauncher, IpcClient, Subscription};
use quicproquo_protocol::ipc::methods::{
    method, ConversationParams, DmOpenParams, GroupCreateParams, GroupMembersParams, HistoryParams,
    NoParams, ReadParams, SearchParams, SendParams, UnlockParams, VerifyParams,
};
use quicproquo_protocol::ipc::values::{Ciphersuite, ConversationRef, Limit, Message, Seq};
use quicproquo_protocol::ipc::IpcErrorCode;
use quicproquo_protocol::paths::Paths;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::action::{Action, DaemonEvent, Failure, Request};

/// Messages per history page while scrolling.
const PAGE: u16 = 200;
/// Messages per page while looking for a search result.
const SEARCH_PAGE: u16 = 500;
/// A search jump gives up after loading this many messages.
const SEARCH_DEPTH: usize = 200_000;
const RESULTS: u16 = 100;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(3);

/// How the worker reaches the daemon.
pub struct Target {
    pub paths: Paths,
    /// Starts qpqd when nobody answers; `None` only connects (the demo,
    /// whose agents run in-process).
    pub launcher: Option<DaemonLauncher>,
}

/// Starts the worker; it ends when `requests`' sender is dropped.
pub fn spawn(
    target: Target,
    events: mpsc::Sender<Action>,
) -> (mpsc::Sender<Request>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(run(target, events, rx));
    (tx, task)
}

async fn send(events: &mpsc::Sender<Action>, ev: DaemonEvent) -> bool {
    events.send(Action::Daemon(ev)).await.is_ok()
}

async fn run(target: Target, events: mpsc::Sender<Action>, mut requests: mpsc::Receiver<Request>) {
    let opts = ClientOptions::new("qpq-tui");
    let mut since: Option<Seq> = None;
    let mut backoff = FIRST_BACKOFF;
    let mut calls = JoinSet::new();
    loop {
        let connected = match &target.launcher {
            Some(l) => IpcClient::connect_or_start_with(&target.paths, l, &opts).await,
            None => IpcClient::connect_with(&target.paths, &opts).await,
        };
        let reason = match connected {
            Ok(client) => {
                backoff = FIRST_BACKOFF;
                match serve(&client, &mut since, &events, &mut requests, &mut calls).await {
                    Ended::UiGone => return,
                    Ended::Lost(reason) => reason,
                }
            }
            Err(e) => e.to_string(),
        };
        if !send(&events, DaemonEvent::Disconnected { reason }).await {
            return;
        }
        // Wait before the next attempt; what is asked meanwhile fails at
        // once instead of hanging.
        let wake = tokio::time::Instant::now() + backoff;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                r = requests.recv() => match r {
                    None => return,
                    Some(r) => {
                        let f = Failure::new("qpqd is not reachable right now; retrying");
                        if !send(&events, failed(r, f)).await {
                            return;
                        }
                    }
                },
            }
        }
    }
}

enum Ended {
    UiGone,
    Lost(String),
}

async fn serve(
    client: &IpcClient,
    since: &mut Option<Seq>,
    events: &mpsc::Sender<Action>,
    requests: &mut mpsc::Receiver<Request>,
    calls: &mut JoinSet<()>,
) -> Ended {
    let lost = |e: &dyn std::fmt::Display| Ended::Lost(e.to_string());
    // A locked daemon cannot replay notifications yet: subscribe after
    // `unlock` instead.
    let mut sub = match client.subscribe(*since).await {
        Ok(s) => {
            *since = Some(s.last_seq());
            Some(s)
        }
        Err(e) if e.code() == Some(IpcErrorCode::Locked) => None,
        Err(e) => return lost(&e),
    };
    let status = match client.request::<method::Status>(NoParams {}).await {
        Ok(s) => s,
        Err(e) => return lost(&e),
    };
    if !send(events, DaemonEvent::Connected { status }).await {
        return Ended::UiGone;
    }
    loop {
        tokio::select! {
            n = next(&mut sub) => match n {
                Ok(n) => {
                    if let Some(s) = &sub {
                        *since = Some(s.last_seq());
                    }
                    if !send(events, DaemonEvent::Notification(n)).await {
                        return Ended::UiGone;
                    }
                }
                Err(e) => return lost(&e),
            },
            r = requests.recv() => match r {
                None => return Ended::UiGone,
                Some(r @ Request::Unlock(_)) if sub.is_none() => {
                    // Inline, so the subscription can start right after.
                    perform(client.clone(), r, events.clone()).await;
                    if let Ok(s) = client.subscribe(*since).await {
                        *since = Some(s.last_seq());
                        sub = Some(s);
                    }
                }
                Some(r) => {
                    calls.spawn(perform(client.clone(), r, events.clone()));
                }
            },
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
        }
    }
}

/// The next notification; never, without a subscription.
async fn next(
    sub: &mut Option<Subscription>,
) -> Result<quicproquo_protocol::ipc::Notification, quicproquo_protocol::ipc::client::CallError> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// The event that reports `r` failed with `f`.
fn failed(r: Request, f: Failure) -> DaemonEvent {
    match r {
        Request::Conversations => DaemonEvent::ConversationsFailed(f),
        Request::History { conversation, .. } => DaemonEvent::HistoryFailed {
            conversation,
            failure: f,
        },
        Request::Send {
            conversation, text, ..
        } => DaemonEvent::SendFailed {
            conversation,
            text,
            failure: f,
        },
        Request::Members(conversation) => DaemonEvent::MembersFailed {
            conversation,
            failure: f,
        },
        Request::Register(_) | Request::Login(_) | Request::Unlock(_) => {
            DaemonEvent::AccountFailed(f)
        }
        _ => DaemonEvent::Failed(f),
    }
}

async fn perform(client: IpcClient, r: Request, events: mpsc::Sender<Action>) {
    let ev = match call(&client, r.clone()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => return,
        Err(e) => failed(r, e.into()),
    };
    let _ = events.send(Action::Daemon(ev)).await;
}

type CallResult = Result<Option<DaemonEvent>, quicproquo_protocol::ipc::client::CallError>;

async fn call(client: &IpcClient, r: Request) -> CallResult {
    let conv = |id| ConversationRef::Id(id);
    Ok(Some(match r {
        Request::Status => {
            DaemonEvent::Status(client.request::<method::Status>(NoParams {}).await?)
        }
        Request::Conversations => {
            DaemonEvent::Conversations(client.request::<method::Conversations>(NoParams {}).await?)
        }
        Request::History {
            conversation,
            before,
            until,
        } => {
            let (messages, complete) = history(client, conv(conversation), before, until).await?;
            DaemonEvent::History {
                conversation,
                before,
                messages,
                complete,
                target: until,
            }
        }
        Request::Send {
            conversation,
            text,
            confirm_changed_keys,
        } => {
            let params = SendParams {
                conversation: conv(conversation),
                text: text.clone(),
                confirm_changed_keys,
            };
            match client.request::<method::Send>(params).await {
                Ok(m) => DaemonEvent::Sent(m),
                Err(e) => DaemonEvent::SendFailed {
                    conversation,
                    text,
                    failure: e.into(),
                },
            }
        }
        Request::Read {
            conversation,
            up_to,
        } => {
            client
                .request::<method::Read>(ReadParams {
                    conversation: conv(conversation),
                    up_to,
                })
                .await?;
            return Ok(None);
        }
        Request::DmOpen(username) => DaemonEvent::Opened(
            client
                .request::<method::DmOpen>(DmOpenParams { username })
                .await?,
        ),
        Request::GroupCreate { name, members } => DaemonEvent::Opened(
            client
                .request::<method::GroupCreate>(GroupCreateParams {
                    name,
                    members,
                    ciphersuite: Ciphersuite::Hybrid,
                })
                .await?,
        ),
        Request::GroupAdd {
            conversation,
            members,
        } => {
            let who = members.join(", ");
            let c = client
                .request::<method::GroupAdd>(GroupMembersParams {
                    conversation: conv(conversation),
                    members,
                })
                .await?;
            DaemonEvent::Done(format!("Added {who} to #{}", c.name))
        }
        Request::GroupRemove {
            conversation,
            members,
        } => {
            let who = members.join(", ");
            let c = client
                .request::<method::GroupRemove>(GroupMembersParams {
                    conversation: conv(conversation),
                    members,
                })
                .await?;
            DaemonEvent::Done(format!("Removed {who} from #{}", c.name))
        }
        Request::Leave(id) => {
            client
                .request::<method::GroupLeave>(ConversationParams {
                    conversation: conv(id),
                })
                .await?;
            DaemonEvent::Done("You left the group.".into())
        }
        Request::Rekey(id) => {
            let r = client
                .request::<method::GroupRekey>(ConversationParams {
                    conversation: conv(id),
                })
                .await?;
            DaemonEvent::Done(format!("Re-keyed: the group is at epoch {}", r.epoch))
        }
        Request::Members(id) => DaemonEvent::Members {
            conversation: id,
            members: client
                .request::<method::Members>(ConversationParams {
                    conversation: conv(id),
                })
                .await?,
        },
        Request::Verify {
            username,
            confirm,
            safety_number,
        } => DaemonEvent::Verified {
            result: client
                .request::<method::Verify>(VerifyParams {
                    username,
                    confirm,
                    safety_number,
                })
                .await?,
            confirmed: confirm,
        },
        Request::Search(query) => DaemonEvent::SearchResults {
            messages: client
                .request::<method::Search>(SearchParams {
                    query: query.clone(),
                    conversation: None,
                    limit: Limit::new(RESULTS).unwrap_or_default(),
                })
                .await?,
            query,
        },
        Request::Register(params) => {
            client.request::<method::Register>(params).await?;
            DaemonEvent::AccountReady
        }
        Request::Login(params) => {
            client.request::<method::Login>(params).await?;
            DaemonEvent::AccountReady
        }
        Request::Unlock(passphrase) => {
            client
                .request::<method::Unlock>(UnlockParams { passphrase })
                .await?;
            DaemonEvent::AccountReady
        }
    }))
}

/// A page of history before `before`, or, with `until`, pages until that
/// message is among them (a search jump). Oldest first; `complete` when
/// nothing older is left.
async fn history(
    client: &IpcClient,
    conversation: ConversationRef,
    mut before: Option<quicproquo_protocol::ipc::values::MessageId>,
    until: Option<quicproquo_protocol::ipc::values::MessageId>,
) -> Result<(Vec<Message>, bool), quicproquo_protocol::ipc::client::CallError> {
    let n = if until.is_some() { SEARCH_PAGE } else { PAGE };
    let limit = Limit::new(n).unwrap_or_default();
    let mut all: Vec<Message> = Vec::new();
    loop {
        let page = client
            .request::<method::History>(HistoryParams {
                conversation: conversation.clone(),
                before,
                limit,
            })
            .await?;
        let complete = page.len() < limit.get();
        let found = until.is_some_and(|t| page.iter().any(|m| m.id == t));
        before = page.first().map(|m| m.id);
        let mut page = page;
        page.extend(all);
        all = page;
        if until.is_none() || found || complete || before.is_none() || all.len() >= SEARCH_DEPTH {
            return Ok((all, complete));
        }
    }
}
