//! What the server lets in before it knows who is asking: connections per
//! source address, and the bytes of requests it holds in memory.
//!
//! A connection starts as a stranger's. Until a login or `authenticate`
//! succeeds on it ([`ConnectionBudget::bind`]), a request is read only up to
//! [`MAX_REQUEST_BYTES_BEFORE_LOGIN`], few streams may be open and QUIC's
//! flow-control window is small, so a stranger costs well under a megabyte
//! however many streams it opens. Once bound, requests up to
//! [`MAX_REQUEST_BYTES`] are read, but every connection's request bytes in
//! flight draw on its own budget and on one budget for the whole server: a
//! request that would exceed either is refused with E004 at once rather than
//! waited for (two half-read requests waiting for each other's bytes would
//! otherwise hold their streams until the read timeout).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quicproquo_protocol::errors::{ErrorCode, WireError};
use quicproquo_protocol::limits::{MAX_REQUEST_BYTES, MAX_REQUEST_BYTES_BEFORE_LOGIN};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::NetworkLimits;
use crate::ratelimit::address_group;

/// How long a client refused for a full budget is told to wait: requests in
/// flight finish in milliseconds on a healthy server.
const BUSY_RETRY: Duration = Duration::from_millis(200);

/// Live connections per source address group (an IPv6 prefix, or one IPv4
/// address). Entries exist only while a connection does, so the map is
/// bounded by `max_connections`.
pub struct ConnectionsPerAddress {
    cap: usize,
    v6_prefix: u8,
    live: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection's place under its address's cap; freed on drop.
pub struct AddressSlot {
    group: IpAddr,
    live: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionsPerAddress {
    pub fn new(limits: &NetworkLimits) -> Self {
        Self {
            cap: limits.max_connections_per_address as usize,
            v6_prefix: limits.ipv6_prefix_len,
            live: Arc::default(),
        }
    }

    /// A slot for a connection from `peer`, or `None` when its address group
    /// is at the cap.
    pub fn admit(&self, peer: IpAddr) -> Option<AddressSlot> {
        let group = address_group(peer, self.v6_prefix);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let n = live.entry(group).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            group,
            live: self.live.clone(),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = live.get_mut(&self.group) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.group);
            }
        }
    }
}

/// Concurrent streams of a stranger: never more than a bound connection's.
fn stranger_streams(limits: &NetworkLimits, max_streams: u32) -> u32 {
    limits.streams_before_login.min(max_streams)
}

/// The transport settings of a connection nobody has logged in on yet;
/// `max_streams` is a bound connection's stream limit.
pub fn stranger_transport(
    limits: &NetworkLimits,
    max_streams: u32,
    t: &mut quinn::TransportConfig,
) {
    t.max_concurrent_bidi_streams(stranger_streams(limits, max_streams).into());
    t.max_concurrent_uni_streams(0u32.into());
    // QUIC buffers what a peer sends up to the flow-control window whether
    // or not the server reads it: one stranger's request is all it may send
    // ahead.
    t.receive_window(stranger_window());
}

fn stranger_window() -> quinn::VarInt {
    quinn::VarInt::from_u32(MAX_REQUEST_BYTES_BEFORE_LOGIN as u32)
}

/// One connection's request bytes in flight and whether it is bound to a
/// session.
pub struct ConnectionBudget {
    bound: AtomicBool,
    bytes: Arc<Semaphore>,
    server: Arc<Semaphore>,
    full: usize,
    stranger: usize,
    streams: u32,
}

impl ConnectionBudget {
    /// `server` is the budget all connections share; `max_streams` is a
    /// bound connection's stream limit.
    pub fn new(limits: &NetworkLimits, max_streams: u32, server: Arc<Semaphore>) -> Self {
        Self {
            bound: AtomicBool::new(false),
            bytes: Arc::new(Semaphore::new(stranger_budget(limits, max_streams))),
            server,
            full: limits.connection_request_bytes,
            stranger: stranger_budget(limits, max_streams),
            streams: max_streams,
        }
    }

    pub fn is_bound(&self) -> bool {
        self.bound.load(Ordering::Acquire)
    }

    /// Lifts the stranger's limits on `conn` (once; later calls do nothing).
    pub fn bind(&self, conn: &quinn::Connection) {
        if self.bound.swap(true, Ordering::AcqRel) {
            return;
        }
        // Permits held by requests in flight come back on their own: add
        // only the difference between the two budgets.
        self.bytes
            .add_permits(self.full.saturating_sub(self.stranger));
        conn.set_max_concurrent_bi_streams(self.streams.into());
        // The flow-control window matches the budget: no more is buffered
        // than may be held.
        conn.set_receive_window(
            quinn::VarInt::from_u64(self.full as u64).unwrap_or(quinn::VarInt::MAX),
        );
    }

    /// Reads one request from `recv` within the limits that apply now; the
    /// permit holds its bytes against the budgets until dropped.
    pub async fn read(&self, recv: &mut quinn::RecvStream) -> Result<Request, Refusal> {
        let mut body = Vec::new();
        let mut held: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> = None;
        loop {
            let cap = if self.is_bound() {
                MAX_REQUEST_BYTES
            } else {
                MAX_REQUEST_BYTES_BEFORE_LOGIN
            };
            let room = (cap + 1).saturating_sub(body.len());
            let chunk = match recv.read_chunk(room, true).await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => return Err(Refusal::Lost(e.to_string())),
            };
            if body.len() + chunk.bytes.len() > cap {
                return Err(Refusal::Answer(too_large(self.is_bound())));
            }
            let n = u32::try_from(chunk.bytes.len()).unwrap_or(u32::MAX);
            let mine = self.bytes.clone().try_acquire_many_owned(n);
            let all = self.server.clone().try_acquire_many_owned(n);
            let (Ok(mine), Ok(all)) = (mine, all) else {
                return Err(Refusal::Answer(WireError {
                    message: "too many request bytes are in flight on this connection or \
                              server; retry after the given delay"
                        .into(),
                    ..WireError::rate_limited(BUSY_RETRY.as_millis() as u32)
                }));
            };
            held = Some(match held {
                Some((mut a, mut b)) => {
                    a.merge(mine);
                    b.merge(all);
                    (a, b)
                }
                None => (mine, all),
            });
            body.extend_from_slice(&chunk.bytes);
        }
        Ok(Request {
            bytes: body,
            _held: held,
        })
    }
}

/// A request's bytes and their hold on the budgets.
pub struct Request {
    pub bytes: Vec<u8>,
    _held: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

/// Why a request was not read.
pub enum Refusal {
    /// Answer with this error (the rest of the stream is not read).
    Answer(WireError),
    /// The stream or connection failed; nobody to answer.
    Lost(String),
}

/// A stranger may hold a few requests' worth: its streams are few and its
/// requests small.
fn stranger_budget(limits: &NetworkLimits, max_streams: u32) -> usize {
    stranger_streams(limits, max_streams) as usize * MAX_REQUEST_BYTES_BEFORE_LOGIN
}

fn too_large(bound: bool) -> WireError {
    let message = if bound {
        format!("requests are at most {MAX_REQUEST_BYTES} bytes")
    } else {
        format!(
            "before a login or `authenticate` on this connection, requests are at most \
             {MAX_REQUEST_BYTES_BEFORE_LOGIN} bytes"
        )
    };
    WireError::new(ErrorCode::TooLarge, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_freed_on_drop_and_groups_share_a_cap() {
        let limits = NetworkLimits {
            max_connections_per_address: 2,
            ..NetworkLimits::default()
        };
        let cap = ConnectionsPerAddress::new(&limits);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let one = cap.admit(a).unwrap();
        let _two = cap.admit(b).unwrap();
        assert!(cap.admit(a).is_none(), "same /64: at the cap");
        assert!(cap.admit(other).is_some(), "another /64 is not");
        drop(one);
        assert!(cap.admit(b).is_some(), "a closed connection frees its slot");
        assert!(cap.live.lock().unwrap().len() <= 2);
    }
}
