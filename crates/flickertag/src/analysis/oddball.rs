//! Category selectivity by the oddball paradigm ([`crate::signal::oddball`]): for each
//! class `c`, `streams` seeded image streams with every n-th image from `c`; every
//! filter's response at the oddball frequency `F / n` and its harmonics says whether it
//! tells `c` apart from the other classes.
//!
//! Per class and filter, the amplitude spectrum (conventions of
//! [`crate::signal::spectrum`]) of the filter's spatial mean over each stream is
//! averaged over the streams. Every response of the network lies on multiples of the
//! oddball bin `b = N / (L n)` (the base harmonics are multiples of `n b`); the noise
//! around bin `k` is read at the offsets `j` with `2 ≤ |j| ≤ neighbours` (the adjacent
//! bins skipped) that do not land on a multiple of `b` (so no response line is counted
//! as noise) nor on DC or below (the first harmonics have fewer noise bins below).
//!
//! The candidate harmonics are the first `harmonics` multiples `h b` that are not base
//! harmonics. Per layer and class, harmonic `h` is *significant* when the layer's mean
//! spectrum for that class (over its filters) has `z = (A[h b] − mean_j A[h b + j]) /
//! sd_j A[h b + j] > 1.64` (FPVS practice; `sd` the sample standard deviation): a
//! class's result does not depend on which other classes were run. The choice is made
//! on the same data it then sums, so the null control (oddballs from every class)
//! measures the whole procedure's false-positive rate. A filter's oddball response to `c` is then the
//! sum over the significant harmonics `S = Σ_h A[h b]`, baseline-corrected by the mean
//! of the same sums at each noise offset `N_j = Σ_h A[h b + j]`: `response = S −
//! mean(N)`, `z = response / sd(N)`. A filter is *selective* for `c` at
//! `z > `[`SELECTIVE_Z`]; a sum below the rounding floor of the filter's own spectrum
//! ([`crate::importance::response`]) has no z. A network sees each frame alone, so the base images' variety
//! is the only noise: the null "the filter does not tell `c` apart" can be true.

use serde::{Deserialize, Serialize};

use crate::analysis::{select_taps, ImageSpec, TapSelection};
use crate::error::{Error, Result};
use crate::importance::response::ROUNDING_FLOOR;
use crate::inference::engine::{EngineConfig, Session, StopFn, TapInfo};
use crate::inference::model::{Model, ModelInfo};
use crate::io::data::Image;
use crate::signal::oddball::{stream_images, OddballStimulus, OddballTiming};
use crate::signal::spectrum::{amplitude_into, n_bins, Fft};

/// The name of the null control's pseudo-class in every table.
pub const NULL_CLASS: &str = "(none)";
/// z above which a layer's oddball harmonic is significant for a class (one-tailed p < 0.05).
pub const HARMONIC_Z: f64 = 1.64;
/// z above which a filter is selective for a class (one-tailed p < 0.01).
pub const SELECTIVE_Z: f64 = 2.32;
/// Most bytes of mean spectra held (`classes × filters × bins × 4`).
pub const MAX_SPECTRA_BYTES: u64 = 2 << 30;
/// Most bytes of frames run in one inference call.
const MAX_CHUNK_BYTES: usize = 64 << 20;

/// Everything that defines an oddball analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OddballConfig {
    /// The streams' timing.
    pub stimulus: OddballStimulus,
    /// The oddball classes (indices into the pool; empty: every class).
    pub classes: Vec<usize>,
    /// Streams per class.
    pub streams: usize,
    /// Also run the null control: streams whose oddballs are drawn from every class
    /// like the base images (the class [`NULL_CLASS`]), so that the share of filters
    /// called selective there is the method's false-positive rate on this network.
    pub null_control: bool,
    /// Seed of the streams' images.
    pub seed: u64,
    /// Oddball harmonics considered (base harmonics skipped).
    pub harmonics: usize,
    /// Noise bins are read up to this many bins either side.
    pub neighbours: usize,
    /// Which taps.
    pub taps: TapSelection,
    /// Inference settings (not part of the result: threads and batch change nothing).
    #[serde(skip)]
    pub engine: EngineConfig,
}

impl Default for OddballConfig {
    fn default() -> Self {
        OddballConfig {
            stimulus: OddballStimulus::default(),
            classes: vec![],
            streams: 10,
            null_control: true,
            seed: 0,
            harmonics: 10,
            neighbours: 10,
            taps: TapSelection::default(),
            engine: EngineConfig::default(),
        }
    }
}

/// Labelled images the streams are drawn from: per class, its name and images.
pub struct ImagePool {
    /// Class names, in class order.
    pub classes: Vec<String>,
    /// Per class, its images.
    pub images: Vec<Vec<ImageSpec>>,
}

/// One oddball harmonic of one layer and class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Harmonic {
    /// Tap.
    pub tap: String,
    /// Oddball class.
    pub class: String,
    /// FFT bin.
    pub bin: usize,
    /// Frequency, Hz.
    pub freq: f64,
    /// z of the layer's mean spectrum for the class there.
    pub z: f64,
    /// Whether it enters the filters' sums (`z > HARMONIC_Z`).
    pub significant: bool,
}

/// One filter's oddball response to one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OddballFilter {
    /// Tap.
    pub tap: String,
    /// Channel.
    pub channel: usize,
    /// Oddball class.
    pub class: String,
    /// Baseline-corrected amplitude summed over the layer's significant harmonics.
    pub response: f64,
    /// Standard deviation of the noise sums.
    pub noise_sd: f64,
    /// `response / noise_sd`; NaN without a significant harmonic, without noise, or
    /// when the summed amplitude is at the float32 rounding floor (below
    /// [`ROUNDING_FLOOR`] times the spectrum's largest amplitude, per harmonic).
    pub z: f64,
}

/// Per layer and class: how many filters are selective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OddballLayer {
    /// Tap.
    pub tap: String,
    /// Oddball class.
    pub class: String,
    /// Filters of the layer.
    pub filters: usize,
    /// Filters with `z > SELECTIVE_Z`.
    pub selective: usize,
    /// Mean z over the filters (finite values).
    pub mean_z: f64,
    /// Significant harmonics of the layer.
    pub harmonics: usize,
}

/// The result of an oddball analysis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OddballResult {
    /// The model.
    pub model: ModelInfo,
    /// The configuration.
    pub config: OddballConfig,
    /// The timing.
    pub timing: OddballTiming,
    /// The classes analysed (names), then [`NULL_CLASS`] with the null control.
    pub classes: Vec<String>,
    /// The recorded taps.
    pub taps: Vec<TapInfo>,
    /// Per layer and class, the candidate harmonics.
    pub harmonics: Vec<Harmonic>,
    /// Per filter and class (`oddball.csv`), tap-major then class then channel.
    pub filters: Vec<OddballFilter>,
    /// Per layer and class (`oddball_layers.csv`).
    pub layers: Vec<OddballLayer>,
    /// Mean amplitude spectrum of each layer (mean over its filters), per class:
    /// `[class][tap][bin]`.
    pub layer_spectra: Vec<Vec<Vec<f64>>>,
    /// Frames run through the network.
    pub frames_run: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Noise offsets around any response bin: `2 ≤ |j| ≤ neighbours`, off the grid of
/// multiples of `grid` (near DC, only those above bin 0 are read).
pub fn noise_offsets(grid: usize, neighbours: usize) -> Vec<i64> {
    let g = grid.max(1) as i64;
    (-(neighbours as i64)..=neighbours as i64).filter(|j| j.abs() >= 2 && j.rem_euclid(g) != 0).collect()
}

/// `(sum at the bins, mean and sample sd of the sums at each offset)` of `amp`: the
/// offsets that keep every bin inside `1..amp.len()` (DC is never noise).
fn summed(amp: &[f64], bins: &[usize], offsets: &[i64]) -> (f64, f64, f64) {
    let s: f64 = bins.iter().map(|&b| amp[b]).sum();
    let inside = |j: i64| bins.iter().all(|&b| (1..amp.len() as i64).contains(&(b as i64 + j)));
    let noise: Vec<f64> = offsets
        .iter()
        .filter(|&&j| inside(j))
        .map(|&j| bins.iter().map(|&b| amp[(b as i64 + j) as usize]).sum::<f64>())
        .collect();
    let (mean, sd) = crate::importance::mean_sd(&noise);
    (s, mean, sd)
}

/// The candidate oddball harmonic bins: multiples of the oddball bin that are not base
/// harmonics and whose noise window fits below Nyquist, at most `count`.
pub fn candidate_bins(t: &OddballTiming, n_frames: usize, count: usize, neighbours: usize) -> Vec<usize> {
    let top = n_bins(n_frames) - 1;
    (1..)
        .map(|h| h * t.oddball_bin)
        .take_while(|&b| b + neighbours <= top)
        .filter(|b| !b.is_multiple_of(t.base_bin))
        .take(count)
        .collect()
}

impl OddballConfig {
    fn check(&self, pool: &ImagePool) -> Result<(OddballTiming, Vec<usize>)> {
        let t = self.stimulus.timing()?;
        if !(1..=10_000).contains(&self.streams) {
            return Err(Error::param("streams", "1 to 10000 streams per class", self.streams));
        }
        if !(1..=1000).contains(&self.harmonics) {
            return Err(Error::param("harmonics", "1 to 1000 oddball harmonics", self.harmonics));
        }
        if !(3..=1000).contains(&self.neighbours) {
            return Err(Error::param("neighbours", "3 to 1000 noise bins each side", self.neighbours));
        }
        if noise_offsets(t.oddball_bin, self.neighbours).len() < 4 {
            return Err(Error::param(
                "neighbours",
                format!("enough bins off the response grid (every {} bins) to read the noise", t.oddball_bin),
                self.neighbours,
            ));
        }
        if candidate_bins(&t, self.stimulus.n_frames, self.harmonics, self.neighbours).is_empty() {
            return Err(Error::param(
                "n-frames",
                "a window whose first oddball harmonic has its noise bins below Nyquist",
                self.stimulus.n_frames,
            ));
        }
        let nc = pool.classes.len();
        if nc < 2 || pool.images.len() != nc {
            return Err(Error::param("classes", "an image pool of at least two classes", nc));
        }
        let classes: Vec<usize> = if self.classes.is_empty() { (0..nc).collect() } else { self.classes.clone() };
        if let Some(&c) = classes.iter().find(|&&c| c >= nc) {
            return Err(Error::param("classes", format!("class indices 0..{nc} ({})", pool.classes.join(", ")), c));
        }
        if let Some(&c) = classes.iter().find(|&&c| pool.images[c].is_empty()) {
            return Err(Error::param("classes", "classes with images in the pool", &pool.classes[c]));
        }
        Ok((t, classes))
    }
}

/// Runs the oddball analysis of `model` on streams drawn from `pool` (images loaded by
/// `load`). `progress` is called with `(streams done, streams in all)`.
pub fn oddball(
    model: &Model,
    cfg: &OddballConfig,
    pool: &ImagePool,
    load: &dyn Fn(&ImageSpec) -> Result<Image>,
    progress: &mut dyn FnMut(usize, usize),
    stop: Option<&StopFn>,
) -> Result<OddballResult> {
    let start = std::time::Instant::now();
    let (t, classes) = cfg.check(pool)?;
    let n = cfg.stimulus.n_frames;
    let nb = n_bins(n);
    let taps = select_taps(model, &cfg.taps)?;
    if taps.is_empty() {
        return Err(Error::param("taps", "a selection that matches at least one tap", format!("{:?}", cfg.taps)));
    }
    let rows: usize = taps.iter().map(|t| t.shape.first().copied().unwrap_or(1)).sum();
    let bytes = (classes.len() as u64).saturating_mul(rows as u64).saturating_mul(nb as u64).saturating_mul(4);
    if bytes > MAX_SPECTRA_BYTES {
        return Err(Error::param(
            "classes",
            format!("at most {MAX_SPECTRA_BYTES} bytes of spectra (fewer classes, taps or frames)"),
            format!("{} classes x {rows} filters x {nb} bins", classes.len()),
        ));
    }
    let refs: Vec<_> = taps.iter().map(|t| &t.tap).collect();
    let mut session = Session::for_model(model, &refs, false, &cfg.engine)?;
    let pre = model.input_preprocess()?;
    let (run, row_of) = t.distinct();
    let frame_len: usize = model.input_shape.iter().product();
    let per_call = (MAX_CHUNK_BYTES / (4 * frame_len * run.len()).max(1)).max(1);
    let sizes: Vec<usize> = pool.images.iter().map(Vec::len).collect();
    // The null control runs last, as class None.
    let runs: Vec<Option<usize>> = classes.iter().map(|&c| Some(c)).chain(cfg.null_control.then_some(None)).collect();
    // [class][row][bin], mean over streams.
    let mut spectra = vec![vec![vec![0f32; nb]; rows]; runs.len()];
    let mut series = vec![vec![0f64; n]; rows];
    let (mut fft, mut coef, mut amp) = (Fft::new(), Vec::new(), Vec::new());
    let total = runs.len() * cfg.streams;
    let mut frames_run = 0;
    for (ci, &class) in runs.iter().enumerate() {
        for s in 0..cfg.streams {
            let key = class.map_or(usize::MAX / 2, |c| c * 100_003);
            let seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(key.wrapping_add(s) as u64);
            let stream = stream_images(class, &sizes, &t, cfg.stimulus.every, seed)?;
            for (chunk_i, chunk) in stream.chunks(per_call).enumerate() {
                let mut frames = Vec::with_capacity(chunk.len() * run.len() * frame_len);
                for &(c, i) in chunk {
                    let spec = &pool.images[c][i];
                    let x = model.fit_image(load(spec)?, &spec.name)?.normalized(pre);
                    for &j in &run {
                        let s = t.contrast(j);
                        frames.extend(x.iter().map(|v| v * s));
                    }
                }
                let k = chunk.len() * run.len();
                let outs = session.run_all(&frames, k, stop)?;
                frames_run += k;
                let mut row = 0;
                for out in &outs[1..] {
                    let c = out.data.len() / k;
                    for ch in 0..c {
                        for (m, _) in chunk.iter().enumerate() {
                            let image = chunk_i * per_call + m;
                            for (j, &r) in row_of.iter().enumerate() {
                                series[row + ch][image * t.frames_per_image + j] =
                                    out.data[(m * run.len() + r) * c + ch] as f64;
                            }
                        }
                    }
                    row += c;
                }
            }
            for (r, x) in series.iter().enumerate() {
                fft.folded_rfft_into(x, n, &mut coef);
                amplitude_into(&coef, n, &mut amp);
                for (acc, a) in spectra[ci][r].iter_mut().zip(&amp) {
                    *acc += (*a / cfg.streams as f64) as f32;
                }
            }
            progress(ci * cfg.streams + s + 1, total);
        }
    }
    let class_names: Vec<String> =
        runs.iter().map(|c| c.map_or(NULL_CLASS.to_string(), |c| pool.classes[c].clone())).collect();
    let scored = score(&taps, &spectra, &class_names, &t, cfg)?;
    Ok(OddballResult {
        model: model.info(),
        config: cfg.clone(),
        timing: t,
        classes: class_names,
        taps,
        harmonics: scored.0,
        filters: scored.1,
        layers: scored.2,
        layer_spectra: scored.3,
        frames_run,
        seconds: start.elapsed().as_secs_f64(),
    })
}

type Scored = (Vec<Harmonic>, Vec<OddballFilter>, Vec<OddballLayer>, Vec<Vec<Vec<f64>>>);

/// Harmonics, filter and layer tables from the mean spectra `[class][row][bin]`.
fn score(
    taps: &[TapInfo],
    spectra: &[Vec<Vec<f32>>],
    classes: &[String],
    t: &OddballTiming,
    cfg: &OddballConfig,
) -> Result<Scored> {
    let offsets = noise_offsets(t.oddball_bin, cfg.neighbours);
    let candidates = candidate_bins(t, cfg.stimulus.n_frames, cfg.harmonics, cfg.neighbours);
    let nb = spectra.first().and_then(|c| c.first()).map_or(0, Vec::len);
    let (mut harmonics, mut filters, mut layers) = (Vec::new(), Vec::new(), Vec::new());
    let mut layer_spectra = vec![Vec::new(); classes.len()];
    let mut row = 0;
    for tap in taps {
        let c = tap.shape.first().copied().unwrap_or(1);
        let name = &tap.tap.name;
        // The layer's mean spectrum per class.
        for (ci, per_class) in spectra.iter().enumerate() {
            let mut m = vec![0f64; nb];
            for spectrum in &per_class[row..row + c] {
                for (acc, &a) in m.iter_mut().zip(spectrum) {
                    *acc += a as f64 / c as f64;
                }
            }
            layer_spectra[ci].push(m);
        }
        for (ci, class) in classes.iter().enumerate() {
            let layer_mean = layer_spectra[ci].last().expect("pushed above");
            let mut significant = Vec::new();
            for &b in &candidates {
                let (s, mean, sd) = summed(layer_mean, &[b], &offsets);
                let z = (s - mean) / sd;
                let sig = z > HARMONIC_Z;
                if sig {
                    significant.push(b);
                }
                harmonics.push(Harmonic {
                    tap: name.clone(),
                    class: class.clone(),
                    bin: b,
                    freq: b as f64 * cfg.stimulus.fps / cfg.stimulus.n_frames as f64,
                    z,
                    significant: sig,
                });
            }
            let mut zs = Vec::with_capacity(c);
            for ch in 0..c {
                let amp: Vec<f64> = spectra[ci][row + ch].iter().map(|&a| a as f64).collect();
                let (response, noise_sd, z) = if significant.is_empty() {
                    (f64::NAN, f64::NAN, f64::NAN)
                } else {
                    let (s, mean, sd) = summed(&amp, &significant, &offsets);
                    // At the float32 rounding floor of its own spectrum a sum is no
                    // response, and its z a ratio of rounding errors.
                    let top = amp.iter().copied().fold(0.0, f64::max);
                    let floor = ROUNDING_FLOOR * top * significant.len() as f64;
                    let z = if sd > 0.0 && s > floor { (s - mean) / sd } else { f64::NAN };
                    (s - mean, sd, z)
                };
                zs.push(z);
                filters.push(OddballFilter {
                    tap: name.clone(),
                    channel: ch,
                    class: class.clone(),
                    response,
                    noise_sd,
                    z,
                });
            }
            layers.push(OddballLayer {
                tap: name.clone(),
                class: class.clone(),
                filters: c,
                selective: zs.iter().filter(|&&z| z > SELECTIVE_Z).count(),
                mean_z: crate::analysis::contrast::finite_mean(zs.iter().copied()),
                harmonics: significant.len(),
            });
        }
        row += c;
    }
    Ok((harmonics, filters, layers, layer_spectra))
}

impl OddballResult {
    /// The z of every filter for class `class` (an index into [`OddballResult::classes`]),
    /// per tap: `[tap][channel]`.
    pub fn z_of_class(&self, class: usize) -> Vec<Vec<f64>> {
        let name = &self.classes[class];
        self.taps
            .iter()
            .map(|t| self.filters.iter().filter(|f| f.tap == t.tap.name && &f.class == name).map(|f| f.z).collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_offsets_skip_the_adjacent_bins_and_the_response_grid() {
        assert_eq!(noise_offsets(4, 10), vec![-10, -9, -7, -6, -5, -3, -2, 2, 3, 5, 6, 7, 9, 10]);
        let t = OddballStimulus::default().timing().unwrap();
        let c = candidate_bins(&t, 400, 10, 10);
        // 1.2 Hz harmonics on bins 4, 8, ...; 20, 40, ... are the base's.
        assert_eq!(c, vec![4, 8, 12, 16, 24, 28, 32, 36, 44, 48]);
    }

    #[test]
    fn summed_response_is_the_excess_over_the_mean_of_the_offset_sums() {
        let mut amp = vec![1.0; 40];
        amp[4] = 3.0;
        amp[8] = 5.0;
        amp[6] = 2.0; // a noise bin (offset 2 of bin 4, offset -2 of bin 8)
        let offsets = noise_offsets(4, 3); // -3, -2, 2, 3
        let (s, mean, sd) = summed(&amp, &[4, 8], &offsets);
        assert_eq!(s, 8.0);
        // Sums at offsets -3, -2, 2, 3: 2, 3 (bin 6 for h = 8), 3 (bin 6 for h = 4), 2.
        assert_eq!(mean, 2.5);
        assert!((sd - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
