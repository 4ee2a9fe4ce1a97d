//! The harmonic-sum response, as FPVS practice defines it (Rossion and colleagues;
//! Retter & Rossion 2016; the FPVS Toolbox), beside the paper's score
//! (`--harmonic-sum`, `harmonic_sum.csv`, `harmonic_sum_harmonics.csv`).
//!
//! For each tag `t` the candidate harmonics are `k f_t`, `k = 1..=`[`MAX_HARMONICS`] below
//! Nyquist, without the bins that are also a multiple of another tag's bin (shared, so
//! neither tag's alone). Around a bin `h` the noise is read at the offsets
//! `2 ≤ |j| ≤ 10` (the adjacent bin skipped), without bins on the response grid (the
//! multiples of the tags' greatest common bin, where a network's responses lie) and
//! without DC; the smallest and largest of those values are dropped (the FPVS rule).
//! `z(h) = (A[h] − mean(noise)) / sd(noise)` (sample SD).
//!
//! *Which harmonics*: on each layer's grand average (the mean over its filters of their
//! mean amplitude spectra), harmonics are taken in order while significant (`z > 1.64`,
//! one-tailed p < 0.05), stopping at the first two consecutive non-significant ones; the
//! significant ones before the stop are the layer's harmonics of `t`.
//! *How much*: per filter, the baseline-corrected amplitude `A[h] − mean(noise)` summed
//! over those harmonics (`bca`).
//! *Whether it responds*: per filter and selected harmonic the one-tailed p of `z(h)`,
//! Holm-adjusted over the layer's selected harmonics of `t`; the filter responds to `t`
//! when the smallest adjusted p is at most 0.05.
//!
//! A network is deterministic: without input noise, the bins between lines hold only
//! float32 rounding, every z is enormous and "responds" measures nothing. The response
//! is therefore only defined against a real noise floor: the run must have an input
//! noise (`--noise-sigma > 0`), which the plan checks.

use serde::{Deserialize, Serialize};

use super::Analysis;
use crate::error::{Error, Result};

/// Most harmonics per tag considered.
pub const MAX_HARMONICS: usize = 20;
/// Noise bins are read up to this many bins either side (FPVS: 10).
pub const NEIGHBOURS: usize = 10;
/// z above which a harmonic of the grand average is significant (one-tailed p < 0.05).
pub const HARMONIC_Z: f64 = 1.64;
/// Holm-adjusted p at or below which a filter responds.
pub const ALPHA: f64 = 0.05;

/// One candidate harmonic of one tag in one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarmonicRow {
    /// The tap.
    pub tap: String,
    /// The tagged region.
    pub region: String,
    /// Its order `k`.
    pub k: usize,
    /// Its bin.
    pub bin: usize,
    /// Its frequency, Hz.
    pub freq: f64,
    /// z on the layer's grand average.
    pub z: f64,
    /// Whether it is one of the layer's harmonics of this tag.
    pub selected: bool,
}

/// One filter's harmonic-sum response to one tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterSum {
    /// The tap.
    pub tap: String,
    /// Filter (channel).
    pub channel: usize,
    /// The tagged region.
    pub region: String,
    /// Harmonics summed (the layer's selected ones).
    pub harmonics: usize,
    /// Summed baseline-corrected amplitude (0 with no harmonic).
    pub bca: f64,
    /// Smallest Holm-adjusted one-tailed p over those harmonics (NaN with none).
    pub p_holm: f64,
    /// `p_holm ≤ 0.05`.
    pub responds: bool,
}

/// Noise bins around `h` (see the module doc), before the min/max drop.
pub fn noise_bins(h: usize, grid: usize, n_bins: usize) -> Vec<usize> {
    (2..=NEIGHBOURS as i64)
        .flat_map(|j| [-j, j])
        .filter_map(|j| usize::try_from(h as i64 + j).ok())
        .filter(|&b| b > 0 && b < n_bins && (grid == 0 || !b.is_multiple_of(grid)))
        .collect()
}

/// `(mean, sample sd)` of the noise values at `bins` of `amp` without their minimum and
/// maximum (NaN with fewer than 4 values).
pub fn noise_of(amp: &[f64], bins: &[usize]) -> (f64, f64) {
    let mut v: Vec<f64> = bins.iter().map(|&b| amp[b]).collect();
    if v.len() < 4 {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let v = &v[1..v.len() - 1];
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt())
}

/// `z(h)` of `amp` at bin `h` (NaN where the noise has no spread).
pub fn z_at(amp: &[f64], h: usize, grid: usize) -> f64 {
    let (m, sd) = noise_of(amp, &noise_bins(h, grid, amp.len()));
    if sd > 0.0 {
        (amp[h] - m) / sd
    } else {
        f64::NAN
    }
}

/// The harmonics of a grand average taken in order while `z > 1.64`, stopping at two
/// consecutive non-significant ones: their indices into `z`.
pub fn consecutive_selection(z: &[f64]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut misses = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > HARMONIC_Z {
            out.push(i);
            misses = 0;
        } else {
            misses += 1;
            if misses == 2 {
                break;
            }
        }
    }
    out
}

/// Holm's step-down adjusted p-values of `p`, in its order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = p.len() as f64;
    let mut out = vec![f64::NAN; p.len()];
    let mut running = 0.0f64;
    for (rank, &i) in idx.iter().enumerate() {
        running = running.max((m - rank as f64) * p[i]).min(1.0);
        out[i] = running;
    }
    out
}

/// The candidate harmonics `(k, bin)` of tag `r` (bin `bins[r]`) in a spectrum of
/// `n_bins` bins: below Nyquist with room for noise bins, and not a multiple of another
/// tag's bin.
pub(crate) fn candidates(bins: &[usize], r: usize, n_bins: usize) -> Vec<(usize, usize)> {
    let b = bins[r];
    (1..=MAX_HARMONICS)
        .map(|k| (k, k * b))
        .filter(|&(_, h)| b > 0 && h + 2 < n_bins)
        .filter(|&(_, h)| bins.iter().enumerate().all(|(o, &ob)| o == r || ob == 0 || !h.is_multiple_of(ob)))
        .collect()
}

/// The grand average of a layer's spectra `[filter][bin]`: their mean per bin.
pub(crate) fn grand_average(spectra: &[Vec<f64>]) -> Vec<f64> {
    let n_bins = spectra.first().map_or(0, Vec::len);
    (0..n_bins).map(|k| spectra.iter().map(|s| s[k]).sum::<f64>() / spectra.len() as f64).collect()
}

/// One filter's `(bca, p_holm)` over the harmonic bins `hs` of its spectrum `s`.
pub(crate) fn filter_response(s: &[f64], hs: &[usize], grid: usize) -> (f64, f64) {
    use statrs::distribution::{ContinuousCDF, Normal};
    let norm = Normal::standard();
    let mut bca = 0.0;
    let mut p = Vec::with_capacity(hs.len());
    for &h in hs {
        let (m, sd) = noise_of(s, &noise_bins(h, grid, s.len()));
        bca += s[h] - m;
        p.push(if sd > 0.0 { 1.0 - norm.cdf((s[h] - m) / sd) } else { f64::NAN });
    }
    let p_holm = holm(&p).into_iter().fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a });
    (bca, p_holm)
}

/// The response grid of `bins`: the tags' greatest common bin.
pub(crate) fn response_grid(bins: &[usize]) -> usize {
    bins.iter().copied().filter(|&b| b > 0).fold(0, gcd)
}

/// Refuses a run without an input noise floor (see the module doc).
pub(crate) fn check_noise(a: &Analysis) -> Result<()> {
    if a.config.noise.is_none_or(|n| n.sigma.is_nan() || n.sigma <= 0.0) {
        return Err(Error::param(
            "harmonic-sum",
            "a run with an input noise floor (noise-sigma above 0): without noise every z is float32 rounding",
            "no input noise",
        ));
    }
    Ok(())
}

/// The harmonic-sum response of every filter of `a` (see the module doc).
pub fn harmonic_sums(a: &Analysis) -> Result<(Vec<HarmonicRow>, Vec<FilterSum>)> {
    check_noise(a)?;
    let bins = &a.plan.bins;
    let grid = response_grid(bins);
    let mut rows = Vec::new();
    let mut sums = Vec::new();
    for (t, tap) in a.taps.iter().enumerate() {
        let spectra = &a.mean_amplitude[t];
        let n_bins = spectra.first().map_or(0, Vec::len);
        if spectra.is_empty() {
            continue;
        }
        let grand = grand_average(spectra);
        for r in 0..bins.len() {
            let region = a.plan.region_names.get(r).cloned().unwrap_or_else(|| format!("tag{r}"));
            let candidates = candidates(bins, r, n_bins);
            let z: Vec<f64> = candidates.iter().map(|&(_, h)| z_at(&grand, h, grid)).collect();
            let chosen = consecutive_selection(&z);
            for (i, &(k, h)) in candidates.iter().enumerate() {
                rows.push(HarmonicRow {
                    tap: tap.tap.name.clone(),
                    region: region.clone(),
                    k,
                    bin: h,
                    freq: crate::signal::spectrum::bin_freq(h, a.plan.config.fps, a.plan.config.n_frames),
                    z: z[i],
                    selected: chosen.contains(&i),
                });
            }
            let hs: Vec<usize> = chosen.iter().map(|&i| candidates[i].1).collect();
            for (c, s) in spectra.iter().enumerate() {
                let (bca, p_holm) = filter_response(s, &hs, grid);
                sums.push(FilterSum {
                    tap: tap.tap.name.clone(),
                    channel: c,
                    region: region.clone(),
                    harmonics: hs.len(),
                    bca,
                    p_holm,
                    responds: p_holm <= ALPHA,
                });
            }
        }
    }
    Ok((rows, sums))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `harmonic_sum.csv` and `harmonic_sum_harmonics.csv`.
pub fn to_csv(rows: &[HarmonicRow], sums: &[FilterSum]) -> (String, String) {
    use crate::io::table::{num, Table};
    let mut f = Table::new(&["tap", "channel", "region", "harmonics", "bca", "p_holm", "responds"]);
    for s in sums {
        f.row([
            s.tap.clone(),
            num(s.channel),
            s.region.clone(),
            num(s.harmonics),
            num(s.bca),
            num(s.p_holm),
            num(s.responds),
        ]);
    }
    let mut h = Table::new(&["tap", "region", "k", "bin", "freq", "z", "selected"]);
    for r in rows {
        h.row([r.tap.clone(), r.region.clone(), num(r.k), num(r.bin), num(r.freq), num(r.z), num(r.selected)]);
    }
    (f.into_string(), h.into_string())
}

/// The synthetic spectrum of `scripts/fpvs-oracle.py` (same formula), for the parity
/// tests here and in [`crate::signal::snr`].
#[cfg(test)]
pub(crate) fn synthetic_spectrum() -> Vec<f64> {
    let mut a: Vec<f64> = (0..121)
        .map(|k| {
            let k = k as f64;
            1.0 + 0.3 * (1.7 * k).sin().powi(2) + 0.1 * (0.37 * k).cos()
        })
        .collect();
    for (b, add) in [(12, 5.0), (24, 2.0), (36, 0.4), (60, 3.0)] {
        a[b] += add;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_matches_its_definition() {
        // By hand for [0.01, 0.04, 0.03, 0.005]: sorted 0.005·4 = 0.02, 0.01·3 = 0.03,
        // 0.03·2 = 0.06, max(0.04·1, 0.06) = 0.06 (statsmodels' multipletests(p,
        // method="holm") gives the same).
        let q = holm(&[0.01, 0.04, 0.03, 0.005]);
        for (a, b) in q.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
    }

    #[test]
    fn harmonic_sum_matches_the_numpy_transcription_of_the_fpvs_rule() {
        // Values printed by `.venv/bin/python scripts/fpvs-oracle.py` (numpy 2, scipy 1.17.1),
        // with no response grid left out of the noise (grid 0), as the FPVS Toolbox does.
        use statrs::distribution::{ContinuousCDF, Normal};
        let a = synthetic_spectrum();
        let harm: Vec<usize> = (1..10).map(|i| 12 * i).collect();
        let z: Vec<f64> = harm.iter().map(|&h| z_at(&a, h, 0)).collect();
        let want = [
            52.80905299745551,
            17.63151577257357,
            6.582252348205123,
            -0.8361054344943222,
            37.10228618426467,
            -1.3480366734028892,
            2.74757332247703,
            -2.104265659317231,
            0.5334679893026204,
        ];
        for (g, w) in z.iter().zip(want) {
            assert!((g - w).abs() < 1e-12 * w.abs().max(1.0), "z {g} vs {w}");
        }
        let chosen = consecutive_selection(&z);
        assert_eq!(chosen, vec![0, 1, 2, 4, 6]);
        let bca: f64 = chosen.iter().map(|&i| a[harm[i]] - noise_of(&a, &noise_bins(harm[i], 0, a.len())).0).sum();
        assert!((bca - 10.782465738428074).abs() < 1e-12, "{bca}");
        let norm = Normal::standard();
        let p: Vec<f64> = chosen.iter().map(|&i| 1.0 - norm.cdf(z[i])).collect();
        let h = holm(&p);
        for (g, w) in h.iter().zip([0.0, 0.0, 4.633737837878016e-11, 0.0, 0.0030019041521089918]) {
            assert!((g - w).abs() < 1e-12, "holm {h:?}");
        }
    }

    #[test]
    fn consecutive_selection_stops_at_two_misses() {
        assert_eq!(consecutive_selection(&[3.0, 1.0, 2.0, 0.5, 0.2, 5.0]), vec![0, 2]);
        assert_eq!(consecutive_selection(&[0.0, 0.0, 9.0]), Vec::<usize>::new());
        assert_eq!(consecutive_selection(&[2.0, f64::NAN, 2.0]), vec![0, 2], "NaN is not significant");
    }
}
