//! The server's request decoder: any bytes give a request or an error, and a
//! decoded request re-encodes to something that decodes to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quicproquo_protocol::wire::{decode_request, encode_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_request(data) {
        let again = decode_request(&encode_request(&req)).expect("re-encoded request decodes");
        assert_eq!(again, req);
    }
});
