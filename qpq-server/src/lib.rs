//! qpq-server: OPAQUE accounts, key packages, delivery queues and DM channels
//! over QUIC. The binary (`main.rs`) parses configuration and calls
//! [`server::start`]; tests and benches start the same server in-process.
//!
//! Layers, from the wire in: `server` (QUIC driver) → `service` (request
//! dispatch, no I/O) → `auth` / `directory` / `delivery` (the rules) →
//! `store` (persistence).

pub mod admin;
pub mod admission;
pub mod auth;
pub mod banner;
pub mod blobs;
pub mod cache;
pub mod config;
pub mod delivery;
pub mod directory;
pub mod groups;
pub mod key_package;
pub mod lock;
pub mod metrics;
pub mod ops;
pub mod ratelimit;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;
