//! Key packages for the server's directory: a stock of one-use packages and
//! one last-resort package (RFC 9420 last_resort extension), which openmls
//! keeps after a join instead of deleting (group/mls_group/creation.rs
//! `keys_for_welcome`), so an empty stock never makes us unreachable.
//!
//! The private halves stay in this engine's storage; a Welcome can only be
//! opened by the engine (the same database) that built its key package.
//! Packages live for openmls' default lifetime (about 3 months): refresh the
//! stock well before that.

use crate::mls::SuiteExt as _;
use openmls::ciphersuite::hash_ref::make_key_package_ref;
use openmls::prelude::{
    Ciphersuite as OpenMlsSuite, KeyPackage, KeyPackageNewError, MlsMessageOut,
};
use openmls_traits::storage::StorageProvider as _;
use openmls_traits::OpenMlsProvider as _;
use quicproquo_protocol::mls_framing::{self, Framing};

use super::errors::MlsError;
use super::group::capabilities;
use super::suite::Suite;
use super::MlsEngine;

fn new_error(e: KeyPackageNewError) -> MlsError {
    match e {
        KeyPackageNewError::LibraryError(e) => e.into(),
        KeyPackageNewError::StorageError => MlsError::Storage("writing a key package".into()),
        KeyPackageNewError::UnsupportedCiphersuite(cs) => MlsError::UnsupportedSuite(u16::from(cs)),
        other => MlsError::Refused(other.to_string()),
    }
}

impl MlsEngine {
    fn build_key_packages(
        &mut self,
        suite: Suite,
        n: usize,
        last_resort: bool,
    ) -> Result<Vec<Vec<u8>>, MlsError> {
        let identity = &self.identity;
        self.store.atomic(|p| {
            (0..n)
                .map(|_| {
                    let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities());
                    if last_resort {
                        builder = builder.mark_as_last_resort();
                    }
                    let bundle = builder
                        .build(
                            suite.ciphersuite(),
                            p,
                            identity,
                            identity.credential_with_key(),
                        )
                        .map_err(new_error)?;
                    MlsMessageOut::from(bundle.key_package().clone())
                        .to_bytes()
                        .map_err(|e| MlsError::Internal(e.to_string()))
                })
                .collect()
        })
    }

    /// `n` one-use key packages, each a serialized `MLSMessage`, for upload.
    pub fn key_packages(&mut self, suite: Suite, n: usize) -> Result<Vec<Vec<u8>>, MlsError> {
        self.build_key_packages(suite, n, false)
    }

    /// One key package with the last-resort extension: reusable for any
    /// number of joins until replaced. Upload it as the directory's fallback.
    pub fn last_resort_key_package(&mut self, suite: Suite) -> Result<Vec<u8>, MlsError> {
        self.build_key_packages(suite, 1, true)?
            .pop()
            .ok_or_else(|| MlsError::Internal("no key package built".into()))
    }

    /// Deletes the private keys of one of our key packages (as
    /// [`MlsEngine::key_packages`] serialized it): a Welcome made with it can
    /// no longer be opened. For a replaced last-resort package, which
    /// openmls keeps after every join. Returns `false` for bytes that are
    /// not a key package; deleting keys already gone is not an error.
    pub fn forget_key_package(&mut self, serialized: &[u8]) -> Result<bool, MlsError> {
        let Ok(Framing::KeyPackage { suite }) = mls_framing::read(serialized) else {
            return Ok(false);
        };
        let Ok(suite) = OpenMlsSuite::try_from(suite) else {
            return Ok(false);
        };
        // The MLSMessage header (version, wire format) is four bytes; the
        // reference hashes the KeyPackage after it.
        let Some(package) = serialized.get(4..) else {
            return Ok(false);
        };
        self.store.atomic(|p| {
            let reference = make_key_package_ref(package, suite, p.crypto())
                .map_err(|e| MlsError::Internal(e.to_string()))?;
            p.storage()
                .delete_key_package(&reference)
                .map_err(|_| MlsError::Storage("deleting a key package".into()))?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod forget_tests {
    use openmls::prelude::KeyPackageBundle;
    use openmls_traits::storage::StorageProvider as _;
    use quicproquo_protocol::types::Username;

    use super::*;
    use crate::mls::identity::Identity;

    fn stored(engine: &MlsEngine, serialized: &[u8]) -> bool {
        let p = engine.store.provider();
        let suite =
            OpenMlsSuite::try_from(u16::from_be_bytes([serialized[6], serialized[7]])).unwrap();
        let reference = make_key_package_ref(&serialized[4..], suite, p.crypto()).unwrap();
        let bundle: Option<KeyPackageBundle> = p.storage().key_package(&reference).unwrap();
        bundle.is_some()
    }

    /// A replaced last-resort package's private keys go; the others stay.
    #[test]
    fn forgetting_a_key_package_deletes_its_private_keys_only() {
        let id = Identity::from_seed(Username::parse("dave").unwrap(), &[4; 32]);
        let mut engine =
            MlsEngine::new(rusqlite::Connection::open_in_memory().unwrap(), id).unwrap();
        for suite in Suite::ALL {
            let old = engine.last_resort_key_package(suite).unwrap();
            let new = engine.last_resort_key_package(suite).unwrap();
            assert!(stored(&engine, &old) && stored(&engine, &new));
            assert!(engine.forget_key_package(&old).unwrap());
            assert!(
                !stored(&engine, &old),
                "the replaced package's keys are gone"
            );
            assert!(stored(&engine, &new), "the current one's are kept");
            assert!(engine.forget_key_package(&old).unwrap(), "again: no error");
        }
        assert!(!engine.forget_key_package(b"not a key package").unwrap());
    }
}

#[cfg(test)]
mod tests {
    use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
    use openmls::prelude::{KeyPackageIn, KeyPackageVerifyError, MlsMessageBodyIn, MlsMessageIn};
    use openmls::versions::ProtocolVersion;
    use openmls_traits::OpenMlsProvider;
    use quicproquo_protocol::types::Username;

    use super::*;
    use crate::mls::identity::Identity;
    use crate::mls::provider::MlsStore;

    /// Regression pin: openmls' `mark_as_last_resort` does not list the
    /// extension in the leaf's capabilities, and `KeyPackageIn::validate`
    /// then refuses the package, so every adder would reject our fallback.
    #[test]
    fn last_resort_needs_the_capability() {
        let store = MlsStore::open(rusqlite::Connection::open_in_memory().unwrap()).unwrap();
        let p = store.provider();
        let id = Identity::from_seed(Username::parse("carol").unwrap(), &[3; 32]);
        for suite in Suite::ALL {
            let bare = KeyPackage::builder()
                .mark_as_last_resort()
                .build(suite.ciphersuite(), &p, &id, id.credential_with_key())
                .unwrap();
            let bytes = bare.key_package().tls_serialize_detached().unwrap();
            let parsed = KeyPackageIn::tls_deserialize_exact(bytes).unwrap();
            assert_eq!(
                parsed
                    .validate(p.crypto(), ProtocolVersion::Mls10)
                    .unwrap_err(),
                KeyPackageVerifyError::UnsupportedExtension
            );
        }
        let mut engine =
            MlsEngine::new(rusqlite::Connection::open_in_memory().unwrap(), id).unwrap();
        for suite in Suite::ALL {
            let ours = engine.last_resort_key_package(suite).unwrap();
            let MlsMessageBodyIn::KeyPackage(kp) =
                MlsMessageIn::tls_deserialize_exact(ours).unwrap().extract()
            else {
                panic!("not a key package");
            };
            let kp = kp.validate(p.crypto(), ProtocolVersion::Mls10).unwrap();
            assert!(kp.last_resort());
            assert_eq!(kp.ciphersuite(), suite.ciphersuite());
        }
    }
}
