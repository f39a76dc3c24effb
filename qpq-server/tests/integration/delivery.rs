//! Key packages, channels, enqueue/fetch/fetchWait/ack, commit ordering,
//! restarts.

use std::time::{Duration, Instant};

use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::types::{ChannelId, IdentityKey};
use quicproquo_protocol::wire::{Delivery, Request, Response, UserRef};

use crate::harness::{app_message, code, idem, mls_payload, Register, TestServer};

const HYBRID: u16 = quicproquo_protocol::wire::DEFAULT_SUITE;
const CLASSIC: u16 = quicproquo_protocol::wire::CLASSIC_SUITE;

/// The public framing of a serialized MLS KeyPackage of `suite`, then `tag`
/// (the server reads only the framing).
fn kp(suite: u16, tag: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 1, 0, 5, 0, 1];
    v.extend_from_slice(&suite.to_be_bytes());
    v.extend_from_slice(tag);
    v
}

#[tokio::test]
async fn key_packages_are_kept_per_ciphersuite() {
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let upload = |packages: Vec<Vec<u8>>| Request::UploadKeyPackages {
        auth: bob.auth(),
        packages,
        last_resort: None,
    };
    bob.call(upload(vec![kp(CLASSIC, b"c1")])).await.unwrap();
    // Mixed suites in one upload, or something that is not a KeyPackage.
    assert_eq!(
        code(
            bob.call(upload(vec![kp(CLASSIC, b"c2"), kp(HYBRID, b"h1")]))
                .await
        ),
        ErrorCode::InvalidPayload
    );
    assert_eq!(
        code(bob.call(upload(vec![b"not a key package".to_vec()])).await),
        ErrorCode::InvalidPayload
    );
    let fetch = |suite| Request::FetchKeyPackage {
        auth: alice.auth(),
        target: UserRef::Identity(bob.identity),
        suite,
    };
    assert_eq!(
        code(alice.call(fetch(HYBRID)).await),
        ErrorCode::NoKeyPackage,
        "a classic package is never handed out for a hybrid group"
    );
    match alice.call(fetch(CLASSIC)).await.unwrap() {
        Response::FetchKeyPackage { key_package, .. } => {
            assert_eq!(key_package, kp(CLASSIC, b"c1"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn key_packages_are_consumed_but_the_last_resort_survives() {
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let r = bob
        .call(Request::UploadKeyPackages {
            auth: bob.auth(),
            packages: vec![kp(HYBRID, b"kp-1"), kp(HYBRID, b"kp-2")],
            last_resort: Some(kp(HYBRID, b"kp-last")),
        })
        .await
        .unwrap();
    assert_eq!(r, Response::UploadKeyPackages { available: 2 });

    let fetch = |target| Request::FetchKeyPackage {
        auth: alice.auth(),
        target,
        suite: HYBRID,
    };
    let mut got = Vec::new();
    for target in [
        UserRef::Username(bob.username.clone()),
        UserRef::Identity(bob.identity),
        UserRef::Username(bob.username.clone()),
        UserRef::Username(bob.username.clone()),
    ] {
        match alice.call(fetch(target)).await.unwrap() {
            Response::FetchKeyPackage {
                key_package,
                identity_key,
                last_resort,
            } => {
                assert_eq!(identity_key, bob.identity);
                got.push((key_package, last_resort));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        got,
        vec![
            (kp(HYBRID, b"kp-1"), false),
            (kp(HYBRID, b"kp-2"), false),
            (kp(HYBRID, b"kp-last"), true),
            (kp(HYBRID, b"kp-last"), true),
        ]
    );

    // A user with no packages at all, and a user who does not exist.
    assert_eq!(
        code(alice.call(fetch(UserRef::Identity(alice.identity))).await),
        ErrorCode::NoKeyPackage
    );
    let nobody = quicproquo_protocol::types::Username::parse("nobody").unwrap();
    assert_eq!(
        code(alice.call(fetch(UserRef::Username(nobody.clone()))).await),
        ErrorCode::UnknownUser
    );
    assert_eq!(
        code(
            alice
                .call(Request::ResolveUser {
                    auth: alice.auth(),
                    username: nobody
                })
                .await
        ),
        ErrorCode::UnknownUser
    );
    assert_eq!(
        alice
            .call(Request::ResolveUser {
                auth: alice.auth(),
                username: bob.username.clone()
            })
            .await
            .unwrap(),
        Response::ResolveUser {
            identity_key: bob.identity
        }
    );
}

#[tokio::test]
async fn channel_delivery_and_authorization() {
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let carol = srv.register("carol").await;

    // The same channel for the pair, whoever asks.
    let ab = alice.channel_with(&bob).await;
    assert_eq!(bob.channel_with(&alice).await, ab);
    let ac = alice.channel_with(&carol).await;
    assert_ne!(ab, ac);
    assert_eq!(
        code(
            alice
                .call(Request::CreateChannel {
                    auth: alice.auth(),
                    peer: alice.identity
                })
                .await
        ),
        ErrorCode::SelfChannel
    );
    assert_eq!(
        code(
            alice
                .call(Request::CreateChannel {
                    auth: alice.auth(),
                    peer: IdentityKey([9; 32])
                })
                .await
        ),
        ErrorCode::UnknownUser
    );

    // alice → bob through their channel.
    let r = alice
        .send(&bob, ab, app_message(b"hello bob"))
        .await
        .unwrap();
    let Response::Enqueue {
        duplicate: false,
        seqs,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(seqs.len(), 1);
    let mail = bob.fetch_all().await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].channel, Some(ab));
    assert_eq!(mail[0].payload, app_message(b"hello bob"));
    assert_eq!(mail[0].seq, seqs[0]);

    // carol is not a member: she can neither send on it, nor read it.
    assert_eq!(
        code(carol.send(&bob, ab, app_message(b"x")).await),
        ErrorCode::ChannelDenied
    );
    assert_eq!(
        code(
            carol
                .call(Request::Fetch {
                    auth: carol.auth(),
                    channel: Some(ab),
                    limit: 0
                })
                .await
        ),
        ErrorCode::ChannelDenied
    );
    assert_eq!(
        code(
            carol
                .call(Request::FetchWait {
                    auth: carol.auth(),
                    channel: Some(ab),
                    limit: 0,
                    timeout_ms: 10
                })
                .await
        ),
        ErrorCode::ChannelDenied
    );
    // alice cannot use her channel with carol to reach bob, nor name an
    // unknown channel.
    assert_eq!(
        code(alice.send(&bob, ac, app_message(b"x")).await),
        ErrorCode::ChannelDenied
    );
    assert_eq!(
        code(
            alice
                .send(&bob, ChannelId([0; 16]), app_message(b"x"))
                .await
        ),
        ErrorCode::ChannelDenied
    );
    // The legacy path is off by default.
    let legacy = Request::Enqueue {
        auth: alice.auth(),
        deliveries: vec![Delivery {
            recipient: bob.identity,
            channel: None,
        }],
        payload: app_message(b"legacy"),
        idempotency_key: idem(),
    };
    assert_eq!(
        code(alice.call(legacy).await),
        ErrorCode::LegacyPathDisabled
    );
    // Nothing of that reached bob.
    assert_eq!(bob.fetch_all().await.len(), 1);

    // A channel filter returns only that channel's mail.
    let ba_only = bob
        .call(Request::Fetch {
            auth: bob.auth(),
            channel: Some(ab),
            limit: 0,
        })
        .await
        .unwrap();
    assert!(matches!(ba_only, Response::Fetch(m) if m.len() == 1));

    // Ack removes it; acking again, or someone else's seq, removes nothing.
    let ack = |u: &crate::harness::User, seqs: Vec<u64>| Request::Ack {
        auth: u.auth(),
        seqs,
    };
    assert_eq!(
        carol.call(ack(&carol, vec![mail[0].seq])).await.unwrap(),
        Response::Ack { removed: 0 }
    );
    assert_eq!(
        bob.call(ack(&bob, vec![mail[0].seq])).await.unwrap(),
        Response::Ack { removed: 1 }
    );
    assert_eq!(
        bob.call(ack(&bob, vec![mail[0].seq])).await.unwrap(),
        Response::Ack { removed: 0 }
    );
    assert!(bob.fetch_all().await.is_empty());
}

#[tokio::test]
async fn legacy_path_when_allowed_and_fan_out() {
    let srv = TestServer::start_with(|c| c.require_channel_authz = false).await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let carol = srv.register("carol").await;
    let r = alice
        .call(Request::Enqueue {
            auth: alice.auth(),
            deliveries: vec![
                Delivery {
                    recipient: bob.identity,
                    channel: None,
                },
                Delivery {
                    recipient: carol.identity,
                    channel: None,
                },
            ],
            payload: app_message(b"to both"),
            idempotency_key: idem(),
        })
        .await
        .unwrap();
    assert!(
        matches!(r, Response::Enqueue { ref seqs, .. } if seqs.len() == 2),
        "{r:?}"
    );
    assert_eq!(bob.fetch_all().await[0].payload, app_message(b"to both"));
    assert_eq!(carol.fetch_all().await[0].payload, app_message(b"to both"));
    // An unknown recipient is refused, storing nothing.
    let r = alice
        .call(Request::Enqueue {
            auth: alice.auth(),
            deliveries: vec![
                Delivery {
                    recipient: bob.identity,
                    channel: None,
                },
                Delivery {
                    recipient: IdentityKey([7; 32]),
                    channel: None,
                },
            ],
            payload: app_message(b"x"),
            idempotency_key: idem(),
        })
        .await;
    assert_eq!(code(r), ErrorCode::UnknownUser);
    assert_eq!(bob.fetch_all().await.len(), 1);
}

#[tokio::test]
async fn duplicate_idempotency_key_stores_once() {
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let ab = alice.channel_with(&bob).await;
    let req = Request::Enqueue {
        auth: alice.auth(),
        deliveries: vec![Delivery {
            recipient: bob.identity,
            channel: Some(ab),
        }],
        payload: app_message(b"once"),
        idempotency_key: idem(),
    };
    let first = alice.call(req.clone()).await.unwrap();
    assert!(matches!(
        first,
        Response::Enqueue {
            duplicate: false,
            ..
        }
    ));
    let second = alice.call(req).await.unwrap();
    assert_eq!(
        second,
        Response::Enqueue {
            duplicate: true,
            seqs: vec![]
        }
    );
    assert_eq!(bob.fetch_all().await.len(), 1);
}

#[tokio::test]
async fn invalid_payloads_and_empty_recipients() {
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let ab = alice.channel_with(&bob).await;
    // Not padded.
    assert_eq!(
        code(alice.send(&bob, ab, b"plain text".to_vec()).await),
        ErrorCode::InvalidPayload
    );
    // Padded, but not MLS.
    assert_eq!(
        code(
            alice
                .send(&bob, ab, quicproquo_protocol::padding::pad(b"hello"))
                .await
        ),
        ErrorCode::InvalidPayload
    );
    // No recipient and no commit.
    let r = alice
        .call(Request::Enqueue {
            auth: alice.auth(),
            deliveries: vec![],
            payload: app_message(b"x"),
            idempotency_key: idem(),
        })
        .await;
    assert_eq!(code(r), ErrorCode::NoRecipients);
    // A group's messages (any content type) go through enqueueGroup, not to
    // recipients one by one: nobody with a channel can inject into a group.
    for content_type in [1, 2, 3] {
        assert_eq!(
            code(
                alice
                    .send(&bob, ab, mls_payload(b"some-group", 0, content_type, b"c"))
                    .await
            ),
            ErrorCode::WrongGroup
        );
    }
}

#[tokio::test]
async fn fetch_wait_wakes_on_enqueue_and_times_out_empty() {
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let ab = alice.channel_with(&bob).await;

    // Nothing arrives: an empty answer after about the timeout.
    let t = Instant::now();
    let r = bob
        .call(Request::FetchWait {
            auth: bob.auth(),
            channel: None,
            limit: 0,
            timeout_ms: 200,
        })
        .await
        .unwrap();
    assert_eq!(r, Response::FetchWait(vec![]));
    assert!(t.elapsed() >= Duration::from_millis(200));

    // A waiting fetch returns as soon as alice's message is stored.
    let waiting = bob.call(Request::FetchWait {
        auth: bob.auth(),
        channel: Some(ab),
        limit: 0,
        timeout_ms: 20_000,
    });
    let send = async {
        srv.parked_fetches(1).await.unwrap();
        alice.send(&bob, ab, app_message(b"wake up")).await.unwrap();
        Instant::now()
    };
    let (r, sent_at) = tokio::join!(waiting, send);
    let woke_at = Instant::now();
    match r.unwrap() {
        Response::FetchWait(m) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].payload, app_message(b"wake up"));
        }
        other => panic!("{other:?}"),
    }
    // Woken by the enqueue, not by the 20 s timeout (latency: BENCHMARKS.md).
    assert!(woke_at.duration_since(sent_at) < Duration::from_secs(5));
}

#[tokio::test]
async fn restarted_server_still_delivers() {
    let mut srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let ab = alice.channel_with(&bob).await;
    let fp_before = srv.running.as_ref().unwrap().fingerprint.clone();
    alice
        .send(&bob, ab, app_message(b"survives"))
        .await
        .unwrap();

    srv.restart().await;
    assert_eq!(
        srv.running.as_ref().unwrap().fingerprint,
        fp_before,
        "the certificate is kept across restarts"
    );
    // Old connections were closed by the shutdown; sessions persist.
    assert!(bob.client.is_closed());
    let client = srv.client().await;
    let r = client
        .call(&Request::Fetch {
            auth: bob.auth(),
            channel: None,
            limit: 0,
        })
        .await
        .unwrap();
    match r {
        Response::Fetch(m) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].payload, app_message(b"survives"));
        }
        other => panic!("{other:?}"),
    }
    // And the OPAQUE setup survived: logging in still works.
    client
        .login(&alice.username, alice.password.as_bytes())
        .await
        .unwrap();
}

#[tokio::test]
async fn graceful_shutdown_answers_in_flight_requests() {
    let mut srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let ab = alice.channel_with(&bob).await;
    let waiting = bob.fetch_wait(30_000);
    let stop = async {
        // Shut down only once the request is held: the test is about a
        // parked request, not one that has not reached the server yet.
        srv.parked_fetches(1).await.unwrap();
        let running = srv.running.take().unwrap();
        let t = Instant::now();
        running.shutdown().await;
        t.elapsed()
    };
    let (r, took) = tokio::join!(waiting, stop);
    // The held request got an answer (empty), not a reset stream.
    assert_eq!(r.unwrap(), Response::FetchWait(vec![]));
    assert!(took < Duration::from_secs(10), "{took:?}");
    // A request after shutdown fails cleanly on the client side.
    assert!(alice.send(&bob, ab, app_message(b"late")).await.is_err());
}

/// The mailbox bound (`MAX_QUEUE_DEPTH`, a constant) filled through the
/// wire in enqueues of `MAX_RECIPIENTS` deliveries: the next mail is E032,
/// and acknowledging one makes room for one.
#[tokio::test]
async fn a_full_mailbox_refuses_mail_with_e032_until_one_is_acknowledged() {
    use quicproquo_protocol::limits::{MAX_QUEUE_DEPTH, MAX_RECIPIENTS};
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let ab = alice.channel_with(&bob).await;
    let mut left = MAX_QUEUE_DEPTH;
    while left > 0 {
        let n = left.min(MAX_RECIPIENTS);
        alice
            .call(Request::Enqueue {
                auth: alice.auth(),
                deliveries: vec![
                    Delivery {
                        recipient: bob.identity,
                        channel: Some(ab),
                    };
                    n
                ],
                payload: app_message(b"fill"),
                idempotency_key: idem(),
            })
            .await
            .expect("below the bound");
        left -= n;
    }
    assert_eq!(
        code(alice.send(&bob, ab, app_message(b"one too many")).await),
        ErrorCode::QueueFull
    );
    let first = match bob
        .call(Request::Fetch {
            auth: bob.auth(),
            channel: None,
            limit: 1,
        })
        .await
        .unwrap()
    {
        Response::Fetch(m) => m[0].seq,
        other => panic!("{other:?}"),
    };
    bob.call(Request::Ack {
        auth: bob.auth(),
        seqs: vec![first],
    })
    .await
    .unwrap();
    alice
        .send(&bob, ab, app_message(b"room for one"))
        .await
        .expect("one acknowledged, one fits");
    assert_eq!(
        code(alice.send(&bob, ab, app_message(b"full again")).await),
        ErrorCode::QueueFull
    );
}

/// A key package of exactly `MAX_KEY_PACKAGE_BYTES` is stored; one byte
/// more is E036 and nothing of that upload is stored.
#[tokio::test]
async fn a_key_package_over_16_kib_is_e036() {
    use quicproquo_protocol::limits::MAX_KEY_PACKAGE_BYTES;
    let srv = TestServer::start().await;
    let bob = srv.register("bob").await;
    let sized = |n: usize, fill: u8| {
        let header = kp(HYBRID, b"");
        kp(HYBRID, &vec![fill; n - header.len()])
    };
    let upload = |packages| Request::UploadKeyPackages {
        auth: bob.auth(),
        packages,
        last_resort: None,
    };
    assert_eq!(
        code(
            bob.call(upload(vec![
                sized(MAX_KEY_PACKAGE_BYTES, 1),
                sized(MAX_KEY_PACKAGE_BYTES + 1, 2)
            ]))
            .await
        ),
        ErrorCode::KeyPackageTooLarge
    );
    let alice = srv.register("alice").await;
    let fetch = || Request::FetchKeyPackage {
        auth: alice.auth(),
        target: UserRef::Identity(bob.identity),
        suite: HYBRID,
    };
    assert_eq!(
        code(alice.call(fetch()).await),
        ErrorCode::NoKeyPackage,
        "the refused upload stored nothing"
    );
    bob.call(upload(vec![sized(MAX_KEY_PACKAGE_BYTES, 1)]))
        .await
        .expect("exactly the limit is accepted");
    match alice.call(fetch()).await.unwrap() {
        Response::FetchKeyPackage { key_package, .. } => {
            assert_eq!(key_package, sized(MAX_KEY_PACKAGE_BYTES, 1))
        }
        other => panic!("{other:?}"),
    }
}

/// E030 and E031 over the wire: a payload one byte over 4 MiB, or one
/// recipient over 1,024, is refused and nothing of it reaches the
/// recipient; the next message, within the limits, does.
#[tokio::test]
async fn an_enqueue_over_its_size_or_recipient_limit_is_e030_or_e031() {
    use quicproquo_protocol::limits::{MAX_PAYLOAD_BYTES, MAX_RECIPIENTS};

    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let ab = alice.channel_with(&bob).await;
    let to_bob = Delivery {
        recipient: bob.identity,
        channel: Some(ab),
    };
    let enqueue = |deliveries: Vec<Delivery>, payload: Vec<u8>| Request::Enqueue {
        auth: alice.auth(),
        deliveries,
        payload,
        idempotency_key: idem(),
    };
    let r = alice
        .call(enqueue(vec![to_bob], vec![0; MAX_PAYLOAD_BYTES + 1]))
        .await;
    assert_eq!(code(r), ErrorCode::PayloadTooLarge);
    let r = alice
        .call(enqueue(
            vec![to_bob; MAX_RECIPIENTS + 1],
            app_message(b"to too many"),
        ))
        .await;
    assert_eq!(code(r), ErrorCode::TooManyRecipients);

    alice
        .send(&bob, ab, app_message(b"within the limits"))
        .await
        .unwrap();
    let got = bob.fetch_all().await;
    assert_eq!(got.len(), 1, "only the message within the limits arrived");
    assert_eq!(got[0].payload, app_message(b"within the limits"));
}

/// E035 over the wire: more than 100 key packages in one upload, or more
/// than 500 stored for one user and ciphersuite, is refused and stores
/// nothing of that upload.
#[tokio::test]
async fn key_packages_past_the_upload_or_stock_limit_are_e035() {
    use quicproquo_protocol::limits::{MAX_KEY_PACKAGES_PER_UPLOAD, MAX_KEY_PACKAGES_STORED};

    let srv = TestServer::start().await;
    let bob = srv.register("bob").await;
    let mut tag = 0u32;
    let mut batch = |n: usize| -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                tag += 1;
                kp(HYBRID, &tag.to_be_bytes())
            })
            .collect()
    };
    let upload = |packages| Request::UploadKeyPackages {
        auth: bob.auth(),
        packages,
        last_resort: None,
    };
    let stored = |r: Result<Response, _>| match r {
        Ok(Response::UploadKeyPackages { available }) => available,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        code(
            bob.call(upload(batch(MAX_KEY_PACKAGES_PER_UPLOAD + 1)))
                .await
        ),
        ErrorCode::TooManyKeyPackages
    );
    // The stock fills to the limit in uploads of 100; one more is refused.
    let mut available = 0;
    for _ in 0..MAX_KEY_PACKAGES_STORED / MAX_KEY_PACKAGES_PER_UPLOAD {
        available = stored(bob.call(upload(batch(MAX_KEY_PACKAGES_PER_UPLOAD))).await);
    }
    assert_eq!(available as usize, MAX_KEY_PACKAGES_STORED);
    assert_eq!(
        code(bob.call(upload(batch(1))).await),
        ErrorCode::TooManyKeyPackages
    );
    // Nothing of the refused uploads was stored: the count is unchanged.
    assert_eq!(
        stored(
            bob.call(Request::UploadKeyPackages {
                auth: bob.auth(),
                packages: vec![],
                last_resort: Some(kp(HYBRID, b"last resort")),
            })
            .await
        ) as usize,
        MAX_KEY_PACKAGES_STORED
    );
}
