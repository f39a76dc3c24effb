//! The server's reader of public MLS framing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = quicproquo_protocol::mls_framing::read(data);
});
