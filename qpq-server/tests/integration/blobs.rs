//! Attachments over real QUIC (issue 18): a file sealed with
//! `protocol::blob`, uploaded in pieces with the connection dropped halfway
//! and resumed from `blobStatus`, downloaded by another member and opened
//! byte-identical; a stranger is refused, limits give their codes.

use quicproquo_protocol::blob::{self, BlobId, Descriptor, FileKey};
use quicproquo_protocol::client::Client;
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::types::SessionToken;
use quicproquo_protocol::wire::{self as w, BlobState};
use quicproquo_testkit::bulk::{mib_per_s, BareBulk, PIECE};
use quicproquo_testkit::server_process;
use quicproquo_testkit::wire;

use crate::groups::{refused, team};
use crate::harness::TestServer;

/// A new connection bound to `auth` (a fresh connection takes only small
/// requests until it is).
async fn connect(srv: &TestServer, auth: &SessionToken) -> Client {
    let c = srv.client().await;
    c.request(w::Authenticate { auth: auth.clone() })
        .await
        .unwrap();
    c
}

async fn upload(c: &Client, auth: &SessionToken, id: BlobId, ct: &[u8], from: usize, to: usize) {
    let piece = 256 * 1024;
    let mut at = from;
    while at < to {
        let end = (at + piece).min(to);
        let state = c
            .request(w::BlobUpload {
                auth: auth.clone(),
                blob: id,
                offset: at as u64,
                data: ct[at..end].to_vec(),
            })
            .await
            .unwrap();
        assert_eq!(state.stored, end as u64);
        at = end;
    }
}

#[tokio::test]
async fn a_file_upload_resumes_after_a_dropped_connection_and_another_member_opens_it() {
    let srv = TestServer::start().await;
    let (client, alice, bob) = team(&srv).await;
    let group = alice.group_id();
    let (a, b) = (
        alice.account.session.token.clone(),
        bob.account.session.token.clone(),
    );

    // Seal a 1.5 MiB file the way qpqd will.
    let plain: Vec<u8> = (0..1_572_869u32).map(|i| (i % 251) as u8).collect();
    let key = FileKey::generate();
    let mut ct = Vec::new();
    let sealed = blob::encrypt_stream(&key, blob::DEFAULT_CHUNK_SIZE, &plain[..], &mut ct).unwrap();
    let descriptor = Descriptor {
        blob_id: BlobId::generate(),
        key,
        size: sealed.size,
        chunk_size: blob::DEFAULT_CHUNK_SIZE,
        sha256: sealed.sha256,
        file_name: "photo.jpg".into(),
        content_type: "image/jpeg".into(),
    };
    let id = descriptor.blob_id;
    let size = ct.len() as u64;

    // Half of it on one connection, which then drops.
    let first = connect(&srv, &a).await;
    let create = w::BlobCreate {
        auth: a.clone(),
        blob: id,
        group: group.clone(),
        size,
    };
    let state = first.request(create.clone()).await.unwrap();
    assert_eq!(
        state,
        BlobState {
            size,
            stored: 0,
            finished: false
        }
    );
    let half = ct.len() / 2;
    upload(&first, &a, id, &ct, 0, half).await;
    first.close().await;

    // A new connection asks where to resume; a retried create and a
    // retried last piece change nothing; a gap is refused.
    let second = connect(&srv, &a).await;
    let status = second
        .request(w::BlobStatus {
            auth: a.clone(),
            blob: id,
        })
        .await
        .unwrap();
    assert_eq!(status.stored, half as u64);
    assert_eq!(second.request(create).await.unwrap().stored, half as u64);
    upload(&second, &a, id, &ct, half - 1000, half).await;
    let gap = second
        .request(w::BlobUpload {
            auth: a.clone(),
            blob: id,
            offset: half as u64 + 1,
            data: vec![0; 10],
        })
        .await;
    assert_eq!(refused(gap), ErrorCode::BlobGap);
    // Nobody downloads an unfinished file, and it cannot be finished early.
    let early = client
        .request(w::BlobDownload {
            auth: b.clone(),
            blob: id,
            offset: 0,
            length: 10,
        })
        .await;
    assert_eq!(refused(early), ErrorCode::BlobIncomplete);
    let early = second
        .request(w::BlobFinish {
            auth: a.clone(),
            blob: id,
        })
        .await;
    assert_eq!(refused(early), ErrorCode::BlobIncomplete);
    upload(&second, &a, id, &ct, half, ct.len()).await;
    let done = second
        .request(w::BlobFinish {
            auth: a.clone(),
            blob: id,
        })
        .await
        .unwrap();
    assert!(done.finished);

    // Bob, a member, downloads in pieces and opens it byte-identical.
    let bobs = connect(&srv, &b).await;
    let mut got = Vec::new();
    while (got.len() as u64) < size {
        let data = bobs
            .request(w::BlobDownload {
                auth: b.clone(),
                blob: id,
                offset: got.len() as u64,
                length: 300_000,
            })
            .await
            .unwrap();
        assert!(!data.is_empty());
        got.extend_from_slice(&data);
    }
    assert!(got == ct, "the stored ciphertext is what was sent");
    let mut opened = Vec::new();
    blob::decrypt_stream(&descriptor, &got[..], &mut opened).unwrap();
    assert!(opened == plain, "bob opens the very file");

    // Eve, not a member, learns nothing and stores nothing in the group.
    let eve = wire::register(&client, "eve").await;
    let e = eve.session.token.clone();
    let eves = connect(&srv, &e).await;
    for r in [
        eves.request(w::BlobStatus {
            auth: e.clone(),
            blob: id,
        })
        .await
        .map(|_| ()),
        eves.request(w::BlobDownload {
            auth: e.clone(),
            blob: id,
            offset: 0,
            length: 1,
        })
        .await
        .map(|_| ()),
        eves.request(w::BlobCreate {
            auth: e.clone(),
            blob: BlobId::generate(),
            group: group.clone(),
            size: 1,
        })
        .await
        .map(|_| ()),
    ] {
        assert_eq!(refused(r), ErrorCode::NotGroupMember);
    }
    // Nor may Bob append to Alice's upload.
    let foreign = bobs
        .request(w::BlobUpload {
            auth: b.clone(),
            blob: id,
            offset: size,
            data: vec![1],
        })
        .await;
    assert_eq!(refused(foreign), ErrorCode::BlobNotFound);
}

#[tokio::test]
async fn the_size_limit_and_quota_give_their_codes_and_say_why() {
    let srv = TestServer::start().await;
    let (client, alice, _bob) = team(&srv).await;
    let a = alice.account.session.token.clone();
    let create = |size: u64| w::BlobCreate {
        auth: a.clone(),
        blob: BlobId::generate(),
        group: alice.group_id(),
        size,
    };
    let Err(quicproquo_protocol::client::ClientError::Server(e)) =
        client.request(create(200 * 1024 * 1024)).await
    else {
        panic!("a 200 MiB file is refused")
    };
    assert_eq!(e.code, ErrorCode::BlobTooLarge);
    assert!(e.message.contains("209715200"), "{e}");
    // Ten files of the largest size fill the default 1 GiB quota.
    let largest = 100 * 1024 * 1024;
    for _ in 0..10 {
        client.request(create(largest)).await.unwrap();
    }
    let Err(quicproquo_protocol::client::ClientError::Server(e)) =
        client.request(create(largest)).await
    else {
        panic!("the quota is full")
    };
    assert_eq!(e.code, ErrorCode::BlobQuotaExceeded);
    assert!(e.message.contains("quota"), "{e}");
}

// ----- the figure of BENCHMARKS.md: blob calls beside bare quinn -------------

const FIGURE_BYTES: usize = 100 * 1024 * 1024;

/// Peak resident memory of this process (client and in-process server).
fn peak_rss_kib() -> u64 {
    server_process::status_kib(std::process::id(), "VmHWM:")
}

/// 100 MiB up and down through the blob calls (1 MiB pieces, one at a
/// time) beside one bare quinn stream of 100 MiB each way, in this process:
/// `cargo test -j2 -p quicproquo-server --test integration blobs::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement"]
async fn throughput_beside_bare_quinn() {
    println!(
        "load average before: {}",
        quicproquo_testkit::bench::load_average()
    );
    let rss_idle = peak_rss_kib();
    // Bare quinn, each way.
    let bare_server = BareBulk::start();
    let bare = bare_server.connect().await;
    let bare_up = bare_server.upload(&bare, FIGURE_BYTES).await;
    let bare_down = bare_server.download(&bare, FIGURE_BYTES).await;
    let rss_bare = peak_rss_kib();

    // The blob calls on a real server (in this process).
    let srv = TestServer::start().await;
    let (_client, alice, _bob) = team(&srv).await;
    let a = alice.account.session.token.clone();
    let c = connect(&srv, &a).await;
    let id = BlobId::generate();
    let piece = vec![0x5A; PIECE];
    let started = std::time::Instant::now();
    c.request(w::BlobCreate {
        auth: a.clone(),
        blob: id,
        group: alice.group_id(),
        size: FIGURE_BYTES as u64,
    })
    .await
    .unwrap();
    for i in 0..FIGURE_BYTES / PIECE {
        c.request(w::BlobUpload {
            auth: a.clone(),
            blob: id,
            offset: (i * PIECE) as u64,
            data: piece.clone(),
        })
        .await
        .unwrap();
    }
    c.request(w::BlobFinish {
        auth: a.clone(),
        blob: id,
    })
    .await
    .unwrap();
    let up = started.elapsed();
    let started = std::time::Instant::now();
    let mut at = 0;
    while at < FIGURE_BYTES {
        let data = c
            .request(w::BlobDownload {
                auth: a.clone(),
                blob: id,
                offset: at as u64,
                length: PIECE as u32,
            })
            .await
            .unwrap();
        at += data.len();
    }
    let down = started.elapsed();
    println!(
        "bare quinn: up {:.1} MiB/s, down {:.1} MiB/s",
        mib_per_s(FIGURE_BYTES, bare_up),
        mib_per_s(FIGURE_BYTES, bare_down)
    );
    println!(
        "blob calls: up {:.1} MiB/s ({:.2}x), down {:.1} MiB/s ({:.2}x)",
        mib_per_s(FIGURE_BYTES, up),
        bare_up.as_secs_f64() / up.as_secs_f64(),
        mib_per_s(FIGURE_BYTES, down),
        bare_down.as_secs_f64() / down.as_secs_f64()
    );
    println!(
        "process peak RSS: {rss_idle} KiB at start, {rss_bare} KiB after bare quinn, {} KiB after the blob calls",
        peak_rss_kib()
    );
    println!(
        "load average after: {}",
        quicproquo_testkit::bench::load_average()
    );
}
