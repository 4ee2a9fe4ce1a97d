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
//! Verdict: random pruning (several seeds) is the yardstick. With `z = (AUC - mean of
//! random AUCs) / their standard deviation`, a criterion beats random when removing
//! its lowest-scoring filters first keeps more accuracy (z > 0 for `lowest-first`) and
//! removing its highest-scoring first costs more (z < 0 for `highest-first`).

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::Evaluator;
use crate::error::Result;
use crate::importance::mean_sd;

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
    /// Uniform random scores (seeded): the baseline.
    Random,
}

impl CriterionKind {
    /// The criteria a user can ask for (random is always added).
    pub const CHOICES: [CriterionKind; 6] = [
        CriterionKind::FtAuthors,
        CriterionKind::FtBca,
        CriterionKind::FtT2,
        CriterionKind::WeightL1,
        CriterionKind::BnGamma,
        CriterionKind::Activation,
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
    /// Removing by the criterion hurts less than random (`z ≥ 2` in its order's sense).
    #[serde(rename = "better than random")]
    Better,
    /// Removing by the criterion hurts more than random.
    #[serde(rename = "worse than random")]
    Worse,
    /// Within two random standard deviations.
    #[serde(rename = "like random")]
    LikeRandom,
    /// Fewer than two random seeds: no spread to compare against.
    #[serde(rename = "no random baseline")]
    NoBaseline,
}

impl std::fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerdictKind::Better => "better than random",
            VerdictKind::Worse => "worse than random",
            VerdictKind::LikeRandom => "like random",
            VerdictKind::NoBaseline => "no random baseline",
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

/// The filters to remove from one layer.
pub fn removal(scores: &[f64], fraction: f64, order: Order) -> Vec<usize> {
    let k = ((fraction * scores.len() as f64).round() as usize).min(scores.len());
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        let o = scores[a].total_cmp(&scores[b]);
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
    cache: HashMap<Vec<Vec<usize>>, (f64, Vec<f64>)>,
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

/// Measured ablations: the filters removed per layer, the top-1 accuracy and the
/// per-class accuracies.
pub type Measured = Vec<(Vec<Vec<usize>>, f64, Vec<f64>)>;

/// A checkpoint callback of a [`Runner`].
pub type CacheFn<'a> = Box<dyn FnMut(&Measured) -> Result<()> + 'a>;

impl<'a> Runner<'a> {
    /// A runner over an evaluator.
    pub fn new(eval: &'a mut Evaluator) -> Self {
        Runner {
            eval,
            cache: HashMap::new(),
            evaluations: 0,
            progress: Box::new(|_| {}),
            checkpoint: None,
            last: std::time::Instant::now(),
            done: 0,
        }
    }

    /// Ablations measured before (a checkpoint): they are not run again.
    pub fn preload(&mut self, measured: Measured) {
        for (k, t, p) in measured {
            self.cache.insert(k, (t, p));
        }
    }

    /// Every ablation measured so far, in a stable order.
    pub fn measured(&self) -> Measured {
        let mut v: Measured = self.cache.iter().map(|(k, (t, p))| (k.clone(), *t, p.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Ablations measured, including those of a checkpoint.
    pub fn distinct_ablations(&self) -> usize {
        self.cache.len()
    }

    fn measure(&mut self, removed: Vec<Vec<usize>>) -> Result<(usize, f64, Vec<f64>)> {
        let n: usize = removed.iter().map(Vec::len).sum();
        if let Some((t, p)) = self.cache.get(&removed) {
            return Ok((n, *t, p.clone()));
        }
        let a = self.eval.accuracy(&removed)?;
        self.evaluations += 1;
        self.cache.insert(removed, (a.top1, a.per_class.clone()));
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
    /// `Some(l)`: layer `l` alone).
    pub fn curve(
        &mut self,
        crit: &Criterion,
        scope: Option<usize>,
        order: Order,
        fractions: &[f64],
    ) -> Result<Vec<CurvePoint>> {
        let layers = self.eval.layers.clone();
        let mut out = Vec::new();
        for &f in fractions {
            let removed: Vec<Vec<usize>> = (0..layers.len())
                .map(|l| if scope.is_none() || scope == Some(l) { removal(&crit.scores[l], f, order) } else { vec![] })
                .collect();
            let (n, top1, per_class) = self.measure(removed)?;
            out.push(CurvePoint {
                scope: scope.map_or("network".to_string(), |l| layers[l].tap.clone()),
                criterion: crit.name,
                seed: crit.seed,
                order,
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
    let mut p: Vec<(f64, f64)> = points.iter().map(|x| (x.fraction, x.top1)).collect();
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
    /// Its AUC (mean accuracy over the curve, percent).
    pub auc: f64,
    /// Mean AUC of the random seeds.
    pub random_mean: f64,
    /// Their standard deviation.
    pub random_sd: f64,
    /// `(auc - random_mean) / random_sd`.
    pub z: f64,
    /// Its empirical percentile among the random seeds' AUCs, in the criterion's good
    /// direction: the percentage of random seeds it does better than (ties count half);
    /// with 100 seeds, ≥ 97.5 is better than random at the 5 % level two-sided.
    #[serde(default = "nan", deserialize_with = "crate::json::nan")]
    pub random_percentile: f64,
    /// Better, worse or like random (|z| < 2).
    pub verdict: VerdictKind,
}

/// Verdicts of every non-random criterion from the curves (grouped by scope, order).
pub fn verdicts(points: &[CurvePoint]) -> Vec<Verdict> {
    let mut groups: Vec<(String, CriterionKind, Option<u64>, Order)> = Vec::new();
    for p in points {
        let key = (p.scope.clone(), p.criterion, p.seed, p.order);
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    let curve = |k: &(String, CriterionKind, Option<u64>, Order)| -> Vec<CurvePoint> {
        points
            .iter()
            .filter(|p| p.scope == k.0 && p.criterion == k.1 && p.seed == k.2 && p.order == k.3)
            .cloned()
            .collect()
    };
    let mut out = Vec::new();
    for k in groups.iter().filter(|k| k.1 != CriterionKind::Random) {
        let rand: Vec<f64> = groups
            .iter()
            .filter(|r| r.1 == CriterionKind::Random && r.0 == k.0 && r.3 == k.3)
            .map(|r| auc(&curve(r)))
            .collect();
        let (m, sd) = mean_sd(&rand);
        // One seed gives no spread to measure against.
        let sd = if rand.len() > 1 { sd } else { f64::NAN };
        let a = auc(&curve(k));
        let z = (a - m) / sd.max(1e-9);
        let good = if k.3 == Order::LowestFirst { z } else { -z };
        let random_percentile = percentile_among(a, &rand, k.3 == Order::LowestFirst);
        let verdict = if !z.is_finite() {
            VerdictKind::NoBaseline
        } else if good >= 2.0 {
            VerdictKind::Better
        } else if good <= -2.0 {
            VerdictKind::Worse
        } else {
            VerdictKind::LikeRandom
        };
        out.push(Verdict {
            scope: k.0.clone(),
            criterion: k.1,
            order: k.3,
            auc: a,
            random_mean: m,
            random_sd: sd,
            z,
            random_percentile,
            verdict,
        });
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

    fn pt(f: f64, a: f64) -> CurvePoint {
        CurvePoint {
            scope: "network".into(),
            criterion: CriterionKind::WeightL1,
            seed: None,
            order: Order::LowestFirst,
            fraction: f,
            removed: 0,
            top1: a,
            per_class: vec![],
        }
    }

    #[test]
    fn auc_is_the_mean_accuracy_over_the_range() {
        assert!((auc(&[pt(0.0, 90.0), pt(0.5, 70.0), pt(1.0, 10.0)]) - 60.0).abs() < 1e-12);
    }
}
