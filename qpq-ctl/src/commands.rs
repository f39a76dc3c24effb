//! The commands, one module per group, each a function from parsed
//! arguments to output on [`Out`] and an exit status. They only call the
//! daemon through the shared IPC client; nothing here holds a secret longer
//! than one call.

use crate::cli::{AccountCommand, Cli, Command};
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{word, Out};
use crate::session::Session;

mod account;
mod account_changes;
mod actions;
mod attachments;
mod conversations;
mod daemon;
mod docs;
mod doctor;
mod export;
mod invites;
mod messages;
mod names;
mod recv;
mod settings;
mod verify;

/// Runs the command line's command.
pub async fn run(cli: Cli, out: &mut Out) -> Result<Exit, CtlError> {
    // The docs need no daemon, no paths and no environment: the session is
    // made only for the commands that talk to qpqd.
    let session = || Session::new(cli.profile.as_ref(), !cli.no_autostart);
    match cli.command {
        Command::Completions { shell } => docs::completions(out, shell),
        Command::Man { out_dir } => docs::man(out, out_dir.as_deref()),
        Command::Daemon(c) => daemon::run(&session()?, out, c).await,
        Command::Register(a) => {
            account::account(&session()?, out, a, account::Kind::Register).await
        }
        Command::Login(a) => account::account(&session()?, out, a, account::Kind::Login).await,
        Command::Logout => account::logout(&session()?, out).await,
        Command::Passwd(a) => account_changes::passwd(&session()?, out, a).await,
        Command::Account(AccountCommand::Delete(a)) => {
            account_changes::delete(&session()?, out, a).await
        }
        Command::Whoami => account::whoami(&session()?, out).await,
        Command::Status => account::status(&session()?, out).await,
        Command::Doctor => doctor::run(&session()?, out).await,
        Command::Unlock(a) => account::unlock(&session()?, out, a).await,
        Command::AckIntegrity => account::ack_integrity(&session()?, out).await,
        Command::List => conversations::list(&session()?, out).await,
        Command::Dm { username } => conversations::dm(&session()?, out, username).await,
        Command::Group(c) => conversations::group(&session()?, out, c).await,
        Command::Members { conversation } => {
            conversations::members(&session()?, out, conversation).await
        }
        Command::Send(a) => match a.file.clone() {
            Some(file) => attachments::send_file(&session()?, out, a, &file).await,
            None => messages::send(&session()?, out, a).await,
        },
        Command::Download(a) => attachments::download(&session()?, out, a).await,
        Command::React(a) => actions::react(&session()?, out, a).await,
        Command::Edit(a) => actions::edit(&session()?, out, a).await,
        Command::Delete(a) => actions::delete(&session()?, out, a).await,
        Command::Edits(a) => actions::edits(&session()?, out, a).await,
        Command::Mentions(a) => actions::mentions(&session()?, out, a).await,
        Command::Typing(a) => actions::typing(&session()?, out, a).await,
        Command::Read(a) => actions::read(&session()?, out, a).await,
        Command::Get(a) => settings::get(&session()?, out, a).await,
        Command::Set(a) => settings::set(&session()?, out, a).await,
        Command::History(a) => messages::history(&session()?, out, a).await,
        Command::Retry { message } => messages::retry(&session()?, out, message).await,
        Command::Discard { message } => messages::discard(&session()?, out, message).await,
        Command::Search(a) => messages::search(&session()?, out, a).await,
        Command::Recv(a) => recv::run(&session()?, out, a).await,
        Command::Verify(a) => verify::run(&session()?, out, a).await,
        Command::Invites => invites::list(&session()?, out).await,
        Command::Accept { id } => invites::accept(&session()?, out, id).await,
        Command::Decline { id, reason } => invites::decline(&session()?, out, id, reason).await,
        Command::AutoAccept { mode } => invites::auto_accept(&session()?, out, mode).await,
        Command::Export(a) => export::run(&session()?, out, a).await,
    }
}
