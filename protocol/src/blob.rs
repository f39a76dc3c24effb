//! Attachment encryption (issue 18): a file is sealed under a fresh random
//! key in fixed-size chunks, so the server stores only ciphertext, and the
//! [`Descriptor`] that lets a member fetch and open it travels inside the MLS
//! message.
//!
//! # Format
//!
//! The ciphertext is the file cut into chunks of `chunk_size` bytes (the last
//! one shorter, or empty for an empty file), each sealed with ChaCha20-Poly1305
//! in the STREAM construction of the `aead` crate (`StreamBE32`: the nonce is
//! a 7-byte prefix, the chunk's 32-bit big-endian index and a byte that says
//! whether it is the last chunk). So each chunk is authenticated with its
//! position: reordering, dropping or duplicating chunks fails to open; a file
//! cut at a chunk boundary lacks its "last" chunk and is reported truncated;
//! bytes appended after the last chunk are refused. Every chunk carries a
//! 16-byte tag, so the ciphertext is [`ciphertext_len`] bytes, which the
//! server checks against what the uploader declared.
//!
//! The nonce prefix is all zeros: a key seals exactly one file, so a (key,
//! nonce) pair never repeats — as long as a resumed upload re-encrypts the
//! *same* bytes. A daemon resuming after a restart must check that the file
//! is unchanged (size, time and the hash of what it already sent) and start
//! over with a new key otherwise. The associated data binds the format
//! version and the chunk size.
//!
//! # Padding
//!
//! The server sees how long each blob is, so the sealed plaintext is the
//! file followed by zero bytes up to [`padded_len`]: at least 4 KiB, then
//! Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files
//! and Communication with PURBs", PETS 2019): the length is rounded up so
//! that only about log log of its bits stay, which costs at most 12 % and
//! leaves a size class of files instead of an exact size. The descriptor
//! carries the true size (inside MLS); the decryptor writes only that many
//! bytes and refuses padding that is not zero.
//!
//! The SHA-256 of the plaintext is in the descriptor and checked at the end
//! as well; the AEAD already rules out a forged file, the hash names the
//! file's content for people and tools.
//!
//! # Bounded memory
//!
//! [`Encryptor`] and [`Decryptor`] take input in pieces of any size and hold
//! at most one chunk. A decryptor hands out plaintext before it has seen the
//! end, so callers write it to a temporary file and keep it only once
//! [`Decryptor::finish`] succeeds: until then the file may still turn out to
//! be truncated.

use std::fmt;
use std::io::{Read, Write};

use chacha20poly1305::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::ChaCha20Poly1305;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub use crate::types::BlobId;

/// The chunk size senders use: large enough that the tag and the per-chunk
/// work are noise (0.02 % overhead), small enough to hold one in memory.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// The smallest chunk size a receiver accepts.
pub const MIN_CHUNK_SIZE: u32 = 1024;
/// The largest chunk size a receiver accepts: the descriptor comes from a
/// peer, and a decryptor buffers one chunk.
pub const MAX_CHUNK_SIZE: u32 = 1024 * 1024;
/// The AEAD tag at the end of every chunk.
pub const TAG_LEN: u64 = 16;
/// Longest file name in a descriptor, in bytes (a common file system limit).
pub const MAX_FILE_NAME_BYTES: usize = 255;
/// Longest content type in a descriptor, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 127;

/// Bound into every chunk: a later format must not open as this one.
/// (`v2`: padded; `v1` was never released to users.)
const FORMAT: &[u8] = b"qpq-blob-v2";

/// Why a file could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("chunk size {0} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE} bytes")]
    ChunkSize(u32),
    #[error("the file is too large for {0}-byte chunks")]
    TooManyChunks(u32),
    /// A chunk failed authentication: the wrong key, or the ciphertext was
    /// altered, reordered or is not this file's.
    #[error(
        "chunk {chunk} of the file is corrupt or not this file's (wrong key, altered or reordered)"
    )]
    Corrupt { chunk: u64 },
    #[error("the file is truncated: {received} of {expected} bytes of ciphertext arrived")]
    Truncated { received: u64, expected: u64 },
    #[error("the file has data after its last chunk")]
    TrailingData,
    #[error("the file decrypted but its SHA-256 is not the one the sender announced")]
    HashMismatch,
    #[error("invalid attachment descriptor: {0}")]
    Descriptor(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A file's 32-byte key: zeroized when dropped, hidden from `Debug`, hex in
/// JSON (only ever inside an MLS message).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct FileKey([u8; 32]);

impl FileKey {
    /// A fresh random key (one per file, never reused).
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        FileKey(key)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        FileKey(bytes)
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn stream(&self) -> StreamBE32<ChaCha20Poly1305> {
        let aead = ChaCha20Poly1305::new((&self.0).into());
        StreamBE32::from_aead(aead, &Default::default())
    }
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(<hidden>)")
    }
}

impl Serialize for FileKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(hex::encode(self.0)))
    }
}

impl<'de> Deserialize<'de> for FileKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.as_bytes(), &mut key)
            .map_err(|_| serde::de::Error::custom("a file key is 64 hex digits"))?;
        Ok(FileKey(key))
    }
}

/// Serde for fixed byte strings as hex (blob ids and hashes in JSON).
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; N];
        hex::decode_to_slice(text.as_bytes(), &mut out)
            .map_err(|_| serde::de::Error::custom(format!("expected {} hex digits", N * 2)))?;
        Ok(out)
    }
}

impl Serialize for BlobId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        hex_bytes::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for BlobId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex_bytes::deserialize(d).map(BlobId)
    }
}

impl BlobId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        BlobId(id)
    }
}

/// What a member needs to fetch and open an attachment; travels inside the
/// MLS message, so the server never sees the key, name, type or hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    pub blob_id: BlobId,
    pub key: FileKey,
    /// Plaintext bytes.
    pub size: u64,
    pub chunk_size: u32,
    #[serde(with = "hex_bytes")]
    pub sha256: [u8; 32],
    pub file_name: String,
    pub content_type: String,
}

impl Descriptor {
    /// Checks what a peer controls: the chunk size (bounded memory), a file
    /// name that is one harmless path component, a printable content type.
    /// Front-ends still sanitize the name before printing it.
    pub fn validate(&self) -> Result<(), BlobError> {
        check_chunk_size(self.chunk_size)?;
        chunk_count(self.size, self.chunk_size)?;
        let name = self.file_name.as_str();
        if name.is_empty() || name == "." || name == ".." {
            return Err(BlobError::Descriptor("the file name is empty"));
        }
        if name.len() > MAX_FILE_NAME_BYTES {
            return Err(BlobError::Descriptor("the file name is too long"));
        }
        if name
            .chars()
            .any(|c| c == '/' || c == '\\' || crate::text::is_terminal_unsafe(c))
        {
            return Err(BlobError::Descriptor(
                "the file name has a path separator or a control character",
            ));
        }
        let ct = self.content_type.as_str();
        if ct.len() > MAX_CONTENT_TYPE_BYTES || !ct.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BlobError::Descriptor(
                "the content type is not a short printable ASCII word",
            ));
        }
        Ok(())
    }

    /// The ciphertext length the server holds for this file.
    pub fn ciphertext_len(&self) -> Result<u64, BlobError> {
        ciphertext_len(self.size, self.chunk_size)
    }
}

fn check_chunk_size(chunk_size: u32) -> Result<(), BlobError> {
    if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Ok(())
    } else {
        Err(BlobError::ChunkSize(chunk_size))
    }
}

/// Files shorter than this are padded to it (most small files then look
/// alike to the server).
pub const MIN_PADDED_LEN: u64 = 4096;

/// The plaintext length sealed for a file of `size` bytes: Padmé of at
/// least [`MIN_PADDED_LEN`] (see the module doc). Never shorter than `size`;
/// at most 12 % longer past the minimum.
pub fn padded_len(size: u64) -> u64 {
    let l = size.max(MIN_PADDED_LEN);
    // e = ⌊log2 l⌋, s = ⌊log2 e⌋ + 1: keep s significant bits after the top.
    let e = 63 - l.leading_zeros();
    let s = 32 - e.leading_zeros();
    let mask = (1u64 << (e - s)) - 1;
    // Rounding up overflows only within 2^(e-s) of u64::MAX, far past any
    // size a chunk count allows; saturate rather than wrap.
    l.checked_add(mask).map_or(!mask, |v| v & !mask)
}

/// How many chunks a file of `size` bytes has once padded: at least one.
pub fn chunk_count(size: u64, chunk_size: u32) -> Result<u64, BlobError> {
    check_chunk_size(chunk_size)?;
    let n = padded_len(size).div_ceil(u64::from(chunk_size)).max(1);
    // StreamBE32 counts chunks in 32 bits and reserves the largest value.
    if n >= u64::from(u32::MAX) {
        return Err(BlobError::TooManyChunks(chunk_size));
    }
    Ok(n)
}

/// The ciphertext length of a file of `size` bytes (padded, with a tag
/// per chunk).
pub fn ciphertext_len(size: u64, chunk_size: u32) -> Result<u64, BlobError> {
    Ok(padded_len(size) + chunk_count(size, chunk_size)? * TAG_LEN)
}

fn aad(chunk_size: u32) -> [u8; FORMAT.len() + 4] {
    let mut aad = [0u8; FORMAT.len() + 4];
    aad[..FORMAT.len()].copy_from_slice(FORMAT);
    aad[FORMAT.len()..].copy_from_slice(&chunk_size.to_be_bytes());
    aad
}

/// What sealing a file produced, for its [`Descriptor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    pub size: u64,
    pub sha256: [u8; 32],
}

/// Seals a file piece by piece: feed it with [`update`](Self::update) (any
/// piece size), end with [`finish`](Self::finish); ciphertext is appended to
/// the caller's buffer as chunks complete.
pub struct Encryptor {
    stream: StreamBE32<ChaCha20Poly1305>,
    chunk_size: u32,
    aad: [u8; FORMAT.len() + 4],
    /// The chunk being filled: plaintext, zeroized when dropped.
    buf: Zeroizing<Vec<u8>>,
    index: u32,
    size: u64,
    hasher: Sha256,
}

impl Encryptor {
    pub fn new(key: &FileKey, chunk_size: u32) -> Result<Self, BlobError> {
        check_chunk_size(chunk_size)?;
        Ok(Encryptor {
            stream: key.stream(),
            chunk_size,
            aad: aad(chunk_size),
            buf: Zeroizing::new(Vec::with_capacity(chunk_size as usize + TAG_LEN as usize)),
            index: 0,
            size: 0,
            hasher: Sha256::new(),
        })
    }

    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), BlobError> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        while !data.is_empty() {
            let take = self.room(out)?.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Room left in the chunk being filled. A full chunk is sealed only
    /// once more bytes show it is not the last, so that happens here.
    fn room(&mut self, out: &mut Vec<u8>) -> Result<usize, BlobError> {
        if self.buf.len() == self.chunk_size as usize {
            self.seal(false, out)?;
        }
        Ok(self.chunk_size as usize - self.buf.len())
    }

    /// Pads, seals the last chunk; returns the file's size and hash.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<Sealed, BlobError> {
        let mut padding = padded_len(self.size) - self.size;
        while padding > 0 {
            let take = (self.room(out)? as u64).min(padding) as usize;
            let filled = self.buf.len();
            self.buf.resize(filled + take, 0);
            padding -= take as u64;
        }
        self.seal(true, out)?;
        Ok(Sealed {
            size: self.size,
            sha256: self.hasher.clone().finalize().into(),
        })
    }

    fn seal(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), BlobError> {
        if self.index == u32::MAX {
            return Err(BlobError::TooManyChunks(self.chunk_size));
        }
        self.stream
            .encrypt_in_place(self.index, last, &self.aad, &mut *self.buf)
            .map_err(|_| BlobError::TooManyChunks(self.chunk_size))?;
        out.extend_from_slice(&self.buf);
        self.buf.clear();
        self.index += 1;
        Ok(())
    }
}

/// Opens a file piece by piece against its [`Descriptor`]: feed ciphertext
/// with [`update`](Self::update) (any piece size), end with
/// [`finish`](Self::finish), which reports truncation and a wrong hash.
/// Plaintext is appended to the caller's buffer chunk by chunk.
pub struct Decryptor {
    stream: StreamBE32<ChaCha20Poly1305>,
    chunk_size: u32,
    aad: [u8; FORMAT.len() + 4],
    size: u64,
    chunks: u64,
    /// The chunk being received; `index == chunks` once the last is open.
    buf: Zeroizing<Vec<u8>>,
    index: u64,
    received: u64,
    hasher: Sha256,
    sha256: [u8; 32],
}

impl Decryptor {
    pub fn new(descriptor: &Descriptor) -> Result<Self, BlobError> {
        descriptor.validate()?;
        let chunk_size = descriptor.chunk_size;
        Ok(Decryptor {
            stream: descriptor.key.stream(),
            chunk_size,
            aad: aad(chunk_size),
            size: descriptor.size,
            chunks: chunk_count(descriptor.size, chunk_size)?,
            buf: Zeroizing::new(Vec::with_capacity(chunk_size as usize + TAG_LEN as usize)),
            index: 0,
            received: 0,
            hasher: Sha256::new(),
            sha256: descriptor.sha256,
        })
    }

    /// The ciphertext length of the chunk being received.
    fn expected_len(&self) -> usize {
        let chunk = u64::from(self.chunk_size);
        let plain = if self.index + 1 < self.chunks {
            chunk
        } else {
            padded_len(self.size) - (self.chunks - 1) * chunk
        };
        (plain + TAG_LEN) as usize
    }

    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), BlobError> {
        while !data.is_empty() {
            if self.index == self.chunks {
                return Err(BlobError::TrailingData);
            }
            let want = self.expected_len();
            let take = (want - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            self.received += take as u64;
            data = &data[take..];
            if self.buf.len() == want {
                self.open(out)?;
            }
        }
        Ok(())
    }

    fn open(&mut self, out: &mut Vec<u8>) -> Result<(), BlobError> {
        let last = self.index + 1 == self.chunks;
        // chunk_count keeps the index below u32::MAX.
        let position = self.index as u32;
        self.stream
            .decrypt_in_place(position, last, &self.aad, &mut *self.buf)
            .map_err(|_| BlobError::Corrupt { chunk: self.index })?;
        // The file's bytes, then (in the last chunks) its zero padding.
        let start = self.index * u64::from(self.chunk_size);
        let keep = self.size.saturating_sub(start).min(self.buf.len() as u64) as usize;
        if self.buf[keep..].iter().any(|&b| b != 0) {
            return Err(BlobError::Corrupt { chunk: self.index });
        }
        self.buf.truncate(keep);
        self.hasher.update(&self.buf);
        out.extend_from_slice(&self.buf);
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// Checks that the whole file arrived and that its hash is the announced one.
    pub fn finish(self) -> Result<(), BlobError> {
        if self.index < self.chunks {
            return Err(BlobError::Truncated {
                received: self.received,
                expected: ciphertext_len(self.size, self.chunk_size)?,
            });
        }
        let hash: [u8; 32] = self.hasher.clone().finalize().into();
        if hash != self.sha256 {
            return Err(BlobError::HashMismatch);
        }
        Ok(())
    }
}

/// Reads `input` to its end in `chunk_size` pieces, hands each piece to
/// `step`, and writes what it produces to `output`: one loop for both ways.
fn pump(
    chunk_size: u32,
    mut input: impl Read,
    mut output: impl Write,
    mut step: impl FnMut(&[u8], &mut Vec<u8>) -> Result<(), BlobError>,
) -> Result<Vec<u8>, BlobError> {
    let mut piece = vec![0u8; chunk_size as usize];
    let mut out = Vec::with_capacity(chunk_size as usize + TAG_LEN as usize);
    loop {
        let n = match input.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        step(&piece[..n], &mut out)?;
        output.write_all(&out)?;
        out.clear();
    }
    piece.zeroize();
    Ok(out)
}

/// Seals everything `input` yields into `output`, holding one chunk at a time.
pub fn encrypt_stream(
    key: &FileKey,
    chunk_size: u32,
    input: impl Read,
    mut output: impl Write,
) -> Result<Sealed, BlobError> {
    let mut enc = Encryptor::new(key, chunk_size)?;
    let mut out = pump(chunk_size, input, &mut output, |p, o| enc.update(p, o))?;
    let sealed = enc.finish(&mut out)?;
    output.write_all(&out)?;
    output.flush()?;
    Ok(sealed)
}

/// Opens everything `input` yields into `output`, holding one chunk at a
/// time. On an error `output` holds an unverified prefix: discard it.
pub fn decrypt_stream(
    descriptor: &Descriptor,
    input: impl Read,
    mut output: impl Write,
) -> Result<(), BlobError> {
    let mut dec = Decryptor::new(descriptor)?;
    let mut out = pump(descriptor.chunk_size, input, &mut output, |p, o| {
        dec.update(p, o)
    })?;
    dec.finish()?;
    out.zeroize();
    output.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests;
