//! Per-image spectra, SNR, scores and statistics inputs, accumulated over images.
//!
//! Each image's outputs are processed on every core at once, between two inference
//! calls: one rayon task per tap (rayon's pool, one thread per core, balances taps of
//! unequal sizes), each thread with its own FFT plans. (Running this on a thread beside
//! ONNX Runtime instead preempts its threads, which then wait on each other; measured
//! slower.)

use num_complex::Complex;

use super::config::{AnalysisConfig, ImageSpec, PerImage};
use super::state::AnalysisState;
use crate::importance::score;
use crate::importance::LayerScores;
use crate::inference::engine::{Output, TapInfo};
use crate::signal::lines::Line;
use crate::signal::snr::SnrConfig;
use crate::signal::spectrum::{amplitude_into, n_bins, Fft};

/// What every tap's processing reads.
struct Ctx<'a> {
    lines: &'a [Line],
    snr: &'a SnrConfig,
    test_lines: &'a [usize],
    n_frames: usize,
    /// Length of the recorded series (one period when folded).
    period: usize,
}

/// One tap's running results.
struct TapAcc {
    scores: LayerScores,
    /// `[channel][bin]` sum of amplitudes.
    mean_amp: Vec<Vec<f64>>,
    /// `[channel][line]` sum of SNR.
    line_snr: Vec<Vec<f64>>,
    /// `[channel][test line][image]` coefficients `X/N` (stats only).
    coefs: Vec<Vec<Vec<Complex<f32>>>>,
    /// `[channel][image][frame]` series of one period (permutations only).
    series: Vec<Vec<Vec<f32>>>,
}

/// Where this image's amplitudes and coefficients of one tap go, `[channel][bin]`
/// flattened (a block of [`PerImage`], channels beyond the tap's left as NaN).
type PerImageTap<'b> = (&'b mut [f32], &'b mut [Complex<f32>]);

impl TapAcc {
    /// Adds one image's `[P, C, 1, 1]` output of this tap.
    fn add(&mut self, ctx: &Ctx, out: &Output, fft: &mut Fft, mut per: Option<PerImageTap>) {
        let (n, p, nb) = (ctx.n_frames, ctx.period, n_bins(ctx.n_frames));
        let c = self.mean_amp.len();
        let off = ctx.snr.bin_offset();
        let (mut series, mut coef, mut amp) = (vec![0.0; p], Vec::new(), Vec::new());
        let mut img_scores = Vec::with_capacity(c);
        for ch in 0..c {
            for (i, x) in series.iter_mut().enumerate() {
                *x = out.data[i * c + ch] as f64;
            }
            // P = N (unfolded) is the same call with one repetition.
            fft.folded_rfft_into(&series, n, &mut coef);
            amplitude_into(&coef, n, &mut amp);
            let snr = ctx.snr.snr(&amp);
            // A spectrum wholly below the floor (DC included) measures only the floor.
            let dead = ctx.snr.floor > 0.0 && amp.iter().all(|&a| a < ctx.snr.floor);
            img_scores.push(if dead { f64::NAN } else { score(ctx.snr, &snr, ctx.lines, ctx.test_lines) });
            if let Some(per_line) = self.coefs.get_mut(ch) {
                for (j, &l) in ctx.test_lines.iter().enumerate() {
                    let z = coef[ctx.lines[l].bin] / n as f64;
                    per_line[j].push(Complex::new(z.re as f32, z.im as f32));
                }
            }
            if let Some(s) = self.series.get_mut(ch) {
                s.push(series.iter().map(|&x| x as f32).collect());
            }
            for (m, a) in self.mean_amp[ch].iter_mut().zip(&amp) {
                *m += a;
            }
            for (acc, line) in self.line_snr[ch].iter_mut().zip(ctx.lines) {
                *acc += line.bin.checked_sub(off).and_then(|j| snr.get(j)).copied().unwrap_or(f64::NAN);
            }
            if let Some((pa, pc)) = per.as_mut() {
                for (d, &a) in pa[ch * nb..(ch + 1) * nb].iter_mut().zip(&amp) {
                    *d = a as f32;
                }
                for (d, z) in pc[ch * nb..(ch + 1) * nb].iter_mut().zip(&coef) {
                    let z = z / n as f64;
                    *d = Complex::new(z.re as f32, z.im as f32);
                }
            }
        }
        self.scores.scores.push(img_scores);
    }
}

/// Per-image spectra, SNR and scores, accumulated over images.
pub(super) struct Accumulator<'a> {
    ctx: Ctx<'a>,
    taps: Vec<TapAcc>,
    /// Channels of each tap (its block of rows).
    chans: Vec<usize>,
    per: Option<PerImage>,
}

impl<'a> Accumulator<'a> {
    pub(super) fn new(
        taps: &[TapInfo],
        lines: &'a [Line],
        test_lines: &'a [usize],
        cfg: &'a AnalysisConfig,
        n_frames: usize,
        period: usize,
        n_images: usize,
    ) -> Self {
        let nb = n_bins(n_frames);
        let chans: Vec<usize> = taps.iter().map(|t| t.shape[0]).collect();
        let rows: usize = chans.iter().sum();
        let accs: Vec<TapAcc> = taps
            .iter()
            .map(|t| {
                let c = t.shape[0];
                TapAcc {
                    scores: LayerScores {
                        tap: t.tap.name.clone(),
                        conv_ordinal: t.tap.conv_ordinal,
                        scores: Vec::new(),
                    },
                    mean_amp: vec![vec![0.0; nb]; c],
                    line_snr: vec![vec![0.0; lines.len()]; c],
                    coefs: if cfg.stats.enabled { vec![vec![Vec::new(); test_lines.len()]; c] } else { vec![] },
                    series: vec![Vec::new(); if cfg.stats.permutations > 0 { c } else { 0 }],
                }
            })
            .collect();
        Accumulator {
            ctx: Ctx { lines, snr: &cfg.snr, test_lines, n_frames, period },
            taps: accs,
            chans,
            per: cfg.keep_per_image.then(|| {
                // Reserved up front: growing by doubling would copy hundreds of MB.
                let len = n_images * rows * nb;
                PerImage { rows, amplitude: Vec::with_capacity(len), coefficients: Vec::with_capacity(len) }
            }),
        }
    }

    /// Number of taps.
    pub(super) fn n_taps(&self) -> usize {
        self.taps.len()
    }

    /// Adds one image: `outs` are the session outputs (logits, then one `[P, C, 1, 1]` per
    /// tap, then anything else).
    pub(super) fn add(&mut self, outs: &[Output]) {
        let ctx = &self.ctx;
        let nt = self.taps.len();
        let outs = &outs[1..=nt];
        // This image's block of the per-image arrays, `[row][bin]` (each tap's channels
        // in turn), one sub-block per tap written in place.
        let nb = n_bins(ctx.n_frames);
        let mut per: Vec<Option<PerImageTap>> = match self.per.as_mut() {
            Some(all) => {
                let start = all.amplitude.len();
                let block = all.rows * nb;
                all.amplitude.resize(start + block, f32::NAN);
                all.coefficients.resize(start + block, Complex::new(f32::NAN, f32::NAN));
                let (mut amp, mut coef) = (&mut all.amplitude[start..], &mut all.coefficients[start..]);
                let mut v = Vec::with_capacity(nt);
                for &c in &self.chans {
                    let (a, ra) = std::mem::take(&mut amp).split_at_mut(c * nb);
                    let (k, rk) = std::mem::take(&mut coef).split_at_mut(c * nb);
                    v.push(Some((a, k)));
                    amp = ra;
                    coef = rk;
                }
                v
            }
            None => (0..nt).map(|_| None).collect(),
        };
        use rayon::prelude::*;
        thread_local! {
            // FFT plans and buffers, kept per thread across taps and images.
            static FFT: std::cell::RefCell<Fft> = std::cell::RefCell::new(Fft::new());
        }
        self.taps.par_iter_mut().zip(outs.par_iter()).zip(per.par_drain(..)).for_each(|((a, o), p)| {
            FFT.with(|fft| a.add(ctx, o, &mut fft.borrow_mut(), p));
        });
    }

    /// Continues from `state` (a checkpoint, or the state lent by
    /// [`Accumulator::take_state`]): its rows and sums become this accumulator's, so the
    /// next image is added exactly as in an uninterrupted run.
    pub(super) fn resume(&mut self, state: AnalysisState) {
        let parts =
            state.scores.into_iter().zip(state.sum_amp).zip(state.sum_line_snr).zip(state.coefs).zip(state.series);
        for (acc, ((((scores, amp), snr), coefs), series)) in self.taps.iter_mut().zip(parts) {
            acc.scores.scores = scores;
            acc.mean_amp = amp;
            acc.line_snr = snr;
            acc.coefs = coefs;
            acc.series = series;
        }
        if let Some(s) = state.per {
            match self.per.as_mut() {
                Some(p) => {
                    p.amplitude.extend(s.amplitude);
                    p.coefficients.extend(s.coefficients);
                }
                None => self.per = Some(s),
            }
        }
    }

    /// The state so far, moved out (no copies) for a checkpoint; give it back with
    /// [`Accumulator::resume`] before adding more images.
    pub(super) fn take_state(&mut self, images: &[ImageSpec], map_sums: Vec<Vec<Vec<Vec<f64>>>>) -> AnalysisState {
        let mut st = AnalysisState { images: images.to_vec(), per: self.per.take(), map_sums, ..Default::default() };
        for t in &mut self.taps {
            st.scores.push(std::mem::take(&mut t.scores.scores));
            st.sum_amp.push(std::mem::take(&mut t.mean_amp));
            st.sum_line_snr.push(std::mem::take(&mut t.line_snr));
            st.coefs.push(std::mem::take(&mut t.coefs));
            st.series.push(std::mem::take(&mut t.series));
        }
        st
    }

    /// The accumulated state (moved out, without copies).
    pub(super) fn finish(self, images: &[ImageSpec], map_sums: Vec<Vec<Vec<Vec<f64>>>>) -> AnalysisState {
        let mut st = AnalysisState { images: images.to_vec(), per: self.per, map_sums, ..Default::default() };
        for t in self.taps {
            st.scores.push(t.scores.scores);
            st.sum_amp.push(t.mean_amp);
            st.sum_line_snr.push(t.line_snr);
            st.coefs.push(t.coefs);
            st.series.push(t.series);
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DFT by its definition, `X_k = sum_t x_t e^{-2 pi i k t / N}`: the oracle.
    fn naive_dft(x: &[f64]) -> Vec<Complex<f64>> {
        let n = x.len();
        (0..n / 2 + 1)
            .map(|k| {
                x.iter().enumerate().fold(Complex::new(0.0, 0.0), |acc, (t, &v)| {
                    let w = -2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                    acc + Complex::new(w.cos(), w.sin()) * v
                })
            })
            .collect()
    }

    fn tap(name: &str, c: usize) -> TapInfo {
        let point = crate::inference::model::demo_model(1).unwrap().taps[0].clone();
        TapInfo { tap: crate::inference::model::TapPoint { name: name.into(), ..point }, shape: vec![c, 1, 1] }
    }

    /// Channel `ch` of tap `t` in image `img`: a mean, a tone at one bin and one at
    /// another, all different per (image, tap, channel).
    fn series(n: usize, img: usize, t: usize, ch: usize) -> Vec<f64> {
        let (k1, k2) = (3 + ch, 7 + t + img);
        (0..n)
            .map(|i| {
                let ph = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
                0.5 + img as f64 + (1.0 + ch as f64) * (k1 as f64 * ph).cos() + 0.25 * (k2 as f64 * ph + 0.3).sin()
            })
            .collect()
    }

    /// The session's outputs for one image: logits, then `[N, C, 1, 1]` per tap.
    fn outputs(n: usize, img: usize, chans: &[usize]) -> Vec<Output> {
        let mut outs = vec![Output { shape: vec![n, 10], data: vec![0.0; n * 10] }];
        for (t, &c) in chans.iter().enumerate() {
            let cols: Vec<Vec<f64>> = (0..c).map(|ch| series(n, img, t, ch)).collect();
            let data = (0..n).flat_map(|i| cols.iter().map(move |s| s[i] as f32)).collect();
            outs.push(Output { shape: vec![n, c, 1, 1], data });
        }
        outs
    }

    #[test]
    fn accumulated_spectra_equal_a_naive_dft_row_by_row_and_survive_a_checkpoint() {
        let n = 48;
        let mut cfg = AnalysisConfig { keep_per_image: true, ..AnalysisConfig::default() };
        cfg.stats.enabled = false;
        cfg.stats.permutations = 0;
        let chans = [2, 3];
        let taps = [tap("a", 2), tap("b", 3)];
        let lines = crate::signal::lines::catalogue(&[4, 5], 120.0, n, 2);
        let test_lines: Vec<usize> = (0..lines.len()).collect();
        let nb = n_bins(n);
        let images: Vec<ImageSpec> =
            (0..3).map(|i| ImageSpec { name: format!("i{i}"), index: Some(i), label: None }).collect();

        // Straight through three images, and with a checkpoint (take_state + resume)
        // after the first.
        let mut whole = Accumulator::new(&taps, &lines, &test_lines, &cfg, n, n, 3);
        for img in 0..3 {
            whole.add(&outputs(n, img, &chans));
        }
        let whole = whole.finish(&images, vec![]);
        let mut first = Accumulator::new(&taps, &lines, &test_lines, &cfg, n, n, 3);
        first.add(&outputs(n, 0, &chans));
        let saved = first.take_state(&images[..1], vec![]);
        let mut resumed = Accumulator::new(&taps, &lines, &test_lines, &cfg, n, n, 3);
        resumed.resume(saved);
        for img in 1..3 {
            resumed.add(&outputs(n, img, &chans));
        }
        assert_eq!(resumed.finish(&images, vec![]), whole);

        let per = whole.per.as_ref().unwrap();
        assert_eq!((per.rows, per.amplitude.len()), (5, 3 * 5 * nb));
        for (t, &c) in chans.iter().enumerate() {
            let first_row = chans[..t].iter().sum::<usize>();
            for ch in 0..c {
                let mut sum = vec![0.0; nb];
                for img in 0..3 {
                    let x: Vec<f64> = series(n, img, t, ch).iter().map(|&v| v as f32 as f64).collect();
                    let want = naive_dft(&x);
                    let row = (img * per.rows + first_row + ch) * nb;
                    for k in 0..nb {
                        // The coefficient X/N and the amplitude |X|/N (spectrum.rs's
                        // convention), stored as f32.
                        let got = per.coefficients[row + k];
                        let z = want[k] / n as f64;
                        assert!((got.re as f64 - z.re).abs() < 1e-5 && (got.im as f64 - z.im).abs() < 1e-5);
                        let a = per.amplitude[row + k] as f64;
                        let expect = z.norm();
                        assert!((a - expect).abs() < 1e-5 * expect.max(1.0), "tap {t} ch {ch} image {img} bin {k}");
                        sum[k] += a;
                    }
                }
                // The running sums are the images' amplitudes added up.
                for (k, &s) in sum.iter().enumerate() {
                    assert!((whole.sum_amp[t][ch][k] - s).abs() < 1e-5 * s.max(1.0), "sum of bin {k}");
                }
            }
            assert_eq!(whole.scores[t].len(), 3, "one score row per image");
            assert!(whole.scores[t].iter().all(|r| r.len() == c));
        }
    }
}
