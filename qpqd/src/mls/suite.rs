//! The two ciphersuites qpq offers, and nothing else. The type is the
//! protocol's [`Ciphersuite`](quicproquo_protocol::types::Ciphersuite) (one
//! type from the IPC to the wire); this module adds its openmls face.

use openmls::prelude::Ciphersuite as OpenMlsSuite;

/// An MLS ciphersuite qpq creates groups and key packages for.
pub use quicproquo_protocol::types::Ciphersuite as Suite;

/// The openmls ciphersuite of a [`Suite`].
pub trait SuiteExt: Sized {
    fn ciphersuite(self) -> OpenMlsSuite;
    fn from_ciphersuite(cs: OpenMlsSuite) -> Option<Self>;
}

impl SuiteExt for Suite {
    fn ciphersuite(self) -> OpenMlsSuite {
        match self {
            Suite::Hybrid => OpenMlsSuite::MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519,
            Suite::Classic => OpenMlsSuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
        }
    }

    fn from_ciphersuite(cs: OpenMlsSuite) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.ciphersuite() == cs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmls_code_points_match_the_protocol_s() {
        for s in Suite::ALL {
            assert_eq!(u16::from(s.ciphersuite()), s.code());
            assert_eq!(Suite::from_ciphersuite(s.ciphersuite()), Some(s));
        }
    }
}
