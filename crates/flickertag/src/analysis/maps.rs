//! Per-neuron maps: for chosen taps, the full feature map `[C, H, W]` is recorded and
//! every neuron's (channel, position) series gets its own spectrum; its SNR at each
//! tag's fundamental and at f1+f2 is averaged over images. Maps are reduced as they
//! come, one image at a time, never held for the whole run.

use serde::{Deserialize, Serialize};

use crate::inference::engine::{Output, TapInfo};
use crate::signal::lines::{Line, LineKind};
use crate::signal::snr::SnrConfig;
use crate::signal::spectrum::{amplitude_into, Fft};

/// SNR maps of one tap, mean over images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnrMap {
    /// Tap name.
    pub tap: String,
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    /// Labels of the map lines (`f1`, `f2`, ..., `f1+f2`).
    pub lines: Vec<String>,
    /// `[C][line][H*W]` mean SNR.
    #[serde(skip)]
    pub snr: Vec<Vec<Vec<f64>>>,
}

/// The lines mapped: every fundamental, then f1+f2 when there are two tags.
pub fn map_lines(lines: &[Line]) -> Vec<usize> {
    let mut v: Vec<usize> = (0..lines.len()).filter(|&l| lines[l].kind == LineKind::Fundamental).collect();
    v.sort_by_key(|&l| lines[l].coefs.iter().position(|&c| c != 0));
    if let Some(l) = (0..lines.len())
        .find(|&l| lines[l].kind == LineKind::Intermod && lines[l].order == 2 && lines[l].coefs.iter().all(|&c| c >= 0))
    {
        v.push(l);
    }
    v
}

/// The maps of `sums` (`[map][channel][line][position]`, sums over `n` images) as
/// means, named per `taps` and `lines`.
pub fn means(taps: &[TapInfo], lines: &[Line], sums: &[Vec<Vec<Vec<f64>>>], n: usize) -> Vec<SnrMap> {
    let ml = map_lines(lines);
    taps.iter()
        .zip(sums)
        .map(|(t, s)| SnrMap {
            tap: t.tap.name.clone(),
            shape: [t.shape[0], t.shape[1], t.shape[2]],
            lines: ml.iter().map(|&l| lines[l].label.clone()).collect(),
            snr: s.iter().map(|c| c.iter().map(|l| l.iter().map(|v| v / n as f64).collect()).collect()).collect(),
        })
        .collect()
}

/// Accumulates [`SnrMap`]s.
pub struct MapAccumulator {
    /// Maps so far.
    pub maps: Vec<SnrMap>,
    map_lines: Vec<usize>,
    fft: Fft,
}

impl MapAccumulator {
    /// Empty maps for `taps`.
    pub fn new(taps: &[TapInfo], lines: &[Line]) -> Self {
        let map_lines = map_lines(lines);
        let maps = taps
            .iter()
            .map(|t| {
                let [c, h, w] = [t.shape[0], t.shape[1], t.shape[2]];
                SnrMap {
                    tap: t.tap.name.clone(),
                    shape: [c, h, w],
                    lines: map_lines.iter().map(|&l| lines[l].label.clone()).collect(),
                    snr: vec![vec![vec![0.0; h * w]; map_lines.len()]; c],
                }
            })
            .collect();
        MapAccumulator { maps, map_lines, fft: Fft::new() }
    }

    /// Adds one image's full maps (`[P, C, H, W]` each): `snr` holds sums over images
    /// until [`means`] divides them.
    pub fn add(&mut self, outs: &[Output], lines: &[Line], snr: &SnrConfig, n_frames: usize) {
        let off = snr.bin_offset();
        for (m, out) in self.maps.iter_mut().zip(outs) {
            let [c, h, w] = m.shape;
            let hw = h * w;
            let (mut series, mut coef, mut amp) = (vec![0.0; out.shape[0]], Vec::new(), Vec::new());
            for ch in 0..c {
                for pos in 0..hw {
                    for (i, x) in series.iter_mut().enumerate() {
                        *x = out.data[(i * c + ch) * hw + pos] as f64;
                    }
                    // One period when folded; P = N is the same call with one repetition.
                    self.fft.folded_rfft_into(&series, n_frames, &mut coef);
                    amplitude_into(&coef, n_frames, &mut amp);
                    let s = snr.snr(&amp);
                    for (j, &l) in self.map_lines.iter().enumerate() {
                        let v = lines[l]
                            .bin
                            .checked_sub(off)
                            .and_then(|k| s.get(k))
                            .copied()
                            .filter(|v| v.is_finite())
                            .unwrap_or(0.0);
                        m.snr[ch][j][pos] += v;
                    }
                }
            }
        }
    }
}
