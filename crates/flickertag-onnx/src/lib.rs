//! ONNX's protocol buffer messages (`ModelProto`, `GraphProto`, `NodeProto`, ...), the
//! types flickertag reads and edits ONNX files with.
//!
//! `src/onnx.rs` is generated, not written: rust-protobuf 3.7.2 (pure-Rust parser,
//! lite runtime) from `proto/onnx.proto` (ONNX IR version 10, Apache-2.0), by
//! `generate/` (`cargo run --manifest-path crates/flickertag-onnx/generate/Cargo.toml`).
//! It replaces the `onnx-protobuf` crate, whose code was generated for protobuf 3.4.0
//! and so held the runtime at a version that overflows the stack on nested groups
//! (RUSTSEC-2024-0437). Readers of untrusted files go through [`parse_model`], which
//! also bounds message nesting.

#[allow(missing_docs, clippy::all)]
mod onnx;

pub use onnx::*;
pub use protobuf::Message;

/// Deepest nesting of messages (and groups) a model file may have: ONNX graphs nest
/// through subgraphs of `If`/`Loop` nodes, attributes, functions and types, far below
/// this (protobuf's own default, and C++ protobuf's, is 100).
pub const MAX_NESTING: u32 = 100;

/// A `ModelProto` read from `bytes`, with message and group nesting bounded by
/// [`MAX_NESTING`]: a crafted file is an error, never a stack overflow.
pub fn parse_model(bytes: &[u8]) -> protobuf::Result<ModelProto> {
    let mut is = protobuf::CodedInputStream::from_bytes(bytes);
    is.set_recursion_limit(MAX_NESTING);
    let m = ModelProto::parse_from(&mut is)?;
    is.check_eof()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose graph holds an unknown field of `depth` nested groups.
    fn nested_groups(depth: usize) -> Vec<u8> {
        // Field 99, wire type 3 (start group) and 4 (end group): tags 0x9b 0x06, 0x9c 0x06.
        let mut graph = Vec::new();
        for _ in 0..depth {
            graph.extend([0x9b, 0x06]);
        }
        for _ in 0..depth {
            graph.extend([0x9c, 0x06]);
        }
        let mut out = vec![0x3a]; // ModelProto.graph: field 7, length-delimited
        let mut n = graph.len();
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend(graph);
        out
    }

    #[test]
    fn deeply_nested_groups_are_an_error_not_a_stack_overflow() {
        // Shallow groups are unknown fields, skipped.
        assert!(parse_model(&nested_groups(10)).is_ok());
        // A million levels (4 MB): protobuf 3.4.0 recursed once per level and overflowed
        // the stack (RUSTSEC-2024-0437); here it is an error.
        let e = parse_model(&nested_groups(1_000_000)).unwrap_err();
        assert!(e.to_string().contains("recursion"), "{e}");
    }
}
