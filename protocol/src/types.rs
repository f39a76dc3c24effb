//! Typed values that cross the wire: parse at the boundary, then trust.
//!
//! Every constructor here validates; code past the decoder never handles a raw
//! `Vec<u8>` where one of these types applies.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::limits::{MAX_USERNAME_LEN, SESSION_TOKEN_LEN};

/// Why a value could not be parsed; the decoder maps it to an error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidValue {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

fn fixed<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], InvalidValue> {
    bytes
        .try_into()
        .map_err(|_| InvalidValue::new(field, format!("must be {N} bytes, got {}", bytes.len())))
}

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub fn from_slice(bytes: &[u8]) -> Result<Self, InvalidValue> {
                fixed::<$len>($field, bytes).map(Self)
            }

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

byte_id!(
    /// A user's Ed25519 identity public key; also the address of their mailbox.
    IdentityKey, 32, "identity key"
);
byte_id!(
    /// The 16-byte id of a private 1:1 channel (the plan's item 5.1).
    ChannelId, 16, "channel id"
);
byte_id!(
    /// Names one in-progress OPAQUE login between start and finish.
    LoginId, 16, "login id"
);
byte_id!(
    /// Chosen by the client per enqueue so that a retry is stored once.
    IdempotencyKey, 16, "idempotency key"
);
byte_id!(
    /// Names one encrypted file on the server (issue 18); chosen at random by
    /// the uploader, so a retried create after a lost answer names the same blob.
    BlobId, 16, "blob id"
);

impl ChannelId {
    /// An empty field on the wire means "no channel" (the legacy path).
    pub fn from_optional(bytes: &[u8]) -> Result<Option<Self>, InvalidValue> {
        if bytes.is_empty() {
            Ok(None)
        } else {
            Self::from_slice(bytes).map(Some)
        }
    }
}

/// An MLS epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u64);

/// A session token issued at OPAQUE login. Zeroized on drop; never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SessionToken([u8; SESSION_TOKEN_LEN]);

impl SessionToken {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, InvalidValue> {
        fixed::<SESSION_TOKEN_LEN>("auth token", bytes).map(Self)
    }

    pub fn generate(rng: &mut impl rand::RngCore) -> Self {
        let mut t = [0u8; SESSION_TOKEN_LEN];
        rng.fill_bytes(&mut t);
        Self(t)
    }

    pub fn expose(&self) -> &[u8; SESSION_TOKEN_LEN] {
        &self.0
    }

    /// What the server stores: SHA-256 of the token, so a database leak
    /// yields no usable session.
    pub fn hash(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.0).into()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(***)")
    }
}

/// A validated username: 1–32 characters of `a-z 0-9 . _ -`, starting with a
/// letter or digit. Lower case only, so two users can never differ by case.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    pub const RULE: &'static str =
        "usernames are 1-32 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit";

    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok_len = !s.is_empty() && s.len() <= MAX_USERNAME_LEN;
        let ok_first = s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let ok_chars = s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        });
        if ok_len && ok_first && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new("username", Self::RULE))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.0)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The MLS ciphersuites qpq offers — the one type for them everywhere: the
/// IPC (`"hybrid"` / `"classic"`), the daemon's groups and stored
/// conversations, and (by [`Ciphersuite::code`]) the wire and the server's
/// key-package stock. Both sign with Ed25519, so an identity key works in
/// either.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Ciphersuite {
    /// `MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519` (0x004F, a
    /// provisional code point of draft-ietf-mls-pq-ciphersuites): X25519 +
    /// ML-KEM-768. The default.
    #[default]
    Hybrid,
    /// `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519` (0x0001).
    Classic,
}

impl Ciphersuite {
    pub const ALL: [Ciphersuite; 2] = [Ciphersuite::Hybrid, Ciphersuite::Classic];

    /// The IANA (or draft) code point.
    pub const fn code(self) -> u16 {
        match self {
            Ciphersuite::Hybrid => 0x004F,
            Ciphersuite::Classic => 0x0001,
        }
    }

    pub fn from_code(code: u16) -> Option<Ciphersuite> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The name the IPC and the state database use.
    pub const fn as_str(self) -> &'static str {
        match self {
            Ciphersuite::Hybrid => "hybrid",
            Ciphersuite::Classic => "classic",
        }
    }

    pub fn parse(name: &str) -> Option<Ciphersuite> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Ciphersuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphersuite_codes_and_names_round_trip() {
        assert_eq!(Ciphersuite::Hybrid.code(), 0x004F);
        assert_eq!(Ciphersuite::Classic.code(), 0x0001);
        assert_eq!(Ciphersuite::default(), Ciphersuite::Hybrid);
        for s in Ciphersuite::ALL {
            assert_eq!(Ciphersuite::from_code(s.code()), Some(s));
            assert_eq!(Ciphersuite::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(Ciphersuite::from_code(0x0003), None);
        assert_eq!(Ciphersuite::parse("Hybrid"), None);
    }

    #[test]
    fn usernames() {
        for good in ["a", "alice", "bob.smith", "x_1-2", "0day", &"a".repeat(32)] {
            assert!(Username::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Alice", "-x", ".x", "a b", "é", "a/b", &"a".repeat(33)] {
            let err = Username::parse(bad).unwrap_err();
            assert_eq!(err.field, "username", "{bad}");
        }
    }

    #[test]
    fn fixed_lengths_are_checked() {
        assert!(ChannelId::from_slice(&[0; 16]).is_ok());
        let e = ChannelId::from_slice(&[0; 15]).unwrap_err();
        assert_eq!(e.to_string(), "channel id: must be 16 bytes, got 15");
        assert_eq!(ChannelId::from_optional(&[]).unwrap(), None);
        assert!(IdentityKey::from_slice(&[1; 33]).is_err());
    }

    #[test]
    fn token_debug_hides_secret() {
        let t = SessionToken::from_slice(&[7; 32]).unwrap();
        assert_eq!(format!("{t:?}"), "SessionToken(***)");
        assert_ne!(t.hash(), [7; 32]);
    }
}
