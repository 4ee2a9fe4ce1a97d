//! The analysis pipeline: stimulus → inference → spectra → SNR → importance.
//!
//! For each image the tag plan's frames go through the model with per-channel mean
//! taps; each channel's time series (`n_frames` values) gives a spectrum, SNR and a
//! score. A network sees each frame independently, so when the stimulus repeats with
//! period P frames and N is a multiple of P (80 of 240 frames for 6/7.5 Hz at
//! 120 fps), only one period is needed and the series is its repetition
//! ([`InferencePath::Folded`]). Within the period, frames whose region factors are
//! equal float32 numbers are identical inputs and run once (49 of the 80 with the
//! paper defaults: `sin(θ) = sin(π − θ)`; [`crate::signal::stimulus::TagPlan::distinct_frames`]).
//! `--no-fold` and input noise run all N frames ([`InferencePath::Full`]).

mod accumulate;
pub mod bootstrap;
mod config;
pub mod contrast;
mod derived;
pub mod ftest;
pub mod harmonic_crossval;
pub mod harmonic_sum;
pub mod maps;
pub mod networks;
pub mod oddball;
pub mod state;
pub mod swap;

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
pub use crate::importance::score;
pub use crate::importance::stats::StatsConfig;
use crate::importance::stats::StatsInput;
use crate::importance::{aggregate, LayerImportance, LayerScores};
use crate::inference::engine::{EngineConfig, Session, TapInfo};
use crate::inference::model::Model;
use crate::io::data::Image;
use crate::signal::lines::{catalogue, Line};
use crate::signal::stimulus::{FrameSchedule, TagPlan};
pub use config::{
    AnalysisConfig, Fold, ImageSpec, InferencePath, InputNoise, PerImage, TapSelection, DEFAULT_THRESHOLD,
    MAX_FRAME_BYTES, MAX_PERMUTATIONS, MAX_SPLITS,
};
pub use state::{AnalysisState, RunContext};

/// The result of an analysis.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The model analysed.
    pub model: crate::inference::model::ModelInfo,
    /// The configuration used.
    pub config: AnalysisConfig,
    /// The validated stimulus plan.
    pub plan: TagPlan,
    /// The recorded taps, with shapes.
    pub taps: Vec<TapInfo>,
    /// The images.
    pub images: Vec<ImageSpec>,
    /// The line catalogue.
    pub lines: Vec<Line>,
    /// How inference ran.
    pub path: InferencePath,
    /// Scores per layer, `[image][channel]`.
    pub scores: Vec<LayerScores>,
    /// Importance per layer.
    pub layers: Vec<LayerImportance>,
    /// Mean amplitude spectrum over images, `[tap][channel][bin]`.
    pub mean_amplitude: Vec<Vec<Vec<f64>>>,
    /// Mean SNR (per the SNR config) at each catalogued line, `[tap][channel][line]`.
    pub line_snr: Vec<Vec<Vec<f64>>>,
    /// Per-image spectra, if kept.
    pub per_image: Option<PerImage>,
    /// Per-neuron SNR maps of the `maps` taps.
    pub maps: Vec<maps::SnrMap>,
    /// Across-image statistics, if enabled.
    pub stats: Option<crate::importance::stats::StatsResult>,
    /// Frames run through the network per image.
    pub frames_per_image: usize,
    /// Total work time, seconds: the sum of the [`Analysis::segments`]' wall times (for
    /// a run made in one piece, its wall time).
    pub seconds: f64,
    /// The pieces of work that made the run, in order: one for a run made in one go;
    /// each shard of a merged run (and the merge); each start of a resumed run.
    pub segments: Vec<Segment>,
}

/// One piece of the work that made a run: a shard, a resumed stretch, a merge.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// What it was: `run`, `shard 2/4`, `merge`, or `run` again for each resumed start.
    pub part: String,
    /// Images analysed in it (0 for a merge).
    pub images: usize,
    /// Its wall time, seconds.
    pub seconds: f64,
}

impl Segment {
    /// A segment of `images` images that took `seconds`.
    pub fn new(part: impl Into<String>, images: usize, seconds: f64) -> Segment {
        Segment { part: part.into(), images, seconds }
    }
}

/// Selects taps of the model per `sel` ([`Model::select_taps`]), with the shapes the
/// model's probe run found when it was loaded.
pub fn select_taps(model: &Model, sel: &TapSelection) -> Result<Vec<TapInfo>> {
    Ok(model
        .select_taps(&sel.kinds, &sel.names)?
        .into_iter()
        .map(|t| TapInfo { shape: t.chw.to_vec(), tap: t })
        .collect())
}

/// Runs the analysis of `images` (loaded on demand by `load`). `progress(done, total)`
/// is called after each image.
pub fn analyze(
    model: &Model,
    cfg: &AnalysisConfig,
    images: &[ImageSpec],
    load: &dyn Fn(&ImageSpec) -> Result<Image>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Analysis> {
    let start = Instant::now();
    let (ctx, state) = run_state(model, cfg, images, load, progress, RunControl::default())?;
    let n = state.images.len();
    finish(&ctx, state, vec![Segment::new("run", n, start.elapsed().as_secs_f64())])
}

/// A checkpoint callback: called with the run's context and its state so far.
pub type CheckpointFn<'a> = &'a mut dyn FnMut(&RunContext, &AnalysisState) -> Result<()>;

/// How a run proceeds beyond its images.
#[derive(Default)]
pub struct RunControl<'a> {
    /// A checkpoint to continue from: its context must be this run's (model, effective
    /// options, taps, lines) and its images the first of `images`, which are skipped.
    pub resume: Option<(RunContext, AnalysisState)>,
    /// Called with the state so far whenever this much time has passed since the last
    /// call (not after the last image).
    pub checkpoint: Option<(CheckpointFn<'a>, Duration)>,
    /// Position of `images[0]` in the whole image list (a shard's offset): image `i`'s
    /// input noise is seeded by its position in the whole list.
    pub first_index: usize,
    /// Asked between inference batches; true stops the run with [`Error::Interrupted`].
    pub stop: Option<&'a crate::inference::engine::StopFn>,
}

/// The fold over images without its final step: the run's context and the state of
/// `images` ([`state::AnalysisState`]), which [`finish`] turns into an [`Analysis`],
/// and which merges with the states of other images.
pub fn run_state(
    model: &Model,
    cfg: &AnalysisConfig,
    images: &[ImageSpec],
    load: &dyn Fn(&ImageSpec) -> Result<Image>,
    progress: &mut dyn FnMut(usize, usize),
    mut control: RunControl,
) -> Result<(RunContext, AnalysisState)> {
    cfg.validate()?;
    if images.is_empty() {
        return Err(Error::param("images", "at least one image", 0));
    }
    let pre = model.input_preprocess()?;
    let [c, h, w] = model.input_shape;
    let plan = cfg.stimulus.plan(h, w)?;
    cfg.stimulus.modulation.check_input(c, pre.grayscale)?;
    let n = cfg.stimulus.n_frames;
    // Input noise differs in every frame: nothing repeats. Frames of a model with time
    // interact: each response depends on the frames before it, so none is reused.
    let reuse = cfg.fold == Fold::Auto && cfg.noise.is_none() && model.time.is_none();
    if cfg.warmup.is_some() && !matches!(model.time, Some(crate::inference::model::Time::Recurrent { .. })) {
        return Err(Error::param(
            "warmup",
            "no warm-up: it is for a model with a recurrent state",
            format!("{} for `{}`, which has none", cfg.warmup.unwrap_or(0), model.name),
        ));
    }
    let period = plan.period().filter(|&p| reuse && p < n && n.is_multiple_of(p));
    let series_len = period.unwrap_or(n);
    let schedule = if reuse {
        plan.distinct_frames(series_len)
    } else {
        FrameSchedule { run: (0..n).collect(), row_of: (0..n).collect() }
    };
    let frames_per_image = schedule.run.len();
    let frame_bytes = (frames_per_image as u64).saturating_mul((c * h * w) as u64).saturating_mul(4);
    if frame_bytes > MAX_FRAME_BYTES {
        return Err(Error::param(
            "n-frames",
            format!("at most {MAX_FRAME_BYTES} bytes of frames per image for a {c}x{h}x{w} input"),
            format!("{} ({frames_per_image} frames to run, {frame_bytes} bytes)", cfg.stimulus.n_frames),
        ));
    }
    let path = match period {
        Some(period) => InferencePath::Folded { period, distinct: frames_per_image },
        None if frames_per_image < n => InferencePath::Distinct { distinct: frames_per_image },
        None => InferencePath::Full,
    };
    tracing::info!("inference path: {path:?} ({frames_per_image} frames per image)");
    // One probe run gives the shapes of the recorded taps and of the mapped ones.
    let taps = select_taps(model, &cfg.taps)?;
    if taps.is_empty() {
        return Err(Error::param("taps", "a selection that matches at least one tap", format!("{:?}", cfg.taps)));
    }
    // BatchNorm means whose conv is recorded follow from it; only the others run in the graph.
    let derive_plan = derived::plan(model, &taps);
    let refs: Vec<_> = taps.iter().zip(&derive_plan).filter(|(_, d)| d.is_none()).map(|(t, _)| &t.tap).collect();
    let map_taps = if cfg.maps.is_empty() {
        vec![]
    } else {
        select_taps(model, &TapSelection { kinds: vec![], names: cfg.maps.clone() })?
    };
    let map_refs: Vec<_> = map_taps.iter().map(|t| &t.tap).collect();
    let mut session = Session::for_outputs(model, &refs, &map_refs, &cfg.engine)?;
    session.set_warmup(cfg.warmup);
    let tag_bins = plan.bins.clone();
    let lines = catalogue(&tag_bins, cfg.stimulus.fps, n, cfg.max_order);
    let mut cfg = cfg.clone();
    if cfg.snr.exclude_grid {
        let g = crate::signal::lines::grid_bins(&tag_bins).max(1);
        cfg.snr.grid_bins = (0..=n / 2).step_by(g).collect();
    }
    let cfg = &cfg;
    let test_lines: Vec<usize> = (0..lines.len()).filter(|&l| lines[l].order <= 2).collect();
    let ctx = RunContext {
        model: model.info(),
        // Threads and batch size do not change a result: parts run with other settings merge.
        config: AnalysisConfig { engine: EngineConfig::default(), ..cfg.clone() },
        taps: taps.clone(),
        map_taps: map_taps.clone(),
        lines: lines.clone(),
        test_lines: test_lines.clone(),
        path,
        frames_per_image,
    };
    let mut acc = accumulate::Accumulator::new(&taps, &lines, &test_lines, cfg, n, series_len, images.len());
    let mut map_acc = maps::MapAccumulator::new(&map_taps, &lines);
    let mut done = 0;
    if let Some((rctx, st)) = control.resume.take() {
        if rctx != ctx {
            return Err(Error::param(
                "resume",
                "a checkpoint of a run with the same model, options and taps",
                "a checkpoint of another run",
            ));
        }
        if st.images.len() > images.len() || st.images[..] != images[..st.images.len()] {
            return Err(Error::param("resume", "a checkpoint of the same images", "a checkpoint of other images"));
        }
        done = st.images.len();
        for (m, s) in map_acc.maps.iter_mut().zip(&st.map_sums) {
            m.snr = s.clone();
        }
        acc.resume(st);
        progress(done, images.len());
    }
    let mut last = Instant::now();
    // Inference uses both cores inside ONNX Runtime; then spectra, SNR and
    // accumulation use both cores too (see `accumulate`).
    for (i, spec) in images.iter().enumerate().skip(done) {
        let img = model.fit_image(load(spec)?, &spec.name)?;
        let mut frames = plan.frames_at(&img, pre, &schedule.run)?;
        if let Some(noise) = cfg.noise {
            add_noise(&mut frames, noise, (control.first_index + i) as u64);
        }
        let outs = session.run_all(&frames, frames_per_image, control.stop)?;
        let outs = derived::repeat_rows(derived::expand(outs, &derive_plan), &schedule.row_of);
        acc.add(&outs);
        map_acc.add(&outs[1 + acc.n_taps()..], &lines, &cfg.snr, n);
        progress(i + 1, images.len());
        if let Some((f, every)) = control.checkpoint.as_mut() {
            if last.elapsed() >= *every && i + 1 < images.len() {
                // The state is lent to the checkpoint and given back: no copy of it.
                let sums = map_acc.maps.iter_mut().map(|m| std::mem::take(&mut m.snr)).collect();
                let mut st = acc.take_state(&images[..=i], sums);
                let saved = f(&ctx, &st);
                for (m, s) in map_acc.maps.iter_mut().zip(std::mem::take(&mut st.map_sums)) {
                    m.snr = s;
                }
                acc.resume(st);
                saved?;
                last = Instant::now();
            }
        }
    }
    let sums = map_acc.maps.into_iter().map(|m| m.snr).collect();
    Ok((ctx, acc.finish(images, sums)))
}

/// Turns the state of a run (one run, a resumed one, or merged shards) into its
/// [`Analysis`]: means, importance, statistics. `segments` are the pieces of work that
/// made it ([`Analysis::segments`]; their total is [`Analysis::seconds`]).
pub fn finish(ctx: &RunContext, state: AnalysisState, segments: Vec<Segment>) -> Result<Analysis> {
    let ni = state.images.len();
    if ni == 0 {
        return Err(Error::param("images", "at least one image", 0));
    }
    let cfg = &ctx.config;
    let [_, h, w] = ctx.model.input_shape;
    let plan = cfg.stimulus.plan(h, w)?;
    let n = cfg.stimulus.n_frames;
    let scores: Vec<LayerScores> = ctx
        .taps
        .iter()
        .zip(state.scores)
        .map(|(t, s)| LayerScores { tap: t.tap.name.clone(), conv_ordinal: t.tap.conv_ordinal, scores: s })
        .collect();
    let mean = |v: Vec<Vec<Vec<f64>>>| -> Vec<Vec<Vec<f64>>> {
        v.into_iter().map(|t| t.into_iter().map(|c| c.into_iter().map(|x| x / ni as f64).collect()).collect()).collect()
    };
    let mean_amp = mean(state.sum_amp);
    let line_snr = mean(state.sum_line_snr);
    let mut layers: Vec<LayerImportance> = scores.iter().map(|s| aggregate(s, cfg.threshold)).collect();
    let n_tags = cfg.stimulus.freqs.len();
    for (l, amp) in layers.iter_mut().zip(&mean_amp) {
        for (f, a) in l.filters.iter_mut().zip(amp) {
            f.response = crate::importance::response::response(a, &ctx.lines, n_tags);
        }
    }
    let stats = cfg.stats.enabled.then(|| {
        let input = StatsInput {
            snr: &cfg.snr,
            threshold: cfg.threshold,
            stats: &cfg.stats,
            lines: &ctx.lines,
            test_lines: &ctx.test_lines,
            scores: &scores,
            mean_amp: &mean_amp,
            coefs: &state.coefs,
            series: &state.series,
            n_frames: n,
        };
        crate::importance::stats::run(&input)
    });
    Ok(Analysis {
        model: ctx.model.clone(),
        config: cfg.clone(),
        plan,
        taps: ctx.taps.clone(),
        images: state.images,
        lines: ctx.lines.clone(),
        path: ctx.path,
        scores,
        layers,
        mean_amplitude: mean_amp,
        line_snr,
        per_image: state.per,
        stats,
        maps: maps::means(&ctx.map_taps, &ctx.lines, &state.map_sums, ni),
        frames_per_image: ctx.frames_per_image,
        seconds: segments.iter().map(|s| s.seconds).sum(),
        segments,
    })
}

impl Analysis {
    /// Position of a tap (by name, or `#ordinal` for a conv tap) on the tap axis of the
    /// per-tap results (`layers`, `scores`, `mean_amplitude`, `line_snr`).
    pub fn tap_index(&self, tap: &str) -> Option<usize> {
        match tap.strip_prefix('#').map(str::parse::<usize>) {
            Some(Ok(o)) => self.taps.iter().position(|t| t.tap.conv_ordinal == Some(o)),
            _ => self.taps.iter().position(|t| t.tap.name == tap),
        }
    }

    /// A tap's importance, by name or `#ordinal`.
    pub fn layer(&self, tap: &str) -> Option<&LayerImportance> {
        self.tap_index(tap).map(|t| &self.layers[t])
    }

    /// A filter's mean amplitude spectrum over images, `[bin]`, by tap name and channel.
    pub fn mean_spectrum(&self, tap: &str, channel: usize) -> Option<&[f64]> {
        self.tap_index(tap).and_then(|t| self.mean_amplitude[t].get(channel)).map(Vec::as_slice)
    }

    /// Re-aggregates the stored scores against another threshold.
    pub fn with_threshold(&self, threshold: f64) -> Vec<LayerImportance> {
        self.scores.iter().map(|s| aggregate(s, threshold)).collect()
    }
}

/// Adds seeded Gaussian noise to the frames of image number `image`.
fn add_noise(frames: &mut [f32], noise: InputNoise, image: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(noise.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ image);
    for x in frames.iter_mut() {
        *x += noise.sigma * rng.sample::<f32, _>(rand_distr::StandardNormal);
    }
}
