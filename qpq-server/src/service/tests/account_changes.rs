//! A user changes their password or deletes their account: each needs the
//! current password (a login into the same account), not just a session.

use super::*;
use crate::store::Store;

const NEW_PASSWORD: &[u8] = b"a brand new passphrase";

impl Fixture {
    /// The proof an account change carries: a login of `name` with
    /// `password`, finished on the client's side only.
    async fn password_proof(&self, name: &str, password: &[u8]) -> (LoginId, Vec<u8>) {
        self.login_attempt(name, password).await.unwrap()
    }

    /// Changes `me`'s password to `new`, proving it with a login of
    /// `proof_name` with `proof_password`.
    async fn change_password(
        &self,
        me: &User,
        (proof_name, proof_password): (&str, &[u8]),
        new: &[u8],
    ) -> Response {
        let start = ClientRegistration::<Suite>::start(&mut OsRng, new).unwrap();
        let resp = self
            .handle(Request::ChangePasswordStart {
                auth: me.token.clone(),
                request: start.message.serialize().to_vec(),
            })
            .await;
        let Response::ChangePasswordStart { response } = resp else {
            return resp;
        };
        let upload = registration_upload(start.state, new, &response).unwrap();
        let (login_id, finalization) = self.password_proof(proof_name, proof_password).await;
        self.handle(Request::ChangePasswordFinish {
            auth: me.token.clone(),
            upload,
            login_id,
            finalization,
        })
        .await
    }

    async fn delete_account(&self, me: &User, (name, password): (&str, &[u8])) -> Response {
        let (login_id, finalization) = self.password_proof(name, password).await;
        self.handle(Request::DeleteAccount {
            auth: me.token.clone(),
            login_id,
            finalization,
        })
        .await
    }
}

#[tokio::test]
async fn a_new_password_logs_in_and_ends_the_other_sessions() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let (other_token, _) = f.login("alice", PASSWORD).await.unwrap();
    let elsewhere = User {
        token: other_token,
        ..f.user("bob").await
    };
    // Both sessions are in the session cache.
    for s in [&alice, &elsewhere] {
        assert!(matches!(
            f.resolve(s, "alice").await,
            Response::ResolveUser { .. }
        ));
    }

    let resp = f
        .change_password(&alice, ("alice", PASSWORD), NEW_PASSWORD)
        .await;
    assert_eq!(resp, Response::ChangePasswordFinish);

    assert_eq!(
        f.login("alice", PASSWORD).await,
        Err(ErrorCode::LoginFailed),
        "the old password no longer logs in"
    );
    assert!(f.login("alice", NEW_PASSWORD).await.is_ok());
    assert_eq!(
        code(f.resolve(&elsewhere, "alice").await),
        ErrorCode::Unauthenticated,
        "the other session ended at once, though it was cached"
    );
    assert!(
        matches!(
            f.resolve(&alice, "alice").await,
            Response::ResolveUser { .. }
        ),
        "the session that changed the password stays"
    );
}

/// The attack: someone holding only alice's session token (a stolen
/// `state` file, a leaked token) tries to lock her out for good, proving
/// "the password" with a wrong guess or with a login into their own account.
#[tokio::test]
async fn a_stolen_session_cannot_change_the_password_or_delete_the_account() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    f.user("mallory").await;

    for proof in [
        ("alice", b"a wrong guess".as_slice()),
        ("mallory", PASSWORD),
    ] {
        let resp = f.change_password(&alice, proof, NEW_PASSWORD).await;
        assert_eq!(
            code(resp),
            ErrorCode::LoginFailed,
            "password with {proof:?}"
        );
        let resp = f.delete_account(&alice, proof).await;
        assert_eq!(code(resp), ErrorCode::LoginFailed, "delete with {proof:?}");
    }
    assert!(
        f.login("alice", PASSWORD).await.is_ok(),
        "alice's password and account are unchanged"
    );
    // A proof is used once.
    let (login_id, finalization) = f.password_proof("alice", PASSWORD).await;
    for expected in [
        Response::DeleteAccount,
        Response::Error(WireError::bare(ErrorCode::Unauthenticated)),
    ] {
        let resp = f
            .handle(Request::DeleteAccount {
                auth: alice.token.clone(),
                login_id,
                finalization: finalization.clone(),
            })
            .await;
        assert_eq!(resp, expected);
    }
}

#[tokio::test]
async fn a_deleted_account_is_gone_and_its_name_stays_taken() {
    let f = Fixture::new().await;
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    let dm = f.channel(&bob, &alice).await;
    stored(f.send(&bob, &alice, Some(dm), app(b"hi"), idem()).await);

    assert_eq!(
        f.delete_account(&alice, ("alice", PASSWORD)).await,
        Response::DeleteAccount
    );

    assert_eq!(
        code(f.resolve(&alice, "alice").await),
        ErrorCode::Unauthenticated,
        "her session ended"
    );
    assert_eq!(
        code(f.resolve(&bob, "alice").await),
        ErrorCode::AccountDeleted,
        "the directory says her account was deleted"
    );
    assert_eq!(
        code(f.resolve(&bob, "nobody").await),
        ErrorCode::UnknownUser,
        "a name never registered is still unknown"
    );
    assert_eq!(
        f.login("alice", PASSWORD).await,
        Err(ErrorCode::LoginFailed)
    );
    // The store's channel is gone; the delivery service's channel cache may
    // still name it until its entry expires (CHANNEL_CACHE_TTL).
    assert_eq!(
        f.service.store.channel_members(dm).await.unwrap(),
        None,
        "her DM channel is gone"
    );
    // Someone else takes a fresh key and tries her name.
    let start = ClientRegistration::<Suite>::start(&mut OsRng, PASSWORD).unwrap();
    let resp = f
        .handle(Request::OpaqueRegisterStart {
            username: alice.name.clone(),
            request: start.message.serialize().to_vec(),
        })
        .await;
    let Response::OpaqueRegisterStart { response } = resp else {
        panic!("{resp:?}");
    };
    let signing = SigningKey::generate(&mut OsRng);
    let resp = f
        .handle(Request::OpaqueRegisterFinish {
            identity_key: IdentityKey(signing.verifying_key().to_bytes()),
            identity_proof: signing
                .sign(&identity_proof_message(&alice.name))
                .to_bytes(),
            username: alice.name.clone(),
            upload: registration_upload(start.state, PASSWORD, &response).unwrap(),
        })
        .await;
    assert_eq!(
        code(resp),
        ErrorCode::UsernameTaken,
        "the name is never reused"
    );
}
