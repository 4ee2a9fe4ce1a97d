//! Importance: per-filter scores over images, thresholds, per-layer counts.
//!
//! A filter's score in one image comes from [`crate::snr`] (by default the `authors`
//! score, dB). Over N images it gets the mean score and the fraction of images in which
//! its score exceeds the threshold. A filter is *important* when its mean score
//! exceeds the threshold (the paper's rule: rank by the score averaged over images).

use serde::Serialize;

/// Scores of one layer (tap): `scores[image][channel]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerScores {
    /// Tap name.
    pub tap: String,
    /// 1-based conv ordinal, for conv taps.
    pub conv_ordinal: Option<usize>,
    /// `[n_images][n_channels]`.
    pub scores: Vec<Vec<f64>>,
}

/// One filter's aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterImportance {
    /// Channel index within the layer.
    pub channel: usize,
    /// Mean score over images.
    pub mean_score: f64,
    /// Standard deviation over images.
    pub sd_score: f64,
    /// Fraction of images in which the score exceeds the threshold.
    pub pass_fraction: f64,
    /// `mean_score > threshold`.
    pub important: bool,
}

/// A layer's aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerImportance {
    /// Tap name.
    pub tap: String,
    /// 1-based conv ordinal, for conv taps.
    pub conv_ordinal: Option<usize>,
    /// Number of filters.
    pub n_filters: usize,
    /// Number of important filters.
    pub n_important: usize,
    /// Channels of the important filters, by decreasing mean score.
    pub important: Vec<usize>,
    /// Mean score over filters and images.
    pub mean_score: f64,
    /// Per-filter aggregates.
    pub filters: Vec<FilterImportance>,
}

/// Aggregates a layer's scores over images against `threshold`.
pub fn aggregate(layer: &LayerScores, threshold: f64) -> LayerImportance {
    let n_img = layer.scores.len();
    let n_ch = layer.scores.first().map_or(0, Vec::len);
    let filters: Vec<FilterImportance> = (0..n_ch)
        .map(|c| {
            let v: Vec<f64> = layer.scores.iter().map(|s| s[c]).collect();
            let mean = v.iter().sum::<f64>() / n_img.max(1) as f64;
            let sd = if n_img > 1 {
                (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n_img - 1) as f64).sqrt()
            } else {
                0.0
            };
            let pass = v.iter().filter(|&&x| x > threshold).count() as f64 / n_img.max(1) as f64;
            FilterImportance {
                channel: c,
                mean_score: mean,
                sd_score: sd,
                pass_fraction: pass,
                important: mean > threshold,
            }
        })
        .collect();
    let mut important: Vec<usize> = filters.iter().filter(|f| f.important).map(|f| f.channel).collect();
    important.sort_by(|&a, &b| filters[b].mean_score.total_cmp(&filters[a].mean_score));
    let mean_score = filters.iter().map(|f| f.mean_score).sum::<f64>() / n_ch.max(1) as f64;
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
}
