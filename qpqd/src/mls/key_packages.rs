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
use openmls::prelude::{KeyPackage, KeyPackageNewError, MlsMessageOut};

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
