//! A whole run as the command line and the Python package make it: options as a person
//! gives them ([`AnalysisOptions`], validated into an [`AnalysisConfig`]), which images
//! ([`ImageSelection`] → [`select_images`]), and the run folder
//! (`write_run_folder`, with the `report` feature: files, figures and `report.html`).
//!
//! The CLI fills [`AnalysisOptions`] from its flags and Python from its keyword
//! arguments (as JSON, field names as below), so both validate and resolve a run the
//! same way and write the same folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisConfig, Fold, ImageSpec, InputNoise, StatsConfig, TapSelection, DEFAULT_THRESHOLD};
use crate::data::{self, Cifar10, Image, Split};
use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::model::TapKind;
use crate::snr::SnrConfig;
use crate::stimulus::{Domain, Layout, StimulusConfig};

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
    #[serde(with = "crate::json::via_str")]
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
    /// Seeded Gaussian input noise per frame (normalized units); `None` or 0: none.
    pub noise_sigma: Option<f32>,
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
    /// Highest order of catalogued lines.
    pub max_order: u32,
    /// Keep per-image spectra (`None`: up to [`PER_IMAGE_DEFAULT_LIMIT`] images).
    pub per_image: Option<bool>,
    /// Intra-op threads (0: one per core).
    pub threads: usize,
    /// Frames per inference call.
    pub batch: usize,
    /// Where the network runs (`cpu` or `cuda`, chosen at run time).
    pub device: crate::engine::Device,
    /// Input channel means in [0, 1] pixel units (1 or 3; with `std`): needed when the
    /// model does not record them ([`crate::model::Model::set_preprocess`]).
    pub mean: Option<Vec<f32>>,
    /// Input channel standard deviations in [0, 1] pixel units (1 or 3; with `mean`).
    pub std: Option<Vec<f32>>,
    /// Resize images so that the shorter side has this many pixels.
    pub resize: Option<usize>,
    /// Centre-crop images to this many pixels square (after `resize`).
    pub crop: Option<usize>,
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
            noise_sigma: None,
            noise_seed: 0,
            stats: true,
            q: stats.q,
            permutations: stats.permutations,
            stats_seed: stats.seed,
            splits: stats.splits,
            sweep_thresholds: vec![],
            maps: vec![],
            fold: true,
            max_order: 20,
            per_image: None,
            threads: engine.threads,
            batch: engine.batch,
            device: crate::engine::Device::Cpu,
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
        })
    }

    /// The inference settings.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig { threads: self.threads, batch: self.batch, device: self.device, optimize: true }
    }

    /// Validates the options and resolves them into the configuration of a run over
    /// `n_images` images. Also returns notes for the user (statistics skipped, ...).
    pub fn resolve(&self, n_images: usize) -> Result<(AnalysisConfig, Vec<String>)> {
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
        if let Some(s) = self.noise_sigma.filter(|s| !(*s >= 0.0 && s.is_finite())) {
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
            noise: self.noise_sigma.filter(|&s| s > 0.0).map(|sigma| InputNoise { sigma, seed: self.noise_seed }),
            maps: self.maps.clone(),
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

/// Which images to analyse. With none of the fields set: the paper's ten images (the
/// first CIFAR-10 test image of each class), from the data folder or, without one,
/// from the copy embedded in flickertag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageSelection {
    /// CIFAR-10 test indices.
    pub images: Vec<usize>,
    /// A seeded draw of this many test images.
    pub n_images: Option<usize>,
    /// Seed of the draw.
    pub seed: u64,
    /// All 10,000 test images.
    pub all_images: bool,
    /// Image files (PNG, JPEG) instead of CIFAR-10.
    pub image_file: Vec<PathBuf>,
}

/// Loads the image of a spec.
pub type ImageLoader = Box<dyn Fn(&ImageSpec) -> Result<Image> + Send + Sync>;

/// The images of a selection and a loader for them. `data` is the data folder (with
/// `cifar10/`), needed for any CIFAR-10 selection other than the default.
pub fn select_images(sel: &ImageSelection, data: Option<&Path>) -> Result<(Vec<ImageSpec>, ImageLoader)> {
    let chosen = [!sel.images.is_empty(), sel.n_images.is_some(), sel.all_images, !sel.image_file.is_empty()];
    if chosen.iter().filter(|&&c| c).count() > 1 {
        return Err(Error::param(
            "images",
            "one of images, n-images, all-images, image-file",
            format!(
                "{}{}{}{}",
                if chosen[0] { "images " } else { "" },
                if chosen[1] { "n-images " } else { "" },
                if chosen[2] { "all-images " } else { "" },
                if chosen[3] { "image-file" } else { "" }
            )
            .trim_end(),
        ));
    }
    if !sel.image_file.is_empty() {
        let specs = sel
            .image_file
            .iter()
            .map(|p| ImageSpec { name: p.display().to_string(), index: None, label: None })
            .collect();
        return Ok((specs, Box::new(|s: &ImageSpec| Image::from_file(Path::new(&s.name)))));
    }
    let default_set = !chosen.contains(&true);
    let have_cifar =
        data.is_some_and(|d| d.join("cifar10/test_batch.bin").is_file() || d.join("test_batch.bin").is_file());
    if default_set && !have_cifar {
        return Ok(embedded_images());
    }
    let dir = data.ok_or_else(|| {
        Error::param(
            "images",
            "CIFAR-10 images other than the default ten need a data folder: set FLICKERTAG_DATA or pass --data (or use image files)",
            "no data folder",
        )
    })?;
    let c = Cifar10::load(dir, Split::Test)?;
    let idx: Vec<usize> = if sel.all_images {
        (0..c.len()).collect()
    } else if let Some(n) = sel.n_images {
        data::seeded_sample(c.len(), n, sel.seed)?
    } else if !sel.images.is_empty() {
        if let Some(&bad) = sel.images.iter().find(|&&i| i >= c.len()) {
            return Err(Error::param("images", format!("indices 0..{}", c.len()), bad));
        }
        sel.images.clone()
    } else {
        c.first_of_each_class()
    };
    let specs = idx
        .iter()
        .map(|&i| ImageSpec { name: format!("test[{i}]"), index: Some(i), label: Some(c.label(i)) })
        .collect();
    let load = move |s: &ImageSpec| {
        s.index.map(|i| c.image(i)).ok_or_else(|| Error::param("images", "a CIFAR-10 test index", &s.name))
    };
    Ok((specs, Box::new(load)))
}

/// The paper's ten test images as embedded in flickertag ([`crate::embedded`]).
pub fn embedded_images() -> (Vec<ImageSpec>, ImageLoader) {
    let imgs = crate::embedded::paper_images();
    let specs = crate::embedded::PAPER_INDICES
        .iter()
        .zip(&imgs)
        .map(|(&i, img)| ImageSpec { name: format!("test[{i}]"), index: Some(i), label: img.label })
        .collect();
    let load = move |s: &ImageSpec| {
        crate::embedded::PAPER_INDICES
            .iter()
            .position(|&i| Some(i) == s.index)
            .map(|k| imgs[k].clone())
            .ok_or_else(|| Error::param("images", "one of the embedded test images", &s.name))
    };
    (specs, Box::new(load))
}

/// Writes the whole run folder of an analysis into `out`: the files of
/// [`crate::report::write_run`], the stimulus and map figures (drawn on `first`, the
/// first image), and `report.html`. Returns the report's path.
#[cfg(feature = "report")]
pub fn write_run_folder(a: &crate::analysis::Analysis, first: &Image, out: &Path) -> Result<PathBuf> {
    crate::report::write_run(a, out)?;
    crate::report::plots::stimulus(out, &a.plan, first)?;
    crate::report::plots::maps(out, &a.maps, first)?;
    crate::report::html::write_report(out)
}

/// Redraws the figures and `report.html` of an existing run folder (`flickertag report`),
/// atomically: the summary and arrays are validated first, the run is copied into a
/// temporary sibling, redrawn there and swapped into place. Returns the report's path.
#[cfg(feature = "report")]
pub fn redraw_run_folder(dir: &Path) -> Result<PathBuf> {
    use crate::report::folder::{RunFolder, MARKER};
    use crate::report::manifest::{foreign_entries, list_some, Manifest};
    if !dir.is_dir() || Manifest::read(dir).is_none() {
        return Err(Error::param("run folder", "a folder written by flickertag analyze or demo", dir.display()));
    }
    let foreign = foreign_entries(dir)?;
    if !foreign.is_empty() {
        return Err(Error::param(
            "run folder",
            format!(
                "a run folder holding only what flickertag wrote; files were added to it ({}): move them out \
                 first (the report is redrawn into a copy that replaces the folder)",
                list_some(&foreign)
            ),
            dir.display(),
        ));
    }
    crate::report::plots::RunData::load(dir)?;
    let folder = RunFolder::create(dir, true, "analyze")?;
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|err| Error::io(dir, err))?;
        let name = e.file_name();
        let kind = e.file_type().map_err(|err| Error::io(e.path(), err))?;
        // Figures and the report are drawn again; the marker is written at commit.
        if name == "plots" || name == "report.html" || name == MARKER {
            continue;
        }
        if kind.is_dir() {
            copy_dir(&e.path(), &folder.path().join(&name))?;
        } else if kind.is_file() {
            std::fs::copy(e.path(), folder.path().join(&name)).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    crate::report::html::write_report(folder.path())?;
    Ok(folder.commit()?.join("report.html"))
}

/// Copies an existing run folder to `dest` atomically (Python's `Analysis.save`):
/// `dest` appears complete or not at all; an earlier run there is replaced only with
/// `force`.
pub fn copy_run_folder(src: &Path, dest: &Path, force: bool) -> Result<PathBuf> {
    let folder = crate::report::folder::RunFolder::create(dest, force, "analyze")?;
    copy_dir(src, folder.path())?;
    folder.commit()
}

fn copy_dir(src: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    for e in std::fs::read_dir(src).map_err(|e| Error::io(src, e))? {
        let e = e.map_err(|err| Error::io(src, err))?;
        let to = dest.join(e.file_name());
        let kind = e.file_type().map_err(|err| Error::io(e.path(), err))?;
        if kind.is_dir() {
            copy_dir(&e.path(), &to)?;
        } else if kind.is_file() {
            std::fs::copy(e.path(), &to).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_resolve_to_the_default_analysis_config() {
        let (cfg, notes) = AnalysisOptions::default().resolve(10).unwrap();
        assert!(notes.is_empty());
        assert_eq!(cfg, AnalysisConfig::default());
    }

    #[test]
    fn unknown_option_is_an_error_listing_the_known_ones() {
        let e = AnalysisOptions::from_json(r#"{"fsp": 60}"#).unwrap_err().to_string();
        assert!(e.contains("invalid options") && e.contains("`fsp`") && e.contains("`fps`"), "{e}");
    }

    #[test]
    fn options_from_json_keep_defaults_for_missing_names() {
        let o = AnalysisOptions::from_json(r#"{"n_frames": 480, "layout": "grid:2x3"}"#).unwrap();
        assert_eq!(o.n_frames, 480);
        assert_eq!(o.fps, 120.0);
        assert_eq!(o.stimulus().unwrap().layout, crate::stimulus::Layout::Grid { rows: 2, cols: 3 });
    }

    #[test]
    fn bad_layout_and_kind_name_the_parameter_and_echo_the_value() {
        let e = AnalysisOptions::from_json(r#"{"layout": "grid:2by3"}"#).unwrap_err().to_string();
        assert!(e.contains("invalid layout") && e.contains("grid:2by3"), "{e}");
        let e = AnalysisOptions::from_json(r#"{"taps": ["gelu"]}"#).unwrap_err().to_string();
        assert!(e.contains("gelu") && e.contains("`conv`"), "{e}");
    }

    #[test]
    fn two_image_selections_at_once_are_refused() {
        let sel = ImageSelection { images: vec![1], image_file: vec!["a.png".into()], ..Default::default() };
        let e = select_images(&sel, None).err().unwrap().to_string();
        assert!(e.contains("images") && e.contains("image-file"), "{e}");
    }

    #[test]
    fn default_selection_without_data_is_the_embedded_ten() {
        let (specs, load) = select_images(&ImageSelection::default(), None).unwrap();
        assert_eq!(specs.len(), 10);
        assert_eq!(specs[0].name, "test[3]");
        assert_eq!(load(&specs[9]).unwrap().label, Some(9));
    }
}
