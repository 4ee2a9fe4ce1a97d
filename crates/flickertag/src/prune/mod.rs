//! Filter ablation and pruning criteria: does frequency-tagging importance predict
//! what the network needs?
//!
//! # How a filter is removed
//! Pruning filter `k` of a conv removes its output channel and, with it, channel `k`
//! of the BatchNorm that follows; the next layers then receive nothing from it. flickertag
//! computes exactly that network by multiplying the BatchNorm's output (the conv's
//! output when no BatchNorm follows) by a per-channel 0/1 mask inserted into the ONNX
//! graph (`Mul` with a graph input `flickertag.mask.<tap>` of shape `[1, C, 1, 1]`).
//! Zeroing the conv's weights alone would not do: the BatchNorm would still add
//! `β - γ·μ/σ` to the channel.
//!
//! Zeroing also removes the channel's offset, which the next layers may rely on more
//! than on anything the filter detects. [`Ablation::Mean`] replaces the channel by its
//! mean over training images instead (a constant per channel, added by an `Add` with
//! the graph input `flickertag.offset.<tap>`), which removes what the filter says about
//! the image and keeps its offset. The masks and offsets are inputs, not constants, so
//! one ONNX Runtime session serves every ablation, and the normalized test images are
//! kept in memory between evaluations.

pub mod bootstrap;
pub mod crossval;
pub use crate::importance::correlation;
pub mod curves;
pub mod experiment;
pub mod oddball;
pub mod stats;
pub mod truth;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::evaluate::{accuracy, Accuracy};
use crate::inference::engine::{EngineConfig, Session};
use crate::inference::model::graph::{node, read_f32, value_info};
use crate::inference::model::{Model, TapKind};
use crate::io::data::{Cifar10, CLASSES};

/// What a removed filter's channel is replaced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ablation {
    /// Zero: the network with the filter and its BatchNorm channel pruned.
    Zero,
    /// The channel's mean over training images (one constant per channel): the filter's
    /// information is gone, its offset stays.
    Mean,
}

impl Ablation {
    /// Every ablation, in the order the outputs list them.
    pub const ALL: [Ablation; 2] = [Ablation::Zero, Ablation::Mean];

    /// `zero` / `mean`.
    pub fn name(self) -> &'static str {
        match self {
            Ablation::Zero => "zero",
            Ablation::Mean => "mean",
        }
    }
}

impl std::fmt::Display for Ablation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Ablation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Ablation> {
        Ablation::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| Error::param("ablations", "zero or mean", s))
    }
}

/// The per-image outcome of one ablation: accuracy and which images were right.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Accuracy, overall and per class.
    pub accuracy: Accuracy,
    /// `[image]`: whether the top-1 prediction was right.
    pub hits: Vec<bool>,
}

/// A prunable layer: a conv, where its filters are removed, and their count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrunableLayer {
    /// The conv's tap name.
    pub tap: String,
    /// 1-based conv ordinal.
    pub conv_ordinal: Option<usize>,
    /// Filters.
    pub channels: usize,
    /// The tensor the mask multiplies, where the channel is consumed: the ReLU output when
    /// a ReLU alone reads the BatchNorm output, else the BatchNorm output (the conv output
    /// without a BatchNorm).
    pub point: String,
    /// Where HRank ranks the filter's maps: the post-ReLU maps, as HRank's code does
    /// (the ReLU after the residual addition where the channel feeds an `Add`); the
    /// ablation point when no ReLU follows.
    #[serde(default)]
    pub rank_point: String,
    /// The graph input holding the mask.
    pub mask_input: String,
    /// The graph input holding the offset added to the masked channels.
    pub offset_input: String,
    /// The conv weight initializer.
    pub weight: String,
    /// The BatchNorm scale initializer, if a BatchNorm follows.
    pub bn_scale: Option<String>,
}

/// The nodes that read `tensor`.
fn consumers<'g>(g: &'g onnx_protobuf::GraphProto, tensor: &str) -> Vec<&'g onnx_protobuf::NodeProto> {
    g.node.iter().filter(|n| n.input.iter().any(|i| i == tensor)).collect()
}

/// Whether `tensor` is a ReLU's output.
fn producer_is_relu(g: &onnx_protobuf::GraphProto, tensor: &str) -> bool {
    g.node.iter().any(|n| n.op_type == "Relu" && n.output.first().is_some_and(|o| o == tensor))
}

/// A model with a mask input per conv layer.
pub struct Ablatable {
    /// The masked model.
    pub model: Model,
    /// Its prunable layers, in graph order.
    pub layers: Vec<PrunableLayer>,
}

/// Inserts a mask and an offset after every conv where its channels are consumed (after
/// its BatchNorm when one follows, after the ReLU when a ReLU alone reads that):
/// `point · mask + offset`. Zeroing is the same at either place (`ReLU(0) = 0`).
pub fn ablatable(model: &Model) -> Result<Ablatable> {
    let mut m = model.clone();
    let g = m.proto.graph.as_mut().expect("checked at load");
    let mut layers = Vec::new();
    for tap in model.taps.iter().filter(|t| t.kind == TapKind::Conv) {
        let conv = g.node.iter().find(|n| n.output.first() == Some(&tap.tensor)).expect("taps come from nodes");
        let weight = conv.input.get(1).cloned().unwrap_or_default();
        let channels = g
            .initializer
            .iter()
            .find(|t| t.name == weight)
            .and_then(|t| t.dims.first().copied())
            .ok_or_else(|| Error::Model(format!("conv {} has no weight initializer", tap.name)))?
            as usize;
        let (normalized, bn_scale) = match consumers(g, &tap.tensor).as_slice() {
            [bn] if bn.op_type == "BatchNormalization" => (bn.output[0].clone(), bn.input.get(1).cloned()),
            _ => (tap.tensor.clone(), None),
        };
        // Where the channel is consumed: after the ReLU when a ReLU alone reads it, so
        // that mean-ablation puts in the mean of what the next layer actually receives
        // (a BatchNorm output's mean is mostly negative, and ReLU(mean) = 0 = zeroing).
        let point = match consumers(g, &normalized).as_slice() {
            [relu] if relu.op_type == "Relu" => relu.output[0].clone(),
            _ => normalized,
        };
        let rank_point = match consumers(g, &point).as_slice() {
            _ if producer_is_relu(g, &point) => point.clone(),
            [add] if add.op_type == "Add" => match consumers(g, &add.output[0]).as_slice() {
                [relu] if relu.op_type == "Relu" => relu.output[0].clone(),
                _ => point.clone(),
            },
            _ => point.clone(),
        };
        layers.push(PrunableLayer {
            tap: tap.name.clone(),
            conv_ordinal: tap.conv_ordinal,
            channels,
            mask_input: format!("flickertag.mask.{}", tap.name),
            offset_input: format!("flickertag.offset.{}", tap.name),
            point,
            rank_point,
            weight,
            bn_scale,
        });
    }
    for l in &layers {
        let masked = format!("{}.masked", l.point);
        let scaled = format!("{}.scaled", l.point);
        for n in g.node.iter_mut() {
            for i in n.input.iter_mut().filter(|i| **i == l.point) {
                *i = masked.clone();
            }
        }
        for o in g.output.iter_mut().filter(|o| o.name == l.point) {
            o.name = masked.clone();
        }
        let at = g.node.iter().position(|n| n.output.contains(&l.point)).expect("point is produced by a node");
        g.node.insert(at + 1, node("Mul", &scaled, &[&l.point, &l.mask_input], &[&scaled], vec![]));
        g.node.insert(at + 2, node("Add", &masked, &[&scaled, &l.offset_input], &[&masked], vec![]));
        let shape = [Some(1), Some(l.channels as i64), Some(1), Some(1)];
        g.input.push(value_info(&l.mask_input, Some(&shape)));
        g.input.push(value_info(&l.offset_input, Some(&shape)));
    }
    Ok(Ablatable { model: m, layers })
}

/// Evaluates ablations of one model on a fixed set of CIFAR-10 images, reusing one
/// session and the normalized images.
pub struct Evaluator {
    session: Session,
    name: String,
    indices: Vec<usize>,
    /// The prunable layers.
    pub layers: Vec<PrunableLayer>,
    frames: Vec<f32>,
    labels: Vec<u8>,
    means: Option<Vec<Vec<f64>>>,
}

impl Evaluator {
    /// Prepares `model` and the images `indices` of `data`.
    pub fn new(model: &Model, data: &Cifar10, indices: &[usize], cfg: &EngineConfig) -> Result<Evaluator> {
        if model.input_shape != [3, 32, 32] {
            return Err(Error::Model(format!(
                "{} takes {:?}, CIFAR-10 images are [3, 32, 32]",
                model.name, model.input_shape
            )));
        }
        let a = ablatable(model)?;
        let session = Session::new(&a.model.to_onnx_bytes(), &model.input_name, model.input_shape, cfg)?;
        let frames = crate::evaluate::input_frames(model, data, indices)?;
        let labels = indices.iter().map(|&i| data.label(i)).collect();
        Ok(Evaluator {
            session,
            name: model.name.clone(),
            indices: indices.to_vec(),
            layers: a.layers,
            frames,
            labels,
            means: None,
        })
    }

    /// Evaluates the images `indices` of `data` from now on (the same session and means).
    pub fn set_images(&mut self, model: &Model, data: &Cifar10, indices: &[usize]) -> Result<()> {
        self.frames = crate::evaluate::input_frames(model, data, indices)?;
        self.labels = indices.iter().map(|&i| data.label(i)).collect();
        self.indices = indices.to_vec();
        Ok(())
    }

    /// Sets the channel means `[layer][channel]` that [`Ablation::Mean`] puts in place
    /// of a removed channel (see [`stats::point_statistics`]).
    pub fn set_means(&mut self, means: Vec<Vec<f64>>) -> Result<()> {
        let sizes: Vec<usize> = self.layers.iter().map(|l| l.channels).collect();
        let got: Vec<usize> = means.iter().map(Vec::len).collect();
        if got != sizes {
            return Err(Error::param("means", format!("channel counts {sizes:?}"), format!("{got:?}")));
        }
        self.means = Some(means);
        Ok(())
    }

    /// Logits `[n, classes]` with `removed[l]` filters of layer `l` ablated.
    pub fn logits(&mut self, removed: &[Vec<usize>], ablation: Ablation) -> Result<Vec<f32>> {
        if ablation == Ablation::Mean && self.means.is_none() {
            return Err(Error::param("ablations", "channel means set first (Evaluator::set_means)", "mean"));
        }
        for (l, layer) in self.layers.iter().enumerate() {
            let mut mask = vec![1.0f32; layer.channels];
            let mut offset = vec![0.0f32; layer.channels];
            for &c in removed.get(l).map_or(&[][..], Vec::as_slice) {
                if c >= layer.channels {
                    return Err(Error::param(
                        "filter",
                        format!("a channel of {} (0..{})", layer.tap, layer.channels),
                        c,
                    ));
                }
                mask[c] = 0.0;
                if let (Ablation::Mean, Some(m)) = (ablation, &self.means) {
                    offset[c] = m[l][c] as f32;
                }
            }
            self.session.set_input(&layer.mask_input, &[1, layer.channels, 1, 1], mask);
            self.session.set_input(&layer.offset_input, &[1, layer.channels, 1, 1], offset);
        }
        let per = 3 * 32 * 32;
        let n = self.labels.len();
        let mut out = Vec::with_capacity(n * CLASSES.len());
        for start in (0..n).step_by(self.session.batch()) {
            let k = self.session.batch().min(n - start);
            let o = self.session.run(&self.frames[start * per..(start + k) * per], k)?;
            crate::evaluate::check_logits(&self.name, &o[0], &self.indices[start..start + k])?;
            out.extend_from_slice(&o[0].data);
        }
        Ok(out)
    }

    /// Top-1 accuracy (overall and per class) with `removed[l]` filters of layer `l` ablated.
    pub fn accuracy(&mut self, removed: &[Vec<usize>], ablation: Ablation) -> Result<Accuracy> {
        Ok(self.outcome(removed, ablation)?.accuracy)
    }

    /// Accuracy and per-image hits with `removed[l]` filters of layer `l` ablated.
    pub fn outcome(&mut self, removed: &[Vec<usize>], ablation: Ablation) -> Result<Outcome> {
        let l = self.logits(removed, ablation)?;
        let k = CLASSES.len();
        let hits =
            l.chunks(k).zip(&self.labels).map(|(row, &y)| crate::evaluate::top1_class(row) == y as usize).collect();
        Ok(Outcome { accuracy: accuracy(&l, &self.labels), hits })
    }

    /// The labels of the images, in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Number of images.
    pub fn n_images(&self) -> usize {
        self.labels.len()
    }
}

/// Weight L1 norm of every filter of a layer (`[channels]`).
pub fn weight_l1(model: &Model, layer: &PrunableLayer) -> Result<Vec<f64>> {
    let t = initializer(model, &layer.weight)?;
    let per = t.len() / layer.channels;
    Ok(t.chunks(per).map(|w| w.iter().map(|x| x.abs() as f64).sum()).collect())
}

/// BatchNorm |γ| of every filter of a layer (an error when no BatchNorm follows).
pub fn bn_gamma(model: &Model, layer: &PrunableLayer) -> Result<Vec<f64>> {
    let name = layer.bn_scale.as_ref().ok_or_else(|| Error::Model(format!("{} has no BatchNorm", layer.tap)))?;
    Ok(initializer(model, name)?.iter().map(|x| x.abs() as f64).collect())
}

pub(crate) fn initializer(model: &Model, name: &str) -> Result<Vec<f32>> {
    let g = model.proto.graph.as_ref().expect("checked at load");
    g.initializer
        .iter()
        .find(|t| t.name == name)
        .and_then(read_f32)
        .ok_or_else(|| Error::Model(format!("no float initializer `{name}`")))
}

/// Per-image cross-entropy (nats, computed in f64 by log-sum-exp) and hit of logits
/// `[n, k]`.
pub(crate) fn losses(logits: &[f32], labels: &[u8]) -> (Vec<f64>, Vec<bool>) {
    let k = logits.len() / labels.len().max(1);
    logits
        .chunks(k)
        .zip(labels)
        .map(|(row, &y)| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
            (lse - row[y as usize] as f64, crate::evaluate::top1_class(row) == y as usize)
        })
        .unzip()
}
