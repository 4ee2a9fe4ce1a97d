//! `summary.json`, typed both ways: [`Summary::new`] describes an analysis and
//! [`Summary::read`] reads a run folder's file back into the same structs. A missing
//! key, a wrong type or another schema version is an error naming the file; NaN values
//! are stored as `null` ([`crate::io::json`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::analysis::maps::SnrMap;
use crate::analysis::{Analysis, InferencePath};
use crate::error::{Error, Result};
use crate::importance::stats::StatsResult;
use crate::importance::LayerImportance;
use crate::inference::engine::TapInfo;
pub use crate::inference::model::ModelInfo;
use crate::io::data::CLASSES;
use crate::signal::lines::Line;
use crate::signal::snr::SnrConfig;
use crate::signal::stimulus::StimulusConfig;

/// Version of the `summary.json` layout.
pub const SCHEMA_VERSION: u32 = 1;

/// Largest `summary.json` read back (a run with many taps and filters is a few MB).
pub const MAX_SUMMARY_BYTES: u64 = 256 << 20;

/// The `summary.json` document of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Layout version ([`SCHEMA_VERSION`]).
    pub schema: u32,
    /// The flickertag that wrote it.
    pub flickertag_version: String,
    /// The model.
    pub model: ModelInfo,
    /// The stimulus as used.
    pub stimulus: StimulusInfo,
    /// How inference ran.
    pub inference: InferenceInfo,
    /// The SNR definition in effect (after overrides and grid exclusions).
    pub snr: SnrConfig,
    /// The importance threshold.
    pub threshold: f64,
    /// The images, in the order of the per-image arrays.
    pub images: Vec<ImageInfo>,
    /// The line catalogue.
    pub lines: Vec<Line>,
    /// The recorded taps, in the order of the tap axis.
    pub taps: Vec<TapInfo>,
    /// Per tap: counts, important filters, per-filter scores.
    pub layers: Vec<LayerImportance>,
    /// Across-image statistics (null when not computed).
    #[serde(deserialize_with = "Option::deserialize")]
    pub stats: Option<StatsResult>,
    /// Per-neuron SNR maps written under `maps/`.
    pub maps: Vec<SnrMap>,
    /// Total work time, seconds (the sum of `segments`).
    pub seconds: f64,
    /// The pieces of work that made the run, with their wall times (a run made in one go
    /// has one; a merged run one per shard and the merge; a resumed run one per start).
    #[serde(default)]
    pub segments: Vec<crate::analysis::Segment>,
}

/// The stimulus of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StimulusInfo {
    /// The configuration.
    pub config: StimulusConfig,
    /// FFT bin of each tag.
    pub bins: Vec<usize>,
    /// Period in frames, if the stimulus repeats.
    #[serde(deserialize_with = "Option::deserialize")]
    pub period: Option<usize>,
    /// Region names, one per tag.
    pub region_names: Vec<String>,
}

/// How inference ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceInfo {
    /// The path (folded, distinct, full).
    pub path: InferencePath,
    /// Frames run per image.
    pub frames_per_image: usize,
    /// One line for people.
    pub description: String,
}

/// One analysed image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    /// Display name (`test[3]`, a file name, `array[0]`).
    pub name: String,
    /// CIFAR-10 index or position in an array.
    #[serde(deserialize_with = "Option::deserialize")]
    pub index: Option<usize>,
    /// Class label, if known.
    #[serde(deserialize_with = "Option::deserialize")]
    pub label: Option<u8>,
    /// Class name, if known.
    #[serde(deserialize_with = "Option::deserialize")]
    pub class: Option<String>,
}

impl Summary {
    /// The summary of an analysis.
    pub fn new(a: &Analysis) -> Summary {
        Summary {
            schema: SCHEMA_VERSION,
            flickertag_version: env!("CARGO_PKG_VERSION").to_string(),
            model: a.model.clone(),
            stimulus: StimulusInfo {
                config: a.plan.config.clone(),
                bins: a.plan.bins.clone(),
                period: a.plan.period(),
                region_names: a.plan.region_names.clone(),
            },
            inference: InferenceInfo {
                path: a.path,
                frames_per_image: a.frames_per_image,
                description: a.path.describe(a.config.stimulus.n_frames),
            },
            snr: a.config.snr.clone(),
            threshold: a.config.threshold,
            images: a
                .images
                .iter()
                .map(|i| ImageInfo {
                    name: i.name.clone(),
                    index: i.index,
                    label: i.label,
                    class: i.label.and_then(|l| CLASSES.get(l as usize)).map(|c| c.to_string()),
                })
                .collect(),
            lines: a.lines.clone(),
            taps: a.taps.clone(),
            layers: a.layers.clone(),
            stats: a.stats.clone(),
            maps: a.maps.clone(),
            seconds: a.seconds,
            segments: a.segments.clone(),
        }
    }

    /// Reads `dir/summary.json`, checking the schema version and that the per-tap lists
    /// agree with each other.
    pub fn read(dir: &Path) -> Result<Summary> {
        let p = dir.join("summary.json");
        let text = crate::io::data::read_regular_file(&p, MAX_SUMMARY_BYTES)?;
        Summary::from_slice(&text, &p)
    }

    /// Parses and checks a summary held in memory (`p` names it in errors), as
    /// [`Summary::read`] does.
    pub fn from_slice(text: &[u8], p: &Path) -> Result<Summary> {
        let bad = |reason: String| Error::Data { path: p.to_path_buf(), reason };
        let v: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| bad(format!("not JSON ({e}); the run did not finish?")))?;
        match v.get("schema").and_then(|s| s.as_u64()) {
            Some(s) if s == SCHEMA_VERSION as u64 => {}
            s => return Err(bad(format!("schema version {s:?}, this flickertag reads version {SCHEMA_VERSION}"))),
        }
        let s: Summary = serde_json::from_value(v)
            .map_err(|e| bad(format!("not a flickertag summary (schema {SCHEMA_VERSION}): {e}")))?;
        if s.layers.len() != s.taps.len() {
            return Err(bad(format!("{} layers for {} taps", s.layers.len(), s.taps.len())));
        }
        for (l, t) in s.layers.iter().zip(&s.taps) {
            let c = t.shape.first().copied().unwrap_or(0);
            if l.tap != t.tap.name || l.filters.len() != c || l.filters.iter().enumerate().any(|(i, f)| f.channel != i)
            {
                return Err(bad(format!("layer `{}` does not match tap `{}` of {c} channels", l.tap, t.tap.name)));
            }
        }
        Ok(s)
    }

    /// Frames per second and frame count of the stimulus.
    pub fn fps_n(&self) -> (f64, usize) {
        (self.stimulus.config.fps, self.stimulus.config.n_frames)
    }

    /// The layer of a tap, by name.
    pub fn layer(&self, tap: &str) -> Option<&LayerImportance> {
        self.layers.iter().find(|l| l.tap == tap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> serde_json::Value {
        serde_json::json!({
            "schema": 1, "flickertag_version": "0", "model": {"name": "m", "source": "m.onnx", "input_shape": [3, 2, 2],
            "preprocess": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}},
            "stimulus": {"config": {"layout": "halves", "freqs": [6.0, 7.5], "phases": [], "fps": 120.0, "n_frames": 240,
              "lo": 0.5, "hi": 1.0, "domain": "normalized", "allow_leakage": false,
              "modulation": "all", "depth": 1.0}, "bins": [12, 15], "period": 80,
              "region_names": ["left", "right"]},
            "inference": {"path": {"path": "full"}, "frames_per_image": 240, "description": "full"},
            "snr": crate::signal::snr::SnrConfig::preset("authors").unwrap(), "threshold": 1.5,
            "images": [{"name": "a", "index": null, "label": null, "class": null}],
            "lines": [], "taps": [{"name": "c", "tensor": "c", "kind": "conv", "conv_ordinal": 1, "layout": {"type": "channels_first"},
            "dims": [1, 2, 2], "chw": [1, 2, 2], "shape": [1, 2, 2]}],
            "layers": [{"tap": "c", "conv_ordinal": 1, "n_filters": 1, "n_important": 0, "important": [], "mean_score": null,
              "filters": [{"channel": 0, "mean_score": null, "sd_score": 0.0, "pass_fraction": 0.0, "important": false,
                "dead": false, "response": {"fundamental": [], "harmonics": [], "intermod": false, "floor": 0.0}}]}],
            "stats": null, "maps": [], "seconds": 0.1, "segments": []
        })
    }

    fn read(v: &serde_json::Value) -> Result<Summary> {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("summary.json"), v.to_string()).unwrap();
        Summary::read(d.path())
    }

    #[test]
    fn summary_reads_back_with_nan_for_null() {
        let s = read(&tiny()).unwrap();
        assert!(s.layers[0].mean_score.is_nan());
        assert_eq!(s.fps_n(), (120.0, 240));
        assert_eq!(serde_json::to_value(&s).unwrap(), tiny());
    }

    #[test]
    fn summary_written_before_modulation_and_depth_reads_with_the_paper_modulation() {
        let mut v = tiny();
        let cfg = v.pointer_mut("/stimulus/config").unwrap().as_object_mut().unwrap();
        cfg.remove("modulation");
        cfg.remove("depth");
        let s = read(&v).unwrap();
        assert_eq!(s.stimulus.config.modulation, crate::signal::stimulus::Modulation::All);
        assert_eq!(s.stimulus.config.depth, 1.0);
    }

    #[test]
    fn summary_with_a_missing_key_is_an_error_naming_it() {
        for (path, key) in [("", "threshold"), ("/model", "preprocess"), ("/images/0", "class"), ("", "stats")] {
            let mut v = tiny();
            v.pointer_mut(path).unwrap().as_object_mut().unwrap().remove(key);
            let e = read(&v).unwrap_err().to_string();
            assert!(e.contains("summary.json") && e.contains(&format!("missing field `{key}`")), "{e}");
        }
    }

    #[test]
    fn summary_of_another_schema_or_inconsistent_layers_is_refused() {
        let mut v = tiny();
        v["schema"] = 2.into();
        assert!(read(&v).unwrap_err().to_string().contains("schema version Some(2)"));
        let mut v = tiny();
        v["taps"][0]["shape"] = serde_json::json!([2, 2, 2]);
        assert!(read(&v).unwrap_err().to_string().contains("does not match tap"));
        let e = read(&serde_json::json!({"schema": 1})).unwrap_err().to_string();
        assert!(e.contains("missing field"), "{e}");
    }
}
