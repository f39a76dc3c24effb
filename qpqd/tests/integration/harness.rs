//! The test kit's server and `qpqd` daemons, under the names these tests
//! use; the fixtures themselves live in `quicproquo-testkit`.

use std::path::Path;

use quicproquo_protocol::ipc::client::Subscription;
use quicproquo_protocol::ipc::methods::{method, SearchParams};
use quicproquo_protocol::ipc::notifications::Notification;
use quicproquo_protocol::ipc::values::Message;
use quicproquo_protocol::paths::Paths;
use quicproquo_testkit::WAIT;
pub use quicproquo_testkit::{TestDaemon as Daemon, TestServer as Server};

/// The binary cargo built for these tests (the daemons the test kit starts
/// run the same file).
pub const QPQD: &str = env!("CARGO_BIN_EXE_qpqd");

/// The profile's paths in a daemon's home.
pub fn paths_for(home: &Path) -> Paths {
    quicproquo_testkit::home::paths(home).unwrap()
}

/// The first notification `pick` accepts, within [`WAIT`]; `what` names it
/// when none comes.
pub async fn next_matching<T>(
    what: &str,
    events: &mut Subscription,
    mut pick: impl FnMut(Notification) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(t) = pick(events.next().await.unwrap()) {
                return t;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: no such notification within {WAIT:?}"))
}

/// What `d`'s `search` finds for `words` across its conversations.
pub async fn search(d: &Daemon, words: &str) -> Vec<Message> {
    d.client
        .request::<method::Search>(SearchParams {
            query: words.into(),
            conversation: None,
            limit: Default::default(),
            offset: 0,
        })
        .await
        .unwrap()
}
