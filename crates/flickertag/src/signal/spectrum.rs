//! Spectra of activation time series.
//!
//! Conventions (stated once, used everywhere): for a real series `x` of length N,
//! `X[k] = Σ_i x[i] e^{-2πi k i / N}` for `k = 0..=N/2` (the one-sided real FFT, no
//! window, no detrending), bin `k` has frequency `k · fps / N`, and the amplitude
//! spectrum is `A[k] = |X[k]| / N` (so a sinusoid `a·sin(2π f t)` on bin k shows
//! `a/2`, and DC shows the mean). Computation is in f64 with `realfft`; plans are
//! cached by [`Fft`].

use std::collections::HashMap;
use std::sync::Arc;

use num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// A real-FFT planner with a plan cache keyed by length.
pub struct Fft {
    planner: RealFftPlanner<f64>,
    plans: HashMap<usize, Arc<dyn RealToComplex<f64>>>,
    /// Reused buffers of [`Fft::folded_rfft_into`]: input copy, period spectrum, scratch.
    work: (Vec<f64>, Vec<Complex<f64>>, Vec<Complex<f64>>),
}

impl Default for Fft {
    fn default() -> Self {
        Fft { planner: RealFftPlanner::new(), plans: HashMap::new(), work: Default::default() }
    }
}

impl Fft {
    /// A new planner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Complex coefficients `X[0..=N/2]` of `x` (unnormalized).
    pub fn rfft(&mut self, x: &[f64]) -> Vec<Complex<f64>> {
        let mut out = Vec::new();
        self.folded_rfft_into(x, x.len(), &mut out);
        out
    }

    /// [`folded_rfft`] into `out` (resized to `N/2 + 1`), reusing the planner's
    /// buffers: the hot loop of an analysis runs this once per channel and image.
    pub fn folded_rfft_into(&mut self, period: &[f64], n: usize, out: &mut Vec<Complex<f64>>) {
        let p = period.len();
        assert!(p > 0 && n.is_multiple_of(p), "n = {n} must be a multiple of the period {p}");
        let r = n / p;
        let plan = self.plans.entry(p).or_insert_with(|| self.planner.plan_fft_forward(p)).clone();
        let (input, y, scratch) = &mut self.work;
        input.clear();
        input.extend_from_slice(period);
        y.resize(p / 2 + 1, Complex::default());
        scratch.resize(plan.get_scratch_len(), Complex::default());
        plan.process_with_scratch(input, y, scratch).expect("buffer sizes come from the plan");
        out.clear();
        out.resize(n_bins(n), Complex::default());
        for (k, v) in y.iter().enumerate() {
            out[k * r] = v * r as f64;
        }
    }
}

/// Number of one-sided bins for N samples: `N/2 + 1`.
pub fn n_bins(n_frames: usize) -> usize {
    n_frames / 2 + 1
}

/// Frequency of bin `k`: `k · fps / N`.
pub fn bin_freq(k: usize, fps: f64, n_frames: usize) -> f64 {
    k as f64 * fps / n_frames as f64
}

/// Amplitudes `|X[k]| / N` from coefficients of an N-sample series.
pub fn amplitude(coef: &[Complex<f64>], n_frames: usize) -> Vec<f64> {
    let mut a = Vec::with_capacity(coef.len());
    amplitude_into(coef, n_frames, &mut a);
    a
}

/// [`amplitude`] into `out` (resized to `coef.len()`). `sqrt(re² + im²)` rather than
/// `hypot`: the f64 squares of float32-born values neither overflow nor underflow, and
/// it is several times faster.
pub fn amplitude_into(coef: &[Complex<f64>], n_frames: usize, out: &mut Vec<f64>) {
    out.clear();
    let inv = 1.0 / n_frames as f64;
    out.extend(coef.iter().map(|c| c.norm_sqr().sqrt() * inv));
}

/// Extends one period (`P` samples) to `n` samples by repetition: `x[i] = y[i mod P]`.
pub fn tile(period: &[f64], n: usize) -> Vec<f64> {
    (0..n).map(|i| period[i % period.len()]).collect()
}

/// The rfft of one period `y` (P samples) repeated to `n` samples (`n` a multiple of
/// P), without building the long series: with `R = n / P`, `X[k] = R · Y[k / R]` when
/// R divides k, else 0. Same numbers as `rfft(tile(y, n))` up to rounding, and
/// exact zeros off the period's grid.
pub fn folded_rfft(fft: &mut Fft, period: &[f64], n: usize) -> Vec<Complex<f64>> {
    let mut out = Vec::new();
    fft.folded_rfft_into(period, n, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dft(x: &[f64]) -> Vec<Complex<f64>> {
        let n = x.len();
        (0..=n / 2)
            .map(|k| {
                x.iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        v * Complex::from_polar(1.0, -2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64)
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn rfft_matches_naive_dft() {
        let x: Vec<f64> = (0..240).map(|i| ((i * 37 % 17) as f64).sin() + 0.1 * i as f64).collect();
        let a = Fft::new().rfft(&x);
        let b = naive_dft(&x);
        assert_eq!(a.len(), 121);
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).norm() < 1e-8 * (1.0 + v.norm()), "{u} vs {v}");
        }
    }

    #[test]
    fn sinusoid_on_bin_has_half_amplitude_and_dc_is_the_mean() {
        let (fps, n) = (120.0, 240);
        let x: Vec<f64> =
            (0..n).map(|i| 3.0 + 2.0 * (2.0 * std::f64::consts::PI * 6.0 * i as f64 / fps).sin()).collect();
        let a = amplitude(&Fft::new().rfft(&x), n);
        assert!((a[0] - 3.0).abs() < 1e-12);
        assert!((a[12] - 1.0).abs() < 1e-12);
        assert!((bin_freq(12, fps, n) - 6.0).abs() < 1e-12);
        assert!(a.iter().enumerate().filter(|(k, _)| *k != 0 && *k != 12).all(|(_, &v)| v < 1e-12));
    }

    #[test]
    fn tiled_period_equals_full_series_spectrum() {
        let (fps, n) = (120.0, 240);
        let f = |i: usize| {
            (2.0 * std::f64::consts::PI * 6.0 * i as f64 / fps).sin().max(0.0)
                + (2.0 * std::f64::consts::PI * 7.5 * i as f64 / fps).cos()
        };
        let full: Vec<f64> = (0..n).map(f).collect();
        let folded = tile(&full[..80], n);
        let mut fft = Fft::new();
        let (a, b) = (amplitude(&fft.rfft(&full), n), amplitude(&fft.rfft(&folded), n));
        let c = amplitude(&folded_rfft(&mut fft, &full[..80], n), n);
        // Unfolded (P = N) through the same buffers as the folded one.
        let d = amplitude(&folded_rfft(&mut fft, &full, n), n);
        for (((x, y), z), w) in a.iter().zip(&b).zip(&c).zip(&d) {
            assert!((x - y).abs() < 1e-12 && (x - z).abs() < 1e-12 && x == w);
        }
    }
}
