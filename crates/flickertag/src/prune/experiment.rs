//! The pruning experiment: criteria, curves network-wide and per layer under each
//! ablation, image-bootstrap intervals of their areas, verdicts against random.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::bootstrap::{percentile_interval, Resamples};
use super::curves::{
    area, curves_of, random_criterion, verdicts, Criterion, CriterionKind, CurvePoint, Order, Runner, Verdict,
};
use super::stats::{point_statistics, PointStats};
use super::{bn_gamma, weight_l1, Ablation, Evaluator};
use crate::analysis::{analyze, AnalysisConfig, ImageSpec};
use crate::error::{Error, Result};
use crate::inference::engine::EngineConfig;
use crate::inference::model::Model;
use crate::io::data::Cifar10;

/// Where the frequency-tagging criteria measure a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreAt {
    /// Where the ablation acts: where the channel is consumed (after the ReLU that alone
    /// reads the BatchNorm output, else the BatchNorm output; the conv output without one).
    Ablation,
    /// The conv output, before its BatchNorm.
    Conv,
}

impl ScoreAt {
    /// `ablation` / `conv`.
    pub fn name(self) -> &'static str {
        match self {
            ScoreAt::Ablation => "ablation",
            ScoreAt::Conv => "conv",
        }
    }
}

impl std::str::FromStr for ScoreAt {
    type Err = Error;
    fn from_str(s: &str) -> Result<ScoreAt> {
        match s {
            "ablation" => Ok(ScoreAt::Ablation),
            "conv" => Ok(ScoreAt::Conv),
            _ => Err(Error::param("score-at", "ablation or conv", s)),
        }
    }
}

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
    /// What removed channels are replaced by (each gives its own curves).
    pub ablations: Vec<Ablation>,
    /// Where the `ft_*` criteria measure a filter.
    pub score_at: ScoreAt,
    /// Image-bootstrap resamples for the AUC intervals (0: none).
    pub bootstrap: usize,
    /// Seed of the resamples.
    pub bootstrap_seed: u64,
    /// The frequency-tagging analysis behind the `ft_*` scores.
    pub analysis: AnalysisConfig,
    /// Test images of that analysis.
    pub analysis_images: Vec<usize>,
    /// Images for the `activation` and `hrank` criteria and the channel means of
    /// mean-ablation: indices into the training set when one is given to [`run`], else
    /// into the test set (then disjoint from `images`; the CLI holds out the last 1,000).
    pub activation_images: Vec<usize>,
    /// Inference settings.
    #[serde(skip)]
    pub engine: EngineConfig,
}

/// Most random seeds of the baseline.
pub const MAX_RANDOM_SEEDS: u64 = 10_000;

/// Most bootstrap resamples.
pub const MAX_BOOTSTRAP: usize = 100_000;

impl PruneConfig {
    /// Whether the experiment needs [`PointStats`] on training images: for the
    /// `activation` or `hrank` criterion, or the channel means of mean-ablation.
    pub fn needs_statistics(&self) -> bool {
        self.criteria.iter().any(|c| matches!(c, CriterionKind::Activation | CriterionKind::Hrank))
            || self.ablations.contains(&Ablation::Mean)
    }

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
        } else {
            // Test images: held out from the evaluated ones.
            check("activation-images", &self.activation_images, test_len)?;
            let evaluated: std::collections::HashSet<usize> = self.images.iter().copied().collect();
            if let Some(i) = self.activation_images.iter().find(|i| evaluated.contains(i)) {
                return Err(Error::param(
                    "activation-images",
                    "test images disjoint from the evaluated ones",
                    format!("test image {i}, which is also evaluated"),
                ));
            }
            if self.needs_statistics() && self.activation_images.is_empty() {
                return Err(Error::param("activation-images", "at least one held-out test image", 0));
            }
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
        if self.ablations.is_empty() {
            return Err(Error::param("ablations", "zero, mean or both", "none"));
        }
        if self.bootstrap > MAX_BOOTSTRAP {
            return Err(Error::param("bootstrap", format!("0..={MAX_BOOTSTRAP}"), self.bootstrap));
        }
        if self.images.len() > super::bootstrap::MAX_IMAGES {
            return Err(Error::param("n-images", format!("1..={}", super::bootstrap::MAX_IMAGES), self.images.len()));
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
    /// Images behind the `activation` and `hrank` criteria and the means of
    /// mean-ablation; 0 when none of them was asked for.
    pub statistics_images: usize,
    /// Every point of every curve.
    pub points: Vec<CurvePoint>,
    /// Verdicts against random.
    pub verdicts: Vec<Verdict>,
    /// Ablations actually evaluated (after caching).
    pub evaluations: usize,
    /// Total work time, seconds: the sum of `segment_seconds`.
    pub seconds: f64,
    /// The wall time of each start that made the result (one for a run made in one go;
    /// one per start of a resumed run), seconds.
    #[serde(default)]
    pub segment_seconds: Vec<f64>,
}

/// Computes the criteria's scores `[layer][channel]` for the prunable layers of `eval`
/// (`stats`: the statistics at the ablation points, needed by `activation` and `hrank`).
pub fn criteria(
    model: &Model,
    eval: &Evaluator,
    test: &Cifar10,
    stats: Option<&PointStats>,
    cfg: &PruneConfig,
) -> Result<Vec<Criterion>> {
    let mut out = Vec::new();
    let sizes: Vec<usize> = eval.layers.iter().map(|l| l.channels).collect();
    let want = |n: CriterionKind| cfg.criteria.contains(&n);
    if cfg.criteria.contains(&CriterionKind::Random) {
        return Err(Error::param("criteria", "criteria other than random (random is always added)", "random"));
    }
    if cfg.criteria.iter().any(|c| c.is_frequency_tagging()) {
        let kinds: Vec<CriterionKind> = cfg.criteria.iter().copied().filter(|c| c.is_frequency_tagging()).collect();
        out.extend(
            tagging_criteria(model, &eval.layers, test, &cfg.analysis, &cfg.analysis_images, cfg.score_at, &kinds)?
                .criteria,
        );
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
    let need = |what: &str| Error::param("criteria", format!("statistics at the ablation points for {what}"), what);
    if want(CriterionKind::Activation) {
        let st = stats.ok_or_else(|| need("activation"))?;
        out.push(Criterion { name: CriterionKind::Activation, seed: None, scores: st.mean_abs.clone() });
    }
    if want(CriterionKind::Hrank) {
        let rank = stats.and_then(|s| s.rank.clone()).ok_or_else(|| need("hrank"))?;
        out.push(Criterion { name: CriterionKind::Hrank, seed: None, scores: rank });
    }
    for s in 0..cfg.random_seeds {
        out.push(random_criterion(&sizes, s));
    }
    Ok(out)
}

/// What a tagging analysis behind the `ft_*` criteria gives.
pub struct Tagging {
    /// One [`Criterion`] per kind asked for, in that order (scores `[tap][channel]`).
    pub criteria: Vec<Criterion>,
    /// The `authors` score of every image, per tap (`[tap].scores[image][channel]`),
    /// images in the order given.
    pub per_image: Vec<crate::importance::LayerScores>,
}

/// The frequency-tagging criteria `kinds` (`ft_*`) of `layers` (those of an
/// [`Evaluator`] of `model`), from an analysis of the test images `images` read at each
/// layer's ablation point (`score_at`); one [`Criterion`] per kind, in the order of
/// `kinds`.
pub fn tagging_criteria(
    model: &Model,
    layers: &[super::PrunableLayer],
    test: &Cifar10,
    analysis: &AnalysisConfig,
    images: &[usize],
    score_at: ScoreAt,
    kinds: &[CriterionKind],
) -> Result<Tagging> {
    let taps: Vec<(String, usize)> = layers
        .iter()
        .map(|l| match score_at {
            ScoreAt::Ablation => (l.point.clone(), l.channels),
            ScoreAt::Conv => (l.tap.clone(), l.channels),
        })
        .collect();
    tagging_scores(model, &taps, test, analysis, images, kinds)
}

/// The frequency-tagging criteria `kinds` (`ft_*`) at any taps `(tap name or tensor,
/// channels)` of `model`, from an analysis of the test images `images`; one
/// [`Criterion`] per kind (scores `[tap][channel]`), in the order of `kinds`, and the
/// per-image scores.
pub fn tagging_scores(
    model: &Model,
    taps: &[(String, usize)],
    test: &Cifar10,
    analysis: &AnalysisConfig,
    images: &[usize],
    kinds: &[CriterionKind],
) -> Result<Tagging> {
    let want = |n: CriterionKind| kinds.contains(&n);
    let mut out = Vec::new();
    let specs: Vec<ImageSpec> = images
        .iter()
        .map(|&i| ImageSpec { name: format!("test[{i}]"), index: Some(i), label: Some(test.label(i)) })
        .collect();
    let mut acfg = analysis.clone();
    // Layer i of the analysis is tap i.
    acfg.taps.names = taps.iter().map(|t| t.0.clone()).collect();
    acfg.keep_per_image = false;
    acfg.stats.enabled = want(CriterionKind::FtT2) || want(CriterionKind::FtBca);
    acfg.stats.splits = 0;
    acfg.stats.q_values.clear();
    acfg.stats.thresholds = vec![acfg.threshold];
    let a = analyze(model, &acfg, &specs, &|s| Ok(test.image(s.index.unwrap_or(0))), &mut |_, _| {})?;
    if a.layers.len() != taps.len() {
        return Err(Error::Model(format!("the analysis recorded {} taps for {} asked", a.layers.len(), taps.len())));
    }
    let by_tap = |f: &dyn Fn(usize, usize) -> f64| -> Result<Vec<Vec<f64>>> {
        taps.iter()
            .enumerate()
            .map(|(t, (name, channels))| {
                if a.layers[t].filters.len() != *channels {
                    return Err(Error::Model(format!(
                        "{name} has {} filters in the analysis",
                        a.layers[t].filters.len()
                    )));
                }
                Ok((0..*channels).map(|c| f(t, c)).collect())
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
    if let Some(k) = kinds.iter().find(|k| !out.iter().any(|c: &Criterion| c.name == **k)) {
        return Err(Error::param("criteria", "frequency-tagging criteria (ft_authors, ft_bca, ft_t2)", k));
    }
    Ok(Tagging { criteria: out, per_image: a.scores })
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
    let stats = if cfg.needs_statistics() {
        let data = train.unwrap_or(test);
        let idx = &cfg.activation_images;
        let ranks = cfg.criteria.contains(&CriterionKind::Hrank);
        Some(point_statistics(model, &eval.layers, data, idx, &cfg.engine, ranks)?)
    } else {
        None
    };
    if let Some(st) = &stats {
        eval.set_means(st.mean.clone())?;
    }
    let crits = criteria(model, &eval, test, stats.as_ref(), cfg)?;
    let layer_idx: Vec<usize> = cfg
        .layers
        .iter()
        .map(|key| {
            let tap = model.tap(key)?;
            eval.layers.iter().position(|l| l.tap == tap.name).ok_or_else(|| Error::param("layers", "conv layers", key))
        })
        .collect::<Result<_>>()?;
    let scopes: Vec<(Option<usize>, &[f64])> = std::iter::once((None, cfg.fractions.as_slice()))
        .chain(layer_idx.iter().map(|&l| (Some(l), cfg.layer_fractions.as_slice())))
        .collect();
    let per_crit: usize = scopes.iter().map(|s| s.1.len()).sum::<usize>() * cfg.ablations.len();
    let total = per_crit * (2 * (crits.len() - cfg.random_seeds as usize) + cfg.random_seeds as usize);
    let base_top1 = eval.accuracy(&[], Ablation::Zero)?.top1;
    if let Some(m) = &resume {
        super::curves::check_measured(&eval, m).map_err(|reason| {
            Error::param("resume", "a checkpoint whose ablations fit this model and these images", reason)
        })?;
    }
    let mut runner = Runner::new(&mut eval);
    runner.progress = Box::new(|d| progress(d, total));
    runner.checkpoint = checkpoint;
    if let Some(m) = resume {
        runner.preload(m);
    }
    let mut points = Vec::new();
    for &ablation in &cfg.ablations {
        for c in &crits {
            // A random order has no direction: one draw per seed serves both orders.
            let orders: &[Order] = if c.name == CriterionKind::Random {
                &[Order::LowestFirst]
            } else {
                &[Order::LowestFirst, Order::HighestFirst]
            };
            for &order in orders {
                for &(scope, fractions) in &scopes {
                    points.extend(runner.curve(c, scope, order, ablation, fractions)?);
                }
            }
        }
    }
    debug_assert_eq!(points.len(), runner.keys.len());
    let (intervals, effects) = auc_intervals(&points, &runner, cfg)?;
    let evaluations = runner.distinct_ablations();
    Ok(PruneResult {
        config: cfg.clone(),
        base_top1,
        statistics_images: stats.as_ref().map_or(0, |s| s.n_images),
        verdicts: verdicts(&points, &|k| intervals.get(k).copied().unwrap_or((f64::NAN, f64::NAN)), &|k| {
            effects.get(k).copied().unwrap_or((f64::NAN, f64::NAN))
        }),
        points,
        evaluations,
        seconds: start.elapsed().as_secs_f64(),
        segment_seconds: vec![start.elapsed().as_secs_f64()],
    })
}

/// Intervals per curve key, `(low, high)`.
type Intervals = std::collections::HashMap<super::curves::CurveKey, (f64, f64)>;

/// The image-bootstrap 95 % interval of every curve's AUC (see [`super::bootstrap`]),
/// and of the random seeds' mean AUC under the key `(scope, random, no seed,
/// lowest-first, ablation)`; then, per non-random curve, the paired interval of its AUC
/// minus the random seeds' mean AUC on the same resamples (the effect size).
fn auc_intervals(points: &[CurvePoint], runner: &Runner, cfg: &PruneConfig) -> Result<(Intervals, Intervals)> {
    let (mut out, mut effects) = (Intervals::new(), Intervals::new());
    if cfg.bootstrap == 0 {
        return Ok((out, effects));
    }
    let r = Resamples::new(cfg.images.len(), cfg.bootstrap, cfg.bootstrap_seed)?;
    let mut resampled: std::collections::HashMap<&super::curves::AblationKey, Vec<f64>> =
        std::collections::HashMap::new();
    for k in &runner.keys {
        if !resampled.contains_key(k) {
            let m = runner.get(k).expect("every point was measured");
            resampled.insert(k, r.top1(&m.hits)?);
        }
    }
    // Per resample, the sum and count of the random seeds' AUCs of a scope and ablation.
    let mut random: std::collections::HashMap<super::curves::CurveKey, (Vec<f64>, usize)> =
        std::collections::HashMap::new();
    let mut criteria: Vec<(super::curves::CurveKey, Vec<f64>)> = Vec::new();
    for (key, idx) in curves_of(points) {
        let per_point: Vec<(f64, &Vec<f64>)> =
            idx.iter().map(|&i| (points[i].fraction, &resampled[&runner.keys[i]])).collect();
        let aucs: Vec<f64> =
            (0..r.len()).map(|b| area(per_point.iter().map(|(f, acc)| (*f, acc[b])).collect())).collect();
        out.insert(key.clone(), percentile_interval(&aucs, 0.95));
        if key.1 == CriterionKind::Random {
            let k = (key.0.clone(), CriterionKind::Random, None, Order::LowestFirst, key.4);
            let e = random.entry(k).or_insert_with(|| (vec![0.0; r.len()], 0));
            e.0.iter_mut().zip(&aucs).for_each(|(s, a)| *s += a);
            e.1 += 1;
        } else {
            criteria.push((key, aucs));
        }
    }
    let mut means = std::collections::HashMap::new();
    for (k, (sums, n)) in random {
        let m: Vec<f64> = sums.iter().map(|s| s / n as f64).collect();
        out.insert(k.clone(), percentile_interval(&m, 0.95));
        means.insert(k, m);
    }
    for (key, aucs) in criteria {
        if let Some(m) = means.get(&(key.0.clone(), CriterionKind::Random, None, Order::LowestFirst, key.4)) {
            let d: Vec<f64> = aucs.iter().zip(m).map(|(a, m)| a - m).collect();
            effects.insert(key, percentile_interval(&d, 0.95));
        }
    }
    Ok((out, effects))
}
