//! Padding removal: never panics, and whatever it accepts re-pads to the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quicproquo_protocol::padding::{pad, unpad};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = unpad(data) {
        assert_eq!(pad(msg), data);
    }
});
