//! qpq-tui: the full-screen quicproquo chat, a front-end of `qpqd`.
//!
//! The Elm architecture (see docs/src/contributing/architecture.md):
//! [`app::App`] is the whole state,
//! [`action::Action`] everything that can happen, [`update::update`] the only
//! place state changes (returning [`action::Effect`]s instead of doing I/O),
//! and [`render::render`] draws the state without side effects. The
//! [`event_loop`] owns the terminal, drains a batch of actions and draws
//! once; the [`worker`] owns the IPC connection and reports results and the
//! daemon's notifications as actions on the same channel.
//!
//! Also here: the editor ([`input`]), slash commands and completion
//! ([`commands`]), width-aware wrapping ([`wrap`]), the per-conversation
//! history window ([`timeline`], [`scroll`]), configuration ([`config`]),
//! and terminal setup and restore ([`terminal`]). Attachments: paths,
//! completion and pasted files ([`attach`]), image previews ([`preview`]). The one-command demo,
//! `qpq-demo`, is a crate of its own that uses this one as a library.

pub mod action;
pub mod app;
pub mod attach;
pub mod commands;
pub mod config;
pub mod event_loop;
pub mod graphics;
pub mod input;
pub mod preview;
pub mod render;
pub mod scroll;
pub mod terminal;
#[cfg(test)]
mod testing;
pub mod timeline;
pub mod update;
pub mod worker;
pub mod wrap;
