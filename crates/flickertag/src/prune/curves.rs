//! Accuracy-versus-pruning curves for several criteria, their areas, and verdicts
//! against random pruning.
//!
//! A criterion gives one score per filter (`[layer][channel]`). For a fraction f, in
//! every layer of the scope, the `round(f · C)` filters with the highest scores
//! (`highest-first`) or the lowest (`lowest-first`) are removed; ties go to the lower
//! channel. Scope `network`: the same fraction in every conv layer at once (ranking
//! within each layer, so that criteria whose scale differs between layers, like
//! weight norms, are comparable). Scope `<tap>`: that layer alone.
//!
//! Verdict: random pruning (many seeds) is the yardstick. A criterion's
//! `random_percentile` is the percentage of random seeds whose area it beats in its
//! good direction: a larger area for `lowest-first` (removing its least important
//! filters keeps more accuracy), a smaller one for `highest-first` (removing its most
//! important costs more). It is better than random at ≥ 97.5, worse at ≤ 2.5 (a
//! two-sided test at 5 %), which needs at least [`MIN_SEEDS_FOR_VERDICT`] seeds. The
//! random curves are drawn once per scope and ablation (removing the lowest random
//! scores first: a random order has no direction) and serve both orders. The z-score
//! against the seeds' mean and SD is reported beside it, as a description.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::bootstrap::Hits;
use super::{Ablation, Evaluator};
use crate::error::Result;
use crate::importance::mean_sd;

/// The fewest random seeds that can give a verdict: with `n` seeds the smallest
/// two-sided Monte Carlo p is `2 / (n + 1)`, which must be at most 5 %.
pub const MIN_SEEDS_FOR_VERDICT: usize = 39;

/// Removal order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Highest scores removed first.
    HighestFirst,
    /// Lowest scores removed first.
    LowestFirst,
}

impl Order {
    /// `highest-first` / `lowest-first`.
    pub fn name(self) -> &'static str {
        match self {
            Order::HighestFirst => "highest-first",
            Order::LowestFirst => "lowest-first",
        }
    }
}

/// What ranks the filters for pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriterionKind {
    /// Frequency tagging: the mean `authors` score.
    FtAuthors,
    /// Frequency tagging: baseline-corrected amplitude summed over the lines.
    FtBca,
    /// Frequency tagging: `-log10` of the filter's T² p-value.
    FtT2,
    /// L1 norm of the conv weights.
    WeightL1,
    /// |γ| of the BatchNorm after the conv.
    BnGamma,
    /// Mean absolute activation on training images.
    Activation,
    /// HRank: the average rank of the filter's feature maps on training images.
    Hrank,
    /// Uniform random scores (seeded): the baseline.
    Random,
}

impl CriterionKind {
    /// The criteria a user can ask for (random is always added).
    pub const CHOICES: [CriterionKind; 7] = [
        CriterionKind::FtAuthors,
        CriterionKind::FtBca,
        CriterionKind::FtT2,
        CriterionKind::WeightL1,
        CriterionKind::BnGamma,
        CriterionKind::Activation,
        CriterionKind::Hrank,
    ];

    /// Its name (`ft_authors`, `weight_l1`, `random`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CriterionKind::FtAuthors => "ft_authors",
            CriterionKind::FtBca => "ft_bca",
            CriterionKind::FtT2 => "ft_t2",
            CriterionKind::WeightL1 => "weight_l1",
            CriterionKind::BnGamma => "bn_gamma",
            CriterionKind::Activation => "activation",
            CriterionKind::Hrank => "hrank",
            CriterionKind::Random => "random",
        }
    }

    /// A frequency-tagging criterion (needs an analysis).
    pub fn is_frequency_tagging(self) -> bool {
        matches!(self, CriterionKind::FtAuthors | CriterionKind::FtBca | CriterionKind::FtT2)
    }
}

impl std::fmt::Display for CriterionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CriterionKind {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<CriterionKind> {
        let names: Vec<&str> = CriterionKind::CHOICES.iter().map(|c| c.name()).collect();
        CriterionKind::CHOICES
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| crate::error::Error::param("criteria", format!("any of {}", names.join(", ")), s))
    }
}

/// A criterion's verdict against the random baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerdictKind {
    /// Better than the random seeds in its order's good direction, `q ≤ 0.05`.
    #[serde(rename = "better than random")]
    Better,
    /// Worse than them, `q ≤ 0.05`.
    #[serde(rename = "worse than random")]
    Worse,
    /// In between.
    #[serde(rename = "like random")]
    LikeRandom,
    /// Fewer than [`MIN_SEEDS_FOR_VERDICT`] random seeds: no verdict at the 5 % level.
    #[serde(rename = "too few random seeds")]
    NoBaseline,
    /// Beyond every random seed (its p at the Monte Carlo floor `2 / (seeds + 1)`), yet
    /// `q > 0.05`: the seeds cannot resolve it among the table's verdicts; more seeds can.
    #[serde(rename = "beyond every seed, unresolved")]
    Unresolved,
}

impl std::fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerdictKind::Better => "better than random",
            VerdictKind::Worse => "worse than random",
            VerdictKind::LikeRandom => "like random",
            VerdictKind::NoBaseline => "too few random seeds",
            VerdictKind::Unresolved => "beyond every seed, unresolved",
        })
    }
}

/// A pruning criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    /// Which criterion.
    pub name: CriterionKind,
    /// Random seed, for the random criterion.
    pub seed: Option<u64>,
    /// Scores `[layer][channel]`.
    #[serde(skip)]
    pub scores: Vec<Vec<f64>>,
}

/// Random scores (uniform, seeded) for layers of the given sizes.
pub fn random_criterion(sizes: &[usize], seed: u64) -> Criterion {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Criterion {
        name: CriterionKind::Random,
        seed: Some(seed),
        scores: sizes.iter().map(|&c| (0..c).map(|_| rng.random()).collect()).collect(),
    }
}

/// The filters to remove from one layer. A NaN score (no score: the `authors` ratio of
/// a channel that never fires where it is consumed) ranks lowest, below every number,
/// as a filter with no measured response; ties go by channel order.
pub fn removal(scores: &[f64], fraction: f64, order: Order) -> Vec<usize> {
    let k = ((fraction * scores.len() as f64).round() as usize).min(scores.len());
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    let key = |i: usize| if scores[i].is_nan() { f64::NEG_INFINITY } else { scores[i] };
    idx.sort_by(|&a, &b| {
        let o = key(a).total_cmp(&key(b));
        let o = if order == Order::HighestFirst { o.reverse() } else { o };
        o.then(a.cmp(&b))
    });
    idx.truncate(k);
    idx.sort_unstable();
    idx
}

/// One point of a curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// `network` or a layer's tap name.
    pub scope: String,
    /// Criterion name.
    pub criterion: CriterionKind,
    /// Seed (random criterion).
    pub seed: Option<u64>,
    /// Order.
    pub order: Order,
    /// What removed channels are replaced by.
    pub ablation: Ablation,
    /// Fraction removed per layer of the scope.
    pub fraction: f64,
    /// Filters removed in all.
    pub removed: usize,
    /// Top-1 accuracy, percent.
    pub top1: f64,
    /// Per-class accuracy, percent.
    pub per_class: Vec<f64>,
}

/// Runs ablations, remembering the accuracy of every removal set already evaluated
/// (fraction 0 and whole-layer removals are shared by all criteria).
pub struct Runner<'a> {
    eval: &'a mut Evaluator,
    cache: HashMap<AblationKey, Measurement>,
    /// The ablation behind every point returned so far, in order.
    pub keys: Vec<AblationKey>,
    /// Evaluations actually run.
    pub evaluations: usize,
    /// Called after each point with the number of points done.
    pub progress: Box<dyn FnMut(usize) + 'a>,
    /// Called with every measured ablation so far whenever this much time has passed
    /// since the last call (a checkpoint of the experiment).
    pub checkpoint: Option<(CacheFn<'a>, std::time::Duration)>,
    last: std::time::Instant,
    done: usize,
}

/// An ablation: what replaces the removed channels, and the filters removed per layer.
pub type AblationKey = (Ablation, Vec<Vec<usize>>);

/// What one ablation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Top-1 accuracy, percent.
    pub top1: f64,
    /// Per-class accuracy, percent.
    pub per_class: Vec<f64>,
    /// Which images were right.
    pub hits: Hits,
}

/// Measured ablations (a checkpoint).
pub type Measured = Vec<(AblationKey, Measurement)>;

/// A checkpoint callback of a [`Runner`].
pub type CacheFn<'a> = Box<dyn FnMut(&Measured) -> Result<()> + 'a>;

impl<'a> Runner<'a> {
    /// A runner over an evaluator.
    pub fn new(eval: &'a mut Evaluator) -> Self {
        Runner {
            eval,
            cache: HashMap::new(),
            keys: Vec::new(),
            evaluations: 0,
            progress: Box::new(|_| {}),
            checkpoint: None,
            last: std::time::Instant::now(),
            done: 0,
        }
    }

    /// Ablations measured before (a checkpoint): they are not run again.
    pub fn preload(&mut self, measured: Measured) {
        self.cache.extend(measured);
    }

    /// Every ablation measured so far, in a stable order.
    pub fn measured(&self) -> Measured {
        let mut v: Measured = self.cache.iter().map(|(k, m)| (k.clone(), m.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// What an ablation measured, if it was.
    pub fn get(&self, key: &AblationKey) -> Option<&Measurement> {
        self.cache.get(key)
    }

    /// Ablations measured, including those of a checkpoint.
    pub fn distinct_ablations(&self) -> usize {
        self.cache.len()
    }

    fn measure(&mut self, key: AblationKey) -> Result<(usize, f64, Vec<f64>)> {
        let n: usize = key.1.iter().map(Vec::len).sum();
        self.keys.push(key.clone());
        if let Some(m) = self.cache.get(&key) {
            return Ok((n, m.top1, m.per_class.clone()));
        }
        let o = self.eval.outcome(&key.1, key.0)?;
        let a = o.accuracy;
        self.evaluations += 1;
        self.cache
            .insert(key, Measurement { top1: a.top1, per_class: a.per_class.clone(), hits: Hits::from_flags(&o.hits) });
        if self.checkpoint.as_ref().is_some_and(|(_, every)| self.last.elapsed() >= *every) {
            let m = self.measured();
            if let Some((f, _)) = self.checkpoint.as_mut() {
                f(&m)?;
            }
            self.last = std::time::Instant::now();
        }
        Ok((n, a.top1, a.per_class))
    }

    /// The curve of `crit` over `fractions` for `scope` (`None`: the whole network;
    /// `Some(l)`: layer `l` alone), removed channels replaced per `ablation`.
    pub fn curve(
        &mut self,
        crit: &Criterion,
        scope: Option<usize>,
        order: Order,
        ablation: Ablation,
        fractions: &[f64],
    ) -> Result<Vec<CurvePoint>> {
        let layers = self.eval.layers.clone();
        let mut out = Vec::new();
        for &f in fractions {
            let removed: Vec<Vec<usize>> = (0..layers.len())
                .map(|l| if scope.is_none() || scope == Some(l) { removal(&crit.scores[l], f, order) } else { vec![] })
                .collect();
            let (n, top1, per_class) = self.measure((ablation, removed))?;
            out.push(CurvePoint {
                scope: scope.map_or("network".to_string(), |l| layers[l].tap.clone()),
                criterion: crit.name,
                seed: crit.seed,
                order,
                ablation,
                fraction: f,
                removed: n,
                top1,
                per_class,
            });
            self.done += 1;
            (self.progress)(self.done);
        }
        Ok(out)
    }
}

/// Area under accuracy (percent) against fraction, by the trapezoid rule, divided by
/// the fraction range: the mean accuracy over the curve.
pub fn auc(points: &[CurvePoint]) -> f64 {
    area(points.iter().map(|x| (x.fraction, x.top1)).collect())
}

/// The mean of `(x, y)` over the range of `x`, by the trapezoid rule (`y` of a single
/// point; NaN for none).
pub fn area(mut p: Vec<(f64, f64)>) -> f64 {
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    let range = p.last().map_or(0.0, |l| l.0) - p.first().map_or(0.0, |f| f.0);
    if range <= 0.0 {
        return p.first().map_or(f64::NAN, |x| x.1);
    }
    p.windows(2).map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0).sum::<f64>() / range
}

/// A criterion's verdict in one scope and order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Scope.
    pub scope: String,
    /// Criterion.
    pub criterion: CriterionKind,
    /// Order.
    pub order: Order,
    /// What removed channels are replaced by.
    pub ablation: Ablation,
    /// Its AUC (mean accuracy over the curve, percent).
    pub auc: f64,
    /// Image-bootstrap 95 % interval of the AUC (NaN without a bootstrap).
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub auc_ci_low: f64,
    /// Its upper end.
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub auc_ci_high: f64,
    /// Random seeds compared against.
    pub random_seeds: usize,
    /// Mean AUC of the random seeds.
    pub random_mean: f64,
    /// Image-bootstrap 95 % interval of that mean (NaN without a bootstrap).
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub random_mean_ci_low: f64,
    /// Its upper end.
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub random_mean_ci_high: f64,
    /// Their standard deviation.
    pub random_sd: f64,
    /// `(auc - random_mean) / random_sd`: a description, not the verdict.
    pub z: f64,
    /// Its empirical percentile among the random seeds' AUCs, in the criterion's good
    /// direction: the percentage of random seeds it does better than (ties count half);
    /// with 100 seeds, ≥ 97.5 is better than random at the 5 % level two-sided.
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub random_percentile: f64,
    /// `auc − random_mean`: the effect size (percentage points of mean accuracy).
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub effect: f64,
    /// Its paired image-bootstrap 95 % interval (the criterion's and the random seeds'
    /// mean AUC on the same resamples; NaN without a bootstrap).
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub effect_ci_low: f64,
    /// Its upper end.
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub effect_ci_high: f64,
    /// Two-sided Monte Carlo p against the random seeds:
    /// `min(1, 2 (1 + #seeds at least as extreme on the nearer side) / (seeds + 1))`.
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub p_value: f64,
    /// Benjamini-Hochberg q over every verdict of the run (`prune_summary.csv`).
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub q_value: f64,
    /// Better or worse than random where `q_value ≤ 0.05` (in the criterion's good
    /// direction or against it), like random otherwise.
    pub verdict: VerdictKind,
}

/// The false-discovery rate at which a verdict is called better or worse than random.
pub const VERDICT_Q: f64 = 0.05;

/// A curve: scope, criterion, seed, order, ablation.
pub type CurveKey = (String, CriterionKind, Option<u64>, Order, Ablation);

/// The curves of `points`, in order of appearance, each with the indices of its points.
pub fn curves_of(points: &[CurvePoint]) -> Vec<(CurveKey, Vec<usize>)> {
    let mut out: Vec<(CurveKey, Vec<usize>)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let key = (p.scope.clone(), p.criterion, p.seed, p.order, p.ablation);
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(i),
            None => out.push((key, vec![i])),
        }
    }
    out
}

/// Verdicts of every non-random criterion from the curves, against the random curves
/// of the same scope and ablation. `interval(curve)` gives a curve's AUC interval, and
/// for the key `(scope, random, None, lowest-first, ablation)` that of the random mean;
/// `effect_interval(curve)` the paired interval of its AUC minus the random mean.
pub fn verdicts(
    points: &[CurvePoint],
    interval: &dyn Fn(&CurveKey) -> (f64, f64),
    effect_interval: &dyn Fn(&CurveKey) -> (f64, f64),
) -> Vec<Verdict> {
    let curves = curves_of(points);
    let auc_of = |idx: &[usize]| area(idx.iter().map(|&i| (points[i].fraction, points[i].top1)).collect());
    let mut out = Vec::new();
    for (k, idx) in curves.iter().filter(|(k, _)| k.1 != CriterionKind::Random) {
        let rand: Vec<f64> = curves
            .iter()
            .filter(|(r, _)| r.1 == CriterionKind::Random && r.0 == k.0 && r.4 == k.4)
            .map(|(_, i)| auc_of(i))
            .collect();
        let (m, sd) = mean_sd(&rand);
        // One seed gives no spread to measure against.
        let sd = if rand.len() > 1 { sd } else { f64::NAN };
        let a = auc_of(idx);
        let z = (a - m) / sd.max(1e-9);
        let random_percentile = percentile_among(a, &rand, k.3 == Order::LowestFirst);
        let (auc_ci_low, auc_ci_high) = interval(k);
        let (random_mean_ci_low, random_mean_ci_high) =
            interval(&(k.0.clone(), CriterionKind::Random, None, Order::LowestFirst, k.4));
        let (effect_ci_low, effect_ci_high) = effect_interval(k);
        out.push(Verdict {
            scope: k.0.clone(),
            criterion: k.1,
            order: k.3,
            ablation: k.4,
            auc: a,
            auc_ci_low,
            auc_ci_high,
            random_seeds: rand.len(),
            random_mean: m,
            random_mean_ci_low,
            random_mean_ci_high,
            random_sd: sd,
            z,
            random_percentile,
            effect: a - m,
            effect_ci_low,
            effect_ci_high,
            // The two-sided Monte Carlo p, as for the control networks.
            p_value: crate::analysis::networks::place(a, &rand).1,
            q_value: f64::NAN,
            verdict: VerdictKind::NoBaseline,
        });
    }
    let q = crate::importance::stats::bh_adjust(&out.iter().map(|v| v.p_value).collect::<Vec<_>>());
    for (v, q) in out.iter_mut().zip(q) {
        v.q_value = q;
        v.verdict = if v.random_seeds < MIN_SEEDS_FOR_VERDICT || !q.is_finite() {
            VerdictKind::NoBaseline
        } else if q > VERDICT_Q && v.p_value <= 2.0 / (v.random_seeds as f64 + 1.0) + 1e-12 {
            VerdictKind::Unresolved
        } else if q > VERDICT_Q {
            VerdictKind::LikeRandom
        } else if v.random_percentile > 50.0 {
            VerdictKind::Better
        } else {
            VerdictKind::Worse
        };
    }
    out
}

fn nan() -> f64 {
    f64::NAN
}

/// The percentage of `random` that `value` beats (ties count half): higher is better
/// when `higher_better`, else lower is. NaN without random values.
pub fn percentile_among(value: f64, random: &[f64], higher_better: bool) -> f64 {
    if random.is_empty() || !value.is_finite() {
        return f64::NAN;
    }
    let beats = random
        .iter()
        .map(|&r| {
            let (a, b) = if higher_better { (value, r) } else { (r, value) };
            if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            }
        })
        .sum::<f64>();
    100.0 * beats / random.len() as f64
}

/// Checks ablations read back from a checkpoint against `eval` before any
/// is used: one removal list per layer, each sorted, without repeats and inside the
/// layer's filters; a hit set of exactly these images (no bit past the last); and
/// top-1 and per-class accuracies that are what the hit set and the labels give
/// (computed as [`crate::evaluate::accuracy`] computes them, so equal to the bit).
/// The reason names the first ablation that fails.
pub fn check_measured(eval: &Evaluator, measured: &Measured) -> std::result::Result<(), String> {
    let n = eval.labels.len();
    for (i, ((_, removed), m)) in measured.iter().enumerate() {
        let what = |r: String| format!("ablation {i} of the checkpoint: {r}");
        if removed.len() != eval.layers.len() {
            return Err(what(format!("{} removal lists for {} layers", removed.len(), eval.layers.len())));
        }
        for (l, (r, layer)) in removed.iter().zip(&eval.layers).enumerate() {
            if r.windows(2).any(|w| w[0] >= w[1]) || r.last().is_some_and(|&c| c >= layer.channels) {
                return Err(what(format!(
                    "layer {l} ({}) removes {r:?}: increasing filter indices below {}",
                    layer.tap, layer.channels
                )));
            }
        }
        let h = &m.hits;
        let tail_clear = n.is_multiple_of(64) || h.words.last().is_none_or(|w| w >> (n % 64) == 0);
        if h.n != n || h.words.len() != n.div_ceil(64) || !tail_clear {
            return Err(what(format!("a hit set of {} images in {} words, for {n} images", h.n, h.words.len())));
        }
        let mut per = [(0usize, 0usize); crate::io::data::CLASSES.len()];
        for (j, &y) in eval.labels.iter().enumerate() {
            if let Some(p) = per.get_mut(y as usize) {
                p.0 += h.get(j) as usize;
                p.1 += 1;
            }
        }
        let pct = |a: usize, b: usize| if b == 0 { f64::NAN } else { 100.0 * a as f64 / b as f64 };
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        let top1 = pct(h.count(), n);
        let per_class: Vec<f64> = per.iter().map(|&(a, b)| pct(a, b)).collect();
        if !same(m.top1, top1)
            || m.per_class.len() != per_class.len()
            || m.per_class.iter().zip(&per_class).any(|(&a, &b)| !same(a, b))
        {
            return Err(what(format!(
                "top-1 {} % and per-class {:?} %, but its hit set gives {top1} % and {per_class:?} %",
                m.top1, m.per_class
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_percentile_counts_the_seeds_beaten() {
        let r: Vec<f64> = (0..100).map(|i| i as f64).collect();
        assert_eq!(percentile_among(97.5, &r, true), 98.0);
        assert_eq!(percentile_among(97.5, &r, false), 2.0);
        assert_eq!(percentile_among(50.0, &r, true), 50.5, "beats 0..=49, ties 50: half");
        assert!(percentile_among(1.0, &[], true).is_nan());
    }

    #[test]
    fn removal_orders_and_ties() {
        let s = [0.5, 0.1, 0.9, 0.5];
        assert_eq!(removal(&s, 0.5, Order::HighestFirst), vec![0, 2]);
        assert_eq!(removal(&s, 0.5, Order::LowestFirst), vec![0, 1]);
        assert_eq!(removal(&s, 0.0, Order::LowestFirst), Vec::<usize>::new());
        assert_eq!(removal(&s, 1.0, Order::LowestFirst), vec![0, 1, 2, 3]);
    }

    #[test]
    fn removal_ranks_a_filter_without_a_score_lowest() {
        // A dead channel's NaN score is not the highest (where total_cmp puts NaN).
        let s = [0.5, f64::NAN, 0.9, -3.0];
        assert_eq!(removal(&s, 0.25, Order::LowestFirst), vec![1]);
        assert_eq!(removal(&s, 0.25, Order::HighestFirst), vec![2]);
        assert_eq!(removal(&s, 0.75, Order::HighestFirst), vec![0, 2, 3]);
    }

    fn pt(f: f64, a: f64) -> CurvePoint {
        CurvePoint {
            scope: "network".into(),
            criterion: CriterionKind::WeightL1,
            seed: None,
            order: Order::LowestFirst,
            ablation: Ablation::Zero,
            fraction: f,
            removed: 0,
            top1: a,
            per_class: vec![],
        }
    }

    /// A two-point curve (fraction 0 at 90 %, fraction 1 at `end`): AUC `(90 + end) / 2`.
    fn curve(criterion: CriterionKind, seed: Option<u64>, order: Order, end: f64) -> Vec<CurvePoint> {
        [(0.0, 90.0), (1.0, end)].into_iter().map(|(f, a)| CurvePoint { criterion, seed, order, ..pt(f, a) }).collect()
    }

    #[test]
    fn verdicts_come_from_the_monte_carlo_p_with_benjamini_hochberg_among_enough_random_seeds() {
        let mut points = Vec::new();
        // 100 random seeds with AUCs 45.0, 45.5, ..., 94.5.
        for s in 0..100u64 {
            points.extend(curve(CriterionKind::Random, Some(s), Order::LowestFirst, s as f64));
        }
        // Keeping: weight_l1 beats all 100; bn_gamma beats 96 (like random).
        points.extend(curve(CriterionKind::WeightL1, None, Order::LowestFirst, 99.5));
        points.extend(curve(CriterionKind::BnGamma, None, Order::LowestFirst, 95.5));
        // Removing first: a smaller AUC is better; below every seed, and above every seed.
        points.extend(curve(CriterionKind::WeightL1, None, Order::HighestFirst, -1.0));
        points.extend(curve(CriterionKind::BnGamma, None, Order::HighestFirst, 100.0));
        let v = verdicts(&points, &|_| (1.0, 2.0), &|_| (0.5, 0.7));
        let get = |c: CriterionKind, o: Order| v.iter().find(|x| x.criterion == c && x.order == o).unwrap();
        let w = get(CriterionKind::WeightL1, Order::LowestFirst);
        assert_eq!((w.random_percentile, w.verdict, w.random_seeds), (100.0, VerdictKind::Better, 100));
        assert_eq!((w.auc_ci_low, w.auc_ci_high), (1.0, 2.0));
        assert_eq!((w.random_mean_ci_low, w.random_mean_ci_high), (1.0, 2.0));
        assert!((w.random_mean - 69.75).abs() < 1e-9, "the seeds' mean AUC {}", w.random_mean);
        // p = 2 · 1 / 101 for the three beyond every seed, BH q = p · 4 / 3.
        assert!((w.p_value - 2.0 / 101.0).abs() < 1e-12 && (w.q_value - 8.0 / 303.0).abs() < 1e-12, "{w:?}");
        assert_eq!((w.effect, w.effect_ci_low, w.effect_ci_high), (w.auc - w.random_mean, 0.5, 0.7));
        let b = get(CriterionKind::BnGamma, Order::LowestFirst);
        assert_eq!((b.random_percentile, b.verdict), (96.0, VerdictKind::LikeRandom));
        // Four seeds at or above it: p = 2 · 5 / 101.
        assert!((b.p_value - 10.0 / 101.0).abs() < 1e-12, "{b:?}");
        // The random curves (drawn lowest-first) are the yardstick of highest-first too.
        assert_eq!(get(CriterionKind::WeightL1, Order::HighestFirst).verdict, VerdictKind::Better);
        let worse = get(CriterionKind::BnGamma, Order::HighestFirst);
        assert_eq!((worse.random_percentile, worse.verdict), (0.0, VerdictKind::Worse));

        // Among 14 verdicts (ten more curves in the middle of the seeds), the three beyond
        // every seed keep p = 2/101 but get q = p · 14/3 = 0.092: unresolved, not "like
        // random"; bn_gamma (p = 10/101, four seeds beyond it) is like random.
        let mut many = points.clone();
        for c in [CriterionKind::FtAuthors, CriterionKind::FtBca, CriterionKind::FtT2, CriterionKind::Hrank] {
            many.extend(curve(c, None, Order::LowestFirst, 70.0));
            many.extend(curve(c, None, Order::HighestFirst, 70.0));
        }
        many.extend(curve(CriterionKind::Activation, None, Order::LowestFirst, 69.5));
        many.extend(curve(CriterionKind::Activation, None, Order::HighestFirst, 69.5));
        let v = verdicts(&many, &|_| (1.0, 2.0), &|_| (0.5, 0.7));
        let w = v.iter().find(|x| x.criterion == CriterionKind::WeightL1 && x.order == Order::LowestFirst).unwrap();
        assert!((w.p_value - 2.0 / 101.0).abs() < 1e-12 && w.q_value > VERDICT_Q, "{w:?}");
        assert_eq!(w.verdict, VerdictKind::Unresolved, "beyond every seed but not resolved among 14 verdicts");
        let b = v.iter().find(|x| x.criterion == CriterionKind::BnGamma && x.order == Order::LowestFirst).unwrap();
        assert_eq!(b.verdict, VerdictKind::LikeRandom, "not at the floor: like random");

        // 38 seeds are too few for a verdict at 5 %, however extreme the criterion.
        let few: Vec<CurvePoint> =
            points.iter().filter(|p| p.seed.is_none_or(|s| s < MIN_SEEDS_FOR_VERDICT as u64 - 1)).cloned().collect();
        let v = verdicts(&few, &|_| (f64::NAN, f64::NAN), &|_| (f64::NAN, f64::NAN));
        assert!(v.iter().all(|x| x.verdict == VerdictKind::NoBaseline && x.random_seeds == 38));
    }

    #[test]
    fn auc_is_the_mean_accuracy_over_the_range() {
        assert!((auc(&[pt(0.0, 90.0), pt(0.5, 70.0), pt(1.0, 10.0)]) - 60.0).abs() < 1e-12);
    }
}
