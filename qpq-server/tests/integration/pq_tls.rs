//! Post-quantum key exchange (issue 15, item 5): client and server offer
//! the hybrid X25519MLKEM768. quinn does not say which group a handshake
//! used, so the tests restrict one side to a single group and see whether
//! the handshake succeeds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quicproquo_protocol::client::{tls_provider, Client, Trust};
use quicproquo_server::config::TlsSource;
use quicproquo_server::tls::{self, ReloadableCert};
use rustls::crypto::aws_lc_rs::kx_group;
use rustls::crypto::{CryptoProvider, SupportedKxGroup};

use crate::harness::TestServer;

fn only(group: &'static dyn SupportedKxGroup) -> CryptoProvider {
    CryptoProvider {
        kx_groups: vec![group],
        ..tls_provider()
    }
}

/// A QUIC endpoint with the server's TLS settings but only `group` for key
/// exchange; it completes handshakes and nothing more.
async fn server_with_only(
    dir: &std::path::Path,
    group: &'static dyn SupportedKxGroup,
) -> (quinn::Endpoint, Trust) {
    let certs = Arc::new(
        ReloadableCert::new(TlsSource::SelfSigned {
            dir: dir.join("tls"),
            hostnames: vec!["localhost".into()],
        })
        .unwrap(),
    );
    let pin =
        quicproquo_protocol::parse_fingerprint(&tls::fingerprint_hex(&certs.current())).unwrap();
    let tls = tls::server_config_with(certs, Arc::new(only(group))).unwrap();
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let accepting = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    conn.closed().await;
                }
            });
        }
    });
    (endpoint, Trust::Pin(pin))
}

async fn connects(addr: std::net::SocketAddr, trust: Trust, provider: CryptoProvider) -> bool {
    let alpn = quicproquo_protocol::ALPN;
    Client::connect_with_tls(addr, "localhost", trust, alpn, provider)
        .await
        .is_ok()
}

/// A server that speaks only the hybrid group accepts our client and
/// refuses a classical-only one; our server accepts a hybrid-only client.
#[tokio::test]
async fn both_sides_speak_the_hybrid_key_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let (hybrid_only, trust) = server_with_only(dir.path(), kx_group::X25519MLKEM768).await;
    let addr = hybrid_only.local_addr().unwrap();
    assert!(
        connects(addr, trust.clone(), tls_provider()).await,
        "our client did not offer X25519MLKEM768"
    );
    assert!(
        !connects(addr, trust, only(kx_group::X25519)).await,
        "a classical-only client was accepted by a hybrid-only server"
    );

    let srv = TestServer::start().await;
    assert!(
        connects(srv.addr, srv.trust(), only(kx_group::X25519MLKEM768)).await,
        "our server does not accept X25519MLKEM768"
    );
    // Classical clients still connect (the hybrid is preferred, not required).
    assert!(connects(srv.addr, srv.trust(), only(kx_group::X25519)).await);
}

/// The figure for BENCHMARKS.md: connection set-up (QUIC + TLS 1.3
/// handshake, loopback, debug build) with X25519MLKEM768 vs X25519 alone,
/// interleaved in one run against one server.
///
/// `cargo test -p quicproquo-server --test integration -- --ignored --nocapture handshake_time`
#[tokio::test]
#[ignore = "a measurement; run by hand"]
async fn handshake_time_figure() {
    let srv = TestServer::start().await;
    let mut hybrid = Vec::new();
    let mut classic = Vec::new();
    for _ in 0..200 {
        for (times, group) in [
            (&mut hybrid, kx_group::X25519MLKEM768),
            (&mut classic, kx_group::X25519),
        ] {
            let t = Instant::now();
            let c = Client::connect_with_tls(
                srv.addr,
                "localhost",
                srv.trust(),
                quicproquo_protocol::ALPN,
                only(group),
            )
            .await
            .unwrap();
            times.push(t.elapsed());
            c.close().await;
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let p90 = |v: &Vec<Duration>| v[v.len() * 9 / 10];
    let (mh, mc) = (median(&mut hybrid), median(&mut classic));
    println!(
        "handshake, 200 each: X25519MLKEM768 median {mh:.2?} p90 {:.2?}; X25519 median {mc:.2?} p90 {:.2?}",
        p90(&hybrid),
        p90(&classic)
    );
}
