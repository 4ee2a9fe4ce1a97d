//! `flickertag importance-truth` as a whole run: options as a person gives them
//! ([`TruthOptions`]), lowered into a [`TruthConfig`] with the test set split into
//! disjoint image sets, run ([`crate::prune::truth::run`]), its tables and run folder.
//!
//! The image sets (CIFAR-10 test set, `L` images):
//! - statistics images: the last `statistics_images` (`activation`, `activity_sd`,
//!   `hrank`, the means of mean-ablation; exact images, never the lossy JPEG training copies);
//! - analysis images: the tagging analysis's images (default: the first test image of
//!   each class, the paper's ten);
//! - evaluation images: `n_images` drawn (seeded) from the rest of `0..L − statistics_images`.

use std::path::Path;
#[cfg(feature = "report")]
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisConfig, TapSelection};
use crate::error::{Error, Result};
use crate::inference::engine::EngineConfig;
use crate::inference::model::{Model, TapKind};
use crate::io::data::{Cifar10, Split};
use crate::prune::crossval::CrossValAblationConfig;
use crate::prune::truth::{run, TruthConfig, TruthResult};
use crate::prune::Ablation;

/// What a ground-truth run is given, as a person gives it: the CLI's flags, Python's
/// keyword arguments, with the CLI's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TruthOptions {
    /// Evaluation images (seeded draw from the test set outside the other sets).
    pub n_images: usize,
    /// Seed of the draw.
    pub seed: u64,
    /// Held-out test images for the activation statistics: the last N of the test set.
    pub statistics_images: usize,
    /// Test images of the tagging analysis (empty: the first of each class).
    pub analysis_images: Vec<usize>,
    /// Conv layers ablated filter by filter (tap names or `#ordinal`; empty: all).
    pub layers: Vec<String>,
    /// What an ablated channel is replaced by.
    pub ablation: Ablation,
    /// Image-bootstrap resamples of the intervals (0: none).
    pub bootstrap: usize,
    /// Seed of the resamples.
    pub bootstrap_seed: u64,
    /// Outer splits of the analysis images for the cross-validated ablation
    /// ([`crate::prune::crossval`]; 0: not run).
    pub crossval_splits: usize,
    /// Random same-size sets per layer and split of the cross-validated ablation.
    pub crossval_random: usize,
    /// Intra-op threads (0: one per core).
    pub threads: usize,
    /// Images per inference call.
    pub batch: usize,
    /// Criteria computed outside flickertag (the Python package's Taylor).
    pub extra: Vec<crate::prune::truth::ExtraCriterion>,
}

impl Default for TruthOptions {
    fn default() -> Self {
        TruthOptions {
            n_images: 1000,
            seed: 0,
            statistics_images: 1000,
            analysis_images: vec![],
            layers: vec![],
            ablation: Ablation::Zero,
            bootstrap: 1000,
            bootstrap_seed: 0,
            crossval_splits: 0,
            crossval_random: 20,
            threads: 0,
            batch: EngineConfig::default().batch,
            extra: vec![],
        }
    }
}

/// Below this reliability of the truth the summary warns that it is mostly noise.
pub const LOW_RELIABILITY: f64 = 0.5;

/// A finished ground-truth run.
pub struct TruthRun {
    /// The result.
    pub result: TruthResult,
}

impl TruthOptions {
    /// Reads options from a JSON object (unknown names are an error listing the known ones).
    pub fn from_json(json: &str) -> Result<TruthOptions> {
        crate::io::json::options(json)
    }

    /// The configuration for a test set of `test`: the three disjoint image sets.
    pub fn config(&self, test: &Cifar10) -> Result<TruthConfig> {
        let len = test.len();
        if self.statistics_images == 0 || self.statistics_images >= len {
            return Err(Error::param("statistics-images", format!("1..{len}"), self.statistics_images));
        }
        let stats_start = len - self.statistics_images;
        let analysis =
            if self.analysis_images.is_empty() { test.first_of_each_class() } else { self.analysis_images.clone() };
        if let Some(i) = analysis.iter().find(|&&i| i >= stats_start && i < len) {
            return Err(Error::param(
                "analysis-images",
                format!("test images below {stats_start} (the statistics images are {stats_start}..{len})"),
                i,
            ));
        }
        let pool: Vec<usize> = (0..stats_start).filter(|i| !analysis.contains(i)).collect();
        if self.n_images < 2 || self.n_images > pool.len() {
            return Err(Error::param(
                "n-images",
                format!("2..={} (the test images outside the statistics and analysis images)", pool.len()),
                self.n_images,
            ));
        }
        let images = crate::io::data::seeded_sample(pool.len(), self.n_images, self.seed)?
            .into_iter()
            .map(|i| pool[i])
            .collect();
        let engine = EngineConfig { threads: self.threads, batch: self.batch, ..EngineConfig::default() };
        let mut a = AnalysisConfig { engine: engine.clone(), ..AnalysisConfig::default() };
        a.taps = TapSelection { kinds: vec![TapKind::Conv], names: vec![] };
        Ok(TruthConfig {
            images,
            statistics_images: (stats_start..len).collect(),
            analysis_images: analysis,
            layers: self.layers.iter().filter(|l| !l.is_empty()).cloned().collect(),
            ablation: self.ablation,
            bootstrap: self.bootstrap,
            bootstrap_seed: self.bootstrap_seed,
            analysis: a,
            extra: self.extra.clone(),
            crossval: (self.crossval_splits > 0).then_some(CrossValAblationConfig {
                splits: self.crossval_splits,
                random: self.crossval_random,
                seed: self.seed,
            }),
            engine,
        })
    }

    /// Runs on `model` with the CIFAR-10 test set of the data folder `data`.
    pub fn run(&self, model: &Model, data: &Path, progress: &mut dyn FnMut(usize, usize)) -> Result<TruthRun> {
        model.require_frames_alone("importance-truth")?;
        let test = Cifar10::load(data, Split::Test)?;
        let cfg = self.config(&test)?;
        Ok(TruthRun { result: run(model, &test, &cfg, progress)? })
    }
}

impl TruthRun {
    /// The run folder's tables by file name: `importance_truth.json` (settings, timing,
    /// base accuracy and loss; the cross-validated ablation whole, when run),
    /// `importance_truth.csv` (per filter: the truth and every criterion),
    /// `importance_correlation.csv` (per scope, criterion and truth), and with
    /// `crossval_splits` `crossval_ablation.csv` (per split and chosen layer: `split,
    /// threshold, layer, conv_ordinal, channels, set_size, delta_loss, random_mean,
    /// random_sd, z, p_value`, and the set's filters space-separated).
    pub fn tables(&self) -> Vec<(&'static str, Vec<u8>)> {
        use crate::io::table::{num, opt, Table};
        let r = &self.result;
        let mut head: Vec<String> =
            ["layer", "conv_ordinal", "filter", "delta_loss", "delta_top1"].iter().map(|s| s.to_string()).collect();
        head.extend(r.config.criteria());
        let mut f = Table::new(&head);
        for x in &r.filters {
            let mut row =
                vec![x.layer.clone(), opt(x.conv_ordinal), num(x.filter), num(x.delta_loss), num(x.delta_top1)];
            row.extend(x.scores.iter().map(|&s| num(s)));
            f.row(row);
        }
        let mut c = Table::new(&["scope", "criterion", "truth", "n_filters", "rho", "ci_low", "ci_high"]);
        for x in &r.correlations {
            c.row([
                x.scope.clone(),
                x.criterion.clone(),
                x.truth.clone(),
                num(x.n_filters),
                num(x.rho),
                num(x.ci_low),
                num(x.ci_high),
            ]);
        }
        let summary = serde_json::json!({
            "schema": 1, "flickertag_version": env!("CARGO_PKG_VERSION"), "config": r.config,
            "base_top1": r.base_top1, "base_loss": r.base_loss, "filters": r.filters.len(),
            "seconds": r.seconds, "criteria": r.config.criteria(), "crossval": r.crossval,
        });
        let mut out = vec![
            ("importance_truth.json", serde_json::to_vec_pretty(&summary).expect("serializable")),
            ("importance_truth.csv", f.into_string().into_bytes()),
            ("importance_correlation.csv", c.into_string().into_bytes()),
        ];
        if let Some(cv) = &r.crossval {
            let mut t = Table::new(&[
                "split",
                "threshold",
                "layer",
                "conv_ordinal",
                "channels",
                "set_size",
                "delta_loss",
                "random_mean",
                "random_sd",
                "z",
                "p_value",
                "set",
            ]);
            for s in &cv.splits {
                for l in &s.layers {
                    t.row([
                        num(s.split),
                        num(s.threshold),
                        l.layer.clone(),
                        opt(l.conv_ordinal),
                        num(l.channels),
                        num(l.set.len()),
                        num(l.delta_loss),
                        num(l.random_mean),
                        num(l.random_sd),
                        num(l.z),
                        num(l.p_value),
                        l.set.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" "),
                    ]);
                }
            }
            out.push(("crossval_ablation.csv", t.into_string().into_bytes()));
        }
        out
    }

    /// Writes the run folder into `out` atomically (an earlier run there is replaced
    /// only with `force`): the tables and `plots/importance_truth.png/.svg`.
    #[cfg(feature = "report")]
    pub fn save(&self, out: &Path, force: bool) -> Result<PathBuf> {
        let folder = crate::report::folder::RunFolder::create(out, force, "importance-truth")?;
        for (name, bytes) in self.tables() {
            let p = folder.path().join(name);
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        }
        crate::report::truth::truth_plot(&self.result, folder.path())?;
        folder.commit()
    }

    /// The summary for a terminal: Spearman's ρ with the loss change, pooled and per
    /// layer, with intervals.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let r = &self.result;
        let mut s = format!(
            "flickertag importance-truth: {} filters ablated one at a time ({} ablation) on {} test images in {:.0} s; \
             intact top-1 {:.2} %, loss {:.4}\n",
            r.filters.len(),
            r.config.ablation,
            r.config.images.len(),
            r.seconds,
            r.base_top1,
            r.base_loss
        );
        let scope = r.pooled_scope();
        let _ = writeln!(s, "Spearman's rho with the loss change ({scope}; 95 % bootstrap interval over images):");
        for c in r.correlations.iter().filter(|c| c.scope == scope && c.truth == "delta_loss") {
            if c.criterion == "reliability" {
                let _ = writeln!(
                    s,
                    "reliability of the truth itself (split-half, Spearman-Brown): {:.3}; no criterion can be \
                     expected above about {:.2}",
                    c.rho,
                    c.rho.max(0.0).sqrt()
                );
                if c.rho.is_nan() || c.rho < LOW_RELIABILITY {
                    let _ = writeln!(
                        s,
                        "warning: below {LOW_RELIABILITY}, the loss change is mostly image noise at {} images: \
                         pass more --n-images (fewer --layers keeps the time down)",
                        r.config.images.len()
                    );
                }
            } else {
                let _ = writeln!(s, "  {:<14} {:>6.3}  [{:.3}, {:.3}]", c.criterion, c.rho, c.ci_low, c.ci_high);
            }
        }
        if let Some(cv) = &r.crossval {
            let (z, zl, zh) = cv.summary(|x| x.mean_z());
            let (a, al, ah) = cv.summary(|x| x.share_above_random());
            let (t, tl, th) = cv.summary(|x| x.threshold);
            let _ = writeln!(
                s,
                "cross-validated ablation ({} splits of the {} analysis images; mean [2.5 %, 97.5 %] over splits): \
                 threshold chosen on A {t:.3} [{tl:.3}, {th:.3}] dB; A's set per layer on B's images against {} \
                 random sets of its size: mean z {z:.2} [{zl:.2}, {zh:.2}], share of layers above the random mean \
                 {a:.2} [{al:.2}, {ah:.2}] (0.5: no better than random)",
                cv.splits.len(),
                r.config.analysis_images.len(),
                cv.config.random,
            );
        }
        s
    }
}
