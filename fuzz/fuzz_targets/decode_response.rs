//! The client's response decoder (a malicious or broken server).
#![no_main]
use libfuzzer_sys::fuzz_target;
use quicproquo_protocol::wire::{decode_response, encode_response};

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = decode_response(data) {
        let again = decode_response(&encode_response(&resp)).expect("re-encoded response decodes");
        assert_eq!(again, resp);
    }
});
