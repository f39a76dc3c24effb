//! `register`, `login`, `logout`, `whoami`, `status`, `unlock`,
//! `ack-integrity`: the account of this profile and the daemon's state.

use quicproquo_protocol::ipc::methods::{method, AccountParams, NoParams, UnlockParams};
use quicproquo_protocol::ipc::values::{IntegrityState, Secret};
use quicproquo_protocol::limits::{MIN_PASSPHRASE_CHARS, MIN_PASSWORD_CHARS};

use super::word;
use crate::cli::{AccountArgs, UnlockArgs};
use crate::error::CtlError;
use crate::exit::Exit;
use crate::input::{blocking, check_new_secret, prompt_secret, read_secret_line};
use crate::output::{sanitize_line, Out, Paint, Table};
use crate::session::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Register,
    Login,
}

/// The password or passphrase: from stdin's first line, else the terminal.
/// A `new` one (its shortest length given) must be long enough, and on a
/// terminal is asked twice.
async fn secret(
    from_stdin: bool,
    what: &'static str,
    new: Option<usize>,
) -> Result<Secret, CtlError> {
    if from_stdin {
        let s = blocking(move || read_secret_line(std::io::stdin().lock(), what)).await?;
        if let Some(min) = new {
            check_new_secret(what, &s, min)?;
        }
        Ok(s)
    } else {
        blocking(move || prompt_secret(what, new)).await
    }
}

pub async fn account(
    session: &Session,
    out: &mut Out,
    args: AccountArgs,
    kind: Kind,
) -> Result<Exit, CtlError> {
    // Ask before starting anything: a cancelled prompt leaves no daemon.
    let new = (kind == Kind::Register).then_some(MIN_PASSWORD_CHARS);
    if new.is_some() && !args.password_stdin {
        eprintln!(
            "Choose a password for {} (at least {MIN_PASSWORD_CHARS} characters). The server never \
             sees it; you need it to log in again.",
            sanitize_line(&args.username)
        );
    }
    let password = secret(args.password_stdin, "password", new).await?;
    let client = session.connect().await?;
    let server = args.server.clone();
    let params = AccountParams {
        server: args.server,
        server_fingerprint: args.server_fingerprint,
        username: args.username,
        password,
    };
    let account = match kind {
        Kind::Register => client.request::<method::Register>(params).await?,
        Kind::Login => client.request::<method::Login>(params).await?,
    };
    if out.is_json() {
        out.json(&account)?;
    } else {
        let style = out.style();
        let verb = match kind {
            Kind::Register => "registered",
            Kind::Login => "logged in as",
        };
        let mut t = Table::plain();
        t.row(["identity:", &account.identity.to_hex()]);
        out.line(&format!(
            "{verb} {} on {server}",
            style.paint(Paint::Name, &sanitize_line(&account.username))
        ))?;
        out.write(&t.render(&style))?;
    }
    Ok(Exit::Ok)
}

pub async fn logout(session: &Session, out: &mut Out) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let empty = client.request::<method::Logout>(NoParams {}).await?;
    if out.is_json() {
        out.json(&empty)?;
    } else {
        out.line(&format!(
            "logged out; the identity stays in profile `{}` (`qpq-ctl login` logs in again)",
            session.paths().profile
        ))?;
    }
    Ok(Exit::Ok)
}

pub async fn whoami(session: &Session, out: &mut Out) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let me = client.request::<method::Whoami>(NoParams {}).await?;
    let mut t = Table::plain();
    t.styled_row(vec![
        ("username:".into(), None),
        (me.username.clone(), Some(Paint::Name)),
    ]);
    t.row(["identity:", &me.identity.to_hex()]);
    t.row(["server:", &me.server]);
    out.table_or_json(t, &me)?;
    Ok(Exit::Ok)
}

pub async fn status(session: &Session, out: &mut Out) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let st = client.request::<method::Status>(NoParams {}).await?;
    let mut t = Table::plain();
    t.row(["profile:", &st.profile]);
    t.row([
        "account:",
        st.account.as_ref().map_or("none", |a| a.username.as_str()),
    ]);
    t.row(["server:", st.server.as_deref().unwrap_or("none")]);
    if let Some(node) = &st.node {
        t.row(["node:", node]);
    }
    t.row([
        "connection:",
        &with_detail(word(&st.connection), &st.connection_detail),
    ]);
    t.row(["keystore:", &word(&st.keystore)]);
    t.row(["ciphersuite:", &word(&st.ciphersuite)]);
    t.row(["outbox:", &st.outbox.to_string()]);
    t.row(["unread:", &st.unread.to_string()]);
    let integrity = match st.integrity_detail.as_str() {
        "" => word(&st.integrity),
        what => format!("{} ({})", word(&st.integrity), sanitize_line(what)),
    };
    t.row(["integrity:", &integrity]);
    t.row([
        "storage:",
        &with_detail(word(&st.storage), &st.storage_detail),
    ]);
    out.table_or_json(t, &st)?;
    // A damaged or rolled-back state is never a quiet success.
    Ok(if st.integrity == IntegrityState::Ok {
        Exit::Ok
    } else {
        Exit::Integrity
    })
}

/// `integrity.acknowledge`: the daemon re-keys every group, then sends again.
pub async fn ack_integrity(session: &Session, out: &mut Out) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let r = client
        .request::<method::IntegrityAcknowledge>(NoParams {})
        .await?;
    let mut t = Table::plain();
    t.row(["re-keyed:", &sanitize_line(&r.rekeyed.join(", "))]);
    for f in &r.failed {
        t.row([
            "not re-keyed:",
            &sanitize_line(&format!("{} ({})", f.conversation, f.reason)),
        ]);
    }
    out.table_or_json(t, &r)?;
    Ok(Exit::Ok)
}

/// A state word and, when there is one, the daemon's reason in brackets.
fn with_detail(state: String, why: &str) -> String {
    match why {
        "" => state,
        why => format!("{state} ({})", sanitize_line(why)),
    }
}

pub async fn unlock(session: &Session, out: &mut Out, args: UnlockArgs) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    // A fresh profile without a keyring: this passphrase creates the state.
    let new = client
        .request::<method::Status>(NoParams {})
        .await?
        .new_state
        .then_some(MIN_PASSPHRASE_CHARS);
    if new.is_some() && !args.passphrase_stdin {
        eprintln!(
            "No keyring found: choose a passphrase for this profile's state (at least \
             {MIN_PASSPHRASE_CHARS} characters). It encrypts everything qpqd keeps and cannot be \
             recovered: without it the state is lost."
        );
    }
    let passphrase = secret(args.passphrase_stdin, "passphrase", new).await?;
    let empty = client
        .request::<method::Unlock>(UnlockParams { passphrase })
        .await?;
    if out.is_json() {
        out.json(&empty)?;
    } else {
        out.line("unlocked")?;
    }
    Ok(Exit::Ok)
}
