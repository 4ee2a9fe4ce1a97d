//! A whole run as the command line and the Python package make it: options as a person
//! gives them ([`AnalysisOptions`]), lowered once into a [`Plan`]
//! ([`AnalysisOptions::plan`]) that runs the analysis and its extras into a run folder
//! ([`Plan::execute`], with the `report` feature); which images ([`ImageSelection`] →
//! [`select_images`]); the run folder's files, figures and `report.html`
//! (`write_run_folder`).
//!
//! The CLI fills [`AnalysisOptions`] from its flags and Python from its keyword
//! arguments, so both validate, plan and run the same way and write the same folder.
//! One run split across processes or machines, then merged: [`shard`].

pub mod cam;
#[cfg(feature = "report")]
mod execute;
pub mod oddball;
mod options;
mod plan;
#[cfg(feature = "report")]
pub(crate) mod prune;
pub mod shard;
pub mod truth;

pub use crate::report::run_folder::copy_run_folder;
#[cfg(feature = "report")]
pub use crate::report::run_folder::{redraw_run_folder, write_run_folder};
pub use options::{AnalysisOptions, DEFAULT_CONTROLS, PER_IMAGE_DEFAULT_LIMIT, STATS_IMAGE_LIMIT};
pub use plan::{ControlResult, Extras, Hooks, Outcome, Plan, RunResult, StopFn};
#[cfg(feature = "report")]
pub use prune::{execute_prune, prune_checkpoint_path};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analysis::ImageSpec;
use crate::error::{Error, Result};
use crate::io::data::{self, Cifar10, Image, Split};

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
            "CIFAR-10 images other than the default ten need a data folder: set FLICKERTAG_DATA or pass <data> (or use image files)",
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

/// The paper's ten test images as embedded in flickertag ([`crate::io::embedded`]).
pub fn embedded_images() -> (Vec<ImageSpec>, ImageLoader) {
    let imgs = crate::io::embedded::paper_images();
    let specs = crate::io::embedded::PAPER_INDICES
        .iter()
        .zip(&imgs)
        .map(|(&i, img)| ImageSpec { name: format!("test[{i}]"), index: Some(i), label: img.label })
        .collect();
    let load = move |s: &ImageSpec| {
        crate::io::embedded::PAPER_INDICES
            .iter()
            .position(|&i| Some(i) == s.index)
            .map(|k| imgs[k].clone())
            .ok_or_else(|| Error::param("images", "one of the embedded test images", &s.name))
    };
    (specs, Box::new(load))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::AnalysisConfig;

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
        assert_eq!(o.stimulus().unwrap().layout, crate::signal::stimulus::Layout::Grid { rows: 2, cols: 3 });
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
