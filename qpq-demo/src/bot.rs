//! demo-peer's side of the conversation: a greeting in each conversation,
//! then an answer to every message it receives, sent through its own agent
//! (so each answer is decrypted and re-encrypted for real).

use std::time::Duration;

use quicproquo_protocol::ipc::client::{IpcClient, Subscription};
use quicproquo_protocol::ipc::methods::{method, SendParams};
use quicproquo_protocol::ipc::values::{ConversationId, ConversationRef};
use quicproquo_protocol::ipc::Notification;

use crate::stack::PEER;

pub const DM_GREETING: &str = "Hi, I'm demo-peer, a bot on the other end of a real \
     post-quantum MLS channel. Write me something and I'll answer. F1 shows the keys.";
pub const GROUP_GREETING: &str = "Welcome to #demo, a group of two. Try /members, /rekey, \
     /search, or /group create name demo-peer.";

/// A pause before each answer, so it reads like one.
const THINKING: Duration = Duration::from_millis(300);

/// Sends `text` to `conversation`; a failed send only costs the demo a line.
pub async fn say(pc: &IpcClient, conversation: ConversationId, text: &str) {
    let _ = pc
        .request::<method::Send>(SendParams {
            conversation: ConversationRef::Id(conversation),
            text: text.to_owned(),
            confirm_changed_keys: false,
            reply_to: None,
        })
        .await;
}

/// The peer's answer to `text`.
pub fn reply_to(text: &str) -> String {
    let t = text.trim();
    let lower = t.to_lowercase();
    if lower == "hi" || lower == "hello" || lower.starts_with("hello ") || lower.starts_with("hi ")
    {
        return "Hello! This reply was decrypted and re-encrypted by my own agent.".to_owned();
    }
    let reversed: String = t.chars().rev().collect();
    let words = t.split_whitespace().count();
    format!(
        "Got your {words} word{}: “{t}”. Backwards: “{reversed}”.",
        if words == 1 { "" } else { "s" }
    )
}

/// Answers every message the peer receives, until the agent goes away.
pub async fn answer(pc: IpcClient, mut sub: Subscription) {
    while let Ok(n) = sub.next().await {
        let Notification::Message(m) = n else {
            continue;
        };
        let m = m.message;
        if m.outgoing || m.sender == PEER {
            continue;
        }
        tokio::time::sleep(THINKING).await;
        say(&pc, m.conversation, &reply_to(&m.text)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bot_answers_with_a_twist() {
        assert!(reply_to("hello").starts_with("Hello!"));
        let r = reply_to("abc def");
        assert!(r.contains("2 words") && r.contains("fed cba"), "{r}");
        assert!(reply_to("日本").contains("本日"));
    }
}
