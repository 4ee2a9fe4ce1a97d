//! `flickertag cam` as a whole run: options as a person gives them ([`CamOptions`]),
//! lowered into a [`CamConfig`] (the localisation cases drawn from the test set outside
//! the analysis images), run ([`crate::cam::run`]), its tables and run folder.

use std::path::Path;
#[cfg(feature = "report")]
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisConfig, TapSelection};
use crate::cam::methods::Method;
use crate::cam::{localisation, metrics, CamConfig, CamResult, SETS};
use crate::error::{Error, Result};
use crate::inference::engine::EngineConfig;
use crate::inference::model::{Layout, Model};
use crate::io::data::{Cifar10, Split, CLASSES};
use crate::prune::curves::CriterionKind;

/// What a CAM evaluation is given, as a person gives it: the CLI's flags, Python's
/// keyword arguments, with the CLI's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CamOptions {
    /// The layer whose channels make the maps (a tap name; empty: the deepest tap with
    /// maps of at least 2 × 2 on a 32 × 32 image, the usual CAM layer).
    pub layer: String,
    /// Localisation cases.
    pub n_cases: usize,
    /// Canvas side, pixels.
    pub canvas: usize,
    /// What surrounds the object: `mosaic` (other test images: competing objects) or
    /// `upscaled` (one other test image enlarged to the canvas).
    pub background: String,
    /// Seed of the cases, the random sets and the tie order.
    pub seed: u64,
    /// Channels per selected set (0: a quarter of the layer's channels).
    pub k: usize,
    /// Tagging score that ranks the channels.
    pub criterion: String,
    /// Methods (`score-cam`, `ablation-cam`, `eigencam`; empty: all three).
    pub methods: Vec<String>,
    /// Insertion/deletion steps.
    pub steps: usize,
    /// Test images of the tagging analysis (empty: the first of each class).
    pub analysis_images: Vec<usize>,
    /// Case-bootstrap resamples of the intervals.
    pub bootstrap: usize,
    /// Seed of the resamples.
    pub bootstrap_seed: u64,
    /// Cases whose maps are drawn in the figure.
    pub keep_maps: usize,
    /// Intra-op threads (0: one per core).
    pub threads: usize,
    /// Inputs per inference call.
    pub batch: usize,
    /// Methods computed outside flickertag (the Python package's Grad-CAM, Grad-CAM++).
    pub extra: Vec<crate::cam::ExtraMethod>,
}

impl Default for CamOptions {
    fn default() -> Self {
        CamOptions {
            layer: String::new(),
            n_cases: 1000,
            canvas: 64,
            background: "mosaic".into(),
            seed: 0,
            k: 0,
            criterion: "ft_authors".into(),
            methods: vec![],
            steps: 16,
            analysis_images: vec![],
            bootstrap: 1000,
            bootstrap_seed: 0,
            keep_maps: 4,
            threads: 0,
            batch: EngineConfig::default().batch,
            extra: vec![],
        }
    }
}

/// The deepest tap of `model` with channels-first maps of at least 2 × 2.
pub fn default_layer(model: &Model) -> Result<String> {
    model
        .taps
        .iter()
        .rev()
        .find(|t| t.layout == Layout::ChannelsFirst && t.dims.len() == 3 && t.dims[1] >= 2 && t.dims[2] >= 2)
        .map(|t| t.name.clone())
        .ok_or_else(|| Error::param("layer", "a model with a tap of maps [C, H, W]", &model.name))
}

impl CamOptions {
    /// Reads options from a JSON object (unknown names are an error listing the known ones).
    pub fn from_json(json: &str) -> Result<CamOptions> {
        crate::io::json::options(json)
    }

    /// The configuration for `model` and the test set `test`.
    pub fn config(&self, model: &Model, test: &Cifar10) -> Result<CamConfig> {
        let layer = if self.layer.is_empty() { default_layer(model)? } else { model.tap(&self.layer)?.name.clone() };
        let channels = model.tap(&layer)?.dims.first().copied().unwrap_or(0);
        let k = if self.k == 0 { (channels / 4).max(1) } else { self.k };
        let criterion = match self.criterion.as_str() {
            "ft_authors" => CriterionKind::FtAuthors,
            "ft_bca" => CriterionKind::FtBca,
            "ft_t2" => CriterionKind::FtT2,
            other => return Err(Error::param("criterion", "ft_authors, ft_bca or ft_t2", other)),
        };
        let methods: Vec<Method> = if self.methods.is_empty() {
            Method::ALL.to_vec()
        } else {
            self.methods.iter().map(|m| m.parse()).collect::<Result<_>>()?
        };
        let analysis =
            if self.analysis_images.is_empty() { test.first_of_each_class() } else { self.analysis_images.clone() };
        let pool: Vec<usize> = (0..test.len()).filter(|i| !analysis.contains(i)).collect();
        let background: localisation::Background = self.background.parse()?;
        let cases = localisation::cases(test, &pool, self.n_cases, self.canvas, background, self.seed)?;
        let engine = EngineConfig { threads: self.threads, batch: self.batch, ..EngineConfig::default() };
        let mut a = AnalysisConfig { engine: engine.clone(), ..AnalysisConfig::default() };
        a.taps = TapSelection { kinds: vec![], names: vec![layer.clone()] };
        Ok(CamConfig {
            layer,
            cases,
            canvas: self.canvas,
            background,
            k,
            criterion,
            methods,
            steps: self.steps,
            seed: self.seed,
            bootstrap: self.bootstrap,
            bootstrap_seed: self.bootstrap_seed,
            analysis: a,
            analysis_images: analysis,
            keep_maps: self.keep_maps,
            extra: self.extra.clone(),
            engine,
        })
    }

    /// The configuration these options give (its layer and cases) and the cases'
    /// canvases `[n, 3, S, S]` in [0, 1]: what a method computed outside flickertag, as
    /// Grad-CAM through torch, reads before [`CamOptions::run`] is given its weights as `extra`.
    pub fn canvases(&self, model: &Model, data: &Path) -> Result<(CamConfig, Vec<f32>)> {
        let test = Cifar10::load(data, Split::Test)?;
        let cfg = self.config(model, &test)?;
        let mut v = Vec::with_capacity(cfg.cases.len() * 3 * cfg.canvas * cfg.canvas);
        for c in &cfg.cases {
            v.extend(localisation::render(&test, c, cfg.canvas, cfg.background).pixels);
        }
        Ok((cfg, v))
    }

    /// Runs on `model` with the CIFAR-10 test set of the data folder `data`.
    pub fn run(&self, model: &Model, data: &Path, progress: &mut dyn FnMut(usize, usize)) -> Result<CamRun> {
        let test = Cifar10::load(data, Split::Test)?;
        let cfg = self.config(model, &test)?;
        Ok(CamRun { result: crate::cam::run(model, &test, &cfg, progress)? })
    }
}

/// A finished CAM evaluation.
pub struct CamRun {
    /// The result.
    pub result: CamResult,
}

impl CamRun {
    /// Share of cases whose canvas the network classifies as the object's class, %.
    pub fn canvas_top1(&self) -> f64 {
        self.result.canvas_top1()
    }

    /// The run folder's tables by file name: `cam.json` (settings, layer, sets, timing),
    /// `cam_cases.csv` (per case: object, box, background, the network's verdict),
    /// `cam_metrics.csv` (per case, method and set: the four metrics),
    /// `cam_comparison.csv` (per method, set and metric: against `all`, and tagging
    /// against random, with the interval and verdict), `cam_channels.csv` (per channel: its score and sets),
    /// `cam_weights.csv` (the first `keep_maps` cases: each method's channel weights).
    pub fn tables(&self) -> Vec<(&'static str, Vec<u8>)> {
        use crate::io::table::{num, Table};
        let r = &self.result;
        let cfg = &r.config;
        let mut cases =
            Table::new(&["case", "image", "label", "class", "x", "y", "background", "correct", "probability"]);
        for o in &r.outcomes {
            let c = &cfg.cases[o.case];
            let bg: Vec<String> = c.background.iter().map(|b| b.to_string()).collect();
            cases.row([
                num(o.case),
                num(c.image),
                num(c.label as usize),
                CLASSES[c.label as usize].to_string(),
                num(c.x),
                num(c.y),
                bg.join(" "),
                o.correct.to_string(),
                num(o.probability),
            ]);
        }
        let mut head = vec!["case".to_string(), "method".into(), "set".into()];
        head.extend(metrics::METRICS.iter().map(|m| m.to_string()));
        let mut m = Table::new(&head);
        for o in &r.outcomes {
            for (mi, method) in cfg.method_names().iter().enumerate() {
                for (si, set) in SETS.iter().enumerate() {
                    let mut row = vec![num(o.case), method.clone(), set.to_string()];
                    row.extend(o.metrics[mi][si].iter().map(|&v| num(v)));
                    m.row(row);
                }
            }
        }
        let mut c = Table::new(&[
            "method",
            "set",
            "against",
            "metric",
            "mean",
            "control",
            "difference",
            "ci_low",
            "ci_high",
            "verdict",
        ]);
        for x in &r.comparisons {
            c.row([
                x.method.clone(),
                x.set.clone(),
                x.against.clone(),
                x.metric.clone(),
                num(x.mean),
                num(x.control),
                num(x.difference),
                num(x.ci_low),
                num(x.ci_high),
                x.verdict.clone(),
            ]);
        }
        let mut ch = Table::new(&["channel", cfg.criterion.name(), "tagging", "bottom"]);
        for (k, s) in r.scores.iter().enumerate() {
            ch.row([num(k), num(*s), r.tagging.contains(&k).to_string(), r.bottom.contains(&k).to_string()]);
        }
        let mut wt = Table::new(&["case", "method", "channel", "weight"]);
        let names = cfg.method_names();
        for k in &r.kept {
            for (mi, w) in k.weights.iter().enumerate() {
                for (c, &v) in w.iter().enumerate() {
                    wt.row([num(k.case), names[mi].clone(), num(c), num(v)]);
                }
            }
        }
        let mut settings = serde_json::to_value(cfg).expect("serializable");
        settings.as_object_mut().expect("an object").remove("cases");
        let summary = serde_json::json!({
            "schema": 1, "flickertag_version": env!("CARGO_PKG_VERSION"), "config": settings,
            "layer": r.layer, "channels": r.channels, "map_size": r.map_size, "cases": r.outcomes.len(),
            "canvas_top1": self.canvas_top1(), "tagging": r.tagging, "bottom": r.bottom,
            "box_share": metrics::box_share(cfg.canvas), "seconds": r.seconds,
        });
        vec![
            ("cam.json", serde_json::to_vec_pretty(&summary).expect("serializable")),
            ("cam_cases.csv", cases.into_string().into_bytes()),
            ("cam_metrics.csv", m.into_string().into_bytes()),
            ("cam_comparison.csv", c.into_string().into_bytes()),
            ("cam_channels.csv", ch.into_string().into_bytes()),
            ("cam_weights.csv", wt.into_string().into_bytes()),
        ]
    }

    /// Writes the run folder into `out` atomically (an earlier run there is replaced
    /// only with `force`): the tables, `plots/cam_grid.png` and `report.html`.
    #[cfg(feature = "report")]
    pub fn save(&self, out: &Path, force: bool) -> Result<PathBuf> {
        let folder = crate::report::folder::RunFolder::create(out, force, "cam")?;
        for (name, bytes) in self.tables() {
            let p = folder.path().join(name);
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        }
        crate::report::cam::write(&self.result, folder.path())?;
        folder.commit()
    }

    /// The summary for a terminal: per method, each set against `all` on each metric.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let r = &self.result;
        let cfg = &r.config;
        let mut s = format!(
            "flickertag cam: {} cases ({} x {} {} canvases, box share {:.3}, {} insertion/deletion steps), layer {} \
             ({} channels, {} x {} maps), k = {} by {}, in {:.0} s; the network names the object on {:.1} % of \
             the canvases\n",
            r.outcomes.len(),
            cfg.canvas,
            cfg.canvas,
            cfg.background.name(),
            metrics::box_share(cfg.canvas),
            cfg.steps,
            r.layer,
            r.channels,
            r.map_size[0],
            r.map_size[1],
            cfg.k,
            cfg.criterion.name(),
            r.seconds,
            self.canvas_top1()
        );
        let _ = writeln!(
            s,
            "set - against (all: the same layer, every channel): mean paired difference [95 % bootstrap interval \
             over cases]; deletion: lower is better"
        );
        for x in &r.comparisons {
            let _ = writeln!(
                s,
                "  {:<13} {:<7} - {:<6} {:<9} {:.3} vs {:.3}: {:+.3} [{:+.3}, {:+.3}] {}",
                x.method, x.set, x.against, x.metric, x.mean, x.control, x.difference, x.ci_low, x.ci_high, x.verdict
            );
        }
        s
    }
}
