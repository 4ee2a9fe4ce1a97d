//! Image-bootstrap confidence intervals for the areas under pruning curves.
//!
//! The test images are drawn with replacement `B` times (seeded). Every ablation's
//! accuracy on a resample is recomputed from its per-image hits, and a curve's area on
//! that resample from those accuracies. Every point of every curve sees the same
//! resample, as the real curves all see the same images. The interval is the 2.5th to
//! 97.5th percentile of the `B` areas (the percentile bootstrap). It measures how much
//! an area depends on which test images were drawn; the random seeds measure how much
//! it depends on which filters were drawn.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Per-image hits (top-1 right or not) of one ablation, as a bit set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hits {
    /// Images.
    pub n: usize,
    /// Bit `i % 64` of word `i / 64` is image `i`.
    pub words: Vec<u64>,
}

impl Hits {
    /// From one flag per image.
    pub fn from_flags(flags: &[bool]) -> Hits {
        let mut words = vec![0u64; flags.len().div_ceil(64)];
        for (i, _) in flags.iter().enumerate().filter(|(_, &f)| f) {
            words[i / 64] |= 1 << (i % 64);
        }
        Hits { n: flags.len(), words }
    }

    /// Whether image `i` was right.
    pub fn get(&self, i: usize) -> bool {
        self.words.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    /// Images right.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// `B` resamples of `n` images: how often each image is drawn, stored image-major
/// (`[image][resample]`) so that an ablation's `B` accuracies are sums of contiguous rows.
pub struct Resamples {
    n: usize,
    b: usize,
    counts: Vec<u16>,
}

/// Most images a resample set handles (the counts are 16-bit).
pub const MAX_IMAGES: usize = u16::MAX as usize;

impl Resamples {
    /// `b` resamples of `n` images, seeded.
    pub fn new(n: usize, b: usize, seed: u64) -> Result<Resamples> {
        if n == 0 || n > MAX_IMAGES {
            return Err(Error::param("n-images", format!("1..={MAX_IMAGES} for the bootstrap"), n));
        }
        let mut counts = vec![0u16; n * b];
        for (r, draw) in crate::analysis::bootstrap::resample_draws(n, b, seed).enumerate() {
            for i in draw {
                counts[i * b + r] += 1;
            }
        }
        Ok(Resamples { n, b, counts })
    }

    /// Resamples.
    pub fn len(&self) -> usize {
        self.b
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.b == 0
    }

    /// How often image `i` is drawn in each resample: `[B]`.
    pub fn counts_of(&self, i: usize) -> &[u16] {
        &self.counts[i * self.b..(i + 1) * self.b]
    }

    /// Top-1 accuracy (percent) of `hits` on every resample: `[B]`.
    pub fn top1(&self, hits: &Hits) -> Result<Vec<f64>> {
        if hits.n != self.n {
            return Err(Error::param("hits", format!("{} images", self.n), hits.n));
        }
        let mut sum = vec![0u32; self.b];
        for i in (0..self.n).filter(|&i| hits.get(i)) {
            for (s, &c) in sum.iter_mut().zip(&self.counts[i * self.b..(i + 1) * self.b]) {
                *s += c as u32;
            }
        }
        Ok(sum.into_iter().map(|s| 100.0 * s as f64 / self.n as f64).collect())
    }
}

/// The central `level` interval of `values` (percentiles by linear interpolation, as
/// numpy's default); NaN values are ignored, NaN bounds without finite values.
pub fn percentile_interval(values: &[f64], level: f64) -> (f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| crate::importance::quantile(&v, p).unwrap_or(f64::NAN);
    let tail = (1.0 - level) / 2.0;
    (q(tail), q(1.0 - tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_round_trip() {
        let f: Vec<bool> = (0..130).map(|i| i % 3 == 0).collect();
        let h = Hits::from_flags(&f);
        assert_eq!(h.count(), 44);
        assert!((0..130).all(|i| h.get(i) == f[i]));
        assert!(!h.get(500));
    }

    #[test]
    fn resampled_accuracy_centres_on_the_accuracy_with_the_binomial_spread() {
        // 1,000 images, 80 % right: the bootstrap SD of the accuracy is the binomial
        // standard error, sqrt(0.8 · 0.2 / 1000) = 1.26 percentage points.
        let f: Vec<bool> = (0..1000).map(|i| i % 5 != 0).collect();
        let r = Resamples::new(1000, 2000, 3).unwrap();
        let a = r.top1(&Hits::from_flags(&f)).unwrap();
        let (m, sd) = crate::importance::mean_sd(&a);
        assert!((m - 80.0).abs() < 0.15, "mean {m}");
        assert!((sd - 1.265).abs() < 0.08, "sd {sd}");
        let (lo, hi) = percentile_interval(&a, 0.95);
        assert!((lo - (80.0 - 1.96 * 1.265)).abs() < 0.3 && (hi - (80.0 + 1.96 * 1.265)).abs() < 0.3, "{lo} {hi}");
    }

    #[test]
    fn percentile_interval_matches_numpy() {
        // numpy.percentile(np.arange(11.0), [2.5, 97.5]) == [0.25, 9.75]
        let v: Vec<f64> = (0..=10).map(f64::from).collect();
        let (lo, hi) = percentile_interval(&v, 0.95);
        assert!((lo - 0.25).abs() < 1e-12 && (hi - 9.75).abs() < 1e-12, "{lo} {hi}");
        assert!(percentile_interval(&[f64::NAN], 0.95).0.is_nan());
    }

    #[test]
    fn every_resample_draws_n_images() {
        let r = Resamples::new(37, 5, 1).unwrap();
        let all = Hits::from_flags(&[true; 37]);
        assert!(r.top1(&all).unwrap().iter().all(|&a| (a - 100.0).abs() < 1e-12));
        assert!(r.top1(&Hits::from_flags(&[true; 36])).is_err());
    }
}
