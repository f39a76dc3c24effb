//! Limits the server enforces and clients respect. Exceeding one yields its own
//! error code (see [`crate::errors::ErrorCode`]).

use std::time::Duration;

/// Largest MLS payload (after padding) accepted by `enqueue`. The largest
/// commit qpqd produces — adding ~1,000 members in one hybrid-suite commit — is
/// about 2.7 MB, so this leaves headroom.
pub const MAX_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;
/// Largest encoded request: a payload plus the envelope around it.
pub const MAX_REQUEST_BYTES: usize = MAX_PAYLOAD_BYTES + 64 * 1024;
/// Largest encoded request read on a connection not bound to a session (no
/// login or `authenticate` on it yet): a stranger's requests are OPAQUE
/// messages and `health`, a few hundred bytes, so nothing large is buffered
/// for someone the server does not know.
pub const MAX_REQUEST_BYTES_BEFORE_LOGIN: usize = 64 * 1024;
/// The most bytes one `blobUpload` carries or one `blobDownload` returns
/// (issue 18): a chunk of a resumable transfer, far under the request limit.
pub const MAX_BLOB_CHUNK_BYTES: usize = 1024 * 1024;
/// Largest encoded response a client reads (a fetch may return several payloads).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// The server stops adding messages to one fetch answer past this many bytes
/// (it always returns at least one message if any is waiting).
pub const FETCH_RESPONSE_BUDGET: usize = 8 * 1024 * 1024;

/// Recipients of one enqueue (a group fan-out).
pub const MAX_RECIPIENTS: usize = 1024;
/// Key packages in one upload.
pub const MAX_KEY_PACKAGES_PER_UPLOAD: usize = 100;
/// Key packages held per user (the last-resort package not counted).
pub const MAX_KEY_PACKAGES_STORED: usize = 500;
/// Size of one key package (a hybrid-suite package is ~2.7 KB).
pub const MAX_KEY_PACKAGE_BYTES: usize = 16 * 1024;
/// Messages waiting in one mailbox.
pub const MAX_QUEUE_DEPTH: usize = 10_000;
/// Messages returned by one fetch, and sequence numbers in one ack.
pub const MAX_FETCH_LIMIT: u32 = 500;
/// Longest a `fetchWait` is held open.
pub const MAX_FETCH_WAIT: Duration = Duration::from_secs(60);

/// Longest chat message text (UTF-8 bytes) a front-end may send; far below
/// the payload limit once encrypted and padded.
pub const MAX_MESSAGE_TEXT_BYTES: usize = 64 * 1024;

pub const MAX_USERNAME_LEN: usize = 32;
pub const SESSION_TOKEN_LEN: usize = 32;
/// OPAQUE messages are a few hundred bytes; anything larger is not OPAQUE.
pub const MAX_OPAQUE_MESSAGE_BYTES: usize = 4096;

/// Login attempts (start) per account per minute, and per source address.
pub const LOGIN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE: u32 = 10;
pub const LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE: u32 = 30;
/// Registrations per source address per hour.
pub const REGISTRATIONS_PER_ADDRESS_PER_HOUR: u32 = 20;
/// Sustained requests per second per account, and the burst allowed above it.
pub const REQUESTS_PER_SECOND_PER_ACCOUNT: u32 = 2_000;
pub const REQUEST_BURST_PER_ACCOUNT: u32 = 4_000;
/// How long an OPAQUE login may sit between start and finish.
pub const LOGIN_STATE_TTL: Duration = Duration::from_secs(60);
/// Default lifetime of a session token.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long idempotency keys are remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Shortest password a new account gets (checked by the daemon and, early,
/// by the front-ends; the server never sees the password).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Shortest passphrase a new state gets (it cannot be recovered: a state
/// whose passphrase is lost is lost).
pub const MIN_PASSPHRASE_CHARS: usize = 10;

/// Why `secret` cannot be a new password or passphrase (`what` names it,
/// `min` is its shortest length in characters), or `None` when it can.
pub fn new_secret_problem(what: &str, secret: &str, min: usize) -> Option<String> {
    let n = secret.chars().count();
    if secret.trim().is_empty() {
        Some(format!("the {what} is empty"))
    } else if n < min {
        Some(format!(
            "the {what} is {n} characters; choose one of at least {min}"
        ))
    } else {
        None
    }
}

/// Most distinct words in one `search` query: full-text search time grows
/// with the square of the words, and a pasted paragraph once held the daemon
/// for 38 s.
pub const MAX_SEARCH_WORDS: usize = 16;
/// Longest `search` query, in bytes (UTF-8).
pub const MAX_SEARCH_BYTES: usize = 256;

/// Checks a `search` query against [`MAX_SEARCH_WORDS`] and
/// [`MAX_SEARCH_BYTES`]: the daemon refuses (-32007) what this refuses, and
/// the front-ends check first with the same words.
pub fn check_search_query(query: &str) -> Result<(), String> {
    if query.len() > MAX_SEARCH_BYTES {
        return Err(format!(
            "the search is {} bytes long; at most {MAX_SEARCH_BYTES} bytes are searched for",
            query.len()
        ));
    }
    let words: std::collections::HashSet<&str> = query.split_whitespace().collect();
    if words.len() > MAX_SEARCH_WORDS {
        return Err(format!(
            "the search has {} different words; at most {MAX_SEARCH_WORDS} are searched for",
            words.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_secrets_have_a_minimum_length() {
        assert!(new_secret_problem("password", "   ", 10)
            .unwrap()
            .contains("empty"));
        let short = new_secret_problem("passphrase", "täglich", 10).unwrap();
        assert!(
            short.contains("7 characters") && short.contains("at least 10"),
            "{short}"
        );
        assert_eq!(new_secret_problem("password", "ten chars!", 10), None);
    }

    #[test]
    fn search_queries_are_bounded_in_words_and_bytes() {
        let words = |n: usize| {
            (0..n)
                .map(|i| format!("w{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(check_search_query(&words(MAX_SEARCH_WORDS)), Ok(()));
        let e = check_search_query(&words(MAX_SEARCH_WORDS + 1)).unwrap_err();
        assert!(e.contains("at most 16"), "{e}");
        // Repeats are one word.
        assert_eq!(check_search_query(&"lunch ".repeat(40)), Ok(()));
        let e = check_search_query(&"x".repeat(MAX_SEARCH_BYTES + 1)).unwrap_err();
        assert!(e.contains("at most 256 bytes"), "{e}");
        assert_eq!(
            check_search_query(&"é".repeat(MAX_SEARCH_BYTES / 2)),
            Ok(())
        );
    }
}
