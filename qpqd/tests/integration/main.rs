//! qpqd end to end: a real qpq-server on loopback (in-process), daemons as
//! real `qpqd` processes, driven through the same IPC client the front-ends
//! use. One test binary for the crate.

// Test helpers outside #[test] fns may unwrap: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod actions;
mod attachments;
mod consent;
mod conversations;
mod crash;
mod defences;
mod failover;
mod faults;
mod harness;
mod integrity;
mod interop;
mod legacy;
mod load;
mod notify;
mod outbox;
mod privacy;
mod promises;
mod robustness;
mod trips;
mod trust;
