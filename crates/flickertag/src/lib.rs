//! flickertag: frequency tagging (SSVEP) analysis of neural network filters.
//!
//! Parts of an image flicker at different frequencies (left half 6 Hz, right half
//! 7.5 Hz), the network sees the frames one by one, and the spectrum of each filter's
//! activation over time shows which parts drive it (lines at 6 or 7.5 Hz and their
//! harmonics) and whether it combines them (intermodulation lines such as 1.5 or
//! 13.5 Hz). Signal-to-noise ratios turn that into per-filter importance scores.
//!
//! # Map of the main types
//! The source is grouped by layer: [`io`] (images, tables, JSON, NPY, the embedded
//! default), [`signal`] (stimulus, spectrum, lines, SNR), [`inference`] (model and
//! engine, with their readers of untrusted files), [`importance`] (the statistics),
//! [`analysis`] (the stages in order), [`report`], and [`run`] (a whole run, its
//! shards); each stage's module is also at the crate root. Data flows one way through
//! one module per stage:
//!
//! | stage | module | main types |
//! |---|---|---|
//! | stimulus | [`stimulus`] | [`stimulus::StimulusConfig`] → [`stimulus::TagPlan`] (frames, period) |
//! | model | [`model`] | [`model::Model`] (ONNX graph, [`model::TapPoint`]s), [`model::StateDict`] |
//! | engine | [`engine`] | [`engine::Session`] (ONNX Runtime), [`engine::TapInfo`] |
//! | spectrum | [`spectrum`] | [`spectrum::Fft`] (cached real-FFT plans) |
//! | lines | [`lines`] | [`lines::Line`] (harmonic / intermodulation catalogue) |
//! | snr | [`snr`] | [`snr::SnrConfig`] (presets `authors`, `mne`, `fpvs`) |
//! | importance | [`importance`] | [`importance::LayerImportance`] |
//! | report | [`report`] | run folder writers, [`report::Summary`] (typed `summary.json`, both ways) |
//!
//! Beside them: [`data`] (CIFAR-10, image files), [`embedded`] (the pretrained ResNet-32
//! and the paper's ten images, compiled in), [`evaluate`] (accuracy), [`prune`] (filter
//! ablation, pruning criteria and curves), [`analysis`], which runs the stages in order
//! ([`analysis::analyze`] → [`analysis::Analysis`], results keyed by tap name), and
//! [`run`], a whole run as the CLI and Python make it: every option once
//! ([`run::AnalysisOptions`]), lowered once into a [`run::Plan`]
//! ([`run::AnalysisOptions::plan`]) that, with the `report` feature, runs the analysis
//! and its extras into a run folder (`run::Plan::execute`); [`run::select_images`].
//!
//! # Features
//! - `report`: figures (plotters) and the self-contained `report.html`. Off by default:
//!   the library alone compiles no CLI, plotting or HTTP crate.
//!
//! # Example
//! The whole analysis from the library, on the built-in demonstration network
//! (random weights) and a synthetic image, so it runs without any data:
//!
//! ```
//! use flickertag::analysis::{analyze, AnalysisConfig, ImageSpec};
//! use flickertag::data::synthetic_image;
//! use flickertag::model::demo_model;
//!
//! let model = demo_model(7)?; // or Model::load("resnet32", None): the embedded ResNet-32
//! let cfg = AnalysisConfig::default(); // paper settings: 6 / 7.5 Hz, 120 fps, 240 frames, `authors` SNR
//! let images = vec![ImageSpec { name: "synthetic".into(), index: None, label: None }];
//! let result = analyze(&model, &cfg, &images, &|_| Ok(synthetic_image(1, 32, 32)), &mut |_, _| {})?;
//! let stem = result.layer("conv1").expect("the stem conv is recorded");
//! assert_eq!(result.layer("#1"), Some(stem));
//! println!("{} of {} stem filters important", stem.n_important, stem.n_filters);
//! // The stem conv is linear in the frame: its spectrum has lines at 6 and 7.5 Hz only.
//! let spec = result.mean_spectrum("conv1", 0).unwrap();
//! assert!(spec[12] > 100.0 * spec[24]);
//! # Ok::<(), flickertag::Error>(())
//! ```

pub mod analysis;
pub mod cam;
pub mod error;
pub mod evaluate;
#[doc(hidden)]
pub mod fuzzing;
pub mod importance;
pub mod inference;
pub mod io;
pub mod progress;
pub mod prune;
pub mod report;
pub mod run;
pub mod signal;

pub use error::{Error, Result};
// The layers' modules at the crate root too, where the faces and users name them.
pub use inference::{engine, model};
pub use io::{data, embedded, json, table};
pub use run::shard;
pub use signal::{lines, snr, spectrum, stimulus};
