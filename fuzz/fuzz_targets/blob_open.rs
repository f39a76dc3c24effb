//! Opening an attachment: the ciphertext comes from the server and the
//! descriptor's size and chunk size from a peer. Any of them gives the file
//! or an error, never a panic; what opens is exactly `size` bytes. And what
//! the sealer writes opens to the bytes it was given.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quicproquo_protocol::blob::{
    decrypt_stream, encrypt_stream, BlobId, Descriptor, FileKey, MIN_CHUNK_SIZE,
};

fn descriptor(key: FileKey, size: u64, chunk_size: u32, sha256: [u8; 32]) -> Descriptor {
    Descriptor {
        blob_id: BlobId([1; 16]),
        key,
        size,
        chunk_size,
        sha256,
        file_name: "f".into(),
        content_type: "application/octet-stream".into(),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let size = u64::from_le_bytes(data[..8].try_into().unwrap()) % (16 * 1024);
    let chunk_size = u32::from_le_bytes(data[8..12].try_into().unwrap());
    let body = &data[12..];

    // Arbitrary ciphertext against an arbitrary (possibly invalid) descriptor.
    let d = descriptor(FileKey::from_bytes([7; 32]), size, chunk_size, [0; 32]);
    let mut out = Vec::new();
    if decrypt_stream(&d, body, &mut out).is_ok() {
        assert_eq!(out.len() as u64, size);
    }

    // Sealing any bytes opens to them.
    let key = FileKey::from_bytes([9; 32]);
    let chunk = MIN_CHUNK_SIZE + chunk_size % (4 * MIN_CHUNK_SIZE);
    let mut sealed = Vec::new();
    let s = encrypt_stream(&key, chunk, body, &mut sealed).expect("sealing never fails");
    let mut opened = Vec::new();
    decrypt_stream(&descriptor(key, s.size, chunk, s.sha256), &sealed[..], &mut opened)
        .expect("what was sealed opens");
    assert_eq!(opened, body);
});
