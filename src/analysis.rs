//! The analysis pipeline: stimulus → inference → spectra → SNR → importance.
//!
//! For each image the tag plan's frames go through the model with per-channel mean
//! taps; each channel's time series (`n_frames` values) gives a spectrum, SNR and a
//! score. A network sees each frame independently, so when the stimulus repeats with
//! period P frames and N is a multiple of P (80 of 240 frames for 6/7.5 Hz at
//! 120 fps), only the P unique frames are run and the series is their repetition
//! ([`InferencePath::Folded`]); otherwise all N frames are run ([`InferencePath::Full`]).

use std::time::Instant;

use num_complex::Complex;
use serde::Serialize;

use crate::data::Image;
use crate::engine::{probe_taps, EngineConfig, Session, TapInfo};
use crate::error::{Error, Result};
use crate::importance::{aggregate, LayerImportance, LayerScores};
use crate::lines::{catalogue, Line};
use crate::model::{Model, TapKind};
use crate::snr::{authors_score, SnrConfig};
use crate::spectrum::{amplitude, n_bins, tile, Fft};
use crate::stimulus::{StimulusConfig, TagPlan};

/// Which taps to record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TapSelection {
    /// Kinds of node to record (default: conv).
    pub kinds: Vec<TapKind>,
    /// Explicit taps (dotted names, `#ordinal`, or tensor names); overrides `kinds` when non-empty.
    pub names: Vec<String>,
}

impl Default for TapSelection {
    fn default() -> Self {
        TapSelection { kinds: vec![TapKind::Conv], names: vec![] }
    }
}

/// Whether to fold the frames by the stimulus period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fold {
    /// Fold whenever exact (N a multiple of the period).
    Auto,
    /// Always run all N frames.
    Never,
}

/// Everything an analysis needs besides the model and the images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisConfig {
    /// The stimulus.
    pub stimulus: StimulusConfig,
    /// The SNR definition.
    pub snr: SnrConfig,
    /// Importance threshold on the per-filter score (dB for `authors`).
    pub threshold: f64,
    /// Taps to record.
    pub taps: TapSelection,
    /// Inference settings.
    #[serde(skip)]
    pub engine: EngineConfig,
    /// Period folding.
    pub fold: Fold,
    /// Highest line order catalogued.
    pub max_order: u32,
    /// Keep every image's spectra and complex coefficients (memory grows with images).
    pub keep_per_image: bool,
}

/// The documented default threshold on the `authors` score, dB (see the README's
/// reproduction section for how it was chosen).
pub const DEFAULT_THRESHOLD: f64 = 1.5;

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            stimulus: StimulusConfig::default(),
            snr: SnrConfig::preset("authors").expect("built-in preset"),
            threshold: DEFAULT_THRESHOLD,
            taps: TapSelection::default(),
            engine: EngineConfig::default(),
            fold: Fold::Auto,
            max_order: 20,
            keep_per_image: true,
        }
    }
}

/// An image to analyse.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageSpec {
    /// Display name (`test[3]`, a file name).
    pub name: String,
    /// CIFAR-10 index if from the data set.
    pub index: Option<usize>,
    /// Class label if known.
    pub label: Option<u8>,
}

/// How inference ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "path", rename_all = "lowercase")]
pub enum InferencePath {
    /// Only the unique frames of one period were run.
    Folded {
        /// Period, frames.
        period: usize,
    },
    /// All frames were run.
    Full,
}

/// Per-image spectra, `[image][tap][channel][bin]` flattened with channels padded to
/// the widest tap (padding is NaN).
#[derive(Debug, Clone, PartialEq)]
pub struct PerImage {
    /// Widest tap's channel count (the padded axis).
    pub max_channels: usize,
    /// Amplitudes `|X|/N`.
    pub amplitude: Vec<f32>,
    /// Complex coefficients `X/N`.
    pub coefficients: Vec<Complex<f32>>,
}

/// The result of an analysis.
#[derive(Debug, Clone)]
pub struct Analysis {
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
    /// Frames run through the network per image.
    pub frames_per_image: usize,
    /// Wall time of the analysis, seconds.
    pub seconds: f64,
}

/// Selects taps of the model per `sel`, with shapes from a probe run.
pub fn select_taps(model: &Model, sel: &TapSelection, engine: &EngineConfig) -> Result<Vec<TapInfo>> {
    let all = probe_taps(model, engine)?;
    if !sel.names.is_empty() {
        return sel
            .names
            .iter()
            .map(|n| {
                let t = model.tap(n)?;
                all.iter()
                    .find(|i| i.tap.tensor == t.tensor)
                    .cloned()
                    .ok_or_else(|| Error::param("tap", "a tap with a 4-D [N, C, H, W] output", n))
            })
            .collect();
    }
    Ok(all.into_iter().filter(|t| sel.kinds.contains(&t.tap.kind)).collect())
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
    if images.is_empty() {
        return Err(Error::param("images", "at least one image", 0));
    }
    let [_, h, w] = model.input_shape;
    let plan = cfg.stimulus.plan(h, w)?;
    let n = cfg.stimulus.n_frames;
    let path = match (cfg.fold, plan.period()) {
        (Fold::Auto, Some(p)) if p < n && n % p == 0 => InferencePath::Folded { period: p },
        _ => InferencePath::Full,
    };
    let frames_per_image = match path {
        InferencePath::Folded { period } => period,
        InferencePath::Full => n,
    };
    tracing::info!("inference path: {path:?} ({frames_per_image} frames per image)");
    let taps = select_taps(model, &cfg.taps, &cfg.engine)?;
    if taps.is_empty() {
        return Err(Error::param("taps", "a selection that matches at least one tap", format!("{:?}", cfg.taps)));
    }
    let refs: Vec<_> = taps.iter().map(|t| &t.tap).collect();
    let mut session = Session::for_model(model, &refs, false, &cfg.engine)?;
    let tag_bins = plan.bins.clone();
    let lines = catalogue(&tag_bins, cfg.stimulus.fps, n, cfg.max_order);
    let nb = n_bins(n);
    let max_c = taps.iter().map(|t| t.shape[0]).max().unwrap_or(0);
    let snr_offset = usize::from(cfg.snr.drop_dc);
    let mut fft = Fft::new();
    let mut scores: Vec<LayerScores> = taps
        .iter()
        .map(|t| LayerScores { tap: t.tap.name.clone(), conv_ordinal: t.tap.conv_ordinal, scores: Vec::new() })
        .collect();
    let mut mean_amp: Vec<Vec<Vec<f64>>> = taps.iter().map(|t| vec![vec![0.0; nb]; t.shape[0]]).collect();
    let mut line_snr: Vec<Vec<Vec<f64>>> = taps.iter().map(|t| vec![vec![0.0; lines.len()]; t.shape[0]]).collect();
    let mut per =
        cfg.keep_per_image.then(|| PerImage { max_channels: max_c, amplitude: Vec::new(), coefficients: Vec::new() });
    for (done, spec) in images.iter().enumerate() {
        let img = load(spec)?;
        if (img.height, img.width) != (h, w) {
            return Err(Error::Data {
                path: spec.name.clone().into(),
                reason: format!("image is {}x{}, the model takes {h}x{w}", img.width, img.height),
            });
        }
        let frames = plan.frames(&img, &model.preprocess, frames_per_image);
        let outs = session.run_all(&frames, frames_per_image)?;
        for (t, (tap, out)) in taps.iter().zip(outs.iter().skip(1)).enumerate() {
            let c = tap.shape[0];
            let mut img_scores = Vec::with_capacity(c);
            let mut pad_amp = vec![f32::NAN; max_c * nb];
            let mut pad_coef = vec![Complex::new(f32::NAN, f32::NAN); max_c * nb];
            for ch in 0..c {
                let series: Vec<f64> = (0..frames_per_image).map(|i| out.data[i * c + ch] as f64).collect();
                let series = if frames_per_image < n { tile(&series, n) } else { series };
                let coef = fft.rfft(&series);
                let amp = amplitude(&coef, n);
                let snr = cfg.snr.snr(&amp);
                img_scores.push(authors_score(&cfg.snr, &amp));
                for (k, a) in amp.iter().enumerate() {
                    mean_amp[t][ch][k] += a / images.len() as f64;
                }
                for (l, line) in lines.iter().enumerate() {
                    let v = line.bin.checked_sub(snr_offset).and_then(|j| snr.get(j)).copied().unwrap_or(f64::NAN);
                    line_snr[t][ch][l] += v / images.len() as f64;
                }
                if per.is_some() {
                    for k in 0..nb {
                        pad_amp[ch * nb + k] = amp[k] as f32;
                        let z = coef[k] / n as f64;
                        pad_coef[ch * nb + k] = Complex::new(z.re as f32, z.im as f32);
                    }
                }
            }
            scores[t].scores.push(img_scores);
            if let Some(p) = per.as_mut() {
                p.amplitude.extend(pad_amp);
                p.coefficients.extend(pad_coef);
            }
        }
        progress(done + 1, images.len());
    }
    let layers = scores.iter().map(|s| aggregate(s, cfg.threshold)).collect();
    Ok(Analysis {
        config: cfg.clone(),
        plan,
        taps,
        images: images.to_vec(),
        lines,
        path,
        scores,
        layers,
        mean_amplitude: mean_amp,
        line_snr,
        per_image: per,
        frames_per_image,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl Analysis {
    /// Re-aggregates the stored scores against another threshold.
    pub fn with_threshold(&self, threshold: f64) -> Vec<LayerImportance> {
        self.scores.iter().map(|s| aggregate(s, threshold)).collect()
    }
}
