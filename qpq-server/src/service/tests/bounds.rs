//! The bounds of issue 15 on what one account may make the server store or
//! hand out: key packages verified at upload, drained at most so fast and
//! deleted when expired; mailboxes with byte quotas and an age limit.
//! Each attack test was written to succeed against the server before the
//! bound existed (it failed then), and passes now that the server refuses
//! or contains the attack.

use super::*;

/// One-time packages of one user a requester may take per hour before it
/// gets the last-resort package (the server's default).
const KEY_PACKAGES_PER_REQUESTER: usize = 10;
/// A sender's share of one mailbox (the server's default), in bytes.
const PAIR_QUOTA: usize = 32 * 1024 * 1024;
const DAY: Duration = Duration::from_secs(24 * 3600);

impl Fixture {
    /// A fixture whose sessions outlive the days a test lets pass.
    async fn long_sessions() -> Self {
        Self::with(|c| c.session_ttl = 365 * DAY).await
    }

    async fn upload(
        &self,
        who: &User,
        packages: Vec<Vec<u8>>,
        last_resort: Option<Vec<u8>>,
    ) -> Response {
        self.handle(Request::UploadKeyPackages {
            auth: who.token.clone(),
            packages,
            last_resort,
        })
        .await
    }

    /// One of `of`'s key packages as `requester` takes it: the package and
    /// whether it was the last-resort one.
    async fn take_key_package(
        &self,
        requester: &User,
        of: &User,
    ) -> Result<(Vec<u8>, bool), ErrorCode> {
        match self
            .handle(Request::FetchKeyPackage {
                auth: requester.token.clone(),
                target: UserRef::Identity(of.identity),
                suite: SUITE,
            })
            .await
        {
            Response::FetchKeyPackage {
                key_package,
                last_resort,
                ..
            } => Ok((key_package, last_resort)),
            Response::Error(e) => Err(e.code),
            other => panic!("fetchKeyPackage: {other:?}"),
        }
    }

    /// What the server's periodic purge does, at the fixture's time.
    async fn purge(&self) {
        self.service.purge(self.now.get()).await.unwrap();
    }
}

// ---- key packages ----

/// Attack (issue 15): an MLS KeyPackage header followed by 300 random bytes
/// was stored, and later handed to a user who wanted to add the uploader.
#[tokio::test]
async fn a_key_package_header_over_random_bytes_is_refused() {
    let f = Fixture::new().await;
    let bob = f.user("bob").await;
    let mut junk = vec![0u8; 300];
    OsRng.fill_bytes(&mut junk);
    let resp = f.upload(&bob, vec![key_package(&junk)], None).await;
    assert_eq!(code(resp), ErrorCode::InvalidPayload);
    let resp = f.upload(&bob, Vec::new(), Some(key_package(&junk))).await;
    assert_eq!(code(resp), ErrorCode::InvalidPayload, "as the last resort");
}

/// Attack (issue 15): mallory uploads well-formed key packages whose leaf
/// signature key is not her identity key, so whoever adds "mallory" adds a
/// key the directory never vouched for.
#[tokio::test]
async fn a_key_package_of_another_signature_key_is_refused() {
    let f = Fixture::new().await;
    let mallory = f.user("mallory").await;
    let other = SigningKey::generate(&mut OsRng);
    let forged = real_key_packages("mallory", &other, 1);
    assert_eq!(
        code(f.upload(&mallory, forged, None).await),
        ErrorCode::InvalidPayload
    );
    let forged = real_last_resort("mallory", &other);
    assert_eq!(
        code(f.upload(&mallory, Vec::new(), Some(forged)).await),
        ErrorCode::InvalidPayload
    );
    // Her own key passes: what was refused is the key, not the package.
    let own = real_key_packages("mallory", &mallory.signing, 1);
    assert_eq!(
        f.upload(&mallory, own, None).await,
        Response::UploadKeyPackages { available: 1 }
    );
}

/// Attack (issue 15): one requester drained a user's one-time packages
/// (after which everyone got the reusable last-resort one).
#[tokio::test]
async fn one_requester_takes_at_most_k_one_time_packages_per_hour() {
    let f = Fixture::new().await;
    let (alice, bob, carol) = (
        f.user("alice").await,
        f.user("bob").await,
        f.user("carol").await,
    );
    let packages = real_key_packages("bob", &bob.signing, KEY_PACKAGES_PER_REQUESTER + 2);
    let last = real_last_resort("bob", &bob.signing);
    stored_packages(f.upload(&bob, packages, Some(last.clone())).await);

    for i in 0..KEY_PACKAGES_PER_REQUESTER {
        let (_, last_resort) = f.take_key_package(&alice, &bob).await.unwrap();
        assert!(!last_resort, "take {i} is a one-time package");
    }
    let (package, last_resort) = f.take_key_package(&alice, &bob).await.unwrap();
    assert!(
        last_resort && package == last,
        "past the limit alice gets the last-resort package"
    );
    let (_, last_resort) = f.take_key_package(&carol, &bob).await.unwrap();
    assert!(
        !last_resort,
        "another requester still gets a one-time package"
    );
    f.advance(Duration::from_secs(3600));
    let (_, last_resort) = f.take_key_package(&alice, &bob).await.unwrap();
    assert!(
        !last_resort,
        "an hour later alice gets one-time packages again"
    );
}

/// Attack (issue 15): expired key packages were never deleted, and handed
/// out after their lifetime (openmls' 84 days) had ended.
#[tokio::test]
async fn expired_key_packages_are_purged_and_never_handed_out() {
    let f = Fixture::long_sessions().await;
    let (alice, bob) = (f.user("alice").await, f.user("bob").await);
    let packages = real_key_packages("bob", &bob.signing, 2);
    let last = real_last_resort("bob", &bob.signing);
    stored_packages(f.upload(&bob, packages, Some(last)).await);
    let (_, last_resort) = f.take_key_package(&alice, &bob).await.unwrap();
    assert!(!last_resort);

    f.advance(85 * DAY);
    assert_eq!(
        f.take_key_package(&alice, &bob).await,
        Err(ErrorCode::NoKeyPackage),
        "neither the expired one-time package nor the expired last resort"
    );
    f.purge().await;
    assert_eq!(
        f.take_key_package(&alice, &bob).await,
        Err(ErrorCode::NoKeyPackage)
    );
}

fn stored_packages(resp: Response) -> u32 {
    match resp {
        Response::UploadKeyPackages { available } => available,
        other => panic!("uploadKeyPackages: {other:?}"),
    }
}

// ---- mailboxes ----

/// Attack (issue 15): one enqueue named the same recipient 1,024 times, so
/// nine requests filled a mailbox.
#[tokio::test]
async fn an_enqueue_naming_a_recipient_twice_is_e038() {
    let f = Fixture::new().await;
    let (alice, bob) = (f.user("alice").await, f.user("bob").await);
    let channel = f.channel(&alice, &bob).await;
    let to_bob = Delivery {
        recipient: bob.identity,
        channel: Some(channel),
    };
    let resp = f
        .handle(Request::Enqueue {
            auth: alice.token.clone(),
            deliveries: vec![to_bob; 2],
            payload: app(b"twice"),
            idempotency_key: idem(),
        })
        .await;
    assert_eq!(code(resp), ErrorCode::DuplicateRecipient);
    assert!(mail(f.fetch(&bob, None).await).is_empty(), "nothing stored");
}

/// Attack (issue 15): one sender filled a user's mailbox, and every other
/// sender got E032 (10,000 messages of up to 4 MiB, kept for ever).
#[tokio::test]
async fn one_sender_cannot_fill_a_mailbox_for_everyone_else() {
    let f = Fixture::new().await;
    let (alice, bob, carol) = (
        f.user("alice").await,
        f.user("bob").await,
        f.user("carol").await,
    );
    let (ab, cb) = (f.channel(&alice, &bob).await, f.channel(&carol, &bob).await);
    let big = app(&vec![7u8; 3 * 1024 * 1024]);
    let mut sent = 0usize;
    let refused = loop {
        match f.send(&alice, &bob, Some(ab), big.clone(), idem()).await {
            Response::Enqueue { .. } => sent += big.len(),
            Response::Error(e) => break e,
            other => panic!("enqueue: {other:?}"),
        }
        assert!(
            sent <= 2 * PAIR_QUOTA,
            "alice stored {sent} bytes for bob and was never refused"
        );
    };
    assert_eq!(refused.code, ErrorCode::QueueFull, "{refused}");
    assert!(sent <= PAIR_QUOTA, "{sent} bytes stored past the share");
    stored(
        f.send(&carol, &bob, Some(cb), app(b"still room for me"), idem())
            .await,
    );
    // Once bob has taken his mail, alice may send again.
    let seqs = mail(f.fetch(&bob, None).await)
        .into_iter()
        .map(|m| m.seq)
        .collect();
    f.handle(Request::Ack {
        auth: bob.token.clone(),
        seqs,
    })
    .await;
    stored(f.send(&alice, &bob, Some(ab), big, idem()).await);
}

/// Attack (issue 15): undelivered mail was kept for ever. Now it goes after
/// 30 days, and its sender gets an expiry notice.
#[tokio::test]
async fn undelivered_mail_expires_after_30_days() {
    let f = Fixture::long_sessions().await;
    let (alice, bob) = (f.user("alice").await, f.user("bob").await);
    let channel = f.channel(&alice, &bob).await;
    let key = idem();
    stored(f.send(&alice, &bob, Some(channel), app(b"old"), key).await);
    f.advance(29 * DAY);
    f.purge().await;
    assert_eq!(mail(f.fetch(&bob, None).await).len(), 1, "kept 29 days");
    f.advance(2 * DAY);
    f.purge().await;
    assert!(
        mail(f.fetch(&bob, None).await).is_empty(),
        "gone after 31 days"
    );
    // Alice is told which of her enqueues expired, and for whom.
    let notices = mail(f.fetch(&alice, None).await);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(
        notices[0].expired,
        Some(quicproquo_protocol::wire::Expired {
            recipient: bob.identity,
            idempotency_key: key,
        })
    );
}
