//! Key package verification at upload: a package is stored only if openmls
//! parses all of it and verifies it, and it is the uploader's.
//!
//! Checked, in order: the bytes are exactly one serialized `MLSMessage`
//! holding a KeyPackage (no trailing bytes); openmls' `KeyPackageIn::validate`
//! passes (the leaf node's and the package's signatures, MLS 1.0, init key
//! distinct from the encryption key, extensions listed in the capabilities,
//! a lifetime that holds by the system clock); the ciphersuite is one of
//! qpq's two; the leaf's signature key is the uploader's identity key (so
//! whoever adds the user adds the key the directory vouches for); the
//! lifetime holds at the request's time and spans at most openmls' maximum
//! range; and a package offered as the last resort carries the last_resort
//! extension. What is stored is the end of the lifetime, after which the
//! server neither hands the package out nor keeps it.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{MlsMessageBodyIn, MlsMessageIn, ProtocolVersion};
use openmls_rust_crypto::RustCrypto;
use quicproquo_protocol::types::{Ciphersuite, IdentityKey};

use crate::store::StoredKeyPackage;

/// A verified package: its suite's code and what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub suite: u16,
    pub package: StoredKeyPackage,
}

/// Why a package was refused; the text is for the uploader (it names no
/// internals, and the uploader made the package).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPackageError {
    #[error("a key package is not a serialized MLS KeyPackage message")]
    NotAKeyPackage,
    #[error("a key package does not verify: {0}")]
    Invalid(String),
    #[error("a key package is of MLS ciphersuite {0:#06x}, which this server does not serve")]
    UnknownSuite(u16),
    #[error("a key package's signature key is not the uploader's identity key")]
    NotTheUploaders,
    #[error("a key package's lifetime does not hold now, or is longer than MLS allows")]
    Lifetime,
    #[error("the last-resort key package lacks the last_resort extension")]
    NotLastResort,
}

/// Verifies `bytes` as a key package of `owner`'s at `now_ms`; `last_resort`
/// says it was offered as the last-resort package.
pub fn verify(
    bytes: &[u8],
    owner: &IdentityKey,
    now_ms: u64,
    last_resort: bool,
) -> Result<Verified, KeyPackageError> {
    let mut rest = bytes;
    let message =
        MlsMessageIn::tls_deserialize(&mut rest).map_err(|_| KeyPackageError::NotAKeyPackage)?;
    if !rest.is_empty() {
        return Err(KeyPackageError::NotAKeyPackage);
    }
    let MlsMessageBodyIn::KeyPackage(package) = message.extract() else {
        return Err(KeyPackageError::NotAKeyPackage);
    };
    let package = package
        .validate(&RustCrypto::default(), ProtocolVersion::Mls10)
        .map_err(|e| KeyPackageError::Invalid(e.to_string()))?;
    let suite = u16::from(package.ciphersuite());
    if Ciphersuite::from_code(suite).is_none() {
        return Err(KeyPackageError::UnknownSuite(suite));
    }
    if package.leaf_node().signature_key().as_slice() != owner.0.as_slice() {
        return Err(KeyPackageError::NotTheUploaders);
    }
    let lifetime = package.life_time();
    let now_s = now_ms / 1000;
    if !lifetime.has_acceptable_range()
        || lifetime.not_before() > now_s
        || lifetime.not_after() <= now_s
    {
        return Err(KeyPackageError::Lifetime);
    }
    if last_resort && !package.last_resort() {
        return Err(KeyPackageError::NotLastResort);
    }
    Ok(Verified {
        suite,
        package: StoredKeyPackage {
            data: bytes.to_vec(),
            not_after_ms: lifetime.not_after().saturating_mul(1000),
        },
    })
}
