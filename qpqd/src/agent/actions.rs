//! Actions on messages (issue 17): replies, reactions, edits, deletes —
//! sent from the IPC methods and received from members. Each is bound to
//! the message it names by (sender, id) (`payload::MessageRef`); only a
//! message's sender edits or deletes it. An action whose `type` or version
//! this build does not know is shown as "(unsupported message: …)".

use super::inbox::{notice, Stored};
use crate::core::{Core, CoreError};
use crate::db::conversations::Conversation;
use crate::db::Id;
use crate::payload::{Action, Envelope, Known};
use quicproquo_protocol::types::Username;

/// An action `sender` sent in `conv` as a text with an envelope: `id` is
/// the action's own id, `fallback` the text older daemons show.
pub(super) fn received(
    c: &mut Core,
    conv: &Conversation,
    sender: &Username,
    id: Id,
    ts: u64,
    fallback: String,
    x: &Envelope,
) -> Result<Stored, CoreError> {
    let _ = (id, ts);
    match x.action() {
        Ok(Known::Yes(Action::Timer { seconds })) => {
            super::privacy::timer_received(c, conv, sender, id, seconds)
        }
        // Issue 17 (actions helper): reactions, edits and deletes land here.
        Ok(Known::Yes(_)) | Ok(Known::Unsupported(_)) => notice(
            c,
            conv,
            format!("{sender}: (unsupported message: {fallback})"),
        ),
        Err(e) => {
            tracing::info!(error = %e, "ignored a malformed action");
            Ok(Stored::default())
        }
    }
}
