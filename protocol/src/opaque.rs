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
    type Ksf = Stretch;
}

/// Bound into every login transcript, so a transcript from another protocol
/// or version is never accepted.
pub const CONTEXT: &[u8] = b"qpq/1 opaque login";

/// The client's second registration step, without I/O: the upload that
/// answers the server's `response` to the `state` of
/// `ClientRegistration::<Suite>::start`. Runs the key-stretching function.
pub fn registration_upload(
    state: opaque_ke::ClientRegistration<Suite>,
    password: &[u8],
    response: &[u8],
) -> Result<Vec<u8>, opaque_ke::errors::ProtocolError> {
    let response = opaque_ke::RegistrationResponse::<Suite>::deserialize(response)?;
    let ksf = ksf();
    let params = opaque_ke::ClientRegistrationFinishParameters::new(Default::default(), Some(&ksf));
    let finished = state.finish(&mut rand::rngs::OsRng, password, response, params)?;
    Ok(finished.message.serialize().to_vec())
}

/// The client's second login step, without I/O: the finalization that
/// answers the server's `response` to the `state` of
/// `ClientLogin::<Suite>::start`. A wrong password (or an unknown user)
/// fails here with `InvalidLoginError`. Runs the key-stretching function.
pub fn login_finalization(
    state: opaque_ke::ClientLogin<Suite>,
    password: &[u8],
    response: &[u8],
) -> Result<Vec<u8>, opaque_ke::errors::ProtocolError> {
    let response = opaque_ke::CredentialResponse::<Suite>::deserialize(response)?;
    let ksf = ksf();
    let params =
        opaque_ke::ClientLoginFinishParameters::new(Some(CONTEXT), Default::default(), Some(&ksf));
    let finished = state.finish(&mut rand::rngs::OsRng, password, response, params)?;
    Ok(finished.message.serialize().to_vec())
}

/// Argon2id with 19 MiB of memory and two passes (OWASP's minimum).
pub fn ksf() -> Stretch {
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("constant parameters are valid");
    Stretch(argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params,
    ))
}

/// Argon2id whose working memory goes back to the operating system when it
/// is done, and is zeroed before that.
///
/// `Argon2::hash_password_into` allocates its 19 MiB with `malloc`. glibc
/// serves the first such block with `mmap`, but on freeing it raises its
/// mmap threshold to that size, so every later one comes from the heap and
/// stays in the process after it is freed: qpqd, which stretches once for the
/// state key and once per OPAQUE login, sat at ~40 MiB idle instead of ~22
/// (BENCHMARKS.md, idle RSS). A buffer larger than glibc's highest dynamic
/// threshold (32 MiB) is always mapped and unmapped, and its pages past the
/// ones Argon2 uses are never touched, so they cost address space only. The
/// result is the same as `hash_password_into`'s (Argon2 uses the first
/// `block_count` blocks of the memory it is given).
#[derive(Clone)]
pub struct Stretch(pub argon2::Argon2<'static>);

/// More than glibc's `DEFAULT_MMAP_THRESHOLD_MAX` (32 MiB on 64-bit).
const ALWAYS_MAPPED_BYTES: usize = 33 * 1024 * 1024;

impl Stretch {
    pub fn hash_into(&self, pwd: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
        use zeroize::Zeroize;

        let used = self.0.params().block_count();
        let reserved = used.max(ALWAYS_MAPPED_BYTES / argon2::Block::SIZE + 1);
        let mut memory: Vec<argon2::Block> = Vec::with_capacity(reserved);
        memory.resize(used, argon2::Block::default());
        let result = self
            .0
            .hash_password_into_with_memory(pwd, salt, out, &mut memory[..]);
        for block in &mut memory {
            let words: &mut [u64] = block.as_mut();
            words.zeroize();
        }
        result
    }
}

impl Default for Stretch {
    fn default() -> Self {
        ksf()
    }
}

impl opaque_ke::ksf::Ksf for Stretch {
    fn hash<L: opaque_ke::generic_array::ArrayLength<u8>>(
        &self,
        input: opaque_ke::generic_array::GenericArray<u8, L>,
    ) -> Result<opaque_ke::generic_array::GenericArray<u8, L>, opaque_ke::errors::InternalError>
    {
        // The same zero salt as opaque-ke's own `impl Ksf for Argon2`.
        let mut output = opaque_ke::generic_array::GenericArray::default();
        self.hash_into(&input, &[0; argon2::RECOMMENDED_SALT_LEN], &mut output)
            .map_err(|_| opaque_ke::errors::InternalError::KsfError)?;
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use opaque_ke::ksf::Ksf as _;

    use super::*;

    /// Stretching in our own memory gives what argon2's own allocation
    /// gives, so passwords registered either way still log in.
    #[test]
    fn stretch_matches_argon2s_own_hashing() {
        let input = opaque_ke::generic_array::GenericArray::from([7u8; 64]);
        let ours = ksf().hash(input).unwrap();
        let mut theirs = [0u8; 64];
        ksf()
            .0
            .hash_password_into(&input, &[0; argon2::RECOMMENDED_SALT_LEN], &mut theirs)
            .unwrap();
        assert_eq!(ours.as_slice(), &theirs[..]);
    }
}
