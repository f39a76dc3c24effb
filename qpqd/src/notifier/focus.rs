//! Which conversations front-ends are showing (`focus`): one entry per IPC
//! connection, removed when the connection closes (its [`FocusSlot`] is
//! dropped with the connection's handler), so a front-end that crashed
//! does not silence a conversation for good.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use quicproquo_protocol::ipc::values::ConversationId;

/// Every connection's focused conversation.
#[derive(Default)]
pub struct Focus {
    by_connection: Mutex<HashMap<u64, ConversationId>>,
    next: AtomicU64,
}

impl Focus {
    /// A new connection's place in the table (empty until it says `focus`).
    pub fn slot(self: &Arc<Self>) -> FocusSlot {
        FocusSlot {
            focus: Arc::clone(self),
            id: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether some front-end shows `conversation` now.
    pub fn shown(&self, conversation: &ConversationId) -> bool {
        self.table().values().any(|c| c == conversation)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, ConversationId>> {
        self.by_connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's focus; cleared when dropped.
pub struct FocusSlot {
    focus: Arc<Focus>,
    id: u64,
}

impl FocusSlot {
    /// The conversation this connection shows now (`None`: none).
    pub fn set(&self, conversation: Option<ConversationId>) {
        let mut table = self.focus.table();
        match conversation {
            Some(c) => table.insert(self.id, c),
            None => table.remove(&self.id),
        };
    }
}

impl Drop for FocusSlot {
    fn drop(&mut self) {
        self.focus.table().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_focus_lasts_as_long_as_its_connection() {
        let focus = Arc::new(Focus::default());
        let (team, dm) = (ConversationId([1; 16]), ConversationId([2; 16]));
        let tui = focus.slot();
        let other = focus.slot();
        tui.set(Some(team));
        other.set(Some(team));
        assert!(focus.shown(&team) && !focus.shown(&dm));
        other.set(Some(dm));
        assert!(focus.shown(&team) && focus.shown(&dm));
        drop(tui);
        assert!(!focus.shown(&team), "closing the connection clears it");
        other.set(None);
        assert!(!focus.shown(&dm));
    }
}
