//! ONNX bytes for ONNX Runtime, written without copying the weights.
//!
//! A session needs the graph serialized with its outputs edited (the taps' means, a
//! probe's tensors, an export's metadata). Cloning the model to edit it held the
//! weights several times at once (the model, the clone, its bytes) beside ONNX
//! Runtime's own copy: VGG16-BN (553 MB of weights) peaked at 3.7 GB just listing its
//! taps. Here only the small part is cloned and edited (every field but the graph's
//! initializers) and serialized; the initializers are then appended from the model
//! itself, inside the same `graph` field, as a second run of its repeated
//! `initializer` field: every protobuf reader concatenates the runs, so it sees one
//! graph with all its initializers (tested with this crate's own parser). Hand-written because the
//! `protobuf` crate cannot serialize a message whose fields are borrowed.

use onnx_protobuf::{GraphProto, ModelProto};
use protobuf::rt::WireType;
use protobuf::{CodedOutputStream, Message};

use crate::error::{Error, Result};

/// SHA-256 (hex) of a model's serialized graph with its weights (external weights
/// included, once they are read in): the model's identity by content, recorded in
/// runs, shards and checkpoints so that another network at the same path is never
/// merged or resumed. Streamed into the hash, not serialized into memory first
/// (VGG16-BN's 553 MB of weights hash in about a second).
pub(crate) fn content_sha256(proto: &ModelProto) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    proto.write_to_writer(&mut h).expect("hashing an in-memory ONNX model cannot fail");
    crate::io::data::hex(&h.finalize())
}

/// `proto` with every field cloned but its graph's initializers.
fn shell(proto: &ModelProto) -> ModelProto {
    let mut s = ModelProto {
        ir_version: proto.ir_version,
        opset_import: proto.opset_import.clone(),
        producer_name: proto.producer_name.clone(),
        producer_version: proto.producer_version.clone(),
        domain: proto.domain.clone(),
        model_version: proto.model_version,
        doc_string: proto.doc_string.clone(),
        metadata_props: proto.metadata_props.clone(),
        training_info: proto.training_info.clone(),
        functions: proto.functions.clone(),
        special_fields: proto.special_fields.clone(),
        ..ModelProto::default()
    };
    if let Some(g) = proto.graph.as_ref() {
        s.graph = protobuf::MessageField::some(GraphProto {
            node: g.node.clone(),
            name: g.name.clone(),
            initializer: Vec::new(),
            sparse_initializer: g.sparse_initializer.clone(),
            doc_string: g.doc_string.clone(),
            input: g.input.clone(),
            output: g.output.clone(),
            value_info: g.value_info.clone(),
            quantization_annotation: g.quantization_annotation.clone(),
            metadata_props: g.metadata_props.clone(),
            special_fields: g.special_fields.clone(),
        });
    }
    s
}

/// Writes `proto` after `edit` to `w`. `edit` sees it without its graph's
/// initializers (it may add nodes, outputs, metadata and initializers of its own, and
/// change anything but the existing weights); the weights are written from `proto`
/// itself.
fn write_edited(proto: &ModelProto, edit: impl FnOnce(&mut ModelProto), w: &mut dyn std::io::Write) -> Result<()> {
    let fail = |e: protobuf::Error| Error::Model(format!("serializing the graph: {e}"));
    let mut s = shell(proto);
    edit(&mut s);
    // The model without its graph, then the graph as one field: the shell graph's
    // fields, then the model's initializers appended to its repeated `initializer`
    // field (a reader concatenates the runs of a repeated field; a second `graph`
    // field would be merged by some parsers and replace the first in others).
    let graph = s.graph.take();
    let mut os = CodedOutputStream::new(w);
    s.write_to(&mut os).map_err(fail)?;
    if let Some(g) = graph {
        let inits = proto.graph.as_ref().map_or(&[][..], |g| g.initializer.as_slice());
        // GraphProto.initializer is field 5, ModelProto.graph field 7: one tag byte each.
        let field = |t: &onnx_protobuf::TensorProto| {
            let n = t.compute_size();
            1 + protobuf::rt::compute_raw_varint64_size(n) + n
        };
        let body: u64 = g.compute_size() + inits.iter().map(field).sum::<u64>();
        os.write_tag(7, WireType::LengthDelimited).map_err(fail)?;
        os.write_raw_varint64(body).map_err(fail)?;
        g.write_to_with_cached_sizes(&mut os).map_err(fail)?;
        for t in inits {
            os.write_tag(5, WireType::LengthDelimited).map_err(fail)?;
            os.write_message_no_tag(t).map_err(fail)?;
        }
    }
    os.flush().map_err(fail)
}

/// The serialized `proto` after `edit` (see [`write_edited`]).
pub(crate) fn edited_bytes(proto: &ModelProto, edit: impl FnOnce(&mut ModelProto)) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_edited(proto, edit, &mut out)?;
    Ok(out)
}

/// Weights above which a session reads its graph from a temporary file rather than
/// from bytes in memory: ONNX Runtime parses a file as a stream, so the serialized
/// copy of the weights is never in memory (VGG16-BN, 553 MB of weights: 2.6 GB peak
/// from bytes).
const FILE_ABOVE_BYTES: u64 = 64 << 20;

/// A serialized graph for ONNX Runtime: bytes, or a temporary file removed when this
/// is dropped.
pub(crate) enum Onnx<'a> {
    /// In memory.
    Bytes(std::borrow::Cow<'a, [u8]>),
    /// A temporary file.
    File(std::path::PathBuf),
}

impl Drop for Onnx<'_> {
    fn drop(&mut self) {
        if let Onnx::File(p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Onnx<'_> {
    /// `proto` after `edit` (see [`write_edited`]): in memory, or in a temporary file
    /// when its weights are large.
    pub(crate) fn edited(proto: &ModelProto, edit: impl FnOnce(&mut ModelProto)) -> Result<Onnx<'static>> {
        let weights: u64 =
            proto.graph.as_ref().map_or(0, |g| g.initializer.iter().map(|t| t.raw_data.len() as u64).sum());
        if weights <= FILE_ABOVE_BYTES {
            return edited_bytes(proto, edit).map(|b| Onnx::Bytes(b.into()));
        }
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("flickertag-{}-{n}.onnx", std::process::id()));
        let file =
            std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| Error::io(&path, e))?;
        let onnx = Onnx::File(path.clone()); // removed on any error below
        let mut w = std::io::BufWriter::new(file);
        write_edited(proto, edit, &mut w)?;
        std::io::Write::flush(&mut w).map_err(|e| Error::io(&path, e))?;
        Ok(onnx)
    }

    /// A session of `builder` over this graph.
    pub(crate) fn commit(&self, mut builder: ort::session::builder::SessionBuilder) -> Result<ort::session::Session> {
        let r = match self {
            Onnx::Bytes(b) => builder.commit_from_memory(b),
            Onnx::File(p) => builder.commit_from_file(p),
        };
        r.map_err(|e| Error::Runtime(format!("loading the graph: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edited_bytes_parse_to_the_model_cloned_and_edited() {
        let m = crate::inference::model::demo_model(3).unwrap();
        assert!(!m.proto.graph.as_ref().unwrap().initializer.is_empty());
        let edit = |p: &mut ModelProto| {
            let g = p.graph.as_mut().unwrap();
            g.output.truncate(1);
            g.initializer.push(crate::inference::model::graph::tensor_i64("extra", &[1, 2]));
            p.metadata_props.push(crate::inference::model::graph::meta("k", "v"));
        };
        // The oracle: the whole model cloned, edited (its own initializers first, then
        // the edit's), serialized by the protobuf crate.
        let mut want = m.proto.clone();
        let extra = {
            let mut s = shell(&m.proto);
            edit(&mut s);
            s.graph.as_ref().unwrap().initializer.clone()
        };
        edit(&mut want);
        let g = want.graph.as_mut().unwrap();
        g.initializer.retain(|t| t.name != "extra");
        g.initializer.extend(extra);
        let got = ModelProto::parse_from_bytes(&edited_bytes(&m.proto, edit).unwrap()).unwrap();
        let order =
            |p: &ModelProto| p.graph.as_ref().unwrap().initializer.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        // The edit's initializers come first (the shell's graph), then the model's.
        let mut got_sorted = got.clone();
        let mut want_sorted = want.clone();
        for p in [&mut got_sorted, &mut want_sorted] {
            p.graph.as_mut().unwrap().initializer.sort_by(|a, b| a.name.cmp(&b.name));
        }
        // Compared as bytes: the messages' cached sizes differ where one was serialized.
        assert_eq!(got_sorted.write_to_bytes().unwrap(), want_sorted.write_to_bytes().unwrap());
        assert_eq!(order(&got)[0], "extra");
        let varint_len = protobuf::rt::compute_raw_varint64_size;
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u64::MAX), 10);
    }
}
