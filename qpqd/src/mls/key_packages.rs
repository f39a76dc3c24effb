//! Key packages for the server's directory: a stock of one-use packages and
//! one last-resort package (RFC 9420 last_resort extension), which openmls
//! keeps after a join instead of deleting (group/mls_group/creation.rs
//! `keys_for_welcome`), so an empty stock never makes us unreachable.
//!
//! The private halves stay in this engine's storage; a Welcome can only be
//! opened by the engine (the same database) that built its key package.
//! Packages live for openmls' default lifetime (about 3 months): refresh the
//! stock well before that.

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
