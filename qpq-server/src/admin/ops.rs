//! What each admin request does: store calls, then this node's session
//! cache is told at once (the store's `Change::Account` reaches the other
//! nodes, and this one again, moments later), so the user's next request
//! on this node is already refused.

use quicproquo_protocol::types::Username;

use super::wire::{AdminError, AdminRequest, AdminResponse, QueueRow, UserRow, MAX_PAGE};
use crate::auth::Auth;
use crate::service::Now;
use crate::store::{AccountSummary, Change, Store, StoreError};

/// Answers one request. Every change is logged with the account's name.
pub async fn handle<S: Store>(
    store: &S,
    auth: &Auth,
    request: AdminRequest,
    now: Now,
) -> AdminResponse {
    match run(store, auth, request, now).await {
        Ok(answer) => answer,
        Err(Refused::UnknownUser(name)) => {
            AdminResponse::error(AdminError::UnknownUser, format!("no such user: {name}"))
        }
        Err(Refused::Store(e)) => {
            tracing::error!(error = %e, "admin request failed in the store");
            AdminResponse::error(
                AdminError::Internal,
                "the database failed; the server's log has the details",
            )
        }
    }
}

enum Refused {
    UnknownUser(String),
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::Store(e)
    }
}

async fn run<S: Store>(
    store: &S,
    auth: &Auth,
    request: AdminRequest,
    now: Now,
) -> Result<AdminResponse, Refused> {
    match request {
        AdminRequest::Users { after, limit } => {
            let after = match after {
                // A name that is not a valid username sorts somewhere among
                // them all the same; paging from it would need the store to
                // take any string, so such a cursor starts from the top.
                Some(a) => Username::parse(&a).ok(),
                None => None,
            };
            let limit = limit.clamp(1, MAX_PAGE);
            let page = store.accounts(after, limit, now.unix_ms).await?;
            let next = (page.len() == limit as usize)
                .then(|| page.last().map(|a| a.username.as_str().to_owned()))
                .flatten();
            Ok(AdminResponse::Users {
                users: page.into_iter().map(user_row).collect(),
                next,
            })
        }
        AdminRequest::Disable { user } => {
            let name = existing(store, &user).await?;
            if !store.set_disabled(&name, true, now.unix_ms).await? {
                return Err(Refused::UnknownUser(user));
            }
            auth.forget(&Change::Account(name.clone()));
            tracing::info!(user = %name, "admin: account disabled, its sessions ended");
            Ok(done(name, None))
        }
        AdminRequest::Enable { user } => {
            let name = parse(&user)?;
            if !store.set_disabled(&name, false, now.unix_ms).await? {
                return Err(Refused::UnknownUser(user));
            }
            tracing::info!(user = %name, "admin: account enabled");
            Ok(done(name, None))
        }
        AdminRequest::Delete { user } => {
            let name = existing(store, &user).await?;
            store.delete_account(&name, now.unix_ms).await?;
            auth.forget(&Change::Account(name.clone()));
            tracing::info!(user = %name, "admin: account deleted, its name retired");
            Ok(done(name, None))
        }
        AdminRequest::RevokeSessions { user } => {
            let name = existing(store, &user).await?;
            let sessions_ended = store.end_sessions(&name).await?;
            auth.forget(&Change::Account(name.clone()));
            tracing::info!(user = %name, sessions_ended, "admin: sessions revoked");
            Ok(done(name, Some(sessions_ended)))
        }
        AdminRequest::Queues { top } => {
            let sizes = store.mailbox_sizes(top.clamp(1, MAX_PAGE)).await?;
            Ok(AdminResponse::Queues {
                queues: sizes
                    .into_iter()
                    .map(|m| QueueRow {
                        username: m.username.as_str().to_owned(),
                        mail_count: m.mail_count,
                        mail_bytes: m.mail_bytes,
                    })
                    .collect(),
            })
        }
    }
}

/// An invalid username names no account.
fn parse(user: &str) -> Result<Username, Refused> {
    Username::parse(user).map_err(|_| Refused::UnknownUser(user.to_owned()))
}

async fn existing<S: Store>(store: &S, user: &str) -> Result<Username, Refused> {
    let name = parse(user)?;
    match store.account(&name).await? {
        Some(_) => Ok(name),
        None => Err(Refused::UnknownUser(user.to_owned())),
    }
}

fn done(name: Username, sessions_ended: Option<u32>) -> AdminResponse {
    AdminResponse::Done {
        user: name.as_str().to_owned(),
        sessions_ended,
    }
}

fn user_row(a: AccountSummary) -> UserRow {
    UserRow {
        username: a.username.as_str().to_owned(),
        identity_key: hex::encode(a.identity_key.0),
        created_at_ms: a.created_at_ms,
        disabled: a.disabled,
        sessions: a.sessions,
        mail_count: a.mail_count,
        mail_bytes: a.mail_bytes,
        key_packages: a.key_packages,
    }
}
