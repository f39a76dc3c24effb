//! Paging `history` and `search`. An answer holds at most
//! [`MAX_REPLY_BYTES`](crate::ipc::MAX_REPLY_BYTES) of messages, so a page
//! with fewer messages than asked for is not the end: these ask again
//! (`before` the oldest message, or `offset` past the matches so far) until
//! they have what was wanted or a page comes back empty. Every front-end
//! pages through here, so none mistakes a page cut short for the start of a
//! conversation.

use super::{CallError, IpcClient};
use crate::ipc::methods::{method, HistoryParams, SearchParams};
use crate::ipc::values::{ConversationRef, Limit, Message, MessageId};

/// What [`IpcClient::history_pages`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// Oldest first.
    pub messages: Vec<Message>,
    /// The start of the conversation was reached: nothing is older.
    pub complete: bool,
}

impl IpcClient {
    /// Up to `want` of the newest messages of `conversation` before `before`
    /// (or the newest of all), oldest first, in as many calls as it takes.
    pub async fn history_pages(
        &self,
        conversation: &ConversationRef,
        mut before: Option<MessageId>,
        want: usize,
    ) -> Result<HistoryPage, CallError> {
        let mut messages: Vec<Message> = Vec::new();
        while messages.len() < want {
            let mut page = self
                .request::<method::History>(HistoryParams {
                    conversation: conversation.clone(),
                    before,
                    limit: limit(want - messages.len()),
                })
                .await?;
            let Some(oldest) = page.first() else {
                return Ok(HistoryPage {
                    messages,
                    complete: true,
                });
            };
            before = Some(oldest.id);
            page.append(&mut messages);
            messages = page;
        }
        Ok(HistoryPage {
            messages,
            complete: false,
        })
    }

    /// Up to `want` of the best matches for `query`, best first, in as many
    /// calls as it takes.
    pub async fn search_pages(
        &self,
        query: &str,
        conversation: Option<&ConversationRef>,
        want: usize,
    ) -> Result<Vec<Message>, CallError> {
        let mut found: Vec<Message> = Vec::new();
        while found.len() < want {
            let page = self
                .request::<method::Search>(SearchParams {
                    query: query.to_owned(),
                    conversation: conversation.cloned(),
                    limit: limit(want - found.len()),
                    offset: u32::try_from(found.len()).unwrap_or(u32::MAX),
                })
                .await?;
            if page.is_empty() {
                break;
            }
            found.extend(page);
        }
        Ok(found)
    }
}

/// `n` as a page size: at most [`Limit::MAX`], at least one.
fn limit(n: usize) -> Limit {
    let n = u16::try_from(n).unwrap_or(Limit::MAX).clamp(1, Limit::MAX);
    Limit::new(n).unwrap_or_default()
}
