//! What an analysis is given: its configuration ([`AnalysisConfig`]: stimulus, SNR,
//! taps, inference, statistics), the images ([`ImageSpec`]), and the shapes it works
//! in ([`InferencePath`], [`PerImage`]). Re-exported by [`super`].

use num_complex::Complex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::importance::stats::StatsConfig;
use crate::inference::engine::EngineConfig;
use crate::inference::model::TapKind;
use crate::signal::snr::SnrConfig;
use crate::signal::stimulus::StimulusConfig;

/// Which taps to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TapSelection {
    /// Kinds of node to record (default: conv and linear, the weighted layers).
    pub kinds: Vec<TapKind>,
    /// Explicit taps (dotted names, `#ordinal`, or tensor names); overrides `kinds` when non-empty.
    pub names: Vec<String>,
}

impl Default for TapSelection {
    fn default() -> Self {
        TapSelection { kinds: vec![TapKind::Conv, TapKind::Linear], names: vec![] }
    }
}

/// Whether to fold the frames by the stimulus period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fold {
    /// Fold whenever exact (N a multiple of the period), and run each distinct frame
    /// once (frames with bit-identical inputs share their outputs).
    Auto,
    /// Always run all N frames.
    Never,
}

/// Everything an analysis needs besides the model and the images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Seeded Gaussian noise added to every frame (normalized units): a real noise floor.
    pub noise: Option<InputNoise>,
    /// Taps whose full maps are recorded for per-neuron SNR maps (names or `#ordinal`).
    pub maps: Vec<String>,
    /// Across-image statistics.
    pub stats: StatsConfig,
    /// A recurrent model's warm-up in frames ([`crate::inference::engine::Session::set_warmup`];
    /// `None`: until its state settles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<usize>,
}

/// Per-frame input noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InputNoise {
    /// Standard deviation, in normalized input units.
    pub sigma: f32,
    /// Seed; image `i`'s noise comes from `(seed, i)`, so runs repeat exactly.
    pub seed: u64,
}

/// The documented default threshold on the `authors` score, dB (see the README's
/// reproduction section for how it was chosen).
pub const DEFAULT_THRESHOLD: f64 = 1.5;

/// Most frame-shuffle permutations per filter.
pub const MAX_PERMUTATIONS: usize = 10_000;
/// Most random half splits for stability.
pub const MAX_SPLITS: usize = 10_000;
/// Most bytes of frames built for one image (frames run × input size × 4).
pub const MAX_FRAME_BYTES: u64 = 2 << 30;

/// Most warm-up frames of a recurrent model ([`AnalysisConfig::warmup`]).
pub const MAX_WARMUP: usize = 1_000_000;

impl AnalysisConfig {
    /// Checks every parameter that does not depend on the model, before any work;
    /// errors name the parameter, say what is allowed and echo the value.
    pub fn validate(&self) -> Result<()> {
        let bins = self.stimulus.check()?;
        if !self.threshold.is_finite() {
            return Err(Error::param("threshold", "a finite number", self.threshold));
        }
        self.snr.validate(crate::signal::spectrum::n_bins(self.stimulus.n_frames))?;
        crate::signal::lines::check_catalogue(&bins, self.max_order)?;
        let st = &self.stats;
        if !(st.q > 0.0 && st.q < 1.0) {
            return Err(Error::param("q", "a false discovery rate in (0, 1)", st.q));
        }
        if let Some(q) = st.q_values.iter().find(|q| !(**q > 0.0 && **q < 1.0)) {
            return Err(Error::param("q values", "false discovery rates in (0, 1)", q));
        }
        if st.permutations > MAX_PERMUTATIONS {
            return Err(Error::param("permutations", format!("0..={MAX_PERMUTATIONS}"), st.permutations));
        }
        if st.splits > MAX_SPLITS {
            return Err(Error::param("splits", format!("0..={MAX_SPLITS}"), st.splits));
        }
        if let Some(t) = st.thresholds.iter().find(|t| !t.is_finite()) {
            return Err(Error::param("sweep-thresholds", "finite numbers", t));
        }
        if let Some(n) = self.noise.filter(|n| !(n.sigma.is_finite() && n.sigma >= 0.0)) {
            return Err(Error::param("noise-sigma", "a finite non-negative number", n.sigma));
        }
        if !(1..=4096).contains(&self.engine.batch) {
            return Err(Error::param("batch", "1..=4096 frames per inference call", self.engine.batch));
        }
        if let Some(w) = self.warmup.filter(|&w| w > MAX_WARMUP) {
            return Err(Error::param("warmup", format!("0..={MAX_WARMUP} frames"), w));
        }
        if self.engine.threads > 1024 {
            return Err(Error::param("threads", "0 (one per core) to 1024", self.engine.threads));
        }
        Ok(())
    }
}

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
            noise: None,
            maps: vec![],
            stats: StatsConfig::default(),
            warmup: None,
        }
    }
}

/// An image to analyse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// Display name (`test[3]`, a file name).
    pub name: String,
    /// CIFAR-10 index if from the data set.
    #[serde(deserialize_with = "Option::deserialize")]
    pub index: Option<usize>,
    /// Class label if known.
    #[serde(deserialize_with = "Option::deserialize")]
    pub label: Option<u8>,
}

/// How inference ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "path", rename_all = "lowercase")]
pub enum InferencePath {
    /// One period of P frames stands for all N; its distinct frames were run.
    Folded {
        /// Period P, frames.
        period: usize,
        /// Distinct frames within the period (the ones run).
        distinct: usize,
    },
    /// The N frames hold no whole period; their distinct frames were run.
    Distinct {
        /// Distinct frames among the N (the ones run).
        distinct: usize,
    },
    /// All N frames were run (`Fold::Never`, or input noise).
    Full,
}

impl InferencePath {
    /// One line for people: which path ran and how many frames per image.
    pub fn describe(&self, n_frames: usize) -> String {
        match *self {
            InferencePath::Folded { period, distinct } => {
                format!("folded: period {period} of {n_frames} frames, {distinct} distinct frames run per image")
            }
            InferencePath::Distinct { distinct } => {
                format!("not periodic within {n_frames} frames; {distinct} distinct frames run per image")
            }
            InferencePath::Full => format!("full: all {n_frames} frames run per image"),
        }
    }
}

/// Per-image spectra, `[image][row][bin]` flattened, where the rows are every tap's
/// channels one after another (tap order, then channel; [`super::state::row_offsets`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PerImage {
    /// Rows per image: the channels of all taps.
    pub rows: usize,
    /// Amplitudes `|X|/N`.
    pub amplitude: Vec<f32>,
    /// Complex coefficients `X/N`.
    pub coefficients: Vec<Complex<f32>>,
}

impl PerImage {
    /// The amplitude spectrum (`nb` bins) of `row` in image `image`, as f64.
    pub fn spectrum(&self, image: usize, row: usize, nb: usize) -> Vec<f64> {
        self.amplitude[(image * self.rows + row) * nb..][..nb].iter().map(|&x| x as f64).collect()
    }
}
