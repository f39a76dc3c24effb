use super::*;

const CHUNK: u32 = MIN_CHUNK_SIZE;
const CT_CHUNK: usize = CHUNK as usize + TAG_LEN as usize;

/// Deterministic, non-repeating test content.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn seal(plain: &[u8], chunk_size: u32) -> (Descriptor, Vec<u8>) {
    let key = FileKey::generate();
    let mut ct = Vec::new();
    let sealed = encrypt_stream(&key, chunk_size, plain, &mut ct).expect("seal");
    let d = Descriptor {
        blob_id: BlobId::generate(),
        key,
        size: sealed.size,
        chunk_size,
        sha256: sealed.sha256,
        file_name: "report.pdf".into(),
        content_type: "application/pdf".into(),
    };
    (d, ct)
}

fn open(d: &Descriptor, ct: &[u8]) -> Result<Vec<u8>, BlobError> {
    let mut plain = Vec::new();
    decrypt_stream(d, ct, &mut plain)?;
    Ok(plain)
}

#[test]
fn round_trip_at_the_chunk_edges() {
    let c = CHUNK as usize;
    for len in [0, 1, c - 1, c, c + 1, 2 * c, 3 * c + 7] {
        let plain = content(len);
        let (d, ct) = seal(&plain, CHUNK);
        assert_eq!(d.size, len as u64);
        assert_eq!(ct.len() as u64, d.ciphertext_len().unwrap(), "len {len}");
        assert_eq!(d.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));
        assert_eq!(open(&d, &ct).unwrap(), plain, "len {len}");
    }
}

#[test]
fn round_trip_of_several_mib_in_odd_pieces() {
    // The default chunk size, fed and drained in pieces that never line up
    // with a chunk: the streaming state machines must not care.
    let plain = content(5 * 1024 * 1024 + 12_345);
    let key = FileKey::generate();
    let mut enc = Encryptor::new(&key, DEFAULT_CHUNK_SIZE).unwrap();
    let mut ct = Vec::new();
    for piece in plain.chunks(70_001) {
        enc.update(piece, &mut ct).unwrap();
    }
    let sealed = enc.finish(&mut ct).unwrap();
    assert_eq!(
        ct.len() as u64,
        ciphertext_len(sealed.size, DEFAULT_CHUNK_SIZE).unwrap()
    );
    let d = Descriptor {
        blob_id: BlobId::generate(),
        key,
        size: sealed.size,
        chunk_size: DEFAULT_CHUNK_SIZE,
        sha256: sealed.sha256,
        file_name: "big.bin".into(),
        content_type: "application/octet-stream".into(),
    };
    let mut dec = Decryptor::new(&d).unwrap();
    let mut out = Vec::new();
    for piece in ct.chunks(4093) {
        dec.update(piece, &mut out).unwrap();
    }
    dec.finish().unwrap();
    assert!(out == plain);
}

#[test]
fn a_flipped_byte_is_detected_in_its_chunk() {
    // Eight chunks: a power of two, so no padding chunk follows.
    let (d, ct) = seal(&content(8 * CHUNK as usize), CHUNK);
    for (pos, chunk) in [(0, 0), (CT_CHUNK + 5, 1), (ct.len() - 1, 7)] {
        let mut bad = ct.clone();
        bad[pos] ^= 0x01;
        assert!(
            matches!(open(&d, &bad), Err(BlobError::Corrupt { chunk: c }) if c == chunk),
            "byte {pos}"
        );
    }
}

#[test]
fn swapped_chunks_are_detected() {
    let (d, ct) = seal(&content(3 * CHUNK as usize), CHUNK);
    let mut bad = ct[CT_CHUNK..2 * CT_CHUNK].to_vec();
    bad.extend_from_slice(&ct[..CT_CHUNK]);
    bad.extend_from_slice(&ct[2 * CT_CHUNK..]);
    assert!(matches!(
        open(&d, &bad),
        Err(BlobError::Corrupt { chunk: 0 })
    ));
}

#[test]
fn a_file_cut_at_a_chunk_boundary_is_truncated() {
    let (d, ct) = seal(&content(3 * CHUNK as usize + 10), CHUNK);
    let cut = &ct[..3 * CT_CHUNK];
    assert!(matches!(
        open(&d, cut),
        Err(BlobError::Truncated { received, expected })
            if received == cut.len() as u64 && expected == ct.len() as u64
    ));
    // Nothing at all is truncated too, not an empty file.
    assert!(matches!(open(&d, &[]), Err(BlobError::Truncated { .. })));
}

#[test]
fn a_shortened_file_cannot_pass_as_complete() {
    // Claim a smaller size so that the cut chunk is expected to be the
    // last: the chunk was sealed as "not last", so it does not open.
    let (mut d, ct) = seal(&content(8 * CHUNK as usize), CHUNK);
    d.size = 6 * u64::from(CHUNK);
    assert_eq!(padded_len(d.size), d.size, "6 KiB is its own size class");
    assert!(matches!(
        open(&d, &ct[..6 * CT_CHUNK]),
        Err(BlobError::Corrupt { chunk: 5 })
    ));
}

#[test]
fn an_extra_chunk_or_trailing_bytes_are_refused() {
    let (d, ct) = seal(&content(2 * CHUNK as usize), CHUNK);
    let mut extra = ct.clone();
    extra.extend_from_slice(&ct[..CT_CHUNK]);
    assert!(matches!(open(&d, &extra), Err(BlobError::TrailingData)));
    let mut one_more = ct.clone();
    one_more.push(0);
    assert!(matches!(open(&d, &one_more), Err(BlobError::TrailingData)));
}

#[test]
fn a_wrong_key_or_chunk_size_opens_nothing() {
    let (mut d, ct) = seal(&content(100), CHUNK);
    let good = d.clone();
    d.key = FileKey::generate();
    assert!(matches!(
        open(&d, &ct),
        Err(BlobError::Corrupt { chunk: 0 })
    ));
    // The chunk size is bound in the associated data.
    let mut d = good.clone();
    d.chunk_size = 2 * CHUNK;
    assert!(matches!(
        open(&d, &ct),
        Err(BlobError::Corrupt { chunk: 0 })
    ));
    // A wrong hash with the right key: the content is not the announced one.
    let mut d = good;
    d.sha256[0] ^= 1;
    assert!(matches!(open(&d, &ct), Err(BlobError::HashMismatch)));
}

#[test]
fn the_descriptor_hides_its_key_and_round_trips_as_json() {
    let (d, _) = seal(b"hello", CHUNK);
    let debug = format!("{d:?}");
    assert!(debug.contains("<hidden>"), "{debug}");
    assert!(!debug.contains(&hex::encode(d.key.expose())), "{debug}");
    let json = serde_json::to_string(&d).unwrap();
    assert!(json.contains(&hex::encode(d.key.expose())));
    let back: Descriptor = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
    let bad = json.replace(&hex::encode(d.key.expose()), "00");
    assert!(serde_json::from_str::<Descriptor>(&bad).is_err());
}

#[test]
fn descriptors_from_peers_are_checked() {
    let (good, ct) = seal(b"hello", CHUNK);
    good.validate().unwrap();
    type Breaker = fn(&mut Descriptor);
    let cases: [(&str, Breaker); 6] = [
        ("chunk too small", |d| d.chunk_size = MIN_CHUNK_SIZE - 1),
        ("chunk too large", |d| d.chunk_size = MAX_CHUNK_SIZE + 1),
        ("path", |d| d.file_name = "../../.bashrc".into()),
        ("escape", |d| d.file_name = "a\u{1b}[2Jb".into()),
        ("dot dot", |d| d.file_name = "..".into()),
        ("type", |d| d.content_type = "text/plain\n".into()),
    ];
    for (what, break_it) in cases {
        let mut d = good.clone();
        break_it(&mut d);
        assert!(d.validate().is_err(), "{what}");
        assert!(open(&d, &ct).is_err(), "{what}");
    }
}

#[test]
fn chunk_counts_and_lengths() {
    // Everything up to 4 KiB is padded to 4 KiB: four chunks of 1 KiB.
    assert_eq!(chunk_count(0, CHUNK).unwrap(), 4);
    assert_eq!(chunk_count(1, CHUNK).unwrap(), 4);
    assert_eq!(chunk_count(4096, CHUNK).unwrap(), 4);
    assert_eq!(chunk_count(4097, CHUNK).unwrap(), 5);
    assert_eq!(chunk_count(1, DEFAULT_CHUNK_SIZE).unwrap(), 1);
    assert_eq!(ciphertext_len(0, CHUNK).unwrap(), 4096 + 4 * TAG_LEN);
    assert!(matches!(
        chunk_count(u64::MAX / 2, CHUNK),
        Err(BlobError::TooManyChunks(_))
    ));
}

#[test]
fn padded_lengths_hide_the_exact_size_at_a_bounded_cost() {
    assert_eq!(padded_len(0), MIN_PADDED_LEN);
    assert_eq!(padded_len(MIN_PADDED_LEN), MIN_PADDED_LEN);
    // Padmé keeps ⌊log2 e⌋ + 1 bits after the top one: 100 MiB is already
    // a multiple of 2 MiB; a byte more rounds up to the next 2 MiB.
    assert_eq!(padded_len(100 << 20), 100 << 20);
    assert_eq!(padded_len((100 << 20) + 1), 102 << 20);
    let mut previous = 0;
    for size in (0..2_000_000u64)
        .step_by(997)
        .chain([u32::MAX.into(), 1 << 40])
    {
        let p = padded_len(size);
        assert!(p >= size && p >= previous, "{size} → {p}");
        if size > MIN_PADDED_LEN {
            assert!(p - size <= size / 8, "{size} → {p}: more than 12 %");
        }
        previous = p;
    }
    assert!(padded_len(u64::MAX) >= u64::MAX - (1 << 58));
}

#[test]
fn files_of_nearby_sizes_look_alike_to_the_server() {
    let (_, small) = seal(&content(5_000), DEFAULT_CHUNK_SIZE);
    let (_, larger) = seal(&content(5_100), DEFAULT_CHUNK_SIZE);
    assert_eq!(small.len(), larger.len());
    let (d, ct) = seal(&content(5_100), DEFAULT_CHUNK_SIZE);
    assert_eq!(
        open(&d, &ct).unwrap(),
        content(5_100),
        "the padding is not written out"
    );
}

#[test]
fn padding_that_is_not_zero_is_refused() {
    // A file of 5,000 bytes claimed as 4,990: the ten bytes past the claim
    // are where padding should be, and they are not zero.
    let (mut d, ct) = seal(&content(5_000), DEFAULT_CHUNK_SIZE);
    d.size = 4_990;
    assert_eq!(padded_len(4_990), padded_len(5_000));
    assert!(matches!(
        open(&d, &ct),
        Err(BlobError::Corrupt { chunk: 0 })
    ));
}
