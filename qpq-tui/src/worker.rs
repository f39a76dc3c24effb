//! The task that talks to qpqd (see docs/src/contributing/architecture.md,
//! one owner per resource and the Elm architecture): it owns the IPC
//! connection and its subscription, carries out [`Request`]s (each call in
//! its own task, so a slow one blocks nothing) and reports everything as
//! [`Action`]s on the event loop's channel. Notifications are pushed to the
//! loop the moment they arrive: there is no polling interval for them (only
//! `status`, for what no notification carries, is read every 10 s).
//!
//! When the daemon goes away the worker says so, reconnects with back-off
//! (starting the daemon again when it has a launcher) and resubscribes from
//! the last `seq` it saw, so no notification is lost or repeated.

use quicproquo_protocol::backoff::Backoff;
use std::time::Duration;

use quicproquo_protocol::ipc::client::CallError;
use quicproquo_protocol::ipc::client::{ClientOptions, DaemonLauncher, IpcClient, Subscription};
use quicproquo_protocol::ipc::methods::{method, DownloadParams, NoParams};
use quicproquo_protocol::ipc::values::{ConversationId, ConversationRef, Message, Seq};
use quicproquo_protocol::ipc::{Call, IpcErrorCode};
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
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// How often `status` is read again while connected.
const STATUS_EVERY: Duration = Duration::from_secs(10);

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
    // Starting the TUI starts a daemon the user had stopped; once it was
    // connected, the TUI only waits for a daemon stopped on purpose.
    let mut opts = ClientOptions {
        start_stopped: true,
        ..ClientOptions::new("qpq-tui")
    };
    let mut since: Option<Seq> = None;
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    let mut calls = JoinSet::new();
    loop {
        let connected = match &target.launcher {
            Some(l) => IpcClient::connect_or_start_with(&target.paths, l, &opts).await,
            None => IpcClient::connect_with(&target.paths, &opts).await,
        };
        let reason = match connected {
            Ok(client) => {
                backoff.reset();
                opts.start_stopped = false;
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
        let wake = tokio::time::Instant::now() + backoff.wait();
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
    // What no notification carries (whether qpqd can store incoming mail:
    // while it cannot, it has nowhere to log a notification) is re-read
    // from `status` now and then.
    let mut refresh =
        tokio::time::interval_at(tokio::time::Instant::now() + STATUS_EVERY, STATUS_EVERY);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = refresh.tick() => {
                let status = Request::Call(Call::Status(NoParams {}));
                calls.spawn(perform(client.clone(), status, events.clone()));
            }
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
                Some(r @ Request::Call(Call::Unlock(_))) if sub.is_none() => {
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
) -> Result<quicproquo_protocol::ipc::Notification, CallError> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// The event that reports `r` failed with `f`.
fn failed(r: Request, f: Failure) -> DaemonEvent {
    let call = match r {
        Request::History { conversation, .. } => {
            return DaemonEvent::HistoryFailed {
                conversation,
                failure: f,
            }
        }
        Request::Save {
            conversation, id, ..
        } => {
            return DaemonEvent::DownloadFailed {
                conversation,
                id,
                failure: f,
            }
        }
        Request::Call(call) => call,
    };
    match call {
        Call::Conversations(_) => DaemonEvent::ConversationsFailed(f),
        Call::History(p) => match id_of(&p.conversation) {
            Some(conversation) => DaemonEvent::HistoryFailed {
                conversation,
                failure: f,
            },
            None => DaemonEvent::Failed(f),
        },
        Call::Send(p) => match id_of(&p.conversation) {
            Some(conversation) => DaemonEvent::SendFailed {
                conversation,
                text: p.text,
                failure: f,
            },
            None => DaemonEvent::Failed(f),
        },
        Call::Edit(p) => match id_of(&p.conversation) {
            Some(conversation) => DaemonEvent::EditFailed {
                conversation,
                id: p.id,
                text: p.text,
                failure: f,
            },
            None => DaemonEvent::Failed(f),
        },
        Call::Attach(p) => DaemonEvent::AttachFailed {
            params: Box::new(p),
            failure: f,
        },
        Call::Download(p) => match id_of(&p.conversation) {
            Some(conversation) => DaemonEvent::DownloadFailed {
                conversation,
                id: p.id,
                failure: f,
            },
            None => DaemonEvent::Failed(f),
        },
        Call::Members(p) => match id_of(&p.conversation) {
            Some(conversation) => DaemonEvent::MembersFailed {
                conversation,
                failure: f,
            },
            None => DaemonEvent::Failed(f),
        },
        Call::Register(_)
        | Call::Login(_)
        | Call::Unlock(_)
        | Call::AccountPassword(_)
        | Call::AccountDelete(_) => DaemonEvent::AccountFailed(f),
        _ => DaemonEvent::Failed(f),
    }
}

/// The TUI names every conversation by its id.
fn id_of(r: &ConversationRef) -> Option<ConversationId> {
    match r {
        ConversationRef::Id(id) => Some(*id),
        _ => None,
    }
}

async fn perform(client: IpcClient, r: Request, events: mpsc::Sender<Action>) {
    let ev = match call(&client, r.clone()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => return,
        // Typing and focus are hints: a daemon without them (older, or
        // typing off) is no news for the user.
        Err(_) if matches!(r, Request::Call(Call::Typing(_) | Call::Focus(_))) => return,
        Err(e) => failed(r, e.into()),
    };
    let _ = events.send(Action::Daemon(ev)).await;
}

type CallResult = Result<Option<DaemonEvent>, CallError>;

async fn call(client: &IpcClient, r: Request) -> CallResult {
    match r {
        Request::History {
            conversation,
            before,
            until,
        } => {
            let (messages, complete) =
                history(client, ConversationRef::Id(conversation), before, until).await?;
            Ok(Some(DaemonEvent::History {
                conversation,
                before,
                messages,
                complete,
                target: until,
            }))
        }
        Request::Call(call) => answer(client, call).await,
        Request::Save {
            conversation,
            id,
            dir,
            name,
        } => {
            // `XDG_DOWNLOAD_DIR` or `download_dir` may name a directory
            // not made yet (a failure here shows as the daemon's error).
            let _ = tokio::fs::create_dir_all(&dir).await;
            // The daemon refuses to overwrite (no `overwrite`), so a file
            // appearing meanwhile is an error, never lost.
            let path = quicproquo_protocol::file_names::free_path(&dir, &name, "attachment", |p| {
                p.symlink_metadata().is_ok()
            });
            let params = DownloadParams {
                conversation: conversation.into(),
                id,
                path: Some(path.to_string_lossy().into_owned()),
                overwrite: false,
            };
            answer(client, Call::Download(params)).await
        }
    }
}

/// Makes `call` and turns its typed answer into the event `update` expects
/// for that method (`None`: nothing to report).
async fn answer(client: &IpcClient, call: Call) -> CallResult {
    Ok(Some(match call {
        Call::Status(p) => DaemonEvent::Status(client.request::<method::Status>(p).await?),
        Call::Conversations(p) => {
            DaemonEvent::Conversations(client.request::<method::Conversations>(p).await?)
        }
        Call::History(p) => {
            let (conversation, before) = (id_of(&p.conversation), p.before);
            let page = client
                .history_pages(&p.conversation, p.before, p.limit.get())
                .await?;
            match conversation {
                Some(conversation) => DaemonEvent::History {
                    conversation,
                    before,
                    complete: page.complete,
                    messages: page.messages,
                    target: None,
                },
                None => return Ok(None),
            }
        }
        Call::Send(p) => {
            let (conversation, text) = (id_of(&p.conversation), p.text.clone());
            match (client.request::<method::Send>(p).await, conversation) {
                (Ok(m), _) => DaemonEvent::Sent(m),
                (Err(e), Some(conversation)) => DaemonEvent::SendFailed {
                    conversation,
                    text,
                    failure: e.into(),
                },
                (Err(e), None) => return Err(e),
            }
        }
        Call::Read(p) => {
            client.request::<method::Read>(p).await?;
            return Ok(None);
        }
        Call::DmOpen(p) => DaemonEvent::Opened(client.request::<method::DmOpen>(p).await?),
        Call::GroupCreate(p) => {
            DaemonEvent::Opened(client.request::<method::GroupCreate>(p).await?)
        }
        Call::GroupAdd(p) => {
            let who = p.members.join(", ");
            let c = client.request::<method::GroupAdd>(p).await?;
            DaemonEvent::Done(format!("Added {who} to #{}", c.name))
        }
        Call::GroupRemove(p) => {
            let who = p.members.join(", ");
            let c = client.request::<method::GroupRemove>(p).await?;
            DaemonEvent::Done(format!("Removed {who} from #{}", c.name))
        }
        Call::GroupLeave(p) => {
            client.request::<method::GroupLeave>(p).await?;
            DaemonEvent::Done("You left the group.".into())
        }
        Call::GroupRekey(p) => {
            let r = client.request::<method::GroupRekey>(p).await?;
            DaemonEvent::Done(format!("Re-keyed: the group is at epoch {}", r.epoch))
        }
        Call::Members(p) => {
            let conversation = id_of(&p.conversation);
            let members = client.request::<method::Members>(p).await?;
            match conversation {
                Some(conversation) => DaemonEvent::Members {
                    conversation,
                    members,
                },
                None => return Ok(None),
            }
        }
        Call::Invites(p) => DaemonEvent::Invites(client.request::<method::Invites>(p).await?),
        Call::Accept(p) => DaemonEvent::Opened(client.request::<method::Accept>(p).await?),
        Call::Decline(p) => {
            client.request::<method::Decline>(p).await?;
            DaemonEvent::Done("Declined; the group was told.".into())
        }
        Call::AutoAcceptSetting(p) => {
            let r = client.request::<method::AutoAcceptSetting>(p).await?;
            DaemonEvent::Done(format!("Invitations joined without asking: {:?}", r.mode))
        }
        Call::Verify(p) => {
            let confirmed = p.confirm;
            DaemonEvent::Verified {
                result: client.request::<method::Verify>(p).await?,
                confirmed,
            }
        }
        Call::MessageRetry(p) => {
            client.request::<method::MessageRetry>(p).await?;
            DaemonEvent::Done("Sending the message again…".into())
        }
        Call::MessageDiscard(p) => {
            let id = p.id;
            client.request::<method::MessageDiscard>(p).await?;
            DaemonEvent::Discarded(id)
        }
        Call::React(p) => DaemonEvent::Updated(client.request::<method::React>(p).await?),
        Call::Edit(p) => DaemonEvent::Updated(client.request::<method::Edit>(p).await?),
        Call::Delete(p) => {
            let (conversation, id, for_me) = (id_of(&p.conversation), p.id, p.for_me);
            client.request::<method::Delete>(p).await?;
            match conversation {
                Some(conversation) => DaemonEvent::Deleted {
                    conversation,
                    id,
                    for_me,
                },
                None => return Ok(None),
            }
        }
        Call::MessageEdits(p) => DaemonEvent::Edits(client.request::<method::MessageEdits>(p).await?),
        // The mentions list is the search box with no query.
        Call::Mentions(p) => DaemonEvent::SearchResults {
            messages: client.request::<method::Mentions>(p).await?,
            query: String::new(),
        },
        Call::ConversationSettingsMethod(p) => {
            DaemonEvent::Settings(client.request::<method::ConversationSettingsMethod>(p).await?)
        }
        Call::Typing(p) => {
            client.request::<method::Typing>(p).await?;
            return Ok(None);
        }
        Call::Focus(p) => {
            client.request::<method::Focus>(p).await?;
            return Ok(None);
        }
        Call::Search(p) => DaemonEvent::SearchResults {
            messages: client
                .search_pages(&p.query, p.conversation.as_ref(), p.limit.get())
                .await?,
            query: p.query,
        },
        Call::IntegrityAcknowledge(p) => {
            let r = client.request::<method::IntegrityAcknowledge>(p).await?;
            let mut text = format!(
                "Acknowledged: {} conversation(s) re-keyed; sending again.",
                r.rekeyed.len()
            );
            for f in &r.failed {
                text.push_str(&format!(
                    " Not re-keyed: {} ({}).",
                    f.conversation, f.reason
                ));
            }
            DaemonEvent::IntegrityAcknowledged {
                status: client.request::<method::Status>(NoParams {}).await?,
                text,
            }
        }
        Call::Register(p) => {
            client.request::<method::Register>(p).await?;
            DaemonEvent::AccountReady
        }
        Call::Login(p) => {
            client.request::<method::Login>(p).await?;
            DaemonEvent::AccountReady
        }
        Call::Unlock(p) => {
            client.request::<method::Unlock>(p).await?;
            DaemonEvent::AccountReady
        }
        Call::AccountPassword(p) => {
            client.request::<method::AccountPassword>(p).await?;
            DaemonEvent::PasswordChanged
        }
        Call::AccountDelete(p) => {
            client.request::<method::AccountDelete>(p).await?;
            DaemonEvent::AccountDeleted
        }
        // Returns once the daemon has the file in its spool; the upload
        // goes on there, reported by `transfer` notifications.
        Call::Attach(p) => DaemonEvent::Attached(client.request::<method::Attach>(p).await?),
        // Returns at once; the end comes as a `transfer` notification.
        Call::Download(p) => {
            let (conversation, id) = (id_of(&p.conversation), p.id);
            let attachment = client.request::<method::Download>(p).await?;
            match conversation {
                Some(conversation) => DaemonEvent::Downloading {
                    conversation,
                    id,
                    attachment,
                },
                None => return Ok(None),
            }
        }
        // The connection's own calls (`hello`, `subscribe`) are the
        // worker's, and the TUI offers none of the others.
        other @ (Call::Hello(_)
        | Call::Subscribe(_)
        | Call::Logout(_)
        | Call::Whoami(_)
        | Call::Diagnose(_)
        | Call::Shutdown(_)
        // The global defaults are `qpq-ctl settings`'s.
        | Call::SettingsMethod(_)) => DaemonEvent::Failed(Failure::new(format!(
            "the chat does not call `{}`",
            other.method()
        ))),
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
) -> Result<(Vec<Message>, bool), CallError> {
    let n = if until.is_some() { SEARCH_PAGE } else { PAGE };
    let mut all: Vec<Message> = Vec::new();
    loop {
        let page = client
            .history_pages(&conversation, before, usize::from(n))
            .await?;
        let complete = page.complete;
        let mut page = page.messages;
        let found = until.is_some_and(|t| page.iter().any(|m| m.id == t));
        before = page.first().map(|m| m.id);
        page.extend(all);
        all = page;
        if until.is_none() || found || complete || before.is_none() || all.len() >= SEARCH_DEPTH {
            return Ok((all, complete));
        }
    }
}
