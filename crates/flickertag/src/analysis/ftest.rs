//! The spectral F-test of a line against the noise around it, for runs with input
//! noise (`--noise-sigma`): a null hypothesis that can be true. Per image, filter and
//! line (order ≤ 2), `F = |X_k|² / mean(|X_j|²)` over the `2 M` off-grid bins `j`
//! nearest to k (M = 6: six each side away from the spectrum's edges; the response
//! grid, where every line lies, and DC left out).
//! Under "no response at k" and locally white noise, each `|X|²` is `σ² χ²₂ / 2`, so
//! `F ~ F(2, 2·2M)`; a line is detected in an image at p < α. The detection rate of a
//! filter is the share of images in which it is detected; sweeping σ (`--noise-sigma`
//! with several values) shows how the responses emerge from the noise.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

use super::Analysis;
use crate::error::{Error, Result};

/// Noise bins on each side of a line.
pub const NOISE_BINS: usize = 6;

/// p-value of the F-test at bin `k` of an amplitude spectrum (`amp[bin]`), with the
/// response grid every `grid` bins left out of the noise; NaN where the spectrum has
/// fewer than `2 NOISE_BINS` off-grid bins or the noise is zero.
pub fn f_test(amp: &[f64], k: usize, grid: usize) -> f64 {
    let off_grid = |j: usize| j > 0 && j != k && (grid == 0 || !j.is_multiple_of(grid));
    let mut near: Vec<usize> = (1..amp.len()).filter(|&j| off_grid(j)).collect();
    near.sort_by_key(|&j| (j.abs_diff(k), j));
    let noise: Vec<f64> = near.iter().take(2 * NOISE_BINS).map(|&j| amp[j] * amp[j]).collect();
    if noise.len() < 2 * NOISE_BINS {
        return f64::NAN;
    }
    let n = noise.iter().sum::<f64>() / noise.len() as f64;
    if n.is_nan() || n <= 0.0 {
        return f64::NAN;
    }
    let f = amp[k] * amp[k] / n;
    FisherSnedecor::new(2.0, 2.0 * noise.len() as f64).map_or(f64::NAN, |d| d.sf(f))
}

/// Detection rates of one tap at one line: the share of images in which each filter's
/// line is detected at α, and its mean over the filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineDetection {
    /// Tap.
    pub tap: String,
    /// Line label (`f1`, `2f2`, `f2-f1`, ...).
    pub line: String,
    /// Mean over the tap's filters of their detection rates.
    pub rate: f64,
    /// Per filter.
    pub per_filter: Vec<f64>,
}

/// One row of a noise sweep (`noise_sweep.csv`): the detection rate of one tap's line
/// at one input-noise level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Input noise σ (normalized units).
    pub sigma: f32,
    /// Tap.
    pub tap: String,
    /// Line label.
    pub line: String,
    /// Mean over the tap's filters of their detection rates at α = 0.05.
    pub detection_rate: f64,
}

/// The rows of a noise sweep as CSV (`sigma,tap,line,detection_rate`).
pub fn sweep_csv(rows: &[SweepRow]) -> String {
    use crate::io::table::{num, Table};
    let mut t = Table::new(&["sigma", "tap", "line", "detection_rate"]);
    for r in rows {
        t.row([num(r.sigma), r.tap.clone(), r.line.clone(), num(r.detection_rate)]);
    }
    t.into_string()
}

/// Detection rates of every tap at every line of order ≤ 2, at level `alpha`, from the
/// per-image spectra of a run with input noise.
pub fn detection(a: &Analysis, alpha: f64) -> Result<Vec<LineDetection>> {
    if a.config.noise.is_none() {
        return Err(Error::param("noise-sigma", "a run with input noise (the F-test needs a noise floor)", 0));
    }
    let per = a.per_image.as_ref().ok_or_else(|| {
        Error::param("noise-sigma", "per-image spectra (<per-image>) for the F-test", "a run without them")
    })?;
    let nb = crate::signal::spectrum::n_bins(a.plan.config.n_frames);
    let ni = a.images.len();
    let grid = crate::signal::lines::grid_bins(&a.plan.bins);
    let mut out = Vec::new();
    let mut row = 0;
    for t in &a.taps {
        let c = t.shape[0];
        for l in a.lines.iter().filter(|l| l.order <= 2) {
            let per_filter: Vec<f64> = (0..c)
                .map(|ch| {
                    let hits = (0..ni).filter(|&i| f_test(&per.spectrum(i, row + ch, nb), l.bin, grid) < alpha).count();
                    hits as f64 / ni.max(1) as f64
                })
                .collect();
            let rate = per_filter.iter().sum::<f64>() / c.max(1) as f64;
            out.push(LineDetection { tap: t.tap.name.clone(), line: l.label.clone(), rate, per_filter });
        }
        row += c;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn spectrum(x: &[f64]) -> Vec<f64> {
        let mut fft = crate::signal::spectrum::Fft::new();
        crate::signal::spectrum::amplitude(&fft.rfft(x), x.len())
    }

    use crate::io::data::standard_normal as gauss;

    #[test]
    fn false_positives_stay_at_alpha_on_noise_and_planted_lines_are_found() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (n, draws, alpha) = (240, 4000, 0.05);
        let (mut fp, mut hits) = (0, 0);
        for _ in 0..draws {
            let noise: Vec<f64> = (0..n).map(|_| gauss(&mut rng)).collect();
            // Bin 12 (6 Hz at 120 fps over 240 frames), grid every 3 bins.
            fp += (f_test(&spectrum(&noise), 12, 3) < alpha) as usize;
            let planted: Vec<f64> = noise
                .iter()
                .enumerate()
                .map(|(i, v)| v + 0.4 * (2.0 * std::f64::consts::PI * 12.0 * i as f64 / n as f64).sin())
                .collect();
            hits += (f_test(&spectrum(&planted), 12, 3) < alpha) as usize;
        }
        let rate = fp as f64 / draws as f64;
        // Binomial SD at 4,000 draws: 0.0034; allow two.
        assert!(rate <= alpha + 0.007, "false-positive rate {rate}");
        assert!(rate >= alpha - 0.015, "the test is not conservative to uselessness: {rate}");
        assert!(hits as f64 / draws as f64 > 0.95, "planted lines found in {hits} of {draws}");
        assert!(f_test(&[0.0; 121], 12, 3).is_nan(), "no noise: no test");
    }
}
