//! `invites`, `accept`, `decline` and `auto-accept`: who may put you into a
//! conversation. Invitations wait for your answer unless `auto-accept`
//! says that inviter needs no asking.

use quicproquo_protocol::ipc::methods::{
    method, AutoAcceptParams, DeclineParams, InvitationParams, NoParams,
};
use quicproquo_protocol::ipc::values::{AutoAccept, Invitation, InvitationId};

use super::conversations::{member_table, print_conversation};
use super::word;
use crate::error::CtlError;
use crate::exit::Exit;
use crate::output::{local_time, sanitize_line, Out, Paint};
use crate::session::Session;

pub async fn list(session: &Session, out: &mut Out) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let invites = client.request::<method::Invites>(NoParams {}).await?;
    if out.is_json() {
        out.json(&invites)?;
        return Ok(Exit::Ok);
    }
    if invites.is_empty() {
        out.line("no invitations waiting")?;
        return Ok(Exit::Ok);
    }
    for inv in &invites {
        print_invitation(out, inv)?;
    }
    Ok(Exit::Ok)
}

fn print_invitation(out: &mut Out, inv: &Invitation) -> Result<(), CtlError> {
    let style = out.style();
    out.line(&format!(
        "{}  {} invites you to {} ({}, {})",
        style.paint(Paint::Bold, &inv.id.to_hex()),
        style.paint(Paint::Name, &sanitize_line(&inv.from)),
        sanitize_line(&inv.name),
        word(&inv.kind),
        local_time(inv.received_ms),
    ))?;
    if inv.members.iter().any(|m| m.key_changed) {
        out.line(&style.paint(
            Paint::Warn,
            "  a member holds a key other than the one you know for that name (CHANGED below)",
        ))?;
    }
    out.write(&member_table(&inv.members).render(&style))?;
    out.line("")
}

pub async fn accept(session: &Session, out: &mut Out, id: InvitationId) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let c = client
        .request::<method::Accept>(InvitationParams { id })
        .await?;
    print_conversation(out, &c)
}

pub async fn decline(
    session: &Session,
    out: &mut Out,
    id: InvitationId,
    reason: Option<String>,
) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    client
        .request::<method::Decline>(DeclineParams { id, reason })
        .await?;
    if out.is_json() {
        out.json(&serde_json::json!({ "declined": id }))?;
    } else {
        out.line("declined; the group was told")?;
    }
    Ok(Exit::Ok)
}

pub async fn auto_accept(
    session: &Session,
    out: &mut Out,
    mode: Option<AutoAccept>,
) -> Result<Exit, CtlError> {
    let client = session.connect().await?;
    let r = client
        .request::<method::AutoAcceptSetting>(AutoAcceptParams { mode })
        .await?;
    if out.is_json() {
        out.json(&r)?;
    } else {
        out.line(&word(&r.mode))?;
    }
    Ok(Exit::Ok)
}
