//! qpq-ctl end to end, at the shell's level: every test drives the real
//! `qpq-ctl` binary as separate processes (arguments, stdin, stdout, exit
//! status), against a real qpq-server on loopback and real `qpqd` daemons
//! that qpq-ctl starts itself. One test binary for the crate.

// Test helpers may unwrap: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod account_changes;
mod actions;
mod attachments;
mod bot;
mod daemon;
mod docs;
mod doctor;
mod errors;
mod export;
mod groups;
mod harness;
mod messaging;
