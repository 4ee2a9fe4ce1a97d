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

mod arrange;
pub mod checkpoint;
pub mod control;
mod conv_means;
mod edit;
pub(crate) mod graph;
pub mod layout;
mod load;
mod names;
pub mod pickle;
mod probe;
pub mod resnet;
pub(crate) mod scan;
mod select;
pub(crate) mod serialize;
pub mod time;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use onnx_protobuf::ModelProto;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::io::data::{Preprocess, IMAGENET_MEAN, IMAGENET_STD};
pub use checkpoint::{checkpoint_from_bytes, load_checkpoint, StateDict, Tensor};
pub use layout::Layout;
pub use scan::{Skipped, TapKind};
pub use time::{StateLink, Time};

/// A point in the graph whose output can be recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TapPoint {
    /// Module path as PyTorch's `named_modules()` gives it (`layer2.3.conv1`,
    /// `blocks.0.mlp.fc1`), or `<module>.<op>` for a functional op (`layer1.0.add`);
    /// a prefix token of a token tap adds `:cls`, `:dist`, `:reg<i>` (named from the
    /// parameter it is broadcast from) or `:tok<i>` (position `i`, where it does not say).
    pub name: String,
    /// The ONNX tensor it records.
    pub tensor: String,
    /// What the node computes.
    pub kind: TapKind,
    /// 1-based position among conv taps in graph order (conv taps only).
    #[serde(deserialize_with = "Option::deserialize")]
    pub conv_ordinal: Option<usize>,
    /// How the tensor is laid out.
    #[serde(default = "default_layout")]
    pub layout: Layout,
    /// The tensor's shape per frame as the network computes it (without the batch axis).
    #[serde(default)]
    pub dims: Vec<usize>,
    /// The shape flickertag analyses, `[C, H, W]` (channels, then the spatial grid).
    #[serde(default)]
    pub chw: [usize; 3],
    /// Other names that find this tap: enclosing modules with the same output, the
    /// functional name, the ONNX tensor name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// For a conv with a BatchNorm folded into it at export: `"<conv> + <batchnorm>"`.
    /// The tap holds the BatchNorm's output; the conv's own output is in no tensor of
    /// the graph. From the dynamo exporter the tap is named after the BatchNorm
    /// (`bn1`, folded `"conv1 + bn1"`) and the conv is no tap; from the legacy
    /// exporter, which leaves no name for the BatchNorm, it keeps the conv's name
    /// (`conv1`, folded `"conv1 + BatchNorm (unnamed)"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folded: Option<String>,
}

fn default_layout() -> Layout {
    Layout::ChannelsFirst
}

/// A loaded model: its ONNX graph, the input it takes, and its tap points.
#[derive(Debug, Clone)]
pub struct Model {
    /// Short name (`resnet32`, or the file stem).
    pub name: String,
    /// Where it came from.
    pub source: PathBuf,
    /// SHA-256 of the graph with its weights ([`ModelInfo::sha256`]): what the model is,
    /// wherever it lies.
    pub sha256: String,
    /// The graph (kept inside the crate: the ONNX protobuf types are not part of the API).
    pub(crate) proto: ModelProto,
    /// Name of the image input (`[N, C, H, W]`; an NHWC model gets a transposing input).
    pub input_name: String,
    /// Image input shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// Name of the first graph output (logits for classifiers).
    pub output_name: String,
    /// Normalization the model expects (see [`Model::preprocess_known`]).
    pub preprocess: Preprocess,
    /// Whether [`Model::preprocess`] was recorded by the model (checkpoint, ONNX
    /// metadata) or set by the user; when false, [`Model::input_preprocess`] refuses.
    pub preprocess_known: bool,
    /// A batch size the graph cannot run without (a fixed batch axis in a reshape).
    pub fixed_batch: Option<usize>,
    /// Every tap: module outputs and typed tensors, in graph order.
    pub taps: Vec<TapPoint>,
    /// What is not a tap, and why.
    pub skipped: Vec<Skipped>,
    /// What flickertag changed or assumed while loading (printed once, stored in runs).
    pub notes: Vec<String>,
    /// Bytes of all image-dependent float tensors of one frame (from the probe run):
    /// what sizes the inference batch ([`Model::batch_for`]).
    pub frame_bytes: u64,
    /// Layout and per-frame shape of every image-dependent float tensor with a known layout.
    pub(crate) tensors: HashMap<String, (Layout, Vec<usize>)>,
    /// Tensors that hold float16 values (a half-precision model): read through a Cast
    /// to float32 before their means or maps are taken.
    pub(crate) half: std::collections::HashSet<String>,
    /// For each tensor of [`Layout::Arranged`], the row of each grid position (see
    /// `arrange`): what its maps gather.
    pub(crate) arranged: HashMap<String, Vec<i64>>,
    /// How the network relates frames: `None` when it sees each frame alone, else a
    /// clip or a recurrent state ([`time`]).
    pub time: Option<Time>,
}

/// The model of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// Short name.
    pub name: String,
    /// File it came from (`embedded:...` for the embedded ResNet-32).
    pub source: PathBuf,
    /// SHA-256 (hex) of the graph with its weights, external weights included: the
    /// model's identity by content. A shard, checkpoint or prune checkpoint of another
    /// network at the same path is refused by it. Empty in runs of flickertag 0.2.0 and
    /// earlier.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Input `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// Normalization applied to the images.
    pub preprocess: Preprocess,
    /// What flickertag changed or assumed while loading the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// How the network relates frames (absent: each frame alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

impl ModelInfo {
    /// The model in a message: name, the first 12 hex digits of its content hash, and
    /// where it came from: `resnet32 (sha256 0123456789ab..., from m.onnx)`.
    pub fn describe(&self) -> String {
        let hash = if self.sha256.is_empty() {
            "no content hash".to_string()
        } else {
            format!("sha256 {:.12}...", self.sha256)
        };
        format!("{} ({hash}, from {})", self.name, self.source.display())
    }
}

/// Activation memory a batch may hold: [`Model::batch_for`] lowers the batch below it.
pub const BATCH_ACTIVATION_BYTES: u64 = 512 << 20;

/// Most values in one input frame (C x H x W): 256 MB of float32.
pub const MAX_INPUT_ELEMENTS: u64 = 1 << 26;
/// Largest ONNX file read (protobuf's own limit is 2 GB).
pub const MAX_ONNX_BYTES: u64 = 2 << 30;

/// The demonstration model: a randomly initialised ResNet-8 (one block per stage), for
/// demonstrations and tests of the pipeline only.
pub fn demo_model(seed: u64) -> Result<Model> {
    let proto = resnet::build(&resnet::random_weights(1, seed), "demo-resnet8-random")?;
    Model::from_proto(proto, Path::new("<built-in demo>"), "demo-resnet8-random")
}

/// Where the pretrained CIFAR-10 ResNet weights live under a data folder.
pub fn pretrained_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("models").join(format!("{name}-cifar10.th"))
}

impl Model {
    /// Loads a model from a spec: a file (`.onnx`, `.th`, `.pth`, `.pt`, `.safetensors`)
    /// or a pretrained name (`resnet20`, `resnet32`, `resnet44`, `resnet56`) looked up
    /// under `data_dir/models/`. `resnet32` falls back to the copy embedded in flickertag
    /// ([`crate::io::embedded`]) when the data folder does not have it.
    pub fn load(spec: &str, data_dir: Option<&Path>) -> Result<Model> {
        let path = PathBuf::from(spec);
        if path.exists() {
            return Model::from_file(&path);
        }
        const NAMES: [&str; 4] = ["resnet20", "resnet32", "resnet44", "resnet56"];
        if NAMES.contains(&spec) {
            let local = data_dir.map(|d| pretrained_path(d, spec)).filter(|p| p.exists());
            if spec == crate::io::embedded::RESNET32_NAME && local.is_none() {
                return Model::embedded_resnet32();
            }
            let dir = data_dir.ok_or_else(|| {
                Error::param(
                    "model",
                    "a pretrained name needs the data folder: set FLICKERTAG_DATA or pass <data>",
                    spec,
                )
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
            let bytes = crate::io::data::read_regular_file(path, MAX_ONNX_BYTES)?;
            let proto = parse_onnx(&bytes, path)?;
            drop(bytes); // before the probe run: the file is not held beside the model
            return Model::from_proto(proto, path, &stem);
        }
        Model::from_checkpoint(&load_checkpoint(path)?, path, &stem)
    }

    /// The frames per inference call for a requested `batch`: at most as many as keep
    /// all of a batch's activations ([`Model::frame_bytes`]) within
    /// [`BATCH_ACTIVATION_BYTES`], at least 1; the graph's fixed batch when it has one.
    /// Large inputs run as fast or faster in small batches (ResNet-50 at 224 x 224, two
    /// images, 2 cores: 2.29 s at batch 5 with 0.87 GB peak memory, 5.01 s at batch 49
    /// with 4.56 GB; ResNet-32 at 32 x 32 keeps its 80).
    pub fn batch_for(&self, batch: usize) -> usize {
        if let Some(b) = self.fixed_batch {
            return b;
        }
        let cap = (BATCH_ACTIVATION_BYTES / self.frame_bytes.max(1)).max(1);
        batch.min(cap as usize).max(1)
    }

    /// What a run records of the model: name, source, input shape, preprocessing.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            source: self.source.clone(),
            sha256: self.sha256.clone(),
            input_shape: self.input_shape,
            preprocess: self.preprocess,
            notes: self.notes.clone(),
            time: self.time.clone(),
        }
    }

    /// Refuses a model with time ([`Model::time`]) for `what`, which runs frames (or
    /// images) one at a time.
    pub fn require_frames_alone(&self, what: &str) -> Result<()> {
        match &self.time {
            None => Ok(()),
            Some(t) => Err(Error::Model(format!(
                "{what} runs each image alone, and `{}` is a model with time ({}): `flickertag analyze` measures it",
                self.name,
                t.describe()
            ))),
        }
    }

    /// The pretrained ResNet-32 embedded in flickertag ([`crate::io::embedded`]), named
    /// `resnet32`, with [`Model::source`] `embedded:resnet32-cifar10.th`.
    pub fn embedded_resnet32() -> Result<Model> {
        let path = Path::new(crate::io::embedded::RESNET32_SOURCE);
        let sd = checkpoint_from_bytes(crate::io::embedded::RESNET32_TH, path)?;
        Model::from_checkpoint(&sd, path, crate::io::embedded::RESNET32_NAME)
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
        Model::from_proto(parse_onnx(bytes, path)?, path, name)
    }

    /// The serialized ONNX graph (with the preprocessing recorded in its metadata),
    /// written without a copy of the weights.
    pub fn to_onnx_bytes(&self) -> Vec<u8> {
        let join = |v: [f32; 3]| v.map(|x| x.to_string()).join(",");
        let (mean, std) = (join(self.preprocess.mean), join(self.preprocess.std));
        serialize::edited_bytes(&self.proto, |p| {
            p.metadata_props.retain(|m| m.key != "flickertag.mean" && m.key != "flickertag.std");
            p.metadata_props.push(graph::meta("flickertag.mean", &mean));
            p.metadata_props.push(graph::meta("flickertag.std", &std));
        })
        .expect("serializing an in-memory ONNX model cannot fail")
    }

    /// The serialized graph for a session whose outputs are the logits, the
    /// per-channel means of `means`, then the full maps of `full`, written without a
    /// copy of the weights ([`serialize`]).
    pub(crate) fn session_onnx(&self, means: &[&TapPoint], full: &[&TapPoint]) -> Result<serialize::Onnx<'static>> {
        let states = self.state_outputs();
        serialize::Onnx::edited(&self.proto, |p| {
            edit_outputs(p, &self.proto, (&self.half, &self.arranged), means, full, &states)
        })
    }

    /// Writes the graph as an ONNX file, atomically ([`crate::io::atomic`]): a full disk
    /// is an error naming the file, never a truncated model under its name.
    pub fn save_onnx(&self, path: &Path) -> Result<()> {
        crate::io::atomic::write_bytes_atomic(path, &self.to_onnx_bytes())
    }

    /// A copy of the model whose graph also outputs the per-channel means `[N, C]`
    /// (`[N, C, 1, 1]` for 4-D maps) of `taps` after the logits (what
    /// `flickertag export --taps` writes).
    pub fn with_tap_means(&self, taps: &[&TapPoint]) -> Model {
        let proto = self.with_outputs(taps, &[]);
        Model { sha256: serialize::content_sha256(&proto), proto, ..self.clone() }
    }

    /// A copy of the graph whose outputs are the logits, then the per-channel means of
    /// `means` (`[N, C]`, or `[N, C, 1, 1]` for 4-D maps), then the maps
    /// `[N, C, H, W]` of `full` (laid out per [`TapPoint::layout`]).
    pub(crate) fn with_outputs(&self, means: &[&TapPoint], full: &[&TapPoint]) -> ModelProto {
        let mut p = self.proto.clone();
        edit_outputs(&mut p, &self.proto, (&self.half, &self.arranged), means, full, &self.state_outputs());
        p
    }

    /// The outputs that give a recurrent model's next states, in state order (none for
    /// other models): the last outputs of every graph made from it.
    pub(crate) fn state_outputs(&self) -> Vec<String> {
        match &self.time {
            Some(Time::Recurrent { states }) => states.iter().map(|s| s.output.clone()).collect(),
            _ => Vec::new(),
        }
    }
}

/// ONNX bytes read from `path` as a model.
fn parse_onnx(bytes: &[u8], path: &Path) -> Result<ModelProto> {
    onnx_protobuf::parse_model(bytes)
        .map_err(|e| Error::Onnx { path: path.into(), reason: format!("not an ONNX protobuf: {e}") })
}

/// Makes the outputs of `p` its logits, the per-channel means of `means`, the full
/// maps of `full`, then the next states `states` of a recurrent model. `source` is the
/// model `p` was made from (with its weights: `p` may be a copy without them).
fn edit_outputs(
    p: &mut ModelProto,
    source: &ModelProto,
    (half, arranged): (&std::collections::HashSet<String>, &HashMap<String, Vec<i64>>),
    means: &[&TapPoint],
    full: &[&TapPoint],
    states: &[String],
) {
    let convs = conv_means::pointwise_convs(source);
    p.graph.as_mut().expect("checked at load").output.truncate(1);
    let mut e = edit::Editor::new(p);
    // A float16 tensor is cast to float32 once, and its mean or map taken from that.
    let mut cast: HashMap<String, String> = HashMap::new();
    let mut read = |e: &mut edit::Editor, x: &str| -> String {
        if !half.contains(x) {
            return x.to_string();
        }
        cast.entry(x.to_string()).or_insert_with(|| e.cast_to_float(x)).clone()
    };
    for t in means {
        let out = format!("flickertag.mean.{}", t.name);
        match convs.get(t.tensor.as_str()) {
            Some(conv) if t.layout == Layout::ChannelsFirst && t.dims.len() == 3 && !half.contains(&t.tensor) => {
                e.mean_from_input(&out, conv)
            }
            _ => {
                let x = read(&mut e, &t.tensor);
                e.mean(&out, &x, t.layout, &t.dims)
            }
        }
    }
    for t in full {
        let x = read(&mut e, &t.tensor);
        let out = format!("flickertag.map.{}", t.name);
        match (t.layout, arranged.get(&t.tensor)) {
            (Layout::Arranged { channel_axis, .. }, Some(table)) => {
                e.map_arranged(&out, &x, (&t.dims, channel_axis), table, t.chw)
            }
            _ => e.map(&out, &x, t.layout, &t.dims, t.chw),
        }
    }
    for s in states {
        e.graph().output.push(graph::value_info(s, None));
    }
}
