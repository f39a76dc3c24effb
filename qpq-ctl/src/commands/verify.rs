//! `verify`: the safety number two users compare out of band, and marking
//! a key verified once they match.

use quicproquo_protocol::ipc::methods::{method, VerifyParams};

use crate::cli::VerifyArgs;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{sanitize_line, Out, Paint};
use crate::session::Session;

pub async fn run(session: &Session, out: &mut Out, args: VerifyArgs) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let r = client
        .request::<method::Verify>(VerifyParams {
            username: args.username,
            confirm: args.confirm,
            safety_number: args.safety_number,
            conversation: args.conversation,
        })
        .await?;
    if out.is_json() {
        out.json(&r)?;
        return Ok(Exit::Ok);
    }
    let style = out.style();
    let user = sanitize_line(&r.username);
    let mut text = format!("safety number with {}:\n", style.paint(Paint::Name, &user));
    // Twelve groups of five digits: three lines of four, easy to read aloud.
    let groups: Vec<&str> = r.safety_number.split_whitespace().collect();
    for line in groups.chunks(4) {
        text.push_str("    ");
        text.push_str(&style.paint(Paint::Bold, &line.join(" ")));
        text.push('\n');
    }
    if !r.matches_directory {
        text.push_str(&style.paint(
            Paint::Warn,
            &format!(
                "this is not the key the server lists for {user}: someone else holds this name \
                 in that conversation. Do not trust it; it cannot be marked verified."
            ),
        ));
        text.push('\n');
    }
    if r.key_changed {
        text.push_str(&style.paint(
            Paint::Warn,
            &format!("{user}'s identity key changed since you first saw it."),
        ));
        text.push('\n');
    }
    if r.verified {
        text.push_str(&format!(
            "verified: {user}'s current key is marked verified\n"
        ));
    } else {
        text.push_str(&format!(
            "not verified: compare this number with {user} in person or on a call; \
             if it matches, run `qpq-ctl verify {user} --confirm --safety-number \"{}\"`\n",
            r.safety_number
        ));
    }
    out.write(&text)?;
    Ok(Exit::Ok)
}
