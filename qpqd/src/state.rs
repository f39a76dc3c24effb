//! The daemon's state database `qpq-state.bin`: one SQLCipher file holding
//! the account (identity seed, server, session token), conversations,
//! contacts (pinned identity keys), message history with a full-text index,
//! the outbox, the notification log and — in the same file, written in the
//! same transactions — openmls' group storage. One file and one key make
//! "stored before acknowledged" a single transaction.

use std::path::Path;

use rusqlite::Connection;
use zeroize::Zeroizing;

use crate::keystore::StateKey;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The key does not open the file: a wrong passphrase or another key.
    #[error("the state file cannot be decrypted with this key")]
    WrongKey,
    #[error("the state file was written by a newer qpqd (schema {found}, this one knows {known})")]
    NewerSchema { found: i64, known: i64 },
    /// Written by a development build whose MLS storage encoding (JSON) this
    /// one does not read (CBOR since schema 3). The file is left as it is.
    #[error(
        "the state file was written by an earlier development build of qpqd whose MLS group \
         storage this version cannot read; it was left untouched: move it aside (or use another \
         profile) and register a new account"
    )]
    OldMlsEncoding,
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(String),
}

const SCHEMA_V1: &str = r#"
CREATE TABLE account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    username TEXT NOT NULL,
    identity_seed BLOB NOT NULL,
    server TEXT NOT NULL,
    server_name TEXT NOT NULL,
    server_fingerprint BLOB,
    use_ca INTEGER NOT NULL DEFAULT 0,
    token BLOB,
    token_expires_ms INTEGER,
    created_ms INTEGER NOT NULL
);
CREATE TABLE contacts (
    username TEXT PRIMARY KEY,
    identity BLOB NOT NULL,
    channel BLOB,
    verified INTEGER NOT NULL DEFAULT 0,
    key_changed INTEGER NOT NULL DEFAULT 0,
    previous_identity BLOB
);
CREATE TABLE conversations (
    id BLOB PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('dm', 'group')),
    name TEXT NOT NULL,
    group_id BLOB NOT NULL UNIQUE,
    peer TEXT,
    ciphersuite TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_activity_ms INTEGER NOT NULL,
    read_up_to INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX conversations_dm_peer ON conversations (peer) WHERE kind = 'dm';
CREATE TABLE messages (
    rowid INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    conversation BLOB NOT NULL REFERENCES conversations (id),
    sender TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    text TEXT NOT NULL,
    outgoing INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation, rowid);
CREATE VIRTUAL TABLE messages_fts USING fts5 (text, content = 'messages', content_rowid = 'rowid');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    conversation BLOB NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    idempotency_key BLOB NOT NULL,
    message_id BLOB,
    created_ms INTEGER NOT NULL
);
CREATE TABLE notifications (
    seq INTEGER PRIMARY KEY,
    method TEXT NOT NULL,
    params TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
"#;

/// Other MLS groups whose messages belong to a conversation. When two users
/// open a DM with each other at once, two groups exist for one pair; both
/// daemons send on the one with the smaller group id and map the other here,
/// so that what was sent on it still lands in the same conversation.
const SCHEMA_V2: &str = r#"
CREATE TABLE conversation_groups (
    group_id BLOB PRIMARY KEY,
    conversation BLOB NOT NULL REFERENCES conversations (id)
);
"#;

/// No table change: marks states whose openmls storage is CBOR (see
/// `mls::provider::CborCodec`); a state below this with openmls rows was
/// written in JSON and is refused (`StateError::OldMlsEncoding`).
const SCHEMA_V3: &str = "SELECT 1;";

/// The MLS epoch at which we joined each conversation's group (0 for groups
/// we created): a message from before it was never meant for us, one from
/// after it that can no longer be decrypted was lost and is reported.
const SCHEMA_V4: &str =
    "ALTER TABLE conversations ADD COLUMN joined_epoch INTEGER NOT NULL DEFAULT 0;";

/// The last-resort key package uploaded per suite, re-sent on every
/// connection (the upload's answer is how the daemon learns its stock) and
/// replaced only when a week old, instead of a new one — with new private
/// keys kept forever — on every connection.
const SCHEMA_V5: &str = r#"
CREATE TABLE last_resort_key_packages (
    suite INTEGER PRIMARY KEY,
    package BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
"#;

/// Verification binds a name to one key: the key the user confirmed. A
/// contact is verified while its pinned key is that key; a later key is not
/// verified by the name alone.
const SCHEMA_V6: &str = r#"
ALTER TABLE contacts ADD COLUMN verified_key BLOB;
UPDATE contacts SET verified_key = identity WHERE verified = 1;
"#;

/// Invitations wait for the user's consent (see `db::invitations`), with
/// the group mail that arrives meanwhile; `settings` holds which
/// invitations need no asking.
const SCHEMA_V7: &str = r#"
CREATE TABLE invitations (
    id BLOB PRIMARY KEY,
    group_id BLOB NOT NULL UNIQUE,
    welcome BLOB NOT NULL,
    inviter TEXT NOT NULL,
    inviter_key BLOB NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    members TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE held_mail (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BLOB NOT NULL,
    bytes BLOB NOT NULL
);
CREATE INDEX held_mail_by_group ON held_mail (group_id, seq);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#;

/// Why an outbox entry was parked (refused for good: its message is
/// `failed`); NULL while it waits to be sent. A parked entry keeps its body
/// and idempotency key for `message.retry`, and holds up nothing else.
const SCHEMA_V8: &str = "ALTER TABLE outbox ADD COLUMN parked TEXT;";

/// The commit counter the integrity check at open compares with the file
/// beside the state (`integrity`).
const SCHEMA_V9: &str = crate::integrity::SCHEMA;

/// The notification log keeps no message text and only the newest 10,000
/// (`agent::NOTIFICATIONS_KEPT`; see `db::notifications`): what an older
/// version logged is brought under the same rule.
const SCHEMA_V10: &str = r#"
UPDATE notifications SET params = json_set(params, '$.message.text', '')
    WHERE method = 'message';
DELETE FROM notifications
    WHERE seq <= (SELECT coalesce(max(seq), 0) FROM notifications) - 10000;
"#;

/// Schema 11: an account stored before the server created it (`register`
/// stores the identity first, so a crash in between loses nothing).
const SCHEMA_V11: &str =
    "ALTER TABLE account ADD COLUMN registration_pending INTEGER NOT NULL DEFAULT 0;";

/// Messages for a waiting invitation that were dropped past its bound
/// (`db::invitations::MAX_HELD_MESSAGES`), so accepting can say so.
const SCHEMA_V12: &str = "ALTER TABLE invitations ADD COLUMN dropped INTEGER NOT NULL DEFAULT 0;";

/// Issue 14: the server validates groups and the groups made before were
/// never registered with it. They are not migrated (a former member could
/// register a forged state): every active conversation is marked `legacy`,
/// and the daemon re-creates its group under a new id (`agent::legacy`).
const SCHEMA_V13: &str = r#"
ALTER TABLE conversations ADD COLUMN legacy INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET legacy = 1 WHERE active = 1;
"#;

/// Issue 16: users the server said were deleted (E051). A retired name is
/// never registered again, so the mark never needs undoing.
const SCHEMA_V14: &str = "CREATE TABLE deleted_users (username TEXT PRIMARY KEY) WITHOUT ROWID;";

/// Issue 17: what a message carries beyond its text (the reply it answers,
/// whether it was edited or deleted, whether it names us, when it
/// disappears), an edited text kept in the search index, and each
/// conversation's settings (read receipts, typing, timer, notifications:
/// `db::settings`).
const SCHEMA_V15: &str = r#"
ALTER TABLE messages ADD COLUMN reply_to BLOB;
ALTER TABLE messages ADD COLUMN reply_sender TEXT;
ALTER TABLE messages ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN mentions_me INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN expires_at_ms INTEGER;
CREATE INDEX messages_expiring ON messages (expires_at_ms) WHERE expires_at_ms IS NOT NULL;
CREATE INDEX messages_mentioning ON messages (conversation, rowid) WHERE mentions_me = 1;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TABLE conversation_settings (
    conversation BLOB NOT NULL REFERENCES conversations (id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (conversation, name)
) WITHOUT ROWID;
"#;

/// Issue 17, actions on messages (`db::actions`): reactions in the order
/// they were given, the earlier versions of edited messages (a message's
/// `edited` holds the time of its newest edit, 0 when never edited), both
/// gone with their message; actions naming a message not here yet, kept
/// until it arrives (bounded); and the ids of actions already applied, so a
/// redelivered one is applied once.
const SCHEMA_V16: &str = r#"
CREATE TABLE reactions (
    rowid INTEGER PRIMARY KEY,
    message BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    reactor TEXT NOT NULL,
    emoji TEXT NOT NULL,
    UNIQUE (message, reactor, emoji)
);
CREATE TABLE message_edits (
    rowid INTEGER PRIMARY KEY,
    message BLOB NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL
);
CREATE INDEX message_edits_by_message ON message_edits (message, rowid);
CREATE TABLE pending_actions (
    rowid INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    conversation BLOB NOT NULL,
    target BLOB NOT NULL,
    sender TEXT NOT NULL,
    action TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL
);
CREATE INDEX pending_actions_by_target ON pending_actions (target);
CREATE INDEX pending_actions_by_conversation ON pending_actions (conversation, rowid);
CREATE INDEX pending_actions_by_age ON pending_actions (received_ms);
CREATE TABLE seen_actions (
    id BLOB PRIMARY KEY,
    seen_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX seen_actions_by_age ON seen_actions (seen_ms);
"#;

/// Issue 17 (privacy): read receipts — per conversation and member, the
/// position (our `messages` rowid) of the newest message that member said
/// they read; ours (`member = ''`, `db::privacy::ME`) is what our last
/// receipt named, with the key of that receipt's outbox entry while it
/// waits — and the full-text index's `secure-delete` option, so the words of
/// a deleted or expired message leave the index's pages at once instead of
/// at some later merge. (Step 17 of the issue; step 16 is the actions
/// helper's: the lead orders them when both are merged.)
const SCHEMA_V17: &str = r#"
CREATE TABLE read_marks (
    conversation BLOB NOT NULL REFERENCES conversations (id),
    member TEXT NOT NULL,
    up_to_row INTEGER NOT NULL,
    pending_key BLOB,
    PRIMARY KEY (conversation, member)
) WITHOUT ROWID;
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
"#;

/// Issue 18, attachments (`db::attachments`): one row per message with a
/// file, gone with its message. The file key is a secret and lives only
/// here, like the MLS secrets. For ours, `spool` names the encrypted copy
/// in `<data dir>/spool/` and `body` holds the MLS payload sent once the
/// upload is finished (NULL once it is in the outbox); `part` is the
/// `.part` file of a download under way, removed at the next start if the
/// daemon stopped before it was checked.
const SCHEMA_V18: &str = r#"
CREATE TABLE attachments (
    message BLOB PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    blob_id BLOB NOT NULL,
    file_key BLOB NOT NULL,
    size INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    path TEXT,
    state TEXT NOT NULL,
    error TEXT,
    spool TEXT,
    body BLOB,
    part TEXT
) WITHOUT ROWID;
CREATE INDEX attachments_by_state ON attachments (state);
"#;

const MIGRATIONS: &[&str] = &[
    SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7, SCHEMA_V8,
    SCHEMA_V9, SCHEMA_V10, SCHEMA_V11, SCHEMA_V12, SCHEMA_V13, SCHEMA_V14, SCHEMA_V15, SCHEMA_V16,
    SCHEMA_V17, SCHEMA_V18,
];

/// Opens (creating if needed) the state database with `key`. A wrong key is
/// [`StateError::WrongKey`]; an existing file is never replaced.
pub fn open(path: &Path, key: &StateKey) -> Result<Connection, StateError> {
    let existed = path.exists();
    let conn = Connection::open(path)?;
    apply_key(&conn, key, existed)?;
    restrict_permissions(path)?;
    configure(&conn)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    migrate(&conn)?;
    Ok(conn)
}

/// The connection's settings. `secure_delete`: SQLite overwrites what a
/// delete frees with zeros, so a removed message (expired, deleted) leaves
/// no readable copy in the file's free pages for anyone who later has the
/// key; with the full-text index's own `secure-delete` (schema 17) and the
/// WAL checkpoint after each sweep (`db::privacy::checkpoint`), its text is
/// gone from the file, not merely unlinked.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;",
    )
}

/// A second connection to the state [`open`] made, read-only: searches run
/// on it off the core thread (`reader.rs`), so they never hold up the calls
/// the core serves.
pub fn open_reader(path: &Path, key: &StateKey) -> Result<Connection, StateError> {
    use rusqlite::OpenFlags;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    apply_key(&conn, key, true)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Gives SQLCipher the key and checks it (`WrongKey` for a file that
/// `existed` and does not open with it).
fn apply_key(conn: &Connection, key: &StateKey, existed: bool) -> Result<(), StateError> {
    // SQLCipher logs a failed key check to stderr; the caller reports it.
    let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE;");
    let pragma = Zeroizing::new(format!(
        "PRAGMA key = \"x'{}'\";",
        hex::encode(key.expose())
    ));
    conn.execute_batch(&pragma)?;
    // SQLCipher only notices a wrong key on the first read.
    if let Err(e) = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        return Err(if existed && is_not_a_database(&e) {
            StateError::WrongKey
        } else {
            e.into()
        });
    }
    Ok(())
}

fn is_not_a_database(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase
    )
}

fn restrict_permissions(path: &Path) -> Result<(), StateError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StateError::Io(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

fn migrate(conn: &Connection) -> Result<(), StateError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StateError::NewerSchema {
            found: version,
            known,
        });
    }
    if version > 0 && version < 3 && has_json_mls_state(conn)? {
        return Err(StateError::OldMlsEncoding);
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Whether openmls has stored anything (in the encoding of its time).
fn has_json_mls_state(conn: &Connection) -> Result<bool, StateError> {
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'openmls_group_data'",
        [],
        |r| r.get(0),
    )?;
    if tables == 0 {
        return Ok(false);
    }
    let rows: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM openmls_group_data) + (SELECT count(*) FROM openmls_key_packages)",
        [],
        |r| r.get(0),
    )?;
    Ok(rows > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::tests::FakeKeyring;
    use crate::keystore::{obtain, KeySource};

    fn key(dir: &Path, pass: &str) -> StateKey {
        let broken = FakeKeyring {
            broken: true,
            ..Default::default()
        };
        let (k, src) = obtain(dir, "t", &broken, Some(pass)).unwrap();
        assert_eq!(src, KeySource::Passphrase);
        k
    }

    #[test]
    fn encrypted_at_rest_and_a_wrong_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qpq-state.bin");
        {
            let c = open(&path, &key(dir.path(), "right passphrase")).unwrap();
            c.execute(
                "INSERT INTO contacts (username, identity) VALUES ('bob', x'00')",
                [],
            )
            .unwrap();
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        }
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(3).any(|w| w == b"bob"), "plaintext on disk");
        assert!(!raw.starts_with(b"SQLite format 3"), "not encrypted");

        match open(&path, &key(dir.path(), "wrong passphrase")) {
            Err(StateError::WrongKey) => {}
            other => panic!("{other:?}"),
        }
        // The right key still opens it, with the data.
        let c = open(&path, &key(dir.path(), "right passphrase")).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM contacts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn full_text_search_indexes_messages() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("s.bin"), &key(dir.path(), "p")).unwrap();
        c.execute_batch(
            "INSERT INTO conversations (id, kind, name, group_id, ciphersuite, created_ms, last_activity_ms)
               VALUES (x'01', 'group', 'team', x'aa', 'hybrid', 0, 0);
             INSERT INTO messages (id, conversation, sender, timestamp_ms, text, outgoing, state)
               VALUES (x'10', x'01', 'bob', 1, 'the deploy is done', 0, 'received'),
                      (x'11', x'01', 'bob', 2, 'lunch?', 0, 'received');",
        )
        .unwrap();
        let hit: Vec<u8> = c
            .query_row(
                "SELECT m.id FROM messages_fts f JOIN messages m ON m.rowid = f.rowid
                 WHERE messages_fts MATCH 'deploy'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hit, vec![0x10]);
    }

    /// A state from before the CBOR storage encoding, with MLS data in it,
    /// is refused with a message saying what to do, and left unchanged; one
    /// without MLS data (nothing to misread) is upgraded.
    #[test]
    fn a_state_with_json_mls_storage_is_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path(), "pass");
        for (name, mls_rows) in [("empty.bin", false), ("old.bin", true)] {
            let path = dir.path().join(name);
            // A schema-2 state as that build left it.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(k.expose())))
                .unwrap();
            c.execute_batch(SCHEMA_V1).unwrap();
            c.execute_batch(SCHEMA_V2).unwrap();
            c.execute_batch(
                "PRAGMA user_version = 2;
                 CREATE TABLE openmls_group_data (group_id BLOB, data_type TEXT, group_data BLOB);
                 CREATE TABLE openmls_key_packages (key_package_ref BLOB, key_package BLOB);",
            )
            .unwrap();
            if mls_rows {
                c.execute_batch(
                    "INSERT INTO openmls_group_data VALUES (x'7b7d', 'tree', x'7b7d');",
                )
                .unwrap();
            }
            drop(c);
            match (open(&path, &k), mls_rows) {
                (Err(StateError::OldMlsEncoding), true) => {}
                (Ok(c), false) => {
                    let v: i64 = c
                        .query_row("PRAGMA user_version", [], |r| r.get(0))
                        .unwrap();
                    assert_eq!(v, MIGRATIONS.len() as i64);
                }
                (other, _) => panic!("{name}: {:?}", other.map(|_| ())),
            }
        }
        // Refusing changed nothing: still schema 2, row still there.
        let c = Connection::open(dir.path().join("old.bin")).unwrap();
        c.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(k.expose())))
            .unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2);
    }

    /// A schema-5 state with messages waiting keeps them waiting after the
    /// upgrade that adds parking: nothing is parked by a migration.
    #[test]
    fn an_upgraded_outbox_keeps_its_entries_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path(), "pass");
        let path = dir.path().join("v5.bin");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(k.expose())))
            .unwrap();
        for sql in &MIGRATIONS[..5] {
            c.execute_batch(sql).unwrap();
        }
        c.execute_batch(
            "PRAGMA user_version = 5;
             INSERT INTO outbox (conversation, kind, body, idempotency_key, created_ms)
             VALUES (x'00000000000000000000000000000001', 'app', x'01',
                     x'00000000000000000000000000000002', 1);",
        )
        .unwrap();
        drop(c);
        let c = open(&path, &k).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        assert_eq!(crate::db::outbox::len(&c).unwrap(), 1);
        assert!(matches!(
            crate::db::outbox::next(&c, 0, &[]).unwrap(),
            crate::db::outbox::Next::Message(_)
        ));
    }

    /// A log written before the rule loses its message texts on upgrade.
    #[test]
    fn an_upgraded_notification_log_keeps_no_message_text() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path(), "pass");
        let path = dir.path().join("v8.bin");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(k.expose())))
            .unwrap();
        for sql in &MIGRATIONS[..8] {
            c.execute_batch(sql).unwrap();
        }
        c.execute_batch(
            r#"PRAGMA user_version = 8;
             INSERT INTO notifications (seq, method, params, created_ms) VALUES
             (1, 'message', '{"seq":1,"message":{"id":"00","text":"the secret plan"}}', 1),
             (2, 'connection', '{"seq":2,"state":"online","detail":""}', 1);"#,
        )
        .unwrap();
        drop(c);
        let c = open(&path, &k).unwrap();
        let logged: String = c
            .query_row("SELECT group_concat(params) FROM notifications", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!logged.contains("secret"), "{logged}");
        assert!(logged.contains("online"), "{logged}");
    }

    /// A purged message is gone from the file itself, not only unlinked:
    /// no copy of its text in free pages, the full-text index's segments or
    /// the write-ahead log. Checked on a file without encryption (the same
    /// settings and schema), where the bytes can be read; before the purge
    /// the word is there, so the check can fail.
    #[test]
    fn a_purged_message_leaves_no_bytes_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.bin");
        let c = Connection::open(&path).unwrap();
        configure(&c).unwrap();
        migrate(&c).unwrap();
        let word = "zygomorphicquokka";
        c.execute_batch(&format!(
            "INSERT INTO conversations (id, kind, name, group_id, ciphersuite, created_ms, last_activity_ms)
               VALUES (x'00000000000000000000000000000001', 'group', 'team', x'aa', 'hybrid', 0, 0);
             INSERT INTO messages (id, conversation, sender, timestamp_ms, text, outgoing, state)
               VALUES (x'00000000000000000000000000000010', x'00000000000000000000000000000001',
                       'bob', 1, 'keep this', 0, 'received'),
                      (x'00000000000000000000000000000011', x'00000000000000000000000000000001',
                       'bob', 2, '{word}', 0, 'received');"
        ))
        .unwrap();
        let on_disk = |what: &str| -> bool {
            [path.clone(), dir.path().join("plain.bin-wal")]
                .iter()
                .filter_map(|p| std::fs::read(p).ok())
                .any(|raw| raw.windows(what.len()).any(|w| w == what.as_bytes()))
        };
        crate::db::privacy::checkpoint(&c).unwrap();
        assert!(on_disk(word), "the test sees the text before the purge");
        let mut id = [0u8; 16];
        id[15] = 0x11;
        let id = crate::db::Id(id);
        crate::db::privacy::purge(&c, &[id]).unwrap();
        crate::db::privacy::checkpoint(&c).unwrap();
        assert!(!on_disk(word), "the purged text is still in the file");
        assert!(on_disk("keep this"), "the rest is still there");
    }

    /// A schema-12 state (groups made before the server validated them)
    /// has its active conversations marked for re-creation, and only those.
    #[test]
    fn an_upgrade_marks_the_groups_made_before_validation() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path(), "pass");
        let path = dir.path().join("v12.bin");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(k.expose())))
            .unwrap();
        for sql in &MIGRATIONS[..12] {
            c.execute_batch(sql).unwrap();
        }
        c.execute_batch(
            "PRAGMA user_version = 12;
             INSERT INTO conversations (id, kind, name, group_id, peer, ciphersuite,
                                        created_ms, last_activity_ms, active)
             VALUES (x'00000000000000000000000000000001', 'group', 'team', x'01', NULL,
                     'hybrid', 1, 1, 1),
                    (x'00000000000000000000000000000002', 'group', 'old', x'02', NULL,
                     'hybrid', 1, 1, 0);",
        )
        .unwrap();
        drop(c);
        let c = open(&path, &k).unwrap();
        let legacy: Vec<String> = crate::db::conversations::legacy(&c)
            .unwrap()
            .into_iter()
            .map(|conv| conv.name)
            .collect();
        assert_eq!(legacy, ["team"]);
    }
}
