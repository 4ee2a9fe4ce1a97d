//! Options as a person gives them: one struct, [`AnalysisOptions`], named as the CLI's
//! flags (with `_` for `-`) and Python's keyword arguments, with their defaults and
//! docs. [`AnalysisOptions::plan`] (in [`super::plan`]) lowers them into a [`super::Plan`].

use serde::{Deserialize, Deserializer, Serialize};

use crate::analysis::{AnalysisConfig, Fold, InputNoise, StatsConfig, TapSelection, DEFAULT_THRESHOLD};
use crate::error::{Error, Result};
use crate::inference::engine::EngineConfig;
use crate::inference::model::control::Control;
use crate::inference::model::TapKind;
use crate::run::shard::Shard;
use crate::signal::snr::SnrConfig;
use crate::signal::stimulus::{Domain, Layout, Modulation, Quantize, StimulusConfig};

/// Control networks drawn by default: enough for a Monte Carlo p of 2 / 21 = 0.095 at
/// the extremes (39 are needed for 0.05).
pub const DEFAULT_CONTROLS: usize = 20;

/// Per-image spectra are kept by default up to this many images.
pub const PER_IMAGE_DEFAULT_LIMIT: usize = 100;
/// Across-image statistics are computed up to this many images.
pub const STATS_IMAGE_LIMIT: usize = 1000;

/// Analysis options, named as the CLI's flags (with `_` for `-`) and Python's keyword
/// arguments; every field has the CLI's default. Unknown names are an error listing
/// the known ones ([`AnalysisOptions::from_json`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisOptions {
    /// Tag frequencies, Hz, one per region.
    pub freqs: Vec<f64>,
    /// Phases, radians, one per region (empty: all zero).
    pub phases: Vec<f64>,
    /// Regions: `halves`, `left`, `whole`, `quadrants`, `grid:RxC`, `mask:PATH`.
    #[serde(with = "crate::io::json::via_str")]
    pub layout: Layout,
    /// Frames per second.
    pub fps: f64,
    /// Number of frames N.
    pub n_frames: usize,
    /// Lowest modulation factor.
    pub lo: f32,
    /// Highest modulation factor.
    pub hi: f32,
    /// Modulation domain: `normalized` or `raw`.
    pub domain: Domain,
    /// Allow frequencies off the FFT bin grid.
    pub allow_leakage: bool,
    /// What the tag modulates: `all` (every channel alike), `luminance`, `red-green`,
    /// `blue-yellow` (isoluminant, [`crate::signal::colour`]) or `channel:K`.
    pub modulation: Modulation,
    /// Modulation depth in [0, 1] (share of the `lo`..`hi` swing, around its middle).
    pub depth: f32,
    /// How frames are stored before the network sees them: `none` (exact), `uint8`
    /// (8-bit pixels) or `jpeg:Q` (8-bit pixels through a JPEG of quality Q), as a
    /// pipeline of image files has them ([`crate::signal::quantize`]).
    pub quantize: Quantize,
    /// Depths of a contrast sweep (each in [0, 1]): the analysis is repeated at each
    /// and every filter's amplitude and SNR at each tag are written per depth
    /// (`contrast_response.csv`); empty: no sweep.
    pub contrast_sweep: Vec<f32>,
    /// Also compute the harmonic-sum response of FPVS practice
    /// ([`crate::analysis::harmonic_sum`]; `harmonic_sum.csv`), and with per-image spectra
    /// and at least 4 images its line selection cross-validated on image halves
    /// (`harmonic_sum_crossval.csv`); needs an input noise floor (`noise_sigma` > 0).
    pub harmonic_sum: bool,
    /// SNR preset: `authors`, `mne`, `fpvs`, `grid`.
    pub preset: String,
    /// Importance threshold on the per-filter score.
    pub threshold: f64,
    /// Tap kinds to record: `conv`, `linear`, `norm`, `act`, `add`, `concat`, `pool`,
    /// `other` (`bn`, `relu`: older names of `norm`, `act`).
    pub taps: Vec<TapKind>,
    /// Explicit taps (dotted names, `#ordinal`, tensor names); override `taps`.
    pub tap: Vec<String>,
    /// SNR override: neighbour bins per side.
    pub noise_n_neighbor_freqs: Option<usize>,
    /// SNR override: the amplitude floor (signal and noise; a spectrum wholly below it
    /// is a dead filter).
    pub floor: Option<f64>,
    /// SNR override: adjacent bins skipped per side.
    pub noise_skip_neighbor_freqs: Option<usize>,
    /// SNR override: drop the window's min and max.
    pub drop_extremes: Option<bool>,
    /// SNR override: on power (true) or amplitude (false).
    pub power: Option<bool>,
    /// SNR override: in dB (true) or linear (false).
    pub db: Option<bool>,
    /// SNR: bins excluded from the noise windows.
    pub exclude_bins: Vec<usize>,
    /// SNR: leave the response grid out of the noise windows.
    pub exclude_grid: bool,
    /// Seeded Gaussian input noise per frame (normalized units); empty or 0: none. More
    /// than one value is a sweep: the run uses the first, and the F-test detection rate
    /// at each level is written (`noise_sweep.csv`). JSON takes a number or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub noise_sigma: Vec<f32>,
    /// Seed of the input noise.
    pub noise_seed: u64,
    /// Compute the across-image statistics (skipped above [`STATS_IMAGE_LIMIT`] images).
    pub stats: bool,
    /// FDR level for "significant".
    pub q: f64,
    /// Frame-shuffle permutations (0: none).
    pub permutations: usize,
    /// Seed of the permutations and random halves.
    pub stats_seed: u64,
    /// Random half splits for stability.
    pub splits: usize,
    /// Thresholds of the sweep (empty: 25 over the observed scores).
    pub sweep_thresholds: Vec<f64>,
    /// Taps whose per-neuron SNR maps are recorded.
    pub maps: Vec<String>,
    /// Fold by the stimulus period and run each distinct frame once (`false`: all N).
    pub fold: bool,
    /// A recurrent model's warm-up: frames run before the recorded window (the
    /// window's last frames, periodically). `None`: windows are run until the state at
    /// a window's end equals that at its start (a periodic steady state), at most 16.
    pub warmup: Option<usize>,
    /// Highest order of catalogued lines.
    pub max_order: u32,
    /// Keep per-image spectra (`None`: up to [`PER_IMAGE_DEFAULT_LIMIT`] images).
    pub per_image: Option<bool>,
    /// Intra-op threads (0: one per core).
    pub threads: usize,
    /// Frames per inference call.
    pub batch: usize,
    /// Where the network runs (`cpu` or `cuda`, chosen at run time).
    pub device: crate::inference::engine::Device,
    /// Input channel means in [0, 1] pixel units (1 or 3; with `std`): needed when the
    /// model does not record them ([`crate::inference::model::Model::set_preprocess`]).
    pub mean: Option<Vec<f32>>,
    /// Input channel standard deviations in [0, 1] pixel units (1 or 3; with `mean`).
    pub std: Option<Vec<f32>>,
    /// Resize images so that the shorter side has this many pixels.
    pub resize: Option<usize>,
    /// Centre-crop images to this many pixels square (after `resize`).
    pub crop: Option<usize>,
    /// Also analyse control networks of the same architecture (each put at the trained
    /// network's operating point) on the same images: the first compared filter by
    /// filter, layer by layer (`control.csv`), all of them network by network
    /// (`control_networks.csv`: the trained network's percentile among the controls and
    /// a Monte Carlo p).
    pub control: Option<Control>,
    /// Seed of the first control network (the others take the next seeds).
    pub control_seed: u64,
    /// Number of control networks (with `control`; at least 1).
    pub controls: usize,
    /// Also run with the two tag frequencies exchanged between the regions and test per
    /// filter whether its preference follows the region (`region_swap.csv`).
    pub region_swap: bool,
    /// Image-bootstrap resamples for 95 % intervals (`bootstrap.csv`; 0: none).
    pub bootstrap: usize,
    /// Continue from the checkpoint a killed run left beside the output folder.
    pub resume: bool,
    /// Seconds of work between checkpoints (0: none).
    pub checkpoint_every: f64,
    /// Run only this shard of the image list, written as a partial run for merging.
    pub shard: Option<Shard>,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        let stats = StatsConfig::default();
        let engine = EngineConfig::default();
        let stim = StimulusConfig::default();
        AnalysisOptions {
            freqs: stim.freqs,
            phases: vec![],
            layout: stim.layout,
            fps: stim.fps,
            n_frames: stim.n_frames,
            lo: stim.lo,
            hi: stim.hi,
            domain: stim.domain,
            allow_leakage: false,
            modulation: stim.modulation,
            depth: stim.depth,
            quantize: stim.quantize,
            contrast_sweep: vec![],
            harmonic_sum: false,
            preset: "authors".into(),
            threshold: DEFAULT_THRESHOLD,
            taps: vec![TapKind::Conv, TapKind::Linear],
            tap: vec![],
            mean: None,
            std: None,
            resize: None,
            crop: None,
            noise_n_neighbor_freqs: None,
            floor: None,
            noise_skip_neighbor_freqs: None,
            drop_extremes: None,
            power: None,
            db: None,
            exclude_bins: vec![],
            exclude_grid: false,
            noise_sigma: vec![],
            noise_seed: 0,
            stats: true,
            q: stats.q,
            permutations: stats.permutations,
            stats_seed: stats.seed,
            splits: stats.splits,
            sweep_thresholds: vec![],
            maps: vec![],
            fold: true,
            warmup: None,
            max_order: 20,
            per_image: None,
            threads: engine.threads,
            batch: engine.batch,
            device: crate::inference::engine::Device::Cpu,
            control: None,
            control_seed: 0,
            controls: DEFAULT_CONTROLS,
            region_swap: false,
            bootstrap: 0,
            resume: false,
            checkpoint_every: 30.0,
            shard: None,
        }
    }
}

impl AnalysisOptions {
    /// Reads options from a JSON object (missing names take their defaults; an unknown
    /// name is an error that lists the known ones).
    pub fn from_json(json: &str) -> Result<AnalysisOptions> {
        serde_json::from_str(json).map_err(|e| Error::Param {
            name: "options",
            reason: e.to_string(),
            given: json.chars().take(200).collect(),
        })
    }

    /// The stimulus part, validated by [`StimulusConfig::plan`] later.
    pub fn stimulus(&self) -> Result<StimulusConfig> {
        Ok(StimulusConfig {
            layout: self.layout.clone(),
            freqs: self.freqs.clone(),
            phases: self.phases.clone(),
            fps: self.fps,
            n_frames: self.n_frames,
            lo: self.lo,
            hi: self.hi,
            domain: self.domain,
            allow_leakage: self.allow_leakage,
            modulation: self.modulation,
            depth: self.depth,
            quantize: self.quantize,
        })
    }

    /// The inference settings.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig { threads: self.threads, batch: self.batch, device: self.device, optimize: true }
    }

    /// Validates the analysis options and resolves them into the configuration of one
    /// analysis over `n_images` images, with notes for the user (statistics skipped,
    /// ...). The run-level options (extras, checkpoints, shard) are
    /// [`AnalysisOptions::plan`]'s.
    pub(crate) fn resolve(&self, n_images: usize) -> Result<(AnalysisConfig, Vec<String>)> {
        let mut snr = SnrConfig::preset(&self.preset)?;
        if let Some(v) = self.noise_n_neighbor_freqs {
            snr.n_neighbors = v;
        }
        if let Some(v) = self.noise_skip_neighbor_freqs {
            snr.skip = v;
        }
        if let Some(v) = self.drop_extremes {
            snr.drop_extremes = v;
        }
        if let Some(v) = self.power {
            snr.power = v;
        }
        if let Some(v) = self.db {
            snr.db = v;
        }
        if let Some(v) = self.floor {
            snr.floor = v;
        }
        snr.exclude_bins = self.exclude_bins.clone();
        snr.exclude_grid |= self.exclude_grid;
        // The summary names the preset that was used: an override makes it another.
        if snr != SnrConfig::preset(&self.preset)? {
            snr.preset = "custom".into();
        }
        if let Some(s) = self.noise_sigma.first().filter(|s| !(**s >= 0.0 && s.is_finite())) {
            return Err(Error::param("noise-sigma", "a non-negative number", s));
        }
        if !(self.q > 0.0 && self.q < 1.0) {
            return Err(Error::param("q", "a false discovery rate in (0, 1)", self.q));
        }
        let kinds = self.taps.clone();
        let mut notes = Vec::new();
        let stats_on = self.stats && n_images <= STATS_IMAGE_LIMIT;
        if self.stats && !stats_on {
            notes.push(format!(
                "note: across-image statistics are skipped above {STATS_IMAGE_LIMIT} images (they keep every image's line coefficients)"
            ));
        }
        let cfg = AnalysisConfig {
            stimulus: self.stimulus()?,
            snr,
            threshold: self.threshold,
            taps: TapSelection { kinds, names: self.tap.clone() },
            engine: self.engine(),
            fold: if self.fold { Fold::Auto } else { Fold::Never },
            max_order: self.max_order,
            keep_per_image: self.per_image.unwrap_or(n_images <= PER_IMAGE_DEFAULT_LIMIT),
            noise: self
                .noise_sigma
                .first()
                .copied()
                .filter(|&s| s > 0.0)
                .map(|sigma| InputNoise { sigma, seed: self.noise_seed }),
            maps: self.maps.clone(),
            warmup: self.warmup,
            stats: StatsConfig {
                enabled: stats_on,
                q: self.q,
                permutations: self.permutations,
                seed: self.stats_seed,
                splits: self.splits,
                thresholds: self.sweep_thresholds.clone(),
                ..StatsConfig::default()
            },
        };
        cfg.validate()?;
        Ok((cfg, notes))
    }
}

/// A number or a list of numbers, as a list.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<f32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(f32),
        Many(Vec<f32>),
        None(()),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(v) => vec![v],
        OneOrMany::Many(v) => v,
        OneOrMany::None(()) => vec![],
    })
}
