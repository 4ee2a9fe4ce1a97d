//! The state of an analysis as a fold over images: per-image rows (in image order) and
//! plain sums, so that two states over consecutive image ranges merge by concatenation
//! and addition ([`AnalysisState::merge`]), a checkpoint is the state written to disk,
//! and a shard is a state over part of the image list. [`super::finish`] is the one
//! place that turns a state into means, importance and statistics, whether it came
//! from one run, a resumed one, or merged shards.
//!
//! Exactness: counts and per-image arrays are identical however the images were split;
//! the sums (mean spectra, mean line SNR, SNR maps) are added shard by shard, which
//! changes only the floating-point summation order (a relative difference of about
//! 1e-15 per image summed, far below anything reported). A resumed run continues the
//! same sums in the same order and ends bit for bit as an uninterrupted one.

use std::path::Path;

use num_complex::Complex;
use serde::{Deserialize, Serialize};

use super::config::{AnalysisConfig, ImageSpec, InferencePath, PerImage};
use crate::error::{Error, Result};
use crate::inference::engine::TapInfo;
use crate::inference::model::ModelInfo;
use crate::signal::lines::Line;

/// What a state is a state of: everything but the images' contributions. Two states
/// merge only when their contexts agree (the images aside).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunContext {
    /// The model.
    pub model: ModelInfo,
    /// The effective configuration.
    pub config: AnalysisConfig,
    /// The recorded taps, with shapes.
    pub taps: Vec<TapInfo>,
    /// The taps whose SNR maps are recorded.
    pub map_taps: Vec<TapInfo>,
    /// The line catalogue.
    pub lines: Vec<Line>,
    /// Lines tested by the statistics.
    pub test_lines: Vec<usize>,
    /// How inference ran.
    pub path: InferencePath,
    /// Frames run per image.
    pub frames_per_image: usize,
}

/// Largest element count of one tap's shape, or of a frame, that a context may claim.
const MAX_CONTEXT_ELEMENTS: usize = 1 << 31;

impl RunContext {
    /// Checks a context read from a file (a shard's or a checkpoint's `partial.json`)
    /// before any array is sized or indexed by it: the configuration as the options
    /// are checked, at least one tap, every shape non-empty with positive sides and a
    /// bounded size, the lines tested inside the catalogue, and the frames per image
    /// within the frames of the stimulus. The reason names the field.
    pub fn check(&self) -> std::result::Result<(), String> {
        self.config.validate().map_err(|e| e.to_string())?;
        let sized = |v: &[usize]| {
            !v.is_empty()
                && v.iter().all(|&d| d >= 1)
                && v.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_some_and(|n| n <= MAX_CONTEXT_ELEMENTS)
        };
        if !sized(&self.model.input_shape) {
            return Err(format!("model input shape {:?}: positive sides, at most 2^31 values", self.model.input_shape));
        }
        if self.taps.is_empty() {
            return Err("taps: at least one tap".into());
        }
        for t in self.taps.iter().chain(&self.map_taps) {
            if !(sized(&t.shape) && sized(&t.tap.dims) && sized(&t.tap.chw)) {
                return Err(format!(
                    "tap {}: shape {:?}, dims {:?}, chw {:?}: each non-empty, positive sides, at most 2^31 values",
                    t.tap.name, t.shape, t.tap.dims, t.tap.chw
                ));
            }
        }
        if let Some(&l) = self.test_lines.iter().find(|&&l| l >= self.lines.len()) {
            return Err(format!("test_lines: indices below the {} lines of the catalogue (got {l})", self.lines.len()));
        }
        let n = self.config.stimulus.n_frames;
        if !(1..=n).contains(&self.frames_per_image) {
            return Err(format!(
                "frames_per_image: 1 to the {n} frames of the stimulus (got {})",
                self.frames_per_image
            ));
        }
        Ok(())
    }
}

/// The images' contributions to an analysis; see the module docs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnalysisState {
    /// The images added, in order.
    pub images: Vec<ImageSpec>,
    /// `[tap][image][channel]` scores.
    pub scores: Vec<Vec<Vec<f64>>>,
    /// `[tap][channel][bin]` sum of amplitudes over images.
    pub sum_amp: Vec<Vec<Vec<f64>>>,
    /// `[tap][channel][line]` sum of the SNR at each catalogued line.
    pub sum_line_snr: Vec<Vec<Vec<f64>>>,
    /// `[tap][channel][test line][image]` coefficients `X/N` (statistics only).
    pub coefs: Vec<Vec<Vec<Vec<Complex<f32>>>>>,
    /// `[tap][channel][image][frame]` series of one period (permutations only).
    pub series: Vec<Vec<Vec<Vec<f32>>>>,
    /// Per-image spectra, if kept.
    pub per: Option<PerImage>,
    /// `[map][channel][line][position]` sum of per-neuron SNR.
    pub map_sums: Vec<Vec<Vec<Vec<f64>>>>,
}

fn add_into(a: &mut [Vec<f64>], b: &[Vec<f64>]) {
    for (x, y) in a.iter_mut().zip(b) {
        for (u, v) in x.iter_mut().zip(y) {
            *u += v;
        }
    }
}

impl AnalysisState {
    /// Appends `other`, the state of the images that follow this one's.
    pub fn merge(&mut self, other: AnalysisState) -> Result<()> {
        let shape = |s: &AnalysisState| {
            (
                s.scores.len(),
                s.sum_amp.iter().map(|t| (t.len(), t.first().map_or(0, Vec::len))).collect::<Vec<_>>(),
                s.sum_line_snr.iter().map(Vec::len).collect::<Vec<_>>(),
                s.coefs.len(),
                s.series.len(),
                s.per.as_ref().map(|p| p.rows),
                s.map_sums.len(),
            )
        };
        if shape(self) != shape(&other) {
            return Err(Error::Model("states of different analyses cannot be merged (their shapes differ)".into()));
        }
        self.images.extend(other.images);
        for (a, b) in self.scores.iter_mut().zip(other.scores) {
            a.extend(b);
        }
        for (a, b) in self.sum_amp.iter_mut().zip(&other.sum_amp) {
            add_into(a, b);
        }
        for (a, b) in self.sum_line_snr.iter_mut().zip(&other.sum_line_snr) {
            add_into(a, b);
        }
        for (a, b) in self.coefs.iter_mut().zip(other.coefs) {
            for (x, y) in a.iter_mut().zip(b) {
                for (u, v) in x.iter_mut().zip(y) {
                    u.extend(v);
                }
            }
        }
        for (a, b) in self.series.iter_mut().zip(other.series) {
            for (x, y) in a.iter_mut().zip(b) {
                x.extend(y);
            }
        }
        if let (Some(a), Some(b)) = (self.per.as_mut(), other.per) {
            a.amplitude.extend(b.amplitude);
            a.coefficients.extend(b.coefficients);
        }
        for (a, b) in self.map_sums.iter_mut().zip(&other.map_sums) {
            for (x, y) in a.iter_mut().zip(b) {
                add_into(x, y);
            }
        }
        Ok(())
    }

    /// Writes the state as NPY files into `dir` (created): `scores.npy`, `sum_amp.npy`,
    /// `sum_line_snr.npy`, and where present `coefs.npy`, `series.npy`,
    /// `per_amplitude.npy`, `per_coefficients.npy`, `map_sums_<k>.npy`; the images go
    /// into `images.json`. Returns every file's SHA-256 (hex) by file name, for
    /// [`AnalysisState::read`].
    pub fn write(&self, dir: &Path, ctx: &RunContext) -> Result<Checksums> {
        let mut sums = Checksums::new();
        let mut npy = |name: &str, shape: &[u64], data: &dyn WriteNpy| -> Result<()> {
            sums.insert(name.to_string(), data.write_npy(&dir.join(name), shape)?);
            Ok(())
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let ni = self.images.len();
        let (off, rows) = row_offsets(&ctx.taps);
        let nb = crate::signal::spectrum::n_bins(ctx.config.stimulus.n_frames);
        let nl = ctx.lines.len();
        let scores: Vec<&[Vec<f64>]> = self.scores.iter().map(Vec::as_slice).collect();
        let scores_sum = crate::io::npy::write_scores(&dir.join("scores.npy"), &scores, ni, rows)?;
        let flat3 = |v: &[Vec<Vec<f64>>], inner: usize| {
            let mut out = vec![f64::NAN; rows * inner];
            for (t, tap) in v.iter().enumerate() {
                for (c, row) in tap.iter().enumerate() {
                    out[(off[t] + c) * inner..][..row.len()].copy_from_slice(row);
                }
            }
            out
        };
        npy("sum_amp.npy", &[rows as u64, nb as u64], &flat3(&self.sum_amp, nb))?;
        npy("sum_line_snr.npy", &[rows as u64, nl as u64], &flat3(&self.sum_line_snr, nl))?;
        if self.coefs.iter().any(|t| !t.is_empty()) {
            let ntl = ctx.test_lines.len();
            let mut out = vec![Complex::new(f32::NAN, f32::NAN); rows * ntl * ni];
            for (t, tap) in self.coefs.iter().enumerate() {
                for (c, ch) in tap.iter().enumerate() {
                    for (l, line) in ch.iter().enumerate() {
                        out[((off[t] + c) * ntl + l) * ni..][..line.len()].copy_from_slice(line);
                    }
                }
            }
            npy("coefs.npy", &[rows as u64, ntl as u64, ni as u64], &out)?;
        }
        if self.series.iter().any(|t| !t.is_empty()) {
            let p = self.series.iter().flatten().flatten().map(Vec::len).next().unwrap_or(0);
            let mut out = vec![f32::NAN; rows * ni * p];
            for (t, tap) in self.series.iter().enumerate() {
                for (c, ch) in tap.iter().enumerate() {
                    for (i, s) in ch.iter().enumerate() {
                        out[((off[t] + c) * ni + i) * p..][..s.len()].copy_from_slice(s);
                    }
                }
            }
            npy("series.npy", &[rows as u64, ni as u64, p as u64], &out)?;
        }
        if let Some(per) = &self.per {
            let shape = [ni as u64, per.rows as u64, nb as u64];
            npy("per_amplitude.npy", &shape, &per.amplitude)?;
            npy("per_coefficients.npy", &shape, &per.coefficients)?;
        }
        for (k, m) in self.map_sums.iter().enumerate() {
            let (c, l, hw) =
                (m.len(), m.first().map_or(0, Vec::len), m.first().and_then(|x| x.first()).map_or(0, Vec::len));
            let flat: Vec<f64> = m.iter().flatten().flatten().copied().collect();
            npy(&format!("map_sums_{k}.npy"), &[c as u64, l as u64, hw as u64], &flat)?;
        }
        sums.insert("scores.npy".into(), scores_sum);
        let p = dir.join("images.json");
        let bytes = serde_json::to_vec(&self.images).expect("serializable");
        std::fs::write(&p, &bytes).map_err(|e| Error::io(&p, e))?;
        sums.insert("images.json".into(), crate::io::data::sha256_hex(&bytes));
        Ok(sums)
    }

    /// Reads a state written by [`AnalysisState::write`] for `ctx`, checking every
    /// file against its checksum in `sums` (what `write` returned) and every array's
    /// shape against `ctx`; a file that is missing from `sums`, a symbolic link, or
    /// changed is an error naming it.
    pub fn read(dir: &Path, ctx: &RunContext, sums: &Checksums) -> Result<AnalysisState> {
        let (p, text) = read_listed(dir, "images.json", sums, 1 << 30)?;
        let images: Vec<ImageSpec> =
            serde_json::from_slice(&text).map_err(|e| Error::Data { path: p.clone(), reason: e.to_string() })?;
        let ni = images.len();
        let nt = ctx.taps.len();
        let chans: Vec<usize> = ctx.taps.iter().map(|t| t.shape[0]).collect();
        let (off, rows) = row_offsets(&ctx.taps);
        let nb = crate::signal::spectrum::n_bins(ctx.config.stimulus.n_frames);
        let nl = ctx.lines.len();
        let sc: Vec<f64> = read_npy(dir, "scores.npy", &[ni, rows], sums)?;
        let scores = (0..nt).map(|t| (0..ni).map(|i| sc[i * rows + off[t]..][..chans[t]].to_vec()).collect()).collect();
        let unflat3 = |v: Vec<f64>, inner: usize| -> Vec<Vec<Vec<f64>>> {
            (0..nt).map(|t| (0..chans[t]).map(|c| v[(off[t] + c) * inner..][..inner].to_vec()).collect()).collect()
        };
        let sum_amp = unflat3(read_npy(dir, "sum_amp.npy", &[rows, nb], sums)?, nb);
        let sum_line_snr = unflat3(read_npy(dir, "sum_line_snr.npy", &[rows, nl], sums)?, nl);
        let ntl = ctx.test_lines.len();
        let coefs = if ctx.config.stats.enabled {
            let v: Vec<Complex<f32>> = read_npy(dir, "coefs.npy", &[rows, ntl, ni], sums)?;
            (0..nt)
                .map(|t| {
                    (0..chans[t])
                        .map(|c| (0..ntl).map(|l| v[((off[t] + c) * ntl + l) * ni..][..ni].to_vec()).collect())
                        .collect()
                })
                .collect()
        } else {
            vec![Vec::new(); nt]
        };
        let series = if ctx.config.stats.enabled && ctx.config.stats.permutations > 0 {
            let p = match ctx.path {
                InferencePath::Folded { period, .. } => period,
                _ => ctx.config.stimulus.n_frames,
            };
            let v: Vec<f32> = read_npy(dir, "series.npy", &[rows, ni, p], sums)?;
            (0..nt)
                .map(|t| {
                    (0..chans[t])
                        .map(|c| (0..ni).map(|i| v[((off[t] + c) * ni + i) * p..][..p].to_vec()).collect())
                        .collect()
                })
                .collect()
        } else {
            vec![Vec::new(); nt]
        };
        let per = if ctx.config.keep_per_image {
            let shape = [ni, rows, nb];
            Some(PerImage {
                rows,
                amplitude: read_npy(dir, "per_amplitude.npy", &shape, sums)?,
                coefficients: read_npy(dir, "per_coefficients.npy", &shape, sums)?,
            })
        } else {
            None
        };
        let n_map_lines = super::maps::map_lines(&ctx.lines).len();
        let map_sums = ctx
            .map_taps
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let (c, hw) = (t.shape[0], t.shape[1] * t.shape[2]);
                let v: Vec<f64> = read_npy(dir, &format!("map_sums_{k}.npy"), &[c, n_map_lines, hw], sums)?;
                Ok((0..c)
                    .map(|ch| (0..n_map_lines).map(|l| v[(ch * n_map_lines + l) * hw..][..hw].to_vec()).collect())
                    .collect())
            })
            .collect::<Result<_>>()?;
        Ok(AnalysisState { images, scores, sum_amp, sum_line_snr, coefs, series, per, map_sums })
    }
}

/// SHA-256 (hex) of every file of a written state (or partial run), by file name.
pub type Checksums = std::collections::BTreeMap<String, String>;

/// An array [`AnalysisState::write`] writes as NPY (any element type).
trait WriteNpy {
    fn write_npy(&self, path: &Path, shape: &[u64]) -> Result<String>;
}

impl<T: crate::io::npy::NpyElem> WriteNpy for Vec<T> {
    fn write_npy(&self, path: &Path, shape: &[u64]) -> Result<String> {
        crate::io::npy::npy(path, shape, self)
    }
}

/// `dir/name` when `sums` records it and it is not a symbolic link.
fn checked_path(dir: &Path, name: &str, sums: &Checksums) -> Result<std::path::PathBuf> {
    let p = dir.join(name);
    let bad = |reason: &str| Error::Data { path: p.clone(), reason: reason.into() };
    if !sums.contains_key(name) {
        return Err(bad("not in the checksums flickertag recorded for this folder"));
    }
    match std::fs::symlink_metadata(&p) {
        Ok(m) if m.file_type().is_symlink() => Err(bad("a symbolic link; flickertag writes regular files here")),
        _ => Ok(p),
    }
}

/// The bytes of `dir/name` (at most `max`), which must be listed in `sums`, not be a
/// symbolic link, and have the SHA-256 listed: a changed or damaged file is an error
/// naming it. Returns its path and bytes.
pub(crate) fn read_listed(dir: &Path, name: &str, sums: &Checksums, max: u64) -> Result<(std::path::PathBuf, Vec<u8>)> {
    let p = checked_path(dir, name, sums)?;
    let bytes = crate::io::data::read_regular_file(&p, max)?;
    let (got, want) = (crate::io::data::sha256_hex(&bytes), &sums[name]);
    if got != *want {
        return Err(Error::Data {
            path: p,
            reason: format!(
                "checksum mismatch (sha256 {got:.12}..., recorded {want:.12}...): changed or damaged after \
                 flickertag wrote it"
            ),
        });
    }
    Ok((p, bytes))
}

fn read_npy<T: npyz::Deserialize>(dir: &Path, name: &str, shape: &[usize], sums: &Checksums) -> Result<Vec<T>> {
    let (p, bytes) = read_listed(dir, name, sums, crate::io::npy::MAX_NPY_BYTES)?;
    crate::io::npy::from_bytes(&bytes, &p, Some(shape))
}

/// Where each tap's channels start in the channel-row arrays, and the number of rows
/// (all taps' channels, one after another, unpadded).
pub fn row_offsets(taps: &[crate::inference::engine::TapInfo]) -> (Vec<usize>, usize) {
    let mut off = Vec::with_capacity(taps.len());
    let mut rows = 0;
    for t in taps {
        off.push(rows);
        rows += t.shape[0];
    }
    (off, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state of `images` with one tap of 2 channels, 3 bins, 1 line, 1 test line:
    /// every per-image value is `v` (image k's scores `v + k`), every sum `v` per image.
    fn state(images: &[usize], v: f64) -> AnalysisState {
        let n = images.len();
        AnalysisState {
            images: images
                .iter()
                .map(|&i| ImageSpec { name: format!("test[{i}]"), index: Some(i), label: None })
                .collect(),
            scores: vec![images.iter().map(|&i| vec![v + i as f64; 2]).collect()],
            sum_amp: vec![vec![vec![v * n as f64; 3]; 2]],
            sum_line_snr: vec![vec![vec![v * n as f64; 1]; 2]],
            coefs: vec![vec![vec![images.iter().map(|&i| Complex::new(i as f32, v as f32)).collect()]; 2]],
            series: vec![vec![images.iter().map(|&i| vec![i as f32; 4]).collect(); 2]],
            per: Some(PerImage {
                rows: 2,
                amplitude: images.iter().flat_map(|&i| vec![i as f32; 2 * 3]).collect(),
                coefficients: images.iter().flat_map(|&i| vec![Complex::new(i as f32, 0.0); 2 * 3]).collect(),
            }),
            map_sums: vec![vec![vec![vec![v * n as f64; 5]; 1]; 2]],
        }
    }

    #[test]
    fn merged_states_equal_the_state_of_all_their_images() {
        // Two parts of images 0..5 with the same per-image value: their merge is the
        // state of the five images (sums added, per-image rows appended in order).
        let mut a = state(&[0, 1], 1.0);
        a.merge(state(&[2, 3, 4], 1.0)).unwrap();
        assert_eq!(a, state(&[0, 1, 2, 3, 4], 1.0));
    }

    #[test]
    fn states_of_different_shapes_are_refused() {
        let mut a = state(&[0], 1.0);
        let mut b = state(&[1], 1.0);
        b.sum_amp[0].pop();
        let e = a.merge(b).unwrap_err().to_string();
        assert!(e.contains("cannot be merged"), "{e}");
        // Nothing was appended.
        assert_eq!(a, state(&[0], 1.0));
    }

    #[test]
    fn row_offsets_run_over_each_taps_channels_in_turn() {
        let tap = |c: usize| TapInfo {
            tap: crate::inference::model::TapPoint {
                name: format!("t{c}"),
                ..crate::inference::model::demo_model(1).unwrap().taps[0].clone()
            },
            shape: vec![c, 1, 1],
        };
        assert_eq!(row_offsets(&[tap(16), tap(32), tap(10)]), (vec![0, 16, 48], 58));
        assert_eq!(row_offsets(&[]), (vec![], 0));
    }
}
