//! Static reading of an ONNX graph: element types, which tensors depend on the image,
//! the PyTorch module each node came from, and what each tensor computes (its
//! [`TapKind`]). [`super::layout`] adds shapes and layouts from a probe run.
//!
//! # Module paths
//! Both PyTorch exporters record where a node came from:
//! - the dynamo exporter (`dynamo=True`, the default since torch 2.9) in node metadata
//!   `pkg.torch.onnx.name_scopes`: `['', 'blocks', 'blocks.0', 'blocks.0.mlp.fc1', 'linear_2']`,
//!   the module chain followed by the FX node name;
//! - the legacy exporter (`dynamo=False`) in node names: `/blocks/blocks.0/mlp/fc1/MatMul`,
//!   where a child of a Sequential repeats its parent's prefix (`blocks/blocks.0`).
//!
//! A module's output is what a forward hook on it sees: the one float tensor that its
//! nodes (its own and its children's) produce and something outside it reads. A tensor
//! is named after the deepest module whose output it is; the enclosing modules whose
//! output it also is, the node's functional name and the ONNX tensor name are aliases.
//!
//! # Kinds
//! A kind is read from the nodes, as patterns rather than single ops: a Linear is a
//! MatMul with a constant weight plus its bias Add; an activation is the last step of a
//! chain of pointwise operations on one tensor that contains a nonlinearity (GELU is
//! `x · (erf(x / √2) + 1) · 0.5`, SiLU `x · sigmoid(x)`), whose inner steps are never
//! taps; a residual Add adds two different image-dependent tensors (a bias Add does not).

use std::collections::{HashMap, HashSet};

use onnx_protobuf::{tensor_proto::DataType, GraphProto, NodeProto};
use protobuf::Enum;

use serde::{Deserialize, Serialize};

use super::names::{merge_repeated_calls, module_chain, parse_py_list, quantized_pairs};
use crate::error::{Error, Result};

/// What a tap computes, read from the graph's nodes as patterns (GELU is several nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum TapKind {
    /// A convolution (Conv, with its bias).
    Conv,
    /// A Linear layer: Gemm, or MatMul with a constant weight, with its bias Add.
    Linear,
    /// A normalization: BatchNorm, LayerNorm, GroupNorm, InstanceNorm, also decomposed.
    #[serde(alias = "bn")]
    Norm,
    /// An activation: the output of Relu, GELU (any decomposition), SiLU/Swish,
    /// Hardswish, Sigmoid, Tanh, Softmax, ...; never an inner step of one.
    #[serde(alias = "relu")]
    Act,
    /// A residual sum (two image-dependent tensors; a bias Add is not one).
    Add,
    /// A concatenation.
    Concat,
    /// A pooling (max, average, global).
    Pool,
    /// A module output of none of these kinds (a block, a reshape): only by name or `all`.
    Other,
}

impl TapKind {
    /// Every kind, in the order listed to users.
    pub const ALL: [TapKind; 8] = [
        TapKind::Conv,
        TapKind::Linear,
        TapKind::Norm,
        TapKind::Act,
        TapKind::Add,
        TapKind::Concat,
        TapKind::Pool,
        TapKind::Other,
    ];

    /// Parses one kind: `conv`, `linear`, `norm`, `act`, `add`, `concat`, `pool`,
    /// `other` (`bn` and `relu` are older names of `norm` and `act`).
    pub fn parse(s: &str) -> Result<TapKind> {
        s.parse()
    }

    /// Parses a kind list entry, where `all` stands for every kind.
    pub fn parse_list(s: &str) -> Result<Vec<TapKind>> {
        if s == "all" {
            Ok(TapKind::ALL.to_vec())
        } else {
            Ok(vec![s.parse()?])
        }
    }

    /// The name [`TapKind::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            TapKind::Conv => "conv",
            TapKind::Linear => "linear",
            TapKind::Norm => "norm",
            TapKind::Act => "act",
            TapKind::Add => "add",
            TapKind::Concat => "concat",
            TapKind::Pool => "pool",
            TapKind::Other => "other",
        }
    }
}

impl std::str::FromStr for TapKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<TapKind> {
        let s = match s {
            "bn" => "norm",
            "relu" => "act",
            s => s,
        };
        TapKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            Error::param("taps", "tap kinds, each one of conv, linear, norm, act, add, concat, pool, other, all", s)
        })
    }
}

impl std::fmt::Display for TapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// ONNX element type codes used here.
const FLOAT: i32 = DataType::FLOAT as i32;
const INT64: i32 = DataType::INT64 as i32;
const BOOL: i32 = DataType::BOOL as i32;

/// Elementwise ops of one tensor.
const UNARY: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Celu",
    "Gelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Softplus",
    "Softsign",
    "Mish",
    "Erf",
    "Exp",
    "Log",
    "Abs",
    "Neg",
    "Sqrt",
    "Reciprocal",
    "Clip",
    "Identity",
    "Dropout",
    "ThresholdedRelu",
    "Sin",
    "Cos",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Cast",
];
/// Unary ops that do not bend the input (a chain of only these and affine constants is linear).
const LINEAR_UNARY: &[&str] = &["Identity", "Dropout", "Neg", "Cast"];
/// Elementwise ops of two tensors.
const BINARY: &[&str] = &["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"];
/// Ops whose output is a normalization.
const NORM_OPS: &[&str] = &[
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "InstanceNormalization",
    "LpNormalization",
    "RMSNormalization",
    "SimplifiedLayerNormalization",
];
/// Pooling ops.
const POOL_OPS: &[&str] = &["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"];

/// What the scan learned about one node output.
#[derive(Debug, Clone, Default)]
pub(crate) struct TensorFacts {
    /// ONNX element type, if known.
    pub elem: Option<i32>,
    /// Computed from the image input (not a constant or shape arithmetic on constants).
    pub dynamic: bool,
    /// What it computes, if it is a tap kind.
    pub kind: Option<TapKind>,
    /// Inside a pattern (an inner step of an activation, a Linear's MatMul before its bias).
    pub inner: bool,
    /// The pointwise chain it belongs to (the tensor the chain starts from).
    pub source: String,
}

/// A candidate tap before shapes are known.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Primary name (deepest module path, or the functional name).
    pub name: String,
    /// Other names that find it.
    pub aliases: Vec<String>,
    /// ONNX tensor.
    pub tensor: String,
    /// Kind ([`TapKind::Other`] for a module output of no known kind).
    pub kind: TapKind,
    /// `conv + batchnorm` for a conv with a BatchNorm folded in at export, whose output
    /// it holds (see [`super::TapPoint::folded`]).
    pub folded: Option<String>,
}

/// A tensor or module that is not a tap, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    /// Module path or tensor name.
    pub name: String,
    /// Why it is not a tap.
    pub reason: String,
}

/// The static facts of a graph.
pub(crate) struct Scan {
    /// Candidate taps, in graph order.
    pub candidates: Vec<Candidate>,
    /// What was left out.
    pub skipped: Vec<Skipped>,
}

/// Element type of every tensor the graph names (inputs, initializers, constants,
/// node outputs), inferred where the graph does not say.
fn elem_types(g: &GraphProto) -> HashMap<String, i32> {
    let mut t: HashMap<String, i32> = HashMap::new();
    for v in g.input.iter().chain(&g.value_info).chain(&g.output) {
        if let Some(onnx_protobuf::type_proto::Value::TensorType(tt)) = v.type_.as_ref().and_then(|x| x.value.as_ref())
        {
            if tt.elem_type != 0 {
                t.insert(v.name.clone(), tt.elem_type);
            }
        }
    }
    for i in &g.initializer {
        t.insert(i.name.clone(), i.data_type);
    }
    for n in &g.node {
        let attr = |k: &str| n.attribute.iter().find(|a| a.name == k);
        let first_known = || n.input.iter().find_map(|i| t.get(i).copied());
        let ty = match n.op_type.as_str() {
            "Shape" | "Size" | "NonZero" | "ArgMax" | "ArgMin" => Some(INT64),
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or" | "Xor"
            | "IsNaN" | "IsInf" => Some(BOOL),
            "Cast" => attr("to").map(|a| a.i as i32),
            "CastLike" => n.input.get(1).and_then(|i| t.get(i).copied()),
            "Constant" => attr("value")
                .map(|a| a.t.data_type)
                .or_else(|| n.attribute.first().map(|a| if a.name.starts_with("value_float") { FLOAT } else { INT64 })),
            "ConstantOfShape" => Some(attr("value").map_or(FLOAT, |a| a.t.data_type)),
            "Where" => n.input.get(1).and_then(|i| t.get(i).copied()),
            _ => first_known(),
        };
        if let Some(ty) = ty {
            for o in &n.output {
                t.entry(o.clone()).or_insert(ty);
            }
        }
    }
    t
}

/// The outputs of nodes that depend on the image input or a recurrent state (`inputs`;
/// shape arithmetic excluded), in graph order: what a probe run records.
pub(crate) fn dynamic_outputs(g: &GraphProto, inputs: &[&str]) -> Vec<String> {
    let consts: HashSet<&str> = g.initializer.iter().map(|i| i.name.as_str()).collect();
    let mut dynamic: HashSet<&str> = inputs.iter().copied().collect();
    let mut out = Vec::new();
    for n in &g.node {
        let d = n.input.iter().any(|x| !consts.contains(x.as_str()) && dynamic.contains(x.as_str()))
            && !matches!(n.op_type.as_str(), "Shape" | "Size");
        if d {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                dynamic.insert(o);
                out.push(o.clone());
            }
        }
    }
    out
}

/// Reads the graph: facts per tensor, candidate taps (tensors that depend on `inputs`:
/// the image and a recurrent model's states), skipped modules. `probed` holds
/// the element types a probe run saw (they override the static inference).
pub(crate) fn scan(g: &GraphProto, inputs: &[&str], probed: &HashMap<String, i32>) -> Scan {
    let mut types = elem_types(g);
    types.extend(probed.iter().map(|(k, v)| (k.clone(), *v)));
    // Constants: initializers, and Identity copies of them (the legacy exporter
    // deduplicates equal initializers through Identity nodes, in graph order).
    let mut consts: HashSet<&str> = g.initializer.iter().map(|i| i.name.as_str()).collect();
    for n in &g.node {
        if n.op_type == "Identity" && n.input.len() == 1 && n.output.len() == 1 && consts.contains(n.input[0].as_str())
        {
            consts.insert(n.output[0].as_str());
        }
    }
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for inp in &n.input {
            consumers.entry(inp.as_str()).or_default().push(i);
        }
    }
    let graph_outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let mut facts: HashMap<String, TensorFacts> = HashMap::new();
    let mut dynamic: HashSet<String> = inputs.iter().map(|x| x.to_string()).collect();
    let is_dyn = |d: &HashSet<String>, name: &str| !consts.contains(name) && d.contains(name);

    // Pass 1: dynamic flags, pointwise sources and single-node kinds, in graph order.
    for n in &g.node {
        let dyn_in: Vec<&String> = n.input.iter().filter(|x| !x.is_empty() && is_dyn(&dynamic, x)).collect();
        let is_dynamic = !dyn_in.is_empty() && !matches!(n.op_type.as_str(), "Shape" | "Size");
        let op = n.op_type.as_str();
        let src_of = |x: &str, f: &HashMap<String, TensorFacts>| f.get(x).map_or(x.to_string(), |t| t.source.clone());
        for (k, o) in n.output.iter().enumerate() {
            if o.is_empty() {
                continue;
            }
            if is_dynamic {
                dynamic.insert(o.clone());
            }
            let pointwise_src = if k > 0 || !is_dynamic {
                None
            } else if (UNARY.contains(&op) && n.input.first() == dyn_in.first().copied() || BINARY.contains(&op))
                && dyn_in.len() == 1
            {
                Some(src_of(dyn_in[0], &facts))
            } else if BINARY.contains(&op) && dyn_in.len() == 2 {
                let (a, b) = (src_of(dyn_in[0], &facts), src_of(dyn_in[1], &facts));
                (a == b).then_some(a)
            } else {
                None
            };
            let kind = if k > 0 {
                None
            } else if op == "Conv" || op == "ConvTranspose" {
                Some(TapKind::Conv)
            } else if op == "Gemm" || (op == "MatMul" && dyn_in.len() == 1) {
                Some(TapKind::Linear)
            } else if NORM_OPS.contains(&op) {
                Some(TapKind::Norm)
            } else if POOL_OPS.contains(&op) {
                Some(TapKind::Pool)
            } else if matches!(op, "Softmax" | "LogSoftmax") {
                Some(TapKind::Act)
            } else if (op == "Add" || op == "Sum") && dyn_in.len() >= 2 && pointwise_src.is_none() {
                Some(TapKind::Add)
            } else if op == "Concat" && is_dynamic {
                Some(TapKind::Concat)
            } else {
                None
            };
            facts.insert(
                o.clone(),
                TensorFacts {
                    elem: types.get(o).copied(),
                    dynamic: is_dynamic,
                    kind,
                    inner: false,
                    source: pointwise_src.unwrap_or_else(|| o.clone()),
                },
            );
        }
    }

    // Pass 2: a Linear's or Conv's bias (Add of a constant to a MatMul/Conv output read
    // only there) is part of it: the sum is the layer's output, the product inner.
    for n in &g.node {
        if n.op_type != "Add" || n.input.len() != 2 {
            continue;
        }
        let dyn_in: Vec<&String> = n.input.iter().filter(|x| is_dyn(&dynamic, x)).collect();
        let [x] = dyn_in[..] else { continue };
        let Some(fx) = facts.get(x.as_str()) else { continue };
        let k = fx.kind;
        let only_here = consumers.get(x.as_str()).is_some_and(|c| c.len() == 1) && !graph_outputs.contains(x.as_str());
        if matches!(k, Some(TapKind::Linear) | Some(TapKind::Conv)) && only_here {
            facts.get_mut(x.as_str()).unwrap().inner = true;
            let o = &n.output[0];
            let f = facts.get_mut(o.as_str()).unwrap();
            f.kind = k;
            f.source = o.clone();
        }
    }

    // Pass 3: pointwise chains. A chain (tensors sharing a source) that bends its input
    // is an activation: its exits (read outside the chain or graph outputs) are taps,
    // the rest inner steps.
    let mut bends: HashSet<String> = HashSet::new();
    for n in &g.node {
        let Some(o) = n.output.first() else { continue };
        let Some(f) = facts.get(o) else { continue };
        if f.source == *o || !f.dynamic {
            continue;
        }
        let op = n.op_type.as_str();
        let dyn_count = n.input.iter().filter(|x| is_dyn(&dynamic, x)).count();
        let bend = (UNARY.contains(&op) && !LINEAR_UNARY.contains(&op))
            || matches!(op, "Pow" | "Max" | "Min" | "PRelu")
            || (matches!(op, "Mul" | "Div") && dyn_count == 2);
        if bend {
            bends.insert(f.source.clone());
        }
    }
    let names: Vec<String> = facts.keys().cloned().collect();
    for o in names {
        let f = &facts[&o];
        if f.source == o || !bends.contains(&f.source) {
            continue;
        }
        let src = f.source.clone();
        let exits = graph_outputs.contains(o.as_str())
            || consumers.get(o.as_str()).is_some_and(|cs| {
                cs.iter()
                    .any(|&c| g.node[c].output.first().and_then(|x| facts.get(x)).is_none_or(|cf| cf.source != src))
            });
        let f = facts.get_mut(&o).unwrap();
        if exits {
            f.kind = Some(TapKind::Act);
        } else {
            f.inner = true;
            f.kind = None;
        }
    }

    // Module outputs: a tensor produced inside module P and read outside it.
    let mut chains: Vec<(Vec<String>, String)> = g.node.iter().map(module_chain).collect();
    inherit_scopes(g, &mut chains);
    let pairs = quantized_pairs(g, &mut chains);
    let chains = merge_repeated_calls(g, chains);
    // A quantized tensor's dequantized copy stands for it: the float `x` read only by
    // its QuantizeLinear is an inner step and the copy takes its kind; a copy standing
    // for a removed activation is that activation.
    for p in &pairs {
        let out = &g.node[p.dq].output[0];
        let kind = match &p.removed {
            Some((_, func)) => {
                let op = func.rsplit('.').next().unwrap_or("");
                let acts =
                    ["relu", "sigmoid", "hardswish", "hardsigmoid", "gelu", "silu", "tanh", "clip", "leaky_relu"];
                acts.contains(&op).then_some(TapKind::Act)
            }
            None => {
                let only_q =
                    consumers.get(p.x.as_str()).is_some_and(|c| c == &[p.q]) && !graph_outputs.contains(p.x.as_str());
                let k = facts.get(p.x.as_str()).and_then(|f| f.kind);
                if only_q {
                    if let Some(f) = facts.get_mut(p.x.as_str()) {
                        f.inner = true;
                        f.kind = None;
                    }
                }
                k
            }
        };
        if let Some(f) = facts.get_mut(out.as_str()) {
            f.kind = kind;
        }
    }
    let mut outputs_of: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        let ci = &chains[i].0;
        for m in ci {
            if !outputs_of.contains_key(m.as_str()) {
                outputs_of.insert(m, Vec::new());
                order.push(m);
            }
        }
        for o in &n.output {
            let Some(f) = facts.get(o) else { continue };
            if !f.dynamic {
                continue;
            }
            let mut leaves: HashSet<&str> = HashSet::new();
            if graph_outputs.contains(o.as_str()) {
                leaves.extend(ci.iter().map(|s| s.as_str()));
            }
            for &c in consumers.get(o.as_str()).map(|v| v.as_slice()).unwrap_or(&[]) {
                let cc = &chains[c].0;
                leaves.extend(ci.iter().filter(|m| !cc.contains(m)).map(|s| s.as_str()));
            }
            for m in leaves {
                let v = outputs_of.get_mut(m).unwrap();
                if !v.contains(&o.as_str()) {
                    v.push(o);
                }
            }
        }
    }
    let mut skipped = Vec::new();
    // tensor -> modules whose output it is, outer first.
    let mut module_names: HashMap<&str, Vec<&str>> = HashMap::new();
    // Modules with several float outputs (called several times, or returning several
    // tensors): named once their outputs have names.
    let mut several: Vec<(&str, Vec<&str>)> = Vec::new();
    for m in &order {
        let outs = &outputs_of[m];
        let float_outs: Vec<&str> = outs.iter().copied().filter(|o| facts[*o].elem == Some(FLOAT)).collect();
        match float_outs.as_slice() {
            [o] => module_names.entry(o).or_default().push(m),
            [] if outs.is_empty() => {}
            [] => skipped.push(Skipped { name: m.to_string(), reason: "its output is not a float tensor".into() }),
            many => several.push((m, many.to_vec())),
        }
    }
    // Functional names counted per name in graph order: the first `layer1.0.add`, then
    // `layer1.0.add_1`, ... (the same from both exporters, whose own counters differ).
    let mut func_count: HashMap<&str, usize> = HashMap::new();

    // Candidates in graph order: module outputs and typed functional tensors.
    let mut candidates = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut inner_steps = 0;
    for (i, n) in g.node.iter().enumerate() {
        for o in &n.output {
            let Some(f) = facts.get(o) else { continue };
            if !f.dynamic {
                continue;
            }
            let mods = module_names.get(o.as_str());
            if f.inner && mods.is_none() {
                inner_steps += 1;
                continue;
            }
            if f.elem != Some(FLOAT) {
                if f.kind.is_some() && mods.is_none() {
                    skipped.push(Skipped {
                        name: o.clone(),
                        reason: format!("a {} of {} values, not float", n.op_type, elem_name(f.elem)),
                    });
                }
                continue;
            }
            let kind = match (f.kind, mods) {
                (Some(k), _) => k,
                (None, Some(_)) => module_kind(g, &chains, i, n),
                (None, None) => continue,
            };
            let base = chains[i].1.as_str();
            let mut all: Vec<String> = Vec::new();
            if let Some(ms) = mods {
                all.extend(ms.iter().rev().map(|s| s.to_string()));
            }
            if !base.is_empty() {
                let k = func_count.entry(base).or_insert(0);
                all.push(if *k == 0 { base.to_string() } else { format!("{base}_{k}") });
                *k += 1;
            }
            // A conv with a BatchNorm folded into it holds the BatchNorm's output; the
            // conv's own output is in no tensor of the graph. The dynamo exporter's
            // optimizer puts the folded conv in the BatchNorm's scope with the conv's
            // weight name: the tap is the BatchNorm's (named by what it computes), and
            // the conv is no tap, with the reason. The legacy exporter (TrainingMode.EVAL)
            // keeps the conv's scope and gives the folded weight and bias new names
            // (`onnx::Conv_<k>`), leaving no name for the BatchNorm: the tap keeps the
            // conv's name and says what it holds.
            let mut folded = None;
            if kind == TapKind::Conv && n.output.first() == Some(o) {
                let conv =
                    n.input.get(1).filter(|w| consts.contains(w.as_str())).and_then(|w| w.strip_suffix(".weight"));
                let renamed = |k: usize| {
                    n.input.get(k).is_some_and(|x| consts.contains(x.as_str()) && x.starts_with("onnx::Conv_"))
                };
                // The module whose scope the conv sits in, when that is not the conv.
                let host = chains[i].0.last().filter(|m| conv.is_some_and(|c| c != m.as_str()));
                if let Some(c) = conv.filter(|c| !all.iter().any(|a| a == c)) {
                    if let (None, Some(bn)) = (mods, host) {
                        // Folded into a module whose own output comes later (timm's
                        // BatchNormAct2d: the BatchNorm, then its activation inside it): the
                        // value is the normalization before the activation, which no hook
                        // sees; named as that functional step, the conv no tap.
                        folded = Some(format!("{c} + {bn}"));
                        all.insert(0, format!("{bn}.batch_norm"));
                        skipped.push(Skipped {
                            name: c.to_string(),
                            reason: format!(
                                "its output is not in this graph: the exporter folded {bn}'s normalization into it, \
                                 and tap {bn}.batch_norm holds that (before {bn}'s own output; export without \
                                 folding to measure {c}: dynamo optimize=False, legacy \
                                 training=torch.onnx.TrainingMode.PRESERVE)"
                            ),
                        });
                    } else if let Some(bn) = all.first().filter(|m| mods.is_some_and(|ms| ms.iter().any(|x| x == m))) {
                        folded = Some(format!("{c} + {bn}"));
                        skipped.push(Skipped {
                            name: c.to_string(),
                            reason: format!(
                                "its output is not in this graph: the exporter folded {bn} into it, and tap {bn} \
                                 holds {bn}'s output (export without folding to measure {c}: dynamo \
                                 optimize=False, legacy training=torch.onnx.TrainingMode.PRESERVE)"
                            ),
                        });
                    } else {
                        all.insert(0, c.to_string());
                    }
                } else if n.name.contains('/') && renamed(1) && renamed(2) {
                    folded = all.first().map(|c| format!("{c} + BatchNorm (unnamed)"));
                }
            }
            if all.is_empty() {
                all.push(format!("{}{i}", n.op_type.to_lowercase()));
            }
            let mut name = all[0].clone();
            let base = name.clone();
            let mut k = 1;
            while seen.contains(&name) {
                name = format!("{base}_{k}");
                k += 1;
            }
            seen.insert(name.clone());
            let mut aliases: Vec<String> = all[1..].to_vec();
            aliases.push(o.clone());
            aliases.retain(|a| *a != name);
            aliases.dedup();
            candidates.push(Candidate { name, aliases, tensor: o.clone(), kind, folded });
        }
    }
    for (m, outs) in several {
        let names: Vec<&str> = outs
            .iter()
            .filter_map(|o| candidates.iter().find(|c: &&Candidate| c.tensor == *o))
            .map(|c| c.name.as_str())
            .collect();
        let reason = if names.len() == outs.len() {
            format!("its {} outputs (calls) are taps of their own: {}", outs.len(), names.join(", "))
        } else {
            format!("{} float outputs (a tap is one tensor; name one of them)", outs.len())
        };
        skipped.push(Skipped { name: m.to_string(), reason });
    }
    if inner_steps > 0 {
        skipped.push(Skipped {
            name: format!("{inner_steps} tensors"),
            reason: "inner steps of an activation or a Linear (e.g. the Erf inside GELU, the MatMul before its bias)"
                .into(),
        });
    }
    Scan { candidates, skipped }
}

fn elem_name(e: Option<i32>) -> String {
    match e.and_then(DataType::from_i32) {
        Some(t) => format!("{t:?}").to_lowercase(),
        None => "unknown type".into(),
    }
}

/// The kind of a module output whose producer has none: from the class the dynamo
/// exporter records, or a decomposed normalization (ReduceMean and Sqrt/Pow among the
/// module's own nodes, no weights multiplied).
fn module_kind(g: &GraphProto, chains: &[(Vec<String>, String)], i: usize, n: &NodeProto) -> TapKind {
    if let Some(c) = n.metadata_props.iter().find(|p| p.key == "pkg.torch.onnx.class_hierarchy") {
        let classes = parse_py_list(&c.value);
        // The innermost module class (the last entry is the aten op).
        if let Some(cls) = classes.iter().rev().nth(1) {
            let last = cls.rsplit('.').next().unwrap_or("");
            if last.contains("Norm") {
                return TapKind::Norm;
            }
            if cls.contains(".activation.") {
                return TapKind::Act;
            }
        }
    }
    let Some(m) = chains[i].0.last() else { return TapKind::Other };
    let ops: HashSet<&str> =
        g.node.iter().zip(chains).filter(|(_, c)| c.0.last() == Some(m)).map(|(n, _)| n.op_type.as_str()).collect();
    let weighted = ops.iter().any(|o| matches!(*o, "Conv" | "MatMul" | "Gemm"));
    if ops.contains("ReduceMean") && (ops.contains("Sqrt") || ops.contains("Pow")) && !weighted {
        return TapKind::Norm;
    }
    // A GroupNorm exported as InstanceNormalization of a reshape, then its affine.
    if ops.contains("InstanceNormalization") && ops.contains("Reshape") && !weighted {
        return TapKind::Norm;
    }
    TapKind::Other
}

/// Nodes that the dynamo exporter's optimizer made after export (`node_Split_12`, with
/// no `name_scopes` metadata, in a graph whose other nodes have it) sit in the innermost
/// module that holds all their consumers (the module whose forward made the op): without
/// it, LeViT's `q, k, v = qkv.split(...)` read as a second output of its attention, and
/// ShuffleNet's `x.chunk(2)` as a second output of the block before.
fn inherit_scopes(g: &GraphProto, chains: &mut [(Vec<String>, String)]) {
    let has = |n: &NodeProto| n.metadata_props.iter().any(|p| p.key == "pkg.torch.onnx.name_scopes");
    if !g.node.iter().any(has) {
        return;
    }
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for x in &n.input {
            consumers.entry(x.as_str()).or_default().push(i);
        }
    }
    for (i, n) in g.node.iter().enumerate() {
        if has(n) {
            continue;
        }
        let users: Vec<usize> = n
            .output
            .iter()
            .flat_map(|o| consumers.get(o.as_str()).cloned().unwrap_or_default())
            .filter(|&c| has(&g.node[c]))
            .collect();
        let Some((&first, rest)) = users.split_first() else { continue };
        let mut common = chains[first].0.clone();
        for &c in rest {
            let k = common.iter().zip(&chains[c].0).take_while(|(a, b)| a == b).count();
            common.truncate(k);
        }
        chains[i].0 = common;
    }
}
