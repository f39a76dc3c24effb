//! `passwd` and `account delete`: a new password for this profile's account,
//! and deleting the account (on the server, then the profile).
//!
//! Both prove the current password to the server (the daemon runs a login
//! for it). Deleting asks, besides the password, for the account's username
//! typed out (or `--confirm USERNAME` in scripts): one mistyped command must
//! not delete an account.

use std::io::BufRead;

use quicproquo_protocol::ipc::methods::{
    method, AccountDeleteParams, NoParams, PasswordChangeParams,
};
use quicproquo_protocol::ipc::values::Secret;
use quicproquo_protocol::limits::MIN_PASSWORD_CHARS;

use crate::cli::{AccountDeleteArgs, PasswdArgs};
use crate::error::CtlError;
use crate::exit::Exit;
use crate::input::{blocking, check_new_secret, prompt_secret, read_secret_line};
use crate::output::{sanitize_line, Out};
use crate::session::Session;

pub async fn passwd(session: &Session, out: &mut Out, args: PasswdArgs) -> Result<Exit, CtlError> {
    // Asked before anything is changed; a cancelled prompt changes nothing.
    let (current, new) = if args.password_stdin {
        blocking(|| {
            let mut stdin = std::io::stdin().lock();
            let current = read_secret_line(&mut stdin, "current password")?;
            let new = read_secret_line(&mut stdin, "new password")?;
            check_new_secret("new password", &new, MIN_PASSWORD_CHARS)?;
            Ok((current, new))
        })
        .await?
    } else {
        blocking(|| {
            let current = prompt_secret("current password", None)?;
            eprintln!(
                "Choose a new password (at least {MIN_PASSWORD_CHARS} characters). Your other \
                 logged-in devices are logged out; log them in again with it."
            );
            let new = prompt_secret("new password", Some(MIN_PASSWORD_CHARS))?;
            Ok((current, new))
        })
        .await?
    };
    let client = session.connect().await?;
    let done = client
        .request::<method::AccountPassword>(PasswordChangeParams {
            current_password: current,
            new_password: new,
        })
        .await?;
    if out.is_json() {
        out.json(&done)?;
    } else {
        out.line("password changed; every other session of the account was ended")?;
    }
    Ok(Exit::Ok)
}

pub async fn delete(
    session: &Session,
    out: &mut Out,
    args: AccountDeleteArgs,
) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let me = client.request::<method::Whoami>(NoParams {}).await?;
    let name = me.username.clone();
    let (typed, password) = match args.confirm {
        Some(typed) => {
            let password = if args.password_stdin {
                blocking(|| read_secret_line(std::io::stdin().lock(), "password")).await?
            } else {
                blocking(|| prompt_secret("password", None)).await?
            };
            (typed, password)
        }
        None if args.password_stdin => {
            return Err(CtlError::Usage(format!(
                "with --password-stdin, confirm with --confirm {}",
                sanitize_line(&name)
            )))
        }
        None => {
            eprintln!(
                "This deletes the account `{}` on {}: its messages waiting on the server, its \
                 key packages and sessions, and then this profile (profile `{}`) with its \
                 history. The name cannot be registered again. It cannot be undone.",
                sanitize_line(&name),
                sanitize_line(&me.server),
                session.paths().profile
            );
            blocking(move || -> Result<(String, Secret), CtlError> {
                eprint!("Type the username to confirm: ");
                let mut typed = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut typed)
                    .map_err(|e| CtlError::io("reading the confirmation", e))?;
                let typed = typed.trim_end_matches(['\r', '\n']).to_owned();
                let password = prompt_secret("password", None)?;
                Ok((typed, password))
            })
            .await?
        }
    };
    if typed != name {
        return Err(CtlError::Input(format!(
            "the confirmation `{}` is not the account's username `{}`; nothing was deleted",
            sanitize_line(&typed),
            sanitize_line(&name)
        )));
    }
    let done = client
        .request::<method::AccountDelete>(AccountDeleteParams { password })
        .await?;
    if out.is_json() {
        out.json(&done)?;
    } else {
        out.line(&format!(
            "account `{}` deleted; profile `{}` is removed as qpqd stops",
            sanitize_line(&name),
            session.paths().profile
        ))?;
    }
    Ok(Exit::Ok)
}
