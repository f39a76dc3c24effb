//! Payload padding (the plan's item 5.4): every payload is padded to a bucket
//! size so its length does not reveal the length of the message inside.
//!
//! Format: `u32 big-endian length || message || zero bytes`, the whole padded
//! to a multiple of [`SMALL_BUCKET`] (256 B) up to [`SMALL_LIMIT`] (16 KiB),
//! and to a multiple of [`LARGE_BUCKET`] (16 KiB) beyond. The server checks
//! the format (a payload of a non-bucket size is refused, so a client cannot
//! leak length by mistake) and reads the MLS framing inside; it cannot read
//! anything else.

pub const SMALL_BUCKET: usize = 256;
pub const SMALL_LIMIT: usize = 16 * 1024;
pub const LARGE_BUCKET: usize = 16 * 1024;
const HEADER: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaddingError {
    #[error("padded payload of {0} bytes is not a bucket size")]
    NotABucket(usize),
    #[error("padding header names {claimed} bytes but {available} follow it")]
    BadLength { claimed: usize, available: usize },
    #[error("padding bytes are not zero")]
    NonZeroPadding,
}

/// The padded size of a message of `len` bytes.
pub fn padded_len(len: usize) -> usize {
    let total = len + HEADER;
    let bucket = if total <= SMALL_LIMIT {
        SMALL_BUCKET
    } else {
        LARGE_BUCKET
    };
    total.div_ceil(bucket) * bucket
}

pub fn pad(msg: &[u8]) -> Vec<u8> {
    let len = u32::try_from(msg.len()).expect("messages are far below 4 GiB");
    let mut out = Vec::with_capacity(padded_len(msg.len()));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    out.resize(padded_len(msg.len()), 0);
    out
}

/// The message inside a padded payload, after checking the format.
pub fn unpad(padded: &[u8]) -> Result<&[u8], PaddingError> {
    let Some((header, rest)) = padded.split_first_chunk::<HEADER>() else {
        return Err(PaddingError::NotABucket(padded.len()));
    };
    let claimed = u32::from_be_bytes(*header) as usize;
    if claimed > rest.len() {
        return Err(PaddingError::BadLength {
            claimed,
            available: rest.len(),
        });
    }
    if padded_len(claimed) != padded.len() {
        return Err(PaddingError::NotABucket(padded.len()));
    }
    let (msg, pad) = rest.split_at(claimed);
    if pad.iter().any(|&b| b != 0) {
        return Err(PaddingError::NonZeroPadding);
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(padded_len(0), 256);
        assert_eq!(padded_len(252), 256);
        assert_eq!(padded_len(253), 512);
        assert_eq!(padded_len(1170), 1280); // a 1 KiB MLS application message
        assert_eq!(padded_len(SMALL_LIMIT - 4), SMALL_LIMIT);
        assert_eq!(padded_len(SMALL_LIMIT - 3), 2 * LARGE_BUCKET);
        assert_eq!(padded_len(100_000), 7 * LARGE_BUCKET);
    }

    #[test]
    fn round_trip_every_small_length() {
        for len in 0..2000 {
            let msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            let p = pad(&msg);
            assert_eq!(p.len(), padded_len(len));
            assert_eq!(unpad(&p).unwrap(), &msg[..]);
        }
    }

    #[test]
    fn refuses_bad_padding() {
        assert_eq!(unpad(&[0, 0]), Err(PaddingError::NotABucket(2)));
        let mut p = pad(b"hello");
        p.push(0);
        assert_eq!(unpad(&p), Err(PaddingError::NotABucket(257)));
        let mut p = pad(b"hello");
        p[200] = 1;
        assert_eq!(unpad(&p), Err(PaddingError::NonZeroPadding));
        let mut p = pad(b"hello");
        p[..4].copy_from_slice(&1000u32.to_be_bytes());
        assert!(matches!(unpad(&p), Err(PaddingError::BadLength { .. })));
        // A length that fits but whose bucket differs from the actual size.
        let mut p = pad(&[1; 300]); // 512 bytes
        p[..4].copy_from_slice(&10u32.to_be_bytes());
        assert_eq!(unpad(&p), Err(PaddingError::NotABucket(512)));
    }
}
