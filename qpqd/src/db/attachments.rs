//! Attachments (issue 18, schema 18): one row per message that carries a
//! file — its descriptor (blob id, file key, size, chunk size, hash, name,
//! content type) and where its bytes are on this machine (state, path,
//! error). The row goes with its message (`ON DELETE CASCADE`: discard,
//! expiry, account deletion) and with a delete for me or for everyone
//! (`db::actions::delete`).
//!
//! The file key is a secret like the MLS secrets: it is only in this file
//! (SQLCipher), read into a zeroizing [`FileKey`], never logged. For our own
//! attachments `spool` names the encrypted copy under `<data dir>/spool/`
//! and `body` is the MLS payload that goes to the outbox once the upload is
//! finished (NULL from then on).

use std::collections::HashMap;

use quicproquo_protocol::blob::{BlobId, Descriptor, FileKey};
use quicproquo_protocol::ipc::values::{Attachment, TransferState};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use zeroize::Zeroizing;

use super::Id;

/// A stored attachment with its secret part.
#[derive(Debug, Clone)]
pub struct Stored {
    pub message: Id,
    pub descriptor: Descriptor,
    pub state: TransferState,
    pub path: Option<String>,
    pub error: Option<String>,
    /// Ours: the spool file's name, until the upload is done.
    pub spool: Option<String>,
}

impl Stored {
    /// What front-ends see (no key, no blob id).
    pub fn view(&self) -> Attachment {
        Attachment {
            name: self.descriptor.file_name.clone(),
            size: self.descriptor.size,
            content_type: self.descriptor.content_type.clone(),
            sha256: hex::encode(self.descriptor.sha256),
            state: self.state,
            path: self.path.clone(),
            error: self.error.clone(),
        }
    }
}

/// The word a state is stored as (its IPC name).
pub fn state_word(s: TransferState) -> &'static str {
    match s {
        TransferState::Uploading => "uploading",
        TransferState::Uploaded => "uploaded",
        TransferState::Available => "available",
        TransferState::Downloading => "downloading",
        TransferState::Downloaded => "downloaded",
        TransferState::Failed => "failed",
        TransferState::Corrupt => "corrupt",
        TransferState::Expired => "expired",
    }
}

fn parse_state(s: &str) -> TransferState {
    TransferState::ALL
        .iter()
        .copied()
        .find(|t| state_word(*t) == s)
        .unwrap_or(TransferState::Failed)
}

const COLUMNS: &str = "message, blob_id, file_key, size, chunk_size, sha256, name, content_type,
    path, state, error, spool";

fn row(r: &Row<'_>) -> rusqlite::Result<Stored> {
    let bad = |i: usize| {
        rusqlite::Error::InvalidColumnType(i, "attachment".into(), rusqlite::types::Type::Blob)
    };
    let blob: Vec<u8> = r.get(1)?;
    let key: Zeroizing<Vec<u8>> = Zeroizing::new(r.get(2)?);
    let sha: Vec<u8> = r.get(5)?;
    let key: [u8; 32] = key.as_slice().try_into().map_err(|_| bad(2))?;
    let state: String = r.get(9)?;
    Ok(Stored {
        message: r.get(0)?,
        descriptor: Descriptor {
            blob_id: BlobId(blob.as_slice().try_into().map_err(|_| bad(1))?),
            key: FileKey::from_bytes(key),
            size: r.get::<_, i64>(3)? as u64,
            chunk_size: r.get::<_, i64>(4)? as u32,
            sha256: sha.as_slice().try_into().map_err(|_| bad(5))?,
            file_name: r.get(6)?,
            content_type: r.get(7)?,
        },
        state: parse_state(&state),
        path: r.get(8)?,
        error: r.get(10)?,
        spool: r.get(11)?,
    })
}

/// Stores an attachment of message `message`; `false` if it has one (a
/// redelivery). `body`: ours, the payload to send once uploaded.
pub fn insert(c: &Connection, a: &Stored, body: Option<&[u8]>) -> rusqlite::Result<bool> {
    let d = &a.descriptor;
    let key = Zeroizing::new(d.key.expose().to_vec());
    let n = c.execute(
        "INSERT OR IGNORE INTO attachments (message, blob_id, file_key, size, chunk_size, sha256,
             name, content_type, path, state, error, spool, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            a.message,
            d.blob_id.0.as_slice(),
            key.as_slice(),
            d.size as i64,
            i64::from(d.chunk_size),
            d.sha256.as_slice(),
            d.file_name,
            d.content_type,
            a.path,
            state_word(a.state),
            a.error,
            a.spool,
            body,
        ],
    )?;
    Ok(n == 1)
}

pub fn get(c: &Connection, message: Id) -> rusqlite::Result<Option<Stored>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM attachments WHERE message = ?1"),
        [message],
        row,
    )
    .optional()
}

/// The attachments of `messages` as front-ends see them, by message. One
/// query (a history page reads them all at once).
pub fn views_of(c: &Connection, messages: &[Id]) -> rusqlite::Result<HashMap<Id, Attachment>> {
    let mut out = HashMap::new();
    if messages.is_empty() {
        return Ok(out);
    }
    let marks = vec!["?"; messages.len()].join(", ");
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM attachments WHERE message IN ({marks})"
    ))?;
    let rows = st.query_map(params_from_iter(messages.iter()), row)?;
    for r in rows {
        let a = r?;
        out.insert(a.message, a.view());
    }
    Ok(out)
}

/// Our attachments still to upload (state `uploading`), oldest first.
pub fn uploads(c: &Connection) -> rusqlite::Result<Vec<Stored>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS} FROM attachments a WHERE state = 'uploading' AND body IS NOT NULL
         ORDER BY (SELECT rowid FROM messages m WHERE m.id = a.message)"
    ))?;
    let rows = st.query_map([], row)?;
    rows.collect()
}

/// Moves an attachment to `state`, with `error` (cleared when `None`) and,
/// when given, a new `path`. Whether it exists.
pub fn set_state(
    c: &Connection,
    message: Id,
    state: TransferState,
    error: Option<&str>,
    path: Option<&str>,
) -> rusqlite::Result<bool> {
    let n = c.execute(
        "UPDATE attachments SET state = ?2, error = ?3, path = coalesce(?4, path) WHERE message = ?1",
        params![message, state_word(state), error, path],
    )?;
    Ok(n > 0)
}

/// Takes the payload to send of our finished upload (NULL from now on)
/// and forgets its spool file (deleted by the caller).
pub fn take_body(c: &Connection, message: Id) -> rusqlite::Result<Option<Vec<u8>>> {
    let body: Option<Vec<u8>> = c
        .query_row(
            "SELECT body FROM attachments WHERE message = ?1",
            [message],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    c.execute(
        "UPDATE attachments SET body = NULL, spool = NULL WHERE message = ?1",
        [message],
    )?;
    Ok(body)
}

/// Every spool file a row still names: the rest of the spool directory is
/// left over (a discarded or deleted upload) and may go.
pub fn spool_files(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = c.prepare("SELECT spool FROM attachments WHERE spool IS NOT NULL")?;
    let rows = st.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Records the `.part` file a download writes (`None` once it is done).
pub fn set_part(c: &Connection, message: Id, part: Option<&str>) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE attachments SET part = ?2 WHERE message = ?1",
        params![message, part],
    )?;
    Ok(())
}

/// Downloads the daemon was doing when it stopped: they failed, to be
/// asked again; returns their `.part` files, for the caller to delete.
pub fn interrupted_downloads(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let parts: Vec<String> = c
        .prepare("SELECT part FROM attachments WHERE part IS NOT NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    c.execute(
        "UPDATE attachments SET state = 'failed',
             error = 'the download was interrupted (qpqd stopped): download it again'
         WHERE state = 'downloading'",
        [],
    )?;
    c.execute(
        "UPDATE attachments SET part = NULL WHERE part IS NOT NULL",
        [],
    )?;
    Ok(parts)
}

/// Forgets the attachment of a message deleted (for me or for everyone):
/// its key goes with it.
pub fn forget(c: &Connection, message: Id) -> rusqlite::Result<()> {
    c.execute("DELETE FROM attachments WHERE message = ?1", [message])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::messages::{self, Deleted, Message, State};

    fn with_file(c: &Connection, conv: Id, state: TransferState) -> Id {
        let m = Message {
            id: Id::random(),
            conversation: conv,
            sender: "alice".into(),
            timestamp_ms: 1,
            text: "caption".into(),
            outgoing: false,
            state: State::Received,
            extra: Default::default(),
        };
        messages::insert(c, &m).unwrap();
        let a = Stored {
            message: m.id,
            descriptor: Descriptor {
                blob_id: BlobId([3; 16]),
                key: FileKey::from_bytes([5; 32]),
                size: 10,
                chunk_size: 1024,
                sha256: [6; 32],
                file_name: "a.txt".into(),
                content_type: "text/plain".into(),
            },
            state,
            path: None,
            error: None,
            spool: None,
        };
        assert!(insert(c, &a, None).unwrap());
        assert!(!insert(c, &a, None).unwrap(), "a redelivery adds nothing");
        m.id
    }

    /// The row (and its key) goes with its message however it goes:
    /// removed (expiry, discard, account deletion), deleted for me or for
    /// everyone. What is read back is what was stored.
    #[test]
    fn the_key_goes_with_its_message() {
        let (_d, c, conv) = crate::db::test_db_with_team();
        let kept = with_file(&c, conv, TransferState::Available);
        let got = get(&c, kept).unwrap().unwrap();
        assert_eq!(got.descriptor.key.expose(), &[5; 32]);
        assert_eq!(got.view().sha256, hex::encode([6; 32]));
        let views = views_of(&c, &[kept, Id::random()]).unwrap();
        assert_eq!(views.len(), 1);

        let removed = with_file(&c, conv, TransferState::Available);
        c.execute("DELETE FROM messages WHERE id = ?1", [removed])
            .unwrap();
        assert!(get(&c, removed).unwrap().is_none(), "cascaded");
        for scope in [Deleted::ForMe, Deleted::ForEveryone] {
            let id = with_file(&c, conv, TransferState::Downloaded);
            crate::db::actions::delete(&c, id, scope).unwrap();
            assert!(get(&c, id).unwrap().is_none(), "{scope:?}");
        }
        assert!(get(&c, kept).unwrap().is_some());
    }

    /// Downloads under way when the daemon stopped fail, and their `.part`
    /// files are handed back once.
    #[test]
    fn interrupted_downloads_fail_and_name_their_part_files() {
        let (_d, c, conv) = crate::db::test_db_with_team();
        let id = with_file(&c, conv, TransferState::Downloading);
        set_part(&c, id, Some("/tmp/x.part")).unwrap();
        assert_eq!(interrupted_downloads(&c).unwrap(), ["/tmp/x.part"]);
        let a = get(&c, id).unwrap().unwrap();
        assert_eq!(a.state, TransferState::Failed);
        assert!(a.error.unwrap().contains("interrupted"));
        assert!(interrupted_downloads(&c).unwrap().is_empty());
    }
}
