//! `recv [--follow] [--since SEQ] [--conversation C]`: incoming messages.
//!
//! Both forms read the daemon's notification stream (`subscribe` with
//! `since`), which replays everything after a sequence number and then goes
//! live; `recv` keeps only `message` notifications of incoming messages
//! (`outgoing == false`: what this profile sent, from here or the TUI, is not
//! "received", and a bot answering with `send` must not read its own
//! answers).
//!
//! - Once: reads up to the sequence number that was the latest when it
//!   started, prints the batch, and moves the cursor there.
//! - `--follow`: prints each message as it comes, flushed, and moves the
//!   cursor after each. When the daemon goes away it reconnects (starting it
//!   again unless `--no-autostart`) and subscribes after the last sequence
//!   number it handed out: nothing lost, nothing repeated. Ends with success
//!   on SIGINT, SIGTERM or a closed stdout.

use std::time::Duration;

use quicproquo_protocol::ipc::client::{CallError, ConnectError, IpcClient, Subscription};
use quicproquo_protocol::ipc::methods::{method, SubscribeParams};
use quicproquo_protocol::ipc::values::{ConversationId, Message, Seq};
use quicproquo_protocol::ipc::Notification;

use super::names::Names;
use crate::cli::RecvArgs;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{message, MessageView, Out};
use crate::session::Session;

mod cursor;
mod stop;

use cursor::Cursor;
use quicproquo_protocol::backoff::Backoff;
use stop::Stop;

/// Longest wait for the replay of notifications the daemon already has.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What is printed and where the cursor is.
struct Receiver<'o> {
    out: &'o mut Out,
    names: Names,
    only: Option<ConversationId>,
    cursor: Option<Cursor>,
}

/// The message of `n` if `recv` shows it: an incoming message, of the one
/// conversation when `only` names one.
fn wanted(n: Notification, only: Option<ConversationId>) -> Option<(Seq, Message)> {
    match n {
        Notification::Message(m)
            if !m.message.outgoing && only.is_none_or(|id| id == m.message.conversation) =>
        {
            Some((m.seq, m.message))
        }
        _ => None,
    }
}

impl Receiver<'_> {
    async fn print(&mut self, batch: &[(Seq, Message)]) -> Result<(), CtlError> {
        let mut names = Vec::with_capacity(batch.len());
        for (_, m) in batch {
            names.push(self.names.name(m.conversation).await?);
        }
        let views: Vec<MessageView<'_>> = batch
            .iter()
            .zip(&names)
            .map(|((seq, m), name)| MessageView {
                message: m,
                conversation_name: name,
                seq: Some(seq.0),
            })
            .collect();
        if self.out.is_json() {
            let json: Vec<_> = views.iter().map(MessageView::json).collect();
            self.out.json(&json)
        } else {
            let text = message::render(&views, self.only.is_none(), &self.out.style());
            self.out.write(&text)
        }
    }

    /// One message of a followed stream: one JSON line or one entry. The
    /// names are asked for again each time: a stream lives long, and names
    /// change under it.
    async fn print_live(&mut self, seq: Seq, m: &Message) -> Result<(), CtlError> {
        self.names.refresh().await?;
        let name = self.names.name(m.conversation).await?;
        let view = MessageView {
            message: m,
            conversation_name: &name,
            seq: Some(seq.0),
        };
        if self.out.is_json() {
            self.out.json(&view.json())?;
        } else {
            let text = message::render(&[view], self.only.is_none(), &self.out.style());
            self.out.write(&text)?;
        }
        self.out.flush()
    }

    async fn save(&self, seq: Seq) -> Result<(), CtlError> {
        match &self.cursor {
            Some(c) => c.save(seq).await,
            None => Ok(()),
        }
    }
}

pub async fn run(session: &Session, out: &mut Out, args: RecvArgs) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let names = Names::load(&client).await?;
    let only = match &args.conversation {
        None => None,
        Some(r) => Some(
            names
                .resolve(r)
                .ok_or_else(|| CtlError::NotFound(format!("no conversation `{r}`")))?,
        ),
    };
    // `--since` is the caller's own bookkeeping: the cursor is neither read
    // nor moved.
    let cursor = match args.since {
        Some(_) => None,
        None => Some(Cursor::new(&session.paths().data_dir, only)),
    };
    let since = match (args.since, &cursor) {
        (Some(s), _) => Seq(s),
        (None, Some(c)) => c.load().await?.unwrap_or_default(),
        (None, None) => Seq::default(),
    };
    let mut recv = Receiver {
        out,
        names,
        only,
        cursor,
    };
    if args.follow {
        follow(session, client, &mut recv, since).await
    } else {
        once(session, &client, &mut recv, since).await
    }
}

/// Prints what arrived after `since` up to now, then moves the cursor.
async fn once(
    session: &Session,
    client: &IpcClient,
    recv: &mut Receiver<'_>,
    since: Seq,
) -> Result<Exit, CtlError> {
    let latest = latest_seq(session).await?;
    let mut batch = Vec::new();
    let mut last = since;
    if since < latest {
        let mut sub = client.subscribe(Some(since)).await?;
        while last < latest {
            let n = tokio::time::timeout(REPLAY_TIMEOUT, sub.next())
                .await
                .map_err(|_| {
                    CtlError::Call(CallError::Timeout {
                        method: "subscribe".into(),
                        timeout: REPLAY_TIMEOUT,
                    })
                })??;
            last = n.seq();
            batch.extend(wanted(n, recv.only));
        }
    }
    recv.print(&batch).await?;
    recv.out.flush()?;
    if last > since {
        recv.save(last).await?;
    }
    Ok(Exit::Ok)
}

/// The daemon's latest sequence number. Asked on a connection of its own:
/// the answer to `subscribe` carries it, but [`Subscription`] does not hand
/// it out, and subscribing twice on one connection would restart the stream.
async fn latest_seq(session: &Session) -> Result<Seq, CtlError> {
    let probe = session.connect_running().await?;
    let r = probe
        .request::<method::Subscribe>(SubscribeParams { since: None })
        .await?;
    Ok(r.seq)
}

async fn follow(
    session: &Session,
    client: IpcClient,
    recv: &mut Receiver<'_>,
    since: Seq,
) -> Result<Exit, CtlError> {
    let mut stop = Stop::new();
    // The subscription keeps its connection open; `recv.names` holds a
    // clone of the client for lookups.
    let mut sub = client.subscribe(Some(since)).await?;
    loop {
        let next = tokio::select! {
            () = stop.requested() => return Ok(Exit::Ok),
            next = sub.next() => next,
        };
        match next {
            Ok(n) => {
                if let Some((seq, m)) = wanted(n, recv.only) {
                    recv.print_live(seq, &m).await?;
                    recv.save(seq).await?;
                }
            }
            Err(CallError::Disconnected) | Err(CallError::Timeout { .. }) => {
                let last = sub.last_seq();
                let quiet = recv.out.is_json();
                match reconnect(session, last, &mut stop, quiet).await? {
                    Some((c, s)) => {
                        recv.names.set_client(&c);
                        sub = s;
                    }
                    None => return Ok(Exit::Ok),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Connects and subscribes after `since` again, with back-off, until it
/// works, a stop is requested (`None`), or the error is one waiting will not
/// cure.
async fn reconnect(
    session: &Session,
    since: Seq,
    stop: &mut Stop,
    quiet: bool,
) -> Result<Option<(IpcClient, Subscription)>, CtlError> {
    if !quiet {
        crate::report::notice("qpqd went away; reconnecting…");
    }
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    let mut said_stopped = false;
    loop {
        let attempt = async {
            let client = session.connect().await?;
            let sub = client.subscribe(Some(since)).await?;
            Ok::<_, CtlError>((client, sub))
        };
        let result = tokio::select! {
            () = stop.requested() => return Ok(None),
            r = attempt => r,
        };
        match result {
            Ok(pair) => {
                if !quiet {
                    crate::report::notice("reconnected to qpqd");
                }
                return Ok(Some(pair));
            }
            // Stopped on purpose: wait for it to be started, say so once,
            // and never start it behind the user's back.
            Err(CtlError::Connect(ConnectError::StoppedOnPurpose { .. })) => {
                if !quiet && !said_stopped {
                    crate::report::notice(
                        "qpqd was stopped on purpose; waiting for it to be started again \
                         (`qpq-ctl daemon start`)",
                    );
                }
                said_stopped = true;
            }
            Err(e) if retryable(&e) => {}
            Err(e) => return Err(e),
        }
        tokio::select! {
            () = stop.requested() => return Ok(None),
            () = tokio::time::sleep(backoff.wait()) => {}
        }
    }
}

/// Whether another try may succeed: the daemon is restarting or starting.
fn retryable(e: &CtlError) -> bool {
    match e {
        CtlError::NotRunning { .. } => true,
        CtlError::Connect(c) => matches!(
            c,
            ConnectError::NotRunning { .. }
                | ConnectError::Io { .. }
                | ConnectError::Hello(_)
                | ConnectError::DaemonExited { .. }
                | ConnectError::StartTimeout { .. }
                | ConnectError::LockTimeout { .. }
        ),
        CtlError::Call(c) => matches!(c, CallError::Disconnected | CallError::Timeout { .. }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use quicproquo_protocol::ipc::notifications::{ConnectionChange, NewMessage};
    use quicproquo_protocol::ipc::values::{ConnectionState, MessageId, MessageState};

    use super::*;

    fn message(seq: u64, conversation: u8, outgoing: bool) -> Notification {
        Notification::Message(NewMessage {
            seq: Seq(seq),
            message: Message {
                id: MessageId([seq as u8; 16]),
                conversation: ConversationId([conversation; 16]),
                sender: "bob".into(),
                timestamp_ms: 1,
                text: "hi".into(),
                outgoing,
                state: MessageState::Received,
                failure: None,
                meta: Default::default(),
            },
        })
    }

    #[test]
    fn only_incoming_messages_of_the_chosen_conversation() {
        assert_eq!(
            wanted(message(1, 1, false), None).map(|(s, _)| s),
            Some(Seq(1))
        );
        assert!(wanted(message(2, 1, true), None).is_none(), "own messages");
        let team = Some(ConversationId([1; 16]));
        assert!(wanted(message(3, 1, false), team).is_some());
        assert!(wanted(message(4, 2, false), team).is_none());
        let other = Notification::Connection(ConnectionChange {
            seq: Seq(5),
            state: ConnectionState::Online,
            detail: String::new(),
        });
        assert!(wanted(other, None).is_none());
    }
}
