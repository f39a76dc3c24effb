//! OPAQUE registration and login, identity binding, sessions, enumeration.

use ed25519_dalek::{Signer, SigningKey};
use opaque_ke::ClientLogin;
use quicproquo_protocol::client::ClientError;
use quicproquo_protocol::errors::ErrorCode;
use quicproquo_protocol::opaque::Suite;
use quicproquo_protocol::types::{IdentityKey, LoginId, SessionToken, Username};
use quicproquo_protocol::wire::{identity_proof_message, Request, Response};

use crate::harness::{code, Register, TestServer};

#[tokio::test]
async fn register_login_and_wrong_password() {
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    assert_ne!(alice.identity, bob.identity);

    // Logging in again gives a fresh, working session.
    let again = alice
        .client
        .login(&alice.username, alice.password.as_bytes())
        .await
        .unwrap();
    assert_ne!(again.token, alice.session.token);

    // A wrong password fails with E011.
    let e = alice.client.login(&alice.username, b"wrong password").await;
    match e {
        Err(ClientError::Server(w)) => assert_eq!(w.code, ErrorCode::LoginFailed),
        other => panic!("{other:?}"),
    }
    // So does an unknown user, identically.
    let e = alice
        .client
        .login(&Username::parse("nobody").unwrap(), b"whatever")
        .await;
    match e {
        Err(ClientError::Server(w)) => assert_eq!(w.code, ErrorCode::LoginFailed),
        other => panic!("{other:?}"),
    }
}

/// The plan's item 1.4: the answer to a login start has the same shape and
/// size whether or not the user exists. (Timing: see BENCHMARKS.md.)
#[tokio::test]
async fn login_start_does_not_reveal_whether_a_user_exists() {
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let mut sizes = Vec::new();
    for name in ["alice", "mallory"] {
        let start = ClientLogin::<Suite>::start(&mut rand::rngs::OsRng, b"guess").unwrap();
        let req = Request::OpaqueLoginStart {
            username: Username::parse(name).unwrap(),
            request: start.message.serialize().to_vec(),
        };
        let raw = alice
            .client
            .call_raw(&quicproquo_protocol::wire::encode_request(&req))
            .await
            .unwrap();
        match quicproquo_protocol::wire::decode_response(&raw).unwrap() {
            Response::OpaqueLoginStart { response, .. } => sizes.push((raw.len(), response.len())),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        sizes[0], sizes[1],
        "existing vs unknown user answers differ"
    );

    // A forged finalization for either gets the same E011 from the server.
    for name in ["alice", "mallory"] {
        let start = ClientLogin::<Suite>::start(&mut rand::rngs::OsRng, b"guess").unwrap();
        let r = alice
            .client
            .call(&Request::OpaqueLoginStart {
                username: Username::parse(name).unwrap(),
                request: start.message.serialize().to_vec(),
            })
            .await
            .unwrap();
        let Response::OpaqueLoginStart { login_id, .. } = r else {
            panic!("{r:?}")
        };
        let forged = Request::OpaqueLoginFinish {
            login_id,
            finalization: vec![7; 64],
        };
        assert_eq!(
            code(alice.client.call(&forged).await),
            ErrorCode::LoginFailed,
            "{name}"
        );
        // The attempt is used up.
        assert_eq!(
            code(alice.client.call(&forged).await),
            ErrorCode::UnknownLogin
        );
    }
    let unknown = Request::OpaqueLoginFinish {
        login_id: LoginId([1; 16]),
        finalization: vec![7; 64],
    };
    assert_eq!(
        code(alice.client.call(&unknown).await),
        ErrorCode::UnknownLogin
    );
}

#[tokio::test]
async fn registration_conflicts_and_identity_proof() {
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let c = &alice.client;

    // The name is taken.
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let id = IdentityKey(key.verifying_key().to_bytes());
    let name = Username::parse("alice").unwrap();
    let proof = key.sign(&identity_proof_message(&name)).to_bytes();
    match c.register(&name, b"pw", id, proof).await {
        Err(ClientError::Server(w)) => assert_eq!(w.code, ErrorCode::UsernameTaken),
        other => panic!("{other:?}"),
    }

    // Someone else's identity key cannot be bound without its signature...
    let carol = Username::parse("carol").unwrap();
    match c.register(&carol, b"pw", alice.identity, [0; 64]).await {
        Err(ClientError::Server(w)) => assert_eq!(w.code, ErrorCode::BadIdentityProof),
        other => panic!("{other:?}"),
    }
    // ...nor with a signature over another name...
    let proof_for_alice = key.sign(&identity_proof_message(&name)).to_bytes();
    match c.register(&carol, b"pw", id, proof_for_alice).await {
        Err(ClientError::Server(w)) => assert_eq!(w.code, ErrorCode::BadIdentityProof),
        other => panic!("{other:?}"),
    }
    // ...and a key already bound stays with its account.
    let dave = srv.register("dave").await;
    drop(dave);
    let reuse_key = SigningKey::generate(&mut rand::rngs::OsRng);
    let reuse_id = IdentityKey(reuse_key.verifying_key().to_bytes());
    let erin = Username::parse("erin").unwrap();
    let frank = Username::parse("frank").unwrap();
    c.register(
        &erin,
        b"pw",
        reuse_id,
        reuse_key.sign(&identity_proof_message(&erin)).to_bytes(),
    )
    .await
    .unwrap();
    match c
        .register(
            &frank,
            b"pw",
            reuse_id,
            reuse_key.sign(&identity_proof_message(&frank)).to_bytes(),
        )
        .await
    {
        Err(ClientError::Server(w)) => assert_eq!(w.code, ErrorCode::IdentityKeyTaken),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn sessions_logout_and_bad_tokens() {
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let fetch = |auth: SessionToken| Request::Fetch {
        auth,
        channel: None,
        limit: 1,
    };
    alice.call(fetch(alice.auth())).await.unwrap();

    let forged = SessionToken::from_slice(&[42; 32]).unwrap();
    assert_eq!(
        code(alice.call(fetch(forged)).await),
        ErrorCode::Unauthenticated
    );

    alice
        .call(Request::Logout { auth: alice.auth() })
        .await
        .unwrap();
    assert_eq!(
        code(alice.call(fetch(alice.auth())).await),
        ErrorCode::Unauthenticated,
        "a revoked token must not work"
    );
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_account() {
    // The test kit lifts the limits; this test is about them.
    let srv = TestServer::start_with(|c| {
        c.rate_limits = quicproquo_server::config::RateLimits::default();
    })
    .await;
    let alice = srv.register("alice").await;
    let limit = quicproquo_protocol::limits::LOGIN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE;
    let mut limited = None;
    // register() logged in once already.
    for i in 1..=limit + 1 {
        let start = ClientLogin::<Suite>::start(&mut rand::rngs::OsRng, b"guess").unwrap();
        let r = alice
            .client
            .call(&Request::OpaqueLoginStart {
                username: alice.username.clone(),
                request: start.message.serialize().to_vec(),
            })
            .await;
        if let Err(ClientError::Server(w)) = r {
            assert_eq!(w.code, ErrorCode::RateLimited);
            assert!(w.retry_after_ms > 0);
            limited = Some(i);
            break;
        }
    }
    assert_eq!(
        limited,
        Some(limit),
        "the {}th attempt should be refused",
        limit + 1
    );
    // Another account is not affected.
    let bob = srv.register("bob").await;
    drop(bob);
}

/// Regression: `opaqueRegisterFinish` needed no `opaqueRegisterStart`, so the
/// per-address registration limit (which runs at the start) could be
/// skipped and usernames squatted without limit. A finish now needs a start
/// for that username in the last five minutes, and each start allows one.
#[tokio::test]
async fn a_registration_finish_needs_its_start() {
    use opaque_ke::ClientRegistration;

    let srv = TestServer::start().await;
    let client = srv.client().await;
    let finish = |name: &str, upload: Vec<u8>| {
        let username = Username::parse(name).unwrap();
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        Request::OpaqueRegisterFinish {
            identity_key: IdentityKey(signing.verifying_key().to_bytes()),
            identity_proof: signing.sign(&identity_proof_message(&username)).to_bytes(),
            username,
            upload,
        }
    };
    // No start at all.
    let r = client.call(&finish("squatter", vec![0; 64])).await;
    assert_eq!(code(r), ErrorCode::UnknownRegistration);
    // After a start the finish is checked on its merits (here: garbage).
    let start = ClientRegistration::<Suite>::start(&mut rand::rngs::OsRng, b"pw").unwrap();
    let r = client
        .call(&Request::OpaqueRegisterStart {
            username: Username::parse("squatter").unwrap(),
            request: start.message.serialize().to_vec(),
        })
        .await
        .unwrap();
    assert!(matches!(r, Response::OpaqueRegisterStart { .. }), "{r:?}");
    let r = client.call(&finish("squatter", vec![0; 64])).await;
    assert_eq!(code(r), ErrorCode::InvalidOpaqueMessage);
    // A real registration works, and its start cannot be used again.
    let alice = srv.register("alice").await;
    let r = alice.client.call(&finish("alice", vec![0; 64])).await;
    assert_eq!(code(r), ErrorCode::UnknownRegistration);
}

/// E001 through the wire: a login for an account whose stored OPAQUE record
/// is corrupt (as a damaged database would hold) is an internal error, and
/// says nothing more; other accounts keep working.
#[tokio::test]
async fn a_corrupt_stored_record_is_e001_and_names_no_detail() {
    let srv = TestServer::start().await;
    let alice = srv.register("alice").await;
    let bob = srv.register("bob").await;
    let db = rusqlite::Connection::open(srv.config.database.sqlite_path().unwrap()).unwrap();
    let changed = db
        .execute(
            "UPDATE accounts SET opaque_record = x'00' WHERE username = 'alice'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    match alice
        .client
        .login(&alice.username, alice.password.as_bytes())
        .await
    {
        Err(ClientError::Server(w)) => {
            assert_eq!(w.code, ErrorCode::Internal);
            assert!(!w.message.contains("OPAQUE"), "{}", w.message);
        }
        other => panic!("expected E001, got {other:?}"),
    }
    bob.client
        .login(&bob.username, bob.password.as_bytes())
        .await
        .expect("another account still logs in");
}

/// E013 over the wire: a client that sends a username outside the rule
/// (here with a capital letter, which the typed client cannot build) gets
/// the code of its own, for a registration and for a login; the same
/// request with the name written right is served.
#[tokio::test]
async fn a_username_outside_the_rule_is_e013() {
    use opaque_ke::ClientRegistration;
    use quicproquo_protocol::wire::{decode_response, encode_request};

    let srv = TestServer::start().await;
    let client = srv.client().await;
    let start = ClientRegistration::<Suite>::start(&mut rand::rngs::OsRng, b"pw").unwrap();
    let login = ClientLogin::<Suite>::start(&mut rand::rngs::OsRng, b"pw").unwrap();
    let requests = [
        Request::OpaqueRegisterStart {
            username: Username::parse("zoe.q").unwrap(),
            request: start.message.serialize().to_vec(),
        },
        Request::OpaqueLoginStart {
            username: Username::parse("zoe.q").unwrap(),
            request: login.message.serialize().to_vec(),
        },
    ];
    for request in requests {
        let good = encode_request(&request);
        let at = good
            .windows(5)
            .position(|w| w == b"zoe.q")
            .expect("the username is in the encoding");
        let mut bad = good.clone();
        bad[at] = b'Z';
        let answer = decode_response(&client.call_raw(&bad).await.unwrap()).unwrap();
        match answer {
            Response::Error(e) => assert_eq!(e.code, ErrorCode::InvalidUsername, "{e}"),
            other => panic!("{other:?}"),
        }
        let answer = decode_response(&client.call_raw(&good).await.unwrap()).unwrap();
        assert!(
            matches!(
                answer,
                Response::OpaqueRegisterStart { .. } | Response::OpaqueLoginStart { .. }
            ),
            "{answer:?}"
        );
    }
}
