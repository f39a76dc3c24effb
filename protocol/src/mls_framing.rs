//! Reads the public framing of an MLS message (RFC 9420 §6) without
//! decrypting anything: wire format, and for handshake-capable messages the
//! group id, epoch and content type. The server uses it to accept at most one
//! commit per group epoch.
//!
//! Only the fields before any ciphertext are read; the rest of the message is
//! not validated here (the members do that). Variable-length vectors use the
//! MLS variable-length integer (RFC 9420 §2.1.2): 1, 2 or 4 bytes, minimal
//! encoding required, the 8-byte form invalid.

use crate::types::Epoch;

/// MLS 1.0.
const MLS10: u16 = 1;
/// Longest group id the reader accepts (openmls uses 16 bytes by default).
pub const MAX_GROUP_ID: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Application,
    Proposal,
    Commit,
}

/// What the server may know about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// A `PublicMessage` or `PrivateMessage`.
    Group {
        group_id: Vec<u8>,
        epoch: Epoch,
        content_type: ContentType,
        encrypted: bool,
    },
    Welcome,
    GroupInfo,
    /// A `KeyPackage`, with its ciphersuite.
    KeyPackage {
        suite: u16,
    },
}

impl Framing {
    /// `Some((group id, epoch))` if this is a commit.
    pub fn commit(&self) -> Option<(&[u8], Epoch)> {
        match self {
            Framing::Group {
                group_id,
                epoch,
                content_type: ContentType::Commit,
                ..
            } => Some((group_id, *epoch)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("message ends early")]
    Truncated,
    #[error("unsupported MLS protocol version {0}")]
    Version(u16),
    #[error("unknown MLS wire format {0}")]
    WireFormat(u16),
    #[error("invalid variable-length integer")]
    VarInt,
    #[error("group id longer than {MAX_GROUP_ID} bytes")]
    GroupIdTooLong,
    #[error("unknown sender type {0}")]
    SenderType(u8),
    #[error("unknown content type {0}")]
    ContentType(u8),
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FramingError> {
        if self.0.len() < n {
            return Err(FramingError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, FramingError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FramingError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u64(&mut self) -> Result<u64, FramingError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// RFC 9420 §2.1.2 variable-length integer.
    fn varint(&mut self) -> Result<usize, FramingError> {
        let first = self.u8()?;
        let (len, mut v) = match first >> 6 {
            0 => (1, u32::from(first & 0x3f)),
            1 => (2, u32::from(first & 0x3f)),
            2 => (4, u32::from(first & 0x3f)),
            _ => return Err(FramingError::VarInt),
        };
        for &b in self.take(len - 1)? {
            v = (v << 8) | u32::from(b);
        }
        let minimal = match len {
            1 => true,
            2 => v >= 64,
            _ => v >= 16384,
        };
        if !minimal {
            return Err(FramingError::VarInt);
        }
        Ok(v as usize)
    }

    fn vector(&mut self) -> Result<&'a [u8], FramingError> {
        let n = self.varint()?;
        self.take(n)
    }
}

fn content_type(b: u8) -> Result<ContentType, FramingError> {
    match b {
        1 => Ok(ContentType::Application),
        2 => Ok(ContentType::Proposal),
        3 => Ok(ContentType::Commit),
        other => Err(FramingError::ContentType(other)),
    }
}

fn group_id(c: &mut Cursor<'_>) -> Result<Vec<u8>, FramingError> {
    let id = c.vector()?;
    if id.len() > MAX_GROUP_ID {
        return Err(FramingError::GroupIdTooLong);
    }
    Ok(id.to_vec())
}

/// Reads the public framing of a serialized `MLSMessage`.
pub fn read(msg: &[u8]) -> Result<Framing, FramingError> {
    let mut c = Cursor(msg);
    let version = c.u16()?;
    if version != MLS10 {
        return Err(FramingError::Version(version));
    }
    match c.u16()? {
        // PublicMessage: FramedContent { group_id, epoch, sender, authenticated_data, content_type, ... }
        1 => {
            let group_id = group_id(&mut c)?;
            let epoch = Epoch(c.u64()?);
            match c.u8()? {
                // member(leaf_index) / external(sender_index)
                1 | 2 => {
                    c.take(4)?;
                }
                // new_member_proposal / new_member_commit
                3 | 4 => {}
                other => return Err(FramingError::SenderType(other)),
            }
            c.vector()?; // authenticated_data
            let content_type = content_type(c.u8()?)?;
            Ok(Framing::Group {
                group_id,
                epoch,
                content_type,
                encrypted: false,
            })
        }
        // PrivateMessage { group_id, epoch, content_type, authenticated_data, ... }
        2 => {
            let group_id = group_id(&mut c)?;
            let epoch = Epoch(c.u64()?);
            let content_type = content_type(c.u8()?)?;
            Ok(Framing::Group {
                group_id,
                epoch,
                content_type,
                encrypted: true,
            })
        }
        3 => Ok(Framing::Welcome),
        4 => Ok(Framing::GroupInfo),
        5 => {
            let version = c.u16()?;
            if version != MLS10 {
                return Err(FramingError::Version(version));
            }
            Ok(Framing::KeyPackage { suite: c.u16()? })
        }
        other => Err(FramingError::WireFormat(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(n: usize) -> Vec<u8> {
        if n < 64 {
            vec![n as u8]
        } else if n < 16384 {
            ((n as u16) | 0x4000).to_be_bytes().to_vec()
        } else {
            ((n as u32) | 0x8000_0000).to_be_bytes().to_vec()
        }
    }

    fn public(group: &[u8], epoch: u64, sender: &[u8], ct: u8) -> Vec<u8> {
        let mut m = vec![0, 1, 0, 1];
        m.extend(varint(group.len()));
        m.extend_from_slice(group);
        m.extend_from_slice(&epoch.to_be_bytes());
        m.extend_from_slice(sender);
        m.extend(varint(3));
        m.extend_from_slice(b"aad");
        m.push(ct);
        m.extend_from_slice(&[0xee; 40]); // content, signature, tags: not read
        m
    }

    fn private(group: &[u8], epoch: u64, ct: u8) -> Vec<u8> {
        let mut m = vec![0, 1, 0, 2];
        m.extend(varint(group.len()));
        m.extend_from_slice(group);
        m.extend_from_slice(&epoch.to_be_bytes());
        m.push(ct);
        m.extend_from_slice(&[0xee; 40]);
        m
    }

    #[test]
    fn reads_public_and_private_commits() {
        let f = read(&public(b"group-1", 7, &[1, 0, 0, 0, 2], 3)).unwrap();
        assert_eq!(f.commit(), Some((&b"group-1"[..], Epoch(7))));
        let f = read(&public(&[9; 100], 1, &[4], 3)).unwrap(); // new_member_commit
        assert_eq!(f.commit(), Some((&[9u8; 100][..], Epoch(1))));
        let f = read(&private(&[1; 16], u64::MAX, 3)).unwrap();
        assert_eq!(f.commit(), Some((&[1u8; 16][..], Epoch(u64::MAX))));
        let f = read(&private(&[1; 16], 3, 1)).unwrap();
        assert_eq!(f.commit(), None);
        assert!(matches!(
            f,
            Framing::Group {
                content_type: ContentType::Application,
                encrypted: true,
                ..
            }
        ));
    }

    #[test]
    fn other_wire_formats() {
        assert_eq!(read(&[0, 1, 0, 3, 9, 9]).unwrap(), Framing::Welcome);
        assert_eq!(read(&[0, 1, 0, 4]).unwrap(), Framing::GroupInfo);
        assert_eq!(
            read(&[0, 1, 0, 5, 0, 1, 0, 0x4f, 9]).unwrap(),
            Framing::KeyPackage { suite: 0x4f }
        );
        assert_eq!(read(&[0, 1, 0, 5, 0, 1]), Err(FramingError::Truncated));
        assert_eq!(read(&[0, 1, 0, 9]), Err(FramingError::WireFormat(9)));
        assert_eq!(read(&[0, 2, 0, 1]), Err(FramingError::Version(2)));
    }

    #[test]
    fn refuses_malformed() {
        let good = public(b"g", 1, &[1, 0, 0, 0, 0], 3);
        for cut in 0..24 {
            assert!(read(&good[..cut]).is_err(), "cut {cut}");
        }
        // Non-minimal varint: 1 encoded in two bytes.
        assert_eq!(
            read(&[0, 1, 0, 2, 0x40, 0x01, 0]),
            Err(FramingError::VarInt)
        );
        // The 8-byte varint form is invalid in MLS.
        assert_eq!(read(&[0, 1, 0, 2, 0xc0]), Err(FramingError::VarInt));
        assert_eq!(
            read(&private(&[0; 300], 1, 3)),
            Err(FramingError::GroupIdTooLong)
        );
        assert_eq!(
            read(&public(b"g", 1, &[7], 3)),
            Err(FramingError::SenderType(7))
        );
        assert_eq!(
            read(&private(b"g", 1, 0)),
            Err(FramingError::ContentType(0))
        );
    }
}
