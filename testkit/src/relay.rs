//! A UDP relay between one client and a server that a test can cut: from
//! then on nothing passes either way, and nothing is closed, so the server
//! sees its peer go silent as it would behind a dead network or a crashed
//! machine (a client process that exits still says goodbye).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Forwards datagrams between the first client that sends to
/// [`UdpRelay::addr`] and the server, until [`UdpRelay::cut`].
pub struct UdpRelay {
    /// Where the client connects instead of the server.
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl UdpRelay {
    /// A relay on a loopback port to `server`.
    pub async fn start(server: SocketAddr) -> std::io::Result<UdpRelay> {
        let front = UdpSocket::bind("127.0.0.1:0").await?;
        let back = UdpSocket::bind("127.0.0.1:0").await?;
        back.connect(server).await?;
        let addr = front.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(forward(front, back, cut.clone()));
        Ok(UdpRelay { addr, cut, task })
    }

    /// Drops every datagram from now on, both ways.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(front: UdpSocket, back: UdpSocket, cut: Arc<AtomicBool>) {
    // Larger than any QUIC datagram.
    let (mut up, mut down) = (vec![0u8; 65_536], vec![0u8; 65_536]);
    let mut client = None;
    loop {
        tokio::select! {
            r = front.recv_from(&mut up) => {
                let Ok((n, from)) = r else { return };
                client.get_or_insert(from);
                if !cut.load(Ordering::SeqCst) {
                    let _ = back.send(&up[..n]).await;
                }
            }
            r = back.recv(&mut down) => {
                let Ok(n) = r else { return };
                if let (Some(to), false) = (client, cut.load(Ordering::SeqCst)) {
                    let _ = front.send_to(&down[..n], to).await;
                }
            }
        }
    }
}
