//! Importance: per-filter scores over images, thresholds, per-layer counts.
//!
//! A filter's score in one image comes from [`crate::signal::snr`] (by default the `authors`
//! score, dB). Over N images it gets the mean score and the fraction of images in which
//! its score exceeds the threshold. A filter is *important* when its mean score
//! exceeds the threshold (the paper's rule: rank by the score averaged over images).

pub mod control;
pub mod correlation;
pub mod crossval;
pub mod response;
pub mod stats;

use serde::{Deserialize, Serialize};

use crate::signal::lines::{Line, LineKind};
use crate::signal::snr::{mean_finite, SnrConfig};

/// Scores of one layer (tap): `scores[image][channel]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerScores {
    /// Tap name.
    pub tap: String,
    /// 1-based conv ordinal, for conv taps.
    pub conv_ordinal: Option<usize>,
    /// `[n_images][n_channels]`.
    pub scores: Vec<Vec<f64>>,
}

/// One filter's aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterImportance {
    /// Channel index within the layer.
    pub channel: usize,
    /// Mean score over images.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub mean_score: f64,
    /// Standard deviation over images.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub sd_score: f64,
    /// Fraction of images in which the score exceeds the threshold.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub pass_fraction: f64,
    /// `mean_score > threshold`.
    pub important: bool,
    /// Every amplitude of its spectrum, DC included, lies below the SNR floor in every
    /// image: nothing can be measured (its score is NaN, not 0). Deep layers of some
    /// networks (MobileNetV3) are this small; `--floor 0` measures them.
    #[serde(default)]
    pub dead: bool,
    /// Which line groups of its mean spectrum exceed the float32 rounding floor
    /// ([`response::response`]): a deterministic fact, not a test.
    #[serde(default)]
    pub response: response::Response,
}

/// A layer's aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerImportance {
    /// Tap name.
    pub tap: String,
    /// 1-based conv ordinal, for conv taps.
    #[serde(deserialize_with = "Option::deserialize")]
    pub conv_ordinal: Option<usize>,
    /// Number of filters.
    pub n_filters: usize,
    /// Number of important filters.
    pub n_important: usize,
    /// Channels of the important filters, by decreasing mean score.
    pub important: Vec<usize>,
    /// Mean score over filters and images.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub mean_score: f64,
    /// Per-filter aggregates.
    pub filters: Vec<FilterImportance>,
}

/// The `p` quantile (`0 <= p <= 1`) of ascending `sorted` values by linear
/// interpolation between the closest ranks (numpy's default, Hyndman-Fan type 7): the
/// one quantile definition of flickertag. None for no values.
pub fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let x = p.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (x - lo as f64))
}

/// Mean and sample standard deviation (`n - 1`); the deviation is 0 for one value and
/// both are NaN for none.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let sd =
        if v.len() > 1 { (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt() } else { 0.0 };
    (m, sd)
}

/// Aggregates a layer's scores over images against `threshold`.
pub fn aggregate(layer: &LayerScores, threshold: f64) -> LayerImportance {
    let n_img = layer.scores.len();
    let n_ch = layer.scores.first().map_or(0, Vec::len);
    let filters: Vec<FilterImportance> = (0..n_ch)
        .map(|c| {
            // A NaN score is an image where the filter was below the SNR floor.
            let v: Vec<f64> = layer.scores.iter().map(|s| s[c]).filter(|x| x.is_finite()).collect();
            let (mean, sd) = mean_sd(&v);
            let pass = v.iter().filter(|&&x| x > threshold).count() as f64 / n_img.max(1) as f64;
            FilterImportance {
                channel: c,
                mean_score: mean,
                sd_score: sd,
                pass_fraction: pass,
                important: mean > threshold,
                dead: v.is_empty() && n_img > 0,
                response: response::Response::default(),
            }
        })
        .collect();
    let mut important: Vec<usize> = filters.iter().filter(|f| f.important).map(|f| f.channel).collect();
    important.sort_by(|&a, &b| filters[b].mean_score.total_cmp(&filters[a].mean_score));
    let live: Vec<f64> = filters.iter().map(|f| f.mean_score).filter(|x| x.is_finite()).collect();
    let mean_score = mean_sd(&live).0;
    LayerImportance {
        tap: layer.tap.clone(),
        conv_ordinal: layer.conv_ordinal,
        n_filters: n_ch,
        n_important: important.len(),
        important,
        mean_score,
        filters,
    }
}

/// Amplitude summed over catalogued lines, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineSums {
    /// Per tag: its fundamental and harmonics (the harmonic numbers every tag has; see
    /// [`crate::signal::lines`]).
    #[serde(deserialize_with = "crate::io::json::nan_vec")]
    pub tags: Vec<f64>,
    /// Intermodulation lines.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub intermod: f64,
    /// Harmonics counted for no tag: shared by two or more tags, or unmatched.
    #[serde(deserialize_with = "crate::io::json::nan")]
    pub shared: f64,
}

impl LineSums {
    /// Left/right selectivity `(S1 - S2) / (S1 + S2)` of the first two tags, in [-1, 1].
    pub fn selectivity(&self) -> f64 {
        let (a, b) = (self.tags.first().copied().unwrap_or(0.0), self.tags.get(1).copied().unwrap_or(0.0));
        if a + b > 0.0 {
            (a - b) / (a + b)
        } else {
            0.0
        }
    }

    /// Integration index: the intermodulation share of all line amplitude, in [0, 1].
    pub fn integration(&self) -> f64 {
        let total = self.tags.iter().sum::<f64>() + self.intermod + self.shared;
        if total > 0.0 {
            self.intermod / total
        } else {
            0.0
        }
    }
}

/// Sums `values[bin]` (amplitudes, or baseline-corrected amplitudes) over the lines of
/// each kind; `n_tags` is the number of tag frequencies. Negative values count as 0.
pub fn line_sums(values: &[f64], lines: &[Line], n_tags: usize) -> LineSums {
    let mut s = LineSums { tags: vec![0.0; n_tags], intermod: 0.0, shared: 0.0 };
    for l in lines {
        let v = values.get(l.bin).copied().filter(|v| v.is_finite()).unwrap_or(0.0).max(0.0);
        match l.kind {
            LineKind::Fundamental | LineKind::Harmonic => {
                if let Some(t) = l.group_tag().filter(|&t| t < n_tags) {
                    s.tags[t] += v;
                }
            }
            LineKind::Intermod => s.intermod += v,
            LineKind::Shared | LineKind::Unmatched => s.shared += v,
        }
    }
    s
}

/// A filter's score from its SNR spectrum (`snr[j]` is bin `j + drop_dc`), per the
/// config's [`crate::signal::snr::ScoreRule`].
pub fn score(cfg: &SnrConfig, snr: &[f64], lines: &[Line], test_lines: &[usize]) -> f64 {
    match cfg.score {
        crate::signal::snr::ScoreRule::AllBins => mean_finite(snr),
        crate::signal::snr::ScoreRule::Lines => {
            let off = cfg.bin_offset();
            let v: Vec<f64> = test_lines
                .iter()
                .filter_map(|&l| lines[l].bin.checked_sub(off).and_then(|j| snr.get(j)).copied())
                .collect();
            mean_finite(&v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_threshold_and_pass_fraction() {
        let l = LayerScores {
            tap: "conv1".into(),
            conv_ordinal: Some(1),
            scores: vec![vec![1.0, 3.0, 0.0], vec![3.0, 5.0, 0.0]],
        };
        let a = aggregate(&l, 2.5);
        assert_eq!(a.n_important, 1);
        assert_eq!(a.important, vec![1]);
        assert_eq!(a.filters[0].mean_score, 2.0);
        assert_eq!(a.filters[0].pass_fraction, 0.5);
        assert!(!a.filters[0].important);
        assert_eq!(a.filters[1].pass_fraction, 1.0);
        assert!((a.filters[0].sd_score - 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn a_network_that_treats_both_tags_alike_has_selectivity_zero_either_way() {
        // y(t) = g(s1(t)) + g(s2(t)), g(u) = u^7: harmonics 1..7 of each tag with the
        // same amplitudes (7 x 7.5 Hz = 52.5 Hz, below Nyquist: no aliasing). Each
        // tag's group holds the same harmonic numbers, so the sums are equal, whichever
        // tag is first.
        let (n, fps) = (240usize, 120.0);
        let s = |f: f64, t: usize| 0.75 + 0.25 * (2.0 * std::f64::consts::PI * f * t as f64 / fps).sin();
        let y: Vec<f64> = (0..n).map(|t| s(6.0, t).powi(7) + s(7.5, t).powi(7)).collect();
        let amp: Vec<f64> = (0..=n / 2)
            .map(|k| {
                let (re, im) = y.iter().enumerate().fold((0.0, 0.0), |(re, im), (t, &v)| {
                    let a = -2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                    (re + v * a.cos(), im + v * a.sin())
                });
                re.hypot(im) / n as f64
            })
            .collect();
        // The harmonics the groups leave out carry amplitude (24 Hz = 4 x 6 Hz, 37.5 Hz
        // = 5 x 7.5 Hz): the test is not of an empty difference.
        assert!(amp[48] > 1e-4 && amp[75] > 1e-4, "{} {}", amp[48], amp[75]);
        for bins in [[12, 15], [15, 12]] {
            let lines = crate::signal::lines::catalogue(&bins, fps, n, 20);
            let sums = line_sums(&amp, &lines, 2);
            assert!((sums.tags[0] - sums.tags[1]).abs() <= 1e-12 * sums.tags[0], "{bins:?}: {:?}", sums.tags);
            assert!(sums.selectivity().abs() <= 1e-12, "{bins:?}");
        }
    }
}
