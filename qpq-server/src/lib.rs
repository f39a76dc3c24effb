//! qpq-server: OPAQUE accounts, key packages, delivery queues and DM channels
//! over QUIC. The binary (`main.rs`) parses configuration and calls [`run`];
//! tests and benches start the same server in-process.

pub mod store;
