//! Does oddball selectivity mean what it says? For each class `c`, the filters most
//! selective for `c` by the oddball paradigm ([`crate::analysis::oddball`]) are ablated
//! together, and the drop in class-`c` recall is compared with the drops that random
//! filter sets of the same size *in the same layers* cause (a control that differs in
//! which filters only, not in how many nor where).
//!
//! The selected set is the top `fraction` of the ablatable conv filters by their
//! oddball z for `c` (filters without a z rank last). Each random set takes, layer by
//! layer, as many filters as the selected set holds there, uniformly (seeded). Recall
//! is measured on CIFAR-10 test images that the oddball streams did not use. The Monte
//! Carlo p is `(1 + #{random drop ≥ selected drop}) / (1 + R)`; the 95 % interval of
//! the selected drop is a percentile bootstrap over class-`c` images (paired: each
//! resample compares the same images intact and ablated). The drop of the other
//! classes' mean recall under the selected set says whether the damage is specific.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{Ablation, Evaluator};
use crate::analysis::oddball::OddballResult;
use crate::error::{Error, Result};
use crate::inference::engine::EngineConfig;
use crate::inference::model::Model;
use crate::io::data::{Cifar10, CLASSES};

/// How the selectivity is validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationConfig {
    /// Share of the ablatable filters selected per class (0.1: the top 10 %).
    pub fraction: f64,
    /// Random layer-matched sets per class.
    pub random_sets: usize,
    /// Seed of the random sets and of the bootstrap.
    pub seed: u64,
    /// What an ablated channel becomes.
    pub ablation: Ablation,
    /// Bootstrap resamples of the class's images.
    pub bootstrap: usize,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig { fraction: 0.1, random_sets: 100, seed: 0, ablation: Ablation::Mean, bootstrap: 1000 }
    }
}

/// One class's validation (`oddball_validation.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationRow {
    /// Class.
    pub class: String,
    /// Test images of the class that recall is measured on.
    pub images: usize,
    /// Filters ablated.
    pub filters: usize,
    /// Recall of the class, intact, percent.
    pub recall_intact: f64,
    /// Recall with the selected filters ablated, percent.
    pub recall_selected: f64,
    /// `recall_intact − recall_selected`, percentage points.
    pub drop: f64,
    /// 95 % bootstrap interval of the drop, lower bound.
    pub drop_low: f64,
    /// Upper bound.
    pub drop_high: f64,
    /// Mean drop under the random layer-matched sets.
    pub random_mean: f64,
    /// Their standard deviation.
    pub random_sd: f64,
    /// Their 95th percentile.
    pub random_p95: f64,
    /// Monte Carlo p of the selected drop among the random ones (one-sided).
    pub p_value: f64,
    /// Drop of the mean recall of the other classes under the selected set.
    pub other_drop: f64,
}

/// The images of a validation: CIFAR-10 test images recall is measured on, and those
/// mean ablation takes its channel means from.
pub struct ValidationImages<'a> {
    /// The test set.
    pub test: &'a Cifar10,
    /// Indices recall is measured on.
    pub indices: &'a [usize],
    /// Indices of the channel means (images the streams used).
    pub mean_indices: &'a [usize],
}

/// Validates the oddball selectivity of `odd` (an analysis of `model` whose classes are
/// CIFAR-10's) by ablation on `images`. `progress` is called with `(evaluations done,
/// evaluations in all)`.
pub fn validate(
    model: &Model,
    odd: &OddballResult,
    images: &ValidationImages,
    cfg: &ValidationConfig,
    engine: &EngineConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<ValidationRow>> {
    let (test, indices) = (images.test, images.indices);
    if !(cfg.fraction > 0.0 && cfg.fraction < 1.0) {
        return Err(Error::param("fraction", "a share of the filters in (0, 1)", cfg.fraction));
    }
    if !(1..=100_000).contains(&cfg.random_sets) {
        return Err(Error::param("random-sets", "1 to 100000 random sets", cfg.random_sets));
    }
    // `(index in the analysis, CIFAR-10 label)` of each class; the null control has no
    // recall to measure.
    let classes: Vec<(usize, usize)> = odd
        .classes
        .iter()
        .enumerate()
        .filter(|(_, n)| *n != crate::analysis::oddball::NULL_CLASS)
        .map(|(ci, n)| {
            CLASSES
                .iter()
                .position(|c| c == n)
                .map(|c| (ci, c))
                .ok_or_else(|| Error::param("classes", format!("CIFAR-10 classes ({})", CLASSES.join(", ")), n))
        })
        .collect::<Result<_>>()?;
    let mut eval = Evaluator::new(model, test, indices, engine)?;
    if cfg.ablation == Ablation::Mean {
        let st = super::stats::point_statistics(model, &eval.layers, test, images.mean_indices, engine, false)?;
        eval.set_means(st.mean)?;
    }
    // Oddball z per ablatable layer and channel; a layer the analysis did not record
    // has no z.
    let labels: Vec<u8> = indices.iter().map(|&i| test.label(i)).collect();
    let sizes: Vec<usize> = eval.layers.iter().map(|l| l.channels).collect();
    let total: usize = sizes.iter().sum();
    let k = ((cfg.fraction * total as f64).round() as usize).clamp(1, total);
    let intact = eval.outcome(&vec![vec![]; sizes.len()], cfg.ablation)?;
    let evaluations = classes.len() * (1 + cfg.random_sets);
    let mut done = 0;
    let mut rows = Vec::new();
    for &(ci, class) in &classes {
        let z = odd.z_of_class(ci);
        let mut ranked: Vec<(usize, usize, f64)> = Vec::with_capacity(total);
        for (l, layer) in eval.layers.iter().enumerate() {
            let t = odd.taps.iter().position(|t| t.tap.name == layer.tap);
            for ch in 0..layer.channels {
                let v = t.and_then(|t| z[t].get(ch).copied()).filter(|v| v.is_finite()).unwrap_or(f64::NEG_INFINITY);
                ranked.push((l, ch, v));
            }
        }
        if ranked.iter().all(|r| r.2 == f64::NEG_INFINITY) {
            return Err(Error::param(
                "taps",
                "an oddball analysis that recorded the convolutions (taps conv)",
                format!("no oddball z for any of {}'s {} ablatable layers", model.name, sizes.len()),
            ));
        }
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
        let mut selected = vec![Vec::new(); sizes.len()];
        for &(l, ch, _) in &ranked[..k] {
            selected[l].push(ch);
        }
        let of_class: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] as usize == class).collect();
        if of_class.is_empty() {
            return Err(Error::param("images", format!("test images of class {}", CLASSES[class]), 0));
        }
        let recall =
            |hits: &[bool]| 100.0 * of_class.iter().filter(|&&i| hits[i]).count() as f64 / of_class.len() as f64;
        let others = |acc: &crate::evaluate::Accuracy| {
            let v: Vec<f64> = (0..CLASSES.len()).filter(|&c| c != class).map(|c| acc.per_class[c]).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let sel = eval.outcome(&selected, cfg.ablation)?;
        done += 1;
        progress(done, evaluations);
        let drop = recall(&intact.hits) - recall(&sel.hits);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(class as u64 * 7_919));
        let mut random = Vec::with_capacity(cfg.random_sets);
        for _ in 0..cfg.random_sets {
            let set: Vec<Vec<usize>> =
                selected.iter().zip(&sizes).map(|(s, &n)| sample(&mut rng, n, s.len()).into_vec()).collect();
            let o = eval.outcome(&set, cfg.ablation)?;
            random.push(recall(&intact.hits) - recall(&o.hits));
            done += 1;
            progress(done, evaluations);
        }
        // Paired bootstrap over the class's images.
        let mut boot = Vec::with_capacity(cfg.bootstrap);
        for _ in 0..cfg.bootstrap {
            let mut d = 0i64;
            for _ in 0..of_class.len() {
                let i = of_class[rng.random_range(0..of_class.len())];
                d += intact.hits[i] as i64 - sel.hits[i] as i64;
            }
            boot.push(100.0 * d as f64 / of_class.len() as f64);
        }
        let (lo, hi) = super::bootstrap::percentile_interval(&boot, 0.95);
        let (mean, sd) = crate::importance::mean_sd(&random);
        let mut sorted = random.clone();
        sorted.sort_by(f64::total_cmp);
        rows.push(ValidationRow {
            class: CLASSES[class].to_string(),
            images: of_class.len(),
            filters: k,
            recall_intact: recall(&intact.hits),
            recall_selected: recall(&sel.hits),
            drop,
            drop_low: lo,
            drop_high: hi,
            random_mean: mean,
            random_sd: sd,
            random_p95: crate::importance::quantile(&sorted, 0.95).unwrap_or(f64::NAN),
            p_value: (1 + random.iter().filter(|&&r| r >= drop).count()) as f64 / (1 + random.len()) as f64,
            other_drop: others(&intact.accuracy) - others(&sel.accuracy),
        });
    }
    Ok(rows)
}

/// `oddball_validation.csv`.
pub fn to_csv(rows: &[ValidationRow]) -> String {
    use crate::io::table::{num, Table};
    let mut t = Table::new(&[
        "class",
        "images",
        "filters",
        "recall_intact",
        "recall_selected",
        "drop",
        "drop_low",
        "drop_high",
        "random_mean",
        "random_sd",
        "random_p95",
        "p_value",
        "other_drop",
    ]);
    for r in rows {
        t.row([
            r.class.clone(),
            num(r.images),
            num(r.filters),
            num(r.recall_intact),
            num(r.recall_selected),
            num(r.drop),
            num(r.drop_low),
            num(r.drop_high),
            num(r.random_mean),
            num(r.random_sd),
            num(r.random_p95),
            num(r.p_value),
            num(r.other_drop),
        ]);
    }
    t.into_string()
}
