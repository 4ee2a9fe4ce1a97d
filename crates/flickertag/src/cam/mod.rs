//! Class activation maps with channels chosen by frequency tagging, and the control
//! that decides whether tagging helps.
//!
//! The authors' follow-up to the seed paper chooses, by tagging, which filters of a
//! layer feed a class activation map, but never compares with the same layer without
//! tagging. Here every map of a layer is made from four channel sets ([`SETS`]):
//! - `all`: every channel of the layer (the control: the same layer, no selection);
//! - `tagging`: the `k` channels with the highest tagging score (a frequency-tagging
//!   criterion, from an analysis of the analysis images at this layer; a channel
//!   without a score, as the `authors` ratio of a dead channel, ranks lowest);
//! - `random`: `k` channels drawn at random, afresh for every case (seeded);
//! - `bottom`: the `k` channels with the lowest tagging score.
//!
//! by each gradient-free method ([`methods::Method`]: Score-CAM, Ablation-CAM,
//! EigenCAM, run on ONNX Runtime), on a localisation set with known boxes
//! ([`localisation`]), and scored by energy in the box, the pointing game, insertion
//! and deletion AUC ([`metrics`]). Each set is compared with `all` case by case (paired
//! bootstrap over cases).
//!
//! The network runs on the canvas (`S × S`, larger than its 32 × 32 training images):
//! the CIFAR ResNets are fully convolutional up to a global average pool, so the graph's
//! input is declared `[N, C, S, S]`; a model that cannot run at that size is refused,
//! naming the error. One session serves every forward: the layer's output is multiplied
//! by a per-row mask input (`[N, C, 1, 1]`, ones except where Ablation-CAM zeroes a
//! channel), and the layer's maps are a second output.

pub mod localisation;
pub mod methods;
pub mod metrics;

use std::time::Instant;

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::analysis::AnalysisConfig;
use crate::error::{Error, Result};
use crate::inference::engine::{EngineConfig, Session};
use crate::inference::model::graph::{node, value_info};
use crate::inference::model::{Layout, Model};
use crate::io::data::{Cifar10, Image};
use crate::prune::curves::CriterionKind;
use localisation::Case;
use methods::Method;

/// The channel sets, in table order; the first is the control.
pub const SETS: [&str; 4] = ["all", "tagging", "random", "bottom"];

/// Most insertion/deletion steps.
pub const MAX_STEPS: usize = 256;

/// Cases whose maps are kept for the figure, at most.
pub const MAX_KEPT: usize = 64;

/// Settings of a CAM evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CamConfig {
    /// The layer whose channels make the maps (a tap with `[C, H, W]` maps).
    pub layer: String,
    /// The localisation cases.
    pub cases: Vec<Case>,
    /// Canvas side, pixels.
    pub canvas: usize,
    /// What surrounds the object.
    pub background: localisation::Background,
    /// Channels in the `tagging`, `random` and `bottom` sets.
    pub k: usize,
    /// The tagging score that ranks the channels (`ft_authors`, `ft_bca`, `ft_t2`).
    pub criterion: CriterionKind,
    /// Methods, in table order.
    pub methods: Vec<Method>,
    /// Insertion/deletion steps.
    pub steps: usize,
    /// Seed of the random sets and of the tie order of insertion/deletion.
    pub seed: u64,
    /// Case-bootstrap resamples of the intervals.
    pub bootstrap: usize,
    /// Seed of the resamples.
    pub bootstrap_seed: u64,
    /// The frequency-tagging analysis behind the tagging scores.
    pub analysis: AnalysisConfig,
    /// Test images of that analysis (disjoint from every case's images).
    pub analysis_images: Vec<usize>,
    /// Cases whose maps are kept for the figure (the first ones).
    pub keep_maps: usize,
    /// Methods computed outside flickertag (Grad-CAM and Grad-CAM++ through torch, by
    /// the Python package): channel weights per case, combined and scored like the
    /// built-in ones.
    #[serde(default)]
    pub extra: Vec<ExtraMethod>,
    /// Inference settings.
    #[serde(skip)]
    pub engine: EngineConfig,
}

/// A method computed outside flickertag: per case, one weight per channel of the layer
/// (the map is `ReLU(Σ_{k∈S} w_k A_k)`, as Grad-CAM's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraMethod {
    /// Its name (not a built-in method's).
    pub name: String,
    /// `[case][channel]`.
    pub weights: Vec<Vec<f64>>,
}

/// Most extra methods.
pub const MAX_EXTRA: usize = 8;

impl CamConfig {
    /// Every method's name, in table order: the built-in ones, then the extra ones.
    pub fn method_names(&self) -> Vec<String> {
        self.methods.iter().map(|m| m.name().to_string()).chain(self.extra.iter().map(|e| e.name.clone())).collect()
    }

    /// Checks the settings before any work.
    pub fn validate(&self, test_len: usize) -> Result<()> {
        if self.methods.is_empty() && self.extra.is_empty() {
            return Err(Error::param("methods", "at least one of score-cam, ablation-cam, eigencam", "none"));
        }
        if self.extra.len() > MAX_EXTRA {
            return Err(Error::param("extra", format!("at most {MAX_EXTRA} extra methods"), self.extra.len()));
        }
        for (i, e) in self.extra.iter().enumerate() {
            let taken =
                Method::ALL.iter().any(|m| m.name() == e.name) || self.extra[..i].iter().any(|x| x.name == e.name);
            if e.name.is_empty() || e.name.len() > 64 || taken {
                return Err(Error::param(
                    "extra",
                    "a new name of 1 to 64 characters (not a built-in method or a repeat)",
                    &e.name,
                ));
            }
            if e.weights.len() != self.cases.len() {
                return Err(Error::param(
                    "extra",
                    format!("weights of {} for each of the {} cases", e.name, self.cases.len()),
                    e.weights.len(),
                ));
            }
            if e.weights.iter().flatten().any(|w| !w.is_finite()) {
                return Err(Error::param("extra", format!("finite weights of {}", e.name), "a NaN or infinity"));
            }
        }
        if !matches!(self.criterion, CriterionKind::FtAuthors | CriterionKind::FtBca | CriterionKind::FtT2) {
            return Err(Error::param("criterion", "ft_authors, ft_bca or ft_t2", self.criterion.name()));
        }
        if !(2..=MAX_STEPS).contains(&self.steps) {
            return Err(Error::param("steps", format!("2..={MAX_STEPS}"), self.steps));
        }
        if self.cases.len() < 2 {
            return Err(Error::param("n-cases", "at least 2", self.cases.len()));
        }
        if self.keep_maps > MAX_KEPT {
            return Err(Error::param("keep-maps", format!("0..={MAX_KEPT}"), self.keep_maps));
        }
        if self.bootstrap == 0 || self.bootstrap > crate::prune::experiment::MAX_BOOTSTRAP {
            return Err(Error::param(
                "bootstrap",
                format!("1..={} (every verdict needs its interval)", crate::prune::experiment::MAX_BOOTSTRAP),
                self.bootstrap,
            ));
        }
        if let Some(&bad) = self.analysis_images.iter().find(|&&i| i >= test_len) {
            return Err(Error::param("analysis-images", format!("indices 0..{test_len}"), bad));
        }
        for c in &self.cases {
            if let Some(i) = std::iter::once(&c.image)
                .chain(&c.background)
                .find(|i| self.analysis_images.contains(i) || **i >= test_len)
            {
                return Err(Error::param(
                    "analysis-images",
                    "test images disjoint from the localisation cases",
                    format!("test image {i}, also in a case"),
                ));
            }
        }
        self.analysis.validate()
    }
}

/// The metrics of one case, `[method][set][metric]` ([`metrics::METRICS`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseOutcome {
    /// Index into [`CamConfig::cases`].
    pub case: usize,
    /// Whether the network's top-1 on the canvas is the object's class.
    pub correct: bool,
    /// Softmax probability of the object's class on the canvas.
    pub probability: f64,
    /// `[method][set][metric]`.
    pub metrics: Vec<Vec<[f64; 4]>>,
}

/// The maps of one case, kept for the figure.
#[derive(Debug, Clone)]
pub struct KeptMaps {
    /// Index into [`CamConfig::cases`].
    pub case: usize,
    /// The canvas.
    pub canvas: Image,
    /// `[method][set]`, each `S × S` (row-major).
    pub maps: Vec<Vec<Vec<f32>>>,
    /// `[method][channel]`: the channel weights (empty for EigenCAM, which has none).
    pub weights: Vec<Vec<f64>>,
    /// The logits of the canvas.
    pub logits: Vec<f32>,
}

/// The result of a CAM evaluation.
#[derive(Debug, Clone)]
pub struct CamResult {
    /// The configuration.
    pub config: CamConfig,
    /// The layer's tap name.
    pub layer: String,
    /// Its channels.
    pub channels: usize,
    /// Its map size on the canvas, `[h, w]`.
    pub map_size: [usize; 2],
    /// The tagging score of every channel.
    pub scores: Vec<f64>,
    /// The `tagging` set (highest scores first).
    pub tagging: Vec<usize>,
    /// The `bottom` set (lowest scores first).
    pub bottom: Vec<usize>,
    /// Every case.
    pub outcomes: Vec<CaseOutcome>,
    /// Every set against `all`, and `tagging` against `random`, per method and metric.
    pub comparisons: Vec<metrics::Comparison>,
    /// The first cases' maps.
    pub kept: Vec<KeptMaps>,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl CamResult {
    /// Share of cases whose canvas the network classifies as the object's class, %.
    pub fn canvas_top1(&self) -> f64 {
        let o = &self.outcomes;
        100.0 * o.iter().filter(|c| c.correct).count() as f64 / o.len().max(1) as f64
    }
}

/// The graph of `model` at input side `side`, its layer `tensor` multiplied by a mask
/// input `[N, C, 1, 1]`; returns the model and the mask input's name.
fn canvas_model(model: &Model, tensor: &str, channels: usize, side: usize) -> Result<(Model, String)> {
    let mut m = model.clone();
    let g = m.proto.graph.as_mut().expect("checked at load");
    let input = g.input.iter_mut().find(|i| i.name == model.input_name).ok_or_else(|| {
        Error::Model(format!("{}: the image input `{}` is not a graph input", model.name, model.input_name))
    })?;
    let batch = model.fixed_batch.map(|b| b as i64);
    *input = value_info(
        &model.input_name,
        Some(&[batch, Some(model.input_shape[0] as i64), Some(side as i64), Some(side as i64)]),
    );
    // Shapes recorded for 32 × 32 would contradict the canvas: ONNX Runtime infers them.
    g.value_info.clear();
    let mask = "flickertag.cam.mask".to_string();
    let masked = format!("{tensor}.cam_masked");
    for n in g.node.iter_mut() {
        for i in n.input.iter_mut().filter(|i| **i == tensor) {
            *i = masked.clone();
        }
    }
    for o in g.output.iter_mut().filter(|o| o.name == tensor) {
        o.name = masked.clone();
    }
    let at = g
        .node
        .iter()
        .position(|n| n.output.iter().any(|o| o == tensor))
        .ok_or_else(|| Error::param("layer", "a tap computed by a node", tensor))?;
    g.node.insert(at + 1, node("Mul", &masked, &[tensor, &mask], &[&masked], vec![]));
    g.input.push(value_info(&mask, Some(&[None, Some(channels as i64), Some(1), Some(1)])));
    m.input_shape = [model.input_shape[0], side, side];
    Ok((m, mask))
}

/// Softmax probability of class `y` in a row of logits (in f64).
fn probability(row: &[f32], y: usize) -> f64 {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let z: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    (row[y] as f64 - max).exp() / z
}

/// The canvas session: inputs in batches, each row with its own channel mask.
struct Canvas {
    session: Session,
    mask: String,
    channels: usize,
    per: usize,
    name: String,
}

impl Canvas {
    /// Logits `[n, classes]` (and, with `maps`, the layer's maps `[n, C·h·w]`) of `n`
    /// inputs; `ablate[i]` zeroes that channel in row `i`.
    fn run(
        &mut self,
        inputs: &[f32],
        n: usize,
        ablate: Option<&[usize]>,
        image: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (mut logits, mut maps) = (Vec::new(), Vec::new());
        for start in (0..n).step_by(self.session.batch()) {
            let b = self.session.batch().min(n - start);
            let mut mask = vec![1.0f32; b * self.channels];
            if let Some(a) = ablate {
                for (r, &c) in a[start..start + b].iter().enumerate() {
                    mask[r * self.channels + c] = 0.0;
                }
            }
            self.session.set_input(&self.mask, &[b, self.channels, 1, 1], mask);
            let o = self.session.run(&inputs[start * self.per..(start + b) * self.per], b)?;
            crate::evaluate::check_logits(&self.name, &o[0], &vec![image; b])?;
            logits.extend_from_slice(&o[0].data);
            maps.extend_from_slice(&o[1].data);
        }
        Ok((logits, maps))
    }
}

/// Ranks of channels by score, highest first; a NaN ranks lowest. Returns `(top k,
/// bottom k)`, the bottom lowest first.
pub fn top_and_bottom(scores: &[f64], k: usize) -> (Vec<usize>, Vec<usize>) {
    let key = |i: usize| if scores[i].is_nan() { f64::NEG_INFINITY } else { scores[i] };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    let top = order[..k].to_vec();
    let bottom = order.iter().rev().take(k).copied().collect();
    (top, bottom)
}

/// Runs the evaluation. `progress(done, total)` counts cases.
pub fn run(
    model: &Model,
    test: &Cifar10,
    cfg: &CamConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<CamResult> {
    let start = Instant::now();
    cfg.validate(test.len())?;
    model.require_frames_alone("cam")?;
    if model.input_shape != [3, 32, 32] {
        return Err(Error::Model(format!(
            "{} takes {:?}; the localisation canvases are built from CIFAR-10 images, [3, 32, 32]",
            model.name, model.input_shape
        )));
    }
    if let Some(b) = model.fixed_batch {
        return Err(Error::Model(format!(
            "{}: its graph runs only at batch {b}; cam runs batches of every size (export it with a dynamic batch axis)",
            model.name
        )));
    }
    let tap = model.tap(&cfg.layer)?.clone();
    if tap.layout != Layout::ChannelsFirst || tap.dims.len() != 3 {
        return Err(Error::param(
            "layer",
            "a tap with maps [C, H, W] laid out channels first (a conv, norm, act or add tap)",
            format!("{} ({:?}, dims {:?})", tap.name, tap.layout, tap.dims),
        ));
    }
    let c = tap.dims[0];
    methods::check_k(cfg.k, c)?;
    let pre = *model.input_preprocess()?;
    let side = cfg.canvas;
    // The tagging scores at the layer, from the 32 × 32 network.
    let ft = crate::prune::experiment::tagging_scores(
        model,
        &[(tap.name.clone(), c)],
        test,
        &cfg.analysis,
        &cfg.analysis_images,
        &[cfg.criterion],
    )?
    .criteria;
    let scores = ft[0].scores[0].clone();
    let (tagging, bottom) = top_and_bottom(&scores, cfg.k);
    let (cm, mask) = canvas_model(model, &tap.tensor, c, side)?;
    let session = Session::for_outputs(&cm, &[], &[&tap], &cfg.engine)
        .map_err(|e| Error::param("canvas", format!("a size {} runs at ({e})", model.name), side))?;
    let per = 3 * side * side;
    let mut canvas = Canvas { session, mask, channels: c, per, name: model.name.clone() };
    // The baseline canvas (every pixel the mean colour): its logits, and the layer's size.
    canvas.session.set_input(&canvas.mask, &[1, c, 1, 1], vec![1.0; c]);
    let probe = canvas
        .session
        .run(&vec![0.0; per], 1)
        .map_err(|e| Error::param("canvas", format!("a size {} runs at ({e})", model.name), side))?;
    crate::evaluate::check_logits(&model.name, &probe[0], &[0])?;
    let base_logits = probe[0].data.clone();
    let (h, w) = match probe[1].shape.as_slice() {
        [1, ch, h, w] if *ch == c => (*h, *w),
        other => return Err(Error::Model(format!("{}: maps of shape {other:?} on the canvas", tap.name))),
    };
    if h < 2 || w < 2 {
        return Err(Error::param("layer", "a layer with maps of at least 2 x 2 on the canvas", format!("{h} x {w}")));
    }
    let hw = h * w;
    let all: Vec<usize> = (0..c).collect();
    let mut outcomes = Vec::with_capacity(cfg.cases.len());
    let mut kept = Vec::new();
    let classes = base_logits.len();
    for (ci, case) in cfg.cases.iter().enumerate() {
        let y = case.label as usize;
        let img = localisation::render(test, case, side, cfg.background);
        let input = img.normalized(&pre);
        let (logits, act) = canvas.run(&input, 1, None, case.image)?;
        let full = probability(&logits, y);
        let baseline = probability(&base_logits, y);
        let correct = crate::evaluate::top1_class(&logits) == y;
        let mut rng =
            rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ (ci as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut random: Vec<usize> = rand::seq::index::sample(&mut rng, c, cfg.k).into_vec();
        random.sort_unstable();
        let sets = [&all, &tagging, &random, &bottom];
        let names = cfg.method_names();
        let mut per_method = Vec::with_capacity(names.len());
        let mut kept_maps = Vec::new();
        let mut kept_weights = Vec::new();
        let mut steps_in: Vec<f32> = Vec::new();
        for mi in 0..names.len() {
            let m = cfg.methods.get(mi).copied();
            let weights: Vec<f64> = match m {
                Some(Method::Score) => {
                    let mut inputs = Vec::with_capacity(c * per);
                    let mut used = Vec::with_capacity(c);
                    for k in 0..c {
                        if let Some(hk) = methods::score_mask(&act[k * hw..(k + 1) * hw], h, w, side) {
                            inputs.extend((0..per).map(|i| input[i] * hk[i % (side * side)]));
                            used.push(k);
                        }
                    }
                    let (l, _) = canvas.run(&inputs, used.len(), None, case.image)?;
                    let mut wts = vec![0.0; c];
                    for (r, &k) in used.iter().enumerate() {
                        wts[k] = probability(&l[r * classes..(r + 1) * classes], y);
                    }
                    wts
                }
                Some(Method::Ablation) => {
                    let inputs: Vec<f32> = (0..c).flat_map(|_| input.iter().copied()).collect();
                    let (l, _) = canvas.run(&inputs, c, Some(&all), case.image)?;
                    (0..c).map(|k| logits[y] as f64 - l[k * classes + y] as f64).collect()
                }
                Some(Method::Eigen) => Vec::new(),
                None => {
                    let e = &cfg.extra[mi - cfg.methods.len()];
                    if e.weights[ci].len() != c {
                        return Err(Error::param(
                            "extra",
                            format!("{c} weights of {} per case (the channels of {})", e.name, tap.name),
                            e.weights[ci].len(),
                        ));
                    }
                    e.weights[ci].clone()
                }
            };
            let mut per_set = Vec::with_capacity(SETS.len());
            let mut maps_of_method = Vec::new();
            for set in sets {
                let small = match m {
                    Some(Method::Eigen) => methods::eigen(&act, hw, set),
                    _ => methods::weighted(&act, hw, &weights, set),
                };
                let up = methods::upsample(&small, h, w, side);
                let order = metrics::order(&up, cfg.seed ^ ci as u64);
                // Insertion/deletion inputs of every map of the case run together below
                // (full batches, not one short batch per map).
                steps_in.extend(metrics::perturbed(&input, 3, &order, cfg.steps));
                per_set.push([
                    metrics::energy(&up, case, side),
                    metrics::pointing(&up, case, side),
                    f64::NAN,
                    f64::NAN,
                ]);
                if ci < cfg.keep_maps {
                    maps_of_method.push(up.iter().map(|&v| v as f32).collect());
                }
            }
            per_method.push(per_set);
            if ci < cfg.keep_maps {
                kept_maps.push(maps_of_method);
                kept_weights.push(weights);
            }
        }
        let (l, _) = canvas.run(&steps_in, steps_in.len() / per, None, case.image)?;
        let probs: Vec<f64> = l.chunks(classes).map(|row| probability(row, y)).collect();
        for (map, m) in probs.chunks(2 * (cfg.steps - 1)).zip(per_method.iter_mut().flatten()) {
            let (deletion, insertion) = metrics::deletion_insertion(full, baseline, map);
            m[2] = insertion;
            m[3] = deletion;
        }
        if ci < cfg.keep_maps {
            kept.push(KeptMaps {
                case: ci,
                canvas: img,
                maps: kept_maps,
                weights: kept_weights,
                logits: logits.clone(),
            });
        }
        outcomes.push(CaseOutcome { case: ci, correct, probability: full, metrics: per_method });
        progress(ci + 1, cfg.cases.len());
    }
    let comparisons = compare_all(cfg, &outcomes);
    Ok(CamResult {
        config: cfg.clone(),
        layer: tap.name.clone(),
        channels: c,
        map_size: [h, w],
        scores,
        tagging,
        bottom,
        outcomes,
        comparisons,
        kept,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Every set against `all`, and `tagging` against `random`, per method and metric, with
/// case-bootstrap intervals.
fn compare_all(cfg: &CamConfig, outcomes: &[CaseOutcome]) -> Vec<metrics::Comparison> {
    let resamples = crate::analysis::bootstrap::resamples(outcomes.len(), cfg.bootstrap, cfg.bootstrap_seed);
    let mut out = Vec::new();
    // (set, against) as indices into SETS: every set against `all`, tagging against random.
    let pairs = [(1, 0), (2, 0), (3, 0), (1, 2)];
    for (mi, m) in cfg.method_names().iter().enumerate() {
        for (si, ai) in pairs {
            for metric in 0..metrics::METRICS.len() {
                let values: Vec<f64> = outcomes.iter().map(|o| o.metrics[mi][si][metric]).collect();
                let control: Vec<f64> = outcomes.iter().map(|o| o.metrics[mi][ai][metric]).collect();
                out.push(metrics::compare(m, SETS[si], SETS[ai], metric, &values, &control, &resamples));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagging_takes_the_highest_scores_and_a_missing_score_ranks_lowest() {
        let (top, bottom) = top_and_bottom(&[0.5, f64::NAN, 2.0, 1.0, 0.1], 2);
        assert_eq!(top, vec![2, 3]);
        assert_eq!(bottom, vec![1, 4]);
    }
}
