//! The bare-quinn bulk baseline that attachment figures are compared with:
//! a quinn server on loopback with the qpq TLS and transport settings (TLS
//! 1.3, aws-lc-rs, the qpq ALPN), no application protocol. Upload: one
//! bidirectional stream written to its end and discarded by the server.
//! Download: a stream whose first byte is `D` followed by the length (8
//! bytes, big-endian) is answered with that many bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicproquo_protocol::client::{Client, Trust};
use quicproquo_protocol::Fingerprint;

/// Pieces written and read at a time (what the blob calls move per request).
pub const PIECE: usize = 1024 * 1024;

/// A running bare server; it stops with the runtime it was started on.
pub struct BareBulk {
    pub addr: SocketAddr,
    pub fingerprint: Fingerprint,
}

impl BareBulk {
    /// Starts the server on the current tokio runtime.
    pub fn start() -> BareBulk {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .expect("a self-signed certificate");
        let cert = generated.cert.der().clone();
        let fingerprint = quicproquo_protocol::cert_fingerprint(&cert);
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("the certificate");
        tls.alpn_protocols = vec![quicproquo_protocol::ALPN.to_vec()];
        let crypto =
            quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("a QUIC TLS config");
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(quicproquo_protocol::client::transport_config()));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("address"))
            .expect("a loopback endpoint");
        let addr = endpoint.local_addr().expect("its address");
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((send, recv)) = conn.accept_bi().await {
                        tokio::spawn(serve_stream(send, recv));
                    }
                });
            }
        });
        BareBulk { addr, fingerprint }
    }

    /// A client connection, as the qpq client makes them.
    pub async fn connect(&self) -> Client {
        Client::connect(self.addr, "localhost", Trust::Pin(self.fingerprint))
            .await
            .expect("connect to the bare server")
    }

    /// Sends `bytes` on one stream in [`PIECE`]s; the time until the server
    /// read them all.
    pub async fn upload(&self, client: &Client, bytes: usize) -> Duration {
        let piece = vec![0x5A; PIECE];
        let started = Instant::now();
        let (mut send, mut recv) = client.connection().open_bi().await.expect("a stream");
        let mut left = bytes;
        while left > 0 {
            let n = left.min(PIECE);
            send.write_all(&piece[..n]).await.expect("write");
            left -= n;
        }
        send.finish().expect("finish");
        recv.read_to_end(16).await.expect("the server's end");
        started.elapsed()
    }

    /// Has the server send `bytes` on one stream, read piece by piece and
    /// dropped; the time until the last byte.
    pub async fn download(&self, client: &Client, bytes: usize) -> Duration {
        let started = Instant::now();
        let (mut send, mut recv) = client.connection().open_bi().await.expect("a stream");
        let mut ask = vec![b'D'];
        ask.extend_from_slice(&(bytes as u64).to_be_bytes());
        send.write_all(&ask).await.expect("write");
        send.finish().expect("finish");
        let mut buf = vec![0u8; PIECE];
        let mut got = 0;
        while let Some(n) = recv.read(&mut buf).await.expect("read") {
            got += n;
        }
        assert_eq!(got, bytes, "the bare server sent what was asked");
        started.elapsed()
    }
}

async fn serve_stream(mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::with_capacity(9);
    while let Ok(Some(n)) = recv.read(&mut buf).await {
        let want = 9usize.saturating_sub(head.len()).min(n);
        head.extend_from_slice(&buf[..want]);
    }
    if head.len() == 9 && head[0] == b'D' {
        let bytes = u64::from_be_bytes(head[1..9].try_into().expect("8 bytes")) as usize;
        let piece = vec![0x5A; PIECE];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(PIECE);
            if send.write_all(&piece[..n]).await.is_err() {
                return;
            }
            left -= n;
        }
    }
    let _ = send.finish();
}

/// MiB per second of `bytes` moved in `took`.
pub fn mib_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64()
}
