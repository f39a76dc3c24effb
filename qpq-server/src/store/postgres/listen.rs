//! Change events between nodes: `pg_notify` inside the writing transaction
//! (PostgreSQL delivers a notification only if its transaction commits), and
//! one LISTEN connection per [`PgStore`](super::PgStore) that feeds every
//! notification — this node's own too — into the store's broadcast channel.
//!
//! A notification carries one change per line: `m<hex key>` (mail),
//! `s<hex token hash>` (session), `a<username>` (account),
//! `g<revision>:<hex group id>` (group). Lines are packed into payloads under PostgreSQL's 8000-byte
//! limit, and one transaction sends them all in one statement. A line that
//! cannot be read (or would not fit) becomes [`Change::Lost`], which makes
//! every node drop its caches: correct, only slower.
//!
//! When the LISTEN connection drops, the task reconnects with backoff and,
//! once listening again, sends [`Change::Lost`]: whatever was notified in
//! between is unknown.

use std::future::poll_fn;
use std::time::Duration;

use quicproquo_protocol::types::{IdentityKey, Username};
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Client};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::queries::Tx;
use super::Fail;
use crate::store::Change;

/// The notification channel every node listens on.
pub(super) const CHANNEL: &str = "qpq_changes";
/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7999;
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

fn encode(change: &Change) -> String {
    match change {
        Change::Mail(key) => format!("m{}", hex::encode(key.0)),
        Change::Session(hash) => format!("s{}", hex::encode(hash)),
        Change::Account(name) => format!("a{}", name.as_str()),
        Change::Group { id, revision } => format!("g{revision}:{}", hex::encode(id)),
        Change::Lost => "l".to_owned(),
    }
}

fn decode(line: &str) -> Change {
    let parsed = match line.split_at_checked(1) {
        Some(("m", key)) => hex::decode(key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .map(|k| Change::Mail(IdentityKey(k))),
        Some(("s", hash)) => hex::decode(hash)
            .ok()
            .and_then(|h| h.try_into().ok())
            .map(Change::Session),
        Some(("a", name)) => Username::parse(name).ok().map(Change::Account),
        Some(("g", group)) => group.split_once(':').and_then(|(revision, id)| {
            Some(Change::Group {
                id: hex::decode(id).ok()?,
                revision: revision.parse().ok()?,
            })
        }),
        _ => None,
    };
    parsed.unwrap_or(Change::Lost)
}

/// The payloads that carry `changes`, each under the size limit.
pub(super) fn payloads(changes: &[Change]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for change in changes {
        let mut line = encode(change);
        if line.len() > MAX_PAYLOAD {
            line = encode(&Change::Lost);
        }
        if !current.is_empty() && current.len() + 1 + line.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Sends `changes` from inside `tx`: delivered to every listener when (and
/// only if) it commits. PostgreSQL drops a repeat of the same payload within
/// one transaction, which is what a repeated change deserves.
pub(super) async fn notify(tx: &Tx<'_>, changes: &[Change]) -> Result<(), Fail> {
    if changes.is_empty() {
        return Ok(());
    }
    let payloads = payloads(changes);
    tx.execute(
        "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
        &[&CHANNEL, &payloads],
    )
    .await?;
    Ok(())
}

/// A live LISTEN connection: the client (kept, since dropping it closes the
/// connection) and the task driving the connection, which ends with it.
pub(super) struct Listening {
    _client: Client,
    driver: tokio::task::JoinHandle<()>,
}

/// Connects, starts forwarding notifications into `sender`, and LISTENs.
pub(super) async fn listen(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    sender: &broadcast::Sender<Change>,
) -> Result<Listening, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.clone()).await?;
    let sender = sender.clone();
    let driver = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    for line in n.payload().lines() {
                        // No receiver yet is fine: nobody waits for anything.
                        let _ = sender.send(decode(line));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %super::describe(&e), "database change listener lost its connection");
                    return;
                }
                None => return,
            }
        }
    });
    let listening = Listening {
        _client: client,
        driver,
    };
    listening
        ._client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await?;
    Ok(listening)
}

/// Keeps a LISTEN connection up for as long as the store lives (the task is
/// aborted when it is dropped): waits for the current one to end, then
/// reconnects with backoff and reports [`Change::Lost`].
pub(super) async fn keep_listening(
    mut current: Listening,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    sender: broadcast::Sender<Change>,
) {
    loop {
        let _ = (&mut current.driver).await;
        let mut backoff = BACKOFF_FIRST;
        current = loop {
            tokio::time::sleep(backoff).await;
            match listen(&config, &tls, &sender).await {
                Ok(l) => break l,
                Err(e) => {
                    tracing::warn!(error = %super::describe(&e), retry_in = ?backoff, "cannot listen for database changes");
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        };
        tracing::info!("listening for database changes again");
        let _ = sender.send(Change::Lost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_the_trip_and_payloads_stay_small() {
        let changes: Vec<Change> = (0..500u32)
            .map(|n| Change::Mail(IdentityKey([n as u8; 32])))
            .chain([
                Change::Session([7; 32]),
                Change::Account(Username::parse("alice").expect("valid")),
                Change::Group {
                    id: vec![1, 2, 3],
                    revision: 9,
                },
                Change::Lost,
            ])
            .collect();
        let sent = payloads(&changes);
        assert!(sent.len() > 1, "500 keys need several payloads");
        assert!(sent.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let back: Vec<Change> = sent
            .iter()
            .flat_map(|p| p.lines().map(decode).collect::<Vec<_>>())
            .collect();
        assert_eq!(back, changes);
        assert_eq!(decode("x"), Change::Lost);
        assert_eq!(decode("mzz"), Change::Lost);
        assert_eq!(
            payloads(&[Change::Group {
                id: vec![0; 5000],
                revision: 1
            }]),
            vec!["l".to_owned()],
            "a change too long for one payload degrades to Lost"
        );
    }
}
