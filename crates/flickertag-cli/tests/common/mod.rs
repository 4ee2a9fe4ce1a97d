//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The data folder from `FLICKERTAG_DATA`, for the tests marked
/// `#[ignore = "needs the data folder"]` (run with `--include-ignored`, as `make test`
/// does when FLICKERTAG_DATA is set and CI always does). Unset or incomplete: the test
/// fails, naming what is missing; it never passes without running.
pub fn data_dir() -> PathBuf {
    let Some(d) = std::env::var_os("FLICKERTAG_DATA") else {
        panic!("FLICKERTAG_DATA is not set: point it at ../shared/data to run this test");
    };
    let d = PathBuf::from(d);
    let need = [
        "cifar10/test_batch.bin",
        "models/resnet20-cifar10.th",
        "models/resnet32-cifar10.th",
        "models/resnet44-cifar10.th",
        "models/resnet56-cifar10.th",
    ];
    for f in need {
        assert!(d.join(f).is_file(), "FLICKERTAG_DATA={} is set but {f} is missing", d.display());
    }
    d
}

/// The flickertag binary built for this test run.
pub fn flickertag() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flickertag"))
}

/// Runs and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("spawn flickertag");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Runs `flickertag demo` into `dir/run` with no data folder, no user cache and no
/// FLICKERTAG_DATA (the data-free path); returns the run folder and stderr.
pub fn demo_without_data(dir: &std::path::Path, extra: &[&str]) -> (PathBuf, String) {
    let out = dir.join("run");
    let (code, _, err) = run(flickertag()
        .args(["demo", "--out", out.to_str().unwrap()])
        .args(extra)
        .env_remove("FLICKERTAG_DATA")
        .env("HOME", dir)
        .env("XDG_CACHE_HOME", dir));
    assert_eq!(code, 0, "{err}");
    (out, err)
}

/// An ONNX model (opset 17) `input [N, C, H, W] -> nodes -> output`, built with the
/// protobuf crates; `inits` are float initializers (name, dims, one value repeated).
pub fn onnx(input: &[i64], nodes: Vec<onnx_protobuf::NodeProto>, inits: &[(&str, &[i64], f32)]) -> Vec<u8> {
    let inits: Vec<(&str, &[i64], Vec<f32>)> =
        inits.iter().map(|&(n, d, v)| (n, d, vec![v; d.iter().product::<i64>() as usize])).collect();
    onnx_values(input, nodes, &inits)
}

/// [`onnx`] with every initializer's values given (row-major).
pub fn onnx_values(input: &[i64], nodes: Vec<onnx_protobuf::NodeProto>, inits: &[(&str, &[i64], Vec<f32>)]) -> Vec<u8> {
    use onnx_protobuf::{GraphProto, ModelProto, OperatorSetIdProto, TensorProto, ValueInfoProto};
    use protobuf::Message;
    let mut v = ValueInfoProto::new();
    v.name = "input".into();
    let t = v.type_.mut_or_insert_default().mut_tensor_type();
    t.elem_type = 1;
    for &d in input {
        let mut dim = onnx_protobuf::tensor_shape_proto::Dimension::new();
        if d > 0 {
            dim.set_dim_value(d);
        } else {
            dim.set_dim_param("N".into());
        }
        t.shape.mut_or_insert_default().dim.push(dim);
    }
    let mut out = ValueInfoProto::new();
    out.name = "output".into();
    out.type_.mut_or_insert_default().mut_tensor_type().elem_type = 1;
    let mut g = GraphProto::new();
    g.node = nodes;
    g.input = vec![v];
    g.output = vec![out];
    for (name, dims, value) in inits {
        let mut w = TensorProto::new();
        w.name = name.to_string();
        w.dims = dims.to_vec();
        w.data_type = 1;
        assert_eq!(value.len() as i64, dims.iter().product::<i64>(), "initializer {name}");
        w.float_data = value.clone();
        g.initializer.push(w);
    }
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut op = OperatorSetIdProto::new();
    op.version = 17;
    m.opset_import = vec![op];
    // The normalization flickertag must be told (it never assumes one).
    for (k, v) in [("flickertag.mean", "0,0,0"), ("flickertag.std", "1,1,1")] {
        let mut e = onnx_protobuf::StringStringEntryProto::new();
        e.key = k.into();
        e.value = v.into();
        m.metadata_props.push(e);
    }
    m.graph = protobuf::MessageField::some(g);
    m.write_to_bytes().unwrap()
}

pub fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> onnx_protobuf::NodeProto {
    let mut n = onnx_protobuf::NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![output.into()];
    n
}

/// The pickle of the legacy protocol number 1001.
pub const PROTOCOL_1001: &[u8] = b"\x80\x02M\xe9\x03.";

/// A legacy PyTorch file: magic, `protocol` (normally [`PROTOCOL_1001`]), sys_info, then
/// `rest` (object pickle, keys pickle, storages).
pub fn legacy(protocol: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut v = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    v.extend_from_slice(protocol);
    v.extend_from_slice(b"\x80\x02}q\x00.");
    v.extend_from_slice(rest);
    v
}

/// A legacy checkpoint `{"w": tensor}` whose tensor views a 4-element float storage
/// holding `values`, with `shape` and `stride` (each a pickled 2-tuple).
pub fn one_view(shape: &[u8], stride: &[u8], values: [f32; 4]) -> Vec<u8> {
    let mut rest = b"\x80\x02}q\x00X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(".to_vec();
    rest.extend_from_slice(
        b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ",
    );
    rest.extend_from_slice(b"K\x00");
    rest.extend_from_slice(shape);
    rest.extend_from_slice(stride);
    rest.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtRs.");
    rest.extend_from_slice(b"\x80\x02]q\x00X\x01\x00\x00\x000a.");
    rest.extend_from_slice(&4u64.to_le_bytes());
    for x in values {
        rest.extend_from_slice(&x.to_le_bytes());
    }
    legacy(PROTOCOL_1001, &rest)
}

/// Reads a little-endian float32 or float64 C-order NPY file: (shape, values).
pub fn read_npy(p: &std::path::Path) -> (Vec<usize>, Vec<f64>) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(&b[..6], b"\x93NUMPY");
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let f64s = header.contains("'<f8'");
    assert!(f64s || header.contains("'<f4'"), "{header}");
    let shape_txt = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = shape_txt.split(',').filter_map(|x| x.trim().parse().ok()).collect();
    let body = &b[start + hlen..];
    let data = if f64s {
        body.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
    } else {
        body.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
    };
    (shape, data)
}
