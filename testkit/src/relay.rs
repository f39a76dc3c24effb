//! A UDP relay in front of a server that a test can cut: from then on
//! nothing passes either way, and nothing is closed, so the server sees its
//! peers go silent as it would behind a dead network or a crashed machine
//! (a client process that exits still says goodbye), and a client sees its
//! server go silent as it would when the node died.
//!
//! Each client (source address) gets its own socket towards the server, as
//! behind a NAT, so a daemon's successive connections — each from a new
//! port — all pass. Two relays in front of one server stand for two nodes
//! of one deployment (`--server relay1,relay2`) for the failover tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::task::{JoinHandle, JoinSet};

/// Larger than any QUIC datagram.
const DATAGRAM: usize = 65_536;

/// Forwards datagrams between the clients that send to [`UdpRelay::addr`]
/// and the server, until [`UdpRelay::cut`].
pub struct UdpRelay {
    /// Where the client connects instead of the server.
    pub addr: SocketAddr,
    cut: Cut,
    task: JoinHandle<()>,
}

/// Which ways are cut; shared with the forwarding tasks.
#[derive(Clone, Default)]
struct Cut {
    /// Clients to server.
    up: Arc<AtomicBool>,
    /// Server to clients.
    down: Arc<AtomicBool>,
}

impl UdpRelay {
    /// A relay on a loopback port to `server`.
    pub async fn start(server: SocketAddr) -> std::io::Result<UdpRelay> {
        let front = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = front.local_addr()?;
        let cut = Cut::default();
        let task = tokio::spawn(forward(Arc::new(front), server, cut.clone()));
        Ok(UdpRelay { addr, cut, task })
    }

    /// A relay that was cut from the start: an address where nothing
    /// answers, as a node that is down (no ICMP either: the port is bound).
    pub async fn dead(server: SocketAddr) -> std::io::Result<UdpRelay> {
        let relay = Self::start(server).await?;
        relay.cut();
        Ok(relay)
    }

    /// Drops every datagram from now on, both ways.
    pub fn cut(&self) {
        self.cut_up();
        self.cut_down();
    }

    /// Drops what clients send from now on; the server's datagrams still
    /// pass (a request's answer arrives, the acknowledgement that follows
    /// it does not).
    pub fn cut_up(&self) {
        self.cut.up.store(true, Ordering::SeqCst);
    }

    /// Drops what the server sends from now on; the clients' datagrams
    /// still pass (a request arrives, its answer does not).
    pub fn cut_down(&self) {
        self.cut.down.store(true, Ordering::SeqCst);
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        // Its per-client tasks live in the forwarder's JoinSet and end with it.
        self.task.abort();
    }
}

async fn forward(front: Arc<UdpSocket>, server: SocketAddr, cut: Cut) {
    let mut up = vec![0u8; DATAGRAM];
    let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut downstream = JoinSet::new();
    loop {
        let Ok((n, from)) = front.recv_from(&mut up).await else {
            return;
        };
        if cut.up.load(Ordering::SeqCst) {
            continue;
        }
        let back = match clients.get(&from) {
            Some(b) => b.clone(),
            None => {
                let Ok(b) = towards(server).await else {
                    continue;
                };
                let b = Arc::new(b);
                downstream.spawn(back_to(b.clone(), front.clone(), from, cut.down.clone()));
                clients.insert(from, b.clone());
                b
            }
        };
        let _ = back.send(&up[..n]).await;
    }
}

async fn towards(server: SocketAddr) -> std::io::Result<UdpSocket> {
    let back = UdpSocket::bind("127.0.0.1:0").await?;
    back.connect(server).await?;
    Ok(back)
}

/// The server's datagrams for one client.
async fn back_to(
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    to: SocketAddr,
    cut: Arc<AtomicBool>,
) {
    let mut down = vec![0u8; DATAGRAM];
    loop {
        let Ok(n) = back.recv(&mut down).await else {
            return;
        };
        if !cut.load(Ordering::SeqCst) {
            let _ = front.send_to(&down[..n], to).await;
        }
    }
}
