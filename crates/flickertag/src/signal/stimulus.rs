//! Tag plans and frames: part-based contrast modulation of an image.
//!
//! Region `r` flickers at `freqs[r]` Hz with phase `phases[r]` (radians). Frame `i`
//! (0-based, time `t_i = i / fps`) multiplies that region's pixels, all colour channels
//! alike, by `s_r(i) = lo + (hi - lo) * (1 + sin(2π f_r i / fps + φ_r)) / 2`; with a
//! `depth` d below 1, by `m + d (hi - lo) sin(...) / 2` around the same mean
//! `m = (lo + hi) / 2` (a contrast step: depth 0 is no flicker). The factor multiplies
//! the luma, one chromatic coordinate or one channel instead with another
//! [`Modulation`] ([`crate::signal::colour`]).
//! Paper defaults ([`StimulusConfig::default`]): left half 6 Hz, right half 7.5 Hz,
//! 120 fps, 240 frames, `lo = 0.5`, `hi = 1`, i.e. `0.75 + 0.25 sin(...)`, applied to
//! the normalized tensor ([`Domain::Normalized`]). Pixels outside every region are
//! left as they are.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::data::Image;
use crate::io::data::Preprocess;
pub use crate::signal::colour::Modulation;
pub use crate::signal::quantize::Quantize;

/// Where the modulation is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// Multiply the normalized tensor `(x - mean) / std` (the author's code; default).
    Normalized,
    /// Multiply pixel values in [0, 1], then normalize.
    Raw,
}

/// How the image is split into tagged regions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Left `[0, W/2)` and right `[W/2, W)` halves (odd W: the extra column goes right).
    Halves,
    /// Only the left half is tagged (single-region control).
    Left,
    /// Four quadrants: top-left, top-right, bottom-left, bottom-right.
    Quadrants,
    /// An `rows x cols` grid, row-major.
    Grid {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// The whole image as one region.
    Whole,
    /// A mask image of the input's size: each distinct non-zero grey level (ascending)
    /// is a region, black is untagged.
    Mask(PathBuf),
}

impl std::str::FromStr for Domain {
    type Err = Error;
    /// Parses `normalized` or `raw`.
    fn from_str(s: &str) -> Result<Domain> {
        match s {
            "normalized" => Ok(Domain::Normalized),
            "raw" => Ok(Domain::Raw),
            _ => Err(Error::param("domain", "one of normalized, raw", s)),
        }
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Domain::Normalized => "normalized",
            Domain::Raw => "raw",
        })
    }
}

impl std::str::FromStr for Layout {
    type Err = Error;
    /// Parses `halves`, `left`, `whole`, `quadrants`, `grid:RxC` or `mask:PATH`.
    fn from_str(s: &str) -> Result<Layout> {
        const ALLOWED: &str = "one of halves, left, whole, quadrants, grid:RxC (e.g. grid:2x3), mask:PATH";
        Ok(match s {
            "halves" => Layout::Halves,
            "left" => Layout::Left,
            "whole" => Layout::Whole,
            "quadrants" => Layout::Quadrants,
            l if l.starts_with("grid:") => {
                let bad = || Error::param("layout", ALLOWED, s);
                let (r, c) = l[5..].split_once('x').ok_or_else(bad)?;
                Layout::Grid { rows: r.parse().map_err(|_| bad())?, cols: c.parse().map_err(|_| bad())? }
            }
            l if l.starts_with("mask:") && l.len() > 5 => Layout::Mask(PathBuf::from(&l[5..])),
            _ => return Err(Error::param("layout", ALLOWED, s)),
        })
    }
}

impl std::fmt::Display for Layout {
    /// The form [`Layout::from_str`](std::str::FromStr) reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layout::Halves => f.write_str("halves"),
            Layout::Left => f.write_str("left"),
            Layout::Quadrants => f.write_str("quadrants"),
            Layout::Whole => f.write_str("whole"),
            Layout::Grid { rows, cols } => write!(f, "grid:{rows}x{cols}"),
            Layout::Mask(p) => write!(f, "mask:{}", p.display()),
        }
    }
}

/// Most frames in a stimulus (9 minutes at 120 fps).
pub const MAX_N_FRAMES: usize = 1 << 16;
/// Most tagged regions (one frequency each).
pub const MAX_REGIONS: usize = 64;

/// Everything that defines the stimulus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StimulusConfig {
    /// Region layout.
    pub layout: Layout,
    /// One frequency per region, Hz.
    pub freqs: Vec<f64>,
    /// One phase per region, radians (empty: all zero).
    pub phases: Vec<f64>,
    /// Frames per second.
    pub fps: f64,
    /// Number of frames N.
    pub n_frames: usize,
    /// Lowest modulation factor.
    pub lo: f32,
    /// Highest modulation factor.
    pub hi: f32,
    /// Where the factor is applied.
    pub domain: Domain,
    /// Accept frequencies off the FFT bin grid (spectral leakage) with a warning.
    pub allow_leakage: bool,
    /// What the factor multiplies (default: every channel alike).
    #[serde(default)]
    pub modulation: Modulation,
    /// Modulation depth in [0, 1]: the share of the `lo`..`hi` swing used, around its
    /// middle (1: the whole swing; default).
    #[serde(default = "full_depth")]
    pub depth: f32,
    /// How frames are stored before the network sees them ([`Quantize`]: exact, 8-bit
    /// pixels, or a JPEG round trip, as a pipeline of image files has them).
    #[serde(default, skip_serializing_if = "Quantize::is_none")]
    pub quantize: Quantize,
}

fn full_depth() -> f32 {
    1.0
}

impl Default for StimulusConfig {
    fn default() -> Self {
        StimulusConfig {
            layout: Layout::Halves,
            freqs: vec![6.0, 7.5],
            phases: vec![],
            fps: 120.0,
            n_frames: 240,
            lo: 0.5,
            hi: 1.0,
            domain: Domain::Normalized,
            allow_leakage: false,
            modulation: Modulation::All,
            depth: 1.0,
            quantize: Quantize::None,
        }
    }
}

/// A validated plan: region masks, frequencies and FFT bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagPlan {
    /// The configuration it came from.
    pub config: StimulusConfig,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Region index per pixel (`H*W`, row-major), `None` for untagged pixels.
    #[serde(skip)]
    pub region_of: Vec<Option<usize>>,
    /// Region names (`left`, `right`, `q1`, `r0c1`, ...).
    pub region_names: Vec<String>,
    /// FFT bin of each tag frequency, `f * N / fps` (rounded when leakage is allowed).
    pub bins: Vec<usize>,
}

/// Which frames run through the network: identical frames run once
/// ([`TagPlan::distinct_frames`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSchedule {
    /// Frame indices to run, ascending: the first frame of each group of identical ones.
    pub run: Vec<usize>,
    /// For each frame `0..n`, its row in `run` (whose activations it shares).
    pub row_of: Vec<usize>,
}

/// Regions of a mask image: each distinct non-zero grey level (the mean of the
/// channels, 0-255), ascending, is a region; black is untagged. The mask must be
/// `w x h`; at most [`MAX_REGIONS`] levels.
pub fn mask_regions(img: &Image, h: usize, w: usize) -> std::result::Result<(Vec<Option<usize>>, Vec<String>), String> {
    if (img.width, img.height) != (w, h) {
        return Err(format!("mask is {}x{} (width x height), the model input is {w}x{h}", img.width, img.height));
    }
    let hw = h * w;
    let grey: Vec<u8> = (0..hw)
        .map(|p| ((img.pixels[p] + img.pixels[hw + p] + img.pixels[2 * hw + p]) / 3.0 * 255.0).round() as u8)
        .collect();
    let mut levels: Vec<u8> = grey.iter().copied().filter(|&v| v > 0).collect();
    levels.sort_unstable();
    levels.dedup();
    if levels.len() > MAX_REGIONS {
        return Err(format!("{} grey levels: at most {MAX_REGIONS} regions", levels.len()));
    }
    let of = grey.iter().map(|g| levels.iter().position(|l| l == g)).collect();
    Ok((of, levels.iter().map(|l| format!("level{l}")).collect()))
}

fn region_masks(layout: &Layout, h: usize, w: usize) -> Result<(Vec<Option<usize>>, Vec<String>)> {
    let grid = |rows: usize, cols: usize| -> Vec<Option<usize>> {
        (0..h * w)
            .map(|p| {
                let (y, x) = (p / w, p % w);
                // Split points round down so that odd sizes give the extra pixel to the later part.
                let r = (0..rows).rev().find(|&r| y >= r * h / rows).unwrap_or(0);
                let c = (0..cols).rev().find(|&c| x >= c * w / cols).unwrap_or(0);
                Some(r * cols + c)
            })
            .collect()
    };
    Ok(match layout {
        Layout::Halves => (grid(1, 2), vec!["left".into(), "right".into()]),
        Layout::Left => (grid(1, 2).into_iter().map(|r| r.filter(|&r| r == 0)).collect(), vec!["left".into()]),
        Layout::Whole => (vec![Some(0); h * w], vec!["whole".into()]),
        Layout::Quadrants => {
            (grid(2, 2), ["top_left", "top_right", "bottom_left", "bottom_right"].map(String::from).to_vec())
        }
        Layout::Grid { rows, cols } => {
            if *rows == 0 || *cols == 0 || *rows > h || *cols > w {
                return Err(Error::param(
                    "grid",
                    format!("rows in 1..={h} and cols in 1..={w}"),
                    format!("{rows}x{cols}"),
                ));
            }
            let names = (0..rows * cols).map(|i| format!("r{}c{}", i / cols, i % cols)).collect();
            (grid(*rows, *cols), names)
        }
        Layout::Mask(path) => {
            // Read as any image (bounded: regular file, size and dimensions checked
            // before decoding).
            let img = Image::from_file(path)?;
            mask_regions(&img, h, w).map_err(|reason| Error::Data { path: path.clone(), reason })?
        }
    })
}

impl StimulusConfig {
    /// Validates the configuration for an `h x w` input and builds the plan.
    /// Errors: a frequency off the bin grid (unless `allow_leakage`), at or above
    /// Nyquist, or not positive; a count of frequencies or phases that does not match
    /// the regions; an empty region; `lo > hi`.
    pub fn plan(&self, h: usize, w: usize) -> Result<TagPlan> {
        let bins = self.check()?;
        if matches!(self.quantize, Quantize::Jpeg(_)) && h.max(w) > u16::MAX as usize {
            return Err(Error::param(
                "quantize",
                format!("none or uint8 for a frame over {} pixels on a side (JPEG's limit)", u16::MAX),
                format!("{} for {h} x {w}", self.quantize),
            ));
        }
        if let Layout::Grid { rows, cols } = self.layout {
            if rows.saturating_mul(cols) > MAX_REGIONS {
                return Err(Error::param(
                    "layout",
                    format!("at most {MAX_REGIONS} regions"),
                    format!("grid:{rows}x{cols}"),
                ));
            }
        }
        let (region_of, region_names) = region_masks(&self.layout, h, w)?;
        let nr = region_names.len();
        if nr == 0 {
            return Err(Error::param("layout", "at least one tagged region", &self.layout));
        }
        if nr > MAX_REGIONS {
            return Err(Error::param(
                "layout",
                format!("at most {MAX_REGIONS} regions"),
                format!("{} ({nr} regions)", self.layout),
            ));
        }
        if self.freqs.len() != nr {
            return Err(Error::param(
                "freqs",
                format!("one frequency per region ({nr}: {})", region_names.join(", ")),
                format!("{:?}", self.freqs),
            ));
        }
        if !self.phases.is_empty() && self.phases.len() != nr {
            return Err(Error::param(
                "phases",
                format!("none, or one phase per region ({nr})"),
                format!("{:?}", self.phases),
            ));
        }
        for (r, name) in region_names.iter().enumerate() {
            if !region_of.contains(&Some(r)) {
                return Err(Error::param("layout", "regions that each cover at least one pixel", name));
            }
        }
        Ok(TagPlan { config: self.clone(), height: h, width: w, region_of, region_names, bins })
    }

    /// Validates everything that does not depend on the image size and returns the FFT
    /// bin of each tag: fps, frame count ([`MAX_N_FRAMES`]), `lo`/`hi`, phases (finite),
    /// frequencies (finite, in `(0, Nyquist)`, on the bin grid unless `allow_leakage`,
    /// on distinct bins), at most [`MAX_REGIONS`] of them.
    pub fn check(&self) -> Result<Vec<usize>> {
        if !(self.fps > 0.0 && self.fps.is_finite() && self.fps <= 1e6) {
            return Err(Error::param("fps", "a positive number up to 1e6", self.fps));
        }
        if !(8..=MAX_N_FRAMES).contains(&self.n_frames) {
            return Err(Error::param("n-frames", format!("8..={MAX_N_FRAMES}"), self.n_frames));
        }
        if !(self.lo.is_finite() && self.hi.is_finite()) {
            return Err(Error::param("lo/hi", "finite numbers", format!("lo={} hi={}", self.lo, self.hi)));
        }
        if self.lo > self.hi {
            return Err(Error::param("lo/hi", "lo <= hi", format!("lo={} hi={}", self.lo, self.hi)));
        }
        if !(0.0..=1.0).contains(&self.depth) {
            return Err(Error::param("depth", "a modulation depth in [0, 1]", self.depth));
        }
        if let Some(p) = self.phases.iter().find(|p| !p.is_finite()) {
            return Err(Error::param("phases", "finite phases in radians", p));
        }
        if self.freqs.is_empty() || self.freqs.len() > MAX_REGIONS {
            return Err(Error::param("freqs", format!("1 to {MAX_REGIONS} frequencies"), format!("{:?}", self.freqs)));
        }
        let nyquist = self.fps / 2.0;
        let mut bins = Vec::new();
        for &f in &self.freqs {
            if !(f > 0.0 && f < nyquist && f.is_finite()) {
                return Err(Error::param(
                    "freqs",
                    format!("frequencies in (0, {nyquist}) Hz (below Nyquist = fps/2)"),
                    f,
                ));
            }
            let k = f * self.n_frames as f64 / self.fps;
            if (k - k.round()).abs() > 1e-9 {
                let res = self.fps / self.n_frames as f64;
                if !self.allow_leakage {
                    return Err(Error::param(
                        "freqs",
                        format!("multiples of the bin width fps/n_frames = {res} Hz (or pass <allow-leakage>)"),
                        f,
                    ));
                }
                tracing::warn!("{f} Hz is off the FFT bin grid ({res} Hz): its energy leaks into neighbouring bins");
            }
            let k = k.round() as usize;
            if k == 0 {
                return Err(Error::param("freqs", "frequencies of at least one bin width fps/n_frames", f));
            }
            if bins.contains(&k) {
                return Err(Error::param(
                    "freqs",
                    "distinct frequencies, on distinct FFT bins (a shared frequency cannot tell the regions apart)",
                    format!("{:?}", self.freqs),
                ));
            }
            bins.push(k);
        }
        Ok(bins)
    }
}

impl TagPlan {
    /// The factor `s_r(i)` of region `r` at frame `i`.
    pub fn factor(&self, r: usize, i: usize) -> f32 {
        let c = &self.config;
        let phase = c.phases.get(r).copied().unwrap_or(0.0);
        let s = (2.0 * std::f64::consts::PI * c.freqs[r] * i as f64 / c.fps + phase).sin();
        if c.depth == 1.0 {
            c.lo + (c.hi - c.lo) * ((1.0 + s) / 2.0) as f32
        } else {
            (c.lo + c.hi) / 2.0 + c.depth * (c.hi - c.lo) * (s / 2.0) as f32
        }
    }

    /// The period of the stimulus in frames when it is exactly periodic within the
    /// N frames: `P = N / gcd(N, k_1, ..., k_R)` with `k_r` the tag bins; `None` when
    /// a frequency is off the grid. Frame `i` and frame `i + P` are identical.
    pub fn period(&self) -> Option<usize> {
        let c = &self.config;
        let exact = c.freqs.iter().all(|&f| {
            let k = f * c.n_frames as f64 / c.fps;
            (k - k.round()).abs() <= 1e-9
        });
        if !exact || c.phases.iter().any(|p| !p.is_finite()) {
            return None;
        }
        Some(c.n_frames / self.bins.iter().fold(c.n_frames, |g, &k| crate::signal::lines::gcd(g, k)))
    }

    /// Frame `i` of `image` as the model input `[3, H, W]` (normalized).
    pub fn frame(&self, image: &Image, pre: &Preprocess, i: usize) -> Result<Vec<f32>> {
        self.frames_at(image, pre, &[i])
    }

    /// The frames `indices` of `image`, concatenated: `[indices.len(), C, H, W]`; the
    /// image is normalized once, and the frames stored as [`StimulusConfig::quantize`]
    /// says. The modulation must suit the input's channels ([`Modulation::check_input`];
    /// the analysis checks it before any work).
    pub fn frames_at(&self, image: &Image, pre: &Preprocess, indices: &[usize]) -> Result<Vec<f32>> {
        let mut out = self.exact_frames(image, pre, indices);
        let c = out.len() / (indices.len() * self.height * self.width).max(1);
        self.config.quantize.apply(&mut out, c, self.height, self.width, pre)?;
        Ok(out)
    }

    /// [`TagPlan::frames_at`] before quantization.
    fn exact_frames(&self, image: &Image, pre: &Preprocess, indices: &[usize]) -> Vec<f32> {
        let hw = self.height * self.width;
        let modulation = self.config.modulation;
        if modulation != Modulation::All {
            return self.frames_in_colour(image, pre, indices);
        }
        let base = match self.config.domain {
            Domain::Normalized => image.normalized(pre),
            Domain::Raw => image.channels(pre),
        };
        let mut out = Vec::with_capacity(indices.len() * base.len());
        for &i in indices {
            let factors: Vec<f32> = (0..self.region_names.len()).map(|r| self.factor(r, i)).collect();
            for (p, &x) in base.iter().enumerate() {
                let scale = self.region_of[p % hw].map_or(1.0, |r| factors[r]);
                out.push(match self.config.domain {
                    Domain::Normalized => x * scale,
                    Domain::Raw => (x * scale - pre.mean[p / hw]) / pre.std[p / hw],
                });
            }
        }
        out
    }

    /// [`TagPlan::frames_at`] for a modulation other than [`Modulation::All`]: each
    /// pixel's channel values, centred on the input mean (normalized domain) or raw,
    /// are modulated together ([`Modulation::apply`]), then normalized.
    fn frames_in_colour(&self, image: &Image, pre: &Preprocess, indices: &[usize]) -> Vec<f32> {
        let hw = self.height * self.width;
        let px = image.channels(pre);
        let nc = px.len() / hw.max(1);
        let centre = |ch: usize| if self.config.domain == Domain::Normalized { pre.mean[ch] } else { 0.0 };
        let mut out = vec![0f32; indices.len() * px.len()];
        let mut c = vec![0f32; nc];
        for (row, &i) in indices.iter().enumerate() {
            let factors: Vec<f32> = (0..self.region_names.len()).map(|r| self.factor(r, i)).collect();
            let frame = &mut out[row * px.len()..(row + 1) * px.len()];
            for p in 0..hw {
                for (ch, v) in c.iter_mut().enumerate() {
                    *v = px[ch * hw + p] - centre(ch);
                }
                if let Some(r) = self.region_of[p] {
                    self.config.modulation.apply(&mut c, factors[r]);
                }
                for (ch, v) in c.iter().enumerate() {
                    frame[ch * hw + p] = (v + centre(ch) - pre.mean[ch]) / pre.std[ch];
                }
            }
        }
        out
    }

    /// Groups frames `0..n` by identity. Frame `i` is a function of the region factors
    /// `s_r(i)` alone (as float32 numbers), so frames whose factors are bit-for-bit
    /// equal are identical inputs and give identical activations: only the first of
    /// each group needs inference. The sine makes many such pairs: `sin(θ) = sin(π − θ)`,
    /// so with the paper defaults 49 of the 80 frames of one period are distinct.
    pub fn distinct_frames(&self, n: usize) -> FrameSchedule {
        let mut first: std::collections::HashMap<Vec<u32>, usize> = std::collections::HashMap::new();
        let mut schedule = FrameSchedule { run: Vec::new(), row_of: Vec::with_capacity(n) };
        for i in 0..n {
            let key: Vec<u32> = (0..self.region_names.len()).map(|r| self.factor(r, i).to_bits()).collect();
            let row = *first.entry(key).or_insert_with(|| {
                schedule.run.push(i);
                schedule.run.len() - 1
            });
            schedule.row_of.push(row);
        }
        schedule
    }

    /// Frame `i` as pixels in [0, 1] for viewing (the modulation shown in the raw
    /// domain, clipped to [0, 1]).
    pub fn display_frame(&self, image: &Image, i: usize) -> Image {
        let hw = self.height * self.width;
        let factors: Vec<f32> = (0..self.region_names.len()).map(|r| self.factor(r, i)).collect();
        let mut pixels = image.pixels.clone();
        let mut c = [0f32; 3];
        for p in 0..hw {
            let Some(r) = self.region_of[p] else { continue };
            for (ch, v) in c.iter_mut().enumerate() {
                *v = image.pixels[ch * hw + p];
            }
            self.config.modulation.apply(&mut c, factors[r]);
            for (ch, v) in c.iter().enumerate() {
                pixels[ch * hw + p] = v.clamp(0.0, 1.0);
            }
        }
        Image { pixels, ..image.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_defaults_give_bins_12_and_15_and_period_80() {
        let p = StimulusConfig::default().plan(32, 32).unwrap();
        assert_eq!(p.bins, vec![12, 15]);
        assert_eq!(p.period(), Some(80));
        assert!((p.factor(0, 0) - 0.75).abs() < 1e-7);
        assert!((p.factor(0, 5) - 1.0).abs() < 1e-6); // 6 Hz peak at t = 1/24 s
    }

    #[test]
    fn halves_split_odd_width_extra_column_right() {
        let p = StimulusConfig::default().plan(1, 5).unwrap();
        assert_eq!(p.region_of, vec![Some(0), Some(0), Some(1), Some(1), Some(1)]);
    }

    #[test]
    fn off_grid_and_nyquist_frequencies_are_errors() {
        let mut c = StimulusConfig { freqs: vec![6.2, 7.5], ..Default::default() };
        let e = c.plan(32, 32).unwrap_err().to_string();
        assert!(e.contains("freqs") && e.contains("6.2") && e.contains("0.5 Hz"), "{e}");
        c.freqs = vec![6.0, 60.0];
        assert!(c.plan(32, 32).unwrap_err().to_string().contains("Nyquist"));
        c.freqs = vec![6.0];
        assert!(c.plan(32, 32).unwrap_err().to_string().contains("one frequency per region"));
    }

    #[test]
    fn non_finite_repeated_and_oversized_parameters_are_errors_naming_them() {
        let ok = StimulusConfig::default();
        let cases: Vec<(StimulusConfig, &str)> = vec![
            (StimulusConfig { freqs: vec![6.0, 6.0], ..ok.clone() }, "distinct frequencies"),
            (StimulusConfig { freqs: vec![6.0, f64::NAN], ..ok.clone() }, "invalid freqs"),
            (StimulusConfig { lo: f32::NAN, ..ok.clone() }, "invalid lo/hi"),
            (StimulusConfig { hi: f32::INFINITY, ..ok.clone() }, "invalid lo/hi"),
            (StimulusConfig { phases: vec![f64::INFINITY, 0.0], ..ok.clone() }, "invalid phases"),
            (StimulusConfig { n_frames: 1_000_000_000, ..ok.clone() }, "invalid n-frames"),
            (StimulusConfig { fps: f64::INFINITY, ..ok.clone() }, "invalid fps"),
            (
                StimulusConfig { layout: Layout::Grid { rows: 9, cols: 9 }, freqs: vec![0.5; 81], ..ok.clone() },
                "invalid freqs",
            ),
        ];
        for (c, want) in cases {
            let e = c.plan(32, 32).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn mask_image_regions_by_grey_level_and_empty_masks_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mask.png");
        // Left column untagged (0), middle level 100, right level 200.
        image::GrayImage::from_fn(3, 2, |x, _| image::Luma([[0u8, 100, 200][x as usize]])).save(&p).unwrap();
        let c = StimulusConfig { layout: Layout::Mask(p.clone()), freqs: vec![6.0, 7.5], ..Default::default() };
        let plan = c.plan(2, 3).unwrap();
        assert_eq!(plan.region_of, vec![None, Some(0), Some(1), None, Some(0), Some(1)]);
        assert_eq!(plan.region_names, vec!["level100", "level200"]);
        let wrong = c.plan(4, 4).unwrap_err().to_string();
        assert!(wrong.contains("mask is 3x2") && wrong.contains("4x4"), "{wrong}");
        image::GrayImage::new(3, 2).save(&p).unwrap();
        let none = StimulusConfig { layout: Layout::Mask(p), freqs: vec![6.0], ..Default::default() };
        assert!(none.plan(2, 3).unwrap_err().to_string().contains("at least one tagged region"));
    }

    #[test]
    fn grid_larger_than_the_image_is_an_error() {
        let freqs = vec![6.0, 7.5, 9.0, 10.5, 12.0];
        let c = StimulusConfig { layout: Layout::Grid { rows: 5, cols: 1 }, freqs, ..Default::default() };
        let e = c.plan(4, 4).unwrap_err().to_string();
        assert!(e.contains("grid") && e.contains("5x1"), "{e}");
        let q = StimulusConfig { layout: Layout::Quadrants, freqs: vec![6.0, 7.5, 9.0, 10.5], ..Default::default() };
        let plan = q.plan(4, 4).unwrap();
        assert_eq!(plan.bins, vec![12, 15, 18, 21]);
        assert_eq!(plan.period(), Some(80));
    }

    #[test]
    fn distinct_frames_are_the_49_symmetric_ones_and_identical_within_groups() {
        let p = StimulusConfig::default().plan(4, 4).unwrap();
        let s = p.distinct_frames(80);
        // 6 Hz at 120 fps: phases k/20 of a turn, sin equal for k and 10 - k (11 values);
        // 7.5 Hz: k/16, equal for k and 8 - k (9 values); 49 of the 80 pairs occur.
        assert_eq!(s.run.len(), 49);
        assert_eq!(s.row_of.len(), 80);
        assert_eq!(s.row_of[7], s.row_of[23]);
        let img = Image { height: 4, width: 4, pixels: (0..48).map(|i| i as f32 / 48.0).collect(), label: None };
        let pre = Preprocess::default();
        for i in 0..80 {
            let j = s.run[s.row_of[i]];
            assert!(j <= i);
            assert_eq!(p.frame(&img, &pre, i).unwrap(), p.frame(&img, &pre, j).unwrap(), "frame {i} vs {j}");
        }
        // Distinct groups really differ.
        for (a, &i) in s.run.iter().enumerate() {
            for &j in &s.run[a + 1..] {
                assert_ne!(p.frame(&img, &pre, i).unwrap(), p.frame(&img, &pre, j).unwrap());
            }
        }
        let all = p.frames_at(&img, &pre, &s.run).unwrap();
        assert_eq!(all.len(), 49 * 48);
        for (row, &i) in s.run.iter().enumerate() {
            assert_eq!(&all[row * 48..(row + 1) * 48], &p.frame(&img, &pre, i).unwrap()[..]);
        }
        let raw = StimulusConfig { domain: Domain::Raw, ..Default::default() }.plan(4, 4).unwrap();
        assert_eq!(
            raw.frames_at(&img, &pre, &[3, 5]).unwrap(),
            [raw.frame(&img, &pre, 3).unwrap(), raw.frame(&img, &pre, 5).unwrap()].concat()
        );
        // A phase offset breaks the symmetry differently; still every group is exact.
        let q = StimulusConfig { phases: vec![0.3, 1.1], ..Default::default() }.plan(4, 4).unwrap();
        let s = q.distinct_frames(80);
        for i in 0..80 {
            assert_eq!(q.frame(&img, &pre, i).unwrap(), q.frame(&img, &pre, s.run[s.row_of[i]]).unwrap());
        }
    }

    #[test]
    fn frames_repeat_with_the_period() {
        let p = StimulusConfig::default().plan(4, 4).unwrap();
        let img = Image { height: 4, width: 4, pixels: (0..48).map(|i| i as f32 / 48.0).collect(), label: None };
        let pre = Preprocess::default();
        for i in [0, 7, 33] {
            let a = p.frame(&img, &pre, i).unwrap();
            let b = p.frame(&img, &pre, i + 80).unwrap();
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5);
            }
        }
    }
}
