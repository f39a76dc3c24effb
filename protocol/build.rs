//! The Cap'n Proto code for `schemas/node.capnp` is committed in
//! `src/generated/`, so a normal build needs only the Rust toolchain. With
//! `QPQ_REGEN_CAPNP=1` this script regenerates it with the `capnp` compiler
//! (Debian: `capnproto`); CI does that and fails on any difference.

fn main() {
    println!("cargo:rerun-if-env-changed=QPQ_REGEN_CAPNP");
    println!("cargo:rerun-if-changed=../schemas/node.capnp");
    if std::env::var_os("QPQ_REGEN_CAPNP").is_none_or(|v| v.is_empty() || v == "0") {
        return;
    }
    capnpc::CompilerCommand::new()
        .src_prefix("../schemas")
        .file("../schemas/node.capnp")
        .output_path("src/generated")
        .default_parent_module(vec!["generated".into()])
        .run()
        .expect("capnp compile failed (is the `capnp` compiler installed?)");
}
