//! The daemon's IPC input: arbitrary bytes split into lines and parsed as
//! requests never panic, and every line gets an answer (a request or an error).
#![no_main]
use libfuzzer_sys::fuzz_target;
use quicproquo_protocol::ipc::codec::LineBuffer;
use quicproquo_protocol::ipc::jsonrpc::IncomingRequest;

fuzz_target!(|data: &[u8]| {
    let mut buf = LineBuffer::new();
    for chunk in data.chunks(7) {
        buf.extend(chunk);
        while let Some(line) = buf.next_line() {
            if let Ok(line) = line {
                let _ = IncomingRequest::parse(line);
            }
        }
    }
});
