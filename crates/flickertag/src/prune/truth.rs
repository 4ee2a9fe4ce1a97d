//! Ground truth for filter importance: what removing one filter does, and how well each
//! criterion predicts it.
//!
//! For every filter of the chosen conv layers, the network is evaluated with that one
//! filter ablated ([`super::Ablation`], zero by default: the filter pruned) on a seeded
//! set of test images that no statistic of the run saw. The filter's *ground truth* is
//! the mean change over those images of the cross-entropy (`delta_loss`, nats; positive:
//! the network got worse) and of the top-1 accuracy (`delta_top1`, percentage points lost).
//!
//! Every criterion ([`TRUTH_CRITERIA`]) is computed beforehand on other images (the
//! tagging analysis on its own images, the activation statistics on held-out test
//! images), and compared with the truth by Spearman's rank correlation, per layer (the
//! ranking a per-layer pruning uses) and over the pooled filters of all chosen layers
//! (the ranking a global pruning uses). Its 95 % interval is the BCa bootstrap over the
//! evaluation images (the criteria stay fixed; the truth is recomputed on each resample,
//! and on each leave-one-image-out set for the acceleration): a percentile interval
//! would lean towards 0, since resampling adds noise to the truth and so attenuates
//! every correlation. A filter a criterion gives no score (NaN, as the `authors` ratio
//! of a dead channel) is left out of that criterion's rows (`n_filters` says how many
//! remain). `reliability` rows give the truth's own reliability: the rank correlation of
//! the truth measured on the even-numbered against the odd-numbered images, stepped up
//! to the whole set by Spearman-Brown (`2r / (1 + r)`). A criterion's correlation with a
//! truth of reliability `R` cannot be expected above about `√R`; with a low `R` the
//! truth is mostly image noise and more images are needed (`--n-images`).
//!
//! Magnitude-normalised forms answer whether a tagging score says more than how active
//! a channel is: `ft_bca_per_sd` divides the summed baseline-corrected amplitude by the
//! channel's activity SD (over positions and held-out images, at the ablation point);
//! `ft_bca_resid` is the residual of its within-layer rank after a least-squares line on
//! the rank of that SD.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::bootstrap::Resamples;
use super::crossval::{ablate_splits, ablations, CrossValAblation, CrossValAblationConfig, LayerInfo, SplitInput};
use super::experiment::{tagging_criteria, ScoreAt};
use super::stats::point_statistics;
use super::{bn_gamma, losses, weight_l1, Ablation, Evaluator};
use crate::analysis::bootstrap::bca_interval;
use crate::analysis::AnalysisConfig;
use crate::error::{Error, Result};
use crate::importance::correlation::{average_ranks, pearson, residuals, spearman};
use crate::importance::crossval::cross_validate_sets;
use crate::inference::engine::EngineConfig;
use crate::inference::model::Model;
use crate::io::data::Cifar10;
use crate::prune::curves::CriterionKind;

/// The criteria compared with the ground truth, in table order.
pub const TRUTH_CRITERIA: [&str; 10] = [
    "ft_authors",
    "ft_bca",
    "ft_t2",
    "ft_bca_per_sd",
    "ft_bca_resid",
    "weight_l1",
    "bn_gamma",
    "activation",
    "activity_sd",
    "hrank",
];

/// The two ground truths.
pub const TRUTHS: [&str; 2] = ["delta_loss", "delta_top1"];

/// Most filters one run ablates (each is one evaluation of every image).
pub const MAX_FILTERS: usize = 100_000;

/// Settings of a ground-truth run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TruthConfig {
    /// Test images the ablations are evaluated on.
    pub images: Vec<usize>,
    /// Held-out test images of the activation statistics (`activation`, `activity_sd`,
    /// `hrank`, the channel means of mean-ablation), disjoint from `images`.
    pub statistics_images: Vec<usize>,
    /// Test images of the frequency-tagging analysis, disjoint from `images`.
    pub analysis_images: Vec<usize>,
    /// Conv layers whose filters are ablated (tap names or `#ordinal`; empty: all).
    pub layers: Vec<String>,
    /// What the ablated channel is replaced by.
    pub ablation: Ablation,
    /// Image-bootstrap resamples for the intervals (0: none).
    pub bootstrap: usize,
    /// Seed of the resamples.
    pub bootstrap_seed: u64,
    /// The frequency-tagging analysis behind the `ft_*` criteria.
    pub analysis: AnalysisConfig,
    /// Criteria computed outside (Taylor through torch, by the Python package), compared
    /// like the built-in ones.
    #[serde(default)]
    pub extra: Vec<ExtraCriterion>,
    /// The cross-validated ablation of the tagging-selected sets ([`super::crossval`]),
    /// on halves of the analysis images; `None`: not run.
    #[serde(default)]
    pub crossval: Option<CrossValAblationConfig>,
    /// Inference settings.
    #[serde(skip)]
    pub engine: EngineConfig,
}

/// A criterion computed outside flickertag: a score per filter of every chosen layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraCriterion {
    /// Its name (not one of [`TRUTH_CRITERIA`]).
    pub name: String,
    /// Scores by conv tap name, one per filter.
    pub scores: std::collections::BTreeMap<String, Vec<f64>>,
}

/// Most extra criteria.
pub const MAX_EXTRA: usize = 16;

impl TruthConfig {
    /// Every criterion's name, in table order: [`TRUTH_CRITERIA`], then the extra ones.
    pub fn criteria(&self) -> Vec<String> {
        TRUTH_CRITERIA.iter().map(|s| s.to_string()).chain(self.extra.iter().map(|e| e.name.clone())).collect()
    }

    /// Checks the settings before any work: indices inside the test set (`test_len`),
    /// the evaluation images disjoint from the statistics and analysis images, bounds.
    pub fn validate(&self, test_len: usize) -> Result<()> {
        for (name, idx) in [
            ("images", &self.images),
            ("statistics-images", &self.statistics_images),
            ("analysis-images", &self.analysis_images),
        ] {
            if idx.is_empty() {
                return Err(Error::param(name, "at least one test image", 0));
            }
            if let Some(&bad) = idx.iter().find(|&&i| i >= test_len) {
                return Err(Error::param(name, format!("indices 0..{test_len}"), bad));
            }
        }
        let evaluated: std::collections::HashSet<usize> = self.images.iter().copied().collect();
        for (name, idx) in [("statistics-images", &self.statistics_images), ("analysis-images", &self.analysis_images)]
        {
            if let Some(i) = idx.iter().find(|i| evaluated.contains(i)) {
                return Err(Error::param(
                    name,
                    "test images disjoint from the evaluated ones (--images)",
                    format!("test image {i}, which is also evaluated"),
                ));
            }
        }
        if self.images.len() < 2 || self.images.len() > super::bootstrap::MAX_IMAGES {
            return Err(Error::param("n-images", format!("2..={}", super::bootstrap::MAX_IMAGES), self.images.len()));
        }
        if self.extra.len() > MAX_EXTRA {
            return Err(Error::param("extra", format!("at most {MAX_EXTRA} extra criteria"), self.extra.len()));
        }
        for (i, e) in self.extra.iter().enumerate() {
            let taken = TRUTH_CRITERIA.contains(&e.name.as_str())
                || e.name == "reliability"
                || self.extra[..i].iter().any(|x| x.name == e.name);
            if e.name.is_empty() || e.name.len() > 64 || taken {
                return Err(Error::param(
                    "extra",
                    "a new name of 1 to 64 characters (not a built-in criterion, reliability or a repeat)",
                    &e.name,
                ));
            }
        }
        if self.bootstrap > super::experiment::MAX_BOOTSTRAP {
            return Err(Error::param("bootstrap", format!("0..={}", super::experiment::MAX_BOOTSTRAP), self.bootstrap));
        }
        if let Some(cv) = &self.crossval {
            cv.validate(self.analysis_images.len())?;
        }
        self.analysis.validate()
    }
}

/// One ablated filter: its ground truth and every criterion's score.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilterTruth {
    /// Conv tap.
    pub layer: String,
    /// 1-based conv ordinal.
    pub conv_ordinal: Option<usize>,
    /// Filter (output channel).
    pub filter: usize,
    /// Mean cross-entropy change, nats (ablated − intact).
    pub delta_loss: f64,
    /// Top-1 accuracy lost, percentage points (intact − ablated).
    pub delta_top1: f64,
    /// Scores, in the order of [`TruthConfig::criteria`] (NaN where a criterion does not
    /// apply, as `bn_gamma` without a BatchNorm).
    pub scores: Vec<f64>,
}

/// A rank correlation of a criterion with a ground truth over one scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Correlation {
    /// A conv tap, or `all` for the pooled filters of every chosen layer.
    pub scope: String,
    /// A criterion of [`TRUTH_CRITERIA`], or `reliability` (the truth's own).
    pub criterion: String,
    /// `delta_loss` or `delta_top1`.
    pub truth: String,
    /// Filters.
    pub n_filters: usize,
    /// Spearman's ρ (NaN when either side is constant).
    pub rho: f64,
    /// 95 % BCa bootstrap interval over images (NaN without resamples).
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
}

/// The result of a ground-truth run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TruthResult {
    /// The configuration.
    pub config: TruthConfig,
    /// Top-1 of the intact network on the evaluation images, %.
    pub base_top1: f64,
    /// Mean cross-entropy of the intact network, nats.
    pub base_loss: f64,
    /// Every ablated filter.
    pub filters: Vec<FilterTruth>,
    /// Every correlation.
    pub correlations: Vec<Correlation>,
    /// The cross-validated ablation, when asked for.
    pub crossval: Option<CrossValAblation>,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl TruthResult {
    /// The scope of the pooled correlations: `all`, or the one layer of a one-layer run.
    pub fn pooled_scope(&self) -> String {
        if self.correlations.iter().any(|c| c.scope == "all") {
            "all".to_string()
        } else {
            self.correlations.first().map(|c| c.scope.clone()).unwrap_or_default()
        }
    }
}

/// Runs the ground truth: every filter of the chosen layers ablated alone, every
/// criterion scored, every correlation with its interval. `progress(done, total)`
/// counts ablated filters.
pub fn run(
    model: &Model,
    test: &Cifar10,
    cfg: &TruthConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<TruthResult> {
    let start = Instant::now();
    cfg.validate(test.len())?;
    let mut eval = Evaluator::new(model, test, &cfg.images, &cfg.engine)?;
    let chosen: Vec<usize> = if cfg.layers.is_empty() {
        (0..eval.layers.len()).collect()
    } else {
        cfg.layers
            .iter()
            .map(|key| {
                let tap = model.tap(key)?;
                eval.layers
                    .iter()
                    .position(|l| l.tap == tap.name)
                    .ok_or_else(|| Error::param("layers", "conv layers (tap names or #ordinals)", key))
            })
            .collect::<Result<_>>()?
    };
    let filters_total: usize = chosen.iter().map(|&l| eval.layers[l].channels).sum();
    if filters_total > MAX_FILTERS {
        return Err(Error::param("layers", format!("at most {MAX_FILTERS} filters in all"), filters_total));
    }
    let stats = point_statistics(model, &eval.layers, test, &cfg.statistics_images, &cfg.engine, true)?;
    eval.set_means(stats.mean.clone())?;
    let kinds = [CriterionKind::FtAuthors, CriterionKind::FtBca, CriterionKind::FtT2];
    let tagging =
        tagging_criteria(model, &eval.layers, test, &cfg.analysis, &cfg.analysis_images, ScoreAt::Ablation, &kinds)?;
    let ft = &tagging.criteria;
    // The cross-validated sets: the threshold chosen on half A over every layer's scores
    // (as the analysis's own cross-validation), the sets kept for the chosen layers.
    let cv_sets = match &cfg.crossval {
        Some(cv) => {
            let per_image: Vec<&[Vec<f64>]> = tagging.per_image.iter().map(|l| l.scores.as_slice()).collect();
            let (summary, sets) = cross_validate_sets(&per_image, cfg.analysis.threshold, cv.splits, cv.seed);
            summary.splits.into_iter().zip(sets).map(|(x, s)| (x.threshold, s)).collect()
        }
        None => Vec::new(),
    };
    let cv_layers: Vec<LayerInfo> = chosen
        .iter()
        .map(|&l| (eval.layers[l].tap.clone(), eval.layers[l].conv_ordinal, eval.layers[l].channels))
        .collect();
    let cv_channels: Vec<usize> = cv_layers.iter().map(|l| l.2).collect();
    let cv_random = cfg.crossval.as_ref().map_or(0, |c| c.random);
    let cv_total: usize = cv_sets
        .iter()
        .map(|(_, s)| {
            let sets: Vec<Vec<usize>> = chosen.iter().map(|&l| s.set_a[l].clone()).collect();
            ablations(&sets, &cv_channels, cv_random)
        })
        .sum();
    let rank = stats.rank.as_ref().expect("ranks were asked for");
    // Scores [layer][criterion][channel] for the chosen layers.
    let mut scores: Vec<Vec<Vec<f64>>> = Vec::new();
    for &l in &chosen {
        let layer = &eval.layers[l];
        let bca = &ft[1].scores[l];
        let sd = &stats.sd[l];
        let per_sd: Vec<f64> = bca.iter().zip(sd).map(|(b, s)| if *s > 0.0 { b / s } else { 0.0 }).collect();
        let resid = residuals(&average_ranks(bca), &average_ranks(sd));
        let gamma = match layer.bn_scale {
            Some(_) => bn_gamma(model, layer)?,
            None => vec![f64::NAN; layer.channels],
        };
        scores.push(vec![
            ft[0].scores[l].clone(),
            bca.clone(),
            ft[2].scores[l].clone(),
            per_sd,
            resid,
            weight_l1(model, layer)?,
            gamma,
            stats.mean_abs[l].clone(),
            sd.clone(),
            rank[l].clone(),
        ]);
        for e in &cfg.extra {
            let v = e
                .scores
                .get(&layer.tap)
                .ok_or_else(|| Error::param("extra", format!("scores of {} for {}", e.name, layer.tap), "none"))?;
            if v.len() != layer.channels {
                return Err(Error::param(
                    "extra",
                    format!("{} scores of {} for {}", layer.channels, e.name, layer.tap),
                    v.len(),
                ));
            }
            scores.last_mut().expect("just pushed").push(v.clone());
        }
    }
    // Per filter, per image: loss change and hit change.
    let (base_loss, base_hits) = losses(&eval.logits(&[], cfg.ablation)?, eval.labels());
    let n = base_loss.len();
    let total = filters_total + cv_total;
    let mut d_loss: Vec<Vec<f32>> = Vec::with_capacity(filters_total);
    let mut d_hit: Vec<Vec<i8>> = Vec::with_capacity(filters_total);
    let mut filters = Vec::with_capacity(filters_total);
    let mut removed = vec![vec![]; eval.layers.len()];
    for (ci, &l) in chosen.iter().enumerate() {
        for c in 0..eval.layers[l].channels {
            removed[l] = vec![c];
            let (loss, hits) = losses(&eval.logits(&removed, cfg.ablation)?, eval.labels());
            let dl: Vec<f32> = loss.iter().zip(&base_loss).map(|(a, b)| (a - b) as f32).collect();
            let dh: Vec<i8> = hits.iter().zip(&base_hits).map(|(&a, &b)| b as i8 - a as i8).collect();
            filters.push(FilterTruth {
                layer: eval.layers[l].tap.clone(),
                conv_ordinal: eval.layers[l].conv_ordinal,
                filter: c,
                delta_loss: dl.iter().map(|&x| x as f64).sum::<f64>() / n as f64,
                delta_top1: 100.0 * dh.iter().map(|&x| x as f64).sum::<f64>() / n as f64,
                scores: scores[ci].iter().map(|s| s[c]).collect(),
            });
            d_loss.push(dl);
            d_hit.push(dh);
            progress(filters.len(), total);
        }
        removed[l].clear();
    }
    let correlations = correlate(&filters, &d_loss, &d_hit, cfg)?;
    let crossval = match &cfg.crossval {
        Some(cv) => {
            let mut done = filters.len();
            let split = SplitInput { model, test, analysis_images: &cfg.analysis_images, chosen: &chosen };
            Some(ablate_splits(&mut eval, &split, &cv_layers, &cv_sets, cv, cfg.ablation, &mut || {
                done += 1;
                progress(done, total);
            })?)
        }
        None => None,
    };
    Ok(TruthResult {
        config: cfg.clone(),
        base_top1: 100.0 * base_hits.iter().filter(|&&h| h).count() as f64 / n as f64,
        base_loss: base_loss.iter().sum::<f64>() / n as f64,
        filters,
        correlations,
        crossval,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Every scope's correlations, with their BCa intervals and the reliability rows.
fn correlate(
    filters: &[FilterTruth],
    d_loss: &[Vec<f32>],
    d_hit: &[Vec<i8>],
    cfg: &TruthConfig,
) -> Result<Vec<Correlation>> {
    let n = d_loss.first().map_or(0, Vec::len);
    let per_image = |f: usize, i: usize, t: usize| if t == 0 { d_loss[f][i] as f64 } else { d_hit[f][i] as f64 };
    // The truth on a weighting of the images (counts or 0/1), per truth and filter.
    let truth_of = |w: &dyn Fn(usize) -> f64| -> [Vec<f64>; 2] {
        let mut out = [vec![0.0; filters.len()], vec![0.0; filters.len()]];
        for (t, v) in out.iter_mut().enumerate() {
            for (f, x) in v.iter_mut().enumerate() {
                *x = (0..n).map(|i| w(i) * per_image(f, i, t)).sum();
            }
        }
        out
    };
    let mut scopes: Vec<(String, Vec<usize>)> = Vec::new();
    for (f, x) in filters.iter().enumerate() {
        match scopes.iter_mut().find(|s| s.0 == x.layer) {
            Some(s) => s.1.push(f),
            None => scopes.push((x.layer.clone(), vec![f])),
        }
    }
    if scopes.len() > 1 {
        scopes.push(("all".into(), (0..filters.len()).collect()));
    }
    let full = truth_of(&|_| 1.0);
    let even = truth_of(&|i| (i % 2 == 0) as u8 as f64);
    let odd = truth_of(&|i| (i % 2 == 1) as u8 as f64);
    // Resampled truths [resample][truth][filter].
    let resampled: Vec<[Vec<f64>; 2]> = if cfg.bootstrap > 0 {
        let r = Resamples::new(n, cfg.bootstrap, cfg.bootstrap_seed)?;
        let mut out = vec![[vec![0.0; filters.len()], vec![0.0; filters.len()]]; cfg.bootstrap];
        for i in 0..n {
            let counts = r.counts_of(i);
            for (b, &c) in counts.iter().enumerate().filter(|(_, &c)| c > 0) {
                let [loss, hit] = &mut out[b];
                for (f, (l, h)) in loss.iter_mut().zip(hit.iter_mut()).enumerate() {
                    *l += c as f64 * per_image(f, i, 0);
                    *h += c as f64 * per_image(f, i, 1);
                }
            }
        }
        out
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for (scope, members) in &scopes {
        for (t, truth) in TRUTHS.iter().enumerate() {
            // The truth's ranks over the scope on every resample and leave-one-out set,
            // computed once for all criteria (recomputed only for a criterion with NaNs).
            let ranks_of = |kept: &[usize]| -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
                let boot = resampled.iter().map(|r| average_ranks(&kept.iter().map(|&f| r[t][f]).collect::<Vec<_>>()));
                let jack = (0..n)
                    .map(|i| average_ranks(&kept.iter().map(|&f| full[t][f] - per_image(f, i, t)).collect::<Vec<_>>()));
                if resampled.is_empty() {
                    (vec![], vec![])
                } else {
                    (boot.collect(), jack.collect())
                }
            };
            let all_ranks = ranks_of(members);
            for (k, name) in cfg.criteria().iter().enumerate() {
                // Filters a criterion gives no score (NaN: a dead channel's ratio) are left out.
                let kept: Vec<usize> = members.iter().copied().filter(|&f| !filters[f].scores[k].is_nan()).collect();
                let rx = average_ranks(&kept.iter().map(|&f| filters[f].scores[k]).collect::<Vec<f64>>());
                let rho = pearson(&rx, &average_ranks(&kept.iter().map(|&f| full[t][f]).collect::<Vec<_>>()));
                let (ci_low, ci_high) = if resampled.is_empty() || !rho.is_finite() {
                    (f64::NAN, f64::NAN)
                } else {
                    let own;
                    let (boot, jack) = if kept.len() == members.len() {
                        (&all_ranks.0, &all_ranks.1)
                    } else {
                        own = ranks_of(&kept);
                        (&own.0, &own.1)
                    };
                    let boot: Vec<f64> = boot.iter().map(|ry| pearson(&rx, ry)).collect();
                    let jack: Vec<f64> = jack.iter().map(|ry| pearson(&rx, ry)).collect();
                    bca_interval(rho, boot, &jack)
                };
                out.push(Correlation {
                    scope: scope.clone(),
                    criterion: name.clone(),
                    truth: (*truth).into(),
                    n_filters: kept.len(),
                    rho,
                    ci_low,
                    ci_high,
                });
            }
            // The reliability of the truth itself: the split-half rank correlation, stepped
            // up to the whole image set by Spearman-Brown (no interval).
            let pick = |v: &[f64]| members.iter().map(|&f| v[f]).collect::<Vec<f64>>();
            let half = spearman(&pick(&even[t]), &pick(&odd[t]));
            out.push(Correlation {
                scope: scope.clone(),
                criterion: "reliability".into(),
                truth: (*truth).into(),
                n_filters: members.len(),
                rho: 2.0 * half / (1.0 + half),
                ci_low: f64::NAN,
                ci_high: f64::NAN,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_is_the_log_softmax_of_the_label() {
        // −log softmax by hand: logits [1, 2, 3], label 0: log(e + e² + e³) − 1.
        let (l, h) = losses(&[1.0, 2.0, 3.0, 0.0, 0.0, 5.0], &[0, 2]);
        let want0 = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 1.0;
        let want1 = (2.0 + 5f64.exp()).ln() - 5.0;
        assert!((l[0] - want0).abs() < 1e-12 && (l[1] - want1).abs() < 1e-12, "{l:?}");
        assert_eq!(h, vec![false, true]);
    }
}
