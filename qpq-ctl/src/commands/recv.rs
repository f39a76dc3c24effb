//! `recv [--follow] [--since SEQ] [--conversation C] [--mentions]`:
//! incoming messages, and with `--follow` what members do.
//!
//! Both forms read the daemon's notification stream (`subscribe` with
//! `since`), which replays everything after a sequence number and then goes
//! live; `recv` keeps `message` notifications of incoming messages
//! (`outgoing == false`: what this profile sent, from here or the TUI, is not
//! "received", and a bot answering with `send` must not read its own
//! answers). `--follow` also keeps the events of issue 17 (`reaction`,
//! `edit`, `delete`, `read`, `typing`, `timer`, `conversation`) that another
//! member caused, by the same rule, and the end of each attachment transfer
//! of this profile (`transfer` with its final state: a script that started
//! `send --file --no-wait` or a download learns how it went; the progress
//! steps in between are not shown); a one-shot `recv` prints a JSON array
//! of messages, as it always did, so it keeps to messages. `--mentions`
//! keeps only messages that mention us.
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
use quicproquo_protocol::ipc::methods::{method, NoParams, SubscribeParams};
use quicproquo_protocol::ipc::values::{ConversationId, Message, Seq};
use quicproquo_protocol::ipc::Notification;

use super::names::Names;
use crate::cli::RecvArgs;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::event::{actor, conversation_of, transfer_ended};
use crate::output::message::Columns;
use crate::output::{message, EventView, MessageView, Out};
use crate::session::Session;

mod cursor;
pub(super) mod stop;

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
    filter: Filter,
    ids: bool,
    cursor: Option<Cursor>,
}

/// Which notifications `recv` shows.
#[derive(Debug, Clone, Default)]
struct Filter {
    /// One conversation (`--conversation`).
    only: Option<ConversationId>,
    /// Only messages that mention us (`--mentions`).
    mentions: bool,
    /// Events besides messages (`--follow`).
    events: bool,
    /// Our username: events we caused are not shown. `None` when the
    /// profile has no account (then there are no events of ours).
    me: Option<String>,
}

/// A notification `recv` shows.
#[derive(Debug)]
enum Item {
    Message(Seq, Message),
    Event(Notification),
}

/// What of `n` `recv` shows: an incoming message (one that mentions us
/// with `--mentions`), or an event another member caused; of the one
/// conversation when `only` names one.
fn wanted(n: Notification, f: &Filter) -> Option<Item> {
    let ours = |id: ConversationId| f.only.is_none_or(|only| only == id);
    match n {
        Notification::Message(m)
            if !m.message.outgoing
                && ours(m.message.conversation)
                && (!f.mentions || m.message.meta.mentions_me) =>
        {
            Some(Item::Message(m.seq, m.message))
        }
        Notification::Transfer(t) if !transfer_ended(t.state) => None,
        n if f.events && !f.mentions => {
            let conversation = conversation_of(&n)?;
            let by_us = actor(&n).is_some_and(|by| f.me.as_deref() == Some(by));
            (ours(conversation) && !by_us).then_some(Item::Event(n))
        }
        _ => None,
    }
}

impl Receiver<'_> {
    fn columns(&self) -> Columns {
        Columns {
            conversation: self.filter.only.is_none(),
            ids: self.ids,
        }
    }

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
            let text = message::render(&views, self.columns(), &self.out.style());
            self.out.write(&text)
        }
    }

    /// One message or event of a followed stream: one JSON line or one
    /// entry. The names are asked for again each time: a stream lives
    /// long, and names change under it.
    async fn print_live(&mut self, item: &Item) -> Result<(), CtlError> {
        self.names.refresh().await?;
        match item {
            Item::Message(seq, m) => {
                let name = self.names.name(m.conversation).await?;
                let view = MessageView {
                    message: m,
                    conversation_name: &name,
                    seq: Some(seq.0),
                };
                if self.out.is_json() {
                    self.out.json(&view.json())?;
                } else {
                    let text = message::render(&[view], self.columns(), &self.out.style());
                    self.out.write(&text)?;
                }
            }
            Item::Event(n) => {
                let Some(id) = conversation_of(n) else {
                    return Ok(());
                };
                let name = self.names.name(id).await?;
                let view = EventView {
                    event: n,
                    conversation_name: &name,
                };
                if self.out.is_json() {
                    let line = view
                        .json_line()
                        .map_err(|e| CtlError::io("encoding JSON", std::io::Error::other(e)))?;
                    self.out.line(&line)?;
                } else {
                    let now = jiff::Timestamp::now().as_millisecond();
                    let text = view.render(
                        self.filter.only.is_none(),
                        &self.out.style(),
                        u64::try_from(now).unwrap_or_default(),
                    );
                    self.out.write(&text)?;
                }
            }
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
        None => Some(Cursor::new(&session.paths().data_dir, only, args.mentions)),
    };
    let since = match (args.since, &cursor) {
        (Some(s), _) => Seq(s),
        (None, Some(c)) => c.load().await?.unwrap_or_default(),
        (None, None) => Seq::default(),
    };
    let me = if args.follow {
        // Not logged in: nothing is ours yet (and the stream still runs).
        client
            .request::<method::Whoami>(NoParams {})
            .await
            .ok()
            .map(|w| w.username)
    } else {
        None
    };
    let mut recv = Receiver {
        out,
        names,
        filter: Filter {
            only,
            mentions: args.mentions,
            events: args.follow,
            me,
        },
        ids: args.ids,
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
            if let Some(Item::Message(seq, m)) = wanted(n, &recv.filter) {
                batch.push((seq, m));
            }
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
                let seq = n.seq();
                if let Some(item) = wanted(n, &recv.filter) {
                    recv.print_live(&item).await?;
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
pub(super) async fn reconnect(
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
    use quicproquo_protocol::ipc::notifications::{
        ConnectionChange, DeleteUpdate, NewMessage, ReactionUpdate,
    };
    use quicproquo_protocol::ipc::values::{ConnectionState, DeleteScope, MessageId, MessageState};

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

    fn seq_of(item: Option<Item>) -> Option<u64> {
        match item? {
            Item::Message(seq, _) => Some(seq.0),
            Item::Event(n) => Some(n.seq().0),
        }
    }

    #[test]
    fn only_incoming_messages_of_the_chosen_conversation() {
        let all = Filter::default();
        assert_eq!(seq_of(wanted(message(1, 1, false), &all)), Some(1));
        assert!(wanted(message(2, 1, true), &all).is_none(), "own messages");
        let team = Filter {
            only: Some(ConversationId([1; 16])),
            ..Filter::default()
        };
        assert!(wanted(message(3, 1, false), &team).is_some());
        assert!(wanted(message(4, 2, false), &team).is_none());
        let other = Notification::Connection(ConnectionChange {
            seq: Seq(5),
            state: ConnectionState::Online,
            detail: String::new(),
        });
        assert!(wanted(other, &all).is_none());
    }

    fn reaction(seq: u64, conversation: u8, by: &str) -> Notification {
        Notification::Reaction(ReactionUpdate {
            seq: Seq(seq),
            conversation: ConversationId([conversation; 16]),
            id: MessageId([9; 16]),
            emoji: "\u{1F44D}".into(),
            by: by.into(),
            removed: false,
        })
    }

    #[test]
    fn only_the_ends_of_transfers_when_following() {
        use quicproquo_protocol::ipc::notifications::TransferUpdate;
        use quicproquo_protocol::ipc::values::{TransferDirection, TransferState};
        let transfer = |seq: u64, state| {
            Notification::Transfer(TransferUpdate {
                seq: Seq(seq),
                conversation: ConversationId([1; 16]),
                id: MessageId([9; 16]),
                direction: TransferDirection::Up,
                state,
                done: 1,
                total: 2,
                path: None,
                error: None,
            })
        };
        let follow = Filter {
            events: true,
            me: Some("alice".into()),
            ..Filter::default()
        };
        assert!(wanted(transfer(1, TransferState::Uploading), &follow).is_none());
        assert_eq!(
            seq_of(wanted(transfer(2, TransferState::Uploaded), &follow)),
            Some(2),
            "ours, and still shown: nobody else sees it"
        );
        assert!(wanted(transfer(3, TransferState::Uploaded), &Filter::default()).is_none());
    }

    #[test]
    fn events_of_other_members_only_when_following() {
        let once = Filter {
            me: Some("alice".into()),
            ..Filter::default()
        };
        assert!(wanted(reaction(1, 1, "bob"), &once).is_none(), "recv once");
        let follow = Filter {
            events: true,
            ..once.clone()
        };
        assert_eq!(seq_of(wanted(reaction(2, 1, "bob"), &follow)), Some(2));
        assert!(
            wanted(reaction(3, 1, "alice"), &follow).is_none(),
            "what we did is not received"
        );
        // Our own message expiring is not something we did.
        let expired = |by: &str| {
            Notification::Delete(DeleteUpdate {
                seq: Seq(4),
                conversation: ConversationId([1; 16]),
                id: MessageId([9; 16]),
                by: by.into(),
                scope: DeleteScope::Expired,
            })
        };
        assert!(wanted(expired("alice"), &follow).is_some());
        let team = Filter {
            only: Some(ConversationId([2; 16])),
            ..follow.clone()
        };
        assert!(wanted(reaction(5, 1, "bob"), &team).is_none());
        assert!(wanted(reaction(6, 2, "bob"), &team).is_some());
        let mentions = Filter {
            mentions: true,
            ..follow
        };
        assert!(wanted(reaction(7, 1, "bob"), &mentions).is_none());
        assert!(wanted(message(8, 1, false), &mentions).is_none());
        let Notification::Message(mut m) = message(9, 1, false) else {
            unreachable!()
        };
        m.message.meta.mentions_me = true;
        assert!(wanted(Notification::Message(m), &mentions).is_some());
    }
}
