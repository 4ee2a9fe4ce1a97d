//! The region-swap control: does a filter's preference follow the image region, or
//! the frequency? The analysis runs a second time with the tag frequencies exchanged
//! between the regions. For each image and filter, the selectivity `(S1 - S2)/(S1 + S2)`
//! is measured in both runs, where `S_r` is the amplitude summed over the fundamental
//! and harmonics of region r's frequency (region 1 is left for `halves`): in region
//! terms, so a preference for a region keeps the selectivity under the swap
//! (`b_i = a_i`) and a preference for a frequency flips it (`b_i = -a_i`), whichever
//! region an image's content favours. Per image, `d_i = |a_i + b_i| - |a_i - b_i|` is
//! `2|a_i|` for a region-bound filter, `-2|a_i|` for a frequency-bound one and 0 on
//! average for a filter with neither; a paired t-test of `d` across images against 0
//! (a null that can be true), Benjamini-Hochberg over all filters, and at q ≤ 0.05 the
//! filter `follows_region` (mean d > 0) or `follows_frequency` (mean d < 0). Needs
//! per-image spectra in both runs.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::Analysis;
use crate::error::{Error, Result};
use crate::importance::line_sums;
use crate::importance::stats::bh_adjust;

/// The FDR level at which a filter is said to follow its region.
pub const SWAP_Q: f64 = 0.05;

/// One filter under the region swap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwapFilter {
    /// Tap.
    pub tap: String,
    /// Channel.
    pub channel: usize,
    /// Mean selectivity over images, first run (positive: region 1 > region 2).
    pub selectivity: f64,
    /// Mean selectivity over images, frequencies swapped (still region 1 against 2).
    pub selectivity_swapped: f64,
    /// Mean of `d_i = |a_i + b_i| - |a_i - b_i|` over images.
    pub region_minus_frequency: f64,
    /// Paired t-test p-value of `d` against 0 (two-sided).
    pub p_value: f64,
    /// Benjamini-Hochberg q-value over all filters.
    pub q_value: f64,
    /// `q_value <= SWAP_Q` and the mean of `d` is positive.
    pub follows_region: bool,
    /// `q_value <= SWAP_Q` and the mean of `d` is negative.
    pub follows_frequency: bool,
}

/// Two-sided paired t-test of `d` against mean 0 (NaN with fewer than 2 values or no
/// spread and a zero mean; 0 with no spread and a non-zero mean).
pub fn paired_t(d: &[f64]) -> f64 {
    let n = d.len();
    if n < 2 {
        return f64::NAN;
    }
    let (m, sd) = crate::importance::mean_sd(d);
    if sd == 0.0 {
        return if m == 0.0 { f64::NAN } else { 0.0 };
    }
    let t = m / (sd / (n as f64).sqrt());
    StudentsT::new(0.0, 1.0, (n - 1) as f64).map_or(f64::NAN, |s| 2.0 * s.sf(t.abs()))
}

/// Per-image selectivity of every filter of `a`: `[row][image]`.
fn selectivities(a: &Analysis) -> Result<Vec<Vec<f64>>> {
    let per = a.per_image.as_ref().ok_or_else(|| {
        Error::param("region-swap", "per-image spectra (<per-image>) in both runs", "a run without them")
    })?;
    let nb = crate::signal::spectrum::n_bins(a.plan.config.n_frames);
    let ni = a.images.len();
    let n_tags = a.plan.config.freqs.len();
    Ok((0..per.rows)
        .map(|r| {
            (0..ni)
                .map(|i| {
                    let amp = per.spectrum(i, r, nb);
                    line_sums(&amp, &a.lines, n_tags).selectivity()
                })
                .collect()
        })
        .collect())
}

/// Per filter (rows of `sel[filter][image]` and `swapped[filter][image]`): the mean of
/// `d_i = |a_i + b_i| - |a_i - b_i|` and its paired t-test p-value against 0.
pub fn swap_test(sel: &[Vec<f64>], swapped: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    sel.iter()
        .zip(swapped)
        .map(|(x, y)| {
            let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| (a + b).abs() - (a - b).abs()).collect();
            (d.iter().sum::<f64>() / d.len().max(1) as f64, paired_t(&d))
        })
        .unzip()
}

/// Compares a run with its region-swapped twin (same model, images and taps; the two
/// tag frequencies exchanged).
pub fn region_swap(a: &Analysis, swapped: &Analysis) -> Result<Vec<SwapFilter>> {
    if a.plan.config.freqs.len() != 2 || a.images.len() != swapped.images.len() || a.taps != swapped.taps {
        return Err(Error::param("region-swap", "two tag frequencies and the same images and taps", "other runs"));
    }
    let (s1, s2) = (selectivities(a)?, selectivities(swapped)?);
    let (md, p) = swap_test(&s1, &s2);
    let q = bh_adjust(&p);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut out = Vec::with_capacity(p.len());
    let mut row = 0;
    for t in &a.taps {
        for c in 0..t.shape[0] {
            let md = md[row];
            out.push(SwapFilter {
                tap: t.tap.name.clone(),
                channel: c,
                selectivity: mean(&s1[row]),
                selectivity_swapped: mean(&s2[row]),
                region_minus_frequency: md,
                p_value: p[row],
                q_value: q[row],
                follows_region: q[row] <= SWAP_Q && md > 0.0,
                follows_frequency: q[row] <= SWAP_Q && md < 0.0,
            });
            row += 1;
        }
    }
    Ok(out)
}

/// `region_swap.csv`.
pub fn to_csv(rows: &[SwapFilter]) -> String {
    use crate::io::table::{num, Table};
    let mut t = Table::new(&[
        "tap",
        "channel",
        "selectivity",
        "selectivity_swapped",
        "region_minus_frequency",
        "p_value",
        "q_value",
        "follows_region",
        "follows_frequency",
    ]);
    for r in rows {
        t.row([
            r.tap.clone(),
            num(r.channel),
            num(r.selectivity),
            num(r.selectivity_swapped),
            num(r.region_minus_frequency),
            num(r.p_value),
            num(r.q_value),
            num(r.follows_region),
            num(r.follows_frequency),
        ]);
    }
    t.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_t_matches_scipy() {
        // scipy.stats.ttest_1samp([0.3, -0.1, 0.4, 0.25, 0.05], 0).pvalue
        let p = paired_t(&[0.3, -0.1, 0.4, 0.25, 0.05]);
        assert!((p - 0.11693430104240451).abs() < 1e-9, "{p}");
        assert!(paired_t(&[1.0]).is_nan());
        assert_eq!(paired_t(&[0.5, 0.5, 0.5]), 0.0);
    }

    #[test]
    fn planted_preferences_are_told_apart_and_the_null_keeps_its_rate() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut noise = |s: f64| s * (rng.random::<f64>() - 0.5);
        let n = 30;
        // Region-bound: the swapped run keeps each image's selectivity; frequency-bound:
        // flips it; both with image-dependent signs and a little noise.
        let a: Vec<f64> = (0..n).map(|i| if i % 3 == 0 { -0.4 } else { 0.3 } + noise(0.05)).collect();
        let region: Vec<f64> = a.iter().map(|x| x + noise(0.05)).collect();
        let freq: Vec<f64> = a.iter().map(|x| -x + noise(0.05)).collect();
        let (md, p) = swap_test(&[a.clone(), a.clone()], &[region, freq]);
        assert!(md[0] > 0.0 && p[0] < 1e-6, "region {} {}", md[0], p[0]);
        assert!(md[1] < 0.0 && p[1] < 1e-6, "frequency {} {}", md[1], p[1]);
        // Neither: independent selectivities in the two runs. At alpha 0.05 the test
        // rejects in at most about 5 % of 400 such filters.
        let x: Vec<Vec<f64>> = (0..400).map(|_| (0..n).map(|_| noise(1.0)).collect()).collect();
        let y: Vec<Vec<f64>> = (0..400).map(|_| (0..n).map(|_| noise(1.0)).collect()).collect();
        let (_, p) = swap_test(&x, &y);
        let rate = p.iter().filter(|&&v| v < 0.05).count() as f64 / 400.0;
        assert!(rate <= 0.075, "false-positive rate {rate}");
    }
}
