//! [`Plan::execute`]: a planned run into its run folder (the analysis, then each extra
//! as a further analysis of the same images where it needs one).

use std::path::Path;
use std::time::Instant;

use crate::analysis::{self, AnalysisConfig, AnalysisState, CheckpointFn, ImageSpec, RunContext, RunControl, Segment};
use crate::error::{Error, Result};
use crate::inference::model::Model;
use crate::io::data::Image;
use crate::report::folder::RunFolder;
use crate::run::shard::{Checkpoint, PartialInfo, Shard};

use super::plan::{ControlResult, Extras, FrozenRow, Hooks, Outcome, Plan, RunResult};

impl RunResult {
    /// Writes the run folder into `out` (what `flickertag analyze --out` writes: the
    /// tables, the arrays, the figures, `report.html`, the extras), atomically: it
    /// appears complete or not at all; an earlier run there is replaced only with
    /// `force`, other files never. Returns the folder.
    pub fn save(&self, out: &Path, force: bool) -> Result<std::path::PathBuf> {
        let folder = RunFolder::create(out, force, "analyze")?;
        self.write_into(folder.path())?;
        folder.commit()
    }

    fn write_into(&self, dir: &Path) -> Result<()> {
        // The extras first: the report draws the figures of those it finds.
        self.extras.write(dir)?;
        crate::report::run_folder::write_run_folder(&self.analysis, &self.first, dir).map(|_| ())
    }
}

impl Plan {
    /// Runs the plan on `model` and the images `specs` (loaded by `load`) into the run
    /// folder `out` (claimed before any work; an earlier run there is replaced only
    /// with `force`, other files never). An interrupted or failed run leaves no
    /// temporary folder behind; with checkpoints, the last one stays for `resume`.
    pub fn execute(
        &self,
        model: &Model,
        specs: &[ImageSpec],
        load: &dyn Fn(&ImageSpec) -> Result<Image>,
        out: &Path,
        force: bool,
        hooks: &mut Hooks,
    ) -> Result<Outcome> {
        if specs.is_empty() {
            return Err(Error::param("images", "at least one image", 0));
        }
        if let Some(shard) = self.shard {
            let range = shard.range(specs.len());
            let stage = format!("shard {shard}");
            let progress = &mut *hooks.progress;
            let mut p = |d: usize, t: usize| progress(&stage, d, t);
            let folder =
                crate::run::shard::run_shard(model, &self.config, specs, load, out, force, shard, &mut p, hooks.stop)?;
            return Ok(Outcome::Shard { shard, range, folder });
        }
        // The control network is built before any work: a model without weights to
        // change is refused first.
        let control_model = self.control_network(model, specs, load)?;
        let folder = RunFolder::create(out, force, "analyze")?;
        let ck = Checkpoint::of(out)?;
        let run = self.compute(model, control_model.as_ref(), specs, load, Some(&ck), hooks)?;
        run.write_into(folder.path())?;
        let out = folder.commit()?;
        ck.remove()?;
        Ok(Outcome::Run { run: Box::new(run), folder: out })
    }

    /// Runs the plan on `model` and the images `specs` in memory, writing nothing (no
    /// checkpoints either): [`RunResult::save`] writes the run folder later. A plan
    /// with `resume` or a shard needs a folder and is refused.
    pub fn execute_in_memory(
        &self,
        model: &Model,
        specs: &[ImageSpec],
        load: &dyn Fn(&ImageSpec) -> Result<Image>,
        hooks: &mut Hooks,
    ) -> Result<RunResult> {
        if specs.is_empty() {
            return Err(Error::param("images", "at least one image", 0));
        }
        if self.resume {
            return Err(Error::param("resume", "a run folder holding the checkpoint: pass <out PATH>", "no out"));
        }
        if let Some(shard) = self.shard {
            return Err(Error::param("shard", "a run folder for the partial run: pass <out PATH>", shard));
        }
        let control_model = self.control_network(model, specs, load)?;
        self.compute(model, control_model.as_ref(), specs, load, None, hooks)
    }

    /// The control network of the plan, put at the trained network's operating point
    /// ([`crate::inference::calibrate`]), built before any other work (a model
    /// without weights to change is refused first). Calibration frames: four frames of
    /// the stimulus (at quarters of the slowest tag's period) of up to
    /// [`CALIBRATION_IMAGES`] CIFAR-10 test images that are not analysed (the first
    /// such indices), or, for images that are not from the test set, of the analysed
    /// images themselves (said in `control.json`).
    fn control_network(
        &self,
        model: &Model,
        specs: &[ImageSpec],
        load: &dyn Fn(&ImageSpec) -> Result<Image>,
    ) -> Result<Option<ControlNetwork>> {
        let Some((kind, seed, _)) = self.control else { return Ok(None) };
        model.require_frames_alone("a control network's calibration")?;
        let stale = model.control(kind, seed)?;
        let analysed: std::collections::HashSet<usize> = specs.iter().filter_map(|s| s.index).collect();
        let held_out: Vec<ImageSpec> = if specs.iter().all(|s| s.index.is_some()) {
            (0..10_000usize)
                .filter(|i| !analysed.contains(i))
                .map(|i| ImageSpec { name: format!("test[{i}]"), index: Some(i), label: None })
                .take(CALIBRATION_IMAGES)
                .collect()
        } else {
            Vec::new()
        };
        // Held-out test images where the loader has them (the embedded copy holds only
        // the paper's ten), else the analysed images.
        let (images, calibrated_on) = match held_out.iter().map(load).collect::<Result<Vec<Image>>>() {
            Ok(imgs) if !imgs.is_empty() => {
                let on = format!("{} CIFAR-10 test images not analysed (first: {})", imgs.len(), held_out[0].name);
                (imgs, on)
            }
            _ => {
                let imgs = specs.iter().take(CALIBRATION_IMAGES).map(load).collect::<Result<Vec<Image>>>()?;
                let on = format!("{} of the analysed images (no held-out images available)", imgs.len());
                (imgs, on)
            }
        };
        let pre = model.input_preprocess()?;
        let [c, h, w] = model.input_shape;
        let plan = self.config.stimulus.plan(h, w)?;
        self.config.stimulus.modulation.check_input(c, pre.grayscale)?;
        // Quarters of the slowest tag's period (0, 5, 10, 15 at 6 Hz and 120 fps): each
        // tag's factor takes four different values.
        let st = &self.config.stimulus;
        let slowest = st.freqs.iter().copied().fold(f64::INFINITY, f64::min);
        let quarter = if slowest.is_finite() && slowest > 0.0 { st.fps / (4.0 * slowest) } else { 1.0 };
        let phases: Vec<usize> =
            (0..4).map(|k| ((k as f64 * quarter).round() as usize).min(st.n_frames.saturating_sub(1))).collect();
        let mut frames = Vec::new();
        for img in images {
            let img = model.fit_image(img, "calibration image")?;
            frames.extend(plan.frames_at(&img, pre, &phases)?);
        }
        let n = frames.len() / model.input_shape.iter().product::<usize>();
        let point = model.operating_point(&frames, n)?;
        let (calibrated, convs) = stale.calibrated_at(&point, &frames, n)?;
        let calibrated_on = match convs.is_empty() {
            true => "not calibrated: no convolution to calibrate".to_string(),
            false => calibrated_on,
        };
        let (t, s, c) =
            (model.frozen_units(&frames, n)?, stale.frozen_units(&frames, n)?, calibrated.frozen_units(&frames, n)?);
        let calibration = t
            .iter()
            .zip(&s)
            .zip(&c)
            .map(|((t, s), c)| FrozenRow {
                relu: t.tensor.clone(),
                units: t.units,
                trained: t.frozen,
                control_stale: s.frozen,
                control: c.frozen,
            })
            .collect();
        Ok(Some(ControlNetwork {
            model: Model { name: stale.name.clone(), ..calibrated },
            calibration,
            calibrated_on,
            frames,
            n,
            point,
        }))
    }

    /// The analysis (checkpointed into `ck` when given, resumed from it with `resume`)
    /// and its extras.
    fn compute(
        &self,
        model: &Model,
        control_model: Option<&ControlNetwork>,
        specs: &[ImageSpec],
        load: &dyn Fn(&ImageSpec) -> Result<Image>,
        ck: Option<&Checkpoint>,
        hooks: &mut Hooks,
    ) -> Result<RunResult> {
        let digest = crate::run::shard::images_digest(specs);
        let start = Instant::now();
        let resumed = match ck {
            Some(ck) if self.resume => ck.load()?,
            Some(ck) => {
                ck.remove()?;
                None
            }
            None => None,
        };
        let (resumed, mut segments) = match (resumed, ck) {
            (Some((info, state, _)), Some(ck)) => {
                let this = model.info();
                let other = if info.context.model != this {
                    Some(format!(
                        "a checkpoint of {}, not of this run's model {}",
                        info.context.model.describe(),
                        this.describe()
                    ))
                } else if info.images_digest != digest {
                    Some("a checkpoint of another image list".to_string())
                } else {
                    None
                };
                if let Some(other) = other {
                    return Err(Error::param(
                        "resume",
                        format!(
                            "a checkpoint of the same model and images (remove {} to start afresh)",
                            ck.path().display()
                        ),
                        other,
                    ));
                }
                (hooks.note)(&format!("resuming after {} of {} images", state.images.len(), specs.len()));
                (Some((info.context, state)), info.segments)
            }
            _ => {
                if self.resume {
                    (hooks.note)("no checkpoint to resume: starting from the first image");
                }
                (None, Vec::new())
            }
        };
        // The first image as the model sees it (resized and cropped): what the stimulus
        // figure shows and `first_image.npy` holds ([3, H, W] of the model's input); the
        // file's own size is not kept (an 8192 x 8192 image held 805 MB through the run).
        let first = model.fit_image(load(&specs[0])?, &specs[0].name)?;
        // This start's segment counts the images after those of earlier starts.
        let done_before = resumed.as_ref().map_or(0, |(_, st)| st.images.len());
        let mut save = |ctx: &RunContext, st: &AnalysisState| {
            let Some(ck) = ck else { return Ok(()) };
            let mut segs = segments.clone();
            segs.push(Segment::new("run", st.images.len() - done_before, start.elapsed().as_secs_f64()));
            let info = PartialInfo {
                schema: crate::run::shard::PARTIAL_SCHEMA,
                flickertag_version: env!("CARGO_PKG_VERSION").into(),
                shard: Shard { index: 0, count: 1 },
                total_images: specs.len(),
                images_digest: digest.clone(),
                first_index: 0,
                context: ctx.clone(),
                segments: segs,
            };
            ck.save(&info, st, &first)
        };
        let period = self.checkpoint_every.filter(|_| ck.is_some());
        let control = RunControl {
            resume: resumed,
            checkpoint: period.map(|e| (&mut save as CheckpointFn, e)),
            first_index: 0,
            stop: hooks.stop,
        };
        let (ctx, state) = {
            let progress = &mut *hooks.progress;
            let mut p = |d: usize, t: usize| progress("images", d, t);
            analysis::run_state(model, &self.config, specs, load, &mut p, control)?
        };
        segments.push(Segment::new("run", state.images.len() - done_before, start.elapsed().as_secs_f64()));
        let analysis = analysis::finish(&ctx, state, segments)?;
        let extras = self.extras(model, control_model, &analysis, specs, load, hooks)?;
        Ok(RunResult { analysis, extras, first })
    }

    /// The extras, each a further analysis of the same images where it needs one.
    fn extras(
        &self,
        model: &Model,
        control_model: Option<&ControlNetwork>,
        result: &analysis::Analysis,
        specs: &[ImageSpec],
        load: &dyn Fn(&ImageSpec) -> Result<Image>,
        hooks: &mut Hooks,
    ) -> Result<Extras> {
        let stop = hooks.stop;
        let mut again = |m: &Model, cfg: &AnalysisConfig, stage: &str| {
            let progress = &mut *hooks.progress;
            let mut p = |d: usize, t: usize| progress(stage, d, t);
            let control = RunControl { stop, ..RunControl::default() };
            let t = Instant::now();
            let (ctx, st) = analysis::run_state(m, cfg, specs, load, &mut p, control)?;
            let n = st.images.len();
            analysis::finish(&ctx, st, vec![Segment::new(stage, n, t.elapsed().as_secs_f64())])
        };
        let mut extras = Extras::default();
        if let (Some(cn), Some((kind, seed, count))) = (control_model, self.control) {
            use crate::analysis::networks;
            // The controls need their scores and spectra, not their statistics.
            let mut cfg = self.config.clone();
            cfg.stats.enabled = false;
            cfg.keep_per_image = false;
            let c = again(&cn.model, &cfg, &format!("control 1/{count} images"))?;
            let rows = crate::importance::control::compare(&result.layers, &c.layers);
            let mut stats = vec![networks::statistics(&c)];
            drop(c);
            // The other controls, one at a time (only their statistics are kept).
            for k in 1..count {
                let stale = model.control(kind, seed.wrapping_add(k as u64))?;
                let (m, _) = stale.calibrated_at(&cn.point, &cn.frames, cn.n)?;
                stats.push(networks::statistics(&again(&m, &cfg, &format!("control {}/{count} images", k + 1))?));
            }
            extras.control = Some(ControlResult {
                name: cn.model.name.clone(),
                seed,
                rows,
                calibration: cn.calibration.clone(),
                calibrated_on: cn.calibrated_on.clone(),
                networks: networks::compare(result, &stats),
            });
        }
        if self.bootstrap > 0 {
            extras.bootstrap = Some(analysis::bootstrap::intervals(result, self.bootstrap, self.config.stats.seed)?);
        }
        if !self.noise_sweep.is_empty() {
            let mut rows = Vec::new();
            for (k, &sigma) in self.noise_sweep.iter().enumerate() {
                let det = if k == 0 {
                    analysis::ftest::detection(result, 0.05)?
                } else {
                    let mut cfg = self.config.clone();
                    cfg.noise = cfg.noise.map(|n| analysis::InputNoise { sigma, ..n });
                    analysis::ftest::detection(&again(model, &cfg, &format!("sigma {sigma}"))?, 0.05)?
                };
                rows.extend(det.into_iter().map(|d| analysis::ftest::SweepRow {
                    sigma,
                    tap: d.tap,
                    line: d.line,
                    detection_rate: d.rate,
                }));
            }
            extras.noise_sweep = Some(rows);
        }
        if !self.contrast_sweep.is_empty() {
            let mut rows = Vec::new();
            for &depth in &self.contrast_sweep {
                if depth == self.config.stimulus.depth {
                    rows.extend(analysis::contrast::rows(result));
                } else {
                    let mut cfg = self.config.clone();
                    cfg.stimulus.depth = depth;
                    cfg.stats.enabled = false;
                    cfg.keep_per_image = false;
                    rows.extend(analysis::contrast::rows(&again(model, &cfg, &format!("depth {depth}"))?));
                }
            }
            extras.contrast = Some(rows);
        }
        if self.harmonic_sum {
            extras.harmonic_sum = Some(analysis::harmonic_sum::harmonic_sums(result)?);
            // Cross-validated where the halves can be formed from kept spectra.
            if result.per_image.is_some() && result.images.len() >= 4 {
                let (splits, seed) = (self.config.stats.splits.clamp(1, 50), self.config.stats.seed);
                extras.harmonic_crossval = Some(analysis::harmonic_crossval::harmonic_crossval(result, splits, seed)?);
            }
        }
        if self.region_swap {
            let mut cfg = self.config.clone();
            cfg.stimulus.freqs.reverse();
            cfg.stimulus.phases.reverse();
            let b = again(model, &cfg, "swapped images")?;
            extras.region_swap = Some(analysis::swap::region_swap(result, &b)?);
        }
        Ok(extras)
    }
}

/// Images (four frames each) a control network is calibrated on.
pub const CALIBRATION_IMAGES: usize = 32;

/// A control network put at the trained network's operating point, with what that did.
struct ControlNetwork {
    /// The calibrated control.
    model: Model,
    /// Per ReLU, never-switching units: trained, stale control, calibrated control.
    calibration: Vec<FrozenRow>,
    /// Which images it was calibrated on.
    calibrated_on: String,
    /// The calibration frames (`n` frames), for the other control networks.
    frames: Vec<f32>,
    /// Number of calibration frames.
    n: usize,
    /// The trained network's operating point on them (measured once for every control).
    point: crate::inference::calibrate::OperatingPoint,
}
