//! Effect sizes with image-bootstrap 95 % confidence intervals (`--bootstrap B`).
//!
//! Per image and filter, from its amplitude spectrum: the baseline-corrected amplitude
//! (baseline: the off-grid bins around each line, as in `lines.csv`) summed over tag
//! 1's lines, tag 2's lines and the intermodulation lines; the share of the series'
//! temporal variance at the response lines (`Σ_lines 2|X_k|² / Σ_{k>0} 2|X_k|²`, DC left
//! out, Nyquist counted once); the left/right selectivity and the integration index.
//! Each quantity's mean over images gets a studentized interval ([`studentized_ci`])
//! from `B` resamples of the images with replacement (seeded); per layer, the same for
//! the mean over the layer's filters, resampling the same images for all of them.
//! Studentized rather than percentile or BCa ([`bca_ci`]): for the skewed per-image
//! values resampled here it keeps its 95 % from far fewer images (the coverage table
//! against the number of images, `examples/bootstrap_coverage.rs`, is in
//! docs/statistics.md); below [`MIN_IMAGES`] a run warns that even it falls short.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::Analysis;
use crate::error::{Error, Result};
use crate::importance::line_sums;
use crate::signal::snr::SnrConfig;

/// Fewest images for which the studentized interval covers the mean at least 93 % of
/// the time on the skewed test populations (log-normal σ = 1: 0.940 at 30 images, 0.914
/// at 20; docs/statistics.md). A run with fewer warns.
pub const MIN_IMAGES: usize = 30;

/// The quantities, in `bootstrap.csv` order.
pub const QUANTITIES: [&str; 6] =
    ["bca_tag1", "bca_tag2", "bca_intermod", "variance_share", "selectivity", "integration"];

/// One quantity of one filter (or of a layer: `channel` None).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Tap.
    pub tap: String,
    /// Channel; None for the layer's mean over its filters.
    pub channel: Option<usize>,
    /// One of [`QUANTITIES`].
    pub quantity: String,
    /// Mean over the images.
    pub mean: f64,
    /// Low end of the 95 % studentized interval ([`studentized_ci`]).
    pub ci_low: f64,
    /// High end of the 95 % studentized interval.
    pub ci_high: f64,
}

/// The means of `v` over each resample of `idx`, sorted.
fn sorted_means(v: &[f64], idx: &[Vec<usize>]) -> Vec<f64> {
    let mut means: Vec<f64> =
        idx.iter().map(|r| r.iter().map(|&i| v[i]).sum::<f64>() / r.len().max(1) as f64).collect();
    means.sort_by(f64::total_cmp);
    means
}

/// A percentile interval of the mean of `v` from the resamples `idx` (each a list of
/// indices into `v`): `(mean, low, high)`.
pub fn percentile_ci(v: &[f64], idx: &[Vec<usize>]) -> (f64, f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let means = sorted_means(v, idx);
    let at = |p: f64| crate::importance::quantile(&means, p).unwrap_or(f64::NAN);
    (mean, at(0.025), at(0.975))
}

/// A bias-corrected and accelerated (BCa) interval of the mean of `v` from the
/// resamples `idx` (Efron 1987; Efron & Tibshirani 1993, ch. 14): `(mean, low, high)`
/// at 95 %. The percentile interval's end points `0.025` and `0.975` move to
/// `Φ(z0 + (z0 + z_α) / (1 - a (z0 + z_α)))`, with the bias correction `z0 = Φ⁻¹(share
/// of resampled means below the mean, ties counted half)` and the acceleration `a` from
/// the jackknife: `a = Σ d_i³ / (6 (Σ d_i²)^1.5)`, `d_i = mean of the leave-one-out
/// means - leave-one-out mean i`. It corrects the percentile interval's skew and
/// median bias, which leave it short for few skewed values (the coverage against the
/// number of images is in docs/statistics.md). Values that are not all finite give
/// NaN ends; a sample whose resampled means are all equal gives the mean as both ends.
pub fn bca_ci(v: &[f64], idx: &[Vec<usize>]) -> (f64, f64, f64) {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 || idx.is_empty() || !v.iter().all(|x| x.is_finite()) {
        return (mean, f64::NAN, f64::NAN);
    }
    let means = sorted_means(v, idx);
    let total: f64 = v.iter().sum();
    let loo: Vec<f64> = v.iter().map(|x| (total - x) / (n - 1) as f64).collect();
    let (low, high) = bca_interval(mean, means, &loo);
    (mean, low, high)
}

/// The BCa 95 % interval of any statistic (Efron & Tibshirani 1993, ch. 14) from its
/// value on the sample `theta`, its bootstrap replicates and its jackknife
/// (leave-one-out) values: the ends of [`bca_ci`], which is this for the mean.
/// Non-finite replicates are dropped; all equal replicates give `theta` as both ends;
/// none gives NaN.
pub fn bca_interval(theta: f64, mut replicates: Vec<f64>, jackknife: &[f64]) -> (f64, f64) {
    use statrs::distribution::{ContinuousCDF, Normal};
    replicates.retain(|x| x.is_finite());
    replicates.sort_by(f64::total_cmp);
    let reps = replicates;
    if reps.is_empty() || !theta.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let at = |p: f64| crate::importance::quantile(&reps, p).unwrap_or(f64::NAN);
    if reps[0] == reps[reps.len() - 1] {
        return (theta, theta);
    }
    let norm = Normal::standard();
    let below = reps.iter().filter(|&&m| m < theta).count() as f64;
    let ties = reps.iter().filter(|&&m| m == theta).count() as f64;
    let share =
        ((below + 0.5 * ties) / reps.len() as f64).clamp(0.5 / reps.len() as f64, 1.0 - 0.5 / reps.len() as f64);
    let z0 = norm.inverse_cdf(share);
    let jack: Vec<f64> = jackknife.iter().copied().filter(|x| x.is_finite()).collect();
    let jack_mean = jack.iter().sum::<f64>() / jack.len().max(1) as f64;
    let (s2, s3) = jack.iter().fold((0.0, 0.0), |(s2, s3), &t| {
        let d = jack_mean - t;
        (s2 + d * d, s3 + d * d * d)
    });
    let a = if s2 > 0.0 { s3 / (6.0 * s2.powf(1.5)) } else { 0.0 };
    let end = |alpha: f64| {
        let z = z0 + norm.inverse_cdf(alpha);
        norm.cdf(z0 + z / (1.0 - a * z))
    };
    (at(end(0.025)), at(end(0.975)))
}

/// A studentized (bootstrap-t) interval of the mean of `v` from the resamples `idx`
/// (Efron & Tibshirani 1993, ch. 12.5): `(mean, low, high)` at 95 %. Each resample's
/// mean is standardized by its own standard error, `t_b = (m_b - m) / (s_b / √n)`, and
/// the interval is `[m - t_0.975 · se, m - t_0.025 · se]` with `se = s / √n` of the
/// sample: the quantiles of `t` carry the skew of the sampling distribution that a
/// percentile interval misses. Resamples whose values are all equal (`s_b = 0`) give
/// `t = ±∞` (or 0 when their mean is the sample's) and stay in the quantiles, which
/// widens the interval for very few images rather than dropping them. Values that are
/// not all finite give NaN ends; a sample with no spread gives the mean as both ends.
pub fn studentized_ci(v: &[f64], idx: &[Vec<usize>]) -> (f64, f64, f64) {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 || idx.is_empty() || !v.iter().all(|x| x.is_finite()) {
        return (mean, f64::NAN, f64::NAN);
    }
    let se_of = |m: f64, xs: &mut dyn Iterator<Item = f64>| {
        let ss: f64 = xs.map(|x| (x - m) * (x - m)).sum();
        (ss / (n - 1) as f64).sqrt() / (n as f64).sqrt()
    };
    let se = se_of(mean, &mut v.iter().copied());
    if se == 0.0 {
        return (mean, mean, mean);
    }
    let mut t: Vec<f64> = idx
        .iter()
        .map(|r| {
            let m = r.iter().map(|&i| v[i]).sum::<f64>() / n as f64;
            let s = se_of(m, &mut r.iter().map(|&i| v[i]));
            match (m - mean, s) {
                (d, s) if s > 0.0 => d / s,
                (0.0, _) => 0.0,
                (d, _) => d.signum() * f64::INFINITY,
            }
        })
        .collect();
    t.sort_by(f64::total_cmp);
    let at = |p: f64| {
        // Linear interpolation as crate::importance::quantile, kept finite where the
        // neighbours are (an infinite quantile is an infinite end).
        let x = p * (t.len() - 1) as f64;
        let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
        if lo == hi || t[lo] == t[hi] {
            t[lo]
        } else {
            t[lo] + (t[hi] - t[lo]) * (x - lo as f64)
        }
    };
    (mean, mean - at(0.975) * se, mean - at(0.025) * se)
}

/// `b` seeded resamples of `n` indices with replacement.
pub fn resamples(n: usize, b: usize, seed: u64) -> Vec<Vec<usize>> {
    resample_draws(n, b, seed).collect()
}

/// The resamples of [`resamples`], one at a time.
pub fn resample_draws(n: usize, b: usize, seed: u64) -> impl Iterator<Item = Vec<usize>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..b).map(move |_| (0..n).map(|_| rng.random_range(0..n)).collect())
}

/// Per-image quantities of every filter: `[row][quantity][image]`.
fn per_image(a: &Analysis) -> Result<Vec<Vec<Vec<f64>>>> {
    let per = a.per_image.as_ref().ok_or_else(|| {
        Error::param("bootstrap", "per-image spectra (<per-image>) to resample images", "a run without them")
    })?;
    let nb = crate::signal::spectrum::n_bins(a.plan.config.n_frames);
    let ni = a.images.len();
    let n_tags = a.plan.config.freqs.len();
    let grid = SnrConfig::grid_baseline(crate::signal::lines::grid_bins(&a.plan.bins), nb);
    let line_bins: Vec<usize> = a.lines.iter().map(|l| l.bin).filter(|&b| b > 0).collect();
    Ok((0..per.rows)
        .map(|r| {
            let mut q = vec![Vec::with_capacity(ni); QUANTITIES.len()];
            for i in 0..ni {
                let amp = per.spectrum(i, r, nb);
                let bca = line_sums(&grid.baseline_corrected(&amp), &a.lines, n_tags);
                let raw = line_sums(&amp, &a.lines, n_tags);
                let power =
                    |k: usize| if 2 * k == a.plan.config.n_frames { amp[k] * amp[k] } else { 2.0 * amp[k] * amp[k] };
                let total: f64 = (1..nb).map(power).sum();
                let at_lines: f64 = line_bins.iter().map(|&k| power(k)).sum();
                let vals = [
                    bca.tags.first().copied().unwrap_or(f64::NAN),
                    bca.tags.get(1).copied().unwrap_or(f64::NAN),
                    bca.intermod,
                    if total > 0.0 { at_lines / total } else { f64::NAN },
                    raw.selectivity(),
                    raw.integration(),
                ];
                for (k, v) in vals.into_iter().enumerate() {
                    q[k].push(v);
                }
            }
            q
        })
        .collect())
}

/// Intervals of every filter and layer of `a` from `b` resamples of its images.
pub fn intervals(a: &Analysis, b: usize, seed: u64) -> Result<Vec<Interval>> {
    if b == 0 {
        return Err(Error::param("bootstrap", "at least 1 resample", 0));
    }
    let q = per_image(a)?;
    let idx = resamples(a.images.len(), b, seed);
    let mut out = Vec::new();
    let mut row = 0;
    for t in &a.taps {
        let c = t.shape[0];
        for (k, name) in QUANTITIES.iter().enumerate() {
            for ch in 0..c {
                let (mean, lo, hi) = studentized_ci(&q[row + ch][k], &idx);
                out.push(Interval {
                    tap: t.tap.name.clone(),
                    channel: Some(ch),
                    quantity: name.to_string(),
                    mean,
                    ci_low: lo,
                    ci_high: hi,
                });
            }
            // The layer: per image, the mean over its filters; resampled alike.
            let layer: Vec<f64> = (0..a.images.len())
                .map(|i| (0..c).map(|ch| q[row + ch][k][i]).filter(|x| x.is_finite()).sum::<f64>() / c.max(1) as f64)
                .collect();
            let (mean, lo, hi) = studentized_ci(&layer, &idx);
            out.push(Interval {
                tap: t.tap.name.clone(),
                channel: None,
                quantity: name.to_string(),
                mean,
                ci_low: lo,
                ci_high: hi,
            });
        }
        row += c;
    }
    Ok(out)
}

/// `bootstrap.csv`.
pub fn to_csv(v: &[Interval]) -> String {
    use crate::io::table::{num, opt, Table};
    let mut t = Table::new(&["tap", "channel", "quantity", "mean", "ci_low", "ci_high"]);
    for r in v {
        t.row([r.tap.clone(), opt(r.channel), r.quantity.to_string(), num(r.mean), num(r.ci_low), num(r.ci_high)]);
    }
    t.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Coverage of the mean 1 by intervals from 800 samples of `n` exponential values.
    type Ci = fn(&[f64], &[Vec<usize>]) -> (f64, f64, f64);

    fn coverage(n: usize, ci: Ci) -> f64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let trials = 800;
        let mut covered = 0;
        for t in 0..trials {
            let v: Vec<f64> = (0..n).map(|_| -(rng.random_range(1e-12..1.0f64)).ln()).collect();
            let (_, lo, hi) = ci(&v, &resamples(v.len(), 500, t));
            covered += (lo <= 1.0 && 1.0 <= hi) as usize;
        }
        covered as f64 / trials as f64
    }

    #[test]
    fn studentized_intervals_keep_95_percent_for_ten_skewed_images_where_percentile_ones_fall_short() {
        // Exponential values (skewness 2), 10 "images": the studentized interval covers
        // the mean about 95 % of the time, the percentile one about 86 % (binomial SD
        // about 0.008 at 800 samples).
        let (t, p) = (coverage(10, studentized_ci), coverage(10, percentile_ci));
        assert!((0.925..=0.975).contains(&t), "studentized coverage {t}");
        assert!(p < 0.9, "percentile coverage {p}");
    }

    #[test]
    fn bca_and_studentized_ends_match_scipy_and_the_textbook_on_the_same_resamples() {
        // Expected values: scripts/bootstrap-oracle.py on the same sample and the same
        // 2000 resamples (`examples/bootstrap_coverage.rs --oracle-input`): BCa by
        // scipy 1.17's own `_bca_interval` with numpy's percentiles, studentized by
        // Efron & Tibshirani's eq. 12.22 in numpy. (BCa to 1e-9: statrs' normal CDF
        // differs from scipy's `ndtr` by about 4e-11.)
        let v = [0.12, 0.31, 0.05, 1.7, 0.44, 0.09, 2.9, 0.21, 0.65, 0.15, 0.38, 5.2];
        let idx = resamples(v.len(), 2000, 7);
        let (_, lo, hi) = bca_ci(&v, &idx);
        assert!((lo - 0.4217729024560075).abs() < 1e-9 && (hi - 2.303762193042042).abs() < 1e-9, "BCa {lo} {hi}");
        let (_, lo, hi) = studentized_ci(&v, &idx);
        assert!((lo - 0.33388220197362717).abs() < 1e-12 && (hi - 6.332817933784056).abs() < 1e-12, "t {lo} {hi}");
        // Far above the percentile interval's high end on so skewed a sample.
        let (_, _, phi) = percentile_ci(&v, &idx);
        assert!(phi < hi - 1.0, "percentile {phi}");
    }

    #[test]
    fn resamples_are_seeded_and_in_range() {
        assert_eq!(resamples(10, 3, 1), resamples(10, 3, 1));
        assert!(resamples(10, 50, 2).iter().flatten().all(|&i| i < 10));
    }
}
