//! Per-image spectra, SNR, scores and statistics inputs, accumulated over images on the
//! spectrum worker thread.

use num_complex::Complex;

use super::{score, AnalysisConfig, PerImage};
use crate::engine::TapInfo;
use crate::importance::LayerScores;
use crate::lines::Line;
use crate::snr::SnrConfig;
use crate::spectrum::{amplitude, folded_rfft, n_bins, Fft};

/// Per-image spectra, SNR and scores, accumulated over images.
pub(super) struct Accumulator<'a> {
    pub(super) taps: &'a [TapInfo],
    pub(super) lines: &'a [Line],
    pub(super) snr: &'a SnrConfig,
    pub(super) n_frames: usize,
    /// Length of the recorded series (one period when folded).
    pub(super) period: usize,
    pub(super) n_images: usize,
    pub(super) max_c: usize,
    pub(super) fft: Fft,
    pub(super) scores: Vec<LayerScores>,
    pub(super) mean_amp: Vec<Vec<Vec<f64>>>,
    pub(super) line_snr: Vec<Vec<Vec<f64>>>,
    pub(super) per: Option<PerImage>,
    /// Indices into `lines` of the lines tested across images (order ≤ 2).
    pub(super) test_lines: Vec<usize>,
    /// `[tap][channel][test line][image]` coefficients `X/N` (stats only).
    pub(super) coefs: Vec<Vec<Vec<Vec<Complex<f32>>>>>,
    /// `[tap][channel][image][frame]` series of one period (permutations only).
    pub(super) series: Vec<Vec<Vec<Vec<f32>>>>,
}

impl<'a> Accumulator<'a> {
    pub(super) fn new(
        taps: &'a [TapInfo],
        lines: &'a [Line],
        cfg: &'a AnalysisConfig,
        n_frames: usize,
        period: usize,
        n_images: usize,
    ) -> Self {
        let nb = n_bins(n_frames);
        let max_c = taps.iter().map(|t| t.shape[0]).max().unwrap_or(0);
        Accumulator {
            taps,
            lines,
            snr: &cfg.snr,
            n_frames,
            period,
            n_images,
            max_c,
            fft: Fft::new(),
            scores: taps
                .iter()
                .map(|t| LayerScores { tap: t.tap.name.clone(), conv_ordinal: t.tap.conv_ordinal, scores: Vec::new() })
                .collect(),
            mean_amp: taps.iter().map(|t| vec![vec![0.0; nb]; t.shape[0]]).collect(),
            line_snr: taps.iter().map(|t| vec![vec![0.0; lines.len()]; t.shape[0]]).collect(),
            per: cfg.keep_per_image.then(|| PerImage {
                max_channels: max_c,
                amplitude: Vec::new(),
                coefficients: Vec::new(),
            }),
            test_lines: (0..lines.len()).filter(|&l| lines[l].order <= 2).collect(),
            coefs: taps
                .iter()
                .map(|t| {
                    let n_test = lines.iter().filter(|l| l.order <= 2).count();
                    if cfg.stats.enabled {
                        vec![vec![Vec::new(); n_test]; t.shape[0]]
                    } else {
                        vec![]
                    }
                })
                .collect(),
            series: taps
                .iter()
                .map(|t| vec![Vec::new(); if cfg.stats.permutations > 0 { t.shape[0] } else { 0 }])
                .collect(),
        }
    }

    /// Adds one image: `outs` are the session outputs (logits, then one `[P, C, 1, 1]` per tap).
    pub(super) fn add(&mut self, outs: &[crate::engine::Output]) {
        let (n, p, nb, max_c) = (self.n_frames, self.period, n_bins(self.n_frames), self.max_c);
        let snr_offset = self.snr.bin_offset();
        let w = 1.0 / self.n_images as f64;
        for (t, (tap, out)) in self.taps.iter().zip(outs.iter().skip(1)).enumerate() {
            let c = tap.shape[0];
            let mut img_scores = Vec::with_capacity(c);
            let mut pad = self
                .per
                .as_ref()
                .map(|_| (vec![f32::NAN; max_c * nb], vec![Complex::new(f32::NAN, f32::NAN); max_c * nb]));
            for ch in 0..c {
                let series: Vec<f64> = (0..p).map(|i| out.data[i * c + ch] as f64).collect();
                let coef = if p < n { folded_rfft(&mut self.fft, &series, n) } else { self.fft.rfft(&series) };

                let amp = amplitude(&coef, n);
                let snr = self.snr.snr(&amp);
                img_scores.push(score(self.snr, &snr, self.lines, &self.test_lines));
                if let Some(per_line) = self.coefs[t].get_mut(ch) {
                    for (j, &l) in self.test_lines.iter().enumerate() {
                        let z = coef[self.lines[l].bin] / n as f64;
                        per_line[j].push(Complex::new(z.re as f32, z.im as f32));
                    }
                }
                if let Some(s) = self.series[t].get_mut(ch) {
                    s.push(series.iter().map(|&x| x as f32).collect());
                }
                for (m, a) in self.mean_amp[t][ch].iter_mut().zip(&amp) {
                    *m += a * w;
                }
                for (l, line) in self.lines.iter().enumerate() {
                    let v = line.bin.checked_sub(snr_offset).and_then(|j| snr.get(j)).copied().unwrap_or(f64::NAN);
                    self.line_snr[t][ch][l] += v * w;
                }
                if let Some((pa, pc)) = pad.as_mut() {
                    for k in 0..nb {
                        pa[ch * nb + k] = amp[k] as f32;
                        let z = coef[k] / n as f64;
                        pc[ch * nb + k] = Complex::new(z.re as f32, z.im as f32);
                    }
                }
            }
            self.scores[t].scores.push(img_scores);
            if let (Some(per), Some((pa, pc))) = (self.per.as_mut(), pad) {
                per.amplitude.extend(pa);
                per.coefficients.extend(pc);
            }
        }
    }
}
