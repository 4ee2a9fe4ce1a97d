//! The oddball paradigm as a whole run (`flickertag oddball`, `flickertag.oddball`):
//! options as a person gives them ([`OddballOptions`]), the image pool (CIFAR-10 test
//! images, or an image folder of one subfolder per class), the analysis
//! ([`crate::analysis::oddball`]), its validation by ablation
//! ([`crate::prune::oddball`]) and the run folder.
//!
//! CIFAR-10 images are split so that nothing is both selected and measured on: the
//! streams draw from test images `0..5000`, recall is measured on a seeded draw from
//! `5000..10000`, and mean ablation takes its channel means from the stream images.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analysis::oddball::{oddball, ImagePool, OddballConfig, OddballResult};
use crate::analysis::{ImageSpec, TapSelection};
use crate::error::{Error, Result};
use crate::inference::engine::{EngineConfig, StopFn};
use crate::inference::model::{Model, TapKind};
use crate::io::data::{Cifar10, Image, Split, CLASSES};
use crate::prune::oddball::{validate, ValidationConfig, ValidationImages, ValidationRow};
use crate::signal::oddball::OddballStimulus;

/// CIFAR-10 test images the streams draw from: `0..POOL_END`; recall is measured on
/// `POOL_END..10000`.
pub const POOL_END: usize = 5000;
/// Most images per class read from an image folder.
pub const MAX_FOLDER_IMAGES: usize = 10_000;
/// Most classes of an image folder.
pub const MAX_FOLDER_CLASSES: usize = 1000;

/// Oddball options, named as the CLI's flags (with `_` for `-`) and Python's keyword
/// arguments, with the CLI's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OddballOptions {
    /// Base frequency F, Hz (one image per cycle).
    pub base_freq: f64,
    /// Every n-th image is an oddball.
    pub every: usize,
    /// Frames per second.
    pub fps: f64,
    /// Frames per stream (the FFT window; a multiple of `every · fps / F`).
    pub n_frames: usize,
    /// Oddball classes, by name or index (empty: all).
    pub classes: Vec<String>,
    /// Streams per class.
    pub streams: usize,
    /// Seed of the streams, of the image draws and of the random sets.
    pub seed: u64,
    /// Oddball harmonics considered.
    pub harmonics: usize,
    /// Noise bins read either side of a harmonic.
    pub neighbours: usize,
    /// Images per class in the pool the streams draw from.
    pub pool_images: usize,
    /// A folder with one subfolder of images per class (instead of CIFAR-10).
    pub image_folder: Option<PathBuf>,
    /// Tap kinds (default conv).
    pub taps: Vec<TapKind>,
    /// Explicit taps.
    pub tap: Vec<String>,
    /// Validate by ablation (CIFAR-10 models): the top `fraction` of filters per class
    /// against `random_sets` layer-matched random sets.
    pub validate: bool,
    /// Share of filters ablated per class.
    pub fraction: f64,
    /// Random layer-matched sets per class.
    pub random_sets: usize,
    /// Test images recall is measured on (drawn from 5000..10000).
    pub validation_images: usize,
    /// Intra-op threads (0: one per core).
    pub threads: usize,
    /// Frames per inference call.
    pub batch: usize,
    /// Input channel means in [0, 1] pixel units (with `std`), when the model records none.
    pub mean: Option<Vec<f32>>,
    /// Input channel standard deviations.
    pub std: Option<Vec<f32>>,
}

impl Default for OddballOptions {
    fn default() -> Self {
        let s = OddballStimulus::default();
        let c = OddballConfig::default();
        let v = ValidationConfig::default();
        OddballOptions {
            base_freq: s.base_freq,
            every: s.every,
            fps: s.fps,
            n_frames: s.n_frames,
            classes: vec![],
            streams: c.streams,
            seed: 0,
            harmonics: c.harmonics,
            neighbours: c.neighbours,
            pool_images: 100,
            image_folder: None,
            taps: vec![TapKind::Conv],
            tap: vec![],
            validate: false,
            fraction: v.fraction,
            random_sets: v.random_sets,
            validation_images: 1000,
            threads: 0,
            batch: EngineConfig::default().batch,
            mean: None,
            std: None,
        }
    }
}

/// A finished oddball run: the analysis and, when asked for, its validation.
pub struct OddballRun {
    /// The analysis.
    pub result: OddballResult,
    /// Per class, the ablation test.
    pub validation: Option<Vec<ValidationRow>>,
}

impl OddballOptions {
    /// Reads options from a JSON object (unknown names are an error listing the known ones).
    pub fn from_json(json: &str) -> Result<OddballOptions> {
        crate::io::json::options(json)
    }

    fn engine(&self) -> EngineConfig {
        EngineConfig { threads: self.threads, batch: self.batch, ..EngineConfig::default() }
    }

    /// Runs the paradigm on `model` (`data`: the data folder, for CIFAR-10).
    pub fn run(
        &self,
        model: &mut Model,
        data: Option<&Path>,
        progress: &mut dyn FnMut(&str, usize, usize),
        stop: Option<&StopFn>,
    ) -> Result<OddballRun> {
        model.require_frames_alone("the oddball paradigm")?;
        if self.mean.is_some() || self.std.is_some() {
            model.set_preprocess(self.mean.as_deref(), self.std.as_deref(), None, None)?;
        }
        if !(1..=MAX_FOLDER_IMAGES).contains(&self.pool_images) {
            return Err(Error::param(
                "pool-images",
                format!("1 to {MAX_FOLDER_IMAGES} images per class"),
                self.pool_images,
            ));
        }
        let (pool, load, test): (ImagePool, crate::run::ImageLoader, Option<std::sync::Arc<Cifar10>>) =
            match &self.image_folder {
                Some(dir) => {
                    if self.validate {
                        return Err(Error::param(
                            "validate",
                            "CIFAR-10 images (recall is measured on the CIFAR-10 test set)",
                            "image-folder",
                        ));
                    }
                    let pool = folder_pool(dir, self.pool_images)?;
                    (pool, Box::new(|s: &ImageSpec| Image::from_file(Path::new(&s.name))), None)
                }
                None => {
                    let dir = data.ok_or_else(|| {
                        Error::param(
                            "data",
                            "a data folder with CIFAR-10 (set FLICKERTAG_DATA or pass <data>), or <image-folder DIR>",
                            "none",
                        )
                    })?;
                    // One copy of the test set, shared by the loader and the validation.
                    let test = std::sync::Arc::new(Cifar10::load(dir, Split::Test)?);
                    let pool = cifar_pool(&test, self.pool_images, self.seed)?;
                    let t2 = test.clone();
                    let load = move |s: &ImageSpec| {
                        s.index.map(|i| t2.image(i)).ok_or_else(|| Error::param("images", "a test index", &s.name))
                    };
                    (pool, Box::new(load), Some(test))
                }
            };
        let classes = self
            .classes
            .iter()
            .map(|c| {
                c.parse::<usize>()
                    .ok()
                    .filter(|&i| i < pool.classes.len())
                    .or_else(|| pool.classes.iter().position(|n| n == c))
                    .ok_or_else(|| {
                        Error::param("classes", format!("class names or indices of {}", pool.classes.join(", ")), c)
                    })
            })
            .collect::<Result<Vec<usize>>>()?;
        let cfg = OddballConfig {
            stimulus: OddballStimulus {
                base_freq: self.base_freq,
                every: self.every,
                fps: self.fps,
                n_frames: self.n_frames,
            },
            classes,
            streams: self.streams,
            null_control: true,
            seed: self.seed,
            harmonics: self.harmonics,
            neighbours: self.neighbours,
            taps: TapSelection { kinds: self.taps.clone(), names: self.tap.clone() },
            engine: self.engine(),
        };
        let result = {
            let mut p = |d: usize, t: usize| progress("streams", d, t);
            oddball(model, &cfg, &pool, &*load, &mut p, stop)?
        };
        let validation = match (self.validate, test) {
            (true, Some(test)) => {
                let idx: Vec<usize> =
                    crate::io::data::seeded_sample(test.len() - POOL_END, self.validation_images, self.seed)?
                        .into_iter()
                        .map(|i| i + POOL_END)
                        .collect();
                let means: Vec<usize> = pool.images.iter().flatten().filter_map(|s| s.index).collect();
                let v = ValidationConfig {
                    fraction: self.fraction,
                    random_sets: self.random_sets,
                    seed: self.seed,
                    ..ValidationConfig::default()
                };
                let mut p = |d: usize, t: usize| progress("ablations", d, t);
                let images = ValidationImages { test: &test, indices: &idx, mean_indices: &means };
                Some(validate(model, &result, &images, &v, &self.engine(), &mut p)?)
            }
            _ => None,
        };
        Ok(OddballRun { result, validation })
    }
}

/// A seeded draw of `per_class` images of every class from CIFAR-10 test images
/// `0..POOL_END`.
pub fn cifar_pool(test: &Cifar10, per_class: usize, seed: u64) -> Result<ImagePool> {
    let mut images = Vec::new();
    for c in 0..CLASSES.len() {
        let of: Vec<usize> = (0..POOL_END.min(test.len())).filter(|&i| test.label(i) as usize == c).collect();
        let pick = crate::io::data::seeded_sample(of.len(), per_class.min(of.len()), seed.wrapping_add(c as u64))?;
        images.push(
            pick.into_iter()
                .map(|k| ImageSpec { name: format!("test[{}]", of[k]), index: Some(of[k]), label: Some(c as u8) })
                .collect(),
        );
    }
    Ok(ImagePool { classes: CLASSES.iter().map(|s| s.to_string()).collect(), images })
}

/// The pool of an image folder: each subfolder (sorted by name) is a class, its PNG,
/// JPEG and GIF files (sorted) its images, the first `per_class` of them.
pub fn folder_pool(dir: &Path, per_class: usize) -> Result<ImagePool> {
    let list = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(d).map_err(|e| Error::io(d, e))? {
            v.push(e.map_err(|e| Error::io(d, e))?.path());
            if v.len() > 10 * MAX_FOLDER_IMAGES {
                return Err(Error::Data {
                    path: d.into(),
                    reason: format!("more than {} entries", 10 * MAX_FOLDER_IMAGES),
                });
            }
        }
        v.sort();
        Ok(v)
    };
    let classes: Vec<PathBuf> = list(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    if classes.len() < 2 || classes.len() > MAX_FOLDER_CLASSES {
        return Err(Error::param(
            "image-folder",
            format!("a folder with 2 to {MAX_FOLDER_CLASSES} subfolders, one per class"),
            format!("{} ({} subfolders)", dir.display(), classes.len()),
        ));
    }
    let mut images = Vec::new();
    for d in &classes {
        let files: Vec<ImageSpec> = list(d)?
            .into_iter()
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg" | "gif"))
            })
            .take(per_class)
            // The class is the subfolder's place in the pool, not a label byte (a pool may
            // hold up to MAX_FOLDER_CLASSES classes).
            .map(|p| ImageSpec { name: p.display().to_string(), index: None, label: None })
            .collect();
        if files.is_empty() {
            return Err(Error::Data {
                path: d.clone(),
                reason: "no PNG, JPEG or GIF image in this class folder".into(),
            });
        }
        images.push(files);
    }
    let names = classes.iter().map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    Ok(ImagePool { classes: names.collect(), images })
}

impl OddballRun {
    /// The run folder's tables by file name: `oddball.json` (settings, timing, model,
    /// harmonics, layers), `oddball.csv` (per filter and class), `oddball_layers.csv`,
    /// `oddball_harmonics.csv`, `oddball_validation.csv` (when validated).
    pub fn tables(&self) -> Vec<(&'static str, Vec<u8>)> {
        use crate::io::table::{num, Table};
        let r = &self.result;
        let mut f = Table::new(&["tap", "channel", "class", "response", "noise_sd", "z"]);
        for x in &r.filters {
            f.row([x.tap.clone(), num(x.channel), x.class.clone(), num(x.response), num(x.noise_sd), num(x.z)]);
        }
        let mut l = Table::new(&["tap", "class", "filters", "selective", "mean_z", "harmonics"]);
        for x in &r.layers {
            l.row([x.tap.clone(), x.class.clone(), num(x.filters), num(x.selective), num(x.mean_z), num(x.harmonics)]);
        }
        let mut h = Table::new(&["tap", "class", "bin", "freq", "z", "significant"]);
        for x in &r.harmonics {
            h.row([x.tap.clone(), x.class.clone(), num(x.bin), num(x.freq), num(x.z), num(x.significant)]);
        }
        let summary = serde_json::json!({
            "schema": 1, "flickertag_version": env!("CARGO_PKG_VERSION"), "model": r.model,
            "config": r.config, "timing": r.timing, "classes": r.classes, "frames_run": r.frames_run,
            "seconds": r.seconds, "selective_z": crate::analysis::oddball::SELECTIVE_Z,
            "harmonic_z": crate::analysis::oddball::HARMONIC_Z, "layers": r.layers,
            "validation": self.validation,
        });
        let mut out = vec![
            ("oddball.json", serde_json::to_vec_pretty(&summary).expect("serializable")),
            ("oddball.csv", f.into_string().into_bytes()),
            ("oddball_layers.csv", l.into_string().into_bytes()),
            ("oddball_harmonics.csv", h.into_string().into_bytes()),
        ];
        if let Some(v) = &self.validation {
            out.push(("oddball_validation.csv", crate::prune::oddball::to_csv(v).into_bytes()));
        }
        out
    }

    /// Writes the run folder into `out` atomically (an earlier run there is replaced
    /// only with `force`): the tables, `plots/` and `report.html`.
    #[cfg(feature = "report")]
    pub fn save(&self, out: &Path, force: bool) -> Result<PathBuf> {
        let folder = crate::report::folder::RunFolder::create(out, force, "oddball")?;
        for (name, bytes) in self.tables() {
            let p = folder.path().join(name);
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        }
        crate::report::oddball::oddball_report(&self.result, self.validation.as_deref(), folder.path())?;
        folder.commit()
    }

    /// The summary for a terminal: per class, selective filters per layer group.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let r = &self.result;
        let mut s = format!(
            "flickertag oddball: {} ({} classes x {} streams, F = {} Hz, oddball every {} = {:.3} Hz, {} frames run in {:.1} s)\n",
            r.model.name,
            r.classes.len(),
            r.config.streams,
            r.config.stimulus.base_freq,
            r.config.stimulus.every,
            r.config.stimulus.base_freq / r.config.stimulus.every as f64,
            r.frames_run,
            r.seconds
        );
        let _ = writeln!(s, "selective filters (z > {}) per class, all layers:", crate::analysis::oddball::SELECTIVE_Z);
        for c in &r.classes {
            let of: Vec<_> = r.layers.iter().filter(|l| &l.class == c).collect();
            let (sel, all) =
                (of.iter().map(|l| l.selective).sum::<usize>(), of.iter().map(|l| l.filters).sum::<usize>());
            let _ = writeln!(s, "  {c:<12} {sel:>6} of {all}");
        }
        if let Some(v) = &self.validation {
            let _ = writeln!(s, "ablating each class's top filters: recall drop (pp) vs layer-matched random sets");
            for x in v {
                let _ = writeln!(
                    s,
                    "  {:<12} {:>6.1} [{:.1}, {:.1}]  random {:.1} ± {:.1}  p {:.3}  other classes {:.1}",
                    x.class, x.drop, x.drop_low, x.drop_high, x.random_mean, x.random_sd, x.p_value, x.other_drop
                );
            }
        }
        s
    }
}
