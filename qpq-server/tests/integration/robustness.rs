//! Malformed input and the connection limits: each gets an error or a
//! clean refusal, and the server keeps serving everyone else.

use quicproquo_protocol::client::{Client, ClientError};
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::limits::MAX_REQUEST_BYTES;
use quicproquo_protocol::wire::{decode_response, encode_request, Request, Response};

use std::time::Duration;

use crate::harness::{app_message, raw_error, Register, TestServer};

async fn still_serving(srv: &TestServer) {
    let fresh = srv.client().await;
    let r = fresh.call(&Request::Health).await.unwrap();
    assert!(
        matches!(
            r,
            Response::Health {
                protocol_version: quicproquo_protocol::PROTOCOL_VERSION,
                ..
            }
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn malformed_requests_get_errors_and_the_server_keeps_serving() {
    let srv = TestServer::start().await;
    let c = srv.client().await;

    // Truncated Cap'n Proto.
    let good = encode_request(&Request::Health);
    let (code, _) = raw_error(&c, &good[..good.len() - 3]).await;
    assert_eq!(code, ErrorCode::Malformed);

    // Garbage bytes.
    let (code, _) = raw_error(&c, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(code, ErrorCode::Malformed);
    let (code, _) = raw_error(&c, &[]).await;
    assert_eq!(code, ErrorCode::Malformed);

    // A well-formed message of the wrong type: the root is text, not a Request.
    let mut msg = capnp::message::Builder::new_default();
    msg.set_root("hello").unwrap();
    let (code, _) = raw_error(&c, &capnp::serialize::write_message_to_words(&msg)).await;
    assert_eq!(code, ErrorCode::Malformed);

    // A request kind this server does not know (a newer client).
    let mut unknown = encode_request(&Request::Health);
    // Segment table (8 bytes) + root pointer (8 bytes), then the union
    // discriminant in the first data word.
    unknown[16] = 99;
    let (code, message) = raw_error(&c, &unknown).await;
    assert_eq!(code, ErrorCode::Malformed);
    assert!(message.contains("unknown request kind"), "{message}");

    // Oversize: refused with E003 without reading it all.
    let huge = vec![0u8; MAX_REQUEST_BYTES + 1024];
    let (code, _) = raw_error(&c, &huge).await;
    assert_eq!(code, ErrorCode::TooLarge);

    // A stream abandoned half-way (reset, never finished).
    let (mut send, _recv) = c.connection().open_bi().await.unwrap();
    send.write_all(&good[..5]).await.unwrap();
    send.reset(7u32.into()).unwrap();

    // The same connection still works, and so does a new one.
    assert!(matches!(
        c.call(&Request::Health).await.unwrap(),
        Response::Health { .. }
    ));
    still_serving(&srv).await;
}

#[tokio::test]
async fn a_wrong_alpn_or_certificate_is_refused_cleanly() {
    let srv = TestServer::start().await;
    let r = Client::connect_with_alpn(srv.addr, "localhost", srv.trust(), b"http/1.1").await;
    assert!(
        matches!(r, Err(ClientError::Connect { .. })),
        "{:?}",
        r.err()
    );

    let r = Client::connect(
        srv.addr,
        "localhost",
        quicproquo_protocol::client::Trust::Pin([0; 32]),
    )
    .await;
    match r {
        Err(ClientError::Connect { reason, .. }) => {
            assert!(reason.contains("certificate"), "{reason}")
        }
        other => panic!("{:?}", other.err()),
    }
    still_serving(&srv).await;
}

#[tokio::test]
async fn tls_reload_keeps_connections_and_new_ones_see_the_new_certificate() {
    use quicproquo_server::config::TlsSource;
    let dir = tempfile::tempdir().unwrap();
    // Two certificates; the server starts with the first.
    let make = |sub: &str| {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let d = dir.path().join(sub);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cert.pem"), c.cert.pem()).unwrap();
        std::fs::write(d.join("key.pem"), c.signing_key.serialize_pem()).unwrap();
        d
    };
    let one = make("one");
    let two = make("two");
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(one.join(f), live.join(f)).unwrap();
    }
    let srv = TestServer::start_with(|c| {
        c.tls = TlsSource::Files {
            cert: live.join("cert.pem"),
            key: live.join("key.pem"),
        }
    })
    .await;
    let old = srv.client().await;
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(two.join(f), live.join(f)).unwrap();
    }
    let new_fp = srv.running.as_ref().unwrap().reload_tls().unwrap();
    assert_ne!(new_fp, srv.running.as_ref().unwrap().fingerprint);

    // The old connection is still up.
    old.call(&Request::Health).await.unwrap();
    // A client pinned to the old certificate is now refused; the new pin works.
    assert!(Client::connect(srv.addr, "localhost", srv.trust())
        .await
        .is_err());
    let pin = quicproquo_protocol::parse_fingerprint(&new_fp).unwrap();
    let fresh = Client::connect(
        srv.addr,
        "localhost",
        quicproquo_protocol::client::Trust::Pin(pin),
    )
    .await
    .unwrap();
    fresh.call(&Request::Health).await.unwrap();
}

async fn healthy(c: &Client) -> bool {
    matches!(c.call(&Request::Health).await, Ok(Response::Health { .. }))
}

/// `max_connections` as the book describes it: connections past the bound
/// are refused (not queued), and closing one makes room again.
#[tokio::test]
async fn connections_past_max_connections_are_refused_until_one_closes() {
    let srv = TestServer::start_with(|c| c.max_connections = 2).await;
    let first = srv.client().await;
    let second = srv.client().await;
    assert!(healthy(&first).await && healthy(&second).await);
    let refused = Client::connect(srv.addr, "localhost", srv.trust()).await;
    assert!(refused.is_err(), "a third connection was accepted");
    drop(first);
    let third = quicproquo_testkit::agent::eventually("room for a connection again", || async {
        Client::connect(srv.addr, "localhost", srv.trust())
            .await
            .ok()
    })
    .await
    .unwrap();
    assert!(healthy(&third).await && healthy(&second).await);
}

/// `max_streams_per_connection`: with a limit of one, a connection whose
/// stream holds a fetchWait cannot start a second request until the wait is
/// answered, while other connections are served.
#[tokio::test]
async fn a_connection_at_its_stream_limit_holds_further_requests() {
    let srv = TestServer::start_with(|c| c.max_streams_per_connection = 1).await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let ab = alice.channel_with(&bob).await;
    let waiting = bob.fetch_wait(20_000);
    let meanwhile = async {
        srv.parked_fetches(1).await.unwrap();
        // Not a sleep for ordering: the assertion is that nothing is
        // answered in this window. Without the limit a Health call takes
        // milliseconds.
        let second = tokio::time::timeout(Duration::from_millis(300), healthy(&bob.client)).await;
        assert!(second.is_err(), "a second stream was opened past the limit");
        alice
            .send(&bob, ab, app_message(b"frees the stream"))
            .await
            .unwrap();
    };
    let (answer, ()) = tokio::join!(waiting, meanwhile);
    assert!(
        matches!(&answer, Ok(Response::FetchWait(m)) if m.len() == 1),
        "{answer:?}"
    );
    assert!(healthy(&bob.client).await, "the stream is free again");
}

/// A client that opens a stream, sends part of a request and goes quiet
/// holds that stream only until the read timeout: then it gets E002 saying
/// so, and the connection keeps serving. (The timeout is 30 s in service;
/// 1 s here.)
#[tokio::test]
async fn a_request_left_unfinished_is_answered_after_the_read_timeout() {
    let srv = TestServer::start_with(|c| c.request_read_timeout = Duration::from_secs(1)).await;
    let c = srv.client().await;
    let good = encode_request(&Request::Health);
    let (mut send, mut recv) = c.connection().open_bi().await.unwrap();
    send.write_all(&good[..5]).await.unwrap();
    // Nothing more, and no finish. Ten times the timeout bounds a failure:
    // without one the server would wait for the rest for ever.
    let answer = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(64 * 1024))
        .await
        .expect("the server answered the unfinished request")
        .unwrap();
    match decode_response(&answer).unwrap() {
        Response::Error(e) => {
            assert_eq!(e.code, ErrorCode::Malformed, "{e}");
            assert!(e.message.contains("not completed within 1 s"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(healthy(&c).await, "the connection still serves");
}

/// A client whose network goes silent (no close, no packets) is closed
/// after the idle timeout, and its place under `max_connections` is free
/// again. (30 s in service; 1 s here.)
#[tokio::test]
async fn a_connection_gone_silent_is_closed_after_the_idle_timeout() {
    use quicproquo_testkit::relay::UdpRelay;

    let srv = TestServer::start_with(|c| {
        c.max_connections = 1;
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let relay = UdpRelay::start(srv.addr).await.unwrap();
    let silent = Client::connect(relay.addr, "localhost", srv.trust())
        .await
        .unwrap();
    assert!(healthy(&silent).await);
    assert!(
        Client::connect(srv.addr, "localhost", srv.trust())
            .await
            .is_err(),
        "the one connection allowed is taken"
    );
    relay.cut();
    // Ten times the idle timeout bounds a failure; quinn's own default (and
    // the client's) is 30 s, so a server that ignored its setting fails.
    let fresh = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(c) = Client::connect(srv.addr, "localhost", srv.trust()).await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the silent connection was closed");
    assert!(healthy(&fresh).await);
}
