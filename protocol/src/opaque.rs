//! The OPAQUE configuration both ends must agree on: ristretto255 for the
//! OPRF and the 3DH key exchange, SHA-512, and Argon2id key stretching on the
//! client (19 MiB, t = 2, p = 1). The server never runs the key-stretching
//! function; it only needs the same type parameters to parse messages.

use opaque_ke::CipherSuite;

/// quicproquo's OPAQUE ciphersuite.
pub struct Suite;

impl CipherSuite for Suite {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2::Sha512>;
    type Ksf = argon2::Argon2<'static>;
}

/// Bound into every login transcript, so a transcript from another protocol
/// or version is never accepted.
pub const CONTEXT: &[u8] = b"qpq/1 opaque login";

/// Argon2id with 19 MiB of memory and two passes (OWASP's minimum).
pub fn ksf() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("constant parameters are valid");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}
