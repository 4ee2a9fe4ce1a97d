//! The pruning experiment: criteria, curves network-wide and per layer, verdicts.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::curves::{random_criterion, verdicts, Criterion, CriterionKind, CurvePoint, Order, Runner, Verdict};
use super::{activation_magnitude, bn_gamma, weight_l1, Evaluator};
use crate::analysis::{analyze, AnalysisConfig, ImageSpec};
use crate::data::Cifar10;
use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::model::Model;

/// Settings of a pruning experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneConfig {
    /// Test-set images the accuracy is measured on.
    pub images: Vec<usize>,
    /// Fractions removed per layer for the network-wide curves.
    pub fractions: Vec<f64>,
    /// Fractions for the per-layer curves.
    pub layer_fractions: Vec<f64>,
    /// Layers (tap names or `#ordinal`) that get their own curves.
    pub layers: Vec<String>,
    /// Criteria (see [`CriterionKind::CHOICES`]); random is always added.
    pub criteria: Vec<CriterionKind>,
    /// Random seeds.
    pub random_seeds: u64,
    /// The frequency-tagging analysis behind the `ft_*` scores.
    pub analysis: AnalysisConfig,
    /// Test images of that analysis.
    pub analysis_images: Vec<usize>,
    /// Training images for the activation-magnitude criterion.
    pub activation_images: Vec<usize>,
    /// Inference settings.
    #[serde(skip)]
    pub engine: EngineConfig,
}

/// Most random seeds of the baseline.
pub const MAX_RANDOM_SEEDS: u64 = 10_000;

impl PruneConfig {
    /// Checks the settings before any work: image indices inside the data sets
    /// (`test_len` test images, `train_len` training images), fractions in [0, 1], at
    /// least one criterion and fraction, seeds bounded, the analysis settings.
    pub fn validate(&self, test_len: usize, train_len: usize) -> Result<()> {
        let check = |name: &'static str, idx: &[usize], len: usize| -> Result<()> {
            match idx.iter().find(|&&i| i >= len) {
                Some(&bad) => Err(Error::param(name, format!("indices 0..{len}"), bad)),
                None => Ok(()),
            }
        };
        if self.images.is_empty() {
            return Err(Error::param("n-images", "at least one test image", 0));
        }
        check("images", &self.images, test_len)?;
        check("analysis-images", &self.analysis_images, test_len)?;
        if self.analysis_images.is_empty() && self.criteria.iter().any(|c| c.is_frequency_tagging()) {
            return Err(Error::param("analysis-images", "at least one image for the frequency-tagging criteria", 0));
        }
        if train_len > 0 {
            check("activation-images", &self.activation_images, train_len)?;
        }
        if let Some(f) = self.fractions.iter().chain(&self.layer_fractions).find(|f| !(0.0..=1.0).contains(*f)) {
            return Err(Error::param("fractions", "values in [0, 1]", f));
        }
        if self.fractions.is_empty() {
            return Err(Error::param("fractions", "at least one fraction", "none"));
        }
        if !(1..=MAX_RANDOM_SEEDS).contains(&self.random_seeds) {
            return Err(Error::param("random-seeds", format!("1..={MAX_RANDOM_SEEDS}"), self.random_seeds));
        }
        self.analysis.validate()
    }
}

/// The result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneResult {
    /// The configuration.
    pub config: PruneConfig,
    /// Accuracy of the unpruned model on the images.
    pub base_top1: f64,
    /// Every point of every curve.
    pub points: Vec<CurvePoint>,
    /// Verdicts against random.
    pub verdicts: Vec<Verdict>,
    /// Ablations actually evaluated (after caching).
    pub evaluations: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Computes the criteria's scores `[layer][channel]` for the prunable layers of `eval`.
pub fn criteria(
    model: &Model,
    eval: &Evaluator,
    test: &Cifar10,
    train: Option<&Cifar10>,
    cfg: &PruneConfig,
) -> Result<Vec<Criterion>> {
    let mut out = Vec::new();
    let sizes: Vec<usize> = eval.layers.iter().map(|l| l.channels).collect();
    let want = |n: CriterionKind| cfg.criteria.contains(&n);
    if cfg.criteria.contains(&CriterionKind::Random) {
        return Err(Error::param("criteria", "criteria other than random (random is always added)", "random"));
    }
    if cfg.criteria.iter().any(|c| c.is_frequency_tagging()) {
        let specs: Vec<ImageSpec> = cfg
            .analysis_images
            .iter()
            .map(|&i| ImageSpec { name: format!("test[{i}]"), index: Some(i), label: Some(test.label(i)) })
            .collect();
        let mut acfg = cfg.analysis.clone();
        acfg.keep_per_image = false;
        acfg.stats.enabled = want(CriterionKind::FtT2);
        acfg.stats.splits = 0;
        acfg.stats.q_values.clear();
        acfg.stats.thresholds = vec![acfg.threshold];
        let a = analyze(model, &acfg, &specs, &|s| Ok(test.image(s.index.unwrap_or(0))), &mut |_, _| {})?;
        let by_tap = |f: &dyn Fn(usize, usize) -> f64| -> Result<Vec<Vec<f64>>> {
            eval.layers
                .iter()
                .map(|l| {
                    let t = a
                        .layers
                        .iter()
                        .position(|x| x.tap == l.tap)
                        .ok_or_else(|| Error::Model(format!("analysis lacks {}", l.tap)))?;
                    Ok((0..l.channels).map(|c| f(t, c)).collect())
                })
                .collect()
        };
        if want(CriterionKind::FtAuthors) {
            out.push(Criterion {
                name: CriterionKind::FtAuthors,
                seed: None,
                scores: by_tap(&|t, c| a.layers[t].filters[c].mean_score)?,
            });
        }
        if let Some(st) = &a.stats {
            if want(CriterionKind::FtBca) {
                let bca = |t: usize, c: usize| {
                    let b = &st.layers[t].filters[c].bca;
                    b.tags.iter().sum::<f64>() + b.intermod + b.shared
                };
                out.push(Criterion { name: CriterionKind::FtBca, seed: None, scores: by_tap(&bca)? });
            }
            if want(CriterionKind::FtT2) {
                out.push(Criterion {
                    name: CriterionKind::FtT2,
                    seed: None,
                    // A NaN p-value (a singular covariance) is no evidence: it ranks last.
                    scores: by_tap(&|t, c| {
                        let p = st.layers[t].filters[c].p_value;
                        if p.is_finite() {
                            -p.max(1e-300).log10()
                        } else {
                            f64::NEG_INFINITY
                        }
                    })?,
                });
            }
        }
    }
    if want(CriterionKind::WeightL1) {
        out.push(Criterion {
            name: CriterionKind::WeightL1,
            seed: None,
            scores: eval.layers.iter().map(|l| weight_l1(model, l)).collect::<Result<_>>()?,
        });
    }
    if want(CriterionKind::BnGamma) {
        out.push(Criterion {
            name: CriterionKind::BnGamma,
            seed: None,
            scores: eval.layers.iter().map(|l| bn_gamma(model, l)).collect::<Result<_>>()?,
        });
    }
    if want(CriterionKind::Activation) {
        let (data, idx) = match train {
            Some(t) => (t, cfg.activation_images.clone()),
            None => (test, cfg.analysis_images.clone()),
        };
        out.push(Criterion {
            name: CriterionKind::Activation,
            seed: None,
            scores: activation_magnitude(model, data, &idx, &cfg.engine)?,
        });
    }
    for s in 0..cfg.random_seeds {
        out.push(random_criterion(&sizes, s));
    }
    Ok(out)
}

/// Runs the experiment. `progress(done, total)` counts curve points.
pub fn run(
    model: &Model,
    test: &Cifar10,
    train: Option<&Cifar10>,
    cfg: &PruneConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PruneResult> {
    run_resumable(model, test, train, cfg, progress, None, None)
}

/// [`run`] that starts from the ablations a checkpoint measured (`resume`) and calls
/// `checkpoint` with every ablation measured so far at the given interval. The result
/// is the one an uninterrupted run gives: the ablations are deterministic, and
/// `evaluations` counts distinct ablations whoever measured them.
pub fn run_resumable<'a>(
    model: &Model,
    test: &Cifar10,
    train: Option<&Cifar10>,
    cfg: &PruneConfig,
    progress: &mut dyn FnMut(usize, usize),
    resume: Option<super::curves::Measured>,
    checkpoint: Option<(super::curves::CacheFn<'a>, std::time::Duration)>,
) -> Result<PruneResult> {
    let start = Instant::now();
    cfg.validate(test.len(), train.map_or(0, |t| t.len()))?;
    let mut eval = Evaluator::new(model, test, &cfg.images, &cfg.engine)?;
    let crits = criteria(model, &eval, test, train, cfg)?;
    let layer_idx: Vec<usize> = cfg
        .layers
        .iter()
        .map(|key| {
            let tap = model.tap(key)?;
            eval.layers.iter().position(|l| l.tap == tap.name).ok_or_else(|| Error::param("layers", "conv layers", key))
        })
        .collect::<Result<_>>()?;
    let total = crits.len() * 2 * (cfg.fractions.len() + layer_idx.len() * cfg.layer_fractions.len());
    let base_top1 = eval.accuracy(&[])?.top1;
    let mut runner = Runner::new(&mut eval);
    runner.progress = Box::new(|d| progress(d, total));
    runner.checkpoint = checkpoint;
    if let Some(m) = resume {
        runner.preload(m);
    }
    let mut points = Vec::new();
    for order in [Order::LowestFirst, Order::HighestFirst] {
        for c in &crits {
            points.extend(runner.curve(c, None, order, &cfg.fractions)?);
            for &l in &layer_idx {
                points.extend(runner.curve(c, Some(l), order, &cfg.layer_fractions)?);
            }
        }
    }
    let evaluations = runner.distinct_ablations();
    Ok(PruneResult {
        config: cfg.clone(),
        base_top1,
        verdicts: verdicts(&points),
        points,
        evaluations,
        seconds: start.elapsed().as_secs_f64(),
    })
}
