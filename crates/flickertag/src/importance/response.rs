//! Whether a filter responds at a line. A network is deterministic: shown the same
//! frames it computes the same activations, so whether a filter responds at 6 Hz is
//! not a statistical question and gets no p-value. The one thing that makes a line
//! that is mathematically absent non-zero is float32 rounding, whose size scales with
//! the values being rounded. A line counts as a response when its amplitude exceeds
//! the rounding floor of its own spectrum: [`ROUNDING_FLOOR`] times the spectrum's
//! largest amplitude, DC included.
//!
//! Calibration (test `oracles.rs`, real ResNet-32): in the stem conv, a linear map whose
//! spectrum is exactly DC, 6 and 7.5 Hz, rounding leaves at most 1.6e-5 of the largest
//! amplitude at any other bin; the floor is six times that.

use serde::{Deserialize, Serialize};

use crate::signal::lines::{Line, LineKind};

/// The rounding floor as a fraction of a spectrum's largest amplitude (DC included).
pub const ROUNDING_FLOOR: f64 = 1e-4;

/// Which line groups of one filter's mean spectrum exceed the rounding floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Response {
    /// Per tag: its fundamental.
    pub fundamental: Vec<bool>,
    /// Per tag: any of its harmonics (2f, 3f, ...; harmonics shared by tags excluded).
    pub harmonics: Vec<bool>,
    /// Any intermodulation line (`n1 f1 + n2 f2` with two non-zero terms) that is not
    /// also a harmonic of one tag.
    pub intermod: bool,
    /// The floor: [`ROUNDING_FLOOR`] times the largest amplitude.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub floor: f64,
}

/// The response of an amplitude spectrum `amp[bin]` at the catalogued `lines` of
/// `n_tags` tags.
pub fn response(amp: &[f64], lines: &[Line], n_tags: usize) -> Response {
    let top = amp.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let floor = ROUNDING_FLOOR * top;
    let mut r = Response { fundamental: vec![false; n_tags], harmonics: vec![false; n_tags], intermod: false, floor };
    // (An intermodulation line is no tag's harmonic: a multiple of a tag, 36 Hz = f1 +
    // 4 f2 = 6 f1 for 6 and 7.5 Hz, is in that tag's group; see `signal::lines`.)
    for l in lines {
        let on = amp.get(l.bin).is_some_and(|&a| a > floor) && top > 0.0;
        match (l.kind, l.group_tag().filter(|&t| t < n_tags)) {
            (LineKind::Fundamental, Some(t)) => r.fundamental[t] |= on,
            (LineKind::Harmonic, Some(t)) => r.harmonics[t] |= on,
            (LineKind::Intermod, _) => r.intermod |= on,
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::lines::catalogue;

    /// The spectrum `|rfft(x)|/N` of a series, by the naive DFT.
    fn spectrum(x: &[f64]) -> Vec<f64> {
        let n = x.len();
        (0..=n / 2)
            .map(|k| {
                let (mut re, mut im) = (0.0, 0.0);
                for (i, v) in x.iter().enumerate() {
                    let a = -2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                    re += v * a.cos();
                    im += v * a.sin();
                }
                (re * re + im * im).sqrt() / n as f64
            })
            .collect()
    }

    fn series(f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
        // The paper's modulation: s(t) = 0.75 + 0.25 sin(2 pi f t), 6 and 7.5 Hz, 120 fps.
        (0..240)
            .map(|i| {
                let t = i as f64 / 120.0;
                let s = |hz: f64| 0.75 + 0.25 * (2.0 * std::f64::consts::PI * hz * t).sin();
                f(s(6.0), s(7.5))
            })
            .map(|v| v as f32 as f64) // the network's float32 output
            .collect()
    }

    #[test]
    fn a_linear_system_has_no_harmonics_and_no_intermodulation() {
        let lines = catalogue(&[12, 15], 120.0, 240, 20);
        let r = response(&spectrum(&series(|a, b| 0.3 * a - 1.2 * b + 0.1)), &lines, 2);
        assert_eq!((r.fundamental, r.harmonics, r.intermod), (vec![true, true], vec![false, false], false));
    }

    #[test]
    fn a_rectified_single_region_has_harmonics_but_no_intermodulation() {
        let lines = catalogue(&[12, 15], 120.0, 240, 20);
        let r = response(&spectrum(&series(|a, _| (a - 0.8).max(0.0))), &lines, 2);
        assert_eq!((r.fundamental, r.harmonics, r.intermod), (vec![true, false], vec![true, false], false));
    }

    #[test]
    fn a_product_of_both_regions_intermodulates() {
        let lines = catalogue(&[12, 15], 120.0, 240, 20);
        let r = response(&spectrum(&series(|a, b| a * b)), &lines, 2);
        assert!(r.intermod && r.fundamental == [true, true]);
        // A flat series responds at nothing (and a zero one has no floor to exceed).
        assert_eq!(response(&spectrum(&series(|_, _| 0.0)), &lines, 2).fundamental, [false, false]);
    }
}
