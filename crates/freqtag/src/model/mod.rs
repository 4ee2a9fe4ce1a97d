//! Models: loading (ONNX files, PyTorch/safetensors checkpoints of the CIFAR ResNet
//! family), tap points, and the graph edits that record them.
//!
//! # Tap names
//! One dotted naming scheme for every hook point, shared by weights, activations and
//! pruning targets: a tap is named by the module path of the node that produces it
//! (`conv1`, `layer2.3.bn1`, `layer2.3.relu2`). Graphs exported from PyTorch name
//! nodes `/layer1/layer1.0/conv1/Conv`; that becomes `layer1.0.conv1`. Conv taps are
//! also numbered by a 1-based conv ordinal in graph order (`#1` is the stem conv): the
//! paper's "layer 1, 4, 8" count convolutions that way.

pub mod checkpoint;
pub(crate) mod graph;
pub mod pickle;
pub mod resnet;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use onnx_protobuf::{ModelProto, NodeProto};
use protobuf::Message;
use serde::{Deserialize, Serialize};

pub use crate::data::{Preprocess, IMAGENET_MEAN, IMAGENET_STD};
use crate::error::{Error, Result};
pub use checkpoint::{checkpoint_from_bytes, load_checkpoint, StateDict, Tensor};

/// The kind of operation a tap records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum TapKind {
    /// Output of a Conv node.
    Conv,
    /// Output of a BatchNormalization node.
    Bn,
    /// Output of a Relu node.
    Relu,
    /// Output of a residual Add node.
    Add,
}

impl TapKind {
    /// Every kind, in the order listed to users.
    pub const ALL: [TapKind; 4] = [TapKind::Conv, TapKind::Bn, TapKind::Relu, TapKind::Add];

    /// Parses `conv`, `bn`, `relu`, `add` (the same as [`str::parse`]).
    pub fn parse(s: &str) -> Result<TapKind> {
        s.parse()
    }

    /// The name [`TapKind::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            TapKind::Conv => "conv",
            TapKind::Bn => "bn",
            TapKind::Relu => "relu",
            TapKind::Add => "add",
        }
    }
    fn of_op(op: &str) -> Option<TapKind> {
        Some(match op {
            "Conv" => TapKind::Conv,
            "BatchNormalization" => TapKind::Bn,
            "Relu" => TapKind::Relu,
            "Add" => TapKind::Add,
            _ => return None,
        })
    }
}

impl std::str::FromStr for TapKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<TapKind> {
        TapKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::param("taps", "tap kinds, each one of conv, bn, relu, add", s))
    }
}

impl std::fmt::Display for TapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A point in the graph whose output can be recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TapPoint {
    /// Dotted module path, e.g. `layer2.3.conv1`.
    pub name: String,
    /// The ONNX tensor the node writes.
    pub tensor: String,
    /// What the node computes.
    pub kind: TapKind,
    /// 1-based position among Conv nodes (conv taps only).
    #[serde(deserialize_with = "Option::deserialize")]
    pub conv_ordinal: Option<usize>,
}

/// A loaded model: its ONNX graph, the input it takes, and its tap points.
#[derive(Debug, Clone)]
pub struct Model {
    /// Short name (`resnet32`, or the file stem).
    pub name: String,
    /// Where it came from.
    pub source: PathBuf,
    /// The graph (kept inside the crate: the ONNX protobuf types are not part of the API).
    pub(crate) proto: ModelProto,
    /// Name of the image input.
    pub input_name: String,
    /// Image input shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// Name of the first graph output (logits for classifiers).
    pub output_name: String,
    /// Normalization the model expects.
    pub preprocess: Preprocess,
    /// Every Conv, BatchNormalization, Relu and Add output, in graph order.
    pub taps: Vec<TapPoint>,
}

/// The model of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// Short name.
    pub name: String,
    /// File it came from (`embedded:...` for the embedded ResNet-32).
    pub source: PathBuf,
    /// Input `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// Normalization applied to the images.
    pub preprocess: Preprocess,
}

/// Most values in one input frame (C x H x W): 256 MB of float32.
pub const MAX_INPUT_ELEMENTS: u64 = 1 << 26;
/// Largest ONNX file read (protobuf's own limit is 2 GB).
pub const MAX_ONNX_BYTES: u64 = 2 << 30;

/// Where the pretrained CIFAR-10 ResNet weights live under a data folder.
pub fn pretrained_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("models").join(format!("{name}-cifar10.th"))
}

impl Model {
    /// Loads a model from a spec: a file (`.onnx`, `.th`, `.pth`, `.pt`, `.safetensors`)
    /// or a pretrained name (`resnet20`, `resnet32`, `resnet44`, `resnet56`) looked up
    /// under `data_dir/models/`. `resnet32` falls back to the copy embedded in freqtag
    /// ([`crate::embedded`]) when the data folder does not have it.
    pub fn load(spec: &str, data_dir: Option<&Path>) -> Result<Model> {
        let path = PathBuf::from(spec);
        if path.exists() {
            return Model::from_file(&path);
        }
        const NAMES: [&str; 4] = ["resnet20", "resnet32", "resnet44", "resnet56"];
        if NAMES.contains(&spec) {
            let local = data_dir.map(|d| pretrained_path(d, spec)).filter(|p| p.exists());
            if spec == crate::embedded::RESNET32_NAME && local.is_none() {
                return Model::embedded_resnet32();
            }
            let dir = data_dir.ok_or_else(|| {
                Error::param("model", "a pretrained name needs the data folder: set FREQTAG_DATA or pass --data", spec)
            })?;
            let p = pretrained_path(dir, spec);
            if !p.exists() {
                return Err(Error::Data { path: p, reason: "pretrained weights not found".into() });
            }
            let mut m = Model::from_file(&p)?;
            m.name = spec.to_string();
            return Ok(m);
        }
        Err(Error::param(
            "model",
            format!("an existing .onnx/.th/.pth/.safetensors file or one of {}", NAMES.join(", ")),
            spec,
        ))
    }

    /// Loads a model file, ONNX or checkpoint, by content.
    pub fn from_file(path: &Path) -> Result<Model> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
        let stem = stem.strip_suffix("-cifar10").unwrap_or(stem).to_string();
        if ext == "onnx" {
            let bytes = crate::data::read_regular_file(path, MAX_ONNX_BYTES)?;
            return Model::from_onnx_bytes(&bytes, path, &stem);
        }
        Model::from_checkpoint(&load_checkpoint(path)?, path, &stem)
    }

    /// What a run records of the model: name, source, input shape, preprocessing.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            source: self.source.clone(),
            input_shape: self.input_shape,
            preprocess: self.preprocess,
        }
    }

    /// The pretrained ResNet-32 embedded in freqtag ([`crate::embedded`]), named
    /// `resnet32`, with [`Model::source`] `embedded:resnet32-cifar10.th`.
    pub fn embedded_resnet32() -> Result<Model> {
        let path = Path::new(crate::embedded::RESNET32_SOURCE);
        let sd = checkpoint_from_bytes(crate::embedded::RESNET32_TH, path)?;
        Model::from_checkpoint(&sd, path, crate::embedded::RESNET32_NAME)
    }

    /// Builds the CIFAR ResNet of a state dict (`path` names it in errors and in
    /// [`Model::source`]).
    pub fn from_checkpoint(sd: &StateDict, path: &Path, name: &str) -> Result<Model> {
        let proto = resnet::build(sd, name).map_err(|e| match e {
            Error::Model(m) => Error::Checkpoint { path: path.to_path_buf(), reason: m },
            e => e,
        })?;
        Model::from_proto(proto, path, name)
    }

    /// Parses ONNX bytes.
    pub fn from_onnx_bytes(bytes: &[u8], path: &Path, name: &str) -> Result<Model> {
        let proto = ModelProto::parse_from_bytes(bytes)
            .map_err(|e| Error::Onnx { path: path.into(), reason: format!("not an ONNX protobuf: {e}") })?;
        Model::from_proto(proto, path, name)
    }

    /// Wraps an ONNX graph, checking it has one 4-D image input, and lists its taps.
    pub(crate) fn from_proto(proto: ModelProto, path: &Path, name: &str) -> Result<Model> {
        let bad = |reason: String| Error::Onnx { path: path.into(), reason };
        let g = proto.graph.as_ref().ok_or_else(|| bad("no graph (is this an ONNX file?)".into()))?;
        if g.node.is_empty() || g.output.is_empty() || proto.opset_import.is_empty() {
            return Err(bad("empty graph: no nodes, outputs or opset (is this an ONNX file?)".into()));
        }
        let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<_> = g.input.iter().filter(|i| !inits.contains(i.name.as_str())).collect();
        if inputs.len() != 1 {
            return Err(bad(format!("expected one image input, found {}", inputs.len())));
        }
        let dims = graph::dims_of(inputs[0]).unwrap_or_default();
        let input_shape = match dims.as_slice() {
            [_, Some(c), Some(h), Some(w)]
                if *c > 0
                    && *h > 0
                    && *w > 0
                    && (*c as u64).saturating_mul(*h as u64).saturating_mul(*w as u64) <= MAX_INPUT_ELEMENTS =>
            {
                [*c as usize, *h as usize, *w as usize]
            }
            [_, Some(c), Some(h), Some(w)] => {
                return Err(bad(format!(
                    "input `{}` is [N, {c}, {h}, {w}]: C x H x W must be 1..={MAX_INPUT_ELEMENTS} values per frame",
                    inputs[0].name
                )))
            }
            _ => {
                return Err(bad(format!(
                    "input `{}` must be [N, C, H, W] with static C, H, W; got {dims:?}",
                    inputs[0].name
                )))
            }
        };
        let meta = |k: &str| proto.metadata_props.iter().find(|p| p.key == k).map(|p| p.value.clone());
        let triple = |s: Option<String>| -> Option<[f32; 3]> {
            let v: Vec<f32> = s?.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            v.try_into().ok()
        };
        let preprocess = match (triple(meta("freqtag.mean")), triple(meta("freqtag.std"))) {
            (Some(mean), Some(std)) => Preprocess { mean, std },
            _ => Preprocess::default(),
        };
        let taps = list_taps(&g.node);
        Ok(Model {
            name: name.to_string(),
            source: path.to_path_buf(),
            input_name: inputs[0].name.clone(),
            input_shape,
            output_name: g.output[0].name.clone(),
            preprocess,
            taps,
            proto,
        })
    }

    /// The serialized ONNX graph (with the preprocessing recorded in its metadata).
    pub fn to_onnx_bytes(&self) -> Vec<u8> {
        let mut p = self.proto.clone();
        p.metadata_props.retain(|m| m.key != "freqtag.mean" && m.key != "freqtag.std");
        let join = |v: [f32; 3]| v.map(|x| x.to_string()).join(",");
        p.metadata_props.push(graph::meta("freqtag.mean", &join(self.preprocess.mean)));
        p.metadata_props.push(graph::meta("freqtag.std", &join(self.preprocess.std)));
        p.write_to_bytes().expect("serializing an in-memory ONNX model cannot fail")
    }

    /// Writes the graph as an ONNX file.
    pub fn save_onnx(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_onnx_bytes()).map_err(|e| Error::io(path, e))
    }

    /// Finds a tap by dotted name, by conv ordinal (`#4`), or by ONNX tensor name.
    pub fn tap(&self, key: &str) -> Result<&TapPoint> {
        let by_ord = key.strip_prefix('#').and_then(|n| n.parse::<usize>().ok());
        self.taps
            .iter()
            .find(|t| match by_ord {
                Some(o) => t.conv_ordinal == Some(o),
                None => t.name == key || t.tensor == key,
            })
            .ok_or_else(|| {
                let some: Vec<&str> = self.taps.iter().take(6).map(|t| t.name.as_str()).collect();
                Error::param(
                    "tap",
                    format!("a tap of {} such as {} ... or #<conv ordinal>", self.name, some.join(", ")),
                    key,
                )
            })
    }

    /// A copy of the model whose graph also outputs the per-channel spatial means
    /// `[N, C, 1, 1]` of `taps` after the logits (what `freqtag export --taps` writes).
    pub fn with_tap_means(&self, taps: &[&TapPoint]) -> Model {
        Model { proto: self.with_taps(taps, false), ..self.clone() }
    }

    /// A copy of the graph whose outputs are the logits followed by, for each tap, its
    /// per-channel spatial mean `[N, C, 1, 1]` (`full = false`, computed in the graph by
    /// GlobalAveragePool) or the full map `[N, C, H, W]` (`full = true`).
    pub(crate) fn with_taps(&self, taps: &[&TapPoint], full: bool) -> ModelProto {
        if full {
            self.with_outputs(&[], taps)
        } else {
            self.with_outputs(taps, &[])
        }
    }

    /// A copy of the graph whose outputs are the logits, then the per-channel spatial
    /// means `[N, C, 1, 1]` of `means`, then the full maps `[N, C, H, W]` of `full`.
    pub(crate) fn with_outputs(&self, means: &[&TapPoint], full: &[&TapPoint]) -> ModelProto {
        let mut p = self.proto.clone();
        let g = p.graph.as_mut().expect("checked at load");
        g.output.truncate(1);
        for t in means {
            let out = format!("freqtag.mean.{}", t.tensor);
            g.node.push(graph::node("GlobalAveragePool", &out, &[&t.tensor], &[&out], vec![]));
            g.output.push(graph::value_info(&out, None));
        }
        for t in full {
            g.output.push(graph::value_info(&t.tensor, None));
        }
        p
    }
}

/// Whether `seg` names an op node of type `op` rather than a module (`Relu`, `Relu_1`).
fn is_op_segment(seg: &str, op: &str) -> bool {
    let base = seg.rsplit_once('_').filter(|(_, n)| n.parse::<u32>().is_ok()).map_or(seg, |(b, _)| b);
    base == op
}

/// Dotted module path from a node name and its op type. Module calls export as
/// `/layer1/layer1.0/conv1/Conv` → `layer1.0.conv1`; functional ops inside a module as
/// `/layer1/layer1.0/Relu_1` → `layer1.0.relu_1` (the op named in lower case).
fn dotted(node_name: &str, op: &str) -> Option<String> {
    let segs: Vec<&str> = node_name.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (last, parents) = segs.split_last()?;
    let functional = is_op_segment(last, op);
    // Conv and BatchNormalization come from modules (nn.Conv2d, nn.BatchNorm2d), never
    // called functionally in the networks freqtag reads: `/features/features.0/Conv` is
    // the module `features.0` of a Sequential, not an op inside a block.
    let module_op = matches!(op, "Conv" | "BatchNormalization");
    let mut path = String::new();
    // True when the last parent segment only refined the path (`layer1` → `layer1.0`):
    // the parent is a container and the op was called functionally inside it.
    let mut container = false;
    let mut prev = "";
    for s in parents {
        if !path.is_empty() && s.starts_with(&format!("{path}.")) {
            path = s.to_string();
            container = true;
        } else if !prev.is_empty() && s.starts_with(&format!("{prev}.")) && path.ends_with(prev) {
            // The legacy exporter repeats a Sequential's name in its child's scope
            // (`downsample/downsample.1`): the child refines the parent, not nests in it.
            path = format!("{}{s}", &path[..path.len() - prev.len()]);
            container = true;
        } else {
            path = if path.is_empty() { s.to_string() } else { format!("{path}.{s}") };
            container = false;
        }
        prev = s;
    }
    Some(if parents.is_empty() {
        if functional {
            last.to_lowercase()
        } else {
            last.to_string()
        }
    } else if functional && container && !module_op {
        format!("{path}.{}", last.to_lowercase())
    } else {
        path
    })
}

fn list_taps(nodes: &[NodeProto]) -> Vec<TapPoint> {
    let mut seen = HashSet::new();
    let mut convs = 0;
    let mut out = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let Some(kind) = TapKind::of_op(&n.op_type) else { continue };
        let Some(tensor) = n.output.first().cloned() else { continue };
        let conv_ordinal = (kind == TapKind::Conv).then(|| {
            convs += 1;
            convs
        });
        let base = dotted(&n.name, &n.op_type).unwrap_or_else(|| format!("{}{i}", n.op_type.to_lowercase()));
        let mut name = base.clone();
        let mut k = 1;
        while !seen.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        out.push(TapPoint { name, tensor, kind, conv_ordinal });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_from_pytorch_exports() {
        assert_eq!(dotted("/layer1/layer1.0/conv1/Conv", "Conv").as_deref(), Some("layer1.0.conv1"));
        assert_eq!(dotted("/conv1/Conv", "Conv").as_deref(), Some("conv1"));
        assert_eq!(dotted("/layer1/layer1.0/relu_1/Relu", "Relu").as_deref(), Some("layer1.0.relu_1"));
        // Functional ops (F.relu, out += shortcut) inside a block, and at the top level.
        assert_eq!(dotted("/layer1/layer1.0/Relu_1", "Relu").as_deref(), Some("layer1.0.relu_1"));
        assert_eq!(dotted("/layer1/layer1.0/Add", "Add").as_deref(), Some("layer1.0.add"));
        assert_eq!(dotted("/Relu", "Relu").as_deref(), Some("relu"));
        // A conv inside a Sequential is named after its module (named_modules()).
        assert_eq!(dotted("/features/features.0/Conv", "Conv").as_deref(), Some("features.0"));
        assert_eq!(
            dotted("/layer2/layer2.0/downsample/downsample.1/BatchNormalization", "BatchNormalization").as_deref(),
            Some("layer2.0.downsample.1")
        );
        // freqtag's own graphs name nodes by their dotted path already.
        assert_eq!(dotted("layer2.3.bn1", "BatchNormalization").as_deref(), Some("layer2.3.bn1"));
        assert_eq!(dotted("relu", "Relu").as_deref(), Some("relu"));
        assert_eq!(dotted("", "Relu"), None);
    }
}
