//! Who we are in MLS, and who the others are.
//!
//! The user's Ed25519 identity key is the MLS signature key; the basic
//! credential's identity is the username (UTF-8). The signer is rebuilt from
//! the 32-byte seed on every start, so nothing about it is stored by openmls.
//! A leaf whose credential is not exactly that shape is refused wherever it
//! enters a group (key package, commit, welcome).

use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey};
use openmls::prelude::{BasicCredential, Credential, CredentialType, CredentialWithKey};
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;
use quicproquo_protocol::types::{IdentityKey, Username};

use super::errors::MlsError;

/// The local user: username plus Ed25519 identity key. The secret key is
/// zeroized on drop (ed25519-dalek's `ZeroizeOnDrop`) and never printed.
pub struct Identity {
    username: Username,
    key: SigningKey,
}

impl Identity {
    pub fn new(username: Username, key: SigningKey) -> Self {
        Self { username, key }
    }

    /// From the 32-byte secret seed as kept in the daemon's key store.
    pub fn from_seed(username: Username, seed: &[u8; 32]) -> Self {
        Self::new(username, SigningKey::from_bytes(seed))
    }

    pub fn username(&self) -> &Username {
        &self.username
    }

    pub fn identity_key(&self) -> IdentityKey {
        IdentityKey(self.key.verifying_key().to_bytes())
    }

    pub fn member(&self) -> Member {
        Member {
            username: self.username.clone(),
            identity: self.identity_key(),
        }
    }

    pub(crate) fn credential_with_key(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.username.as_str().as_bytes().to_vec()).into(),
            signature_key: self.key.verifying_key().to_bytes().to_vec().into(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("username", &self.username)
            .field("identity_key", &self.identity_key())
            .field("secret", &"***")
            .finish()
    }
}

impl Signer for Identity {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.key.sign(payload).to_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// A group member as qpq sees one: a username and its identity key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    pub username: Username,
    pub identity: IdentityKey,
}

impl Member {
    /// Parses a leaf's credential and signature key; anything but a basic
    /// credential holding a valid username, with a 32-byte key, is refused.
    pub(crate) fn from_leaf(
        credential: &Credential,
        signature_key: &[u8],
    ) -> Result<Self, MlsError> {
        if credential.credential_type() != CredentialType::Basic {
            return Err(MlsError::InvalidCredential(format!(
                "credential type {:?} (only basic credentials are accepted)",
                credential.credential_type()
            )));
        }
        let basic = BasicCredential::try_from(credential.clone())
            .map_err(|e| MlsError::InvalidCredential(e.to_string()))?;
        let name = std::str::from_utf8(basic.identity())
            .map_err(|_| MlsError::InvalidCredential("username is not UTF-8".into()))?;
        let username =
            Username::parse(name).map_err(|e| MlsError::InvalidCredential(e.to_string()))?;
        let identity = IdentityKey::from_slice(signature_key)
            .map_err(|e| MlsError::InvalidCredential(e.to_string()))?;
        Ok(Self { username, identity })
    }

    pub(crate) fn from_openmls(member: &openmls::prelude::Member) -> Result<Self, MlsError> {
        Self::from_leaf(&member.credential, &member.signature_key)
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.username, self.identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openmls_traits::crypto::OpenMlsCrypto;

    fn alice() -> Identity {
        Identity::from_seed(Username::parse("alice").unwrap(), &[7; 32])
    }

    #[test]
    fn signer_matches_the_credential_key() {
        let id = alice();
        let cwk = id.credential_with_key();
        let sig = id.sign(b"payload").unwrap();
        openmls_rust_crypto::RustCrypto::default()
            .verify_signature(
                SignatureScheme::ED25519,
                b"payload",
                cwk.signature_key.as_slice(),
                &sig,
            )
            .unwrap();
        let m = Member::from_leaf(&cwk.credential, cwk.signature_key.as_slice()).unwrap();
        assert_eq!(m, id.member());
        assert!(!format!("{id:?}").contains("7, 7"));
    }

    #[test]
    fn foreign_credentials_are_refused() {
        let key = alice().identity_key();
        let bad_name = BasicCredential::new(b"Alice!".to_vec()).into();
        assert!(matches!(
            Member::from_leaf(&bad_name, key.as_bytes()),
            Err(MlsError::InvalidCredential(_))
        ));
        let not_utf8 = BasicCredential::new(vec![0xff, 0xfe]).into();
        assert!(Member::from_leaf(&not_utf8, key.as_bytes()).is_err());
        let good = BasicCredential::new(b"alice".to_vec()).into();
        assert!(Member::from_leaf(&good, &[1; 31]).is_err());
        let x509 = Credential::new(CredentialType::X509, vec![1, 2, 3]);
        assert!(Member::from_leaf(&x509, key.as_bytes()).is_err());
    }
}
