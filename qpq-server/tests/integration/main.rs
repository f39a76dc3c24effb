//! Integration tests: real QUIC on loopback, real SQLite files, the Rust
//! client qpqd uses. One test binary for the crate (link time on 2 cores).

// Test helpers outside #[test] fns may unwrap: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod accounts;
mod admin;
mod admission;
mod binary;
mod blobs;
mod delivery;
mod groups;
mod harness;
mod interop;
mod nodes;
mod ops;
mod output;
mod postgres;
mod pq_tls;
mod robustness;
