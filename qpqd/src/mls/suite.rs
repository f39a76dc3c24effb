//! The two ciphersuites qpq offers, and nothing else.

use openmls::prelude::Ciphersuite;

/// An MLS ciphersuite qpq creates groups and key packages for.
///
/// Both sign with Ed25519, so the user's identity key works in either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Suite {
    /// `MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519` (0x004F, provisional
    /// code point of draft-ietf-mls-pq-ciphersuites): X25519 + ML-KEM-768.
    #[default]
    Hybrid,
    /// `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519` (0x0001).
    Classic,
}

impl Suite {
    pub const ALL: [Suite; 2] = [Suite::Hybrid, Suite::Classic];

    pub fn ciphersuite(self) -> Ciphersuite {
        match self {
            Suite::Hybrid => Ciphersuite::MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519,
            Suite::Classic => Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
        }
    }

    /// The IANA (or draft) code point.
    pub fn code(self) -> u16 {
        u16::from(self.ciphersuite())
    }

    pub fn from_ciphersuite(cs: Ciphersuite) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.ciphersuite() == cs)
    }

    pub fn from_code(code: u16) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_points() {
        assert_eq!(Suite::Hybrid.code(), 0x004F);
        assert_eq!(Suite::Classic.code(), 0x0001);
        assert_eq!(Suite::default(), Suite::Hybrid);
        for s in Suite::ALL {
            assert_eq!(Suite::from_code(s.code()), Some(s));
            assert_eq!(Suite::from_ciphersuite(s.ciphersuite()), Some(s));
        }
        assert_eq!(Suite::from_code(0x0003), None);
    }
}
