//! How well a map localises the target, and how faithful it is to the network.
//!
//! On a canvas of `S × S` pixels with the object's box `B` (32 × 32) and a map `M ≥ 0`
//! upsampled to the canvas:
//! - **energy** (Wang et al. 2020, "energy-based pointing game"): `Σ_B M / Σ M`. A
//!   uniform map scores the box's share of the canvas (0.25 on 64 × 64).
//! - **pointing** (Zhang et al. 2018, without tolerance): the share of the map's
//!   maximal pixels that lie in `B` (1 or 0 when the maximum is unique; ties count in
//!   proportion, so a constant map scores the box's share).
//! - **deletion** / **insertion** (Petsiuk et al. 2018, RISE): the canvas pixels, most
//!   salient first (ties in a seeded random order), are set to the baseline (0 after
//!   normalisation: the dataset's mean colour) in `steps` equal steps (deletion), or
//!   copied onto the baseline canvas (insertion); the area under the target's softmax
//!   probability against the fraction of pixels changed (trapezoid rule, 0 to 1).
//!   Lower deletion and higher insertion are better.
//!
//! A map that is zero everywhere (no positive evidence) counts as the uniform map.
//!
//! A channel set is compared with the control (the same layer, every channel) case by
//! case: the mean over cases of `metric(set) − metric(all)` with its 95 % BCa bootstrap
//! interval over cases ([`crate::analysis::bootstrap::bca_ci`]); the tagging set is also
//! compared with the random set the same way (does tagging pick better channels than chance?).

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::localisation::Case;

/// The four metrics, in table order.
pub const METRICS: [&str; 4] = ["energy", "pointing", "insertion", "deletion"];

/// Whether a higher value of metric `i` of [`METRICS`] is better (all but deletion).
pub fn higher_is_better(i: usize) -> bool {
    i != 3
}

/// `Σ_box M / Σ M` (the box's share of the canvas for a zero map).
pub fn energy(map: &[f64], case: &Case, side: usize) -> f64 {
    let total: f64 = map.iter().sum();
    let inside: f64 = (0..side * side).filter(|&p| case.in_box(p / side, p % side)).map(|p| map[p]).sum();
    if total > 0.0 {
        inside / total
    } else {
        box_share(side)
    }
}

/// The box's share of the canvas.
pub fn box_share(side: usize) -> f64 {
    (super::localisation::OBJECT * super::localisation::OBJECT) as f64 / (side * side) as f64
}

/// The share of the maximal pixels of `map` inside the box.
pub fn pointing(map: &[f64], case: &Case, side: usize) -> f64 {
    let max = map.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let top: Vec<usize> = (0..map.len()).filter(|&p| map[p] == max).collect();
    top.iter().filter(|&&p| case.in_box(p / side, p % side)).count() as f64 / top.len().max(1) as f64
}

/// Pixel indices, most salient first; ties in a random order from `seed`.
pub fn order(map: &[f64], seed: u64) -> Vec<usize> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut keyed: Vec<(f64, u64, usize)> = map.iter().enumerate().map(|(p, &v)| (v, rng.random(), p)).collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, p)| p).collect()
}

/// The pixels changed after step `s` of `steps`: `round(s · n / steps)` of `n`.
fn changed(s: usize, steps: usize, n: usize) -> usize {
    (s * n + steps / 2) / steps
}

/// The inputs of the interior steps `1..steps` of deletion then insertion, `[2(steps −
/// 1), C, S, S]`: `input` is the normalised canvas `[C, S, S]`, `order` its pixels most
/// salient first. Steps 0 and `steps` are the canvas and the baseline, known beforehand.
pub fn perturbed(input: &[f32], channels: usize, order: &[usize], steps: usize) -> Vec<f32> {
    let n = order.len();
    let mut out = Vec::with_capacity(2 * (steps - 1) * input.len());
    for deleting in [true, false] {
        let mut x: Vec<f32> = if deleting { input.to_vec() } else { vec![0.0; input.len()] };
        let mut done = 0;
        for s in 1..steps {
            for &p in &order[done..changed(s, steps, n)] {
                for c in 0..channels {
                    x[c * n + p] = if deleting { 0.0 } else { input[c * n + p] };
                }
            }
            done = changed(s, steps, n);
            out.extend_from_slice(&x);
        }
    }
    out
}

/// The area under a curve sampled at `0, 1/steps, ..., 1` (trapezoid rule).
pub fn auc(curve: &[f64]) -> f64 {
    let steps = curve.len() - 1;
    curve.windows(2).map(|w| 0.5 * (w[0] + w[1])).sum::<f64>() / steps as f64
}

/// `(deletion, insertion)` AUCs from the target probabilities of the full canvas, of
/// the baseline and of the interior steps ([`perturbed`]'s order: deletion then insertion).
pub fn deletion_insertion(full: f64, baseline: f64, interior: &[f64]) -> (f64, f64) {
    let k = interior.len() / 2;
    let del: Vec<f64> = std::iter::once(full).chain(interior[..k].iter().copied()).chain([baseline]).collect();
    let ins: Vec<f64> = std::iter::once(baseline).chain(interior[k..].iter().copied()).chain([full]).collect();
    (auc(&del), auc(&ins))
}

/// One comparison of a channel set with another (the control `all`, or `random`) on one metric.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// Method.
    pub method: String,
    /// Channel set (`tagging`, `random`, `bottom`).
    pub set: String,
    /// The set it is compared with: `all` (the same layer, every channel) or `random`.
    pub against: String,
    /// Metric of [`METRICS`].
    pub metric: String,
    /// Mean over cases of the set.
    pub mean: f64,
    /// Mean over cases of the set it is compared with.
    pub control: f64,
    /// Mean paired difference, set − the set it is compared with.
    pub difference: f64,
    /// 95 % BCa bootstrap interval of the difference over cases.
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
    /// `better`, `worse` (the interval excludes 0) or `no difference shown`.
    pub verdict: String,
}

/// Compares `set` with the set `against` (`control`: one value per case each) on
/// metric `metric`.
pub fn compare(
    method: &str,
    set: &str,
    against: &str,
    metric: usize,
    values: &[f64],
    control: &[f64],
    resamples: &[Vec<usize>],
) -> Comparison {
    let n = values.len().max(1) as f64;
    let diff: Vec<f64> = values.iter().zip(control).map(|(a, b)| a - b).collect();
    let (d, lo, hi) = crate::analysis::bootstrap::bca_ci(&diff, resamples);
    let up = higher_is_better(metric);
    let verdict = if lo > 0.0 || hi < 0.0 {
        if (lo > 0.0) == up {
            "better"
        } else {
            "worse"
        }
    } else {
        "no difference shown"
    };
    Comparison {
        method: method.into(),
        set: set.into(),
        against: against.into(),
        metric: METRICS[metric].into(),
        mean: values.iter().sum::<f64>() / n,
        control: control.iter().sum::<f64>() / n,
        difference: d,
        ci_low: lo,
        ci_high: hi,
        verdict: verdict.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> Case {
        Case { image: 0, label: 0, x: 32, y: 0, background: vec![] }
    }

    #[test]
    fn a_map_inside_the_box_has_full_energy_and_a_uniform_one_the_box_share() {
        let side = 64;
        let inside: Vec<f64> =
            (0..side * side).map(|p| if case().in_box(p / side, p % side) { 2.0 } else { 0.0 }).collect();
        assert_eq!(energy(&inside, &case(), side), 1.0);
        assert_eq!(pointing(&inside, &case(), side), 1.0);
        let flat = vec![1.0; side * side];
        assert_eq!(energy(&flat, &case(), side), 0.25);
        assert_eq!(pointing(&flat, &case(), side), 0.25);
        assert_eq!(energy(&vec![0.0; side * side], &case(), side), 0.25);
    }

    #[test]
    fn deletion_and_insertion_follow_the_order_and_the_trapezoid_rule() {
        // 4 pixels, 1 channel, 2 steps: step 1 deletes / inserts the 2 most salient.
        let input = [1.0f32, 2.0, 3.0, 4.0];
        let map = [0.0, 9.0, 5.0, 1.0];
        let o = order(&map, 0);
        assert_eq!(&o[..3], &[1, 2, 3]);
        let x = perturbed(&input, 1, &o, 2);
        assert_eq!(x, vec![1.0, 0.0, 0.0, 4.0, 0.0, 2.0, 3.0, 0.0]);
        // Curves 1 → 0.5 → 0 and 0 → 0.25 → 1: AUC (0.75 + 0.25) / 2 and (0.125 + 0.625) / 2.
        assert_eq!(deletion_insertion(1.0, 0.0, &[0.5, 0.25]), (0.5, 0.375));
    }

    #[test]
    fn a_set_better_on_every_case_is_better_and_deletion_reads_the_other_way() {
        let r = crate::analysis::bootstrap::resamples(20, 500, 1);
        let control: Vec<f64> = (0..20).map(|i| i as f64 / 20.0).collect();
        let up: Vec<f64> = control.iter().map(|c| c + 0.1 + 0.01 * c).collect();
        assert_eq!(compare("m", "s", "all", 0, &up, &control, &r).verdict, "better");
        assert_eq!(compare("m", "s", "all", 3, &up, &control, &r).verdict, "worse");
        let c = compare("m", "s", "all", 0, &control, &control, &r);
        assert_eq!((c.difference, c.verdict.as_str()), (0.0, "no difference shown"));
    }
}
