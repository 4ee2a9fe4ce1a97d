//! Cross-validated ablation: does the set of "important" filters chosen on one half of
//! the analysis images matter more to the network, on the other half's images, than as
//! many random filters of the same layer?
//!
//! [`crate::importance::crossval`] splits the analysis images at random into halves A and
//! B and chooses the threshold on A alone (the most stable one within A). Here, for every
//! split and every chosen conv layer, A's important filters of that layer (its mean
//! `authors` score over A above A's threshold) are ablated together, and the network's
//! mean cross-entropy change on B's images is measured (`delta_loss`, nats; positive:
//! worse). B's images chose nothing, so nothing of the selection is measured on the images
//! it was made on. The comparison is dose-matched: `random` sets of the same size drawn
//! from the same layer (seeded per split and layer) are ablated on the same images, and
//!
//! - `z = (delta_loss - random_mean) / random_sd`,
//! - `p_value = (1 + #{random sets at least as damaging}) / (random + 1)` (the Monte Carlo
//!   p of "more damaging than a random set of its size"),
//! - `above_random`: whether `delta_loss` exceeds `random_mean`.
//!
//! A layer where A's set is empty or the whole layer has no comparison (NaN in those
//! columns); it still says how many filters were chosen. Per split, the network's answer
//! is the mean `z` and the share of compared layers whose set is above the random mean;
//! over splits, the mean and the 2.5 and 97.5 percentiles ([`CrossValAblation::summary`]).
//! The splits share images, so the percentile range says how much the answer moves with
//! the split, not a sampling interval of independent replications.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Most outer splits of one run.
pub const MAX_SPLITS: usize = 50;

/// Most random sets per layer and split.
pub const MAX_RANDOM: usize = 1000;

/// Settings of the cross-validated ablation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValAblationConfig {
    /// Outer splits of the analysis images (1..=[`MAX_SPLITS`]).
    pub splits: usize,
    /// Random sets of the same size per layer and split (1..=[`MAX_RANDOM`]).
    pub random: usize,
    /// Seed of the splits and of the random sets.
    pub seed: u64,
}

impl CrossValAblationConfig {
    /// Checks the bounds and that there are at least 4 analysis images to split.
    pub fn validate(&self, analysis_images: usize) -> Result<()> {
        if self.splits == 0 || self.splits > MAX_SPLITS {
            return Err(Error::param("crossval-splits", format!("1..={MAX_SPLITS}"), self.splits));
        }
        if self.random == 0 || self.random > MAX_RANDOM {
            return Err(Error::param("crossval-random", format!("1..={MAX_RANDOM}"), self.random));
        }
        if analysis_images < 4 {
            return Err(Error::param(
                "analysis-images",
                "at least 4 test images to split in halves for the cross-validated ablation",
                analysis_images,
            ));
        }
        Ok(())
    }
}

/// One layer of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerAblation {
    /// Conv tap name.
    pub layer: String,
    /// 1-based conv ordinal.
    pub conv_ordinal: Option<usize>,
    /// Filters of the layer.
    pub channels: usize,
    /// A's important filters of this layer (channel indices).
    pub set: Vec<usize>,
    /// Mean cross-entropy change on B's images with the set ablated (nats).
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub delta_loss: f64,
    /// Mean of the same over the random sets of the set's size.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub random_mean: f64,
    /// Their standard deviation.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub random_sd: f64,
    /// `(delta_loss - random_mean) / random_sd`.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub z: f64,
    /// `(1 + #{random at least as damaging}) / (random + 1)`.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub p_value: f64,
}

impl LayerAblation {
    /// Whether there was a comparison (a set neither empty nor the whole layer).
    pub fn compared(&self) -> bool {
        self.random_mean.is_finite()
    }
}

/// One outer split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitAblation {
    /// Split index (0-based).
    pub split: usize,
    /// The threshold chosen on A.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub threshold: f64,
    /// B's images (test-set indices), where the ablations were measured.
    pub images_b: Vec<usize>,
    /// Every chosen layer.
    pub layers: Vec<LayerAblation>,
}

impl SplitAblation {
    /// Mean `z` over the compared layers (NaN when none).
    pub fn mean_z(&self) -> f64 {
        mean(self.layers.iter().filter(|l| l.compared() && l.z.is_finite()).map(|l| l.z))
    }

    /// Share of the compared layers whose set is more damaging than the random mean.
    pub fn share_above_random(&self) -> f64 {
        mean(self.layers.iter().filter(|l| l.compared()).map(|l| (l.delta_loss > l.random_mean) as u8 as f64))
    }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// The cross-validated ablation of a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValAblation {
    /// The settings.
    pub config: CrossValAblationConfig,
    /// Every split.
    pub splits: Vec<SplitAblation>,
}

impl CrossValAblation {
    /// Mean and the 2.5 and 97.5 percentiles over the splits of a per-split value (NaN
    /// values left out; NaN when none is finite).
    pub fn summary(&self, value: impl Fn(&SplitAblation) -> f64) -> (f64, f64, f64) {
        crate::importance::crossval::mean_and_range(self.splits.iter().map(value))
    }
}

/// A chosen layer: `(tap name, conv ordinal, channels)`.
pub type LayerInfo = (String, Option<usize>, usize);

/// Compares one split's sets (`sets[layer]`, channel indices) with `random` same-size
/// random sets of the same layer. `delta(layer, channels)` is the mean loss change on B's
/// images with those channels of that layer ablated; `progress()` is called once per
/// ablation.
pub fn compare(
    layers: &[LayerInfo],
    sets: &[Vec<usize>],
    random: usize,
    seed: u64,
    delta: &mut dyn FnMut(usize, &[usize]) -> Result<f64>,
    progress: &mut dyn FnMut(),
) -> Result<Vec<LayerAblation>> {
    let mut out = Vec::with_capacity(layers.len());
    for (l, ((name, ordinal, channels), set)) in layers.iter().zip(sets).enumerate() {
        let k = set.len();
        let mut row = LayerAblation {
            layer: name.clone(),
            conv_ordinal: *ordinal,
            channels: *channels,
            set: set.clone(),
            delta_loss: f64::NAN,
            random_mean: f64::NAN,
            random_sd: f64::NAN,
            z: f64::NAN,
            p_value: f64::NAN,
        };
        if k > 0 {
            row.delta_loss = delta(l, set)?;
            progress();
        }
        if k > 0 && k < *channels {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (l as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut all: Vec<usize> = (0..*channels).collect();
            let mut r = Vec::with_capacity(random);
            for _ in 0..random {
                all.shuffle(&mut rng);
                let mut s = all[..k].to_vec();
                s.sort_unstable();
                r.push(delta(l, &s)?);
                progress();
            }
            let m = r.iter().sum::<f64>() / r.len() as f64;
            // Identical values have no spread (the mean's rounding would invent one).
            let sd = if r.iter().all(|&x| x == r[0]) {
                0.0
            } else if r.len() > 1 {
                (r.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (r.len() - 1) as f64).sqrt()
            } else {
                f64::NAN
            };
            row.random_mean = m;
            row.random_sd = sd;
            row.z = if sd > 0.0 { (row.delta_loss - m) / sd } else { f64::NAN };
            row.p_value = (1 + r.iter().filter(|&&x| x >= row.delta_loss).count()) as f64 / (random + 1) as f64;
        }
        out.push(row);
    }
    Ok(out)
}

/// What [`ablate_splits`] evaluates on: the model, the test set, the analysis images (test
/// indices, in the order of the scores' images) and the chosen layers (indices into the
/// evaluator's layers).
pub struct SplitInput<'a> {
    /// The model.
    pub model: &'a crate::inference::model::Model,
    /// The CIFAR-10 test set.
    pub test: &'a crate::io::data::Cifar10,
    /// The analysis images.
    pub analysis_images: &'a [usize],
    /// The chosen layers.
    pub chosen: &'a [usize],
}

/// Runs every split: `sets[split] = (A's threshold, its halves and sets)` from
/// [`crate::importance::crossval::cross_validate_sets`], `layers` the chosen layers' info.
/// `eval` is switched to each split's B images; `tick()` is called once per ablation.
pub fn ablate_splits(
    eval: &mut super::Evaluator,
    input: &SplitInput,
    layers: &[LayerInfo],
    sets: &[(f64, crate::importance::crossval::SplitSets)],
    cfg: &CrossValAblationConfig,
    ablation: super::Ablation,
    tick: &mut dyn FnMut(),
) -> Result<CrossValAblation> {
    use super::losses;
    let mut splits = Vec::with_capacity(sets.len());
    for (split, (threshold, s)) in sets.iter().enumerate() {
        let images_b: Vec<usize> = s.half_b.iter().map(|&i| input.analysis_images[i]).collect();
        eval.set_images(input.model, input.test, &images_b)?;
        let (base, _) = losses(&eval.logits(&[], ablation)?, eval.labels());
        let chosen_sets: Vec<Vec<usize>> = input.chosen.iter().map(|&l| s.set_a[l].clone()).collect();
        let mut delta = |ci: usize, set: &[usize]| -> Result<f64> {
            let mut removed = vec![vec![]; eval.layers.len()];
            removed[input.chosen[ci]] = set.to_vec();
            let (loss, _) = losses(&eval.logits(&removed, ablation)?, eval.labels());
            Ok(loss.iter().zip(&base).map(|(a, b)| a - b).sum::<f64>() / base.len() as f64)
        };
        let seed = cfg.seed.wrapping_add(split as u64).wrapping_mul(0xA24B_AED4_963E_E407);
        let rows = compare(layers, &chosen_sets, cfg.random, seed, &mut delta, tick)?;
        splits.push(SplitAblation { split, threshold: *threshold, images_b, layers: rows });
    }
    Ok(CrossValAblation { config: cfg.clone(), splits })
}

/// The number of ablations one split runs for `sets` of layers of `channels` filters.
pub fn ablations(sets: &[Vec<usize>], channels: &[usize], random: usize) -> usize {
    sets.iter()
        .zip(channels)
        .map(|(s, &c)| match s.len() {
            0 => 0,
            k if k >= c => 1,
            _ => 1 + random,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(c: &[usize]) -> Vec<LayerInfo> {
        c.iter().enumerate().map(|(i, &c)| (format!("conv{i}"), Some(i + 1), c)).collect()
    }

    #[test]
    fn a_set_whose_filters_cost_more_beats_every_random_set_of_its_size() {
        // Known answer: in a 20-filter layer, filters 0..5 cost 1 nat each when ablated,
        // the others 0.1 (additive). The set {0..5} costs 5; any other 5-set costs less,
        // so the Monte Carlo p is at its floor 1/(R+1) unless a random draw is that set.
        let cost = |c: usize| if c < 5 { 1.0 } else { 0.1 };
        let mut delta = |_: usize, s: &[usize]| -> Result<f64> { Ok(s.iter().map(|&c| cost(c)).sum()) };
        let mut n = 0;
        let rows = compare(&layers(&[20]), &[(0..5).collect()], 99, 3, &mut delta, &mut || n += 1).unwrap();
        let r = &rows[0];
        assert_eq!(n, 100);
        assert!((r.delta_loss - 5.0).abs() < 1e-12);
        // The mean of a random 5-set: 5 × (5 × 1 + 15 × 0.1) / 20 = 1.625, within sampling.
        assert!((r.random_mean - 1.625).abs() < 0.25, "{r:?}");
        assert!(r.z > 3.0 && (r.p_value - 0.01).abs() < 1e-12, "{r:?}");
        let split = SplitAblation { split: 0, threshold: 1.0, images_b: vec![], layers: rows };
        assert_eq!(split.share_above_random(), 1.0);
    }

    #[test]
    fn a_set_no_costlier_than_others_is_not_told_from_random() {
        // Every filter costs the same: the set's cost equals every random set's, so
        // every random set is "at least as damaging" (p = 1) and z is undefined (sd 0).
        let mut delta = |_: usize, s: &[usize]| -> Result<f64> { Ok(0.2 * s.len() as f64) };
        let rows = compare(&layers(&[16]), &[vec![1, 4, 9]], 20, 0, &mut delta, &mut || {}).unwrap();
        assert_eq!(rows[0].p_value, 1.0);
        assert!(rows[0].z.is_nan() && rows[0].compared());
    }

    #[test]
    fn empty_and_whole_layer_sets_have_no_comparison_and_run_what_they_must() {
        let mut calls = Vec::new();
        let mut delta = |l: usize, s: &[usize]| -> Result<f64> {
            calls.push((l, s.len()));
            Ok(1.0)
        };
        let rows =
            compare(&layers(&[4, 3, 5]), &[vec![], vec![0, 1, 2], vec![2]], 7, 0, &mut delta, &mut || {}).unwrap();
        assert!(!rows[0].compared() && rows[0].delta_loss.is_nan());
        assert!(!rows[1].compared() && rows[1].delta_loss == 1.0);
        assert!(rows[2].compared());
        assert_eq!(calls.len(), ablations(&[vec![], vec![0, 1, 2], vec![2]], &[4, 3, 5], 7));
        assert_eq!(calls.len(), 1 + 1 + 7);
        // Random sets have the set's size and come from its layer.
        assert!(calls[2..].iter().all(|&(l, k)| l == 2 && k == 1));
    }

    #[test]
    fn random_sets_are_drawn_uniformly_from_the_layer() {
        // Oracle: each filter of a 10-filter layer is in a random 3-set with probability 0.3.
        let mut seen = [0usize; 10];
        let mut delta = |_: usize, s: &[usize]| -> Result<f64> {
            for &c in s {
                seen[c] += 1;
            }
            Ok(0.0)
        };
        compare(&layers(&[10]), &[vec![0, 1, 2]], 1000, 5, &mut delta, &mut || {}).unwrap();
        // The set itself adds one to 0, 1, 2.
        for (c, &n) in seen.iter().enumerate() {
            let random = n - (c < 3) as usize;
            assert!((random as f64 / 1000.0 - 0.3).abs() < 0.05, "filter {c}: {random}");
        }
    }

    #[test]
    fn bounds_are_refused_naming_the_parameter() {
        let ok = CrossValAblationConfig { splits: 5, random: 10, seed: 0 };
        assert!(ok.validate(10).is_ok());
        for (c, n, name) in [
            (CrossValAblationConfig { splits: 0, ..ok.clone() }, 10, "crossval-splits"),
            (CrossValAblationConfig { splits: 51, ..ok.clone() }, 10, "crossval-splits"),
            (CrossValAblationConfig { random: 0, ..ok.clone() }, 10, "crossval-random"),
            (ok.clone(), 3, "analysis-images"),
        ] {
            let e = c.validate(n).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }
}
