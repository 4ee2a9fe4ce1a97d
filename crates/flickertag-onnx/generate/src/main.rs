//! Writes `crates/flickertag-onnx/src/onnx.rs` from `proto/onnx.proto` with
//! rust-protobuf's pure-Rust parser (no `protoc`), for the lite runtime.
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate folder").to_path_buf();
    let out = std::env::temp_dir().join("flickertag-onnx-generate");
    std::fs::create_dir_all(&out).expect("a temporary folder");
    protobuf_codegen::Codegen::new()
        .pure()
        .customize(protobuf_codegen::Customize::default().lite_runtime(true))
        .includes([root.join("proto")])
        .input(root.join("proto/onnx.proto"))
        .out_dir(&out)
        .run_from_script();
    std::fs::copy(out.join("onnx.rs"), root.join("src/onnx.rs")).expect("writing src/onnx.rs");
}
