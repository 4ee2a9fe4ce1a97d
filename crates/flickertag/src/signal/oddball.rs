//! The oddball paradigm of fast periodic visual stimulation (FPVS): a stream of
//! varied images at a base frequency `F`, every `n`-th of them from one category.
//!
//! Image `k` of a stream (0-based) is shown for one cycle of `L = fps / F` frames with
//! a sinusoidal contrast `s(j) = (1 − cos(2π j / L)) / 2` at its frame `j` (0 at the
//! cycle's start and end, 1 in its middle), applied as the paper's modulation is: the
//! normalized tensor `(x − mean) / std` times `s`. Images `k` with `(k + 1) % n == 0`
//! are oddballs, drawn from the chosen class; the others are base images drawn from
//! every other class. A system that treats the class like any other image responds at
//! `F` and its harmonics only; one that tells it apart responds at `F / n` and its
//! harmonics too. With the defaults (120 fps, 400 frames, F = 6 Hz, n = 5) the window
//! holds 20 images, bins are 0.3 Hz wide, `F / n` = 1.2 Hz is bin 4 and `F` bin 20.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Most frames in one stream.
pub const MAX_STREAM_FRAMES: usize = 1 << 14;

/// The stream's timing: base frequency, oddball period, frame rate and window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OddballStimulus {
    /// Base frequency F, Hz: one image per cycle.
    pub base_freq: f64,
    /// Every n-th image is an oddball (n ≥ 2).
    pub every: usize,
    /// Frames per second.
    pub fps: f64,
    /// Frames per stream (the FFT window).
    pub n_frames: usize,
}

impl Default for OddballStimulus {
    fn default() -> Self {
        OddballStimulus { base_freq: 6.0, every: 5, fps: 120.0, n_frames: 400 }
    }
}

/// A stream's timing, checked: frames per image, images per stream and the FFT bins
/// of `F / n` and `F`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OddballTiming {
    /// Frames per image (one contrast cycle), `L = fps / F`.
    pub frames_per_image: usize,
    /// Images per stream, `N / L`.
    pub images: usize,
    /// FFT bin of the oddball frequency `F / n`.
    pub oddball_bin: usize,
    /// FFT bin of the base frequency `F`.
    pub base_bin: usize,
}

impl OddballStimulus {
    /// Checks the timing: `fps / F` a whole number of frames (at least 4), `n ≥ 2`, the
    /// window a whole number of oddball cycles (so `F / n` and `F` lie on FFT bins),
    /// [`MAX_STREAM_FRAMES`] frames at most.
    pub fn timing(&self) -> Result<OddballTiming> {
        if !(self.fps > 0.0 && self.fps.is_finite() && self.fps <= 1e6) {
            return Err(Error::param("fps", "a positive number up to 1e6", self.fps));
        }
        if !(self.base_freq > 0.0 && self.base_freq.is_finite()) {
            return Err(Error::param("base-freq", "a positive frequency in Hz", self.base_freq));
        }
        let l = self.fps / self.base_freq;
        if (l - l.round()).abs() > 1e-9 || l.round() < 4.0 {
            return Err(Error::param(
                "base-freq",
                format!("a frequency that divides fps = {} into whole cycles of 4 frames or more", self.fps),
                self.base_freq,
            ));
        }
        let l = l.round() as usize;
        if !(2..=1000).contains(&self.every) {
            return Err(Error::param("every", "an oddball every 2 to 1000 images", self.every));
        }
        let cycle = l * self.every;
        if self.n_frames == 0 || self.n_frames > MAX_STREAM_FRAMES || !self.n_frames.is_multiple_of(cycle) {
            return Err(Error::param(
                "n-frames",
                format!(
                    "a multiple of {cycle} frames (an oddball cycle: {} images of {l} frames), at most {MAX_STREAM_FRAMES}",
                    self.every
                ),
                self.n_frames,
            ));
        }
        let images = self.n_frames / l;
        Ok(OddballTiming {
            frames_per_image: l,
            images,
            oddball_bin: self.n_frames / cycle,
            base_bin: self.n_frames / l,
        })
    }
}

impl OddballTiming {
    /// The contrast of frame `j` of an image's cycle, `(1 − cos(2π j / L)) / 2`.
    pub fn contrast(&self, j: usize) -> f32 {
        let l = self.frames_per_image as f64;
        ((1.0 - (2.0 * std::f64::consts::PI * j as f64 / l).cos()) / 2.0) as f32
    }

    /// Whether image `k` of a stream is an oddball (`every` = n).
    pub fn is_oddball(k: usize, every: usize) -> bool {
        (k + 1).is_multiple_of(every)
    }

    /// The distinct contrasts of a cycle, as `(frames of the cycle, in order → row)`:
    /// `s(j) = s(L − j)`, so about half the frames of a cycle are distinct inputs. Returns
    /// the cycle frames to run and, for each of the `L` frames, its row among them.
    pub fn distinct(&self) -> (Vec<usize>, Vec<usize>) {
        let mut run: Vec<usize> = Vec::new();
        let mut row_of = Vec::with_capacity(self.frames_per_image);
        for j in 0..self.frames_per_image {
            let s = self.contrast(j).to_bits();
            match run.iter().position(|&r| self.contrast(r).to_bits() == s) {
                Some(row) => row_of.push(row),
                None => {
                    row_of.push(run.len());
                    run.push(j);
                }
            }
        }
        (run, row_of)
    }
}

/// The images of one stream, as indices into per-class pools: `(class, index in that
/// class's pool)` per image. Oddballs come from `class`, base images uniformly from the
/// pooled images of every other class; draws are seeded by `seed` and never repeat an
/// image within a stream while the pools last. With `class` None (the null control),
/// oddballs and base images alike come from every class: the stream has no oddball
/// category, and any response at `F / n` is chance.
pub fn stream_images(
    class: Option<usize>,
    pool_sizes: &[usize],
    timing: &OddballTiming,
    every: usize,
    seed: u64,
) -> Result<Vec<(usize, usize)>> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    if let Some(class) = class.filter(|&c| c >= pool_sizes.len() || pool_sizes[c] == 0) {
        return Err(Error::param("classes", "classes with images in the pool", class));
    }
    let from = |keep: &dyn Fn(usize) -> bool| -> Vec<(usize, usize)> {
        (0..pool_sizes.len()).filter(|&c| keep(c)).flat_map(|c| (0..pool_sizes[c]).map(move |i| (c, i))).collect()
    };
    let others = from(&|c| Some(c) != class);
    if others.is_empty() || pool_sizes.len() < 2 {
        return Err(Error::param("classes", "images of at least two classes", pool_sizes.len()));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut odd = match class {
        Some(c) => from(&|k| k == c),
        None => others.clone(),
    };
    let mut base = others;
    odd.shuffle(&mut rng);
    base.shuffle(&mut rng);
    let (mut o, mut b) = (0, 0);
    Ok((0..timing.images)
        .map(|k| {
            if OddballTiming::is_oddball(k, every) {
                o += 1;
                odd[(o - 1) % odd.len()]
            } else {
                b += 1;
                base[(b - 1) % base.len()]
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issues_example_puts_the_oddball_on_bin_4_and_the_base_on_bin_20() {
        let t = OddballStimulus::default().timing().unwrap();
        assert_eq!(t, OddballTiming { frames_per_image: 20, images: 20, oddball_bin: 4, base_bin: 20 });
        assert_eq!(t.contrast(0), 0.0);
        assert!((t.contrast(10) - 1.0).abs() < 1e-7);
        let (run, row_of) = t.distinct();
        assert_eq!(run.len(), 11);
        for (j, &r) in row_of.iter().enumerate() {
            assert_eq!(t.contrast(run[r]).to_bits(), t.contrast(j).to_bits());
        }
    }

    #[test]
    fn oddball_timing_off_the_frame_or_bin_grid_is_an_error_naming_the_parameter() {
        let ok = OddballStimulus::default();
        let cases = [
            (OddballStimulus { base_freq: 7.0, ..ok.clone() }, "base-freq"),
            (OddballStimulus { base_freq: 60.0, ..ok.clone() }, "base-freq"),
            (OddballStimulus { every: 1, ..ok.clone() }, "every"),
            (OddballStimulus { n_frames: 390, ..ok.clone() }, "a multiple of 100 frames"),
            (OddballStimulus { n_frames: 1 << 20, ..ok.clone() }, "n-frames"),
            (OddballStimulus { fps: f64::NAN, ..ok }, "fps"),
        ];
        for (s, want) in cases {
            let e = s.timing().unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn every_nth_image_of_a_stream_is_from_the_oddball_class_and_the_others_never() {
        let t = OddballStimulus::default().timing().unwrap();
        let pools = [30, 30, 30, 30];
        let s = stream_images(Some(2), &pools, &t, 5, 7).unwrap();
        assert_eq!(s.len(), 20);
        for (k, &(c, _)) in s.iter().enumerate() {
            assert_eq!(c == 2, (k + 1) % 5 == 0, "image {k} of class {c}");
        }
        let mut distinct = s.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 20, "an image repeated within a stream");
        assert_eq!(stream_images(Some(2), &pools, &t, 5, 7).unwrap(), s);
        assert_ne!(stream_images(Some(2), &pools, &t, 5, 8).unwrap(), s);
        assert!(stream_images(Some(0), &[5], &t, 5, 0).is_err());
        // The null control draws every image from every class.
        let null = stream_images(None, &pools, &t, 5, 7).unwrap();
        let classes: std::collections::BTreeSet<usize> = null.iter().map(|x| x.0).collect();
        assert!(classes.len() > 1 && null.iter().skip(4).step_by(5).any(|x| x.0 != null[4].0), "{null:?}");
    }
}
