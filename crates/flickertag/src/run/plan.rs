//! The one lowering step of a run, in the manner of ripgrep's low-level → high-level
//! arguments: [`AnalysisOptions::plan`] turns options into a [`Plan`] that holds every
//! derived decision (the analysis configuration, which extras run, whether per-image
//! spectra are kept for them, checkpoints, the shard), and [`Plan::execute`] runs it
//! into a run folder ([`super::execute`]): the analysis, the control network, the region swap, the
//! bootstrap, the noise sweep, checkpoints and resume, or one shard. The CLI and Python
//! only build options, show progress and render errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::analysis::{self, AnalysisConfig};
use crate::error::{Error, Result};
use crate::importance::control::ControlRow;
use crate::inference::model::control::Control;
use crate::io::data::Image;
use crate::run::shard::Shard;

use super::options::AnalysisOptions;

/// A run with every decision made: what [`Plan::execute`] does, nothing left to derive.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The main analysis's configuration (per-image spectra kept when an extra needs them).
    pub config: AnalysisConfig,
    /// Notes for the user (statistics skipped above their image limit, ...).
    pub notes: Vec<String>,
    /// Control networks: kind, first seed, how many.
    pub control: Option<(Control, u64, usize)>,
    /// Run the region-swapped stimulus too.
    pub region_swap: bool,
    /// Bootstrap resamples (0: none).
    pub bootstrap: usize,
    /// Noise levels of the F-test sweep; the first is the main run's (empty: no sweep).
    pub noise_sweep: Vec<f32>,
    /// Modulation depths of the contrast sweep (empty: no sweep).
    pub contrast_sweep: Vec<f32>,
    /// Compute the harmonic-sum response.
    pub harmonic_sum: bool,
    /// Checkpoint period (None: no checkpoints).
    pub checkpoint_every: Option<Duration>,
    /// Continue from a checkpoint.
    pub resume: bool,
    /// Only this shard, as a partial run.
    pub shard: Option<Shard>,
}

impl AnalysisOptions {
    /// Validates every option and lowers them into the [`Plan`] of a run over
    /// `n_images` images: this is the only place where options become decisions.
    pub fn plan(&self, n_images: usize) -> Result<Plan> {
        let (mut config, mut notes) = self.resolve(n_images)?;
        if self.bootstrap > 0 && n_images < analysis::bootstrap::MIN_IMAGES {
            notes.push(format!(
                "bootstrap: {n_images} images; below {} the 95 % intervals cover the mean less than 93 % of the time \
                 for skewed values (docs/statistics.md): read them as narrower than they should be, or use more \
                 images",
                analysis::bootstrap::MIN_IMAGES
            ));
        }
        if self.noise_sigma.len() > 1 {
            if let Some(s) = self.noise_sigma.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
                return Err(Error::param("noise-sigma", "positive values to sweep", s));
            }
        }
        let noise_sweep = if self.noise_sigma.len() > 1 { self.noise_sigma.clone() } else { vec![] };
        // The F-test, the bootstrap and the swap read every image's spectrum.
        if !noise_sweep.is_empty() || self.bootstrap > 0 || self.region_swap {
            config.keep_per_image = true;
        }
        if !self.contrast_sweep.is_empty() {
            analysis::contrast::check_depths(&self.contrast_sweep)?;
        }
        if self.harmonic_sum && config.noise.is_none() {
            return Err(Error::param(
                "harmonic-sum",
                "an input noise floor: pass <noise-sigma S> with S > 0 (without noise every z is float32 rounding)",
                "no noise-sigma",
            ));
        }
        if self.control.is_some() && self.controls == 0 {
            return Err(Error::param("controls", "at least 1 control network", 0));
        }
        if self.region_swap && config.stimulus.freqs.len() != 2 {
            return Err(Error::param("region-swap", "two tag frequencies", config.stimulus.freqs.len()));
        }
        if !(self.checkpoint_every >= 0.0 && self.checkpoint_every.is_finite()) {
            return Err(Error::param("checkpoint-every", "seconds, 0 or more", self.checkpoint_every));
        }
        if self.shard.is_some() {
            let extra = [
                (self.region_swap, "region-swap"),
                (self.control.is_some(), "control"),
                (self.bootstrap > 0, "bootstrap"),
                (!noise_sweep.is_empty(), "noise-sigma"),
                (!self.contrast_sweep.is_empty(), "contrast-sweep"),
                (self.harmonic_sum, "harmonic-sum"),
                (self.resume, "resume"),
            ];
            if let Some((_, what)) = extra.iter().find(|(on, _)| *on) {
                return Err(Error::param(what, "a whole run (not with shard)", "shard"));
            }
        }
        Ok(Plan {
            config,
            notes,
            control: self.control.map(|k| (k, self.control_seed, self.controls)),
            region_swap: self.region_swap,
            bootstrap: self.bootstrap,
            noise_sweep,
            contrast_sweep: self.contrast_sweep.clone(),
            harmonic_sum: self.harmonic_sum,
            checkpoint_every: (self.checkpoint_every > 0.0).then(|| Duration::from_secs_f64(self.checkpoint_every)),
            resume: self.resume,
            shard: self.shard,
        })
    }
}

pub use crate::inference::engine::StopFn;

/// What a face sees of a running plan.
pub struct Hooks<'a> {
    /// `(stage, done, total)` after each image of a stage (`images`, `control images`,
    /// `swapped images`, `sigma 0.1`, `shard 1/4`).
    pub progress: &'a mut dyn FnMut(&str, usize, usize),
    /// A message for the user (resuming, no checkpoint to resume, ...).
    pub note: &'a mut dyn FnMut(&str),
    /// Checked between inference batches (Ctrl-C in Python, ...).
    pub stop: Option<&'a StopFn>,
}

impl Hooks<'_> {
    /// Hooks that show nothing and never stop.
    pub fn silent<'a>(progress: &'a mut dyn FnMut(&str, usize, usize), note: &'a mut dyn FnMut(&str)) -> Hooks<'a> {
        Hooks { progress, note, stop: None }
    }
}

/// The control network's comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlResult {
    /// The control network's name (`<model>.<kind>`).
    pub name: String,
    /// Its seed.
    pub seed: u64,
    /// One row per layer (`control.csv`).
    pub rows: Vec<ControlRow>,
    /// The operating point, per ReLU (`control_calibration.csv`): the share of units
    /// that never switched on the calibration frames in the trained network, in the
    /// control with the trained normalization statistics, and in the calibrated control
    /// that was analysed ([`crate::inference::calibrate`]).
    pub calibration: Vec<FrozenRow>,
    /// Which images the control was calibrated on (a sentence).
    pub calibrated_on: String,
    /// Trained against all the control networks, network by network
    /// (`control_networks.csv`).
    pub networks: Vec<crate::analysis::networks::NetworkRow>,
}

/// One ReLU's share of never-switching units, trained and control.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrozenRow {
    /// The ReLU's output tensor.
    pub relu: String,
    /// Its units (channel × position).
    pub units: usize,
    /// Share frozen in the trained network.
    pub trained: f64,
    /// Share frozen in the control under the trained statistics (before calibration).
    pub control_stale: f64,
    /// Share frozen in the calibrated control (the one analysed).
    pub control: f64,
}

/// What a plan produced beside the main analysis (each `None` when not asked for).
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Trained against control, per layer.
    pub control: Option<ControlResult>,
    /// Per-filter region-swap test (`region_swap.csv`).
    pub region_swap: Option<Vec<analysis::swap::SwapFilter>>,
    /// Bootstrap intervals (`bootstrap.csv`).
    pub bootstrap: Option<Vec<analysis::bootstrap::Interval>>,
    /// F-test detection rate per noise level, tap and line (`noise_sweep.csv`).
    pub noise_sweep: Option<Vec<analysis::ftest::SweepRow>>,
    /// Per depth, filter and region, the response at the tag (`contrast_response.csv`).
    pub contrast: Option<Vec<analysis::contrast::ContrastRow>>,
    /// The harmonic-sum response: the candidate harmonics per layer and tag, and per
    /// filter and tag its sum and whether it responds (`harmonic_sum_harmonics.csv`,
    /// `harmonic_sum.csv`).
    pub harmonic_sum: Option<(Vec<analysis::harmonic_sum::HarmonicRow>, Vec<analysis::harmonic_sum::FilterSum>)>,
    /// The harmonic selection cross-validated over halves of the images
    /// (`harmonic_sum_crossval.csv`; with the harmonic sum, per-image spectra and at least
    /// 4 images).
    pub harmonic_crossval: Option<Vec<analysis::harmonic_crossval::HarmonicSplit>>,
}

/// A whole run held in memory: the analysis, its extras, and the first image (on which
/// the run folder's stimulus and map figures are drawn). Python's `Analysis` holds one;
/// `RunResult::save` (with the `report` feature) writes the run folder on demand.
pub struct RunResult {
    /// The analysis.
    pub analysis: analysis::Analysis,
    /// The extras.
    pub extras: Extras,
    /// The first image of the run.
    pub first: Image,
}

impl RunResult {
    /// Every table of the run folder, rendered in memory by file name:
    /// [`crate::report::tables`] (`summary.json`, `filters.csv`, `sweep.csv`,
    /// `layers.csv`, `lines.csv`), then [`Extras::files`]. The run folder holds exactly
    /// these bytes.
    pub fn tables(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut t = crate::report::tables(&self.analysis);
        t.extend(self.extras.files());
        t
    }
}

/// A finished plan.
pub enum Outcome {
    /// A whole run: the result, and the committed run folder holding it.
    Run {
        /// The analysis and its extras.
        run: Box<RunResult>,
        /// The run folder.
        folder: PathBuf,
    },
    /// One shard, written as a partial run into `folder`.
    Shard {
        /// The shard.
        shard: Shard,
        /// Its image range in the whole list.
        range: std::ops::Range<usize>,
        /// The partial run's folder.
        folder: PathBuf,
    },
}

impl Extras {
    /// The extras for a terminal, a few lines each (empty without extras).
    pub fn summary(&self, a: &analysis::Analysis) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        if let Some(c) = &self.control {
            let _ =
                writeln!(s, "trained against control ({}): layer, mean score, Cliff's delta, Mann-Whitney p", c.name);
            for r in &c.rows {
                let _ = writeln!(
                    s,
                    "  {:<18} {:>8.3} vs {:>8.3}  delta {:>6.3}  p {:.2e}",
                    r.tap, r.trained_mean, r.control_mean, r.cliffs_delta, r.p_value
                );
            }
        }
        if let Some(rows) = &self.noise_sweep {
            let mut sigmas: Vec<f32> = rows.iter().map(|r| r.sigma).collect();
            sigmas.dedup();
            for sigma in sigmas {
                let mean = |label: &str| {
                    let v: Vec<f64> =
                        rows.iter().filter(|r| r.sigma == sigma && r.line == label).map(|r| r.detection_rate).collect();
                    v.iter().sum::<f64>() / v.len().max(1) as f64
                };
                let _ = writeln!(
                    s,
                    "noise sigma {sigma}: F-test detection rate (alpha 0.05), mean over taps: f1 {:.3}, f2 {:.3}, f2-f1 {:.3}, f1+f2 {:.3}",
                    mean("f1"),
                    mean("f2"),
                    mean("f2-f1"),
                    mean("f1+f2")
                );
            }
        }
        if let Some(rows) = &self.contrast {
            let _ = writeln!(s, "contrast sweep: mean over every filter of the amplitude (SNR) at each tag");
            let mut depths: Vec<f32> = rows.iter().map(|r| r.depth).collect();
            depths.dedup();
            for d in depths {
                let _ = write!(s, "  depth {d:<6}");
                for region in &a.plan.region_names {
                    let of: Vec<_> = rows.iter().filter(|r| r.depth == d && &r.region == region).collect();
                    let amp = analysis::contrast::finite_mean(of.iter().map(|r| r.amplitude));
                    let snr = analysis::contrast::finite_mean(of.iter().map(|r| r.snr));
                    let _ = write!(s, "  {region} {amp:.4} ({snr:.2})");
                }
                let _ = writeln!(s);
            }
        }
        if let Some((_, sums)) = &self.harmonic_sum {
            let _ = writeln!(
                s,
                "harmonic sum (FPVS: the layer's significant harmonics, Holm p <= 0.05): filters responding per tag"
            );
            for t in &a.taps {
                let _ = write!(s, "  {:<18}", t.tap.name);
                for region in &a.plan.region_names {
                    let of: Vec<_> = sums.iter().filter(|r| r.tap == t.tap.name && &r.region == region).collect();
                    let n = of.iter().filter(|r| r.responds).count();
                    let _ = write!(
                        s,
                        " {region} {n} of {} ({} harmonics)",
                        of.len(),
                        of.first().map_or(0, |r| r.harmonics)
                    );
                }
                let _ = writeln!(s);
            }
        }
        if let Some(rows) = &self.harmonic_crossval {
            let splits = rows.iter().map(|r| r.split).max().map_or(0, |m| m + 1);
            let same = rows.iter().filter(|r| r.harmonics_a == r.harmonics_b).count();
            let mr = |f: fn(&analysis::harmonic_crossval::HarmonicSplit) -> f64| {
                crate::importance::crossval::mean_and_range(rows.iter().map(f))
            };
            let (k, k_lo, k_hi) = mr(|r| r.kappa);
            let (o, o_lo, o_hi) = mr(|r| r.kappa_own);
            let _ = writeln!(
                s,
                "harmonic selection cross-validated ({splits} splits into halves A, B): B's own harmonics equal A's \
                 in {same} of {} (split, tap, tag); responders on A and on B with A's harmonics agree, kappa \
                 {k:.3} [{k_lo:.3}, {k_hi:.3}]; on B with A's against B's own harmonics {o:.3} [{o_lo:.3}, {o_hi:.3}]",
                rows.len()
            );
        }
        if let Some(rows) = &self.region_swap {
            let _ = writeln!(
                s,
                "region swap (paired t across images, BH q <= 0.05): filters following the region / the frequency"
            );
            for t in &a.taps {
                let of: Vec<_> = rows.iter().filter(|r| r.tap == t.tap.name).collect();
                let reg = of.iter().filter(|r| r.follows_region).count();
                let freq = of.iter().filter(|r| r.follows_frequency).count();
                let _ = writeln!(s, "  {:<18} {reg} / {freq} of {}", t.tap.name, of.len());
            }
        }
        s
    }

    /// The extras' files, rendered in memory by file name: `control.csv`,
    /// `control_calibration.csv`, `control_networks.csv` and `control.json`, `bootstrap.csv`, `noise_sweep.csv`, `region_swap.csv`, `contrast_response.csv`,
    /// `harmonic_sum.csv`, `harmonic_sum_harmonics.csv` and `harmonic_sum_crossval.csv`
    /// (those asked for).
    pub fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut files = Vec::new();
        if let Some(c) = &self.control {
            files.push(("control.csv", crate::importance::control::to_csv(&c.rows).into_bytes()));
            let mut t = crate::io::table::Table::new(&[
                "relu",
                "units",
                "frozen_trained",
                "frozen_control_stale",
                "frozen_control",
            ]);
            for r in &c.calibration {
                use crate::io::table::num;
                t.row([r.relu.clone(), num(r.units), num(r.trained), num(r.control_stale), num(r.control)]);
            }
            files.push(("control_calibration.csv", t.into_string().into_bytes()));
            files.push(("control_networks.csv", crate::analysis::networks::to_csv(&c.networks).into_bytes()));
            let v = serde_json::json!({"control": c.name, "seed": c.seed, "calibrated_on": c.calibrated_on,
                "layers": c.rows, "calibration": c.calibration, "networks": c.networks});
            files.push(("control.json", serde_json::to_vec_pretty(&v).expect("serializable")));
        }
        if let Some(b) = &self.bootstrap {
            files.push(("bootstrap.csv", analysis::bootstrap::to_csv(b).into_bytes()));
        }
        if let Some(s) = &self.noise_sweep {
            files.push(("noise_sweep.csv", analysis::ftest::sweep_csv(s).into_bytes()));
        }
        if let Some(r) = &self.region_swap {
            files.push(("region_swap.csv", analysis::swap::to_csv(r).into_bytes()));
        }
        if let Some(r) = &self.contrast {
            files.push(("contrast_response.csv", analysis::contrast::to_csv(r).into_bytes()));
        }
        if let Some((rows, sums)) = &self.harmonic_sum {
            let (f, h) = analysis::harmonic_sum::to_csv(rows, sums);
            files.push(("harmonic_sum.csv", f.into_bytes()));
            files.push(("harmonic_sum_harmonics.csv", h.into_bytes()));
        }
        if let Some(rows) = &self.harmonic_crossval {
            files.push(("harmonic_sum_crossval.csv", analysis::harmonic_crossval::to_csv(rows).into_bytes()));
        }
        files
    }

    /// Writes [`Extras::files`] into a run folder.
    pub fn write(&self, dir: &Path) -> Result<()> {
        for (name, bytes) in self.files() {
            let p = dir.join(name);
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        }
        Ok(())
    }
}
