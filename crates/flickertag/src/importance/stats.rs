//! Statistics across images: the phase consistency of a response (Hotelling's T² on
//! complex coefficients) with Benjamini-Hochberg control, a frame-shuffle whiteness
//! test, and the stability of important-filter sets across random halves of the images.
//!
//! What they answer. Whether a filter responds at a line is not among them: a network
//! is deterministic, so that is read off the spectrum against the float32 rounding
//! floor ([`super::response`]). Images are trials: for one filter and one line, image
//! `i` gives the complex coefficient `z_i = X_i[k] / N`. Hotelling's one-sample T² tests
//! `E[z] = 0` on `(Re z, Im z)` (`T² = n m' S⁻¹ m`, `(n - 2) / (2 (n - 1)) · T² ~
//! F(2, n - 2)` under the null): whether the response keeps its phase and sign from
//! image to image. A network shown the same flicker phase is close to phase-locked by
//! construction, so the count of "phase-consistent" filters grows with the number of
//! images (it measures n as much as the filters): it is reported under that name
//! (`phase_p`, `phase_q`, `phase_consistent`), never as "the filter responds". The
//! frame-shuffle test asks whether a filter's series is white noise (`whiteness_p`).

use num_complex::Complex;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

use super::score;
use super::{line_sums, mean_sd, LayerScores, LineSums};
use crate::signal::lines::Line;
use crate::signal::snr::SnrConfig;
use crate::signal::spectrum::{amplitude, tile, Fft};

/// Hotelling's one-sample T² of complex values against mean 0: `(T², p)`. Needs at
/// least 3 values; a singular covariance gives `p = NaN`.
pub fn hotelling_t2(z: &[Complex<f64>]) -> (f64, f64) {
    let n = z.len();
    if n < 3 {
        return (f64::NAN, f64::NAN);
    }
    let nf = n as f64;
    let m = z.iter().sum::<Complex<f64>>() / nf;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for v in z {
        let d = v - m;
        sxx += d.re * d.re;
        syy += d.im * d.im;
        sxy += d.re * d.im;
    }
    let (sxx, syy, sxy) = (sxx / (nf - 1.0), syy / (nf - 1.0), sxy / (nf - 1.0));
    let det = sxx * syy - sxy * sxy;
    if det <= f64::EPSILON * (sxx * syy).max(f64::MIN_POSITIVE) || !det.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let t2 = nf * (m.re * m.re * syy - 2.0 * m.re * m.im * sxy + m.im * m.im * sxx) / det;
    let f = (nf - 2.0) / (2.0 * (nf - 1.0)) * t2;
    let p = FisherSnedecor::new(2.0, nf - 2.0).map(|d| d.sf(f)).unwrap_or(f64::NAN);
    (t2, p)
}

/// Benjamini-Hochberg adjusted p-values (q-values) of `p`; NaN stays NaN and is not
/// counted among the tests.
pub fn bh_adjust(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_finite()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = idx.len() as f64;
    let mut q = vec![f64::NAN; p.len()];
    let mut running = 1.0f64;
    for (rank, &i) in idx.iter().enumerate().rev() {
        running = running.min(p[i] * m / (rank as f64 + 1.0));
        q[i] = running;
    }
    q
}

/// Kolmogorov-Smirnov distance between the values and the uniform distribution on [0, 1].
pub fn ks_uniform(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len() as f64;
    v.iter().enumerate().map(|(i, &x)| ((i as f64 + 1.0) / n - x).max(x - i as f64 / n)).fold(0.0, f64::max)
}

pub use super::crossval::jaccard;
use super::crossval::{important, overlap};

/// Mean and standard deviation of the finite values (NaN, NaN when there are none).
fn finite_mean_sd(v: &[f64]) -> (f64, f64) {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    mean_sd(&f)
}

/// Stability of the important set of one layer under a threshold: `splits` times, the
/// images are shuffled (seeded) and cut into two halves; in each half a filter is
/// important when its mean score exceeds `threshold`; returns the mean and standard
/// deviation of the Jaccard index between the halves' sets over the splits where
/// either half has a set. `scores[image][filter]`.
pub fn split_half_stability(scores: &[Vec<f64>], threshold: f64, splits: usize, seed: u64) -> (f64, f64) {
    let s = split_half_overlaps(&[scores], threshold, splits, seed);
    finite_mean_sd(&s.iter().map(|o| ratio(o[0])).collect::<Vec<_>>())
}

/// The split-half Jaccard index pooled over `layers` (count-weighted: every filter of the
/// network counts once, `Σ |A_l ∩ B_l| / Σ |A_l ∪ B_l|` per split), mean and standard
/// deviation over the splits. Each layer's `scores[image][filter]`; the same image
/// halves for every layer.
pub fn pooled_split_half(layers: &[&[Vec<f64>]], threshold: f64, splits: usize, seed: u64) -> (f64, f64) {
    let s = split_half_overlaps(layers, threshold, splits, seed);
    let pooled: Vec<f64> =
        s.iter().map(|per_layer| ratio(per_layer.iter().fold((0, 0), |(i, u), o| (i + o.0, u + o.1)))).collect();
    finite_mean_sd(&pooled)
}

fn ratio((inter, union): (usize, usize)) -> f64 {
    if union == 0 {
        f64::NAN
    } else {
        inter as f64 / union as f64
    }
}

/// Per split, per layer: `(|A ∩ B|, |A ∪ B|)` of the important sets of two image halves.
fn split_half_overlaps(layers: &[&[Vec<f64>]], threshold: f64, splits: usize, seed: u64) -> Vec<Vec<(usize, usize)>> {
    let n = layers.first().map_or(0, |l| l.len());
    if n < 2 || splits == 0 {
        return vec![];
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    (0..splits)
        .map(|_| {
            order.shuffle(&mut rng);
            let (a, b) = order.split_at(n / 2);
            layers.iter().map(|s| overlap(&important(s, a, threshold), &important(s, b, threshold))).collect()
        })
        .collect()
}

/// Empirical p-value of `observed` against a null sample: `(1 + #{null ≥ observed}) / (1 + n)`.
pub fn empirical_p(observed: f64, null: &[f64]) -> f64 {
    (1 + null.iter().filter(|&&x| x >= observed).count()) as f64 / (1 + null.len()) as f64
}

/// A seeded frame shuffle of a series (the permutation null destroys the time structure
/// while keeping the values).
pub(crate) fn shuffled(series: &[f64], rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f64> {
    let mut v = series.to_vec();
    v.shuffle(rng);
    v
}

/// Statistics of one filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterStats {
    /// Channel.
    pub channel: usize,
    /// Phase-consistency (Hotelling T²) p-value per tested line (same order as
    /// [`StatsResult::tested_lines`]).
    #[serde(rename = "phase_p_lines", deserialize_with = "crate::io::json::nan_vec")]
    pub p_lines: Vec<f64>,
    /// The filter's phase-consistency p-value: the smallest line p-value times the
    /// number of lines (Bonferroni), at most 1.
    #[serde(rename = "phase_p", deserialize_with = "crate::io::json::nan")]
    pub p_value: f64,
    /// Benjamini-Hochberg q-value of `phase_p` over all filters of the run.
    #[serde(rename = "phase_q", deserialize_with = "crate::io::json::nan")]
    pub q_value: f64,
    /// `phase_q <= q`: the response keeps its phase and sign across the images (a NaN
    /// p-value never counts).
    #[serde(rename = "phase_consistent")]
    pub significant: bool,
    /// Frame-shuffle p-value of the mean score against the filter's own series with its
    /// frames shuffled: small when the series is not white noise (if permutations ran).
    #[serde(rename = "whiteness_p", deserialize_with = "Option::deserialize")]
    pub perm_p: Option<f64>,
    /// Baseline-corrected amplitude summed per tag's harmonics, intermodulation and
    /// shared lines (baseline: off-grid bins, 6 each side, of the mean spectrum).
    pub bca: LineSums,
    /// Left/right selectivity from `bca`.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub selectivity: f64,
    /// Integration (intermodulation share) from `bca`.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub integration: f64,
}

/// Statistics of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    /// Tap.
    pub tap: String,
    /// Number of phase-consistent filters at FDR q.
    #[serde(rename = "n_phase_consistent")]
    pub n_significant: usize,
    /// Their channels.
    #[serde(rename = "phase_consistent")]
    pub significant: Vec<usize>,
    /// Per filter.
    pub filters: Vec<FilterStats>,
}

/// What a sweep varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepCriterion {
    /// The importance threshold on the score.
    Threshold,
    /// The FDR level of "significant".
    Q,
}

impl std::fmt::Display for SweepCriterion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SweepCriterion::Threshold => "threshold",
            SweepCriterion::Q => "q",
        })
    }
}

/// One row of a threshold or q sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// `threshold` (score) or `q` (FDR).
    pub criterion: SweepCriterion,
    /// Its value.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub value: f64,
    /// Tap.
    pub tap: String,
    /// Important (or significant) filters with all images.
    pub count: usize,
    /// Mean Jaccard index of the sets from random halves of the images.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub jaccard_mean: f64,
    /// Its standard deviation.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub jaccard_sd: f64,
}

/// All across-image statistics of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsResult {
    /// The FDR level.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub q: f64,
    /// Labels of the tested lines.
    pub tested_lines: Vec<String>,
    /// Images used.
    pub n_images: usize,
    /// Per layer.
    pub layers: Vec<LayerStats>,
    /// Threshold and q sweeps with stability.
    pub sweep: Vec<SweepRow>,
    /// The headline stability: the split-half Jaccard index of the operating set (mean
    /// score above the threshold), pooled over the network, mean over the splits.
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub operating_jaccard: f64,
    /// Its standard deviation over the splits.
    #[serde(default = "nan", deserialize_with = "crate::io::json::nan")]
    pub operating_jaccard_sd: f64,
    /// The important set chosen on one half of the images and checked on the other
    /// ([`super::crossval`]; at most 50 splits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_validation: Option<super::crossval::CrossVal>,
}

fn nan() -> f64 {
    f64::NAN
}

/// Per tap, per channel: the line p-values and the filter's p-value.
type FilterP = Vec<Vec<(Vec<f64>, f64)>>;
/// Per tap: a set of channels.
type Sets = Vec<Vec<usize>>;

/// Filter p-values `[tap][channel]` from coefficients restricted to `images`.
fn filter_p(coefs: &[Vec<Vec<Vec<Complex<f32>>>>], images: &[usize]) -> FilterP {
    coefs
        .iter()
        .map(|tap| {
            tap.iter()
                .map(|lines| {
                    let p: Vec<f64> = lines
                        .iter()
                        .map(|z| {
                            let v: Vec<Complex<f64>> =
                                images.iter().map(|&i| Complex::new(z[i].re as f64, z[i].im as f64)).collect();
                            hotelling_t2(&v).1
                        })
                        .collect();
                    let min = p.iter().copied().filter(|x| x.is_finite()).fold(f64::INFINITY, f64::min);
                    let pf = if min.is_finite() { (min * p.len() as f64).min(1.0) } else { f64::NAN };
                    (p, pf)
                })
                .collect()
        })
        .collect()
}

/// Significant channels per tap at FDR `q` (BH over every filter of the run).
fn significant_sets(p: &[Vec<(Vec<f64>, f64)>], q: f64) -> Sets {
    let flat: Vec<f64> = p.iter().flatten().map(|x| x.1).collect();
    let qv = bh_adjust(&flat);
    let mut k = 0;
    p.iter()
        .map(|tap| {
            let v = (0..tap.len()).filter(|c| qv[k + c] <= q).collect();
            k += tap.len();
            v
        })
        .collect()
}

/// Across-image statistics settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsConfig {
    /// Compute them (Hotelling's T², FDR, threshold sweep, stability).
    pub enabled: bool,
    /// False discovery rate for "significant".
    pub q: f64,
    /// Frame-shuffle permutations for the score's empirical p-value (0: none).
    pub permutations: usize,
    /// Seed of the permutations and of the random halves.
    pub seed: u64,
    /// Random half splits for stability.
    pub splits: usize,
    /// Thresholds of the sweep (empty: quantiles 0.05..0.95 of the scores after the
    /// first tap); the operating threshold is always added.
    pub thresholds: Vec<f64>,
    /// q values of the sweep.
    pub q_values: Vec<f64>,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            enabled: true,
            q: 0.05,
            permutations: 0,
            seed: 0,
            splits: 50,
            thresholds: vec![],
            q_values: vec![0.001, 0.01, 0.05, 0.1, 0.2],
        }
    }
}

/// What the statistics need from an analysis.
pub struct StatsInput<'a> {
    /// The SNR definition in effect.
    pub snr: &'a SnrConfig,
    /// The operating importance threshold.
    pub threshold: f64,
    /// The statistics settings.
    pub stats: &'a StatsConfig,
    /// The line catalogue.
    pub lines: &'a [Line],
    /// Indices of the tested lines.
    pub test_lines: &'a [usize],
    /// Per-image scores per layer.
    pub scores: &'a [LayerScores],
    /// Mean amplitude `[tap][channel][bin]`.
    pub mean_amp: &'a [Vec<Vec<f64>>],
    /// Coefficients `[tap][channel][test line][image]`.
    pub coefs: &'a [Vec<Vec<Vec<Complex<f32>>>>],
    /// Series `[tap][channel][image][frame]` (empty without permutations).
    pub series: &'a [Vec<Vec<Vec<f32>>>],
    /// N.
    pub n_frames: usize,
}

/// Runs every statistic of a finished analysis.
pub fn run(input: &StatsInput) -> StatsResult {
    let cfg = &input.stats;
    let n_images = input.scores.first().map_or(0, |l| l.scores.len());
    let all: Vec<usize> = (0..n_images).collect();
    let p = filter_p(input.coefs, &all);
    let flat: Vec<f64> = p.iter().flatten().map(|x| x.1).collect();
    let qv = bh_adjust(&flat);
    // Baseline: the off-grid bins of the mean spectrum, 6 on each side.
    let g = input.lines.iter().fold(0, |g, l| crate::signal::lines::gcd(g, l.bin));
    let base = SnrConfig::grid_baseline(g, crate::signal::spectrum::n_bins(input.n_frames));
    let n_tags = input.lines.iter().map(|l| l.coefs.len()).max().unwrap_or(0);
    let perm = permutation_p(input);
    let mut k = 0;
    let layers: Vec<LayerStats> = input
        .scores
        .iter()
        .enumerate()
        .map(|(t, layer)| {
            let filters: Vec<FilterStats> = (0..input.mean_amp[t].len())
                .map(|c| {
                    let bca = line_sums(&base.baseline_corrected(&input.mean_amp[t][c]), input.lines, n_tags);
                    FilterStats {
                        channel: c,
                        p_lines: p[t][c].0.clone(),
                        p_value: p[t][c].1,
                        q_value: qv[k + c],
                        significant: qv[k + c] <= cfg.q,
                        perm_p: perm.as_ref().map(|v| v[t][c]),
                        selectivity: bca.selectivity(),
                        integration: bca.integration(),
                        bca,
                    }
                })
                .collect();
            k += filters.len();
            let significant: Vec<usize> = filters.iter().filter(|f| f.significant).map(|f| f.channel).collect();
            LayerStats { tap: layer.tap.clone(), n_significant: significant.len(), significant, filters }
        })
        .collect();
    let sweep = sweeps(input, &p);
    let head = sweep
        .iter()
        .find(|r| r.criterion == SweepCriterion::Threshold && r.tap == NETWORK && r.value == input.threshold);
    StatsResult {
        q: cfg.q,
        tested_lines: input.test_lines.iter().map(|&l| input.lines[l].label.clone()).collect(),
        n_images,
        layers,
        operating_jaccard: head.map_or(f64::NAN, |r| r.jaccard_mean),
        operating_jaccard_sd: head.map_or(f64::NAN, |r| r.jaccard_sd),
        sweep,
        cross_validation: Some(cross_validation(input)),
    }
}

fn sweeps(input: &StatsInput, p: &[Vec<(Vec<f64>, f64)>]) -> Vec<SweepRow> {
    let cfg = &input.stats;
    let mut rows = Vec::new();
    let n_images = input.scores.first().map_or(0, |l| l.scores.len());
    // Stability uses at most 1,000 images (the first ones) to bound the cost.
    let used = n_images.min(1000);
    let means: Vec<f64> = input
        .scores
        .iter()
        .flat_map(|l| {
            (0..l.scores.first().map_or(0, Vec::len))
                .map(move |c| l.scores.iter().map(|s| s[c]).sum::<f64>() / l.scores.len() as f64)
        })
        .collect();
    let thresholds = sweep_thresholds(input, &means);
    for &thr in &thresholds {
        for layer in input.scores {
            let s = &layer.scores[..used];
            let count = (0..s[0].len())
                .filter(|&c| layer.scores.iter().map(|x| x[c]).sum::<f64>() / n_images as f64 > thr)
                .count();
            let (m, sd) = split_half_stability(s, thr, cfg.splits, cfg.seed);
            rows.push(SweepRow {
                criterion: SweepCriterion::Threshold,
                value: thr,
                tap: layer.tap.clone(),
                count,
                jaccard_mean: m,
                jaccard_sd: sd,
            });
        }
        // The whole network, every filter counted once.
        let all: Vec<&[Vec<f64>]> = input.scores.iter().map(|l| &l.scores[..used]).collect();
        let (m, sd) = pooled_split_half(&all, thr, cfg.splits, cfg.seed);
        let count = rows.iter().rev().take(input.scores.len()).map(|r| r.count).sum();
        rows.push(SweepRow {
            criterion: SweepCriterion::Threshold,
            value: thr,
            tap: NETWORK.into(),
            count,
            jaccard_mean: m,
            jaccard_sd: sd,
        });
    }
    let mut order: Vec<usize> = (0..used).collect();
    let splits = cfg.splits.min(20);
    let split_p: Vec<(FilterP, FilterP)> = if used >= 6 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x51);
        (0..splits)
            .map(|_| {
                order.shuffle(&mut rng);
                let (a, b) = order.split_at(used / 2);
                (filter_p(input.coefs, a), filter_p(input.coefs, b))
            })
            .collect()
    } else {
        vec![]
    };
    for &q in &cfg.q_values {
        let full = significant_sets(p, q);
        let per_split: Vec<(Sets, Sets)> =
            split_p.iter().map(|(a, b)| (significant_sets(a, q), significant_sets(b, q))).collect();
        for (t, layer) in input.scores.iter().enumerate() {
            let js: Vec<f64> = per_split.iter().map(|(a, b)| jaccard(&a[t], &b[t])).collect();
            let (m, sd) = finite_mean_sd(&js);
            rows.push(SweepRow {
                criterion: SweepCriterion::Q,
                value: q,
                tap: layer.tap.clone(),
                count: full[t].len(),
                jaccard_mean: m,
                jaccard_sd: sd,
            });
        }
    }
    rows
}

/// [`super::crossval::cross_validate`] over the network's per-image scores (the first 1,000
/// images, as the sweeps), at most 50 splits, seeded by the statistics seed.
fn cross_validation(input: &StatsInput) -> super::crossval::CrossVal {
    let n_images = input.scores.first().map_or(0, |l| l.scores.len());
    let used = n_images.min(1000);
    let layers: Vec<&[Vec<f64>]> = input.scores.iter().map(|l| &l.scores[..used]).collect();
    super::crossval::cross_validate(&layers, input.threshold, input.stats.splits.min(50), input.stats.seed)
}

/// The `tap` of sweep rows over the whole network.
pub const NETWORK: &str = "(network)";

/// Thresholds of the sweep: the configured ones, else quantiles 0.05, 0.10, ..., 0.95 of
/// the filters' mean scores after the first tap (the stem's scores lie apart: a linear
/// stem conv scores low), always with the operating threshold; sorted, without repeats.
fn sweep_thresholds(input: &StatsInput, means: &[f64]) -> Vec<f64> {
    let cfg = &input.stats;
    let mut v = if cfg.thresholds.is_empty() {
        let stem = input.scores.first().and_then(|l| l.scores.first()).map_or(0, Vec::len);
        let mut post: Vec<f64> = means.iter().skip(stem).copied().filter(|x| x.is_finite()).collect();
        if post.is_empty() {
            post = means.iter().copied().filter(|x| x.is_finite()).collect();
        }
        post.sort_by(f64::total_cmp);
        (1..20).filter_map(|i| super::quantile(&post, i as f64 / 20.0)).collect()
    } else {
        cfg.thresholds.clone()
    };
    v.push(input.threshold);
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// Frame-shuffle permutation p-values of each filter's mean score, `[tap][channel]`.
fn permutation_p(input: &StatsInput) -> Option<Vec<Vec<f64>>> {
    let r = input.stats.permutations;
    if r == 0 {
        return None;
    }
    let mut fft = Fft::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(input.stats.seed ^ 0xF7A6);
    let n = input.n_frames;
    let snr = input.snr;
    let score_of =
        |x: &[f64], fft: &mut Fft| score(snr, &snr.snr(&amplitude(&fft.rfft(x), n)), input.lines, input.test_lines);
    Some(
        input
            .series
            .iter()
            .enumerate()
            .map(|(t, tap)| {
                tap.iter()
                    .enumerate()
                    .map(|(c, images)| {
                        let full: Vec<Vec<f64>> =
                            images.iter().map(|s| tile(&s.iter().map(|&x| x as f64).collect::<Vec<_>>(), n)).collect();
                        let observed = input.scores[t].scores.iter().map(|s| s[c]).sum::<f64>() / images.len() as f64;
                        let null: Vec<f64> = (0..r)
                            .map(|_| {
                                full.iter().map(|x| score_of(&shuffled(x, &mut rng), &mut fft)).sum::<f64>()
                                    / full.len() as f64
                            })
                            .collect();
                        empirical_p(observed, &null)
                    })
                    .collect()
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::io::data::standard_normal as gauss;

    #[test]
    fn t2_matches_a_hand_computation() {
        // Values with mean (1, 1); deviations (±1, 0) and (0, ±1): S = diag(2/3, 2/3).
        let z = [Complex::new(2.0, 1.0), Complex::new(0.0, 1.0), Complex::new(1.0, 2.0), Complex::new(1.0, 0.0)];
        let (t2, p) = hotelling_t2(&z);
        // T² = 4 · (1·1 + 1·1) / (2/3) = 12; F = (2 / 6) · 12 = 4 on (2, 2) → p = 1 / (1 + 4) = 0.2.
        assert!((t2 - 12.0).abs() < 1e-12, "{t2}");
        assert!((p - 0.2).abs() < 1e-9, "{p}");
    }

    #[test]
    fn t2_p_values_are_uniform_under_the_null() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let p: Vec<f64> = (0..2000)
            .map(|_| {
                let z: Vec<Complex<f64>> = (0..12)
                    .map(|_| Complex::new(gauss(&mut rng), 0.5 * gauss(&mut rng) + 0.3 * gauss(&mut rng)))
                    .collect();
                hotelling_t2(&z).1
            })
            .collect();
        let d = ks_uniform(&p);
        // 1% critical value of the KS statistic: 1.63 / sqrt(n).
        assert!(d < 1.63 / (p.len() as f64).sqrt(), "KS distance {d}");
    }

    /// Synthetic "filters": white noise, and for the first `planted` of them a 6 Hz line
    /// (bin 12 of 240) with a consistent phase. The across-image T² with BH at q = 0.05
    /// must find the planted lines and keep false positives at or below 5 %.
    #[test]
    fn fdr_controls_false_positives_on_planted_lines() {
        let (n_filters, planted, n_images, n) = (60, 10, 16, 240);
        let mut fft = Fft::new();
        let (mut false_pos, mut nulls, mut found, mut fdp_sum) = (0usize, 0usize, 0usize, 0.0);
        let seeds = 60;
        for seed in 0..seeds {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let p: Vec<f64> = (0..n_filters)
                .map(|f| {
                    let z: Vec<Complex<f64>> = (0..n_images)
                        .map(|_| {
                            let phase = 0.3 + 0.4 * gauss(&mut rng);
                            let x: Vec<f64> = (0..n)
                                .map(|i| {
                                    let line = if f < planted {
                                        0.15 * (2.0 * std::f64::consts::PI * 12.0 * i as f64 / n as f64 + phase).sin()
                                    } else {
                                        0.0
                                    };
                                    line + gauss(&mut rng)
                                })
                                .collect();
                            fft.rfft(&x)[12] / n as f64
                        })
                        .collect();
                    hotelling_t2(&z).1
                })
                .collect();
            let q = bh_adjust(&p);
            let sig: Vec<usize> = (0..n_filters).filter(|&f| q[f] <= 0.05).collect();
            let fp = sig.iter().filter(|&&f| f >= planted).count();
            false_pos += fp;
            nulls += n_filters - planted;
            found += sig.iter().filter(|&&f| f < planted).count();
            fdp_sum += if sig.is_empty() { 0.0 } else { fp as f64 / sig.len() as f64 };
        }
        let fpr = false_pos as f64 / nulls as f64;
        let fdr = fdp_sum / seeds as f64;
        let power = found as f64 / (planted * seeds as usize) as f64;
        assert!(fpr <= 0.05, "false positive rate {fpr}");
        assert!(fdr <= 0.05 + 0.03, "false discovery proportion {fdr}");
        assert!(power >= 0.9, "planted lines found: {power}");
    }

    #[test]
    fn bh_matches_known_values() {
        let q = bh_adjust(&[0.01, 0.04, 0.03, 0.005, f64::NAN]);
        let want = [0.02, 0.04, 0.04, 0.02];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
        assert!(q[4].is_nan());
    }

    #[test]
    fn jaccard_and_stability_edges() {
        assert_eq!(jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
        assert!(jaccard(&[], &[]).is_nan(), "two empty sets are no agreement");
        // A filter far above the threshold in every image: perfectly stable.
        let scores: Vec<Vec<f64>> = (0..10).map(|i| vec![5.0, 0.1 * i as f64, 0.0]).collect();
        let (m, _) = split_half_stability(&scores, 2.0, 20, 3);
        assert_eq!(m, 1.0);
        // A layer with nothing above the threshold in any half has no stability to report.
        assert!(split_half_stability(&scores, 9.0, 20, 3).0.is_nan());
    }

    #[test]
    fn pooled_jaccard_weights_layers_by_their_counts() {
        // Layer a: 10 filters, always the same 8 important (J = 1). Layer b: one filter
        // that is important in exactly half of the images, so in the halves it is in
        // or out at random (J per split 0 or 1 or undefined). Pooled, the 8 stable
        // filters dominate: J >= 8/9 in every split; the per-layer mean of the two
        // layers would weigh b's single filter as much as a's eight.
        let a: Vec<Vec<f64>> = (0..20).map(|_| (0..10).map(|f| if f < 8 { 5.0 } else { 0.0 }).collect()).collect();
        let b: Vec<Vec<f64>> = (0..20).map(|i| vec![if i % 2 == 0 { 4.0 } else { 0.0 }]).collect();
        let (m, _) = pooled_split_half(&[&a, &b], 1.5, 50, 7);
        assert!((8.0 / 9.0..=1.0).contains(&m), "{m}");
        // Exact: sets {0..8} ∪ maybe {b0} in each half.
        let (ma, _) = split_half_stability(&a, 1.5, 50, 7);
        assert_eq!(ma, 1.0);
    }

    #[test]
    fn empirical_p_counts_ties_and_adds_one() {
        assert_eq!(empirical_p(2.0, &[1.0, 2.0, 3.0]), 0.75);
    }
}
