//! Names that keep the project's former spelling on purpose.
//!
//! quicproquo was first called quicnprotochat. These strings are inputs to key
//! derivation and to protocol negotiation: changing them would make existing
//! encrypted client state unreadable and break peers that speak the old
//! protocol. They are the only place the old name appears; everything else uses
//! `qpq` / `quicproquo`.

/// Prefix of every HKDF domain-separation label.
pub const HKDF_LABEL_PREFIX: &str = "quicnprotochat";
/// HKDF label for the key that encrypts client state at rest.
pub const HKDF_LABEL_STATE_KEY: &str = "quicnprotochat state key v1";
/// HKDF label for the key that encrypts the local message history.
pub const HKDF_LABEL_HISTORY_KEY: &str = "quicnprotochat history key v1";
/// HKDF label for safety numbers (identity fingerprints compared out of band).
pub const HKDF_LABEL_SAFETY_NUMBER: &str = "quicnprotochat safety number v1";
/// ALPN of direct peer-to-peer connections.
pub const P2P_ALPN: &[u8] = b"quicnprotochat-p2p/1";

#[cfg(test)]
mod tests {
    #[test]
    fn labels_share_the_historical_prefix() {
        for label in [
            super::HKDF_LABEL_STATE_KEY,
            super::HKDF_LABEL_HISTORY_KEY,
            super::HKDF_LABEL_SAFETY_NUMBER,
        ] {
            assert!(label.starts_with(super::HKDF_LABEL_PREFIX));
        }
    }
}
