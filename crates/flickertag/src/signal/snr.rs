//! Signal-to-noise ratios of amplitude spectra.
//!
//! Generic definition: `SNR[k] = S[k] / mean(S[j] for j in window(k))`, where `S` is
//! the amplitude (or power = amplitude²), and the window holds `n_neighbors` bins on
//! each side of `k` after skipping `skip` adjacent bins (`skip = 1`, `n = 3`: offsets
//! ±2, ±3, ±4), optionally without its minimum and maximum, optionally without
//! excluded bins. Near the ends the window is truncated ([`Edges::Truncate`]) or the
//! SNR is NaN ([`Edges::Nan`]). Output linear or in dB (`10·log10`).
//!
//! Presets ([`SnrConfig::preset`]):
//! - `authors`: n = 3, skip = 1, amplitude, dB floored at 0, signal and noise floored
//!   at 1e-8, truncated windows, DC dropped before anything else (bins `1..=N/2`).
//!   The per-filter score ([`authors_score`]) is the mean SNR over those bins: the
//!   first author's public code.
//! - `mne`: n = 3, skip = 1, power, linear, NaN at the edges (MNE's `snr_spectrum`).
//! - `fpvs`: n = 10, skip = 1, drop min and max, amplitude, linear (Rossion lab).
//! - `grid`: n = 6, skip = 0, amplitude, linear, with every bin of the response grid
//!   (multiples of the tags' gcd) left out of the noise windows, so that the noise
//!   holds only noise. A deterministic network has no noise off the grid (only
//!   rounding), so this preset is meant for runs with an input noise floor.
//!
//! Scores ([`ScoreRule`]): `authors` averages the SNR over all bins; the other
//! presets average it over the catalogued lines of order ≤ 2.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What happens where the window runs past the spectrum's ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edges {
    /// Use the bins that exist.
    Truncate,
    /// NaN unless the full window exists.
    Nan,
}

/// SNR parameters (MNE vocabulary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnrConfig {
    /// Preset name it came from (informational).
    pub preset: String,
    /// Neighbour bins on each side (`noise_n_neighbor_freqs`).
    pub n_neighbors: usize,
    /// Adjacent bins skipped on each side (`noise_skip_neighbor_freqs`).
    pub skip: usize,
    /// Drop the window's minimum and maximum before averaging.
    pub drop_extremes: bool,
    /// Use power (amplitude²) instead of amplitude.
    pub power: bool,
    /// Return `10·log10` of the ratio.
    pub db: bool,
    /// Floor dB values at 0 (authors).
    pub floor_zero_db: bool,
    /// Floor for signal and noise before dividing (authors: 1e-8; 0 disables).
    pub floor: f64,
    /// Edge handling.
    pub edges: Edges,
    /// Drop DC before computing (bins `1..=N/2` only).
    pub drop_dc: bool,
    /// Bins the user left out of every noise window.
    pub exclude_bins: Vec<usize>,
    /// Leave the whole response grid (multiples of the tags' gcd) out of every noise
    /// window, so that noise bins hold only noise.
    pub exclude_grid: bool,
    /// The response-grid bins `exclude_grid` leaves out, set by the analysis (kept apart
    /// from the user's `exclude_bins`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grid_bins: Vec<usize>,
    /// How a filter's score is made from its SNR spectrum.
    pub score: ScoreRule,
}

/// How the per-filter score is made from the SNR spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreRule {
    /// Mean over all bins (the author's code).
    #[default]
    AllBins,
    /// Mean over the catalogued lines of order ≤ 2 (tags, second harmonics, f1±f2).
    Lines,
}

impl SnrConfig {
    /// Preset names accepted by [`SnrConfig::preset`].
    pub const PRESETS: [&'static str; 4] = ["authors", "mne", "fpvs", "grid"];

    /// A named preset: `authors`, `mne`, `fpvs` or `grid` (6 bins each side, no skip,
    /// amplitude, linear, the response grid excluded from the noise: meaningful with
    /// an input noise floor, see `--noise-sigma`).
    pub fn preset(name: &str) -> Result<SnrConfig> {
        let base = SnrConfig {
            preset: name.to_string(),
            n_neighbors: 3,
            skip: 1,
            drop_extremes: false,
            power: false,
            db: false,
            floor_zero_db: false,
            floor: 0.0,
            edges: Edges::Truncate,
            drop_dc: false,
            exclude_bins: vec![],
            exclude_grid: false,
            grid_bins: vec![],
            score: ScoreRule::Lines,
        };
        Ok(match name {
            "authors" => SnrConfig {
                db: true,
                floor_zero_db: true,
                floor: 1e-8,
                drop_dc: true,
                score: ScoreRule::AllBins,
                ..base
            },
            "grid" => SnrConfig { n_neighbors: 6, skip: 0, exclude_grid: true, floor: 1e-12, ..base },
            "mne" => SnrConfig { power: true, edges: Edges::Nan, ..base },
            "fpvs" => SnrConfig { n_neighbors: 10, drop_extremes: true, ..base },
            _ => return Err(Error::param("snr preset", format!("one of {}", Self::PRESETS.join(", ")), name)),
        })
    }

    /// Checks the parameters against a spectrum of `n_bins` bins: at least one and at
    /// most `n_bins` neighbours, a skip below `n_bins`, a finite non-negative floor,
    /// excluded bins inside the spectrum.
    pub fn validate(&self, n_bins: usize) -> Result<()> {
        if !(1..=n_bins).contains(&self.n_neighbors) {
            return Err(Error::param(
                "noise-n-neighbor-freqs",
                format!("1..={n_bins} neighbour bins per side (the spectrum has {n_bins} bins)"),
                self.n_neighbors,
            ));
        }
        if self.skip >= n_bins {
            return Err(Error::param("noise-skip-neighbor-freqs", format!("0..{n_bins}"), self.skip));
        }
        if !(self.floor.is_finite() && self.floor >= 0.0) {
            return Err(Error::param("floor", "a finite non-negative number", self.floor));
        }
        if let Some(b) = self.exclude_bins.iter().find(|&&b| b >= n_bins) {
            return Err(Error::param("exclude-bins", format!("bins 0..{n_bins}"), b));
        }
        Ok(())
    }

    /// Spectrum bin of SNR index 0: `snr(amp)[j]` belongs to bin `j + bin_offset()`
    /// (1 when DC is dropped).
    pub fn bin_offset(&self) -> usize {
        usize::from(self.drop_dc)
    }

    /// The baseline used for baseline-corrected amplitudes and z-scores of a
    /// deterministic response: the `grid` preset with every bin of the response grid
    /// (`grid` bins apart) among `n_bins` left out of the noise.
    pub fn grid_baseline(grid: usize, n_bins: usize) -> SnrConfig {
        let mut c = SnrConfig::preset("grid").expect("built-in preset");
        c.grid_bins = (0..n_bins).step_by(grid.max(1)).collect();
        c
    }

    /// Index range of the window's two sides around bin `k` in a spectrum of `len`
    /// bins, or `None` where [`Edges::Nan`] applies.
    fn window(&self, k: usize, len: usize) -> Option<[std::ops::Range<usize>; 2]> {
        let lo = k as i64 - (self.skip + self.n_neighbors) as i64;
        let hi = k + self.skip + self.n_neighbors;
        if self.edges == Edges::Nan && (lo < 0 || hi >= len) {
            return None;
        }
        Some([(lo.max(0) as usize)..k.saturating_sub(self.skip), (k + self.skip + 1).min(len)..(hi + 1).min(len)])
    }

    /// Noise values of bin `k` (index into `s`; `offset` = spectrum bin of `s[0]`) into `buf`.
    fn noise_values(&self, s: &[f64], k: usize, excluded: &[bool], buf: &mut Vec<f64>) -> bool {
        buf.clear();
        let Some(sides) = self.window(k, s.len()) else { return false };
        for j in sides.into_iter().flatten() {
            if !excluded.get(j).copied().unwrap_or(false) {
                buf.push(s[j]);
            }
        }
        if self.drop_extremes && buf.len() > 2 {
            buf.sort_by(|a, b| a.total_cmp(b));
            buf.pop();
            buf.remove(0);
        }
        !buf.is_empty()
    }

    /// Mean noise of bin `k`.
    fn noise(&self, s: &[f64], k: usize, excluded: &[bool], buf: &mut Vec<f64>) -> Option<f64> {
        if !self.drop_extremes && excluded.is_empty() {
            // The common case without a buffer (same values, same summation order).
            let [a, b] = self.window(k, s.len())?;
            let n = a.len() + b.len();
            return (n > 0).then(|| s[a].iter().chain(&s[b]).sum::<f64>() / n as f64);
        }
        self.noise_values(s, k, excluded, buf).then(|| buf.iter().sum::<f64>() / buf.len() as f64)
    }

    /// The spectrum the SNR works on (DC dropped, squared for power) and, per index of
    /// it, whether the bin is excluded from noise windows.
    fn prepared<'a>(&self, amp: &'a [f64]) -> (std::borrow::Cow<'a, [f64]>, Vec<bool>) {
        let offset = self.bin_offset().min(amp.len());
        let s: std::borrow::Cow<[f64]> = if self.power {
            amp[offset..].iter().map(|&a| a * a).collect::<Vec<f64>>().into()
        } else {
            (&amp[offset..]).into()
        };
        if self.exclude_bins.is_empty() && self.grid_bins.is_empty() {
            return (s, Vec::new());
        }
        let mut excluded = vec![false; s.len()];
        for &b in self.exclude_bins.iter().chain(&self.grid_bins) {
            if let Some(e) = b.checked_sub(offset).and_then(|j| excluded.get_mut(j)) {
                *e = true;
            }
        }
        (s, excluded)
    }

    /// SNR per bin of an amplitude spectrum `A[0..=N/2]`. With `drop_dc` the result
    /// covers bins `1..=N/2` (length N/2), else all bins.
    pub fn snr(&self, amp: &[f64]) -> Vec<f64> {
        let (s, excluded) = self.prepared(amp);
        let mut buf = Vec::with_capacity(2 * self.n_neighbors);
        let floored_zero = self.db && self.floor_zero_db;
        (0..s.len())
            .map(|k| {
                // With dB floored at 0, a signal at the floor gives 0 whatever the noise
                // (the noise is floored too): skip the window (most bins of a folded series).
                if floored_zero && s[k] <= self.floor && self.window(k, s.len()).is_some() {
                    return 0.0;
                }
                let Some(noise) = self.noise(&s, k, &excluded, &mut buf) else { return f64::NAN };
                let (sig, noise) = (s[k].max(self.floor), noise.max(self.floor));
                let r = sig / noise;
                match (self.db, self.floor_zero_db) {
                    // log10 is the hot spot; below 1 the floored result is 0 without it.
                    (true, true) if r <= 1.0 => 0.0,
                    (true, _) => db(r),
                    (false, _) => r,
                }
            })
            .collect()
    }

    /// Baseline-corrected amplitude `S[k] - mean(noise)` per bin (same bins as [`SnrConfig::snr`]).
    pub fn baseline_corrected(&self, amp: &[f64]) -> Vec<f64> {
        let (s, excluded) = self.prepared(amp);
        let mut buf = Vec::with_capacity(2 * self.n_neighbors);
        (0..s.len()).map(|k| self.noise(&s, k, &excluded, &mut buf).map_or(f64::NAN, |n| s[k] - n)).collect()
    }

    /// z-score `(S[k] - mean(noise)) / sd(noise)` per bin.
    pub fn zscore(&self, amp: &[f64]) -> Vec<f64> {
        let (s, excluded) = self.prepared(amp);
        let mut v = Vec::with_capacity(2 * self.n_neighbors);
        (0..s.len())
            .map(|k| {
                if !self.noise_values(&s, k, &excluded, &mut v) || v.len() < 2 {
                    return f64::NAN;
                }
                let m = v.iter().sum::<f64>() / v.len() as f64;
                let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
                (s[k] - m) / sd
            })
            .collect()
    }
}

/// The author's per-filter score: mean over bins of the `authors` SNR (dB, ≥ 0).
pub fn authors_score(cfg: &SnrConfig, amp: &[f64]) -> f64 {
    mean_finite(&cfg.snr(amp))
}

/// `10·log10(r)` as `ln(r) · 10/ln(10)`: glibc's `log10` costs two `log`s' time, and
/// it was a quarter of the spectrum work; the two agree to a few units in the last
/// place (1e-15 dB).
#[inline]
pub fn db(r: f64) -> f64 {
    r.ln() * (10.0 * std::f64::consts::LOG10_E)
}

/// Mean of the finite values (0 if none): the per-filter score from an SNR spectrum.
pub fn mean_finite(v: &[f64]) -> f64 {
    // Four running sums (non-finite values add 0) instead of one chain of dependent
    // additions: the score of every filter in every image goes through here.
    let (mut sum, mut n) = ([0.0f64; 4], 0usize);
    let mut chunks = v.chunks_exact(4);
    for c in &mut chunks {
        for (s, &x) in sum.iter_mut().zip(c) {
            let ok = x.is_finite();
            *s += if ok { x } else { 0.0 };
            n += usize::from(ok);
        }
    }
    for &x in chunks.remainder() {
        if x.is_finite() {
            sum[0] += x;
            n += 1;
        }
    }
    ((sum[0] + sum[1]) + (sum[2] + sum[3])) / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_agrees_with_log10_and_mean_finite_skips_non_finite_values() {
        for r in [1e-8, 0.5, 1.0, 1.5, 8.0, 24.0, 1e8, 3.7e5] {
            assert!((db(r) - 10.0 * r.log10()).abs() <= 1e-14 * (1.0 + (10.0 * r.log10()).abs()), "{r}");
        }
        // Lengths around the four-lane blocks, NaN and infinities anywhere.
        for len in 0..11 {
            let v: Vec<f64> = (0..len)
                .map(|i| match i % 5 {
                    1 => f64::NAN,
                    3 => f64::INFINITY,
                    _ => i as f64 * 0.25,
                })
                .collect();
            let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            let want = if finite.is_empty() { 0.0 } else { finite.iter().sum::<f64>() / finite.len() as f64 };
            assert!((mean_finite(&v) - want).abs() < 1e-12, "len {len}");
        }
    }

    #[test]
    fn authors_snr_by_hand() {
        // Spectrum A[0..=10]; DC = 100 is dropped, so s = A[1..] = [1,1,1,1,1,8,1,1,1,1].
        let mut a = vec![1.0; 11];
        a[0] = 100.0;
        a[6] = 8.0;
        let c = SnrConfig::preset("authors").unwrap();
        let snr = c.snr(&a);
        assert_eq!(snr.len(), 10);
        // Bin 6 is s[5]: window s[1..=3] and s[7..=9], all 1 → 10·log10(8) dB.
        assert!((snr[5] - 10.0 * 8f64.log10()).abs() < 1e-12);
        // s[3] (bin 4): window s[0], s[1] (s[2] skipped... no: k=3 → lo = 3-4 = -1 → 0..2) and s[5..=7].
        // noise = (1 + 1 + 8 + 1 + 1) / 5 = 2.4 → SNR negative → 0.
        assert_eq!(snr[2], 0.0);
        let score = authors_score(&c, &a);
        assert!((score - 10.0 * 8f64.log10() / 10.0).abs() < 1e-12);
    }

    /// Two sinusoids on bins 12 and 15 of 240 samples (6 and 7.5 Hz at 120 fps), through
    /// the real FFT: the SNRs follow by hand from A[12] = 1, A[15] = 0.25, all else 0.
    #[test]
    fn snr_of_synthetic_sinusoids_by_hand() {
        let n = 240;
        let x: Vec<f64> = (0..n)
            .map(|i| {
                let t = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
                1.0 + 2.0 * (12.0 * t).sin() + 0.5 * (15.0 * t).sin()
            })
            .collect();
        let amp = crate::signal::spectrum::amplitude(&crate::signal::spectrum::Fft::new().rfft(&x), n);
        let authors = SnrConfig::preset("authors").unwrap();
        let snr = authors.snr(&amp);
        // Bin 12: noise window 8-10 and 14-16 holds A[15] = 0.25 → mean 0.25/6.
        assert!((snr[11] - 10.0 * 24f64.log10()).abs() < 1e-9, "{}", snr[11]);
        // Bin 15: window 11-13 and 17-19 holds A[12] = 1 → mean 1/6; SNR = 0.25·6.
        assert!((snr[14] - 10.0 * 1.5f64.log10()).abs() < 1e-9, "{}", snr[14]);
        let others: f64 = snr.iter().enumerate().filter(|(j, _)| *j != 11 && *j != 14).map(|(_, v)| v).sum();
        assert_eq!(others, 0.0);
        let want = (10.0 * 24f64.log10() + 10.0 * 1.5f64.log10()) / 120.0;
        assert!((authors_score(&authors, &amp) - want).abs() < 1e-9);
        // MNE: power, linear: bin 12 over the mean power of its window, 0.25² / 6.
        let mne = SnrConfig::preset("mne").unwrap().snr(&amp);
        assert!((mne[12] - 96.0).abs() < 1e-6, "{}", mne[12]);
    }

    #[test]
    fn mne_is_power_with_nan_edges() {
        let a: Vec<f64> = (0..20).map(|k| if k == 10 { 3.0 } else { 1.0 }).collect();
        let c = SnrConfig::preset("mne").unwrap();
        let s = c.snr(&a);
        assert!(s[3].is_nan() && s[16].is_nan() && !s[4].is_nan());
        assert!((s[10] - 9.0).abs() < 1e-12);
    }

    #[test]
    fn mne_preset_matches_the_numpy_transcription_of_mne_snr_spectrum() {
        // `.venv/bin/python scripts/fpvs-oracle.py`: MNE's snr_spectrum (n = 3, skip = 1)
        // of the synthetic spectrum's power; the same formula as harmonic_sum's tests.
        let a = crate::analysis::harmonic_sum::synthetic_spectrum();
        let s = SnrConfig::preset("mne").unwrap().snr(&a);
        for (k, w) in
            [(12, 28.29593581686235), (30, 0.9722394531442989), (60, 13.42988921739269), (116, 1.013270765504383)]
        {
            assert!((s[k] - w).abs() < 1e-12, "bin {k}: {} vs {w}", s[k]);
        }
        assert!(s[3].is_nan());
    }

    #[test]
    fn fpvs_drops_extremes_and_baseline_correction() {
        let mut a = vec![2.0; 40];
        a[20] = 7.0;
        a[13] = 50.0; // inside bin 20's window (offsets 2..=11): dropped as the max
        let c = SnrConfig::preset("fpvs").unwrap();
        assert!((c.snr(&a)[20] - 3.5).abs() < 1e-12);
        assert!((c.baseline_corrected(&a)[20] - 5.0).abs() < 1e-12);
    }

    #[test]
    fn unknown_preset_lists_allowed_values() {
        let e = SnrConfig::preset("foo").unwrap_err().to_string();
        assert!(e.contains("authors, mne, fpvs") && e.contains("foo"));
    }

    #[test]
    fn floors_keep_zero_spectra_finite() {
        let c = SnrConfig::preset("authors").unwrap();
        assert_eq!(authors_score(&c, &[0.0; 121]), 0.0);
    }
}
